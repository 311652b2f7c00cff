"""KFP component: evaluate the tuned inspector on the held-out test JSONL.

Asks the tuned endpoint (and, optionally, the base Gemini model) about every test image,
scores each answer with ``judge_answer``, and writes scalar metrics, a confusion matrix, a
self-contained HTML report and a predictions CSV.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, ClassificationMetrics, Dataset, Metrics, Output

from components.helpers import (answer_status, defect_type_of, genai_client, is_pass_answer, judge_answer,
                                parse_gcs_uri)
from components.packages import BASE_IMAGE, EVAL_PACKAGES


@dsl.component(
    base_image=BASE_IMAGE,
    packages_to_install=EVAL_PACKAGES,
    install_kfp_package=False,
    additional_funcs=[genai_client, judge_answer, answer_status, is_pass_answer, defect_type_of, parse_gcs_uri],
)
def evaluate_inspector(
    project: str,
    location: str,
    tuned_endpoint: str,
    test_jsonl_uri: str,
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    report: Output[HTML],
    predictions: Output[Dataset],
    base_model: str = "gemini-2.5-flash",
    evaluate_base_model: bool = False,
    concurrency: int = 4,
    max_examples: int = 0,
    max_output_tokens: int = 256,
    thinking_budget: int = 0,
) -> NamedTuple("Outputs", [("status_accuracy", float), ("defect_type_accuracy", float)]):
    """Evaluates the tuned inspector on every test example and reports the results.

    Each test line is a Gemini SFT example (``contents`` ending in the model turn that holds
    the expected label, optional ``systemInstruction``). Every turn before the final model
    turn is sent to ``tuned_endpoint`` with temperature 0 and thinking budget 0 (tuned
    thinking models need it), ``concurrency`` requests at a time. A request that still fails
    after the client's retries is recorded as an empty (Unparseable) answer with its error;
    the component fails only when every request fails. Answers are scored with
    ``judge_answer`` against the defect types found in the test labels, so custom classes
    ("Dent", "Burr") work.

    Scalar metrics (distinct names, so Vertex AI Experiments can compare runs):
    ``eval_status_accuracy``, ``eval_defect_type_accuracy`` (the whole class, Pass or the
    defect type, is right), ``eval_exact_match``, ``eval_miss_rate`` (defect images
    answered "Status: Pass" / defect images), ``eval_overkill_rate`` (good images answered
    Defect / good images), ``eval_unparseable_rate``, ``eval_error_rate`` (requests that
    failed), ``eval_examples``; with ``evaluate_base_model`` and a reachable base model also
    ``base_eval_status_accuracy``, ``base_eval_defect_type_accuracy`` and
    ``eval_status_accuracy_gain`` (tuned minus base). A rate whose denominator is zero is
    logged as 0.0 and shown as "n/a" in the report.

    Args:
        project: Google Cloud project of the Vertex AI endpoint and the bucket.
        location: Vertex AI region, e.g. "us-central1".
        tuned_endpoint: the tuned model's endpoint,
            "projects/P/locations/L/endpoints/ID".
        test_jsonl_uri: "gs://bucket/path/test.jsonl" in Gemini SFT format.
        metrics: output scalar metrics (also written as JSON at ``metrics.path`` so that
            KFP caching finds a file).
        classification_metrics: output confusion matrix over
            ["Pass", <defect types sorted>, "Unparseable"] (rows expected, columns
            predicted).
        report: output self-contained HTML report for a QC lead: headline figures,
            per-class precision/recall, confusion matrix and every example with a
            thumbnail.
        predictions: output CSV, one row per example: image_uri, expected, predicted,
            expected_class, predicted_class, status_correct, type_correct, exact_match,
            latency_ms, error, predicted_status.
        base_model: the untuned Gemini model to compare with, e.g. "gemini-2.5-flash".
        evaluate_base_model: also ask ``base_model`` the same questions. If it cannot be
            reached (locally there is no Gemini: 404), the report says so, the base
            metrics are skipped and the component still succeeds.
        concurrency: how many requests are in flight at once (at least 1).
        max_examples: evaluate only the first N test lines; 0 evaluates all of them.
        max_output_tokens: the answer length limit per request.
        thinking_budget: thinking budget sent to the tuned endpoint. 0 (the default)
            turns thinking off, as advised for tuned thinking models; a model that cannot
            turn it off (Gemini 2.5 Pro: at least 128) needs a positive value; a negative
            value sends no thinking config at all.

    Returns:
        status_accuracy: share of examples whose Pass/Defect status is right.
        defect_type_accuracy: share of examples whose class (Pass or defect type) is right.
    """
    import base64
    import csv
    import html
    import io
    import json
    import logging
    import os
    import re
    import time
    from collections import namedtuple
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from google.cloud import storage
    from google.genai import types

    started = time.monotonic()
    concurrency = max(1, int(concurrency))

    def scrub(text, limit=500):
        """Error text for logs and reports: bearer tokens removed, length bounded."""
        text = re.sub(r"(?i)(bearer\s+)[A-Za-z0-9\-._~+/]+=*", r"\1[redacted]", str(text))
        text = re.sub(r"ya29\.[A-Za-z0-9\-._~]+", "[redacted]", text)
        text = re.sub(r"(?i)(\"?access_token\"?\s*[:=]\s*\"?)[^\s\",}]+", r"\1[redacted]", text)
        text = " ".join(text.split())
        return text if len(text) <= limit else text[: limit - 1] + "\u2026"

    def get(mapping, camel, snake):
        """A field in camelCase or snake_case (google-genai 2.x writes either)."""
        if not isinstance(mapping, dict):
            return None
        return mapping.get(camel, mapping.get(snake))

    def ensure_parent(path):
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)

    # ------------------------------------------------------------------ read the test set
    gcs = storage.Client(project=project)
    bucket_name, blob_name = parse_gcs_uri(test_jsonl_uri)
    raw = gcs.bucket(bucket_name).blob(blob_name).download_as_text()
    examples = []
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{test_jsonl_uri} line {number}"
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
            system = get(record, "systemInstruction", "system_instruction")
            if isinstance(system, str):
                system = {"parts": [{"text": system}]}
            system = types.Content.model_validate(system) if system else None
        except Exception as exc:  # pydantic.ValidationError: a malformed turn
            raise ValueError(f"{where}: malformed contents: {scrub(exc, 300)}") from None
        # The image shown in the report and the CSV: the last one of the last user turn.
        image_uri, inline = "", None
        user_turns = [t for t in contents[:-1] if isinstance(t, dict) and t.get("role", "user") == "user"]
        for part in reversed((user_turns[-1].get("parts") or []) if user_turns else []):
            file_data = get(part, "fileData", "file_data")
            inline_data = get(part, "inlineData", "inline_data")
            if isinstance(file_data, dict):
                image_uri = str(get(file_data, "fileUri", "file_uri") or "")
                break
            if isinstance(inline_data, dict):
                image_uri, inline = f"inline image (line {number})", str(inline_data.get("data") or "")
                break
        examples.append({"line": number, "prompt": prompt, "system": system, "expected": expected,
                         "image_uri": image_uri, "inline": inline})
        if max_examples and len(examples) >= max_examples:
            break
    if not examples:
        raise ValueError(f"{test_jsonl_uri} holds no test examples")
    total = len(examples)

    classes = []

    def add_classes(texts):
        """Adds the defect types that ``texts`` name (labels, or answers naming a type the
        test split lacks but training had) to ``classes``, sorted, first spelling kept."""
        for text in texts:
            kind = None if is_pass_answer(text) else defect_type_of(text)
            if kind and kind.lower() not in [c.lower() for c in classes]:
                classes.append(kind)
        classes.sort(key=str.lower)

    add_classes(example["expected"] for example in examples)

    # ------------------------------------------------------------------ ask the models
    client = genai_client(project, location)

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise

    def make_config(system, budget):
        return types.GenerateContentConfig(
            temperature=0.0, max_output_tokens=max_output_tokens, system_instruction=system,
            thinking_config=None if budget < 0 else types.ThinkingConfig(thinking_budget=budget),
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))

    def ask(model, example, budget):
        t0 = time.monotonic()
        try:
            response = client.models.generate_content(
                model=model, contents=example["prompt"],
                config=make_config(example["system"], budget))
            answer, error, failed = (response.text or "").strip(), "", False
            if not answer:
                reason = ""
                if response.candidates and response.candidates[0].finish_reason:
                    reason = f" (finish reason {response.candidates[0].finish_reason})"
                error = "empty answer" + reason
        except Exception as exc:  # recorded per example: one bad request must not sink the run
            answer, error, failed = "", scrub(f"{type(exc).__name__}: {exc}"), True
        return answer, error, round((time.monotonic() - t0) * 1000.0, 1), failed

    def ask_all(model, items, budget, label):
        results = [None] * len(items)
        step = max(1, len(items) // 10)
        with ThreadPoolExecutor(concurrency) as pool:
            futures = {pool.submit(ask, model, ex, budget): i for i, ex in enumerate(items)}
            for done, future in enumerate(as_completed(futures), start=1):
                results[futures[future]] = future.result()
                if done % step == 0 or done == len(items):
                    print(f"{label}: evaluated {done}/{len(items)}", flush=True)
        return results

    print(f"Evaluating {tuned_endpoint} on {total} examples from {test_jsonl_uri} "
          f"(classes: {', '.join(classes) or 'none'}; concurrency {concurrency})", flush=True)
    tuned_results = ask_all(tuned_endpoint, examples, int(thinking_budget), "tuned")
    errors = [r[1] for r in tuned_results if r[3]]
    if len(errors) == total:
        raise RuntimeError(
            f"All {total} requests to {tuned_endpoint} failed; first error: {errors[0]}")

    def score(results):
        add_classes(answer for answer, _, _, failed in results if not failed)
        rows = []
        for example, (answer, error, latency, failed) in zip(examples, results):
            verdict = judge_answer(example["expected"], answer, classes)
            rows.append({"example": example, "answer": answer, "error": error,
                         "latency_ms": latency, "failed": failed, **verdict})
        return rows

    def mean(values):
        values = list(values)
        return sum(values) / len(values) if values else 0.0

    def summarize(rows):
        defects = [r for r in rows if r["expected_class"] != "Pass"]
        passes = [r for r in rows if r["expected_class"] == "Pass"]
        return {
            "status_accuracy": mean(r["status_correct"] for r in rows),
            "defect_type_accuracy": mean(r["type_correct"] for r in rows),
            "exact_match": mean(r["exact_match"] for r in rows),
            "miss_rate": mean(r["predicted_status"] == "Pass" for r in defects),
            "overkill_rate": mean(r["predicted_status"] == "Defect" for r in passes),
            "unparseable_rate": mean(r["predicted_class"] == "Unparseable" for r in rows),
            "error_rate": mean(r["failed"] for r in rows),
            "defects": len(defects),
            "passes": len(passes),
        }

    rows = score(tuned_results)
    tuned = summarize(rows)

    base, base_note = None, ""
    if evaluate_base_model:
        # Gemini 2.5 Pro cannot switch thinking off (its minimum budget is 128).
        base_budget = 128 if "pro" in base_model.lower() else 0
        first = ask(base_model, examples[0], base_budget)
        if first[3]:
            base_note = (f"Base model {base_model} was unavailable, so no base-vs-tuned "
                         f"comparison was made: {first[1]}")
        else:
            rest = ask_all(base_model, examples[1:], base_budget, "base") if total > 1 else []
            base = summarize(score([first] + rest))
            base_note = f"Base model {base_model} answered the same {total} questions."
        print(base_note, flush=True)

    # ------------------------------------------------------------------ metrics
    figures = {
        "eval_status_accuracy": tuned["status_accuracy"],
        "eval_defect_type_accuracy": tuned["defect_type_accuracy"],
        "eval_exact_match": tuned["exact_match"],
        "eval_miss_rate": tuned["miss_rate"],
        "eval_overkill_rate": tuned["overkill_rate"],
        "eval_unparseable_rate": tuned["unparseable_rate"],
        "eval_error_rate": tuned["error_rate"],
        "eval_examples": float(total),
    }
    if base is not None:
        figures["base_eval_status_accuracy"] = base["status_accuracy"]
        figures["base_eval_defect_type_accuracy"] = base["defect_type_accuracy"]
        figures["eval_status_accuracy_gain"] = tuned["status_accuracy"] - base["status_accuracy"]
    figures = {k: round(float(v), 6) for k, v in figures.items()}
    for name, value in figures.items():
        metrics.log_metric(name, value)
    ensure_parent(metrics.path)
    with open(metrics.path, "w", encoding="utf-8") as f:
        json.dump({"metrics": figures, "tuned_endpoint": tuned_endpoint,
                   "test_jsonl_uri": test_jsonl_uri, "base_model_note": base_note}, f, indent=2)

    extra = sorted({r["expected_class"] for r in rows} - {"Pass"} - set(classes), key=str.lower)
    categories = ["Pass"] + classes + extra + ["Unparseable"]
    index = {c: i for i, c in enumerate(categories)}
    matrix = [[0] * len(categories) for _ in categories]
    for r in rows:
        matrix[index[r["expected_class"]]][index[r["predicted_class"]]] += 1
    classification_metrics.log_confusion_matrix(categories, matrix)
    ensure_parent(classification_metrics.path)
    with open(classification_metrics.path, "w", encoding="utf-8") as f:
        json.dump({"categories": categories, "matrix": matrix}, f)

    # ------------------------------------------------------------------ predictions CSV
    columns = ["image_uri", "expected", "predicted", "expected_class", "predicted_class",
               "status_correct", "type_correct", "exact_match", "latency_ms", "error",
               "predicted_status"]
    ensure_parent(predictions.path)
    with open(predictions.path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for r in rows:
            writer.writerow({
                "image_uri": r["example"]["image_uri"], "expected": r["example"]["expected"],
                "predicted": r["answer"], "expected_class": r["expected_class"],
                "predicted_class": r["predicted_class"], "status_correct": r["status_correct"],
                "type_correct": r["type_correct"], "exact_match": r["exact_match"],
                "latency_ms": r["latency_ms"], "error": r["error"],
                "predicted_status": r["predicted_status"]})
    predictions.metadata.update({"format": "csv", "rows": total})

    # ------------------------------------------------------------------ thumbnails
    def thumbnail(uri, inline_b64):
        from PIL import Image

        try:
            if inline_b64 is not None:
                data = base64.b64decode(inline_b64)
            elif uri.startswith("gs://"):
                b, n = parse_gcs_uri(uri)
                data = gcs.bucket(b).blob(n).download_as_bytes()
            else:
                return ""  # public HTTPS images are not fetched: the report stays self-contained
            image = Image.open(io.BytesIO(data)).convert("RGB")
            image.thumbnail((72, 72))
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
        except Exception as exc:
            print(f"no thumbnail for {uri}: {scrub(exc, 200)}", flush=True)
            return ""

    sources = {}
    for ex in examples:
        sources.setdefault(ex["image_uri"], ex["inline"])
    with ThreadPoolExecutor(concurrency) as pool:
        thumbs = dict(zip(sources, pool.map(lambda item: thumbnail(*item), sources.items())))

    # ------------------------------------------------------------------ HTML report
    e = html.escape

    def pct(value, denominator=1):
        return "n/a" if not denominator else f"{100.0 * value:.1f}%"

    cards = [
        ("Status accuracy", pct(tuned["status_accuracy"]), "Pass/Defect call right"),
        ("Defect-type accuracy", pct(tuned["defect_type_accuracy"]), "Pass or the exact defect type right"),
        ("Miss rate", pct(tuned["miss_rate"], tuned["defects"]),
         f"defective parts passed ({tuned['defects']} defective)"),
        ("Overkill rate", pct(tuned["overkill_rate"], tuned["passes"]),
         f"good parts rejected ({tuned['passes']} good)"),
        ("Exact match", pct(tuned["exact_match"]), "answer identical to the label"),
        ("Unparseable", pct(tuned["unparseable_rate"]), "no clear Pass or single defect type"),
        ("Examples", str(total), f"{len(errors)} failed requests"),
    ]
    card_html = "".join(
        f'<div class="card"><div class="v">{e(v)}</div><div class="k">{e(k)}</div>'
        f'<div class="s">{e(s)}</div></div>' for k, v, s in cards)

    if base is not None:
        gain = tuned["status_accuracy"] - base["status_accuracy"]
        base_html = (
            "<table><tr><th></th><th>Status accuracy</th><th>Defect-type accuracy</th>"
            "<th>Miss rate</th><th>Overkill rate</th></tr>"
            f"<tr><td>Base {e(base_model)}</td><td>{pct(base['status_accuracy'])}</td>"
            f"<td>{pct(base['defect_type_accuracy'])}</td>"
            f"<td>{pct(base['miss_rate'], base['defects'])}</td>"
            f"<td>{pct(base['overkill_rate'], base['passes'])}</td></tr>"
            f"<tr><td>Tuned</td><td>{pct(tuned['status_accuracy'])}</td>"
            f"<td>{pct(tuned['defect_type_accuracy'])}</td>"
            f"<td>{pct(tuned['miss_rate'], tuned['defects'])}</td>"
            f"<td>{pct(tuned['overkill_rate'], tuned['passes'])}</td></tr></table>"
            f"<p>Status accuracy gain from tuning: <b>{gain * 100:+.1f} points</b>.</p>")
    elif evaluate_base_model:
        base_html = f'<p class="warn">{e(base_note)}</p>'
    else:
        base_html = "<p>Base model comparison was not requested.</p>"

    class_rows = []
    for c in categories[:-1]:
        i = index[c]
        support = sum(matrix[i])
        predicted_count = sum(matrix[j][i] for j in range(len(categories)))
        precision = matrix[i][i] / predicted_count if predicted_count else None
        recall = matrix[i][i] / support if support else None
        class_rows.append(
            f"<tr><td>{e(c)}</td><td>{'n/a' if precision is None else f'{precision:.2f}'}</td>"
            f"<td>{'n/a' if recall is None else f'{recall:.2f}'}</td><td>{support}</td>"
            f"<td>{predicted_count}</td></tr>")
    unparseable_count = sum(matrix[j][index["Unparseable"]] for j in range(len(categories)))
    class_html = ("<table><tr><th>Class</th><th>Precision</th><th>Recall</th><th>Support</th>"
                  "<th>Predicted</th></tr>" + "".join(class_rows) + "</table>"
                  f"<p>{unparseable_count} answer(s) named no clear class (Unparseable).</p>")

    head = "".join(f"<th>{e(c)}</th>" for c in categories)
    body = []
    for c in categories:
        i = index[c]
        cells = "".join(
            ('<td class="diag">' if i == j and n else '<td class="off">' if n else "<td>") + f"{n}</td>"
            for j, n in enumerate(matrix[i]))
        body.append(f"<tr><th>{e(c)}</th>{cells}</tr>")
    confusion_html = (f"<table class=\"cm\"><tr><th>expected \u2193 / predicted \u2192</th>{head}</tr>"
                      + "".join(body) + "</table>")

    ordered = sorted(range(total), key=lambda i: (rows[i]["type_correct"], rows[i]["status_correct"], i))
    example_rows = []
    for i in ordered:
        r = rows[i]
        uri = r["example"]["image_uri"]
        thumb = thumbs.get(uri, "")
        image_cell = (f'<img class="thumb" src="{thumb}" alt="{e(uri)}">' if thumb
                      else '<span class="noimg">no image</span>')
        if r["type_correct"]:
            verdict = '<span class="ok">\u2713</span>'
        elif r["status_correct"]:
            verdict = '<span class="partial">\u2717 type</span>'
        else:
            verdict = '<span class="bad">\u2717</span>'
        answer = e(r["answer"]) if r["answer"] else "<i>(no answer)</i>"
        error = f'<div class="err">{e(r["error"])}</div>' if r["error"] else ""
        example_rows.append(
            f"<tr><td>{i + 1}</td><td>{image_cell}<div class=\"uri\">{e(uri)}</div></td>"
            f"<td>{e(r['example']['expected'])}</td><td>{answer}{error}</td>"
            f"<td>{e(r['predicted_class'])}</td><td>{verdict}</td><td>{r['latency_ms']:.0f}</td></tr>")
    examples_html = ("<table><tr><th>#</th><th>Image</th><th>Expected</th><th>Predicted</th>"
                     "<th>Class</th><th>Verdict</th><th>ms</th></tr>" + "".join(example_rows)
                     + "</table>")

    style = (
        "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222}"
        "h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}"
        ".cards{display:flex;flex-wrap:wrap;gap:10px}.card{border:1px solid #ddd;border-radius:8px;"
        "padding:10px 14px;min-width:140px}.card .v{font-size:24px;font-weight:600}"
        ".card .k{font-weight:600}.card .s{color:#666;font-size:12px}"
        "table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:4px 8px;"
        "text-align:left;vertical-align:top;font-size:13px}th{background:#f4f4f4}"
        ".cm td{text-align:center;min-width:48px}.diag{background:#d8f0d8;font-weight:600}"
        ".off{background:#f8d7d7}.ok{color:#1a7f37;font-weight:700;font-size:16px}"
        ".bad{color:#c62828;font-weight:700;font-size:16px}.partial{color:#b26a00;font-weight:700}"
        ".thumb{width:72px;height:72px;image-rendering:pixelated;border:1px solid #ccc}"
        ".uri{color:#888;font-size:11px;max-width:220px;word-break:break-all}"
        ".err{color:#c62828;font-size:12px}.warn{color:#b26a00}.noimg{color:#999}"
        ".meta{color:#555;font-size:13px}")
    page = (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>Inspector evaluation</title><style>{style}</style></head><body>"
        "<h1>Visual defect inspector: evaluation</h1>"
        f"<p class=\"meta\">Tuned endpoint <code>{e(tuned_endpoint)}</code><br>"
        f"Test set <code>{e(test_jsonl_uri)}</code> ({total} examples; defect types: "
        f"{e(', '.join(classes) or 'none')})<br>"
        "Rule: a good part must be answered exactly \u201cStatus: Pass\u201d; a defective part must "
        "be called Defect, and the defect type counts only when it is the one expected.</p>"
        f"<div class=\"cards\">{card_html}</div>"
        f"<h2>Base model vs tuned</h2>{base_html}"
        f"<h2>Per class</h2>{class_html}"
        f"<h2>Confusion matrix</h2>{confusion_html}"
        f"<h2>Every example (mistakes first)</h2>{examples_html}"
        "</body></html>")
    ensure_parent(report.path)
    with open(report.path, "w", encoding="utf-8") as f:
        f.write(page)

    elapsed = time.monotonic() - started
    summary = (f"evaluate_inspector: {total} examples, status accuracy {tuned['status_accuracy']:.3f}, "
               f"defect-type accuracy {tuned['defect_type_accuracy']:.3f}, miss rate {tuned['miss_rate']:.3f}, "
               f"overkill rate {tuned['overkill_rate']:.3f}, unparseable {tuned['unparseable_rate']:.3f}, "
               f"failed requests {len(errors)}")
    if base is not None:
        summary += f", base status accuracy {base['status_accuracy']:.3f}"
    elif evaluate_base_model:
        summary += ", base model unavailable"
    print(f"{summary} ({elapsed:.1f} s)", flush=True)

    outputs = namedtuple("Outputs", ["status_accuracy", "defect_type_accuracy"])
    return outputs(float(tuned["status_accuracy"]), float(tuned["defect_type_accuracy"]))
