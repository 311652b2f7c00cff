"""Continuous tuning: a create-TuningJob body with ``preTunedModel`` instead of ``baseModel``
(the REST reference's ``source_model`` union), resolved against this server's jobs.

Rules, from the continuous-tuning page
(https://docs.cloud.google.com/gemini-enterprise-agent-platform/models/tuning/continuous-tuning)
and platform_facts.gemini.continuous_tuning_problem:

* ``tunedModelName`` is ``projects/{project}/locations/{location}/models/{model}[@{version}]``;
  "{version_id} is optional and can be either the generated version ID or a user-provided
  version alias. If it is omitted, the default version is used." Every local tuned model
  has one version, ``1`` (alias ``default``); another version is 404, like an unknown model
  or one of another project;
* the model exists once its job has SUCCEEDED (a job that did not succeed has no model: 404);
* "If you're using a checkpoint as a base model and don't specify a checkpoint ID, the
  default checkpoint is used": the tuned model itself (checkpoints.py); a ``checkpointId``
  that is not one of the job's checkpoints is 400;
* its base model must support continuous tuning, not be retired, and the model must have
  been tuned on or after ``continuous_tuning_since()`` (400);
* the base model's adapter-size and region rules apply as for any job (request.py).

"If a new display name is provided, the tuning job will create a new model instead of a
new version": the local server always creates a new model (version 1), display name or not,
so its models stay one directory each; the versions of one parent model are not modelled.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from platform_facts.gemini import continuous_tuning_problem

from ..errors import invalid, not_found
from .resource import SUCCEEDED, base_model_name, state_word

# (project, location, model id) -> the job whose tuned model that is, or None.
FindModel = Callable[[str, str, str], "dict[str, Any] | None"]

_MODEL_NAME_RE = re.compile(r"projects/([^/]+)/locations/([^/]+)/models/([^/@]+)(?:@([^/@]+))?")
DEFAULT_VERSIONS = ("", "1", "default")  # the one version of a local tuned model, by id and alias


@dataclass(frozen=True)
class PreTuned:
    """A resolved ``preTunedModel``: where training starts from."""

    tuned_model_name: str  # as sent
    checkpoint_id: str | None  # as sent (None: the default checkpoint)
    base_model: str  # the pre-tuned job's baseModel, as it was sent
    local_base_model: str  # its model id in platform_facts.gemini
    job_name: str  # the pre-tuned model's tuning job
    weights_key: str  # model key (directory under models/) of the weights to start from

    def served(self) -> dict[str, Any]:
        """``TuningJob.preTunedModel`` as served: what was sent, plus output-only ``baseModel``."""
        out = {"tunedModelName": self.tuned_model_name, "baseModel": self.base_model}
        if self.checkpoint_id:
            out["checkpointId"] = self.checkpoint_id
        return out


def check_source_model(body: dict[str, Any]) -> dict[str, Any] | None:
    """The ``preTunedModel`` of a body (None without one: then ``baseModel`` is required);
    400 when both members of the union are set, or ``tunedModelName`` is missing."""
    pre = body.get("preTunedModel")
    if pre is None:
        return None
    if body.get("baseModel"):
        raise invalid(
            "Only one of baseModel or preTunedModel may be set (source_model): "
            "continuous tuning starts from the pre-tuned model's base model."
        )
    if not isinstance(pre, dict) or not pre.get("tunedModelName"):
        raise invalid("preTunedModel.tunedModelName is required")
    return pre


def _find_succeeded(name: str, project: str, find_model: FindModel) -> dict[str, Any]:
    """The SUCCEEDED job whose tuned model ``name`` is; 400 for a malformed name, else 404."""
    match = _MODEL_NAME_RE.fullmatch(name)
    if match is None:
        raise invalid(
            f"preTunedModel.tunedModelName {name[:200]!r} is not a model resource name: "
            "projects/{project}/locations/{location}/models/{model}[@{version}]"
        )
    model_project, model_location, model_id, version = match.groups()
    job = find_model(model_project, model_location, model_id) if model_project == project else None
    if job is None or (version or "") not in DEFAULT_VERSIONS:
        raise not_found(f"Model {name} not found.")
    if job["state"] != SUCCEEDED:
        raise not_found(
            f"Model {name} not found: its tuning job {job['name']} is {state_word(job)}; "
            "a tuned model exists once its job has SUCCEEDED."
        )
    return job


def _weights_key(job: dict[str, Any], name: str, checkpoint_id: str | None) -> str:
    """The model key of the checkpoint to start from (the default one: the tuned model)."""
    local = job["_local"]
    if not checkpoint_id:
        return local["modelId"]
    for checkpoint in local.get("checkpoints", []):
        if checkpoint["checkpointId"] == checkpoint_id:
            return checkpoint["modelKey"]
    listed = ", ".join(c["checkpointId"] for c in local.get("checkpoints", [])) or "none (exportLastCheckpointOnly)"
    raise invalid(
        f"preTunedModel.checkpointId {checkpoint_id!r} is not a checkpoint of {name}; its checkpoints: {listed}."
    )


def resolve_pre_tuned(pre: dict[str, Any], project: str, find_model: FindModel) -> PreTuned:
    """Check a ``preTunedModel`` against the continuous-tuning rules (module docstring)."""
    name = str(pre["tunedModelName"])
    checkpoint_id = str(pre["checkpointId"]) if pre.get("checkpointId") else None
    job = _find_succeeded(name, project, find_model)
    local = job["_local"]
    key = _weights_key(job, name, checkpoint_id)
    problem = continuous_tuning_problem("", local["localBaseModel"], job.get("createTime", ""))
    if problem:
        raise invalid(f"Model {name} cannot be tuned onward: {problem}.")
    return PreTuned(name, checkpoint_id, base_model_name(job), local["localBaseModel"], job["name"], key)
