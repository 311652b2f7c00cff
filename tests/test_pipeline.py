"""The compiled pipeline: fresh, in order, free of secrets; parameter checks; CLI errors."""

import json
import re
import subprocess
import sys

import pytest
import yaml
from typer.testing import CliRunner

from components import packages
from pipeline import offline, params
from pipeline.commands import app
from pipeline.pipeline import COMPILED_YAML, compile_pipeline

TASK_ORDER = [
    "synthesize-images",
    "split-manifest",
    "prepare-golden-set",
    "build-tuning-jsonl",
    "check-tuning-cost",
    "launch-tuning",
    "wait-for-tuning",
    "select-checkpoint",
    "evaluate-inspector",
    "decide-promotion",
    "summarize-run",
]


@pytest.fixture(scope="module")
def fresh_yaml(tmp_path_factory):
    return compile_pipeline(tmp_path_factory.mktemp("compiled") / "pipeline.yaml")


def test_checked_in_yaml_is_up_to_date(fresh_yaml):
    assert COMPILED_YAML.read_text() == fresh_yaml.read_text(), (
        "compiled/visual_defect_sft.yaml is stale: run `make compile` and commit it"
    )


def test_tasks_run_in_the_documented_order():
    spec = yaml.safe_load(COMPILED_YAML.read_text())
    root = spec["root"]["dag"]["tasks"]
    # Every task runs inside the exit handler; its exit task (the notification) runs after it, however it ends.
    assert set(root) == {"exit-handler-1", "notify-run"}
    assert root["notify-run"]["taskInfo"]["name"][0].isdigit()
    dag = spec["components"][root["exit-handler-1"]["componentRef"]["name"]]["dag"]["tasks"]
    for name in TASK_ORDER[1:]:
        assert name in dag, name

    def upstream(name):
        return set(dag[name].get("dependentTasks", []))

    for earlier, later in zip(TASK_ORDER[1:], TASK_ORDER[2:], strict=False):
        assert earlier in upstream(later), f"{later} must wait for {earlier}"
    for name in TASK_ORDER[1:]:
        assert dag[name]["taskInfo"]["name"][0].isdigit(), "every task has a numbered display name"


def test_components_use_the_pinned_packages_and_base_image():
    spec = yaml.safe_load(COMPILED_YAML.read_text())
    for name, executor in spec["deploymentSpec"]["executors"].items():
        container = executor["container"]
        assert container["image"] == packages.BASE_IMAGE
        script = container["command"][2]
        installed = re.findall(r"'([\w.-]+==[\w.]+)'", script)
        assert packages.KFP in installed, name
        assert set(installed) <= {packages.KFP, packages.STORAGE, packages.GENAI, packages.PILLOW, packages.GCPC}, name
        # GCPC (it pulls in aiplatform) only where its proto and artifact types are used: the tuning steps.
        assert (packages.GCPC in installed) == (name in ("exec-launch-tuning", "exec-wait-for-tuning")), name


def test_pins_match_the_installed_versions():
    from importlib.metadata import version

    for pin in (packages.KFP, packages.STORAGE, packages.GENAI, packages.PILLOW, packages.GCPC):
        name, wanted = pin.split("==")
        assert version(name) == wanted, f"{pin} differs from the installed {version(name)}"


def test_compiled_yaml_holds_no_credentials_or_local_addresses():
    text = COMPILED_YAML.read_text()
    for needle in ("127.0.0.1", "localhost", "PRIVATE KEY", "credentials.json", "ya29.", "local-project"):
        assert needle not in text


