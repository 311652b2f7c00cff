"""The on-disk job store: ``<data_dir>/jobs/<id>.json``, one TuningJob per file, written
atomically (tmp file + ``os.replace``), so a crash never leaves half a job."""

from __future__ import annotations

import copy
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..ids import ID_RE, check_id
from .checkpoints import endpoint_ids
from .resource import PENDING, now_rfc3339

log = logging.getLogger("localvertex.jobs")


def atomic_write_json(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` whole or not at all; a failed write (a full disk) removes its
    tmp file, which would otherwise hold space on the disk that just ran out of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_json_files(
    folder: Path, read: Callable[[Path], dict[str, Any]], what: str, logger: logging.Logger
) -> list[dict[str, Any]]:
    """What ``read`` makes of each ``*.json`` in ``folder``, in file-name order; a file it cannot
    read is logged ("ignoring unreadable <what> file") and left out. The tmp files of writes a
    crash interrupted (atomic_write_json) are removed."""
    items = []
    for path in sorted(folder.glob("*.json")):
        try:
            items.append(read(path))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("ignoring unreadable %s file %s: %s", what, path.name, exc)
    for tmp in folder.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
    return items


def read_named_json(path: Path) -> dict[str, Any]:
    """The resource in ``path``; ValueError unless its ``_local.id`` is the file's name."""
    item = json.loads(path.read_text(encoding="utf-8"))
    if item["_local"]["id"] != path.stem:
        raise ValueError(f"file name does not match its id {item['_local']['id']!r}")
    return item


def _read_job_file(path: Path) -> dict[str, Any]:
    job = read_named_json(path)
    if not ID_RE.fullmatch(job["_local"]["id"]):
        raise ValueError(f"not a job id: {job['_local']['id']!r}")
    return job


def _creation_order(job: dict[str, Any]) -> tuple[str, str]:
    return job["createTime"], job["_local"]["id"]


class JobStore:
    """Thread-safe store of job dicts, persisted one JSON file per job.

    Readers get deep copies; writers go through :meth:`update` under ``lock``, which callers
    may also hold to make a read-then-update atomic.
    """

    def __init__(self, data_dir: Path) -> None:
        self.dir = Path(data_dir) / "jobs"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self._jobs: dict[str, dict[str, Any]] = {}
        self._by_endpoint: dict[str, str] = {}
        self._unsaved: set[str] = set()  # jobs whose last change is in memory only (a failed write)
        for job in read_json_files(self.dir, _read_job_file, "job", log):
            self._index(job)

    def _index(self, job: dict[str, Any]) -> None:
        """Keep ``job`` and map each of its endpoints (its own, its checkpoints') to it."""
        self._jobs[job["_local"]["id"]] = job
        for endpoint_id in endpoint_ids(job):
            self._by_endpoint[endpoint_id] = job["_local"]["id"]

    def _path(self, job_id: str) -> Path:
        check_id(job_id, "job id")
        return self.dir / f"{job_id}.json"

    def add(self, job: dict[str, Any]) -> None:
        with self.lock:
            atomic_write_json(self._path(job["_local"]["id"]), job)
            self._index(job)

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self.lock:
            job = self._jobs.get(job_id)
            return copy.deepcopy(job) if job is not None else None

    def by_endpoint(self, endpoint_id: str, *, read_only: bool = False) -> dict[str, Any] | None:
        """The job behind an endpoint. ``read_only=True`` returns the stored dict itself, no
        copy (the prediction path reads a few fields per request, and a deep copy of a job
        grows with its metrics and checkpoints): the caller must not change it. Safe because
        :meth:`update` replaces a job's dict instead of changing it."""
        with self.lock:
            job_id = self._by_endpoint.get(endpoint_id)
            if not job_id:
                return None
            return self._jobs.get(job_id) if read_only else self.get(job_id)

    def update(self, job_id: str, fn: Callable[[dict[str, Any]], Any], *, keep_unsaved: bool = False) -> dict[str, Any]:
        """Apply ``fn`` to a copy of the job under the lock, persist, return the new job.

        If the file cannot be written (OSError: a full disk) the job is left unchanged and the
        error raised; with ``keep_unsaved`` the change is kept in memory instead and written by
        a later :meth:`save_unsaved` (a final state must not be lost to a full disk).
        """
        with self.lock:
            job = copy.deepcopy(self._jobs[job_id])
            fn(job)
            job["updateTime"] = now_rfc3339()
            try:
                atomic_write_json(self._path(job_id), job)
            except OSError as exc:
                if not keep_unsaved:
                    raise
                log.warning("job %s: its file cannot be written (%s); kept in memory until it can", job_id, exc)
                self._unsaved.add(job_id)
            else:
                self._unsaved.discard(job_id)
            self._index(job)
            return copy.deepcopy(job)

    def save_unsaved(self) -> None:
        """Write the jobs whose last change could not be written; OSError if the disk still refuses."""
        with self.lock:
            for job_id in sorted(self._unsaved):
                atomic_write_json(self._path(job_id), self._jobs[job_id])
                self._unsaved.discard(job_id)
                log.info("job %s: its file is written again", job_id)

    @property
    def has_unsaved(self) -> bool:
        with self.lock:
            return bool(self._unsaved)

    def list(self, project: str | None = None, location: str | None = None) -> list[dict]:
        """Jobs (of one project/location if given), newest first."""
        with self.lock:
            jobs = [
                copy.deepcopy(j)
                for j in self._jobs.values()
                if (project is None or j["_local"]["project"] == project)
                and (location is None or j["_local"]["location"] == location)
            ]
        jobs.sort(key=_creation_order, reverse=True)
        return jobs

    def by_model(self, project: str, location: str, model_id: str) -> dict[str, Any] | None:
        """The job whose tuned model is ``projects/project/locations/location/models/model_id``."""
        with self.lock:
            for job in self._jobs.values():
                local = job["_local"]
                if (local["project"], local["location"], local["modelId"]) == (project, location, model_id):
                    return copy.deepcopy(job)
        return None

    def next_pending(self) -> dict[str, Any] | None:
        """The oldest PENDING job, or None."""
        with self.lock:
            pending = [j for j in self._jobs.values() if j["state"] == PENDING]
            if not pending:
                return None
            return copy.deepcopy(min(pending, key=_creation_order))
