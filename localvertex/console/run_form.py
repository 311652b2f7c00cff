"""The "Create run" form: its fields generated from a pipeline spec's inputs, and its values
checked exactly as ``make submit`` checks them (pipeline/params.py: ``coerce`` for each
type, ``check`` for ranges, base model, thinking, media resolution and cost), each error
shown next to its field.

Choices come from the platform facts where they exist (the base models tunable today,
thinking, media resolutions, regions) and from the pipeline's own tables (variations,
adapter sizes). Closed choices are a ``<select>``; open ones (a thinking budget may be any
integer) a text box with suggestions.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

# Parameters whose values are credentials: typed into a password box, never shown back.
SECRET_RE = re.compile(r"(secret|password|webhook_url|api_key|access_token|credential)", re.I)
LABEL_KEY_RE = re.compile(r"[a-z][a-z0-9_-]{0,62}")
LABEL_VALUE_RE = re.compile(r"[a-z0-9_-]{0,63}")
RESERVED_LABELS = ("pipeline", "trigger", "experiment")
MAX_DISPLAY_NAME = 128


@dataclass
class Field:
    name: str
    type: str  # STRING, NUMBER_INTEGER, NUMBER_DOUBLE, BOOLEAN, LIST, STRUCT
    default: Any = None
    required: bool = False
    description: str = ""
    choices: list[tuple[str, str]] | None = None  # (value, label)
    open_choices: bool = False  # suggestions only: any value of the type may be typed
    text: str = ""  # what the form shows
    error: str = ""
    warning: str = ""

    @property
    def secret(self) -> bool:
        return bool(SECRET_RE.search(self.name))

    @property
    def default_text(self) -> str:
        return _text(self.default, self.type)

    @property
    def checked(self) -> bool:
        return self.text.lower() in ("true", "1", "yes", "on")


def spec_inputs(spec: dict) -> dict[str, dict]:
    return spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})


def _text(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if kind == "BOOLEAN":
        return "true" if value else "false"
    if kind == "NUMBER_INTEGER" and isinstance(value, float) and value.is_integer():
        return str(int(value))  # the compiled YAML stores 4 as 4.0
    if kind in ("LIST", "STRUCT"):
        return json.dumps(value)
    return str(value)


def build_fields(spec: dict, prefill: dict[str, Any] | None = None) -> list[Field]:
    """One field per pipeline input, in the spec's order, with defaults and choices."""
    from .run_choices import choices_for

    prefill = prefill or {}
    fields = []
    for name, p in spec_inputs(spec).items():
        kind = p.get("parameterType", "STRING")
        f = Field(
            name=name,
            type=kind,
            default=p.get("defaultValue"),
            required="defaultValue" not in p and not p.get("isOptional", False),
            description=p.get("description", ""),
        )
        f.choices, f.open_choices = choices_for(name)
        f.text = _text(prefill.get(name, f.default), kind)
        if f.secret and name not in prefill:
            f.text = ""  # a default credential is never put into the page
        fields.append(f)
    return fields


def _coerce(f: Field, text: str) -> Any:
    """The value of one field, typed as ``make submit`` types a --param (pipeline.params.coerce)."""
    from pipeline.params import ParameterError, coerce

    if f.type in ("LIST", "STRUCT"):
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise ParameterError(f"parameter {f.name}: not valid JSON ({exc.msg})") from None
        if not isinstance(value, list if f.type == "LIST" else dict):
            raise ParameterError(f"parameter {f.name}: expected a JSON {'list' if f.type == 'LIST' else 'object'}")
        return value
    return coerce(f.name, text, f.type)


def read_values(fields: list[Field], form) -> dict[str, Any]:
    """The typed values of the submitted form; type errors land on their fields."""
    from pipeline.params import ParameterError

    values: dict[str, Any] = {}
    for f in fields:
        if f.name not in form:  # not sent at all (a client of its own): the spec's default
            f.text = _text(f.default, f.type)
        else:  # a checkbox posts a hidden "false", then "true" when checked: the last counts
            f.text = str(form[f.name])
        if f.text == "" and f.type != "STRING":
            if f.required:
                f.error = "required"
            elif f.default is not None:
                values[f.name] = _coerce(f, _text(f.default, f.type))
            continue
        if f.text == "" and f.required:
            f.error = "required"
            continue
        try:
            values[f.name] = _coerce(f, f.text)
        except ParameterError as exc:
            f.error = _short(str(exc), f.name)
    return values


def _short(message: str, name: str) -> str:
    """The message without the leading "parameter NAME" the field already shows."""
    for lead in (f"parameter {name}: ", f"parameter {name}=", f"parameter {name} "):
        if message.startswith(lead):
            return message[len(lead) :] if lead.endswith(": ") else message[len("parameter ") :]
    return message


