"""Table-driven tests of components/evaluation.py: parsing, scoring, metrics and the report.

No server: these are the pure functions that evaluate_inspector ships with
additional_funcs. tests/test_evaluate_inspector.py runs the component itself against the
local Vertex AI.
"""

import json
import re

import pytest

from components.evaluation import (
    class_scores,
    confusion_matrix,
    evaluation_records,
    fill_template,
    format_rate,
    merge_defect_classes,
    metric_values,
    parse_test_jsonl,
    parse_test_line,
    prediction_columns,
    render_report,
    report_templates,
    score_answers,
    scrub_error,
    shown_examples,
    summarize_results,
    summary_line,
)
from components.labels import LABELS, PROMPT

R = evaluation_records()
PASS, SCRATCH, CRACK = LABELS[None], LABELS["Scratch"], LABELS["Crack"]
SOURCE = "gs://b/test.jsonl"
IMAGE = {"fileData": {"mimeType": "image/png", "fileUri": "gs://b/a.png"}}


def sft(user_parts=None, label=PASS, **extra):
    """One SFT test line: a user turn (the prompt and an image by default), then the label."""
    parts = [{"text": PROMPT}, IMAGE] if user_parts is None else user_parts
    return json.dumps(
        {**extra, "contents": [{"role": "user", "parts": parts}, {"role": "model", "parts": [{"text": label}]}]}
    )


def example(label, uri="gs://b/x.png"):
    return R.Example(line=1, prompt=[], system=None, expected=label, image_uri=uri, inline=None)


def answer(text, failed=False, error="", latency_ms=12.0):
    return R.Answer(text=text, error=error, latency_ms=latency_ms, failed=failed)


def scored(pairs, classes=("Crack", "Scratch")):
    """Results for (label, answer text or None for a failed request) pairs."""
    examples = [example(label, f"gs://b/{i}.png") for i, (label, _) in enumerate(pairs)]
    answers = [answer("", failed=True, error="boom") if text is None else answer(text) for _, text in pairs]
    return score_answers(examples, answers, list(classes))[0]


# ---------------------------------------------------------------------------- records
def test_records_are_built_once_and_results_carry_the_csv_columns():
    assert evaluation_records() is R and evaluation_records().Result is R.Result
    assert set(prediction_columns()) <= set(R.Result._fields)
    assert [f for f in R.Result._fields if f not in prediction_columns()] == ["failed"]


def test_every_function_here_is_shipped_to_the_component_that_uses_it():
    import components.evaluation as module
    from components.evaluate_inspector import evaluate_inspector
    from components.select_checkpoint import select_checkpoint
    from components.shipping import shipped_functions

    defined = {
        name
        for name, value in vars(module).items()
        if callable(value) and getattr(value, "__module__", "") == module.__name__
    }
    shipped = shipped_functions(evaluate_inspector.python_func) + shipped_functions(select_checkpoint.python_func)
    unused = defined - {f.__name__ for f in shipped} - {"Example", "Answer", "Result", "Summary"}
    assert not unused, f"defined but reached by no component: {sorted(unused)}"


