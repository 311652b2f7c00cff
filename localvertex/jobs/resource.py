"""The TuningJob resource as stored and served: states, names, and the state transitions.

A job is the REST resource (camelCase, as Vertex returns it) plus ``localTuningMetrics``
(per-epoch losses; the SDK ignores unknown keys) and a private ``_local`` block (ids,
project, location, training config) that is never served. Functions here change a job
dict in place and do no I/O; the store persists what they produce.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from ..errors import RPC_CANCELLED

PENDING = "JOB_STATE_PENDING"
RUNNING = "JOB_STATE_RUNNING"
SUCCEEDED = "JOB_STATE_SUCCEEDED"
FAILED = "JOB_STATE_FAILED"
CANCELLING = "JOB_STATE_CANCELLING"
CANCELLED = "JOB_STATE_CANCELLED"
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def public_view(job: dict[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in job.items() if not k.startswith("_")}


def id_of(job: dict[str, Any]) -> str:
    return job["_local"]["id"]


def endpoint_name(job: dict[str, Any]) -> str:
    loc = job["_local"]
    return f"projects/{loc['project']}/locations/{loc['location']}/endpoints/{loc['endpointId']}"


def model_name(job: dict[str, Any]) -> str:
    loc = job["_local"]
    return f"projects/{loc['project']}/locations/{loc['location']}/models/{loc['modelId']}@1"


def state_word(job: dict[str, Any]) -> str:
    """``SUCCEEDED`` for ``JOB_STATE_SUCCEEDED``: how messages name a state."""
    return job["state"].removeprefix("JOB_STATE_")


# --------------------------------------------------------------------------- transitions


def mark_running(job: dict[str, Any]) -> None:
    job["state"] = RUNNING
    job["startTime"] = now_rfc3339()


def mark_cancelling(job: dict[str, Any]) -> None:
    job["state"] = CANCELLING


def mark_failed(job: dict[str, Any], code: int, message: str) -> None:
    now = now_rfc3339()
    job["state"] = FAILED
    job["error"] = {"code": code, "message": message}
    job.setdefault("startTime", now)
    job["endTime"] = now


def mark_cancelled(job: dict[str, Any]) -> None:
    job["state"] = CANCELLED
    job["error"] = {"code": RPC_CANCELLED, "message": "CANCELED: the tuning job was cancelled."}
    job["endTime"] = now_rfc3339()


def mark_succeeded(job: dict[str, Any], metrics: dict[str, Any]) -> None:
    """Mark a job SUCCEEDED with the worker's final ``metrics`` (epochs, stepCount,
    exampleCount, tokenCount, trainSeconds)."""
    job["state"] = SUCCEEDED
    job["endTime"] = now_rfc3339()
    job.pop("error", None)
    tuned = job.setdefault("tunedModel", {})
    tuned["model"] = model_name(job)
    tuned["endpoint"] = endpoint_name(job)
    stats = job.setdefault("tuningDataStats", {}).setdefault("supervisedTuningDataStats", {})
    stats["tuningStepCount"] = str(metrics["stepCount"])
    stats.setdefault("tuningDatasetExampleCount", str(metrics["exampleCount"]))
    local = job.setdefault("localTuningMetrics", {"epochs": []})
    local["epochs"] = metrics["epochs"] or local.get("epochs", [])
    local.update({k: metrics[k] for k in ("stepCount", "exampleCount", "tokenCount", "trainSeconds")})
    local["config"] = job["_local"]["config"]


# --------------------------------------------------------------------------- progress


def record_data_stats(job: dict[str, Any], stats: dict[str, Any], validation_example_count: int) -> None:
    """The datasets are loaded: ``supervisedTuningDataStats`` as measured by the worker."""
    job.setdefault("tuningDataStats", {})["supervisedTuningDataStats"] = stats
    metrics = job.setdefault("localTuningMetrics", {"epochs": []})
    metrics["validationExampleCount"] = validation_example_count


def record_epoch(job: dict[str, Any], epoch_stats: dict[str, Any]) -> None:
    """An epoch finished: its losses, and a checkpoint entry like Vertex's."""
    metrics = job.setdefault("localTuningMetrics", {"epochs": []})
    metrics["epochs"].append(epoch_stats)
    epoch = int(epoch_stats.get("epoch", len(metrics["epochs"])))
    tuned = job.setdefault("tunedModel", {})
    tuned.setdefault("checkpoints", []).append(
        {
            "checkpointId": str(epoch),
            "epoch": str(epoch),
            "step": str(int(epoch_stats.get("step", 0))),
            "endpoint": endpoint_name(job),
        }
    )
