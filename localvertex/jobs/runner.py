"""The training runner: PENDING jobs, one at a time, each in a fresh worker process.

Restart rule (:meth:`TrainingRunner.recover`): a job found ``PENDING`` at start-up is
re-queued; a job found ``RUNNING`` is marked ``FAILED`` ("the local Vertex AI server
stopped/restarted during training") because its worker process died with the old
server; a job found ``CANCELLING`` ends ``CANCELLED`` (the cancel was accepted).
Stopping the runner does the same to the job it is training.

A full disk (the job store refuses a write): a job that was training ends FAILED saying so,
kept in memory until its file can be written; a PENDING job whose claim is refused stays
PENDING and is tried again with backoff, so the loop never spins.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue as queue_mod
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import tuning_data
from ..errors import RPC_ABORTED, RPC_INTERNAL, RPC_RESOURCE_EXHAUSTED, failed_precondition, is_disk_full, not_found
from ..ids import check_id, new_id
from .checkpoints import intermediate_epochs
from .protocol import (
    CANCEL_COMMAND,
    Cancelled,
    CheckpointSaved,
    DataLoaded,
    Done,
    EpochFinished,
    Failed,
    Message,
    Outcome,
    WorkerSpec,
    decode,
    is_message,
)
from .resource import (
    CANCELLED,
    CANCELLING,
    PENDING,
    RUNNING,
    SUCCEEDED,
    TERMINAL,
    base_model_name,
    endpoint_name,
    id_of,
    mark_cancelled,
    mark_cancelling,
    mark_failed,
    mark_running,
    mark_succeeded,
    model_name,
    record_checkpoint,
    record_data_stats,
    record_epoch,
    state_word,
)
from .store import JobStore, atomic_write_json

log = logging.getLogger("localvertex.jobs")

WORKER_MODULE = "localvertex.jobs"  # python -m localvertex.jobs <spec.json>
# The directory holding the localvertex package: the worker must import this copy.
PACKAGE_PARENT = Path(__file__).resolve().parents[2]

RESTARTED_MESSAGE = (
    "The local Vertex AI server stopped or restarted during training, so "
    "this job did not finish. Create the tuning job again."
)
STOPPED_MESSAGE = (
    "The local Vertex AI server stopped during training, so this job did not finish. Create the tuning job again."
)


@dataclass(frozen=True)
class Stopped:
    """The runner is stopping (the server shuts down) while the job trains."""


class _StdoutClosed:
    """The worker closed its stdout: it is exiting."""


STDOUT_CLOSED = _StdoutClosed()
Result = Outcome | Stopped | None  # None: the worker exited without saying how


def _worker_env() -> dict[str, str]:
    env = dict(os.environ)
    path = [str(PACKAGE_PARENT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(path)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


class WorkerProcess:
    """One running worker: the child process and a thread that decodes its stdout."""

    def __init__(self, job_id: str, spec_path: Path, log_path: Path, cwd: Path) -> None:
        self.job_id = job_id
        with open(log_path, "ab") as log_fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", WORKER_MODULE, str(spec_path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log_fh,
                env=_worker_env(),
                cwd=str(cwd),
                start_new_session=True,
            )
        self._messages: queue_mod.Queue = queue_mod.Queue()
        self._reader = threading.Thread(target=self._read_stdout, daemon=True, name=f"localvertex-worker-{job_id}")
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def _read_stdout(self) -> None:
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if is_message(line):
                try:
                    self._messages.put(decode(line))
                except ValueError:
                    log.warning("job %s: bad worker message", self.job_id)
            elif line.strip():
                log.debug("job %s worker: %s", self.job_id, line[:500])
        self._messages.put(STDOUT_CLOSED)

    def next_message(self, timeout: float) -> Message | _StdoutClosed | None:
        """The next message, STDOUT_CLOSED at the end, or None if none came in ``timeout``."""
        try:
            return self._messages.get(timeout=timeout)
        except queue_mod.Empty:
            return None

    def send_cancel(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.write(f"{CANCEL_COMMAND}\n".encode())
            self.proc.stdin.flush()

    def close(self, wait_s: float) -> None:
        """Close its stdin (the worker stops at its next step), wait, then terminate/kill."""
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._reader.join(timeout=2)


def fail_after_error(job: dict[str, Any], exc: Exception, jobs_dir: Path) -> None:
    """The final state of a job the runner itself failed on: CANCELLED if a cancel was under way,
    else FAILED saying why (a full disk by name and folder, ``jobs_dir`` when the error names
    none, with the fix)."""
    if job["state"] == CANCELLING:
        mark_cancelled(job)
    elif is_disk_full(exc):
        mark_failed(
            job,
            RPC_RESOURCE_EXHAUSTED,
            f"The local Vertex AI could not save this job's training state: {exc.strerror} "
            f"({Path(exc.filename).parent if exc.filename else jobs_dir}). "
            "Free space there and create the tuning job again.",
        )
    else:
        mark_failed(
            job, RPC_INTERNAL, f"Internal error in the local tuning runner ({type(exc).__name__}); see localvertex.log."
        )


def settle(job: dict[str, Any], result: Result, exitcode: int | None) -> None:
    """The job's final state. Runs under the store lock, so a cancel accepted until now wins."""
    if job["state"] == CANCELLING or isinstance(result, Cancelled):
        mark_cancelled(job)
    elif isinstance(result, Done):
        mark_succeeded(job, result.metrics())
    elif isinstance(result, Stopped):
        mark_failed(job, RPC_ABORTED, STOPPED_MESSAGE)
    elif isinstance(result, Failed):
        mark_failed(job, result.code, result.message)
    else:
        mark_failed(job, RPC_INTERNAL, f"The training process exited unexpectedly (exit code {exitcode}).")


