"""Tuning jobs: validation of create requests, the on-disk job store, and the runner that
trains one job at a time in a worker process (``python -m localvertex.jobs``).

Job files are ``<data_dir>/jobs/<id>.json``: the TuningJob REST resource (camelCase, as
Vertex returns it) plus ``localTuningMetrics`` (per-epoch losses; the SDK ignores unknown
keys) and a private ``_local`` block (ids, project, location) that is never served.
Writes are atomic (tmp file + ``os.replace``).

Restart rule: a job found ``PENDING`` at start-up is re-queued; a job found ``RUNNING`` is
marked ``FAILED`` ("the local Vertex AI server stopped/restarted during training") because
its worker process died with the old server; a job found ``CANCELLING`` ends ``CANCELLED``
(the cancel was accepted). Stopping the stack does the same to the job it is training.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import queue as queue_mod
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger("localvertex.jobs")

PENDING = "JOB_STATE_PENDING"
RUNNING = "JOB_STATE_RUNNING"
SUCCEEDED = "JOB_STATE_SUCCEEDED"
FAILED = "JOB_STATE_FAILED"
CANCELLING = "JOB_STATE_CANCELLING"
CANCELLED = "JOB_STATE_CANCELLED"
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})

# Used with fullmatch: match's "$" would also accept a trailing newline.
ID_RE = re.compile(r"[0-9a-z][0-9a-z-]{0,63}")
NAME_SEGMENT_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
LABEL_KEY_RE = re.compile(r"[a-z][a-z0-9_-]{0,62}")
LABEL_VALUE_RE = re.compile(r"[a-z0-9_-]{0,63}")

ADAPTER_SIZES = {
    "ADAPTER_SIZE_ONE": 1,
    "ADAPTER_SIZE_TWO": 2,
    "ADAPTER_SIZE_FOUR": 4,
    "ADAPTER_SIZE_EIGHT": 8,
    "ADAPTER_SIZE_SIXTEEN": 16,
    "ADAPTER_SIZE_THIRTY_TWO": 32,
}
DEFAULT_EPOCHS = 5
DEFAULT_LR_MULTIPLIER = 1.0
DEFAULT_ADAPTER = "ADAPTER_SIZE_FOUR"
TRAIN_SEED = 0

SUPPORTED_BASE_MODELS = ("gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.5-pro")
_BASE_PREFIX_RE = re.compile(r"^(?:projects/[^/]+/locations/[^/]+/)?publishers/google/models/")

# gRPC codes used in TuningJob.error (google.rpc.Status).
RPC_CANCELLED, RPC_INVALID_ARGUMENT, RPC_INTERNAL, RPC_ABORTED = 1, 3, 13, 10


class ApiError(Exception):
    """An error to serve as ``{"error": {"code", "message", "status"}}``."""

    def __init__(self, http_code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.http_code, self.status, self.message = http_code, status, message


def invalid(message: str) -> ApiError:
    return ApiError(400, "INVALID_ARGUMENT", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "NOT_FOUND", message)


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def new_id() -> str:
    """A numeric id like Vertex's (18-19 digits)."""
    return str(secrets.randbelow(9 * 10**17) + 10**17)


def check_id(value: str, what: str = "id") -> str:
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        raise invalid(f"invalid {what}: {str(value)[:80]!r} (expected [0-9a-z-], at most 64 chars)")
    return value


def check_segment(value: str, what: str) -> str:
    if not NAME_SEGMENT_RE.fullmatch(value or ""):
        raise invalid(f"invalid {what}: {value[:80]!r}")
    return value


def normalize_base_model(base_model: Any) -> str:
    if not isinstance(base_model, str) or not base_model:
        raise invalid("baseModel is required")
    short = _BASE_PREFIX_RE.sub("", base_model)
    if short in SUPPORTED_BASE_MODELS or short.startswith("gemini-2.0-flash"):
        return short
    raise invalid(f"Base model {base_model!r} is not supported for supervised tuning here. "
                  f"Supported: {', '.join(SUPPORTED_BASE_MODELS)}, gemini-2.0-flash*.")


def _int_field(value: Any, what: str, lo: int, hi: int) -> int:
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        out = int(value)
    except (TypeError, ValueError):
        raise invalid(f"{what} must be an integer, got {value!r}") from None
    if not lo <= out <= hi:
        raise invalid(f"{what} must be between {lo} and {hi}, got {out}")
    return out


