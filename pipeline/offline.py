"""Offline runs: the checked-in compiled YAML under kfp.local, against the local Vertex AI.

Each run gets a folder ``runs/<run-id>/`` holding params.json, pipeline.log (every line
kfp.local and the components printed), metrics.json, result.json, report.html, summary.md
and predictions.csv; the pipeline's
artifacts stay under ``runs/<run-id>/pipeline_root/``. ``runs/`` is the offline
counterpart of Vertex Experiments (see ``python -m pipeline runs``).
"""

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from components.progress import parse_progress

REPO = Path(__file__).resolve().parent.parent
RUNS_DIR = Path(os.environ.get("PIPELINE_RUNS_DIR", REPO / "runs"))
# What an offline run uses for the cloud-only parameters.
LOCAL_DEFAULTS = {"project": "local-project", "bucket": "gs://local-bucket", "poll_interval_seconds": 1}

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TASK_START = re.compile(r"Executing task '([\w-]+)'")
_TASK_END = re.compile(r"Task '([\w-]+)' finished with status (\w+)")
# What a component says as a warning: its own "warning: ..." lines, and WARNING records of the
# logging module (kfp's executor formats them "[KFP Executor <time> WARNING]: ...").
_WARNING = re.compile(r"^\s*(?:warning:\s*(?P<said>.+)|\[KFP Executor [^\]]* WARNING\]:\s*(?P<logged>.+))", re.I)
# One poll of a long-running operation, as httpx logs it (wait_for_tuning polls every second offline).
_POLL = re.compile(r'HTTP Request: GET (\S+) "HTTP/[\d.]+ (\d+)')


@dataclass
class Event:
    """Something the progress view shows: a task started, progressed or ended."""

    kind: str  # "start", "progress", "end", "warning"
    task: str
    done: int = 0
    total: int = 0
    status: str = ""
    text: str = ""  # a warning's words


@dataclass
class RunResult:
    """What an offline run produced; ``ok`` is False when a task failed."""

    run_id: str
    run_dir: Path
    ok: bool
    seconds: float
    metrics: dict = field(default_factory=dict)
    tuned_endpoint: str = ""
    report: str = ""
    summary: str = ""
    error: str = ""
    failed_task: str = ""
    task_seconds: dict = field(default_factory=dict)


def new_run_id() -> str:
    """A sortable, unique run id such as 20261121-203015-a1b2."""
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def parse_line(line: str, current_task: str) -> Event | None:
    """Turns one line of the kfp.local stream into an Event, if it is one.

    Task starts and ends are kfp.local's own log lines; progress is the structured
    ``::progress::`` record the components print (components.progress.report_progress).
    """
    text = _ANSI.sub("", line)
    if match := _TASK_START.search(text):
        return Event("start", match.group(1))
    if match := _TASK_END.search(text):
        return Event("end", match.group(1), status=match.group(2))
    if current_task and (record := parse_progress(text)):
        return Event("progress", current_task, record["done"], record["total"])
    if match := _WARNING.match(text):
        return Event("warning", current_task, text=(match.group("said") or match.group("logged")).strip())
    return None


class PipelineLog:
    """pipeline.log, written line by line, with repeated polls summarised.

    An offline tuning job is polled every second: logged one by one, the polls were 931 of a
    2,381-line log and buried its warnings. The first poll of a series is kept; identical ones
    after it are counted, with one line per ``every`` of them and one for the rest when
    something else is logged.
    """

    def __init__(self, file, every: int = 100):
        self.file, self.every = file, every
        self.poll: tuple[str, str] | None = None  # (url, HTTP status) of the series being counted
        self.repeats = 0

    def write(self, line: str) -> None:
        match = _POLL.search(line)
        poll = match.groups() if match else None
        if poll is not None and poll == self.poll:
            self.repeats += 1
            if self.repeats % self.every == 0:
                self._summary(self.every)
            return
        self.close_series()
        self.file.write(line)
        self.poll = poll

    def close_series(self) -> None:
        """Writes the count of polls not summarised yet, and ends the series."""
        if self.repeats % self.every:
            self._summary(self.repeats % self.every)
        self.poll, self.repeats = None, 0

    def _summary(self, count: int) -> None:
        url, status = self.poll
        self.file.write(f"    ... polled {url} {count} more time(s), HTTP {status} ({self.repeats} so far)\n")