class TrainingRunner:
    """Runs PENDING jobs one at a time, each in a fresh worker process."""

    POLL_S = 0.2
    CANCEL_GRACE_S = 3.0
    RETRY_FIRST_S, RETRY_MAX_S = 0.5, 5.0  # backoff after a runner error

    def __init__(self, store: JobStore, data_dir: Path, storage_endpoint: str) -> None:
        self.store = store
        self.data_dir = Path(data_dir)
        self.models_dir = self.data_dir / "models"
        self.models_dir.mkdir(parents=True, exist_ok=True)
        self.storage_endpoint = storage_endpoint
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.recover()

    def recover(self) -> None:
        """Apply the restart rule to jobs left behind by a previous server."""
        for job in self.store.list():
            if job["state"] == CANCELLING:
                log.info("job %s was CANCELLING when the server stopped; CANCELLED", id_of(job))
                self.store.update(id_of(job), mark_cancelled, keep_unsaved=True)
            elif job["state"] == RUNNING:
                log.warning("job %s was RUNNING when the server stopped; marking it FAILED", id_of(job))
                self.store.update(
                    id_of(job), lambda j: mark_failed(j, RPC_ABORTED, RESTARTED_MESSAGE), keep_unsaved=True
                )
                self.remove_models(job)
        for partial in self.models_dir.glob("*.partial"):
            shutil.rmtree(partial, ignore_errors=True)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="localvertex-runner", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with contextlib.suppress(OSError):
            self.store.save_unsaved()  # a final state the disk refused until now

    def model_dir(self, job: dict[str, Any]) -> Path:
        model_id = check_id(job["_local"]["modelId"], "model id")
        return self.models_dir / model_id

    def remove_models(self, job: dict[str, Any]) -> None:
        """Delete a job's tuned model and its checkpoints' weights (a job that did not
        succeed has no tuned model, and its checkpoints' endpoints stop answering)."""
        main = self.model_dir(job)
        partial = main.with_name(f"{main.name}.partial")  # a save that failed (a full disk) left it
        for path in [main, partial, *self.models_dir.glob(f"{main.name}-checkpoint-*")]:
            shutil.rmtree(path, ignore_errors=True)

    def cancel(self, job_id: str) -> dict[str, Any]:
        """PENDING -> CANCELLED at once; RUNNING -> CANCELLING (the loop stops the worker)."""
        with self.store.lock:
            job = self.store.get(job_id)
            if job is None:
                raise not_found(f"TuningJob {job_id} not found")
            state = job["state"]
            if state in TERMINAL:
                raise failed_precondition(f"Cannot cancel tuning job {job['name']}: it is already {state_word(job)}.")
            if state == PENDING:
                job = self.store.update(job_id, mark_cancelled)
            elif state == RUNNING:
                job = self.store.update(job_id, mark_cancelling)
        self._wake.set()
        log.info("cancel requested for job %s (was %s)", job_id, state)
        return job

    # -- loop
    def _loop(self) -> None:
        delay = self.RETRY_FIRST_S
        while not self._stopping.is_set():
            job = None
            try:
                self.store.save_unsaved()
                job = self.store.next_pending()
                if job is not None:
                    self._run(job)
            except Exception as exc:
                self._after_error(job, exc, repeated=delay > self.RETRY_FIRST_S)
                self._stopping.wait(delay)  # an error that comes back (a full disk) must not spin
                delay = min(2 * delay, self.RETRY_MAX_S)
                continue
            delay = self.RETRY_FIRST_S
            if job is None:
                self._wake.wait(1.0)
                self._wake.clear()

    def _after_error(self, job: dict[str, Any] | None, exc: Exception, repeated: bool) -> None:
        """Log a runner error (its traceback once per run of errors) and end the job it hit.

        A PENDING job whose claim the full disk refused stays PENDING, to be tried again after
        the backoff. Any other job ends at once, in memory if the disk refuses (written later by
        ``save_unsaved``): never RUNNING with no worker.
        """
        what = f"job {id_of(job)}" if job else "saving jobs"
        if repeated:
            log.warning("runner error on %s again: %s: %s", what, type(exc).__name__, exc)
        else:
            log.exception("runner error on %s", what)
        with self.store.lock:  # a cancel between the read and the write must not be overwritten
            current = self.store.get(id_of(job)) if job else None
            if current is None or current["state"] in TERMINAL or (current["state"] == PENDING and is_disk_full(exc)):
                return
            try:
                self.store.update(id_of(job), lambda j: fail_after_error(j, exc, self.store.dir), keep_unsaved=True)
            except Exception:
                log.exception("job %s could not be marked ended", id_of(job))
        self.remove_models(job)

    def _claim(self, job_id: str) -> dict[str, Any] | None:
        """Move the job to RUNNING, unless it left PENDING (a cancel) since it was picked."""
        with self.store.lock:
            if self.store.get(job_id)["state"] != PENDING:
                return None
            return self.store.update(job_id, mark_running)

    def _worker_spec(self, job: dict[str, Any]) -> WorkerSpec:
        loc, spec = job["_local"], job["supervisedTuningSpec"]
        return WorkerSpec(
            job_id=loc["id"],
            project=loc["project"],
            storage_endpoint=self.storage_endpoint,
            training_uri=spec["trainingDatasetUri"],
            validation_uri=spec.get("validationDatasetUri"),
            config=loc["config"],
            model_dir=str(self.model_dir(job)),
            model_meta={
                "tuningJob": job["name"],
                "model": model_name(job),
                "endpoint": endpoint_name(job),
                "baseModel": base_model_name(job),
                **({"preTunedModel": job["preTunedModel"]} if job.get("preTunedModel") else {}),
            },
            limits=tuning_data.default_limits(loc.get("localBaseModel")),
            checkpoint_epochs=intermediate_epochs(
                int(loc["config"]["epochs"]), bool(loc.get("exportLastCheckpointOnly"))
            ),
            initial_model_dir=self._initial_model_dir(job),
        )

    def _initial_model_dir(self, job: dict[str, Any]) -> str | None:
        """Continuous tuning: the weights directory of the pre-tuned model or checkpoint."""
        pre = job["_local"].get("preTuned")
        return str(self.models_dir / check_id(pre["modelKey"], "model key")) if pre else None

    def _start_worker(self, job: dict[str, Any]) -> tuple[WorkerProcess, Path]:
        """Write the worker's spec under work/ and start it, stderr to logs/<id>.log."""
        work, logs = self.data_dir / "work", self.data_dir / "logs"
        work.mkdir(exist_ok=True)
        logs.mkdir(exist_ok=True)
        spec_path = work / f"{id_of(job)}.json"
        atomic_write_json(spec_path, self._worker_spec(job).to_json())
        worker = WorkerProcess(id_of(job), spec_path, logs / f"{id_of(job)}.log", self.data_dir)
        log.info("job %s RUNNING (pid %s, %s)", id_of(job), worker.pid, job["_local"]["config"])
        return worker, spec_path

    def _run(self, job: dict[str, Any]) -> None:
        job = self._claim(id_of(job))
        if job is None:
            return
        worker, spec_path = self._start_worker(job)
        result: Result = None
        try:
            result = self._supervise(id_of(job), worker)
        finally:
            worker.close(wait_s=10 if isinstance(result, Done) else 1)
            spec_path.unlink(missing_ok=True)
        self._finish(job, result, worker.returncode)

    def _supervise(self, job_id: str, worker: WorkerProcess) -> Result:
        """Relay progress until the worker exits; stop it on cancel or when stopping."""
        outcome: Outcome | None = None
        cancel_sent_at: float | None = None
        while True:
            msg = worker.next_message(self.POLL_S)
            if msg is STDOUT_CLOSED:
                return outcome
            if isinstance(msg, (DataLoaded, EpochFinished, CheckpointSaved)):
                self._progress(job_id, msg)
            elif msg is not None:
                outcome = msg
            elif self._stopping.is_set():
                return Stopped()
            elif self.store.get(job_id)["state"] == CANCELLING:
                if cancel_sent_at is None:
                    cancel_sent_at = time.monotonic()
                    worker.send_cancel()
                elif time.monotonic() - cancel_sent_at > self.CANCEL_GRACE_S:
                    return Cancelled()

    def _progress(self, job_id: str, msg: DataLoaded | EpochFinished | CheckpointSaved) -> None:
        if isinstance(msg, DataLoaded):
            self.store.update(job_id, lambda j: record_data_stats(j, msg.stats, msg.validation_example_count))
            return
        if isinstance(msg, CheckpointSaved):
            check_id(msg.model_key, "checkpoint model key")
            checkpoint = {
                "checkpointId": msg.checkpoint_id,
                "epoch": msg.epoch,
                "step": msg.step,
                "modelKey": msg.model_key,
                "endpointId": new_id(),
            }
            self.store.update(job_id, lambda j: record_checkpoint(j, checkpoint))
            log.info("job %s checkpoint %s (epoch %s) deployed", job_id, msg.checkpoint_id, msg.epoch)
            return
        self.store.update(job_id, lambda j: record_epoch(j, msg.stats))
        log.info(
            "job %s epoch %s: train_loss=%s validation_loss=%s",
            job_id,
            msg.stats.get("epoch"),
            msg.stats.get("train_loss"),
            msg.stats.get("validation_loss"),
        )

    def _finish(self, job: dict[str, Any], result: Result, exitcode: int | None) -> None:
        # A final state is kept in memory if the disk refuses it, and written once it can be.
        final = self.store.update(id_of(job), lambda j: settle(j, result, exitcode), keep_unsaved=True)
        if final["state"] == SUCCEEDED:
            log.info("job %s SUCCEEDED in %.1fs", id_of(job), result.train_seconds)
            return
        self.remove_models(job)
        if final["state"] == CANCELLED:
            log.info("job %s CANCELLED", id_of(job))
        else:
            log.warning("job %s FAILED: %s", id_of(job), final["error"]["message"].partition("\n")[0])
