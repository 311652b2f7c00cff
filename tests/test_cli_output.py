"""Issue 35, "output that reads well anywhere": off a terminal a run's task lines, progress and
warnings stream as plain lines when they happen, tasks end listed in DAG order, nothing that must be
copied is wrapped, and pipeline.log summarises polling."""

import io
import json
import sys

from typer.testing import CliRunner

from pipeline import offline
from pipeline.commands import app

LONG_DIR = "runs-of-the-second-production-line-in-the-new-hall-with-a-rather-long-folder-name"
ENDPOINT = "projects/local-project/locations/us-central1/endpoints/1234567890123456789-a-long-checkpoint-endpoint-id"


def fake_run_offline(seen_mid_run: list, tmp_path):
    """A stand-in for offline.run_offline: events in the order kfp.local gives them (promote ends
    after summarize), a warning, and a look at what the terminal already shows mid-run."""

    def run_offline(params, on_event, **_):
        events = [
            offline.Event("start", "summarize-run"),
            offline.Event("warning", "summarize-run", text="only one class (Pass); the inspector cannot learn"),
        ]
        for event in events:
            on_event(event)
        sys.stderr.flush()
        seen_mid_run.append(sys.stderr.buffer.getvalue().decode() if hasattr(sys.stderr, "buffer") else "")
        for event in (
            offline.Event("progress", "summarize-run", 5, 10),
            offline.Event("end", "summarize-run", status="SUCCESS"),
            offline.Event("start", "promote-champion"),
            offline.Event("end", "promote-champion", status="SUCCESS"),
        ):
            on_event(event)
        run_dir = tmp_path / LONG_DIR / "20260101-000000-abcd"
        run_dir.mkdir(parents=True)
        (run_dir / "metrics.json").write_text(json.dumps({"ok": True}))
        (run_dir / "result.json").write_text(json.dumps({"ok": True}))
        return offline.RunResult(
            run_id=run_dir.name,
            run_dir=run_dir,
            ok=True,
            seconds=1.0,
            metrics={"eval_status_accuracy": 1.0},
            tuned_endpoint=ENDPOINT,
            report=str(run_dir / "report.html"),
            summary="Fine.",
        )

    return run_offline


def test_off_a_terminal_a_run_streams_plain_lines_in_dag_order(tmp_path, monkeypatch):
    seen_mid_run: list = []
    monkeypatch.setattr(offline, "run_offline", fake_run_offline(seen_mid_run, tmp_path))
    result = CliRunner().invoke(app, ["run", "--data-dir", str(tmp_path / "lv")])
    assert result.exit_code == 0, result.output
    (mid_run,) = seen_mid_run
    assert "started  12. Summarize the run" in mid_run, "task lines must appear when they happen"
    assert "warning  12. Summarize the run: only one class (Pass)" in mid_run, "warnings reach the terminal"
    lines = result.output.splitlines()
    summary = lines[lines.index("tasks, in pipeline order:") :]
    promote = next(i for i, line in enumerate(summary) if "11. Promote" in line)
    summarize = next(i for i, line in enumerate(summary) if "12. Summarize" in line)
    assert promote < summarize, "tasks are listed in DAG order, not finish order"
    # Paths and endpoint names are never wrapped at 80 columns: each is whole on one line.
    assert any(ENDPOINT in line for line in lines), "the endpoint was wrapped"
    assert any(f"{LONG_DIR}/20260101-000000-abcd/report.html" in line for line in lines), "the report path was wrapped"


def test_component_warnings_become_events():
    said = offline.parse_line("    warning: only one class (Pass); the inspector cannot learn", "import-dataset")
    assert said == offline.Event("warning", "import-dataset", text="only one class (Pass); the inspector cannot learn")
    logged = offline.parse_line("[KFP Executor 2026-01-01 10:00:00,000 WARNING]: golden set too small", "x")
    assert logged.kind == "warning" and logged.text == "golden set too small"
    assert offline.parse_line("    warnings were none", "x") is None


def test_pipeline_log_summarises_polling():
    poll = (
        "[KFP Executor 2026-01-01 10:00:00,000 INFO]: HTTP Request: GET "
        'http://127.0.0.1:4000/v1beta1/projects/p/locations/l/tuningJobs/7 "HTTP/1.1 200 OK"\n'
    )
    out = io.StringIO()
    log = offline.PipelineLog(out, every=100)
    log.write("Executing task 'wait-for-tuning'\n")
    for _ in range(931):
        log.write(poll)
    log.write("    tuningJobs/7: JOB_STATE_SUCCEEDED\n")
    log.close_series()
    lines = out.getvalue().splitlines()
    assert len(lines) < 20, f"{len(lines)} lines for 931 polls"
    assert lines[1] == poll.rstrip("\n"), "the first poll is kept as it was"
    assert sum(int(line.split(" polled ")[1].split()[1]) for line in lines if " polled " in line) == 930
    assert lines[-1] == "    tuningJobs/7: JOB_STATE_SUCCEEDED"
