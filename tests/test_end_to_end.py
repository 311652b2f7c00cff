"""The checked-in compiled pipeline, run offline at reduced size, then `inspect` on its endpoint."""

import json
import random

import pytest
from typer.testing import CliRunner

from components.drawing import draw_product_image
from pipeline import offline
from pipeline.commands import app

# Both image steps run (import_dataset stands aside without a dataset_uri): a static DAG.
TASKS = {
    "synthesize-images",
    "import-dataset",
    "split-manifest",
    "prepare-golden-set",
    "build-tuning-jsonl",
    "check-tuning-cost",
    "launch-tuning",
    "wait-for-tuning",
    "select-checkpoint",
    "evaluate-inspector",
    "evaluate-inspector-2",
    "decide-promotion",
    "summarize-run",
    "notify-run",
}
LOCAL_ENV = ("GOOGLE_VERTEX_BASE_URL", "STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One reduced offline run through the CLI, in its own runs/ and data folders."""
    runs_dir, data_dir = tmp_path_factory.mktemp("runs"), tmp_path_factory.mktemp("data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(offline, "RUNS_DIR", runs_dir)
        for name in LOCAL_ENV:  # the offline run must start its own local stack
            patch.delenv(name, raising=False)
        result = CliRunner().invoke(app, ["run", "--num-images", "40", "--epochs", "2", "--data-dir", str(data_dir)])
    return result, runs_dir, data_dir


@pytest.mark.slow
def test_offline_run_succeeds_with_metrics_report_and_summary(finished_run):
    result, runs_dir, _ = finished_run
    assert result.exit_code == 0, result.output
    last_line = json.loads(result.output.strip().splitlines()[-1])
    (run_dir,) = runs_dir.iterdir()
    assert json.loads((run_dir / "metrics.json").read_text()) == last_line
    assert last_line["ok"] is True and set(last_line["task_seconds"]) - {"promote-champion"} == TASKS
    assert last_line["eval_examples"] == 4
    for name in ("eval_status_accuracy", "eval_defect_type_accuracy", "eval_miss_rate", "eval_overkill_rate"):
        assert 0.0 <= last_line[name] <= 1.0, name
    assert last_line["eval_status_accuracy"] >= 0.5, "a tuned model must beat chance on status"
    params = json.loads((run_dir / "params.json").read_text())
    assert params["num_images"] == 40 and params["epoch_count"] == 2 and params["bucket"] == "gs://local-bucket"
    assert str(run_dir / "report.html") in result.output.replace("\n", ""), "the printed report path"
    report = (run_dir / "report.html").read_text()
    assert report.count("data:image/png;base64,") >= 4
    summary = (run_dir / "summary.md").read_text()
    assert "Source: template" in summary and "status accuracy" in summary
    log = (run_dir / "pipeline.log").read_text()
    assert "Executing task" in log and "PRIVATE KEY" not in log


@pytest.mark.slow
def test_runs_lists_the_run_and_inspect_answers_for_an_image(finished_run, tmp_path, monkeypatch):
    _, runs_dir, data_dir = finished_run
    monkeypatch.setattr(offline, "RUNS_DIR", runs_dir)
    for name in LOCAL_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOCALVERTEX_DATA_DIR", str(data_dir))  # runs, inspect and champion share one default
    listing = CliRunner().invoke(app, ["runs"])
    assert listing.exit_code == 0 and "1 offline run" in listing.output

    image = tmp_path / "part.png"
    draw_product_image(random.Random(5), "Crack").save(image)
    answer = CliRunner().invoke(app, ["inspect", str(image), "--json"])
    assert answer.exit_code == 0, answer.output
    row = json.loads(answer.output.strip().splitlines()[-1])
    assert row["file"] == str(image) and row["answer"].startswith("Status:")
    assert row["status"] in ("Pass", "Defect") and row["error"] == ""

    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not an image at all")
    mixed = CliRunner().invoke(app, ["inspect", str(garbage), str(image), "--json"])
    assert mixed.exit_code == 1, "an image without an answer must fail the command"
    rows = [json.loads(line) for line in mixed.output.splitlines() if line.startswith("{")]
    assert [r["file"] for r in rows] == [str(garbage), str(image)], "one bad image must not stop the rest"
    assert "400" in rows[0]["error"] and "unreadable image" in rows[0]["error"] and "BytesIO" not in rows[0]["error"]
    assert rows[1]["answer"] == row["answer"]


def write_class_folders(root, per_class=10):
    """A folder tree pass/, dent/, burr/ of generated images with new defect marks."""
    from PIL import ImageDraw

    for name in ("pass", "dent", "burr"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            image = draw_product_image(random.Random(f"{name}{i}"), None)
            draw = ImageDraw.Draw(image)
            x, y = 35 + i % 5 * 3, 35 + i % 4 * 3
            if name == "dent":
                draw.ellipse((x, y, x + 14, y + 14), fill=(20, 20, 40))
            elif name == "burr":
                draw.polygon([(x, y), (x + 18, y + 4), (x + 4, y + 16)], fill=(250, 220, 0))
            image.save(root / name / f"{name}_{i}.png")


@pytest.mark.slow
def test_offline_run_on_an_imported_folder_learns_its_own_classes(finished_run, tmp_path, monkeypatch):
    """README's order: `make run` (synthetic), then your own folder on the same data folder. The
    folder gets an inspector of its own, and `inspect` and `champion` then name its champion."""
    _, _, data_dir = finished_run
    write_class_folders(tmp_path / "parts")
    monkeypatch.setattr(offline, "RUNS_DIR", tmp_path / "runs")
    for name in LOCAL_ENV:
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(
        app,
        [
            "run",
            "--dataset",
            str(tmp_path / "parts"),
            "--epochs",
            "3",
            "--data-dir",
            str(data_dir),
            # 30 images leave one test image per class: below the default minimums, nothing would
            # be promoted (tests/test_promotion_gates.py); here the folder's run must become champion.
            "--param",
            "min_test_per_class=1",
            "--param",
            "min_golden_per_class=1",
        ],
    )
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    params = json.loads((run_dir / "params.json").read_text())
    assert params["dataset_uri"] == "gs://local-bucket/datasets/parts/"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # Both image steps ran; synthesize_images stood aside and drew nothing.
    assert {"import-dataset", "synthesize-images"} <= set(metrics["task_seconds"])
    log = (run_dir / "pipeline.log").read_text()
    assert "no images from this step: dataset_uri is set (gs://local-bucket/datasets/parts/)" in log
    assert "uploaded" not in log
    assert metrics["eval_examples"] == 3
    predictions = (run_dir / "predictions.csv").read_text()
    assert "Status: Defect - Dent detected on product surface." in predictions
    assert "Status: Defect - Burr detected on product surface." in predictions
    # One champion, one truth: both commands name the folder's inspector and the same endpoint.
    shown = CliRunner().invoke(app, ["champion", "--data-dir", str(data_dir), "--json"])
    assert shown.exit_code == 0, shown.output
    champion = json.loads(shown.output.strip().splitlines()[-1])["champion"]
    assert champion is not None, shown.output
    assert champion["inspector"] == "visual-defect-inspector-parts"
    image = tmp_path / "dent.png"
    draw_product_image(random.Random(7), None).save(image)
    answer = CliRunner().invoke(app, ["inspect", str(image), "--json", "--data-dir", str(data_dir)])
    assert answer.exit_code == 0, answer.output
    assert champion["endpoint"] in answer.output.replace("\n", "")
