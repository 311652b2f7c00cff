"""Pipeline parameters: read from the compiled YAML, parsed from the command line, checked.

Every command that starts a run (offline or on Vertex AI) checks its parameters here
first, so a typo fails in a second with one clear line instead of an hour into a run.
"""

import re
from pathlib import Path

import yaml

from components.cost import training_price
from components.drawing import drawing_variations
from pipeline.pipeline import COMPILED_YAML
from platform_facts.gemini import (
    lifecycle_warning,
    media_resolution_problem,
    thinking_config_for,
    tuning_problems,
)

ADAPTER_SIZES = (1, 2, 4, 8, 16)  # the most any base model accepts; tuning_problems checks per model
_TYPES = {"STRING": str, "NUMBER_INTEGER": int, "NUMBER_DOUBLE": float, "BOOLEAN": bool}


class ParameterError(ValueError):
    """A pipeline parameter that is unknown, mistyped or out of range."""


def pipeline_inputs(path: Path = COMPILED_YAML) -> dict[str, dict]:
    """The compiled pipeline's input parameters: name -> {"type", "default"?}."""
    spec = yaml.safe_load(path.read_text())
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    return {
        name: {"type": p["parameterType"], **({"default": p["defaultValue"]} if "defaultValue" in p else {})}
        for name, p in parameters.items()
    }


def coerce(name: str, value, parameter_type: str):
    """Converts a command-line string (or a value) to the parameter's type."""
    target = _TYPES.get(parameter_type, str)
    if isinstance(value, str) and target is not str:
        text = value.strip()
        try:
            if target is bool:
                if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return text.lower() in ("true", "1", "yes")
            return target(text)
        except ValueError:
            raise ParameterError(f"parameter {name}: {value!r} is not a valid {target.__name__}") from None
    if target is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if target is int and isinstance(value, float) and value.is_integer():  # YAML stores 4 as 4.0
        return int(value)
    if not isinstance(value, target) or (target is int and isinstance(value, bool)):
        raise ParameterError(f"parameter {name}: expected {target.__name__}, got {value!r}")
    return value


