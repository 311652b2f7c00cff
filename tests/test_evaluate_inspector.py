"""Tests of the evaluate_inspector component against the local Vertex AI, real clients.

The session's LocalStack (conftest.py's ``local_stack``) serves the module. A tiny real
tuning job (25 images, 5 classes including a custom "Burr" whose label holds HTML
metacharacters, 10 epochs, about 10 s) gives a tuned endpoint. Its answers may be wrong,
so the tests check that metrics, the predictions CSV, the confusion matrix and the report
agree with each other, not that the model is perfect. The base model is always unavailable
here (no local Gemini answers).
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import random
import time

import pytest
from kfp.dsl import HTML, ClassificationMetrics, Dataset, Metrics
from PIL import Image, ImageDraw

from components.drawing import draw_product_image
from components.evaluate_inspector import evaluate_inspector, make_thumbnail
from components.labels import LABELS, PROMPT, judge_answer
from components.progress import parse_progress

PROJECT, LOCATION, BUCKET = "local-project", "us-central1", "local-bucket"
BURR_LABEL = 'Status: Defect - Burr <edge> & "sharp" at 3 o\'clock'
LABEL_OF = {**LABELS, "Burr": BURR_LABEL}
KINDS = [None, "Scratch", "Crack", "Discoloration", "Burr"]
SYSTEM = "You are a QC inspector. State the Status and the defect type."
CATEGORIES = ["Pass", "Burr", "Crack", "Discoloration", "Scratch", "Unparseable"]
METRIC_NAMES = {
    "eval_status_accuracy",
    "eval_defect_type_accuracy",
    "eval_exact_match",
    "eval_miss_rate",
    "eval_overkill_rate",
    "eval_unparseable_rate",
    "eval_examples",
}
pytestmark = pytest.mark.filterwarnings("ignore:The SDK's tuning implementation is experimental")
BASE_METRICS = {"base_eval_status_accuracy", "base_eval_defect_type_accuracy", "eval_status_accuracy_gain"}


def png(rng: random.Random, kind: str | None) -> bytes:
    image = draw_product_image(rng, None if kind == "Burr" else kind)
    if kind == "Burr":  # a yellow blob on the right edge
        x, y = 80 + rng.randint(-3, 3), 45 + rng.randint(-8, 8)
        ImageDraw.Draw(image).ellipse((x - 5, y - 5, x + 5, y + 5), fill="#FFCC00")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def sft_line(uri: str, label: str, system: bool) -> str:
    record = {
        "contents": [
            {"role": "user", "parts": [{"text": PROMPT}, {"fileData": {"mimeType": "image/png", "fileUri": uri}}]},
            {"role": "model", "parts": [{"text": label}]},
        ]
    }
    if system:
        record = {"systemInstruction": {"parts": [{"text": SYSTEM}]}, **record}
    return json.dumps(record)


@pytest.fixture(scope="module")
def data(local_stack):
    """Train (5 per class), test (2 per class), a test set with an inline and a missing image."""
    from google.cloud import storage

    bucket = storage.Client(project=PROJECT).bucket(BUCKET)
    rng = random.Random(7)
    lines: dict[str, list[str]] = {"train": [], "test": []}
    for split, per_class in (("train", 5), ("test", 2)):
        for i in range(per_class):
            for kind in KINDS:
                name = f"eval/{split}/{kind or 'Pass'}_{i}.png"
                bucket.blob(name).upload_from_string(png(rng, kind), content_type="image/png")
                lines[split].append(sft_line(f"gs://{BUCKET}/{name}", LABEL_OF[kind], system=i % 2 == 0))
    uris = {}
    for split, rows in lines.items():
        bucket.blob(f"eval/{split}.jsonl").upload_from_string("\n".join(rows) + "\n")
        uris[split] = f"gs://{BUCKET}/eval/{split}.jsonl"
    inline = json.loads(sft_line("unused", LABELS["Scratch"], system=False))
    inline["contents"][0]["parts"][1] = {
        "inlineData": {"mimeType": "image/png", "data": base64.b64encode(png(rng, "Scratch")).decode()}
    }
    partial = lines["test"][:2] + [
        json.dumps(inline),
        sft_line(f"gs://{BUCKET}/eval/missing.png", LABELS["Crack"], True),
    ]
    bucket.blob("eval/partial.jsonl").upload_from_string("\n".join(partial) + "\n")
    bucket.blob("eval/broken.jsonl").upload_from_string(lines["test"][0] + "\n{not json\n")
    uris.update(
        partial=f"gs://{BUCKET}/eval/partial.jsonl",
        broken=f"gs://{BUCKET}/eval/broken.jsonl",
        test_count=len(lines["test"]),
    )
    return uris


@pytest.fixture(scope="module")
def endpoint(data):
    from google.genai import types

    from components.clients import genai_client

    client = genai_client(PROJECT, LOCATION)
    job = client.tunings.tune(
        base_model="gemini-3.5-flash",
        training_dataset=types.TuningDataset(gcs_uri=data["train"]),
        config=types.CreateTuningJobConfig(
            epoch_count=10, learning_rate_multiplier=3.0, tuned_model_display_name="eval-test"
        ),
    )
    deadline = time.monotonic() + 600  # a bound, not a speed test: generous for a loaded 2-core machine
    while not job.has_ended:
        assert time.monotonic() < deadline, f"tuning still {job.state} after 600 s"
        time.sleep(0.3)
        job = client.tunings.get(name=job.name)
    assert job.state.name == "JOB_STATE_SUCCEEDED", job.error
    return job.tuned_model.endpoint


def run_eval(tmp_path, **kwargs):
    """Calls the component's python_func with artifacts on tmp_path; returns everything."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    arts = {
        "metrics": Metrics(name="metrics", uri=str(tmp_path / "metrics" / "m.json"), metadata={}),
        "classification_metrics": ClassificationMetrics(name="cm", uri=str(tmp_path / "cm" / "cm.json"), metadata={}),
        "report": HTML(name="report", uri=str(tmp_path / "report" / "report.html"), metadata={}),
        "predictions": Dataset(name="predictions", uri=str(tmp_path / "pred" / "p.csv"), metadata={}),
    }
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = evaluate_inspector.python_func(project=PROJECT, location=LOCATION, **arts, **kwargs)
    with open(arts["predictions"].path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    with open(arts["report"].path, encoding="utf-8") as f:
        page = f.read()
    return {**arts, "result": result, "stdout": out.getvalue(), "rows": rows, "html": page}


@pytest.fixture(scope="module")
def evaluation(endpoint, data, tmp_path_factory):
    return run_eval(
        tmp_path_factory.mktemp("eval"),
        tuned_endpoint=endpoint,
        test_jsonl_uri=data["test"],
        evaluate_base_model=True,
        concurrency=4,
    )


def truthy(value: str) -> bool:
    assert value in ("True", "False"), value
    return value == "True"


def test_metrics_logged_and_in_range(evaluation, data):
    figures = evaluation["metrics"].metadata
    assert set(figures) >= METRIC_NAMES
    assert not BASE_METRICS & set(figures), "there is no local Gemini: base metrics must be skipped"
    assert figures["eval_examples"] == data["test_count"] == len(evaluation["rows"]) == 10
    for name in METRIC_NAMES - {"eval_examples"}:
        assert 0.0 <= figures[name] <= 1.0, name
    # Written at metrics.path too, so KFP caching finds a file.
    with open(evaluation["metrics"].path, encoding="utf-8") as f:
        assert json.load(f)["metrics"] == figures
    result = evaluation["result"]
    assert result.status_accuracy == pytest.approx(figures["eval_status_accuracy"], abs=1e-6)
    assert result.defect_type_accuracy == pytest.approx(figures["eval_defect_type_accuracy"], abs=1e-6)


def test_metrics_agree_with_predictions_csv(evaluation):
    rows, figures = evaluation["rows"], evaluation["metrics"].metadata
    assert list(rows[0]) == [
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
    n = len(rows)
    defects = [r for r in rows if r["expected_class"] != "Pass"]
    passes = [r for r in rows if r["expected_class"] == "Pass"]

    def share(flags, count):
        return sum(flags) / count

    expected = {
        "eval_status_accuracy": share((truthy(r["status_correct"]) for r in rows), n),
        "eval_defect_type_accuracy": share((truthy(r["type_correct"]) for r in rows), n),
        "eval_exact_match": share((truthy(r["exact_match"]) for r in rows), n),
        "eval_miss_rate": share((r["predicted_status"] == "Pass" for r in defects), len(defects)),
        "eval_overkill_rate": share((r["predicted_status"] == "Defect" for r in passes), len(passes)),
        "eval_unparseable_rate": share((r["predicted_class"] == "Unparseable" for r in rows), n),
    }
    for name, value in expected.items():
        assert figures[name] == pytest.approx(value, abs=1e-6), name
    classes = CATEGORIES[1:-1]
    for r in rows:
        assert r["image_uri"].startswith(f"gs://{BUCKET}/eval/test/")
        assert r["error"] == "" and r["predicted"], r  # every request answered
        assert float(r["latency_ms"]) > 0
        verdict = judge_answer(r["expected"], r["predicted"], classes)
        assert {k: str(v) for k, v in verdict.items()} == {k: r[k] for k in verdict}
    assert {r["expected"] for r in rows} == set(LABEL_OF.values())


def test_confusion_matrix_matches_csv(evaluation):
    matrix_meta = evaluation["classification_metrics"].metadata["confusionMatrix"]
    categories = [spec["displayName"] for spec in matrix_meta["annotationSpecs"]]
    assert categories == CATEGORIES
    matrix = [row["row"] for row in matrix_meta["rows"]]
    assert sum(map(sum, matrix)) == evaluation["metrics"].metadata["eval_examples"]
    for i, expected_class in enumerate(categories):
        for j, predicted_class in enumerate(categories):
            count = sum(
                1
                for r in evaluation["rows"]
                if (r["expected_class"], r["predicted_class"]) == (expected_class, predicted_class)
            )
            assert matrix[i][j] == count, (expected_class, predicted_class)


def test_report_is_self_contained_and_escaped(evaluation):
    page = evaluation["html"]
    thumbs = page.count('<img class="thumb" src="data:image/png;base64,')
    assert thumbs == len(evaluation["rows"])
    first = page.split('src="data:image/png;base64,', 1)[1].split('"', 1)[0]
    assert base64.b64decode(first).startswith(b"\x89PNG")
    # Every example row carries a verdict mark; the Burr label is escaped wherever it shows.
    assert page.count("\u2713") + page.count("\u2717") >= len(evaluation["rows"])
    assert "<edge>" not in page and "&lt;edge&gt; &amp; &quot;sharp&quot;" in page
    for row in evaluation["rows"]:  # model text (whatever it is) appears only escaped
        if "<" in row["predicted"] or "&" in row["predicted"]:
            assert row["predicted"] not in page
    for needle in ("http://", "https://", "<script", "<link", "Bearer", "access_token", "private_key"):
        assert needle not in page
    assert "Confusion matrix" in page and "Precision" in page and "Recall" in page
    assert "unavailable" in page and "gemini-3.5-flash" in page


def test_progress_and_summary_lines(evaluation):
    out = evaluation["stdout"]
    # Progress is report_progress's structured line (the CLI reads it with parse_progress).
    tuned = [parse_progress(line) for line in out.splitlines() if "tuned" in line and parse_progress(line)]
    assert tuned[-1] == {"done": 10, "total": 10, "unit": "images"}  # the last line: done, no estimate
    assert tuned[0]["done"] == 1 and tuned[0]["eta_s"] >= 0  # the first: an estimate of the time left
    assert len(tuned) == 10 and "evaluated" not in out  # the free-text progress line is gone
    assert "unavailable" in out
    summary = [line for line in out.splitlines() if line.startswith("evaluate_inspector: 10 examples")]
    assert len(summary) == 1 and "status accuracy" in summary[0]


def test_failed_request_is_recorded_not_fatal(endpoint, data, tmp_path):
    run = run_eval(tmp_path, tuned_endpoint=endpoint, test_jsonl_uri=data["partial"], concurrency=1)
    figures, rows = run["metrics"].metadata, run["rows"]
    assert figures["eval_examples"] == 4 and figures["eval_error_rate"] == pytest.approx(1 / 4)
    assert rows[2]["image_uri"] == "inline image (line 3)" and rows[2]["error"] == ""
    broken = rows[3]
    assert broken["predicted"] == "" and broken["predicted_class"] == "Unparseable"
    assert "missing.png" in broken["error"] and "does not exist" in broken["error"]
    assert broken["status_correct"] == "False"
    assert all(r["error"] == "" and r["predicted"] for r in rows[:3])
    assert "no image" in run["html"] and run["html"].count('class="thumb"') == 3


def test_max_examples(endpoint, data, tmp_path):
    run = run_eval(tmp_path, tuned_endpoint=endpoint, test_jsonl_uri=data["test"], max_examples=3, concurrency=1)
    assert run["metrics"].metadata["eval_examples"] == 3 and len(run["rows"]) == 3


def test_all_requests_failing_fails_the_component(local_stack, data, tmp_path):
    missing = f"projects/{PROJECT}/locations/{LOCATION}/endpoints/999999"
    with pytest.raises(RuntimeError, match=r"All 3 requests to .*999999 failed"):
        run_eval(tmp_path, tuned_endpoint=missing, test_jsonl_uri=data["test"], max_examples=3)


def test_malformed_test_jsonl_names_the_line(local_stack, data, tmp_path):
    with pytest.raises(ValueError, match=r"broken\.jsonl line 2: not valid JSON"):
        run_eval(tmp_path, tuned_endpoint="unused", test_jsonl_uri=data["broken"])


def test_answers_naming_a_class_missing_from_the_test_labels_keep_that_class(endpoint, data, local_stack, tmp_path):
    from google.cloud import storage

    from components.labels import defect_type_of

    # Defect images all labelled Pass: the test labels name no defect type at all.
    lines = [
        sft_line(f"gs://{BUCKET}/eval/test/{kind}_{i}.png", LABELS[None], system=False)
        for kind in ("Crack", "Discoloration", "Burr")
        for i in range(2)
    ]
    storage.Client(project=PROJECT).bucket(BUCKET).blob("eval/relabelled.jsonl").upload_from_string(
        "\n".join(lines) + "\n"
    )
    run = run_eval(tmp_path, tuned_endpoint=endpoint, test_jsonl_uri=f"gs://{BUCKET}/eval/relabelled.jsonl")
    named = [r for r in run["rows"] if not r["predicted"].startswith("Status: Pass") and defect_type_of(r["predicted"])]
    assert named, "the tuned model called none of six defect images a defect"
    for row in named:
        assert row["predicted_class"] == defect_type_of(row["predicted"]), row


def test_thumbnail_of_a_sixteen_bit_png_keeps_its_shade():
    """A dark 16-bit greyscale part (a machine-vision camera's PNG) is shown dark, not white."""
    buffer = io.BytesIO()
    Image.new("I;16", (90, 90), 1000).save(buffer, format="PNG")
    small, full = make_thumbnail(None, "gs://b/part.png", base64.b64encode(buffer.getvalue()).decode("ascii"))
    for uri, size in ((small, (90, 90)), (full, (90, 90))):  # up to 160 px: not enlarged
        thumbnail = Image.open(io.BytesIO(base64.b64decode(uri.removeprefix("data:image/png;base64,"))))
        assert thumbnail.size == size and thumbnail.convert("RGB").getpixel((0, 0)) == (3, 3, 3)


def test_a_gemini_3_endpoint_is_asked_with_a_thinking_level_the_twin_checks(evaluation, endpoint, data, tmp_path):
    """Issue 30: the default sends LOW to a gemini-3.5-flash-tuned endpoint (and says so); a
    budget, which the model does not take, is refused by the twin as Vertex AI would."""
    assert "thinking 'least' for gemini-3.5-flash: sending {'thinking_level': 'LOW'}" in evaluation["stdout"]
    assert "/locations/us/endpoints/" in endpoint  # served on the multi-region endpoint
    with pytest.raises(ValueError, match="takes a thinking level"):
        run_eval(tmp_path / "budget", tuned_endpoint=endpoint, test_jsonl_uri=data["test"], thinking="512")
