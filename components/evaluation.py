"""The pure logic of the evaluate_inspector component: parsing, scoring, metrics, the report.

Nothing here does I/O. KFP copies a component's helpers into it as *functions* only
(``additional_funcs``: a class or a module constant is not copied), so every function is
self-contained (imports inside), the record types come from a function
(``evaluation_records``), and so do the report's templates (``report_templates``).
``EVALUATION_FUNCS`` lists every function for the decorator; tests and plain Python import
them directly.
"""

from components.labels import defect_type_of, is_pass_answer, judge_answer


# ---------------------------------------------------------------------------- records
def evaluation_records():
    """The evaluation's record types (NamedTuples), built once per process.

    - ``Example``: one test line. ``line`` (1-based), ``prompt`` (the turns sent, as
      google-genai ``Content``), ``system`` (a ``Content`` or None), ``expected`` (the
      label), ``image_uri`` (the image shown in the report and the CSV) and ``inline``
      (base64 data of an inline image, else None).
    - ``Answer``: one request. ``text`` ("" when none), ``error`` ("" when none),
      ``latency_ms``, ``failed`` (the request raised; an empty answer is not a failure).
    - ``Result``: one scored example; its fields are the predictions CSV's columns
      (``prediction_columns``) and ``failed``.
    - ``Summary``: the headline figures of one model over all examples; ``defects`` and
      ``passes`` are the denominators of the miss and overkill rates.
    - ``ClassScore``: one class of the confusion matrix; ``precision``/``recall`` are None
      where their denominator is zero.
    """
    # A class cannot be shipped through additional_funcs, so the types are made here and
    # kept on the function: every caller in the process shares the same classes.
    cached = getattr(evaluation_records, "cached", None)
    if cached is not None:
        return cached
    from types import SimpleNamespace
    from typing import NamedTuple

    class Example(NamedTuple):
        line: int
        prompt: list
        system: object
        expected: str
        image_uri: str
        inline: str | None

    class Answer(NamedTuple):
        text: str
        error: str
        latency_ms: float
        failed: bool

    class Result(NamedTuple):
        image_uri: str
        expected: str
        predicted: str
        expected_class: str
        predicted_class: str
        status_correct: bool
        type_correct: bool
        exact_match: bool
        latency_ms: float
        error: str
        predicted_status: str
        failed: bool

    class Summary(NamedTuple):
        status_accuracy: float
        defect_type_accuracy: float
        exact_match: float
        miss_rate: float
        overkill_rate: float
        unparseable_rate: float
        error_rate: float
        defects: int
        passes: int

    class ClassScore(NamedTuple):
        name: str
        precision: float | None
        recall: float | None
        support: int
        predicted: int

    evaluation_records.cached = SimpleNamespace(
        Example=Example, Answer=Answer, Result=Result, Summary=Summary, ClassScore=ClassScore
    )
    return evaluation_records.cached


def prediction_columns():
    """The predictions CSV's columns, in order (each one a ``Result`` field)."""
    return [
        "image_uri",
        "expected",
        "predicted",
        "expected_class",
        "predicted_class",
        "status_correct",
        "type_correct",
        "exact_match",
        "latency_ms",
        "error",
        "predicted_status",
    ]