def parse_assignments(pairs: list[str]) -> dict[str, str]:
    """Turns ["key=value", ...] into a dict, naming the malformed item."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"--param {pair!r}: expected key=value, e.g. --param num_images=400")
        out[key.strip()] = value
    return out


def resolve(overrides: dict, path: Path = COMPILED_YAML) -> dict:
    """Checks overrides against the compiled pipeline and returns the full parameter set.

    Raises:
        ParameterError: an unknown name (with the closest known one), a bad type or value,
            or a required parameter left out.
    """
    import difflib

    inputs = pipeline_inputs(path)
    params = {name: coerce(name, spec["default"], spec["type"]) for name, spec in inputs.items() if "default" in spec}
    for name, value in overrides.items():
        if name not in inputs:
            close = difflib.get_close_matches(name, inputs, n=1)
            hint = f"; did you mean {close[0]}?" if close else f"; known: {', '.join(sorted(inputs))}"
            raise ParameterError(f"unknown parameter {name!r}{hint}")
        params[name] = coerce(name, value, inputs[name]["type"])
    missing = sorted(set(inputs) - set(params))
    if missing:
        raise ParameterError(f"missing required parameter(s): {', '.join(missing)}")
    check(params)
    return params


def check(params: dict) -> None:
    """Range checks that the compiled types cannot express."""
    rules = [
        (
            "bucket",
            lambda v: isinstance(v, str) and v.startswith("gs://") and len(v.rstrip("/")) > 5,
            "must be a gs:// URI, e.g. gs://my-bucket",
        ),
        ("num_images", lambda v: v >= 1, "must be at least 1"),
        ("min_test_per_class", lambda v: v >= 0, "must be at least 0"),
        ("min_golden_per_class", lambda v: v >= 0, "must be at least 0"),
        ("defect_ratio", lambda v: 0 <= v <= 1, "must be in [0, 1]"),
        ("variation", lambda v: v in drawing_variations(), f"must be one of {', '.join(drawing_variations())}"),
        ("train_fraction", lambda v: 0 < v <= 1, "must be in (0, 1]"),
        ("validation_fraction", lambda v: 0 <= v < 1, "must be in [0, 1)"),
        ("adapter_size", lambda v: v in ADAPTER_SIZES, f"must be one of {', '.join(map(str, ADAPTER_SIZES))}"),
        ("epoch_count", lambda v: v >= 1, "must be at least 1"),
        ("learning_rate_multiplier", lambda v: v > 0, "must be positive"),
        ("poll_interval_seconds", lambda v: v >= 1, "must be at least 1"),
        ("tuning_timeout_seconds", lambda v: v >= 1, "must be at least 1"),
        ("eval_concurrency", lambda v: 1 <= v <= 64, "must be between 1 and 64"),
        ("min_status_accuracy", lambda v: 0 <= v <= 1, "must be in [0, 1]"),
        ("max_miss_rate", lambda v: 0 <= v <= 1, "must be in [0, 1]"),
        ("promotion_margin", lambda v: 0 <= v <= 1, "must be in [0, 1]"),
        ("max_training_tokens", lambda v: v >= 0, "must be 0 (no limit) or positive"),
        ("max_tuning_cost_usd", lambda v: v >= 0, "must be 0 (no limit) or positive"),
        ("training_price_per_million_tokens_usd", lambda v: v >= 0, "must be 0 (use the table) or positive"),
        (
            "notify_webhook_secret",
            lambda v: not v or re.fullmatch(r"projects/[^/]+/secrets/[^/]+(/versions/[^/]+)?", v) is not None,
            "must be a Secret Manager version, projects/P/secrets/S/versions/V",
        ),
    ]
    for name, ok, rule in rules:
        if name in params and not ok(params[name]):
            raise ParameterError(f"parameter {name}={params[name]!r} {rule}")
    if params.get("train_fraction", 0) + params.get("validation_fraction", 0) > 1:
        raise ParameterError("train_fraction + validation_fraction must not exceed 1")
    url = params.get("notify_webhook_url") or ""
    if url and not url.startswith(("https://", "http://")):  # never echoed: the URL is a credential
        raise ParameterError("parameter notify_webhook_url must be an https:// incoming webhook URL")
    if params.get("max_tuning_cost_usd", 0) > 0:
        price, source = training_price(
            params.get("base_model", ""), params.get("training_price_per_million_tokens_usd", 0)
        )
        if price is None:
            raise ParameterError(
                f"parameter max_tuning_cost_usd needs a price: {source}; set training_price_per_million_tokens_usd "
                "from the pricing page, or limit tokens with max_training_tokens"
            )
    check_base_model(params)


def check_base_model(params: dict) -> None:
    """The base model (tunable, not retired on the day this runs), its adapter size, the
    region, the thinking setting and the media resolution, against Google's published facts
    (platform_facts/gemini.py), which the local Vertex AI enforces too. A model that retires
    within 60 days is a warning on stderr, not an error."""
    import sys

    if "base_model" not in params:
        return
    model = params["base_model"]
    problems = tuning_problems(model, params.get("adapter_size"), params.get("location"))
    if problems:
        raise ParameterError(f"parameter {problems[0]}")
    if "thinking" in params:
        try:
            thinking_config_for(model, params["thinking"])
        except ValueError as error:
            raise ParameterError(f"parameter {error}") from None
    problem = media_resolution_problem(model, params.get("media_resolution", ""))
    if problem:
        raise ParameterError(f"parameter {problem}")
    if params.get("tune_from", "base") not in ("base", "champion"):
        raise ParameterError(f"parameter tune_from={params['tune_from']!r} must be 'base' or 'champion'")
    warning = lifecycle_warning(model)
    if warning:
        print(f"warning: base_model {warning}", file=sys.stderr, flush=True)
