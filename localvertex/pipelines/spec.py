"""A PipelineJob's ``pipelineSpec`` and ``runtimeConfig``, checked before anything is recorded.

The spec must parse as KFP's ``PipelineSpec`` protobuf (unknown fields refused), have a
pipeline name, a root DAG, and an executor for every component with one. Parameter values
are checked against the root's ``inputDefinitions``: an unknown name, a value of the wrong
type, or a missing required parameter is 400 INVALID_ARGUMENT naming the parameter.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import invalid

_PIPELINE_NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,127}")
# google.protobuf.Value JSON types that fit each KFP parameter type.
_TYPES = {
    "STRING": (str,),
    "NUMBER_INTEGER": (int, float),
    "NUMBER_DOUBLE": (int, float),
    "BOOLEAN": (bool,),
    "LIST": (list,),
    "STRUCT": (dict,),
    "TASK_FINAL_STATUS": (dict,),
}


def check_pipeline_spec(spec: Any) -> dict[str, Any]:
    """The spec as a dict, or 400 saying what is wrong with it."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    if not isinstance(spec, dict) or not spec:
        raise invalid("PipelineJob.pipeline_spec is required (the compiled KFP pipeline).")
    try:
        parsed = json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())
    except json_format.ParseError as exc:
        raise invalid(f"Invalid PipelineJob.pipeline_spec: {str(exc)[:500]}") from None
    name = parsed.pipeline_info.name
    if not _PIPELINE_NAME_RE.fullmatch(name):
        raise invalid(
            f"Invalid PipelineJob.pipeline_spec: pipelineInfo.name {name[:80]!r} must match [a-z0-9][a-z0-9-]*."
        )
    if not parsed.root.dag.tasks:
        raise invalid("Invalid PipelineJob.pipeline_spec: root.dag has no tasks.")
    executors = spec.get("deploymentSpec", {}).get("executors", {})
    for comp_name, comp in spec.get("components", {}).items():
        label = comp.get("executorLabel")
        if label and label not in executors:
            raise invalid(
                f"Invalid PipelineJob.pipeline_spec: component {comp_name} names executor {label}, "
                "which deploymentSpec.executors lacks."
            )
    for task_name, task in _all_tasks(spec):
        ref = task.get("componentRef", {}).get("name")
        if ref not in spec.get("components", {}):
            raise invalid(f"Invalid PipelineJob.pipeline_spec: task {task_name} refers to unknown component {ref!r}.")
    return spec


def _all_tasks(spec: dict) -> list[tuple[str, dict]]:
    dags = [spec.get("root", {}).get("dag", {})] + [c["dag"] for c in spec.get("components", {}).values() if "dag" in c]
    return [(name, task) for dag in dags for name, task in dag.get("tasks", {}).items()]


def root_parameters(spec: dict) -> dict[str, dict]:
    return spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})


def check_parameter_values(spec: dict, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` checked against the root inputs; returns the complete arguments (defaults filled)."""
    params = root_parameters(spec)
    for name, value in values.items():
        if name not in params:
            raise invalid(
                f"The pipeline parameter {name} is not found in the pipeline job input definitions "
                f"(it takes: {', '.join(sorted(params)) or 'no parameters'})."
            )
        kind = params[name].get("parameterType", "STRING")
        ok = isinstance(value, _TYPES.get(kind, (object,))) and not (kind != "BOOLEAN" and isinstance(value, bool))
        if kind == "NUMBER_INTEGER" and ok and float(value) != int(value):
            ok = False
        if not ok:
            raise invalid(
                f"The value of pipeline parameter {name} has the wrong type: {kind} expected, "
                f"got {type(value).__name__} {str(value)[:80]!r}."
            )
    arguments = {}
    for name, definition in params.items():
        if name in values:
            arguments[name] = _as_kind(values[name], definition.get("parameterType", "STRING"))
        elif "defaultValue" in definition:
            arguments[name] = _as_kind(definition["defaultValue"], definition.get("parameterType", "STRING"))
        elif not definition.get("isOptional"):
            raise invalid(f"The pipeline parameter {name} is required (it has no default) but no value was given.")
    return arguments


def _as_kind(value: Any, kind: str) -> Any:
    if kind == "NUMBER_INTEGER" and isinstance(value, float):
        return int(value)
    if kind == "NUMBER_DOUBLE" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def legacy_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """``runtimeConfig.parameters`` (the deprecated typed Values) as plain values."""
    out = {}
    for name, typed in parameters.items():
        if not isinstance(typed, dict) or len(typed) != 1:
            raise invalid(
                f"Invalid value of runtime_config.parameters[{name!r}]: one of intValue, doubleValue, stringValue."
            )
        ((kind, value),) = typed.items()
        out[name] = int(value) if kind == "intValue" else value
    return out


def pipeline_name(spec: dict) -> str:
    return spec["pipelineInfo"]["name"]


def task_names(spec: dict) -> list[str]:
    """Every executor task, DAG tasks included, for the job's taskDetails."""
    return [name for name, _ in _all_tasks(spec)]