def shown_params(params: dict) -> dict:
    """``params`` as stored in params.json: a webhook URL is a credential (its path and query are the
    key), so only its host is kept."""
    from urllib.parse import urlparse

    url = params.get("notify_webhook_url")
    if not url:
        return params
    return {**params, "notify_webhook_url": f"<set: {urlparse(url).hostname or 'unparseable'}>"}


def run_offline(
    params: dict,
    on_event: Callable[[Event], None] = lambda e: None,
    *,
    runs_dir: Path | None = None,
    data_dir: Path | None = None,
    local_dataset: Path | None = None,
    yaml_path: Path | None = None,
    enable_caching: bool = False,
) -> RunResult:
    """Runs the compiled pipeline with ``params`` on a fresh local stack.

    Args:
        params: complete, checked pipeline parameters (see pipeline.params.resolve).
        on_event: called for each task start, progress step, warning and end.
        runs_dir: parent folder of run folders [default: RUNS_DIR].
        data_dir: the local Vertex AI's data folder (default: its own default).
        local_dataset: a local labelled image set (folder or CSV/JSONL manifest) to upload
            to the local storage and tune on; it sets ``dataset_uri``.
        yaml_path: the compiled pipeline to run [default: the checked-in one].
        enable_caching: let kfp.local reuse results of identical data steps.
    """
    from localvertex import LocalStack
    from localvertex.stack import default_data_dir
    from pipeline.pipeline import COMPILED_YAML  # here: it imports kfp, too slow for every command

    data_dir = Path(data_dir or default_data_dir()).resolve()
    run_id = new_run_id()
    run_dir = (runs_dir or RUNS_DIR) / run_id
    run_dir.mkdir(parents=True)
    write_run_record(run_dir, {"run_id": run_id, "data_dir": str(data_dir), "pid": os.getpid(), "state": "running"})
    result_file = run_dir / "result.json"
    spec = {
        "yaml": str(yaml_path or COMPILED_YAML),
        "params": params,
        "pipeline_root": str(run_dir / "pipeline_root"),
        "result": str(result_file),
        "enable_caching": enable_caching,
    }
    started = time.monotonic()
    bucket = params["bucket"].removeprefix("gs://").split("/")[0]
    local_names: dict[str, str] = {}  # uploaded copy's gs:// URI -> the user's local file or folder
    # Line-buffered: pipeline.log grows as the run goes (tail -f it), not only at the end.
    try:
        with (
            LocalStack(data_dir, bucket=bucket, project=params["project"]) as stack,
            open(run_dir / "pipeline.log", "w", buffering=1) as log,
        ):
            if local_dataset:
                from pipeline.uploads import local_text, upload_local_dataset

                stack.apply_env()
                uri = upload_local_dataset(local_dataset, params["bucket"], params["project"], local_names=local_names)
                params = {**params, "dataset_uri": uri}
                spec["params"] = params
                shown = on_event  # warnings about the user's files name their local paths

                def on_event(event: Event) -> None:
                    shown(Event(**{**event.__dict__, "text": local_text(event.text, local_names)}))

            (run_dir / "params.json").write_text(json.dumps(shown_params(params), indent=2, sort_keys=True))
            returncode, current, failed, task_seconds = _follow_child(spec, stack.env, PipelineLog(log), on_event)
    except BaseException:  # Ctrl-C, a busy data folder, a failed upload: `runs` shows it as interrupted
        update_run_record(run_dir, state="interrupted")
        raise
    seconds = round(time.monotonic() - started, 2)
    return _finish(run_dir, data_dir, seconds, returncode, current, failed, task_seconds, local_names)