def test_resolve_fills_defaults_with_their_types():
    resolved = params.resolve({"project": "p", "bucket": "gs://b", "num_images": "40", "evaluate_base_model": "true"})
    assert resolved["num_images"] == 40 and resolved["adapter_size"] == 4 and resolved["epoch_count"] == 5
    assert isinstance(resolved["defect_ratio"], float) and resolved["evaluate_base_model"] is True


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"bucket": "my-bucket"}, "bucket='my-bucket' must be a gs:// URI"),
        ({"num_images": "0"}, "num_images=0 must be at least 1"),
        ({"defect_ratio": "1.5"}, r"defect_ratio=1.5 must be in \[0, 1\]"),
        ({"adapter_size": "3"}, "adapter_size=3 must be one of 1, 2, 4, 8, 16$"),
        ({"variation": "extreme"}, "variation='extreme' must be one of standard, strong, photo$"),
        ({"num_image": "3"}, "unknown parameter 'num_image'; did you mean num_images"),
        ({"epoch_count": "five"}, "epoch_count: 'five' is not a valid int"),
    ],
)
def test_resolve_rejects_bad_parameters(overrides, message):
    with pytest.raises(params.ParameterError, match=message):
        params.resolve({"project": "p", "bucket": "gs://b", **overrides})


def test_resolve_requires_project_and_bucket():
    with pytest.raises(params.ParameterError, match="missing required parameter"):
        params.resolve({"bucket": "gs://b"})


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--num-images", "0"], "num_images=0 must be at least 1"),
        (["run", "--param", "defect_ratio=2"], "defect_ratio=2.0 must be in [0, 1]"),
        (["run", "--param", "adapter_size"], "expected key=value"),
    ],
)
def test_run_reports_bad_parameters_in_one_line_before_any_work(args, message, tmp_path, monkeypatch):
    monkeypatch.setattr(offline, "RUNS_DIR", tmp_path)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert not list(tmp_path.iterdir()), "nothing may be started for bad parameters"


def test_parse_line_recognises_task_and_progress_lines():
    # Progress is the components' structured record (report_progress), never free text.
    start = offline.parse_line("\x1b[1m12:00:00 - INFO - Executing task 'synthesize-images'\x1b[0m", "")
    assert (start.kind, start.task) == ("start", "synthesize-images")
    progress = offline.parse_line(
        '    uploaded 20/200 images ::progress:: {"done": 20, "total": 200, "unit": "images"}', "synthesize-images"
    )
    assert (progress.kind, progress.task, progress.done, progress.total) == ("progress", "synthesize-images", 20, 200)
    epochs = offline.parse_line(
        'tuned 3/5 epochs ::progress:: {"done": 3, "total": 5, "unit": "epochs"}', "wait-for-tuning"
    )
    assert (epochs.done, epochs.total) == (3, 5)
    end = offline.parse_line("Task 'split-manifest' finished with status FAILURE", "split-manifest")
    assert (end.kind, end.status) == ("end", "FAILURE")
    assert offline.parse_line("some other line", "x") is None
    assert offline.parse_line("    uploaded 20/200 images to gs://b/images/", "x") is None  # free text is not parsed
    assert offline.parse_line('x ::progress:: {"done": "3"}', "x") is None  # a malformed record is ignored


@pytest.mark.parametrize(
    "done, total, unit, note, expected_text",
    [
        (20, 200, "images", "uploaded", "uploaded 20/200 images"),
        (1, 10, "", "tuned: evaluated", "tuned: evaluated 1/10"),
        (3, 5, "epochs", "", "3/5 epochs"),
    ],
)
def test_report_progress_round_trips(capsys, done, total, unit, note, expected_text):
    from components.progress import PROGRESS_MARK, parse_progress, report_progress

    report_progress(done, total, unit, note)
    line = capsys.readouterr().out
    assert line.startswith(expected_text + " " + PROGRESS_MARK) and line.endswith("\n")
    assert parse_progress(line) == {"done": done, "total": total, "unit": unit}


@pytest.mark.parametrize(
    "done, total, elapsed_s, expected_text, eta_s",
    [
        (20, 200, 10.0, "uploaded 20/200 images, ETA 1m30s", 90),  # 10 s for a tenth: 90 s left
        (1, 3, 400.0, "uploaded 1/3 images, ETA 13m20s", 800),
        (200, 200, 100.0, "uploaded 200/200 images", None),  # done: no estimate
        (0, 200, 5.0, "uploaded 0/200 images", None),  # no rate yet
        (20, 200, None, "uploaded 20/200 images", None),  # no clock given
    ],
)
def test_report_progress_estimates_the_time_left(capsys, done, total, elapsed_s, expected_text, eta_s):
    from components.progress import PROGRESS_MARK, parse_progress, report_progress

    report_progress(done, total, "images", "uploaded", elapsed_s)
    line = capsys.readouterr().out
    assert line.startswith(expected_text + " " + PROGRESS_MARK)
    assert parse_progress(line).get("eta_s") == eta_s