def build_job(body: Any, project: str, location: str,
              exists: Callable[[Any], bool] | None = None) -> dict[str, Any]:
    """Validate a create-TuningJob body and return the new job resource (PENDING)."""
    from .storage import InvalidUri, parse_gs_uri

    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    base = normalize_base_model(body.get("baseModel"))
    spec = body.get("supervisedTuningSpec")
    if not isinstance(spec, dict):
        raise invalid("supervisedTuningSpec is required (only supervised tuning is supported)")
    uris = {}
    for key in ("trainingDatasetUri", "validationDatasetUri"):
        value = spec.get(key)
        if value is None and key == "validationDatasetUri":
            continue
        try:
            uris[key] = parse_gs_uri(value)
        except InvalidUri as exc:
            raise invalid(f"supervisedTuningSpec.{key}: {exc}") from None
        if not str(uris[key]).endswith(".jsonl"):
            raise invalid(f"supervisedTuningSpec.{key} must point to a .jsonl file: {uris[key]}")
    hp = spec.get("hyperParameters") or {}
    if not isinstance(hp, dict):
        raise invalid("supervisedTuningSpec.hyperParameters must be an object")
    epochs = _int_field(hp.get("epochCount", DEFAULT_EPOCHS), "epochCount", 1, 100)
    lr = hp.get("learningRateMultiplier", DEFAULT_LR_MULTIPLIER)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr <= 100:
        raise invalid(f"learningRateMultiplier must be a number in (0, 100], got {lr!r}")
    adapter = hp.get("adapterSize", DEFAULT_ADAPTER)
    if adapter in (None, "ADAPTER_SIZE_UNSPECIFIED"):
        adapter = DEFAULT_ADAPTER
    if adapter not in ADAPTER_SIZES:
        raise invalid(f"adapterSize must be one of {', '.join(ADAPTER_SIZES)}, got {adapter!r}")
    display = body.get("tunedModelDisplayName")
    if display is not None and (not isinstance(display, str) or len(display) > 128):
        raise invalid("tunedModelDisplayName must be a string of at most 128 characters")
    labels = body.get("labels") or {}
    if not isinstance(labels, dict) or len(labels) > 64:
        raise invalid("labels must be an object with at most 64 entries")
    for k, v in labels.items():
        if not LABEL_KEY_RE.fullmatch(str(k)) or not isinstance(v, str) \
                or not LABEL_VALUE_RE.fullmatch(v):
            raise invalid(f"invalid label {k!r}: {v!r} (lowercase letters, digits, '_' and '-')")
    if exists is not None:
        for key, ref in uris.items():
            if not exists(ref):
                raise invalid(f"supervisedTuningSpec.{key}: dataset {ref} does not exist")

    job_id = new_id()
    model_id, endpoint_id = new_id(), new_id()
    now = now_rfc3339()
    out_spec = {k: v for k, v in spec.items() if k != "hyperParameters"}
    out_spec.update({k: str(v) for k, v in uris.items()})
    out_spec["hyperParameters"] = {
        **{k: v for k, v in hp.items()
           if k not in ("epochCount", "learningRateMultiplier", "adapterSize")},
        "epochCount": str(epochs),
        "learningRateMultiplier": float(lr),
        "adapterSize": adapter,
    }
    job: dict[str, Any] = {
        "name": f"projects/{project}/locations/{location}/tuningJobs/{job_id}",
        "tunedModelDisplayName": display or f"{base}-tuned-{job_id[-6:]}",
        "baseModel": body["baseModel"],
        "supervisedTuningSpec": out_spec,
        "state": PENDING,
        "createTime": now,
        "updateTime": now,
    }
    for key in ("description", "experiment", "serviceAccount"):
        if isinstance(body.get(key), str):
            job[key] = body[key]
    if labels:
        job["labels"] = dict(labels)
    job["_local"] = {
        "id": job_id, "project": project, "location": location,
        "modelId": model_id, "endpointId": endpoint_id, "localBaseModel": base,
        "config": {"epochs": epochs, "learning_rate_multiplier": float(lr),
                   "adapter_size": ADAPTER_SIZES[adapter], "seed": TRAIN_SEED},
    }
    return job