# ---------------------------------------------------------------------------- parsing
@pytest.mark.parametrize(
    "line, expected, image_uri, inline, system",
    [
        (sft(), PASS, "gs://b/a.png", None, None),
        (
            sft([{"text": PROMPT}, {"file_data": {"file_uri": "gs://b/snake.png"}}], CRACK),
            CRACK,
            "gs://b/snake.png",
            None,
            None,
        ),
        (
            sft([{"text": PROMPT}, {"inlineData": {"mimeType": "image/png", "data": "QUJD"}}]),
            PASS,
            "inline image (line 7)",
            "QUJD",
            None,
        ),
        (
            sft([IMAGE, {"fileData": {"fileUri": "gs://b/last.png"}}, {"text": "which?"}]),
            PASS,
            "gs://b/last.png",
            None,
            None,
        ),
        (sft([{"text": PROMPT}]), PASS, "", None, None),
        (sft(systemInstruction="Be strict."), PASS, "gs://b/a.png", None, "Be strict."),
        (sft(system_instruction={"parts": [{"text": "Snake."}]}), PASS, "gs://b/a.png", None, "Snake."),
        (
            json.dumps(
                {
                    "contents": [
                        {"role": "model", "parts": [{"text": "x"}]},
                        {"role": "model", "parts": [{"text": "Status: Pass"}, {"text": "."}]},
                    ]
                }
            ),
            "Status: Pass.",
            "",
            None,
            None,
        ),
    ],
    ids=[
        "fileData",
        "snake-case",
        "inline",
        "last-image",
        "no-image",
        "system-string",
        "system-snake",
        "label-parts-joined",
    ],
)
def test_parse_test_line(line, expected, image_uri, inline, system):
    parsed = parse_test_line(line, 7, SOURCE)
    assert (parsed.line, parsed.expected, parsed.image_uri, parsed.inline) == (7, expected, image_uri, inline)
    assert (parsed.system.parts[0].text if parsed.system else None) == system
    assert len(parsed.prompt) == 1 and parsed.prompt[0].parts


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", r"not valid JSON \("),
        ("[1, 2]", r"'contents' must hold a user turn and a final model turn"),
        (json.dumps({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}), r"'contents' must hold"),
        (
            json.dumps({"contents": [{"role": "user", "parts": []}, {"role": "user", "parts": []}]}),
            r"the last turn must be the model's expected answer",
        ),
        (sft(label="  "), r"the final model turn has no text label"),
        (
            json.dumps({"contents": [{"role": "user", "parts": "oops"}, {"role": "model", "parts": [{"text": "x"}]}]}),
            r"malformed contents: ",
        ),
    ],
)
def test_parse_test_line_names_the_line(line, message):
    with pytest.raises(ValueError, match=rf"^{re.escape(SOURCE)} line 3: {message}"):
        parse_test_line(line, 3, SOURCE)


@pytest.mark.parametrize(
    "text, max_examples, lines",
    [
        (f"{sft()}\n\n  \n{sft(label=CRACK)}\n", 0, [1, 4]),
        (f"{sft()}\n{sft()}\n{sft()}\n", 2, [1, 2]),
        (f"\n{sft()}", 5, [2]),
    ],
)
def test_parse_test_jsonl(text, max_examples, lines):
    assert [e.line for e in parse_test_jsonl(text, SOURCE, max_examples)] == lines


@pytest.mark.parametrize("text", ["", "\n  \n"])
def test_parse_test_jsonl_without_examples_fails(text):
    with pytest.raises(ValueError, match=rf"^{re.escape(SOURCE)} holds no test examples$"):
        parse_test_jsonl(text, SOURCE)


@pytest.mark.parametrize(
    "raw, scrubbed",
    [
        ("Authorization: Bearer abc.DEF-123==", "Authorization: Bearer [redacted]"),
        ("token ya29.a0AfH6SM-x_y here", "token [redacted] here"),
        ('{"access_token": "s3cret", "x": 1}', '{"access_token": "[redacted]", "x": 1}'),
        ("line one\n   line two", "line one line two"),
        ("x" * 600, "x" * 499 + "\u2026"),
    ],
)
def test_scrub_error(raw, scrubbed):
    assert scrub_error(raw) == scrubbed


# ---------------------------------------------------------------------------- scoring
@pytest.mark.parametrize(
    "classes, texts, merged",
    [
        ([], [PASS, SCRATCH, CRACK, SCRATCH], ["Crack", "Scratch"]),
        (["Scratch"], ["Status: Defect - crack seen", "Status: Defect - Burr"], ["Burr", "crack", "Scratch"]),
        (["Crack"], ["Status: Defect - CRACK", "Status: Pass", "", "Defect everywhere"], ["Crack"]),
        (["b", "A"], [], ["A", "b"]),
    ],
)
def test_merge_defect_classes(classes, texts, merged):
    before = list(classes)
    assert merge_defect_classes(classes, texts) == merged
    assert classes == before, "the input list is not changed"