def check_values(fields: list[Field], values: dict[str, Any]) -> str:
    """Runs ``pipeline.params.check`` (the checks ``make submit`` runs) until it passes,
    putting each error on the field it names and taking that field out of the next round,
    so every failing field is shown at once. Returns an error that names no field ("")."""
    from pipeline.params import ParameterError, check

    by_name = {f.name: f for f in fields}
    remaining = dict(values)
    for _ in range(len(fields) + 1):
        try:
            check(remaining)
            return ""
        except ParameterError as exc:
            message = str(exc)
        named = _field_named(message, [f.name for f in fields if f.name in remaining])
        if named is None:
            return message
        by_name[named].error = by_name[named].error or _short(message, named)
        remaining.pop(named)
    return ""


def _field_named(message: str, names: list[str]) -> str | None:
    """The field an error is about: "parameter NAME..." first, else the earliest name in it."""
    match = re.match(r"parameter (\w+)", message)
    if match and match.group(1) in names:
        return match.group(1)
    found = [(message.find(n), n) for n in names if re.search(rf"\b{re.escape(n)}\b", message)]
    return min(found)[1] if found else None


def add_warnings(fields: list[Field], values: dict[str, Any]) -> None:
    """The base model's retirement within 60 days: a warning beside it, as submit prints one."""
    from platform_facts.gemini import lifecycle_warning

    for f in fields:
        if f.name == "base_model" and not f.error and isinstance(values.get(f.name), str):
            f.warning = lifecycle_warning(values[f.name]) or ""


def overrides(fields: list[Field], values: dict[str, Any]) -> dict[str, Any]:
    """What to send: the values that differ from the spec's defaults, and the required ones,
    as ``make submit`` sends only its --param overrides (the defaults stay in the spec)."""
    out = {}
    for f in fields:
        if f.name not in values:
            continue
        default = None if f.default is None else _coerce_quiet(f)
        if f.required or values[f.name] != default:
            out[f.name] = values[f.name]
    return out


def _coerce_quiet(f: Field) -> Any:
    try:
        return _coerce(f, _text(f.default, f.type))
    except ValueError:
        return f.default


def parse_labels(text: str) -> tuple[dict[str, str], str]:
    """``key=value`` lines (or commas) -> labels, and an error naming the bad one ("")."""
    labels: dict[str, str] = {}
    for item in re.split(r"[\n,]+", text or ""):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not LABEL_KEY_RE.fullmatch(key) or not LABEL_VALUE_RE.fullmatch(value):
            return {}, (
                f"{item[:70]!r}: labels are key=value, lowercase letters, digits, _ and -, "
                "keys start with a letter, 63 characters at most"
            )
        if key in RESERVED_LABELS:
            return {}, f"label {key!r} is set by the console ({', '.join(RESERVED_LABELS)})"
        labels[key] = value
    if len(labels) > 60:
        return {}, "at most 60 labels"
    return labels, ""


@dataclass
class RunForm:
    """Everything the create page shows and sends."""

    fields: list[Field]
    display_name: str = ""
    experiment: str = ""
    labels_text: str = ""
    enable_caching: bool = True
    errors: dict[str, str] = field(default_factory=dict)  # display_name, experiment, labels, form
    submitted: dict[str, str] = field(default_factory=dict)  # the parameter texts as posted
    pipeline: str = ""  # pipelineInfo.name: the ID of the runs' system.Pipeline context

    @property
    def ok(self) -> bool:
        return not self.errors and not any(f.error for f in self.fields)


def check_run_form(run: RunForm) -> tuple[dict[str, Any], dict[str, str]]:
    """(parameter values to send, labels) of a submitted form; errors recorded on ``run``."""
    from pipeline.params import ParameterError
    from pipeline.vertex import check_experiment_name

    values = read_values(run.fields, run.submitted)
    # The range checks run on the values that parsed, so every error shows at once.
    problem = check_values(run.fields, values)
    if problem:
        run.errors["form"] = problem
    add_warnings(run.fields, values)
    if len(run.display_name) > MAX_DISPLAY_NAME:
        run.errors["display_name"] = f"at most {MAX_DISPLAY_NAME} characters"
    if run.experiment:
        try:
            check_experiment_name(run.experiment)
            if run.experiment == run.pipeline:  # any template's, as submit refuses its own pipeline's
                raise ParameterError(
                    f"{run.experiment!r} is the pipeline's own name, the ID of its runs' system.Pipeline "
                    f"context; name the experiment otherwise, e.g. {run.pipeline}-runs"
                )
        except ParameterError as exc:
            run.errors["experiment"] = str(exc).removeprefix("--experiment ")
    labels, problem = parse_labels(run.labels_text)
    if problem:
        run.errors["labels"] = problem
    return overrides(run.fields, values), labels
