"""The PipelineJob resource as stored and served, and its state changes (pure dict updates).

A job is the REST resource (the fields of Vertex AI's PipelineJob schema) plus a private
``_local`` block never served: id, project, location, the checked arguments, the schedule
that started it, task ids. States follow PipelineState: a new job is PENDING until a runner
slot takes it (RUNNING), then SUCCEEDED, FAILED, or CANCELLING -> CANCELLED.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

PENDING = "PIPELINE_STATE_PENDING"
QUEUED = "PIPELINE_STATE_QUEUED"
RUNNING = "PIPELINE_STATE_RUNNING"
SUCCEEDED = "PIPELINE_STATE_SUCCEEDED"
FAILED = "PIPELINE_STATE_FAILED"
CANCELLING = "PIPELINE_STATE_CANCELLING"
CANCELLED = "PIPELINE_STATE_CANCELLED"
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})
ACTIVE = frozenset({QUEUED, PENDING, RUNNING, CANCELLING})
PIPELINE_STATES = (
    "PIPELINE_STATE_UNSPECIFIED",
    QUEUED,
    PENDING,
    RUNNING,
    SUCCEEDED,
    FAILED,
    CANCELLING,
    CANCELLED,
    "PIPELINE_STATE_PAUSED",
)
# PipelineTaskDetail.State
TASK_RUNNING, TASK_SUCCEEDED, TASK_FAILED = "RUNNING", "SUCCEEDED", "FAILED"
TASK_CANCELLED, TASK_SKIPPED = "CANCELLED", "SKIPPED"


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def public_view(job: dict[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in job.items() if not k.startswith("_")}


def id_of(job: dict[str, Any]) -> str:
    return job["_local"]["id"]


def state_word(job: dict[str, Any]) -> str:
    return job["state"].removeprefix("PIPELINE_STATE_")


def mark_running(job: dict[str, Any]) -> None:
    job["state"] = RUNNING
    job["startTime"] = now_rfc3339()


def mark_cancelling(job: dict[str, Any]) -> None:
    job["state"] = CANCELLING


def _end(job: dict[str, Any], state: str, code: int | None = None, message: str | None = None) -> None:
    job["state"] = state
    job["endTime"] = now_rfc3339()
    job.setdefault("startTime", job["endTime"])
    if code is not None:
        job["error"] = {"code": code, "message": message or ""}
    for task in job.get("jobDetail", {}).get("taskDetails", []):
        if task.get("state") in (TASK_RUNNING, "PENDING", "CANCELLING"):
            task["state"] = TASK_CANCELLED if state == CANCELLED else TASK_FAILED
            task["endTime"] = job["endTime"]


def mark_succeeded(job: dict[str, Any]) -> None:
    _end(job, SUCCEEDED)


def mark_failed(job: dict[str, Any], code: int, message: str) -> None:
    _end(job, FAILED, code, message)


def mark_cancelled(job: dict[str, Any]) -> None:
    _end(job, CANCELLED, 1, "The pipeline job was cancelled.")


def task_detail(job: dict[str, Any], task_name: str) -> dict[str, Any]:
    """The job's taskDetail for ``task_name``, created (with the next task id) if new."""
    detail = job.setdefault("jobDetail", {})
    tasks = detail.setdefault("taskDetails", [])
    for task in tasks:
        if task["taskName"] == task_name:
            return task
    local = job["_local"]
    local["nextTaskId"] = local.get("nextTaskId", 1) + 1
    task = {
        "taskId": str(int(local["taskIdBase"]) + local["nextTaskId"]),
        "taskName": task_name,
        "createTime": now_rfc3339(),
        "state": "PENDING",
    }
    if task_name != local["pipelineName"]:
        task["parentTaskId"] = str(int(local["taskIdBase"]) + 1)
    tasks.append(task)
    return task