def test_score_answers_grows_classes_from_answered_requests_only():
    examples = [example(PASS), example(CRACK)]
    answers = [answer("Status: Defect - Dent on the rim"), answer("", failed=True, error="boom")]
    results, classes = score_answers(examples, answers, ["Crack"])
    assert classes == ["Crack", "Dent"]
    assert results[0]._replace(latency_ms=0) == R.Result(
        image_uri="gs://b/x.png",
        expected=PASS,
        predicted="Status: Defect - Dent on the rim",
        expected_class="Pass",
        predicted_class="Dent",
        status_correct=False,
        type_correct=False,
        exact_match=False,
        latency_ms=0,
        error="",
        predicted_status="Defect",
        failed=False,
    )
    assert (results[1].predicted_class, results[1].error, results[1].failed) == ("Unparseable", "boom", True)


@pytest.mark.parametrize(
    "pairs, figures",
    [
        # status, type, exact, miss, overkill, unparseable, error, defects, passes
        (
            [(PASS, PASS), (SCRATCH, SCRATCH), (CRACK, "Status: Defect - Scratch"), (CRACK, "Status: Pass")],
            (0.75, 0.5, 0.5, 1 / 3, 0.0, 0.0, 0.0, 3, 1),
        ),
        (
            [(PASS, "Status: Defect - Crack"), (PASS, "Status: Pass."), (PASS, None)],
            (1 / 3, 1 / 3, 0.0, 0.0, 1 / 3, 1 / 3, 1 / 3, 0, 3),
        ),
        (
            [(SCRATCH, "Status: Defect - scratch and crack"), (CRACK, "who knows")],
            (0.5, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 2, 0),
        ),
    ],
    ids=["mixed", "only-good-parts", "only-defects"],
)
def test_summarize_results(pairs, figures):
    assert tuple(summarize_results(scored(pairs))) == pytest.approx(figures)


@pytest.mark.parametrize(
    "value, denominator, shown",
    [
        (0.5, 1, "50.0%"),
        (1 / 3, 3, "33.3%"),
        (0.0, 0, "n/a"),
        (0.0, 5, "0.0%"),
        (1.0, 1, "100.0%"),
    ],
)
def test_format_rate(value, denominator, shown):
    assert format_rate(value, denominator) == shown


def test_metric_values_names_and_rounding():
    tuned = summarize_results(scored([(PASS, PASS), (CRACK, "Status: Pass"), (CRACK, CRACK)]))
    figures = metric_values(tuned, None, 3)
    assert figures == {
        "eval_status_accuracy": 0.666667,
        "eval_defect_type_accuracy": 0.666667,
        "eval_exact_match": 0.666667,
        "eval_miss_rate": 0.5,
        "eval_overkill_rate": 0.0,
        "eval_unparseable_rate": 0.0,
        "eval_error_rate": 0.0,
        "eval_examples": 3.0,
    }
    base = summarize_results(scored([(PASS, None), (CRACK, None), (CRACK, CRACK)]))
    with_base = metric_values(tuned, base, 3)
    assert with_base == {
        **figures,
        "base_eval_status_accuracy": 0.333333,
        "base_eval_defect_type_accuracy": 0.333333,
        "eval_status_accuracy_gain": 0.333333,
    }


@pytest.mark.parametrize(
    "model, sent",
    [
        ("gemini-3.5-flash", {"thinking_level": "LOW"}),
        ("gemini-2.5-pro", {"thinking_budget": 128}),
        ("publishers/google/models/Gemini-2.5-PRO", {"thinking_budget": 128}),
    ],
)
def test_base_thinking_is_the_least_the_model_allows(model, sent):
    # The base model is asked with as little thinking as it allows (platform_facts/gemini.py).
    from platform_facts.gemini import thinking_config_for

    assert thinking_config_for(model, "least") == sent


