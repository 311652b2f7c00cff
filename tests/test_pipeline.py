"""The compiled pipeline: fresh, in order, free of secrets; parameter checks; CLI errors."""

import re

import pytest
import yaml
from typer.testing import CliRunner

from components import packages
from pipeline import offline, params
from pipeline.cli import app
from pipeline.pipeline import COMPILED_YAML, compile_pipeline

TASK_ORDER = ["synthesize-images", "split-manifest", "build-tuning-jsonl", "launch-tuning",
              "wait-for-tuning", "evaluate-inspector", "summarize-run"]


@pytest.fixture(scope="module")
def fresh_yaml(tmp_path_factory):
    return compile_pipeline(tmp_path_factory.mktemp("compiled") / "pipeline.yaml")


def test_checked_in_yaml_is_up_to_date(fresh_yaml):
    assert COMPILED_YAML.read_text() == fresh_yaml.read_text(), \
        "compiled/visual_defect_sft.yaml is stale: run `make compile` and commit it"


def test_tasks_run_in_the_documented_order():
    dag = yaml.safe_load(COMPILED_YAML.read_text())["root"]["dag"]["tasks"]
    main = {name: task for name, task in dag.items() if not name.startswith("condition")}
    for name in TASK_ORDER[1:]:
        assert name in main or any(name in str(t) for t in dag.values()), name

    def upstream(name):
        return set(dag[name].get("dependentTasks", []))

    for earlier, later in zip(TASK_ORDER[1:], TASK_ORDER[2:]):
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
        assert set(installed) <= {packages.KFP, packages.STORAGE, packages.GENAI, packages.PILLOW}, name


def test_pins_match_the_installed_versions():
    from importlib.metadata import version

    for pin in (packages.KFP, packages.STORAGE, packages.GENAI, packages.PILLOW):
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


@pytest.mark.parametrize("overrides, message", [
    ({"bucket": "my-bucket"}, "bucket='my-bucket' must be a gs:// URI"),
    ({"num_images": "0"}, "num_images=0 must be at least 1"),
    ({"defect_ratio": "1.5"}, r"defect_ratio=1.5 must be in \[0, 1\]"),
    ({"adapter_size": "3"}, "adapter_size=3 must be one of 1, 2, 4, 8, 16$"),
    ({"num_image": "3"}, "unknown parameter 'num_image'; did you mean num_images"),
    ({"epoch_count": "five"}, "epoch_count: 'five' is not a valid int"),
])
def test_resolve_rejects_bad_parameters(overrides, message):
    with pytest.raises(params.ParameterError, match=message):
        params.resolve({"project": "p", "bucket": "gs://b", **overrides})


def test_resolve_requires_project_and_bucket():
    with pytest.raises(params.ParameterError, match="missing required parameter"):
        params.resolve({"bucket": "gs://b"})


@pytest.mark.parametrize("args, message", [
    (["run", "--num-images", "0"], "num_images=0 must be at least 1"),
    (["run", "--param", "defect_ratio=2"], "defect_ratio=2.0 must be in [0, 1]"),
    (["run", "--param", "adapter_size"], "expected key=value"),
])
def test_run_reports_bad_parameters_in_one_line_before_any_work(args, message, tmp_path, monkeypatch):
    monkeypatch.setattr(offline, "RUNS_DIR", tmp_path)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert not list(tmp_path.iterdir()), "nothing may be started for bad parameters"


def test_parse_line_recognises_task_and_progress_lines():
    start = offline.parse_line("\x1b[1m12:00:00 - INFO - Executing task 'synthesize-images'\x1b[0m", "", 5)
    assert (start.kind, start.task) == ("start", "synthesize-images")
    progress = offline.parse_line("    uploaded 20/200 images to gs://b/images/", "synthesize-images", 5)
    assert (progress.done, progress.total) == (20, 200)
    epochs = offline.parse_line("    projects/p/.../tuningJobs/1: JOB_STATE_RUNNING, 3 epoch(s) done", "wait-for-tuning", 5)
    assert (epochs.done, epochs.total) == (3, 5)
    end = offline.parse_line("Task 'split-manifest' finished with status FAILURE", "split-manifest", 5)
    assert (end.kind, end.status) == ("end", "FAILURE")
    assert offline.parse_line("some other line", "x", 5) is None


def test_a_failing_task_is_named_with_its_own_error(tmp_path):
    log = tmp_path / "pipeline.log"
    log.write_text("Executing task 'launch-tuning'\n    Traceback (most recent call last):\n"
                   "    google.genai.errors.ClientError: 400 INVALID_ARGUMENT. bad base model\n"
                   "Task 'launch-tuning' finished with status FAILURE\n"
                   "RuntimeError: Pipeline 'visual-defect-sft' finished with status FAILURE.\n")
    tail = offline.task_log_tail(tmp_path, "launch-tuning")
    assert "RuntimeError" not in tail
    assert offline._exception_line(tail) == "google.genai.errors.ClientError: 400 INVALID_ARGUMENT. bad base model"
