"""Create-TuningJob requests: validation (:func:`parse_tuning_request`, pure) and the new
PENDING job resource (:func:`new_job`). :func:`build_job` does both, plus the check that
the datasets exist."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import invalid
from ..ids import new_id
from ..storage import GsUri, InvalidUri, parse_gs_uri
from .resource import PENDING, now_rfc3339

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
_DATASET_KEYS = ("trainingDatasetUri", "validationDatasetUri")
_TUNED_HYPER_PARAMETERS = ("epochCount", "learningRateMultiplier", "adapterSize")
_COPIED_STRING_FIELDS = ("description", "experiment", "serviceAccount")


@dataclass(frozen=True)
class HyperParameters:
    epochs: int
    learning_rate_multiplier: float
    adapter: str  # an ADAPTER_SIZES key


@dataclass(frozen=True)
class TuningRequest:
    """A validated create-TuningJob body (camelCase keys)."""

    body: dict[str, Any]
    local_base_model: str
    spec: dict[str, Any]  # supervisedTuningSpec as sent
    datasets: dict[str, GsUri]  # by _DATASET_KEYS key; validation is optional
    hyper_parameters: HyperParameters
    display_name: str | None
    labels: dict[str, str]


def normalize_base_model(base_model: Any) -> str:
    if not isinstance(base_model, str) or not base_model:
        raise invalid("baseModel is required")
    short = _BASE_PREFIX_RE.sub("", base_model)
    if short in SUPPORTED_BASE_MODELS or short.startswith("gemini-2.0-flash"):
        return short
    raise invalid(
        f"Base model {base_model!r} is not supported for supervised tuning here. "
        f"Supported: {', '.join(SUPPORTED_BASE_MODELS)}, gemini-2.0-flash*."
    )


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


def _dataset_uris(spec: dict[str, Any]) -> dict[str, GsUri]:
    uris = {}
    for key in _DATASET_KEYS:
        value = spec.get(key)
        if value is None and key == "validationDatasetUri":
            continue
        try:
            uris[key] = parse_gs_uri(value)
        except InvalidUri as exc:
            raise invalid(f"supervisedTuningSpec.{key}: {exc}") from None
        if not str(uris[key]).endswith(".jsonl"):
            raise invalid(f"supervisedTuningSpec.{key} must point to a .jsonl file: {uris[key]}")
    return uris


def _hyper_parameters(hp: dict[str, Any]) -> HyperParameters:
    epochs = _int_field(hp.get("epochCount", DEFAULT_EPOCHS), "epochCount", 1, 100)
    lr = hp.get("learningRateMultiplier", DEFAULT_LR_MULTIPLIER)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr <= 100:
        raise invalid(f"learningRateMultiplier must be a number in (0, 100], got {lr!r}")
    adapter = hp.get("adapterSize", DEFAULT_ADAPTER)
    if adapter in (None, "ADAPTER_SIZE_UNSPECIFIED"):
        adapter = DEFAULT_ADAPTER
    if adapter not in ADAPTER_SIZES:
        raise invalid(f"adapterSize must be one of {', '.join(ADAPTER_SIZES)}, got {adapter!r}")
    return HyperParameters(epochs, float(lr), adapter)


def _display_name(body: dict[str, Any]) -> str | None:
    display = body.get("tunedModelDisplayName")
    if display is not None and (not isinstance(display, str) or len(display) > 128):
        raise invalid("tunedModelDisplayName must be a string of at most 128 characters")
    return display


def _labels(body: dict[str, Any]) -> dict[str, str]:
    labels = body.get("labels") or {}
    if not isinstance(labels, dict) or len(labels) > 64:
        raise invalid("labels must be an object with at most 64 entries")
    for k, v in labels.items():
        if not LABEL_KEY_RE.fullmatch(str(k)) or not isinstance(v, str) or not LABEL_VALUE_RE.fullmatch(v):
            raise invalid(f"invalid label {k!r}: {v!r} (lowercase letters, digits, '_' and '-')")
    return dict(labels)


def parse_tuning_request(body: Any) -> TuningRequest:
    """Validate a create-TuningJob body; raise 400 (``ApiError``) at the first problem."""
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    base = normalize_base_model(body.get("baseModel"))
    spec = body.get("supervisedTuningSpec")
    if not isinstance(spec, dict):
        raise invalid("supervisedTuningSpec is required (only supervised tuning is supported)")
    uris = _dataset_uris(spec)
    hp = spec.get("hyperParameters") or {}
    if not isinstance(hp, dict):
        raise invalid("supervisedTuningSpec.hyperParameters must be an object")
    return TuningRequest(
        body=body,
        local_base_model=base,
        spec=spec,
        datasets=uris,
        hyper_parameters=_hyper_parameters(hp),
        display_name=_display_name(body),
        labels=_labels(body),
    )


def check_datasets_exist(request: TuningRequest, exists: Callable[[GsUri], bool]) -> None:
    for key, ref in request.datasets.items():
        if not exists(ref):
            raise invalid(f"supervisedTuningSpec.{key}: dataset {ref} does not exist")


def _served_spec(request: TuningRequest) -> dict[str, Any]:
    """supervisedTuningSpec as served: URIs normalised, hyperparameters filled in."""
    hp, sent_hp = request.hyper_parameters, request.spec.get("hyperParameters") or {}
    spec = {k: v for k, v in request.spec.items() if k != "hyperParameters"}
    spec.update({k: str(v) for k, v in request.datasets.items()})
    spec["hyperParameters"] = {
        **{k: v for k, v in sent_hp.items() if k not in _TUNED_HYPER_PARAMETERS},
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
        "baseModel": body["baseModel"],
        "supervisedTuningSpec": _served_spec(request),
        "state": PENDING,
        "createTime": now,
        "updateTime": now,
    }
    job.update({k: body[k] for k in _COPIED_STRING_FIELDS if isinstance(body.get(k), str)})
    if request.labels:
        job["labels"] = dict(request.labels)
    job["_local"] = {
        "id": job_id,
        "project": project,
        "location": location,
        "modelId": model_id,
        "endpointId": endpoint_id,
        "localBaseModel": request.local_base_model,
        "config": {
            "epochs": hp.epochs,
            "learning_rate_multiplier": hp.learning_rate_multiplier,
            "adapter_size": ADAPTER_SIZES[hp.adapter],
            "seed": TRAIN_SEED,
        },
    }
    return job


def build_job(body: Any, project: str, location: str, exists: Callable[[GsUri], bool] | None = None) -> dict[str, Any]:
    """Validate a create-TuningJob body and return the new job resource (PENDING)."""
    request = parse_tuning_request(body)
    if exists is not None:
        check_datasets_exist(request, exists)
    return new_job(request, project, location)