def test_confusion_matrix_and_class_scores():
    results = scored(
        [
            (PASS, PASS),
            (PASS, "Status: Defect - Crack"),
            (CRACK, CRACK),
            (CRACK, "hm"),
            ("Status: Defect", "Status: Defect - Scratch"),
            (SCRATCH, SCRATCH),
        ]
    )
    categories, matrix = confusion_matrix(results, ["Crack", "Scratch"])
    # A defect label naming no type ("Defect") comes after the known types; Unparseable last.
    assert categories == ["Pass", "Crack", "Scratch", "Defect", "Unparseable"]
    assert matrix == [[1, 1, 0, 0, 0], [0, 1, 0, 0, 1], [0, 0, 1, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0]]
    scores = {s.name: s for s in class_scores(categories, matrix)}
    assert list(scores) == categories[:-1]
    assert scores["Pass"] == R.ClassScore("Pass", 1.0, 0.5, 2, 1)
    assert scores["Crack"] == R.ClassScore("Crack", 0.5, 0.5, 2, 2)
    assert scores["Scratch"] == R.ClassScore("Scratch", 0.5, 1.0, 1, 2)
    assert scores["Defect"] == R.ClassScore("Defect", None, 0.0, 1, 0)  # never predicted: no precision


def test_class_scores_without_support_have_no_recall():
    assert class_scores(["Pass", "Crack", "Unparseable"], [[2, 0, 1], [0, 0, 0], [0, 0, 0]]) == [
        R.ClassScore("Pass", 1.0, 2 / 3, 3, 2),
        R.ClassScore("Crack", None, None, 0, 0),
    ]


@pytest.mark.parametrize(
    "with_base, requested, ending",
    [
        (True, True, ", base status accuracy 0.500"),
        (False, True, ", base model unavailable"),
        (False, False, ", failed requests 1"),
    ],
)
def test_summary_line(with_base, requested, ending):
    tuned = summarize_results(scored([(PASS, PASS), (CRACK, None)]))
    line = summary_line(tuned, tuned if with_base else None, 2, 1, requested)
    assert line.startswith(
        "evaluate_inspector: 2 examples, status accuracy 0.500, defect-type accuracy 0.500, "
        "miss rate 0.000, overkill rate 0.000, unparseable 0.500, failed requests 1"
    )
    assert line.endswith(ending)


# ---------------------------------------------------------------------------- the report
NASTY = '<b>&"\'$x'  # HTML metacharacters, and a "$" that string.Template must leave alone
NASTY_ESCAPED = "&lt;b&gt;&amp;&quot;&#x27;$x"


def test_fill_template_escapes_values_and_inserts_markup_as_is():
    assert fill_template("<p>$a</p>$b", a=NASTY, markup={"b": "<br>"}) == f"<p>{NASTY_ESCAPED}</p><br>"
    with pytest.raises(KeyError):
        fill_template("$missing")


@pytest.mark.parametrize("name", sorted(report_templates()))
def test_templates_are_valid(name):
    from string import Template

    assert Template(report_templates()[name]).is_valid(), name


def report(
    pairs=((PASS, PASS), (CRACK, "Status: Defect - Scratch"), (SCRATCH, None), (CRACK, "Status: Pass")),
    base=False,
    base_requested=False,
    **overrides,
):
    results = scored(list(pairs))
    tuned = summarize_results(results)
    categories, matrix = confusion_matrix(results, ["Crack", "Scratch"])
    args = {
        "tuned_endpoint": "projects/p/locations/l/endpoints/1",
        "test_jsonl_uri": SOURCE,
        "classes": ["Crack", "Scratch"],
        "results": results,
        "tuned": tuned,
        "failed": sum(r.failed for r in results),
        "base": tuned if base else None,
        "base_model": "gemini-3.5-flash",
        "base_note": "",
        "base_requested": base_requested,
        "categories": categories,
        "matrix": matrix,
        "thumbs": {"gs://b/0.png": "data:image/png;base64,AAAA"},
    }
    return render_report(**{**args, **overrides})


