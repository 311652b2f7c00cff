"""The TuningJob resource as stored and served: states, names, and the state transitions.

A job is the REST resource (camelCase, exactly the fields of Vertex AI's published
TuningJob schema) plus a private ``_local`` block that is never served: ids, project,
location, training config, the checkpoints' model keys and endpoint ids, and the per-epoch
figures (served only at the local route ``/local/v1/{job}:epochs``). Functions here change
a job dict in place and do no I/O; the store persists what they produce.

States follow the JobState enum's descriptions: a new job is ``PENDING`` ("the service is
preparing to run the job") until the single local trainer takes it (``RUNNING``). It is
never ``QUEUED``: Google's own samples poll ``while state in (PENDING, RUNNING)``, which a
QUEUED job would end at once. While RUNNING, v1beta1's ``tuningJobState`` (described as
"the detail state of the tuning job (while the overall JobState is running)") says
``TUNING_JOB_STATE_PROCESSING_DATASET``, then ``TUNING_JOB_STATE_TUNING``.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from platform_facts.gemini import serving_location as facts_serving_location

from ..errors import RPC_CANCELLED
from .checkpoints import checkpoint_entry

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


def serving_location(job: dict[str, Any]) -> str:
    """Where the job's endpoints answer: its tuning region, or the multi-region endpoint
    (``us``, ``eu``) for a model Vertex AI serves only there (platform_facts.gemini). Jobs
    written before it was recorded get it from the table."""
    loc = job["_local"]
    return loc.get("servingLocation") or facts_serving_location(loc.get("localBaseModel", ""), loc["location"])


def endpoint_path(job: dict[str, Any], endpoint_id: str) -> str:
    """An endpoint of the job, at its serving location (the job itself stays at its tuning region)."""
    return f"projects/{job['_local']['project']}/locations/{serving_location(job)}/endpoints/{endpoint_id}"


def id_of(job: dict[str, Any]) -> str:
    return job["_local"]["id"]


def endpoint_name(job: dict[str, Any]) -> str:
    return endpoint_path(job, job["_local"]["endpointId"])


def model_name(job: dict[str, Any]) -> str:
    loc = job["_local"]
    return f"projects/{loc['project']}/locations/{loc['location']}/models/{loc['modelId']}@1"


def base_model_name(job: dict[str, Any]) -> str:
    """The base model a job tunes: ``baseModel``, or ``preTunedModel.baseModel`` for a continued job."""
    return job.get("baseModel") or job.get("preTunedModel", {}).get("baseModel", "")


def state_word(job: dict[str, Any]) -> str:
    """``SUCCEEDED`` for ``JOB_STATE_SUCCEEDED``: how messages name a state."""
    return job["state"].removeprefix("JOB_STATE_")


# --------------------------------------------------------------------------- transitions

PROCESSING_DATASET = "TUNING_JOB_STATE_PROCESSING_DATASET"
TUNING = "TUNING_JOB_STATE_TUNING"


def mark_running(job: dict[str, Any]) -> None:
    job["state"] = RUNNING
    job["startTime"] = now_rfc3339()
    job["tuningJobState"] = PROCESSING_DATASET


def mark_cancelling(job: dict[str, Any]) -> None:
    job["state"] = CANCELLING


def _ended(job: dict[str, Any]) -> None:
    job.pop("tuningJobState", None)
    job["endTime"] = now_rfc3339()


def mark_failed(job: dict[str, Any], code: int, message: str) -> None:
    """FAILED with ``error``; no tuned model (its checkpoints' endpoints go away)."""
    job["state"] = FAILED
    job["error"] = {"code": code, "message": message}
    job.setdefault("startTime", now_rfc3339())
    job.pop("tunedModel", None)
    _ended(job)


def mark_cancelled(job: dict[str, Any]) -> None:
    job["state"] = CANCELLED
    job["error"] = {"code": RPC_CANCELLED, "message": "CANCELED: the tuning job was cancelled."}
    job.pop("tunedModel", None)
    _ended(job)


def mark_succeeded(job: dict[str, Any], metrics: dict[str, Any]) -> None:
    """SUCCEEDED with the worker's final ``metrics`` (epochs, stepCount, exampleCount,
    tokenCount, trainSeconds). The final checkpoint is the trained model itself, served by
    the tuned model's endpoint (so the main endpoint points to it: the default checkpoint);
    it is listed only when intermediate checkpoints are exported (TunedModel.checkpoints
    "is only populated for tuning jobs that enable intermediate checkpoints")."""
    job["state"] = SUCCEEDED
    job.pop("error", None)
    _ended(job)
    local = job["_local"]
    tuned = job.setdefault("tunedModel", {})
    tuned["model"] = model_name(job)
    tuned["endpoint"] = endpoint_name(job)
    if not local.get("exportLastCheckpointOnly"):
        final = {
            "checkpointId": str(len(local.setdefault("checkpoints", [])) + 1),
            "epoch": int(local["config"]["epochs"]),
            "step": int(metrics["stepCount"]),
            "endpointId": local["endpointId"],
            "modelKey": local["modelId"],
        }
        local["checkpoints"].append(final)
        tuned.setdefault("checkpoints", []).append(checkpoint_entry(final, endpoint_name(job)))
    stats = job.setdefault("tuningDataStats", {}).setdefault("supervisedTuningDataStats", {})
    stats["tuningStepCount"] = str(metrics["stepCount"])
    stats.setdefault("tuningDatasetExampleCount", str(metrics["exampleCount"]))
    local["epochs"] = metrics["epochs"] or local.get("epochs", [])
    local["metrics"] = {k: metrics[k] for k in ("stepCount", "exampleCount", "tokenCount", "trainSeconds")}
    if metrics.get("initialWeights") is not None:
        local["initialWeights"] = metrics["initialWeights"]


# --------------------------------------------------------------------------- progress


def record_data_stats(job: dict[str, Any], stats: dict[str, Any], validation_example_count: int) -> None:
    """The datasets are loaded: ``supervisedTuningDataStats`` as measured by the worker."""
    job.setdefault("tuningDataStats", {})["supervisedTuningDataStats"] = stats
    job["_local"]["validationExampleCount"] = validation_example_count
    if job["state"] == RUNNING:
        job["tuningJobState"] = TUNING


def record_epoch(job: dict[str, Any], epoch_stats: dict[str, Any]) -> None:
    """An epoch finished: its figures (served at the local epochs route only)."""
    job["_local"].setdefault("epochs", []).append(epoch_stats)


def record_checkpoint(job: dict[str, Any], checkpoint: dict[str, Any]) -> None:
    """An intermediate checkpoint's weights are saved (``checkpoint``: checkpointId, epoch,
    step, modelKey, endpointId): list it with its own endpoint, which answers from now on."""
    job["_local"].setdefault("checkpoints", []).append(checkpoint)
    job.setdefault("tunedModel", {}).setdefault("checkpoints", []).append(
        checkpoint_entry(checkpoint, endpoint_path(job, checkpoint["endpointId"]))
    )