def public_view(job: dict[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in job.items() if not k.startswith("_")}


def endpoint_name(job: dict[str, Any]) -> str:
    loc = job["_local"]
    return f"projects/{loc['project']}/locations/{loc['location']}/endpoints/{loc['endpointId']}"


def model_name(job: dict[str, Any]) -> str:
    loc = job["_local"]
    return f"projects/{loc['project']}/locations/{loc['location']}/models/{loc['modelId']}@1"


def _atomic_write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class JobStore:
    """Thread-safe store of job dicts, persisted one JSON file per job."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = Path(data_dir) / "jobs"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self._jobs: dict[str, dict[str, Any]] = {}
        self._by_endpoint: dict[str, str] = {}
        for path in sorted(self.dir.glob("*.json")):
            try:
                job = json.loads(path.read_text(encoding="utf-8"))
                job_id = job["_local"]["id"]
                if path.stem != job_id or not ID_RE.fullmatch(job_id):
                    raise ValueError("file name does not match job id")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring unreadable job file %s: %s", path.name, exc)
                continue
            self._index(job)
        for tmp in self.dir.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)

    def _index(self, job: dict[str, Any]) -> None:
        self._jobs[job["_local"]["id"]] = job
        self._by_endpoint[job["_local"]["endpointId"]] = job["_local"]["id"]

    def _path(self, job_id: str) -> Path:
        check_id(job_id, "job id")
        return self.dir / f"{job_id}.json"

    def add(self, job: dict[str, Any]) -> None:
        with self.lock:
            _atomic_write_json(self._path(job["_local"]["id"]), job)
            self._index(job)

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self.lock:
            job = self._jobs.get(job_id)
            return copy.deepcopy(job) if job is not None else None

    def by_endpoint(self, endpoint_id: str) -> dict[str, Any] | None:
        with self.lock:
            job_id = self._by_endpoint.get(endpoint_id)
            return self.get(job_id) if job_id else None

    def update(self, job_id: str, fn: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
        """Apply ``fn`` to a copy of the job under the lock, persist, return the new job."""
        with self.lock:
            job = copy.deepcopy(self._jobs[job_id])
            fn(job)
            job["updateTime"] = now_rfc3339()
            _atomic_write_json(self._path(job_id), job)
            self._jobs[job_id] = job
            return copy.deepcopy(job)

    def list(self, project: str | None = None, location: str | None = None) -> list[dict]:
        with self.lock:
            jobs = [copy.deepcopy(j) for j in self._jobs.values()
                    if (project is None or j["_local"]["project"] == project)
                    and (location is None or j["_local"]["location"] == location)]
        jobs.sort(key=lambda j: (j["createTime"], j["_local"]["id"]), reverse=True)
        return jobs

    def next_pending(self) -> dict[str, Any] | None:
        with self.lock:
            pending = [j for j in self._jobs.values() if j["state"] == PENDING]
            if not pending:
                return None
            return copy.deepcopy(min(pending, key=lambda j: (j["createTime"], j["_local"]["id"])))


def _fail(job: dict[str, Any], code: int, message: str) -> None:
    now = now_rfc3339()
    job["state"] = FAILED
    job["error"] = {"code": code, "message": message}
    job.setdefault("startTime", now)
    job["endTime"] = now


def _cancelled(job: dict[str, Any]) -> None:
    now = now_rfc3339()
    job["state"] = CANCELLED
    job["error"] = {"code": RPC_CANCELLED, "message": "CANCELED: the tuning job was cancelled."}
    job["endTime"] = now


def _succeeded(job: dict[str, Any], result: dict[str, Any]) -> None:
    """Mark a job SUCCEEDED with the worker's final ``result``."""
    job["state"] = SUCCEEDED
    job["endTime"] = now_rfc3339()
    job.pop("error", None)
    tuned = job.setdefault("tunedModel", {})
    tuned["model"] = model_name(job)
    tuned["endpoint"] = endpoint_name(job)
    stats = job.setdefault("tuningDataStats", {}).setdefault("supervisedTuningDataStats", {})
    stats["tuningStepCount"] = str(result["stepCount"])
    stats.setdefault("tuningDatasetExampleCount", str(result["exampleCount"]))
    metrics = job.setdefault("localTuningMetrics", {"epochs": []})
    metrics["epochs"] = result["epochs"] or metrics.get("epochs", [])
    metrics.update({k: result[k] for k in ("stepCount", "exampleCount", "tokenCount",
                                           "trainSeconds")})
    metrics["config"] = job["_local"]["config"]


# --------------------------------------------------------------------------- worker process
#
# The worker is ``python -m localvertex.jobs <spec.json>`` rather than a multiprocessing
# child: multiprocessing's spawn re-imports the parent's ``__main__`` (a pipeline runner,
# a notebook, a script without a main guard), which a plain child process never does.
# Protocol: the worker prints ``@@localvertex@@ <json>`` lines on stdout (anything else is
# logged); it stops at the next optimizer step when "cancel" or EOF arrives on stdin, so
# it also ends by itself if the server dies.

PROTOCOL_PREFIX = "@@localvertex@@ "


def train_worker(spec: dict[str, Any], emit: Callable[[list], None],
                 should_stop: Callable[[], bool]) -> None:
    """Load the datasets, train, save the model. Reports through ``emit``:
    ["data", stats] once the data is loaded, ["epoch", dict] per epoch, and finally
    ["done", result], ["cancelled"] or ["error", code, message]."""
    try:
        from . import datasets
        from .storage import GcsReader

        reader = GcsReader(spec["storage_endpoint"], spec["project"])
        cfg = spec["config"]

        def read_records(uri: str | None):
            if not uri:
                return []
            try:
                raw = reader.read_bytes(uri)
            except Exception as exc:  # ObjectNotFound, network, size
                raise datasets.DatasetError(uri, None, f"cannot read dataset: {exc}") from None
            return datasets.parse_jsonl(raw, uri)

        # Parse and check both files before importing the model (torch): bad data fails fast.
        train_records = read_records(spec["training_uri"])
        val_records = read_records(spec.get("validation_uri"))
        from . import model as M

        def examples(records, uri):
            pairs = datasets.load_images(records, uri, reader.read_bytes, M.load_image)
            return [M.Example(image=img, text=rec.label) for rec, img in pairs]

        train_examples = examples(train_records, spec["training_uri"])
        val_examples = examples(val_records, spec.get("validation_uri"))
        stats = datasets.dataset_stats(train_records, cfg["epochs"])
        emit(["data", {"stats": stats, "validationExampleCount": len(val_examples)}])

        config = M.TrainConfig(epochs=cfg["epochs"],
                               learning_rate_multiplier=cfg["learning_rate_multiplier"],
                               adapter_size=cfg["adapter_size"], seed=cfg["seed"])
        t0 = time.monotonic()
        try:
            result = M.train(train_examples, val_examples, config, should_stop=should_stop,
                             on_epoch=lambda stats: emit(["epoch", stats.to_dict()]))
        except M.TrainingCancelled:
            emit(["cancelled"])
            return
        seconds = time.monotonic() - t0
        final = Path(spec["model_dir"])
        partial = final.with_name(final.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        result.model.save(partial)
        (partial / "localvertex_model.json").write_text(json.dumps(spec["model_meta"], indent=1))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)
        emit(["done", {
            "epochs": [e.to_dict() for e in result.epochs],
            "stepCount": int(result.step_count),
            "exampleCount": int(result.example_count),
            "tokenCount": int(result.token_count),
            "trainSeconds": round(seconds, 3),
        }])
    except Exception as exc:  # noqa: BLE001 - everything must reach the runner
        from .datasets import DatasetError

        if isinstance(exc, DatasetError):
            emit(["error", RPC_INVALID_ARGUMENT, f"Invalid dataset: {exc}"])
        elif isinstance(exc, ValueError):
            emit(["error", RPC_INVALID_ARGUMENT, f"Invalid tuning data: {exc}"])
        else:
            traceback.print_exc()
            emit(["error", RPC_INTERNAL, f"Training failed: {type(exc).__name__}: {exc}"])


def worker_main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    stop = threading.Event()

    def watch_stdin():
        for line in sys.stdin:
            if line.strip() == "cancel":
                break
        stop.set()  # "cancel" or EOF (the server went away)
    threading.Thread(target=watch_stdin, daemon=True).start()
    out = sys.stdout
    sys.stdout = sys.stderr  # stray prints must not corrupt the protocol
    lock = threading.Lock()

    def emit(msg: list) -> None:
        with lock:
            out.write(PROTOCOL_PREFIX + json.dumps(msg) + "\n")
            out.flush()
    train_worker(spec, emit, stop.is_set)
    return 0


# --------------------------------------------------------------------------- runner

class TrainingRunner:
    """Runs PENDING jobs one at a time, each in a fresh worker process."""

    POLL_S = 0.2
    CANCEL_GRACE_S = 3.0

    def __init__(self, store: JobStore, data_dir: Path, storage_endpoint: str) -> None:
        self.store = store
        self.data_dir = Path(data_dir)
        self.models_dir = self.data_dir / "models"
        self.models_dir.mkdir(parents=True, exist_ok=True)
        self.storage_endpoint = storage_endpoint
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._current: tuple[str, Any] | None = None
        self.recover()

    def recover(self) -> None:
        """Apply the restart rule to jobs left behind by a previous server."""
        for job in self.store.list():
            job_id = job["_local"]["id"]
            if job["state"] == CANCELLING:
                log.info("job %s was CANCELLING when the server stopped; CANCELLED", job_id)
                self.store.update(job_id, _cancelled)
            elif job["state"] == RUNNING:
                log.warning("job %s was RUNNING when the server stopped; marking it FAILED",
                            job_id)
                self.store.update(job_id, lambda j: _fail(
                    j, RPC_ABORTED, "The local Vertex AI server stopped or restarted during "
                    "training, so this job did not finish. Create the tuning job again."))
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

    def model_dir(self, job: dict[str, Any]) -> Path:
        model_id = check_id(job["_local"]["modelId"], "model id")
        return self.models_dir / model_id

    def cancel(self, job_id: str) -> dict[str, Any]:
        with self.store.lock:
            job = self.store.get(job_id)
            if job is None:
                raise not_found(f"TuningJob {job_id} not found")
            state = job["state"]
            if state in TERMINAL:
                raise ApiError(409, "FAILED_PRECONDITION",
                               f"Cannot cancel tuning job {job['name']}: it is already "
                               f"{state.removeprefix('JOB_STATE_')}.")
            if state == PENDING:
                job = self.store.update(job_id, _cancelled)
            elif state == RUNNING:
                job = self.store.update(job_id, lambda j: j.update(state=CANCELLING))
        self._wake.set()
        log.info("cancel requested for job %s (was %s)", job_id, state)
        return job

    # -- loop
    def _loop(self) -> None:
        while not self._stopping.is_set():
            job = self.store.next_pending()
            if job is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            try:
                self._run(job)
            except Exception:  # noqa: BLE001
                log.exception("runner error on job %s", job["_local"]["id"])
                try:
                    self.store.update(job["_local"]["id"], lambda j: _fail(
                        j, RPC_INTERNAL, "internal error in the local tuning runner"))
                except Exception:  # noqa: BLE001
                    pass

    def _run(self, job: dict[str, Any]) -> None:
        job_id = job["_local"]["id"]
        with self.store.lock:
            if self.store.get(job_id)["state"] != PENDING:
                return

            def start(j):
                j["state"] = RUNNING
                j["startTime"] = now_rfc3339()
            job = self.store.update(job_id, start)
        loc = job["_local"]
        spec = {
            "job_id": job_id,
            "project": loc["project"],
            "storage_endpoint": self.storage_endpoint,
            "training_uri": job["supervisedTuningSpec"]["trainingDatasetUri"],
            "validation_uri": job["supervisedTuningSpec"].get("validationDatasetUri"),
            "config": loc["config"],
            "model_dir": str(self.model_dir(job)),
            "model_meta": {"tuningJob": job["name"], "model": model_name(job),
                           "endpoint": endpoint_name(job), "baseModel": job["baseModel"]},
        }
        work = self.data_dir / "work"
        logs = self.data_dir / "logs"
        work.mkdir(exist_ok=True)
        logs.mkdir(exist_ok=True)
        spec_path = work / f"{job_id}.json"
        _atomic_write_json(spec_path, spec)
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        env.setdefault("PYTHONUNBUFFERED", "1")
        out_q: queue_mod.Queue = queue_mod.Queue()
        with open(logs / f"{job_id}.log", "ab") as log_fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", "localvertex.jobs", str(spec_path)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_fh, env=env,
                cwd=str(self.data_dir), start_new_session=True)

        def read_stdout():
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                if line.startswith(PROTOCOL_PREFIX):
                    try:
                        out_q.put(tuple(json.loads(line[len(PROTOCOL_PREFIX):])))
                    except ValueError:
                        log.warning("job %s: bad worker message", job_id)
                elif line.strip():
                    log.debug("job %s worker: %s", job_id, line[:500])
            out_q.put(None)  # EOF
        reader = threading.Thread(target=read_stdout, name=f"localvertex-worker-{job_id}",
                                  daemon=True)
        reader.start()
        self._current = (job_id, proc)
        log.info("job %s RUNNING (pid %s, %s)", job_id, proc.pid, loc["config"])
        outcome: tuple | None = None
        cancel_at: float | None = None
        try:
            while True:
                try:
                    msg = out_q.get(timeout=self.POLL_S)
                except queue_mod.Empty:
                    msg = ()
                if msg is None:  # worker closed stdout: it is exiting
                    break
                if msg:
                    if msg[0] in ("done", "error", "cancelled"):
                        outcome = msg
                    else:
                        self._progress(job_id, msg)
                    continue
                if self._stopping.is_set():
                    outcome = ("stopped",)
                    break
                state = self.store.get(job_id)["state"]
                if state == CANCELLING:
                    if cancel_at is None:
                        cancel_at = time.monotonic()
                        try:
                            proc.stdin.write(b"cancel\n")
                            proc.stdin.flush()
                        except OSError:
                            pass
                    elif time.monotonic() - cancel_at > self.CANCEL_GRACE_S:
                        outcome = ("cancelled",)
                        break
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass
            try:
                proc.wait(timeout=10 if outcome and outcome[0] == "done" else 1)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
            reader.join(timeout=2)
            self._current = None
            spec_path.unlink(missing_ok=True)
        self._finish(job, outcome, proc.returncode)

    def _progress(self, job_id: str, msg: tuple) -> None:
        kind, payload = msg[0], msg[1]

        def apply(j):
            metrics = j.setdefault("localTuningMetrics", {"epochs": []})
            if kind == "data":
                j.setdefault("tuningDataStats", {})["supervisedTuningDataStats"] = payload["stats"]
                metrics["validationExampleCount"] = payload["validationExampleCount"]
            elif kind == "epoch":
                metrics["epochs"].append(payload)
                epoch = int(payload.get("epoch", len(metrics["epochs"])))
                tuned = j.setdefault("tunedModel", {})
                tuned.setdefault("checkpoints", []).append({
                    "checkpointId": str(epoch),
                    "epoch": str(epoch),
                    "step": str(int(payload.get("step", 0))),
                    "endpoint": endpoint_name(j),
                })
        self.store.update(job_id, apply)
        if kind == "epoch":
            log.info("job %s epoch %s: train_loss=%s validation_loss=%s", job_id,
                     payload.get("epoch"), payload.get("train_loss"), payload.get("validation_loss"))

    def _finish(self, job: dict[str, Any], outcome: tuple | None, exitcode: int | None) -> None:
        job_id = job["_local"]["id"]
        kind = outcome[0] if outcome else None

        def settle(j):  # under the store lock, so a cancel accepted until now wins
            if j["state"] == CANCELLING or kind == "cancelled":
                _cancelled(j)
            elif kind == "done":
                _succeeded(j, outcome[1])
            elif kind == "stopped":
                _fail(j, RPC_ABORTED, "The local Vertex AI server stopped during training, so "
                      "this job did not finish. Create the tuning job again.")
            elif kind == "error":
                _fail(j, outcome[1], outcome[2])
            else:
                _fail(j, RPC_INTERNAL,
                      f"The training process exited unexpectedly (exit code {exitcode}).")
        final = self.store.update(job_id, settle)
        if final["state"] == CANCELLED:
            shutil.rmtree(self.model_dir(job), ignore_errors=True)
            log.info("job %s CANCELLED", job_id)
        elif final["state"] == SUCCEEDED:
            log.info("job %s SUCCEEDED in %.1fs", job_id, outcome[1]["trainSeconds"])
        else:
            log.warning("job %s FAILED: %s", job_id, final["error"]["message"].partition("\n")[0])


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