def test_report_sections_and_figures():
    page = report()
    headings = re.findall(r"<h[12]>(.*?)</h[12]>", page)
    assert headings == [
        "Visual defect inspector: evaluation",
        "Base model vs tuned",
        "Per class",
        "Confusion matrix",
        "Examples (mistakes first)",
    ]
    cards = re.findall(r'<div class="v">(.*?)</div><div class="k">(.*?)</div>', page)
    assert cards == [
        ("50.0%", "Status accuracy"),
        ("25.0%", "Defect-type accuracy"),
        ("33.3%", "Miss rate"),
        ("0.0%", "Overkill rate"),
        ("25.0%", "Exact match"),
        ("25.0%", "Unparseable"),
        ("4", "Examples"),
    ]
    assert "1 failed requests" in page and "4 examples; defect types: Crack, Scratch" in page
    assert "Base model comparison was not requested." in page
    assert "1 answer(s) named no clear class (Unparseable)." in page
    assert page.count('<img class="thumb"') == 1 and page.count("no image") == 3
    assert "<i>(no answer)</i>" in page and '<div class="err">boom</div>' in page
    # Mistakes first (wrong status, then wrong type), numbered in test order.
    assert re.findall(r"<tr><td>(\d+)</td><td>", page) == ["3", "4", "2", "1"]
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</body></html>")
    assert "$" not in page


def test_a_large_test_set_shows_its_mistakes_first_and_counts_the_rest():
    """The report shows at most 200 examples (mistakes first); the CSV has every one."""
    pairs = [(LABELS["Crack"], LABELS["Crack"])] * 300 + [(LABELS["Crack"], PASS), (PASS, LABELS["Scratch"])]
    results = scored(pairs)
    assert shown_examples(results)[:2] == [300, 301] and len(shown_examples(results)) == 200
    assert shown_examples(results, limit=3) == [300, 301, 0]
    page = report(pairs=pairs)
    assert re.findall(r"<tr><td>(\d+)</td><td>", page)[:3] == ["301", "302", "1"]
    assert len(re.findall(r"<tr><td>(\d+)</td><td>", page)) == 200
    assert "102 more example(s) in the predictions CSV (shown: the first 200, mistakes first)" in page


@pytest.mark.parametrize(
    "base, requested, note, shown",
    [
        (True, True, "", "Status accuracy gain from tuning: <b>+0.0 points</b>."),
        (
            True,
            True,
            "",
            "<tr><td>Base gemini-3.5-flash</td><td>50.0%</td><td>25.0%</td><td>33.3%</td><td>0.0%</td></tr>",
        ),
        (
            False,
            True,
            "Base model x was unavailable: 404 <NOT_FOUND>",
            '<p class="warn">Base model x was unavailable: 404 &lt;NOT_FOUND&gt;</p>',
        ),
        (False, False, "", "<p>Base model comparison was not requested.</p>"),
    ],
)
def test_report_base_section(base, requested, note, shown):
    assert shown in report(base=base, base_requested=requested, base_note=note)


@pytest.mark.parametrize(
    "pairs, miss, overkill",
    [
        ([(PASS, PASS)], "n/a", "0.0%"),
        ([(CRACK, "Status: Pass")], "100.0%", "n/a"),
    ],
)
def test_report_shows_na_for_rates_without_denominator(pairs, miss, overkill):
    cards = {
        name: value
        for value, name in re.findall(r'<div class="v">(.*?)</div><div class="k">(.*?)</div>', report(pairs=pairs))
    }
    assert (cards["Miss rate"], cards["Overkill rate"]) == (miss, overkill)


def test_report_escapes_every_data_value():
    results = scored(
        [(f"Status: Defect - Burr {NASTY}", f"Status: Defect - Burr {NASTY}"), (PASS, NASTY)], classes=["Burr"]
    )
    results = [r._replace(image_uri=f"gs://b/{NASTY}.png", error=NASTY) for r in results]
    tuned = summarize_results(results)
    categories, matrix = confusion_matrix(results, [NASTY])  # a class name, too
    page = render_report(
        tuned_endpoint=NASTY,
        test_jsonl_uri=NASTY,
        classes=[NASTY],
        results=results,
        tuned=tuned,
        failed=0,
        base=tuned,
        base_model=NASTY,
        base_note=NASTY,
        base_requested=True,
        categories=categories,
        matrix=matrix,
        thumbs={f"gs://b/{NASTY}.png": "data:image/png;base64,A"},
    )
    assert "<b>&" not in page and '"\'' not in page
    # endpoint, test set, defect types, base model row; confusion header and row, class row;
    # first example: uri, alt, expected, answer, error; second: uri, alt, answer, error.
    assert page.count(NASTY_ESCAPED) == 4 + 3 + 5 + 4
