"""Checkpoints of a tuning job, as Vertex AI's supervised tuning exports them, and where
their weights live.

Rules (cloud.google.com/vertex-ai/generative-ai/docs/models/tuning-checkpoints, and the
schema's SupervisedTuningSpec.exportLastCheckpointOnly / TunedModel.checkpoints):

* ``exportLastCheckpointOnly`` false (the default) enables intermediate checkpoints: "For
  tuning jobs with fewer than 10 epochs, one checkpoint is saved approximately after each
  epoch. For jobs with 10 or more epochs, about 10 checkpoints are saved at evenly
  distributed intervals. The final checkpoint is always saved immediately after training
  completes." (:func:`checkpoint_epochs`);
* "As tuning progresses, each intermediate checkpoint is deployed to a new endpoint. The
  main endpoint for the tuned model always points to the default checkpoint." The final
  checkpoint is the default one: its endpoint is the tuned model's endpoint (Google's own
  example lists the last checkpoint with the main endpoint);
* ``checkpointId`` counts from "1" in the order the checkpoints are saved;
* with ``exportLastCheckpointOnly`` true, ``TunedModel.checkpoints`` is not populated
  ("only populated for tuning jobs that enable intermediate checkpoints").

Storage: the tuned model is ``<data_dir>/models/<modelId>/`` (written by the worker with
``InspectorModel.save``); an intermediate checkpoint is a model of its own in
``<data_dir>/models/<modelId>-checkpoint-<checkpointId>/``, saved the same way before the
checkpoint is listed. Its "model key" (the directory name) is a valid resource id, so
``Predictor`` serves it by key like any tuned model: the route maps the endpoint id to the
key (:func:`serving_key`), nothing else changes.
"""

from __future__ import annotations

from typing import Any

from ..ids import check_id

# Jobs whose intermediate checkpoints' endpoints answer: they are deployed "as tuning
# progresses", and stay with the tuned model once the job has SUCCEEDED.
SERVING_STATES = frozenset({"JOB_STATE_RUNNING", "JOB_STATE_CANCELLING", "JOB_STATE_SUCCEEDED"})


def checkpoint_epochs(epochs: int) -> list[int]:
    """The epochs after which a checkpoint is saved, the last one included."""
    if epochs < 10:
        return list(range(1, epochs + 1))
    return sorted({max(1, round(epochs * k / 10)) for k in range(1, 11)})


def intermediate_epochs(epochs: int, export_last_only: bool) -> list[int]:
    """The epochs whose weights the worker saves as intermediate checkpoints."""
    return [] if export_last_only else checkpoint_epochs(epochs)[:-1]


def checkpoint_model_key(model_id: str, checkpoint_id: str) -> str:
    return check_id(f"{model_id}-checkpoint-{checkpoint_id}", "checkpoint model key")


def checkpoint_entry(checkpoint: dict[str, Any], endpoint: str) -> dict[str, Any]:
    """The ``TunedModelCheckpoint`` of a stored checkpoint (int64 fields as strings)."""
    return {
        "checkpointId": checkpoint["checkpointId"],
        "epoch": str(checkpoint["epoch"]),
        "step": str(checkpoint["step"]),
        "endpoint": endpoint,
    }


def serving_key(job: dict[str, Any], endpoint_id: str) -> tuple[str, bool] | None:
    """(model key, is the tuned model's own endpoint) for an endpoint of ``job``; None if
    the endpoint is not one of the job's."""
    local = job["_local"]
    if endpoint_id == local["endpointId"]:
        return local["modelId"], True
    for checkpoint in local.get("checkpoints", []):
        if checkpoint["endpointId"] == endpoint_id:
            return checkpoint["modelKey"], False
    return None


def endpoint_ids(job: dict[str, Any]) -> list[str]:
    """Every endpoint id of a job: its own and its checkpoints'."""
    local = job["_local"]
    return [local["endpointId"]] + [c["endpointId"] for c in local.get("checkpoints", [])]