# ---------------------------------------------------------------------------- parsing
def scrub_error(text, limit=500):
    """Error text for logs and reports: bearer tokens removed, whitespace collapsed, length bounded."""
    import re

    text = re.sub(r"(?i)(bearer\s+)[A-Za-z0-9\-._~+/]+=*", r"\1[redacted]", str(text))
    text = re.sub(r"ya29\.[A-Za-z0-9\-._~]+", "[redacted]", text)
    text = re.sub(r"(?i)(\"?access_token\"?\s*[:=]\s*\"?)[^\s\",}]+", r"\1[redacted]", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def sdk_field(mapping, camel, snake):
    """A field in camelCase or snake_case (google-genai 2.x writes either); None if absent."""
    if not isinstance(mapping, dict):
        return None
    return mapping.get(camel, mapping.get(snake))


def example_image(contents, number):
    """(image_uri, inline_base64) of the image an example is shown with.

    That is the last image of the last user turn before the final model turn: a
    ``fileData`` gives its URI and None; ``inlineData`` gives "inline image (line N)" and
    its base64 data; no image gives ("", None).
    """
    user_turns = [t for t in contents[:-1] if isinstance(t, dict) and t.get("role", "user") == "user"]
    for part in reversed((user_turns[-1].get("parts") or []) if user_turns else []):
        file_data = sdk_field(part, "fileData", "file_data")
        inline_data = sdk_field(part, "inlineData", "inline_data")
        if isinstance(file_data, dict):
            return str(sdk_field(file_data, "fileUri", "file_uri") or ""), None
        if isinstance(inline_data, dict):
            return f"inline image (line {number})", str(inline_data.get("data") or "")
    return "", None


def parse_test_line(line, number, source):
    """One Gemini SFT test line as an ``Example``: the request to send and the expected label.

    Every turn before the final model turn is the request; the final model turn's text is
    the label. Raises ValueError naming "<source> line <number>" for a line that is not
    JSON, has no final model turn with text, or holds a turn google-genai rejects.
    """
    import json

    from google.genai import types

    where = f"{source} line {number}"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: not valid JSON ({exc.msg})") from None
    contents = record.get("contents") if isinstance(record, dict) else None
    if not isinstance(contents, list) or len(contents) < 2:
        raise ValueError(f"{where}: 'contents' must hold a user turn and a final model turn")
    final = contents[-1]
    if not isinstance(final, dict) or final.get("role") != "model":
        raise ValueError(f"{where}: the last turn must be the model's expected answer")
    expected = "".join(p.get("text") or "" for p in final.get("parts") or [] if isinstance(p, dict))
    if not expected.strip():
        raise ValueError(f"{where}: the final model turn has no text label")
    try:
        prompt = [types.Content.model_validate(turn) for turn in contents[:-1]]
        system = sdk_field(record, "systemInstruction", "system_instruction")
        if isinstance(system, str):
            system = {"parts": [{"text": system}]}
        system = types.Content.model_validate(system) if system else None
    except Exception as exc:  # pydantic.ValidationError: a malformed turn
        raise ValueError(f"{where}: malformed contents: {scrub_error(exc, 300)}") from None
    image_uri, inline = example_image(contents, number)
    return evaluation_records().Example(number, prompt, system, expected, image_uri, inline)


def parse_test_jsonl(text, source, max_examples=0):
    """Every ``Example`` of a test JSONL text (blank lines skipped), or the first
    ``max_examples`` when it is positive. Raises ValueError when there is none."""
    examples = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        examples.append(parse_test_line(line, number, source))
        if max_examples and len(examples) >= max_examples:
            break
    if not examples:
        raise ValueError(f"{source} holds no test examples")
    return examples


# ---------------------------------------------------------------------------- scoring
def merge_defect_classes(classes, texts):
    """``classes`` plus the defect types that ``texts`` name, sorted case-insensitively.

    ``texts`` are labels, or answers naming a type the test labels lack but training had
    (so the confusion matrix has a column for it). The first spelling of a type is kept.
    """
    merged = list(classes)
    for text in texts:
        kind = None if is_pass_answer(text) else defect_type_of(text)
        if kind and kind.lower() not in [c.lower() for c in merged]:
            merged.append(kind)
    merged.sort(key=str.lower)
    return merged


def score_answers(examples, answers, classes):
    """Scores each answer against its example's label with ``judge_answer``.

    The defect types that answered (not failed) requests name are added to ``classes``
    first. Returns (results, classes): a ``Result`` per example, and the grown classes.
    """
    records = evaluation_records()
    classes = merge_defect_classes(classes, (a.text for a in answers if not a.failed))
    results = []
    for example, answer in zip(examples, answers, strict=True):
        verdict = judge_answer(example.expected, answer.text, classes)
        results.append(
            records.Result(
                image_uri=example.image_uri,
                expected=example.expected,
                predicted=answer.text,
                latency_ms=answer.latency_ms,
                error=answer.error,
                failed=answer.failed,
                **verdict,
            )
        )
    return results, classes


def share_of(flags):
    """The share of true values; 0.0 for none at all (the report shows that as "n/a")."""
    flags = list(flags)
    return sum(flags) / len(flags) if flags else 0.0


def summarize_results(results):
    """The ``Summary`` of a list of results.

    The miss rate is over defect images (answered "Status: Pass"), the overkill rate over
    good images (answered Defect); an empty denominator gives 0.0, and ``defects`` /
    ``passes`` tell the report to show "n/a".
    """
    defects = [r for r in results if r.expected_class != "Pass"]
    passes = [r for r in results if r.expected_class == "Pass"]
    return evaluation_records().Summary(
        status_accuracy=share_of(r.status_correct for r in results),
        defect_type_accuracy=share_of(r.type_correct for r in results),
        exact_match=share_of(r.exact_match for r in results),
        miss_rate=share_of(r.predicted_status == "Pass" for r in defects),
        overkill_rate=share_of(r.predicted_status == "Defect" for r in passes),
        unparseable_rate=share_of(r.predicted_class == "Unparseable" for r in results),
        error_rate=share_of(r.failed for r in results),
        defects=len(defects),
        passes=len(passes),
    )


def metric_values(tuned, base, total, prefix="eval_"):
    """The scalar metrics to log, rounded to 6 places: ``eval_*`` for the tuned model and,
    when ``base`` (a Summary) is not None, ``base_eval_*`` and the status accuracy gain.

    ``prefix`` replaces "eval_" so that two evaluations in one run log distinct names (Vertex
    AI Experiments merges every component's metrics): "golden_" gives ``golden_*``,
    ``base_golden_*`` and ``golden_status_accuracy_gain``.

    A rate whose denominator is zero is not logged (omitted, not 0.0 and not NaN, which
    Vertex AI's JSON cannot carry): the miss rate without defect images, the overkill rate
    without good ones. Readers show a missing rate as "n/a"."""
    figures = {
        f"{prefix}status_accuracy": tuned.status_accuracy,
        f"{prefix}defect_type_accuracy": tuned.defect_type_accuracy,
        f"{prefix}exact_match": tuned.exact_match,
        f"{prefix}miss_rate": tuned.miss_rate,
        f"{prefix}overkill_rate": tuned.overkill_rate,
        f"{prefix}unparseable_rate": tuned.unparseable_rate,
        f"{prefix}error_rate": tuned.error_rate,
        f"{prefix}examples": float(total),
    }
    if not tuned.defects:
        del figures[f"{prefix}miss_rate"]
    if not tuned.passes:
        del figures[f"{prefix}overkill_rate"]
    if base is not None:
        figures[f"base_{prefix}status_accuracy"] = base.status_accuracy
        figures[f"base_{prefix}defect_type_accuracy"] = base.defect_type_accuracy
        figures[f"{prefix}status_accuracy_gain"] = tuned.status_accuracy - base.status_accuracy
    return {k: round(float(v), 6) for k, v in figures.items()}


def confusion_matrix(results, classes):
    """(categories, matrix): categories are ["Pass", *classes, <other expected classes>,
    "Unparseable"]; ``matrix[i][j]`` counts results expected ``categories[i]`` and
    predicted ``categories[j]``.

    "Other expected classes" are the ones ``classes`` lacks, such as "Defect" for a label
    that names no type.
    """
    extra = sorted({r.expected_class for r in results} - {"Pass"} - set(classes), key=str.lower)
    categories = ["Pass"] + list(classes) + extra + ["Unparseable"]
    index = {c: i for i, c in enumerate(categories)}
    matrix = [[0] * len(categories) for _ in categories]
    for r in results:
        matrix[index[r.expected_class]][index[r.predicted_class]] += 1
    return categories, matrix


def class_scores(categories, matrix):
    """A ``ClassScore`` per category but the last ("Unparseable", which no label has)."""
    records = evaluation_records()
    scores = []
    for i, name in enumerate(categories[:-1]):
        support = sum(matrix[i])
        predicted = sum(row[i] for row in matrix)
        scores.append(
            records.ClassScore(
                name=name,
                precision=matrix[i][i] / predicted if predicted else None,
                recall=matrix[i][i] / support if support else None,
                support=support,
                predicted=predicted,
            )
        )
    return scores


def summary_line(tuned, base, total, failed, base_requested):
    """The component's one-line result for the log (the elapsed time is added by the caller)."""
    miss = f"{tuned.miss_rate:.3f}" if tuned.defects else "n/a (no defect images)"
    overkill = f"{tuned.overkill_rate:.3f}" if tuned.passes else "n/a (no good images)"
    line = (
        f"evaluate_inspector: {total} examples, status accuracy {tuned.status_accuracy:.3f}, "
        f"defect-type accuracy {tuned.defect_type_accuracy:.3f}, miss rate {miss}, "
        f"overkill rate {overkill}, unparseable {tuned.unparseable_rate:.3f}, "
        f"failed requests {failed}"
    )
    if base is not None:
        line += f", base status accuracy {base.status_accuracy:.3f}"
    elif base_requested:
        line += ", base model unavailable"
    return line


# ---------------------------------------------------------------------------- the report
def report_styles():
    """The report's style sheet (inside the page: the report is one self-contained file)."""
    return """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:22px}
h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid #ddd;border-radius:8px;padding:10px 14px;min-width:140px}
.card .v{font-size:24px;font-weight:600}
.card .k{font-weight:600}
.card .s{color:#666;font-size:12px}
table{border-collapse:collapse;margin:8px 0}
td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top;font-size:13px}
th{background:#f4f4f4}
.cm td{text-align:center;min-width:48px}
.diag{background:#d8f0d8;font-weight:600}
.off{background:#f8d7d7}
.ok{color:#1a7f37;font-weight:700;font-size:16px}
.bad{color:#c62828;font-weight:700;font-size:16px}
.partial{color:#b26a00;font-weight:700}
.thumb{width:160px;height:auto;image-rendering:pixelated;border:1px solid #ccc;cursor:zoom-in}
.uri{color:#888;font-size:11px;max-width:220px;word-break:break-all}
.err{color:#c62828;font-size:12px}
.warn{color:#b26a00}
.noimg{color:#999}
.meta{color:#555;font-size:13px}
"""


def report_templates():
    """The HTML report's ``string.Template`` texts: "page" and the fragments it is made of.

    Fill them with ``fill_template``, which HTML-escapes every value; only fragments
    rendered from these templates are inserted as markup.
    """
    return {
        "page": """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>Inspector evaluation</title>
<style>
$styles</style></head><body>
<h1>Visual defect inspector: evaluation</h1>
$run_section
<p class="meta">Tuned endpoint <code>$tuned_endpoint</code><br>Test set <code>$test_jsonl_uri</code> \
($total examples; defect types: $classes)<br>Rule: a good part must be answered exactly \
\u201cStatus: Pass\u201d; a defective part must be called Defect, and the defect type counts \
only when it is the one expected.</p>
<div class="cards">$cards</div>
<h2>Base model vs tuned</h2>
$base_section
<h2>Per class</h2>
$class_section
<h2>Confusion matrix</h2>
$confusion_section
<h2>Examples (mistakes first)</h2>
$examples_section
</body></html>""",
        "run_table": """<table class="run"><tr><th>Run</th><td>$run_id</td></tr>
<tr><th>Date</th><td>$date</td></tr><tr><th>Data source</th><td>$data_source</td></tr>
<tr><th>Predictions</th><td><a href="$predictions_href">$predictions_name</a> (every example, CSV)</td></tr>
<tr><th>Parameters</th><td>$parameters</td></tr></table>""",
        "parameter": "<code>$name</code>=<code>$value</code> ",
        "card": '<div class="card"><div class="v">$value</div><div class="k">$name</div>'
        '<div class="s">$note</div></div>',
        "base_table": """<table><tr><th></th><th>Status accuracy</th><th>Defect-type accuracy</th>\
<th>Miss rate</th><th>Overkill rate</th></tr>
$rows
</table>
<p>Status accuracy gain from tuning: <b>$gain points</b>.</p>""",
        "base_row": "<tr><td>$model</td><td>$status_accuracy</td><td>$defect_type_accuracy</td>"
        "<td>$miss_rate</td><td>$overkill_rate</td></tr>",
        "base_unavailable": '<p class="warn">$note</p>',
        "base_not_requested": "<p>Base model comparison was not requested.</p>",
        "class_table": """<table><tr><th>Class</th><th>Precision</th><th>Recall</th><th>Support</th>\
<th>Predicted</th></tr>
$rows
</table>
<p>$unparseable answer(s) named no clear class (Unparseable).</p>""",
        "class_row": "<tr><td>$name</td><td>$precision</td><td>$recall</td><td>$support</td><td>$predicted</td></tr>",
        "confusion_table": """<table class="cm"><tr><th>expected \u2193 / predicted \u2192</th>$head</tr>
$rows
</table>""",
        "confusion_head": "<th>$name</th>",
        "confusion_row": "<tr><th>$name</th>$cells</tr>",
        "cell_diagonal": '<td class="diag">$count</td>',
        "cell_off_diagonal": '<td class="off">$count</td>',
        "cell_empty": "<td>$count</td>",
        "examples_table": """<table><tr><th>#</th><th>Image</th><th>Expected</th><th>Predicted</th>\
<th>Class</th><th>Verdict</th><th>ms</th></tr>
$rows
</table>""",
        "example_row": '<tr><td>$number</td><td>$image<div class="uri">$uri</div></td><td>$expected</td>'
        "<td>$answer$error</td><td>$predicted_class</td><td>$verdict</td><td>$ms</td></tr>",
        "examples_more": '<tr><td colspan="7">$more more example(s) in the predictions CSV (shown: the first $shown, '
        "mistakes first)</td></tr>",
        "thumbnail": '<a href="$full" target="_blank" title="full size"><img class="thumb" src="$src" alt="$uri"></a>',
        "no_thumbnail": '<span class="noimg">no image</span>',
        "answer": "$text",
        "no_answer": "<i>(no answer)</i>",
        "error": '<div class="err">$text</div>',
        "verdict_right": '<span class="ok">\u2713</span>',
        "verdict_type_wrong": '<span class="partial">\u2717 type</span>',
        "verdict_wrong": '<span class="bad">\u2717</span>',
    }


def fill_template(template, markup=None, **values):
    """``template`` (string.Template text) filled with ``values``, each HTML-escaped, and
    ``markup``: fragments already rendered from report_templates, inserted as they are."""
    import html
    from string import Template

    fields = {name: html.escape(str(value)) for name, value in values.items()}
    fields.update(markup or {})
    return Template(template).substitute(fields)


def format_rate(value, denominator=1):
    """A rate as a percentage with one decimal, or "n/a" when its denominator is zero."""
    return "n/a" if not denominator else f"{100.0 * value:.1f}%"


def render_cards(tuned, total, failed):
    """The headline figures, one card each."""
    t = report_templates()
    cards = [
        ("Status accuracy", format_rate(tuned.status_accuracy), "Pass/Defect call right"),
        ("Defect-type accuracy", format_rate(tuned.defect_type_accuracy), "Pass or the exact defect type right"),
        (
            "Miss rate",
            format_rate(tuned.miss_rate, tuned.defects),
            f"defective parts passed ({tuned.defects} defective)",
        ),
        ("Overkill rate", format_rate(tuned.overkill_rate, tuned.passes), f"good parts rejected ({tuned.passes} good)"),
        ("Exact match", format_rate(tuned.exact_match), "answer identical to the label"),
        ("Unparseable", format_rate(tuned.unparseable_rate), "no clear Pass or single defect type"),
        ("Examples", str(total), f"{failed} failed requests"),
    ]
    return "".join(fill_template(t["card"], name=name, value=value, note=note) for name, value, note in cards)


def render_base_section(tuned, base, base_model, base_note, base_requested):
    """Base model vs tuned: a table and the gain, or why there is no comparison."""
    t = report_templates()
    if base is None:
        if base_requested:
            return fill_template(t["base_unavailable"], note=base_note)
        return fill_template(t["base_not_requested"])
    rows = [
        fill_template(
            t["base_row"],
            model=model,
            status_accuracy=format_rate(s.status_accuracy),
            defect_type_accuracy=format_rate(s.defect_type_accuracy),
            miss_rate=format_rate(s.miss_rate, s.defects),
            overkill_rate=format_rate(s.overkill_rate, s.passes),
        )
        for model, s in ((f"Base {base_model}", base), ("Tuned", tuned))
    ]
    gain = tuned.status_accuracy - base.status_accuracy
    return fill_template(t["base_table"], markup={"rows": "\n".join(rows)}, gain=f"{gain * 100:+.1f}")


def render_class_section(categories, matrix):
    """Per-class precision, recall, support and predicted count, then the Unparseable count."""
    t = report_templates()

    def two_places(value):
        return "n/a" if value is None else f"{value:.2f}"

    rows = [
        fill_template(
            t["class_row"],
            name=s.name,
            precision=two_places(s.precision),
            recall=two_places(s.recall),
            support=s.support,
            predicted=s.predicted,
        )
        for s in class_scores(categories, matrix)
    ]
    unparseable = sum(row[-1] for row in matrix)  # "Unparseable" is the last category
    return fill_template(t["class_table"], markup={"rows": "\n".join(rows)}, unparseable=unparseable)


def render_confusion_section(categories, matrix):
    """The confusion matrix: right answers green on the diagonal, mistakes red."""
    t = report_templates()

    def cell(i, j, count):
        if i == j and count:
            return fill_template(t["cell_diagonal"], count=count)
        return fill_template(t["cell_off_diagonal"] if count else t["cell_empty"], count=count)

    head = "".join(fill_template(t["confusion_head"], name=c) for c in categories)
    rows = [
        fill_template(
            t["confusion_row"], name=c, markup={"cells": "".join(cell(i, j, n) for j, n in enumerate(matrix[i]))}
        )
        for i, c in enumerate(categories)
    ]
    return fill_template(t["confusion_table"], markup={"head": head, "rows": "\n".join(rows)})


def thumbnail_uris(image, size=160, full_max=2048):
    """(thumbnail, full-size image) of a PIL image as PNG data URIs for the report: the
    thumbnail at most ``size`` px a side (160 px shows a 1 px scratch), the full image as it
    is up to ``full_max`` px a side (a click on the thumbnail opens it)."""
    import base64
    import io

    def data_uri(picture):
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")

    full = image.copy()
    full.thumbnail((full_max, full_max))
    small = image.copy()
    small.thumbnail((size, size))
    return data_uri(small), data_uri(full)


def render_example_row(number, result, thumb):
    """One example: its number, thumbnail (``thumb``: a data URI, a (thumbnail, full image)
    pair of data URIs from ``thumbnail_uris``, or ""), label, answer, class, verdict and
    latency. A click on the thumbnail opens the full image."""
    t = report_templates()
    small, full = (thumb, thumb) if isinstance(thumb, str) else tuple(thumb)
    image = (
        fill_template(t["thumbnail"], src=small, full=full, uri=result.image_uri)
        if small
        else fill_template(t["no_thumbnail"])
    )
    if result.type_correct:
        verdict = t["verdict_right"]
    elif result.status_correct:
        verdict = t["verdict_type_wrong"]
    else:
        verdict = t["verdict_wrong"]
    answer = fill_template(t["answer"], text=result.predicted) if result.predicted else fill_template(t["no_answer"])
    error = fill_template(t["error"], text=result.error) if result.error else ""
    return fill_template(
        t["example_row"],
        number=number,
        uri=result.image_uri,
        expected=result.expected,
        predicted_class=result.predicted_class,
        ms=f"{result.latency_ms:.0f}",
        markup={"image": image, "answer": answer, "error": error, "verdict": fill_template(verdict)},
    )


def shown_examples(results, limit=200):
    """Indices of the examples the report shows: mistakes first (wrong status, then wrong
    type), then test order, at most ``limit`` (a report of 100k thumbnails would not open;
    the predictions CSV holds every example)."""
    ordered = sorted(range(len(results)), key=lambda i: (results[i].type_correct, results[i].status_correct, i))
    return ordered[:limit]


def render_examples_section(results, thumbs):
    """The ``shown_examples``, numbered in test order, and how many more the CSV holds.

    ``thumbs`` maps an image URI to its thumbnail's data URI ("" or absent: no image).
    """
    t = report_templates()
    shown = shown_examples(results)
    rows = [render_example_row(i + 1, results[i], thumbs.get(results[i].image_uri, "")) for i in shown]
    if len(shown) < len(results):
        rows.append(fill_template(t["examples_more"], shown=len(shown), more=len(results) - len(shown)))
    return fill_template(t["examples_table"], markup={"rows": "\n".join(rows)})


def predictions_href(uri):
    """Where the report links the predictions CSV: the Cloud Storage console's object URL for
    ``gs://`` (authenticated download), else "predictions.csv" beside the report (the offline
    run folder holds both)."""
    from urllib.parse import quote

    if (uri or "").startswith("gs://"):
        bucket, _, name = uri[len("gs://") :].partition("/")
        return f"https://storage.cloud.google.com/{quote(bucket)}/{quote(name)}"
    return "predictions.csv"


def render_run_section(run_info):
    """The run's identity for the report's head: run id, date, data source, the predictions
    CSV's link and the parameters; every value HTML-escaped. ``run_info`` may lack keys."""
    from datetime import UTC, datetime

    t = report_templates()
    info = dict(run_info or {})
    parameters = info.get("parameters") or {}
    href = info.get("predictions_href") or predictions_href(info.get("predictions_uri", ""))
    return fill_template(
        t["run_table"],
        run_id=info.get("run_id") or "n/a",
        date=info.get("date") or datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        data_source=info.get("data_source") or "synthesized images",
        predictions_href=href,
        predictions_name=href.rsplit("/", 1)[-1],
        markup={
            "parameters": "".join(fill_template(t["parameter"], name=k, value=v) for k, v in sorted(parameters.items()))
            or "n/a"
        },
    )


def render_report(
    *,
    tuned_endpoint,
    test_jsonl_uri,
    classes,
    results,
    tuned,
    failed,
    base,
    base_model,
    base_note,
    base_requested,
    categories,
    matrix,
    thumbs,
    run_info=None,
):
    """The self-contained HTML report for a QC lead.

    Args:
        tuned_endpoint, test_jsonl_uri: what was evaluated, on what.
        classes: the defect types in play.
        results, tuned, failed: the tuned model's ``Result`` list, its ``Summary`` and the
            number of its requests that failed.
        base, base_model, base_note, base_requested: the base model's ``Summary`` (None
            when there is none), its name, the note saying what happened, and whether a
            comparison was asked for.
        categories, matrix: the confusion matrix (``confusion_matrix``).
        thumbs: image URI -> thumbnail data URI, or (thumbnail, full image) data URIs.
        run_info: {"run_id", "date", "data_source", "parameters" (dict), "predictions_uri"
            or "predictions_href"} for the report's head (``render_run_section``).
    """
    return fill_template(
        report_templates()["page"],
        tuned_endpoint=tuned_endpoint,
        test_jsonl_uri=test_jsonl_uri,
        total=len(results),
        classes=", ".join(classes) or "none",
        markup={
            "styles": report_styles(),
            "run_section": render_run_section(run_info),
            "cards": render_cards(tuned, len(results), failed),
            "base_section": render_base_section(tuned, base, base_model, base_note, base_requested),
            "class_section": render_class_section(categories, matrix),
            "confusion_section": render_confusion_section(categories, matrix),
            "examples_section": render_examples_section(results, thumbs),
        },
    )
