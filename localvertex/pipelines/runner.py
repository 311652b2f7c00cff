"""The pipeline runner: PENDING PipelineJobs, ``slots`` at a time (1 by default; the
``LOCALVERTEX_PIPELINE_SLOTS`` variable or the constructor changes it), each in a fresh
``python -m localvertex.pipelines.worker`` process that this runner supervises.

Cancel: the job goes CANCELLING, the worker gets SIGTERM and forwards it to the running
task (as Vertex AI does: ``wait_for_tuning`` then cancels its tuning job); after
``CANCEL_GRACE_S`` the worker's process group is killed. The job ends CANCELLED.

Restart rule (:meth:`PipelineRunner.recover`), as for tuning jobs: a job found RUNNING at
start-up ends FAILED ("the local Vertex AI server stopped during the run"), one found
CANCELLING ends CANCELLED, PENDING ones wait for a slot again. An orderly stop first sends
SIGTERM to the running tasks while the server still answers (so a task waiting on a tuning
job cancels it), waits up to ``STOP_GRACE_S``, then marks the job FAILED the same way.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue as queue_mod
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .. import task_logs
from ..childproc import die_with_parent
from ..errors import RPC_ABORTED, RPC_INTERNAL
from ..jobs.store import atomic_write_json
from ..metadata import pipeline_runs
from ..metadata.store import MetadataStore
from .resource import (
    CANCELLING,
    RUNNING,
    id_of,
    mark_cancelled,
    mark_failed,
    mark_running,
    mark_succeeded,
    now_rfc3339,
    task_detail,
)
from .store import PipelineJobStore
from .worker import PREFIX

log = logging.getLogger("localvertex.pipelines")

PACKAGE_PARENT = Path(__file__).resolve().parents[2]
RPC_FAILED_PRECONDITION = 9
STOPPED_MESSAGE = (
    "The local Vertex AI server stopped during this pipeline run, so the run did not finish "
    "(the running task was sent SIGTERM, which cancels a tuning job it waits on). Create the run again."
)
_CLOSED = object()


def worker_env(data_dir: Path) -> dict[str, str]:
    """The twin's variables for the tasks (they reach Vertex AI and storage through them)."""
    try:
        env = json.loads((data_dir / "stack.json").read_text())["env"]
    except (OSError, ValueError, KeyError):
        env = {}
    path = [str(PACKAGE_PARENT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    return {**env, "PYTHONPATH": os.pathsep.join(path), "PYTHONUNBUFFERED": "1"}


class PipelineRunner:
    POLL_S = 0.2
    CANCEL_GRACE_S = 120.0
    STOP_GRACE_S = 20.0

    def __init__(self, store: PipelineJobStore, metadata: MetadataStore, data_dir: Path, slots: int | None = None):
        self.store, self.metadata, self.data_dir = store, metadata, Path(data_dir)
        self.slots = slots or int(os.environ.get("LOCALVERTEX_PIPELINE_SLOTS", "1"))
        self.runs_dir = self.data_dir / "pipelines" / "runs"
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self._wake = threading.Condition()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.recover()

    def recover(self) -> None:
        for job in self.store.list():
            if job["state"] == CANCELLING:
                self.store.update(id_of(job), mark_cancelled)
                self._end_metadata(id_of(job))
            elif job["state"] == RUNNING:
                log.warning("pipeline job %s was RUNNING when the server stopped; FAILED", id_of(job))
                self.store.update(id_of(job), lambda j: mark_failed(j, RPC_ABORTED, STOPPED_MESSAGE))
                self._end_metadata(id_of(job))

    def start(self) -> None:
        for n in range(self.slots):
            thread = threading.Thread(target=self._loop, name=f"localvertex-pipelines-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def notify(self) -> None:
        with self._wake:
            self._wake.notify_all()

    def stop(self) -> None:
        self._stopping.set()
        self.notify()
        for thread in self._threads:
            thread.join(self.STOP_GRACE_S + 10)
        self._threads.clear()

    def _claim(self) -> dict[str, Any] | None:
        with self.store.lock:
            job = self.store.next_pending()
            return self.store.update(id_of(job), mark_running) if job else None

    def _loop(self) -> None:
        while not self._stopping.is_set():
            job = self._claim()
            if job is None:
                with self._wake:
                    self._wake.wait(1.0)
                continue
            try:
                self._run(job)
            except Exception as exc:  # never leave a job RUNNING with no worker
                log.exception("pipeline runner error on %s", id_of(job))
                why = f"Internal error in the local pipeline runner ({type(exc).__name__}); see localvertex.log."
                with contextlib.suppress(Exception):
                    self.store.update(id_of(job), lambda j, why=why: mark_failed(j, RPC_INTERNAL, why))
                    self._end_metadata(id_of(job))

    def _start_worker(self, job: dict[str, Any]) -> tuple[subprocess.Popen, queue_mod.Queue]:
        run_dir = self.runs_dir / id_of(job)
        run_dir.mkdir(parents=True, exist_ok=True)
        spec = {
            "jobId": id_of(job),
            "project": job["_local"]["project"],
            "pipelineSpec": job["pipelineSpec"],
            "arguments": job["_local"]["arguments"],
            "enableCaching": job["_local"].get("enableCaching"),
            "localRoot": str(run_dir / "root"),
            "cacheRoot": str(self.data_dir / "pipelines" / "cache"),
            "gcsRoot": job["runtimeConfig"]["gcsOutputDirectory"],
            "workDir": str(PACKAGE_PARENT),
            "logDir": str(task_logs.log_dir(self.data_dir, job["_local"]["project"])),
            "env": worker_env(self.data_dir),
        }
        atomic_write_json(run_dir / "spec.json", spec)
        with open(run_dir / "pipeline.log", "ab") as log_fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", "localvertex.pipelines.worker", str(run_dir / "spec.json")],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log_fh,
                env={**os.environ, **spec["env"]},
                cwd=str(PACKAGE_PARENT),
                start_new_session=True,
                preexec_fn=die_with_parent(signal.SIGTERM),
            )
        messages: queue_mod.Queue = queue_mod.Queue()

        def read() -> None:
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace")
                if line.startswith(PREFIX):
                    with contextlib.suppress(ValueError):
                        messages.put(json.loads(line[len(PREFIX) :]))
            messages.put(_CLOSED)

        threading.Thread(target=read, daemon=True, name=f"pipeline-reader-{id_of(job)}").start()
        log.info("pipeline job %s RUNNING (pid %s)", id_of(job), proc.pid)
        return proc, messages

    def _run(self, job: dict[str, Any]) -> None:
        job_id = id_of(job)
        self._wait_for_context(job_id)
        pipeline_runs.set_run_state(self.metadata, self.store.get(job_id)["_local"]["runExecution"], "RUNNING")
        self.store.update(
            job_id,
            lambda j: task_detail(j, j["_local"]["pipelineName"]).update(state="RUNNING", startTime=now_rfc3339()),
        )
        proc, messages = self._start_worker(job)
        outcome, stopped = None, False
        signalled_at: float | None = None
        while True:
            msg = self._next(messages)
            if msg is _CLOSED:
                break
            if msg is not None:
                if msg["kind"] == "done":
                    outcome = msg
                else:
                    self._on_task(job_id, msg)
                continue
            wants_stop = self._stopping.is_set() or self.store.get(job_id)["state"] == CANCELLING
            stopped = stopped or self._stopping.is_set()
            if wants_stop and signalled_at is None:
                signalled_at = time.monotonic()
                with contextlib.suppress(OSError):
                    proc.send_signal(signal.SIGTERM)
            grace = self.STOP_GRACE_S if stopped else self.CANCEL_GRACE_S
            if signalled_at is not None and time.monotonic() - signalled_at > grace:
                with contextlib.suppress(OSError):
                    os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        self._settle(job_id, outcome, proc.returncode, stopped)

    def _next(self, messages: queue_mod.Queue):
        try:
            return messages.get(timeout=self.POLL_S)
        except queue_mod.Empty:
            return None

    def _wait_for_context(self, job_id: str, timeout: float = 10.0) -> None:
        """The run's contexts are written just after create (service.py); wait for them."""
        deadline = time.monotonic() + timeout
        while "runExecution" not in self.store.get(job_id)["_local"] and time.monotonic() < deadline:
            time.sleep(0.05)

    def _on_task(self, job_id: str, msg: dict[str, Any]) -> None:
        now = now_rfc3339()
        if msg["kind"] == "task_start":

            def started(j):
                task_detail(j, msg["task"]).update(
                    state="RUNNING", startTime=now, executorDetail=executor_detail(j, msg)
                )
                # What the task's execution records when it ends; kept out of the resource.
                j["_local"].setdefault("taskInputs", {})[msg["task"]] = {
                    "inputs": msg.get("inputs", {}),
                    "inputArtifacts": msg.get("inputArtifacts", {}),
                }

            self.store.update(job_id, started)
            return
        job = self.store.get(job_id)
        inputs = job["_local"].get("taskInputs", {}).get(msg["task"], {})
        execution = None
        if not msg.get("skipped"):
            execution = pipeline_runs.record_task(self.metadata, job, inputs, msg)

        def ended(j):
            t = task_detail(j, msg["task"])
            t.update(state=msg["state"], endTime=now)
            t.setdefault("startTime", now)
            if msg["state"] == "SKIPPED":  # a cache hit ran no container, so no CustomJob
                t.pop("executorDetail", None)
            if execution is not None:
                t["execution"] = self.metadata.get("executions", execution["name"])
                t["inputs"] = pipeline_runs.artifact_list(self.metadata, execution["name"], "INPUT")
                t["outputs"] = pipeline_runs.artifact_list(self.metadata, execution["name"], "OUTPUT")
            if msg.get("error"):
                t["error"] = {
                    "code": RPC_FAILED_PRECONDITION if msg["state"] == "FAILED" else 1,
                    "message": msg["error"],
                }
            j["_local"].get("taskInputs", {}).pop(msg["task"], None)

        self.store.update(job_id, ended)

    def _settle(self, job_id: str, outcome: dict | None, exitcode: int | None, stopped: bool) -> None:
        def settle(j):
            if j["state"] == CANCELLING or (outcome and outcome.get("cancelled") and not stopped):
                mark_cancelled(j)
            elif stopped:
                mark_failed(j, RPC_ABORTED, STOPPED_MESSAGE)
            elif outcome is None:
                mark_failed(j, RPC_INTERNAL, f"The pipeline worker exited unexpectedly (exit code {exitcode}).")
            elif outcome.get("failedTask") or outcome.get("error"):
                mark_failed(j, RPC_FAILED_PRECONDITION, failure_message(j, outcome))
            else:
                mark_succeeded(j)
            root = task_detail(j, j["_local"]["pipelineName"])
            root.update(
                state={"PIPELINE_STATE_SUCCEEDED": "SUCCEEDED", "PIPELINE_STATE_CANCELLED": "CANCELLED"}.get(
                    j["state"], "FAILED"
                ),
                endTime=j["endTime"],
            )

        final = self.store.update(job_id, settle)
        self._end_metadata(job_id)
        log.info("pipeline job %s %s", job_id, final["state"])

    def _end_metadata(self, job_id: str) -> None:
        job = self.store.get(job_id)
        run_exec = job["_local"].get("runExecution")
        if run_exec:
            state = {"PIPELINE_STATE_SUCCEEDED": "COMPLETE", "PIPELINE_STATE_CANCELLED": "CANCELLED"}.get(
                job["state"], "FAILED"
            )
            with contextlib.suppress(Exception):
                pipeline_runs.set_run_state(self.metadata, run_exec, state)


def executor_detail(job: dict[str, Any], msg: dict[str, Any]) -> dict[str, Any]:
    """The task's CustomJob, where its log is (task_logs.py): Vertex AI names the job that ran
    a container task in ``containerDetail.mainJob`` (PipelineTaskExecutorDetail.ContainerDetail,
    https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.pipelineJobs).
    The twin serves no customJobs resource: the id is for reading the task's log."""
    local = job["_local"]
    job_id = task_logs.custom_job_id(local["id"], msg["task"])
    return {"containerDetail": {"mainJob": task_logs.custom_job_name(local["project"], local["location"], job_id)}}


def failure_message(job: dict[str, Any], outcome: dict[str, Any]) -> str:
    """Vertex AI's words for a failed DAG, with the failed task's own error."""
    task = outcome.get("failedTask")
    if not task:
        return f"The pipeline run failed: {outcome.get('error', '')}"
    return (
        f"The DAG failed because some tasks failed. The failed tasks are: [{task}].; "
        f"Job (project_id = {job['_local']['project']}, job_id = {id_of(job)}) is failed due to the above error.; "
        f"Task {task}: {outcome.get('error', '')}"
    )
