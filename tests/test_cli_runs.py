"""Issue 35: `runs` shows whole values and interrupted runs with their state, lists the runs of one
data folder (the one `inspect` and `champion` use), and `--compare` shows the rows that differ."""

import json
import os

import pytest
from typer.testing import CliRunner

from pipeline import offline
from pipeline.commands import app

LONG_URI = "gs://local-bucket/datasets/our-own-photographs-of-the-second-production-line-2026-01/"


def make_run(runs_dir, run_id, data_dir, params, metrics=None, state="succeeded", pid=None):
    run_dir = runs_dir / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "params.json").write_text(json.dumps(params))
    record = {"run_id": run_id, "data_dir": str(data_dir), "state": state, "pid": pid or os.getpid()}
    (run_dir / "run.json").write_text(json.dumps(record))
    if metrics is not None:
        (run_dir / "metrics.json").write_text(json.dumps({"run_id": run_id, "seconds": 12, **metrics}))


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    runs, folder = tmp_path / "runs", tmp_path / "lv"
    monkeypatch.setattr(offline, "RUNS_DIR", runs)
    monkeypatch.setenv("LOCALVERTEX_DATA_DIR", str(folder))
    base = {"num_images": 200, "seed": 42, "dataset_uri": ""}
    make_run(runs, "20260101-010000-aaaa", folder, base, {"ok": True, "eval_status_accuracy": 0.9})
    make_run(runs, "20260102-010000-bbbb", folder, {**base, "dataset_uri": LONG_URI}, {"ok": False})
    # Killed during tuning: no metrics, and the process that ran it is gone.
    make_run(runs, "20260103-010000-cccc", folder, {**base, "seed": 7}, state="running", pid=2**22 + 12345)
    make_run(runs, "20260104-010000-dddd", tmp_path / "elsewhere", base, {"ok": True})
    return runs, folder


def test_runs_lists_interrupted_runs_and_whole_values(runs_dir):
    _, folder = runs_dir
    result = CliRunner().invoke(app, ["runs"])
    assert result.exit_code == 0, result.output
    assert f"data folder: {folder}" in result.output
    lines = {line.split()[1]: line for line in result.output.splitlines() if line.startswith("│ 2026")}
    assert set(lines) == {"20260101-010000-aaaa", "20260102-010000-bbbb", "20260103-010000-cccc"}
    assert "interrupted" in lines["20260103-010000-cccc"]
    assert "failed" in lines["20260102-010000-bbbb"] and "succeeded" in lines["20260101-010000-aaaa"]
    assert LONG_URI in lines["20260102-010000-bbbb"], "dataset_uri was cut"
    assert "1 run(s) on other data folders" in result.output


def test_compare_shows_the_rows_that_differ_unless_all(runs_dir):
    differing = CliRunner().invoke(app, ["runs", "--compare", "20260101-010000-aaaa", "20260102-010000-bbbb"])
    assert differing.exit_code == 0, differing.output
    assert "param dataset_uri" in differing.output and LONG_URI in differing.output
    assert "param num_images" not in differing.output and "param seed" not in differing.output
    assert "rows differ; --all shows every row" in differing.output
    every = CliRunner().invoke(app, ["runs", "--compare", "20260101-010000-aaaa", "20260102-010000-bbbb", "--all"])
    assert "param num_images" in every.output and "param seed" in every.output


def test_an_interrupted_run_is_recorded_as_such(tmp_path, monkeypatch):
    """run_offline marks its run interrupted when it stops before the end (Ctrl-C, a busy folder)."""
    import localvertex

    class Refused:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            raise KeyboardInterrupt

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(localvertex, "LocalStack", Refused, raising=False)
    params = {"bucket": "gs://local-bucket", "project": "local-project"}
    with pytest.raises(KeyboardInterrupt):
        offline.run_offline(params, runs_dir=tmp_path, data_dir=tmp_path / "lv", yaml_path=tmp_path / "x.yaml")
    (run,) = offline.load_runs(tmp_path)
    assert run["state"] == "interrupted" and run["data_dir"] == str((tmp_path / "lv").resolve())