def _follow_child(spec: dict, env: dict, log: PipelineLog, on_event: Callable[[Event], None]):
    """Runs the kfp.local child, logging its lines and reporting its events as they come.

    Returns (exit code, the task running last, the first task that failed or "", {task: seconds}).
    """
    started, task_started, task_seconds = time.monotonic(), {}, {}
    current, failed = "", ""
    child = subprocess.Popen(
        [sys.executable, "-m", "pipeline.local_child", json.dumps(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
        cwd=REPO,
    )
    try:
        for line in child.stdout:
            log.write(line)
            event = parse_line(line, current)
            if event is None:
                continue
            if event.kind == "start":
                current, task_started[event.task] = event.task, time.monotonic()
            elif event.kind == "end":
                task_seconds[event.task] = round(time.monotonic() - task_started.get(event.task, started), 2)
                failed = failed or (event.task if event.status != "SUCCESS" else "")
            on_event(event)
        log.close_series()
    finally:  # Ctrl-C or any error here: the runner must not outlive us
        if child.poll() is None:
            child.terminate()
        child.wait()
    return child.returncode, current, failed, task_seconds


def _finish(
    run_dir: Path,
    data_dir: Path,
    seconds: float,
    returncode: int,
    current: str,
    failed: str,
    task_seconds: dict,
    local_names: dict | None = None,
) -> RunResult:
    """Reads the child's result, copies the report files, writes result.json and metrics.json.
    ``local_names`` maps an uploaded dataset's URIs to the user's files, for the error."""
    result_file = run_dir / "result.json"
    outcome = (
        json.loads(result_file.read_text())
        if result_file.exists()
        else {"ok": False, "error": f"the kfp.local runner exited with code {returncode} before writing a result"}
    )
    failed = failed or (current if not outcome["ok"] else "")
    if failed:  # the component's own exception says more than kfp.local's "task failed"
        # An import lists up to 25 problems and a count of the rest: show them all.
        lines = 30 if failed == "import-dataset" else 10
        found = exception_text(task_log_section(run_dir, failed), lines, log_path=run_dir / "pipeline.log")
        outcome["error"] = found or outcome.get("error", "")
        if local_names:
            from pipeline.uploads import local_text

            outcome["error"] = local_text(outcome["error"], local_names)
    outcome["data_dir"] = str(data_dir)  # where the tuned model lives, for `inspect`
    for key, name in (("report", "report.html"), ("summary", "summary.md"), ("predictions", "predictions.csv")):
        if outcome.get(key):  # copies with telling names, next to the run's metrics
            outcome[key] = str(shutil.copyfile(outcome[key], run_dir / name))
    result_file.write_text(json.dumps(outcome, indent=2))
    result = RunResult(
        run_id=run_dir.name,
        run_dir=run_dir,
        ok=outcome["ok"] and returncode == 0,
        seconds=seconds,
        metrics=outcome.get("metrics", {}),
        tuned_endpoint=outcome.get("tuned_endpoint", ""),
        report=outcome.get("report", ""),
        error=outcome.get("error", ""),
        summary=Path(outcome["summary"]).read_text() if outcome.get("summary") else "",
        failed_task=failed,
        task_seconds=task_seconds,
    )
    record = {
        "run_id": run_dir.name,
        "ok": result.ok,
        "seconds": seconds,
        "task_seconds": task_seconds,
        **result.metrics,
    }
    (run_dir / "metrics.json").write_text(json.dumps(record, indent=2, sort_keys=True))
    update_run_record(run_dir, state="succeeded" if result.ok else "failed", failed_task=failed)
    return result


RUN_RECORD = "run.json"  # {"run_id", "data_dir", "pid", "state", "started_at"}, written when the run starts


def write_run_record(run_dir: Path, record: dict) -> None:
    """Writes run.json: written first, so that a run killed before its end still says where it ran."""
    record = {"started_at": datetime.now(UTC).isoformat(timespec="seconds"), **record}
    (run_dir / RUN_RECORD).write_text(json.dumps(record, indent=2, sort_keys=True))


def update_run_record(run_dir: Path, **changes) -> None:
    path = run_dir / RUN_RECORD
    record = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**record, **changes}, indent=2, sort_keys=True))


