"""Create-TuningJob requests: validation (:func:`parse_tuning_request`, pure) and the new
PENDING job resource (:func:`new_job`). :func:`build_job` does both, plus the check that
the datasets exist.

The body arrives already parsed against the published schema (routes: unknown fields and
wrong types are 400 there; output-only fields such as ``experiment`` are dropped). What is
checked here is what Vertex AI checks beyond the schema, from the project's one table of
base-model capabilities, platform_facts/gemini.py:

* the base model is one that supervised tuning supports (``tuning_capabilities``);
* the adapter size is one that model accepts;
* the location in the path is a tuning region (``tuning_regions``);
* hyperparameters: protobuf JSON cannot tell 0 from unset for ``epochCount`` and
  ``learningRateMultiplier`` (no field presence), so 0 means "use the default", as on
  Vertex; negative values are refused. ``learningRate`` and ``batchSize`` are for open
  models only (their schema descriptions), as are ``outputUri`` and ``customBaseModel``;
* labels follow the Cloud labels rules (TuningJob.labels: lowercase letters, digits, ``_``
  and ``-``, international characters allowed; keys start with a letter; at most 63
  characters each, 64 labels);
* ``tunedModelDisplayName`` is at most 128 characters (its schema description);
* continuous tuning: ``preTunedModel`` instead of ``baseModel`` (continuous.py), the base
  model being the pre-tuned model's.

Tuning kinds the local Vertex AI does not implement (distillation, preference and
reinforcement tuning, ``evaluationConfig``, customer-managed encryption) answer 501
UNIMPLEMENTED rather than being ignored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from platform_facts.gemini import serving_location, tuning_problems

from ..errors import invalid, unimplemented
from ..ids import new_id
from ..storage import GsUri, InvalidUri, parse_gs_uri
from .continuous import FindModel, PreTuned, check_source_model, resolve_pre_tuned
from .resource import PENDING, now_rfc3339

# AdapterSize enum value name -> LoRA rank (SupervisedHyperParameters.adapterSize).
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
DEFAULT_ADAPTER = "ADAPTER_SIZE_FOUR"  # allowed for every model in the capabilities table
TRAIN_SEED = 0
MAX_DISPLAY_NAME = 128
MAX_LABELS, MAX_LABEL_CHARS = 64, 63

_BASE_PREFIX_RE = re.compile(r"(?:projects/[^/]+/locations/[^/]+/)?publishers/google/models/")
_DATASET_KEYS = ("trainingDatasetUri", "validationDatasetUri")
# Specs of tuning kinds the local Vertex AI does not implement.
_OTHER_SPECS = (
    "distillationSpec",
    "preferenceOptimizationSpec",
    "reinforcementTuningSpec",
    "fullFineTuningSpec",
    "partnerModelTuningSpec",
    "veoTuningSpec",
    "veoLoraTuningSpec",
)
# "This feature is only available for open source models." (schema descriptions)
_OPEN_MODEL_ONLY = {"outputUri": "outputUri", "customBaseModel": "customBaseModel"}
_OPEN_MODEL_ONLY_HP = ("learningRate", "batchSize")


@dataclass(frozen=True)
class HyperParameters:
    epochs: int
    learning_rate_multiplier: float
    adapter: str  # an ADAPTER_SIZES key


@dataclass(frozen=True)
class TuningRequest:
    """A validated create-TuningJob body (canonical form: camelCase keys, enum names)."""

    body: dict[str, Any]
    local_base_model: str
    spec: dict[str, Any]  # supervisedTuningSpec as sent
    datasets: dict[str, GsUri]  # by _DATASET_KEYS key; validation is optional
    hyper_parameters: HyperParameters
    display_name: str | None
    labels: dict[str, str]
    export_last_checkpoint_only: bool = False
    pre_tuned: PreTuned | None = None  # continuous tuning: where training starts from


def normalize_base_model(base_model: Any) -> str:
    """The model id of ``gemini-2.5-flash``, ``publishers/google/models/gemini-2.5-flash`` or
    ``projects/P/locations/L/publishers/google/models/gemini-2.5-flash``; 400 for another
    form or a model the capabilities table does not list."""
    if not isinstance(base_model, str) or not base_model:
        raise invalid("baseModel is required")
    short = _BASE_PREFIX_RE.sub("", base_model, count=1) if _BASE_PREFIX_RE.match(base_model) else base_model
    problems = (
        tuning_problems(short)
        if "/" not in short
        else [f"base_model {base_model!r} is not a Gemini model that supervised tuning supports"]
    )
    if problems:
        raise invalid(f"Base model {base_model} is not supported for supervised tuning: {problems[0]}.")
    return short


def _int64(value: Any, what: str) -> int:
    """A canonical int64 (a string after schema parsing; int for direct callers)."""
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        return int(value)
    except (TypeError, ValueError):
        raise invalid(f"{what} must be an integer, got {value!r}") from None


def _dataset_uris(spec: dict[str, Any]) -> dict[str, GsUri]:
    uris = {}
    for key in _DATASET_KEYS:
        value = spec.get(key)
        if not value and key == "validationDatasetUri":
            continue
        if not value:
            raise invalid(f"supervisedTuningSpec.{key} is required")
        try:
            uris[key] = parse_gs_uri(value)
        except InvalidUri as exc:
            raise invalid(f"supervisedTuningSpec.{key}: {exc}") from None
        if not str(uris[key]).endswith(".jsonl"):
            raise invalid(f"supervisedTuningSpec.{key} must point to a .jsonl file: {uris[key]}")
    return uris


def _hyper_parameters(hp: dict[str, Any]) -> HyperParameters:
    for key in _OPEN_MODEL_ONLY_HP:
        if hp.get(key) not in (None, 0, "0"):
            raise invalid(
                f"supervisedTuningSpec.hyperParameters.{key} is only available for "
                "open source models; Gemini models take learningRateMultiplier."
            )
    epochs = _int64(hp.get("epochCount") or 0, "epochCount")
    if epochs < 0:
        raise invalid(f"epochCount must be positive, got {epochs}")
    lr = hp.get("learningRateMultiplier") or 0
    if isinstance(lr, str):  # "NaN", "Infinity", "-Infinity" in protobuf JSON
        lr = float(lr)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr < 0:
        raise invalid(f"learningRateMultiplier must be a positive number, got {lr!r}")
    adapter = hp.get("adapterSize") or "ADAPTER_SIZE_UNSPECIFIED"
    if adapter == "ADAPTER_SIZE_UNSPECIFIED":
        adapter = DEFAULT_ADAPTER
    if adapter not in ADAPTER_SIZES:
        raise invalid(f"adapterSize must be one of {', '.join(ADAPTER_SIZES)}, got {adapter!r}")
    return HyperParameters(epochs or DEFAULT_EPOCHS, float(lr) or DEFAULT_LR_MULTIPLIER, adapter)


def _display_name(body: dict[str, Any]) -> str | None:
    display = body.get("tunedModelDisplayName")
    if display is not None and (not isinstance(display, str) or len(display) > MAX_DISPLAY_NAME):
        raise invalid(f"tunedModelDisplayName must be a string of at most {MAX_DISPLAY_NAME} characters")
    return display or None


def _lowercase_letter(c: str) -> bool:
    """A lowercase letter, or a letter without case (international characters)."""
    return c.islower() or (c.isalpha() and not c.isupper())


def _label_text_ok(text: str, key: bool) -> bool:
    if len(text) > MAX_LABEL_CHARS or (key and not text):
        return False
    if key and not _lowercase_letter(text[0]):
        return False
    return all(c in "_-" or c.isdigit() or _lowercase_letter(c) for c in text)


def _labels(body: dict[str, Any]) -> dict[str, str]:
    labels = body.get("labels") or {}
    if not isinstance(labels, dict) or len(labels) > MAX_LABELS:
        raise invalid(f"labels must be an object with at most {MAX_LABELS} entries")
    for k, v in labels.items():
        if (
            not isinstance(k, str)
            or not isinstance(v, str)
            or not _label_text_ok(k, key=True)
            or not _label_text_ok(v, key=False)
        ):
            raise invalid(
                f"invalid label {k!r}: {v!r} (keys and values: at most "
                f"{MAX_LABEL_CHARS} lowercase letters, digits, '_' and '-'; keys "
                "start with a letter)"
            )
    return dict(labels)


def _refuse_unimplemented(body: dict[str, Any], spec: dict[str, Any]) -> None:
    for key in _OTHER_SPECS:
        if key in body:
            raise unimplemented(
                f"{key} is not implemented by the local Vertex AI: it runs "
                "supervised tuning (supervisedTuningSpec) only."
            )
    if "encryptionSpec" in body:
        raise unimplemented("customer-managed encryption (encryptionSpec) is not implemented by the local Vertex AI.")
    if "evaluationConfig" in spec:
        raise unimplemented(
            "supervisedTuningSpec.evaluationConfig is not implemented by the "
            "local Vertex AI (it has no Gen AI evaluation service)."
        )
    if spec.get("tuningMode") == "TUNING_MODE_FULL":
        raise unimplemented(
            "tuningMode TUNING_MODE_FULL is not implemented by the local "
            "Vertex AI: it trains adapters (TUNING_MODE_PEFT_ADAPTER)."
        )


def _no_models(project: str, location: str, model_id: str) -> None:
    return None


def parse_tuning_request(
    body: Any, location: str | None = None, project: str = "", find_model: FindModel = _no_models
) -> TuningRequest:
    """Validate a create-TuningJob body; raise ``ApiError`` (400, 404 for a pre-tuned model
    that does not exist, or 501 for what the local server does not implement) at the first
    problem. ``location`` (the path's) must be a tuning region when given; ``find_model``
    looks up the tuned models of ``project`` for ``preTunedModel``."""
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    spec = body.get("supervisedTuningSpec")
    _refuse_unimplemented(body, spec if isinstance(spec, dict) else {})
    for key, name in _OPEN_MODEL_ONLY.items():
        if body.get(key):
            raise invalid(f"{name} is only available for open source models, not for Gemini supervised tuning.")
    pre = check_source_model(body)
    pre_tuned = resolve_pre_tuned(pre, project, find_model) if pre is not None else None
    base = pre_tuned.local_base_model if pre_tuned else normalize_base_model(body.get("baseModel"))
    if not isinstance(spec, dict):
        raise invalid("supervisedTuningSpec is required (only supervised tuning is supported)")
    uris = _dataset_uris(spec)
    hp = spec.get("hyperParameters") or {}
    if not isinstance(hp, dict):
        raise invalid("supervisedTuningSpec.hyperParameters must be an object")
    hyper = _hyper_parameters(hp)
    problems = tuning_problems(base, ADAPTER_SIZES[hyper.adapter], location)
    if problems:
        raise invalid("; ".join(problems))
    return TuningRequest(
        body=body,
        local_base_model=base,
        spec=spec,
        datasets=uris,
        hyper_parameters=hyper,
        display_name=_display_name(body),
        labels=_labels(body),
        export_last_checkpoint_only=bool(spec.get("exportLastCheckpointOnly")),
        pre_tuned=pre_tuned,
    )


def check_datasets_exist(request: TuningRequest, exists: Callable[[GsUri], bool]) -> None:
    for key, ref in request.datasets.items():
        if not exists(ref):
            raise invalid(f"supervisedTuningSpec.{key}: dataset {ref} does not exist")


def _served_spec(request: TuningRequest) -> dict[str, Any]:
    """supervisedTuningSpec as served: what was sent, URIs normalised, hyperparameters
    filled in with the values the job uses."""
    hp = request.hyper_parameters
    spec = {k: v for k, v in request.spec.items() if k != "hyperParameters"}
    spec.update({k: str(v) for k, v in request.datasets.items()})
    spec["hyperParameters"] = {
        "epochCount": str(hp.epochs),
        "learningRateMultiplier": hp.learning_rate_multiplier,
        "adapterSize": hp.adapter,
    }
    return spec


def new_job(request: TuningRequest, project: str, location: str) -> dict[str, Any]:
    """A new PENDING job resource, with fresh job, model and endpoint ids."""
    job_id, model_id, endpoint_id = new_id(), new_id(), new_id()
    now = now_rfc3339()
    body, hp = request.body, request.hyper_parameters
    job: dict[str, Any] = {
        "name": f"projects/{project}/locations/{location}/tuningJobs/{job_id}",
        "tunedModelDisplayName": (request.display_name or f"{request.local_base_model}-tuned-{job_id[-6:]}"),
        "supervisedTuningSpec": _served_spec(request),
        "state": PENDING,
        "createTime": now,
        "updateTime": now,
    }
    job.update({k: body[k] for k in ("description", "serviceAccount") if body.get(k)})
    if request.labels:
        job["labels"] = dict(request.labels)
    # source_model is a oneof: a continued job names preTunedModel (its output-only baseModel
    # inside), never baseModel too (the SDK's proto parser refuses both).
    if request.pre_tuned:
        job["preTunedModel"] = request.pre_tuned.served()
    else:
        job["baseModel"] = body["baseModel"]
    job["_local"] = {
        "id": job_id,
        "project": project,
        "location": location,
        "modelId": model_id,
        "endpointId": endpoint_id,
        "localBaseModel": request.local_base_model,
        # Where its endpoints answer: the tuning region, or a multi-region endpoint ("us").
        "servingLocation": serving_location(request.local_base_model, location),
        "config": {
            "epochs": hp.epochs,
            "learning_rate_multiplier": hp.learning_rate_multiplier,
            "adapter_size": ADAPTER_SIZES[hp.adapter],
            "seed": TRAIN_SEED,
        },
        "exportLastCheckpointOnly": request.export_last_checkpoint_only,
        "checkpoints": [],
        "epochs": [],
    }
    if request.pre_tuned:
        job["_local"]["preTuned"] = {"job": request.pre_tuned.job_name, "modelKey": request.pre_tuned.weights_key}
    return job


def build_job(
    body: Any,
    project: str,
    location: str,
    exists: Callable[[GsUri], bool] | None = None,
    find_model: FindModel = _no_models,
) -> dict[str, Any]:
    """Validate a create-TuningJob body and return the new job resource (PENDING)."""
    request = parse_tuning_request(body, location, project, find_model)
    if exists is not None:
        check_datasets_exist(request, exists)
    return new_job(request, project, location)