def _all_tasks(node):
    """Every task of a compiled pipeline spec, inside conditions too."""
    if isinstance(node, dict):
        if "taskInfo" in node:
            yield node
        for value in node.values():
            yield from _all_tasks(value)
    elif isinstance(node, list):
        for value in node:
            yield from _all_tasks(value)


def test_cli_and_pipeline_share_task_titles():
    from pipeline import pipeline as dag
    from pipeline.task_views import PlainView

    assert PlainView().titles is dag.TASK_TITLES
    spec = yaml.safe_load(dag.COMPILED_YAML.read_text())
    shown = {task["taskInfo"]["name"] for task in _all_tasks(spec)}
    assert set(dag.TASK_TITLES.values()) <= shown


def test_a_failing_task_is_named_with_its_own_error(tmp_path):
    log = tmp_path / "pipeline.log"
    log.write_text(
        "Executing task 'launch-tuning'\n    Traceback (most recent call last):\n"
        "    google.genai.errors.ClientError: 400 INVALID_ARGUMENT. bad base model\n"
        "Task 'launch-tuning' finished with status FAILURE\n"
        "RuntimeError: Pipeline 'visual-defect-sft' finished with status FAILURE.\n"
    )
    tail = offline.task_log_tail(tmp_path, "launch-tuning")
    assert "RuntimeError" not in tail
    assert offline._exception_line(tail) == "google.genai.errors.ClientError: 400 INVALID_ARGUMENT. bad base model"


def _failed_import_log(reasons: int) -> list[str]:
    lines = [
        "Executing task 'import-dataset'",
        "    Traceback (most recent call last):",
        '      File "/tmp/x/ephemeral_component.py", line 402, in fail',
        "    ValueError: import_dataset: 3 problem(s) reading the dataset in gs://b/d.jsonl; no manifest was written:",
    ]
    lines += [f"      d.jsonl line {i}: 0 images in the user turns" for i in range(1, reasons + 1)]
    return lines + ["    ", ""]


@pytest.mark.parametrize("reasons, shown, more", [(3, 3, None), (10, 10, None), (14, 10, 4)])
def test_exception_text_keeps_the_reasons_under_the_error(reasons, shown, more, tmp_path):
    text = offline.exception_text(_failed_import_log(reasons), log_path=tmp_path / "pipeline.log")
    first, *rest = text.splitlines()
    assert first.startswith("ValueError: import_dataset: 3 problem(s)")
    assert [line.strip() for line in rest[:shown]] == [
        f"d.jsonl line {i}: 0 images in the user turns" for i in range(1, shown + 1)
    ]
    if more:
        assert rest[-1].strip() == f"... and {more} more line(s) in {tmp_path / 'pipeline.log'}"
    else:
        assert len(rest) == shown


def test_a_rejected_dataset_shows_its_reasons_in_the_terminal(tmp_path, monkeypatch):
    """Issue 15: the per-line reasons reach the user, not only runs/<id>/pipeline.log."""
    bad = tmp_path / "wrong.jsonl"
    example = {
        "contents": [
            {"role": "user", "parts": [{"text": "hi"}]},
            {"role": "model", "parts": [{"text": "Status: Pass"}]},
        ]
    }
    bad.write_text("\n".join(json.dumps(example) for _ in range(3)) + "\n")
    monkeypatch.setenv("PIPELINE_RUNS_DIR", str(tmp_path / "runs"))
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", "--dataset", str(bad), "--data-dir", str(tmp_path / "lv")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert "failed in import-dataset" in result.stderr
    for line in (1, 2, 3):
        assert f"wrong.jsonl line {line}: 0 images in the user turns" in result.stderr