def task_log_section(run_dir: Path, task: str) -> list[str]:
    """The lines a task printed, from its start to kfp.local's "finished" line, ANSI-free."""
    text = _ANSI.sub("", (run_dir / "pipeline.log").read_text())
    start = text.rfind(f"Executing task '{task}'")
    end = text.find(f"Task '{task}' finished with status", max(start, 0))
    return text[max(start, 0) : end if end >= 0 else None].splitlines()


def task_log_tail(run_dir: Path, task: str, lines: int = 12) -> str:
    """The last lines a task printed before it ended: for showing why it failed."""
    return "\n".join(line.strip() for line in task_log_section(run_dir, task)[-lines:])


_EXCEPTION = re.compile(r"^(\s*)([\w.]*(?:Error|Exception|Timeout\w*|Cancelled)\b:.*)$")


def _exception_line(log_tail: str) -> str:
    """The last "SomeError: message" line of a traceback, or ""."""
    found = [m.group(2) for m in map(_EXCEPTION.match, log_tail.splitlines()) if m]
    return found[-1] if found else ""


def exception_text(lines: list[str], max_lines: int = 10, log_path: Path | None = None) -> str:
    """The last exception of a traceback with its message's own further lines.

    A multi-line message (an import step listing every bad row) continues on lines indented
    deeper than the exception line; the first ``max_lines`` of them are kept and the rest
    counted, naming ``log_path`` where they are.
    """
    starts = [i for i, line in enumerate(lines) if _EXCEPTION.match(line)]
    if not starts:
        return ""
    first = _EXCEPTION.match(lines[starts[-1]])
    indent, rest = len(first.group(1)), []
    for line in lines[starts[-1] + 1 :]:
        if not line.strip() or len(line) - len(line.lstrip()) <= indent:
            break
        rest.append(line.strip())
    shown = [first.group(2), *("  " + line for line in rest[:max_lines])]
    if len(rest) > max_lines:
        where = f" in {log_path}" if log_path else ""
        shown.append(f"  ... and {len(rest) - max_lines} more line(s){where}")
    return "\n".join(shown)


def load_runs(runs_dir: Path | None = None) -> list[dict]:
    """Past runs, newest first: {"run_id", "state", "data_dir", "params", "metrics"}.

    A run without metrics (killed, interrupted, still running) is listed too, with its state,
    so that `runs` never hides one.
    """
    runs = []
    folders = sorted((p for p in (runs_dir or RUNS_DIR).glob("*") if p.is_dir()), reverse=True)
    for run_dir in folders:
        record, metrics = _json_file(run_dir / RUN_RECORD), _json_file(run_dir / "metrics.json")
        params = _json_file(run_dir / "params.json")
        if not (record or metrics or params):
            continue  # not a run folder
        runs.append(
            {
                "run_id": run_dir.name,
                "state": run_state(record, metrics),
                "data_dir": record.get("data_dir") or _json_file(run_dir / "result.json").get("data_dir", ""),
                "metrics": metrics,
                "params": params,
            }
        )
    return runs


def run_state(record: dict, metrics: dict) -> str:
    """succeeded, failed, running, or interrupted (ended without a result: killed, Ctrl-C)."""
    if metrics:
        return "succeeded" if metrics.get("ok") else "failed"
    if record.get("state") == "running" and _alive(record.get("pid")):
        return "running"
    return "interrupted"


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, TypeError, ValueError):
        return False
    return True


def _json_file(path: Path) -> dict:
    """The JSON object in ``path``; {} when it is missing or unreadable (a run killed mid-write)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
