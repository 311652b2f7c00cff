"""The on-disk PipelineJob store: ``<data_dir>/pipelines/jobs/<id>.json``, one job per
file, written atomically; all jobs are kept in memory too (a list page of 1,000 jobs must
take milliseconds, not a directory scan)."""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..jobs.store import atomic_write_json, read_json_files, read_named_json
from .resource import PENDING, now_rfc3339

log = logging.getLogger("localvertex.pipelines")


def _order(job: dict[str, Any]) -> tuple[str, str]:
    return job["createTime"], job["_local"]["id"]


class PipelineJobStore:
    """Thread-safe; readers get deep copies, writers go through :meth:`update` under ``lock``."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = Path(data_dir) / "pipelines" / "jobs"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        jobs = read_json_files(self.dir, read_named_json, "pipeline job", log)
        self._jobs: dict[str, dict[str, Any]] = {job["_local"]["id"]: job for job in jobs}

    def _path(self, job_id: str) -> Path:
        return self.dir / f"{job_id}.json"

    def add(self, job: dict[str, Any]) -> bool:
        """Record a new job; False (nothing written) if its id is taken."""
        with self.lock:
            job_id = job["_local"]["id"]
            if job_id in self._jobs:
                return False
            atomic_write_json(self._path(job_id), job)
            self._jobs[job_id] = job
            return True

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self.lock:
            job = self._jobs.get(job_id)
            return copy.deepcopy(job) if job is not None else None

    def peek(self) -> Iterable[dict[str, Any]]:
        """The stored dicts themselves, no copies (callers must not change them): the list
        route filters 1,000 jobs and copies only its page. Safe because :meth:`update`
        replaces a job's dict instead of changing it."""
        with self.lock:
            return list(self._jobs.values())

    def update(self, job_id: str, fn: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
        with self.lock:
            job = copy.deepcopy(self._jobs[job_id])
            fn(job)
            job["updateTime"] = now_rfc3339()
            atomic_write_json(self._path(job_id), job)
            self._jobs[job_id] = job
            return copy.deepcopy(job)

    def delete(self, job_id: str) -> None:
        with self.lock:
            self._path(job_id).unlink(missing_ok=True)
            self._jobs.pop(job_id, None)

    def list(self, project: str | None = None, location: str | None = None) -> list[dict[str, Any]]:
        """Stored dicts (not copies) of one project/location, newest first."""
        with self.lock:
            jobs = [
                j
                for j in self._jobs.values()
                if (project is None or j["_local"]["project"] == project)
                and (location is None or j["_local"]["location"] == location)
            ]
        jobs.sort(key=_order, reverse=True)
        return jobs

    def next_pending(self) -> dict[str, Any] | None:
        with self.lock:
            pending = [j for j in self._jobs.values() if j["state"] == PENDING]
            return copy.deepcopy(min(pending, key=_order)) if pending else None
