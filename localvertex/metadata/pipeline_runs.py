"""What Vertex AI Pipelines writes to ML Metadata for a run, so Experiments can read it:

* a ``system.Pipeline`` context named after the pipeline, parent of
* a ``system.PipelineRun`` context named after the job (``jobDetail.pipelineRunContext``),
* a ``system.Run`` execution in it, whose metadata holds the run's parameters as
  ``input:NAME`` (what ``get_experiment_df`` shows as ``param.NAME``) and whose state
  follows the run's (RUNNING, COMPLETE, FAILED, CANCELLED),
* per task a ``system.ContainerExecution`` with ``input:``/``output:`` parameters, its
  input and output artifacts (schema title and metadata as the component wrote them; a
  ``system.Metrics`` artifact's metadata is what ``get_experiment_df`` shows as
  ``metric.NAME``) and INPUT/OUTPUT events, all attributed to the run's context.
"""

from __future__ import annotations

from typing import Any

from .store import MetadataStore

EXECUTION_STATES = {"SUCCEEDED": "COMPLETE", "SKIPPED": "CACHED", "FAILED": "FAILED", "CANCELLED": "CANCELLED"}


def store_name(project: str, location: str) -> str:
    return f"projects/{project}/locations/{location}/metadataStores/default"


def start_run(md: MetadataStore, job: dict[str, Any]) -> dict[str, Any]:
    """Create the run's contexts and its system.Run execution; returns the jobDetail fields."""
    local = job["_local"]
    store = store_name(local["project"], local["location"])
    pipeline_ctx_name = f"{store}/contexts/{local['pipelineName']}"
    with md.lock:
        try:
            pipeline_ctx = md.get("contexts", pipeline_ctx_name)
        except Exception:
            pipeline_ctx = md.create(
                "contexts",
                store,
                local["pipelineName"],
                {"displayName": local["pipelineName"], "schemaTitle": "system.Pipeline"},
            )
        run_ctx = md.create(
            "contexts",
            store,
            local["id"],
            {"displayName": local["id"], "schemaTitle": "system.PipelineRun", "metadata": {}},
        )
        md.add_links("child", pipeline_ctx["name"], [run_ctx["name"]], "contexts")
        params = {f"input:{k}": v for k, v in local["arguments"].items()}
        run_exec = md.create(
            "executions",
            store,
            None,
            {"displayName": local["id"], "schemaTitle": "system.Run", "state": "NEW", "metadata": params},
        )
        md.add_links("assoc", run_ctx["name"], [run_exec["name"]], "executions")
    return {
        "pipelineContext": md.get("contexts", pipeline_ctx["name"]),
        "pipelineRunContext": md.get("contexts", run_ctx["name"]),
        "runExecution": run_exec["name"],
    }


def set_run_state(md: MetadataStore, run_execution: str, state: str) -> dict[str, Any]:
    return md.update("executions", run_execution, {"state": state}, ["state"])


def _artifact(md: MetadataStore, store: str, run_ctx: str, described: dict[str, Any]) -> str:
    """The run's artifact with this URI (an upstream task's output), or a new one."""
    for name in md.members(run_ctx):
        node = md.nodes.get(name, {})
        if md.kind_of.get(name) == "artifacts" and node.get("uri") == described["uri"]:
            return name
    art = md.create(
        "artifacts",
        store,
        None,
        {
            "displayName": described["name"],
            "uri": described["uri"],
            "schemaTitle": described["schemaTitle"],
            "schemaVersion": described.get("schemaVersion") or "0.0.1",
            "metadata": described.get("metadata") or {},
            "state": "LIVE",
        },
    )
    md.add_links("attr", run_ctx, [art["name"]], "artifacts")
    return art["name"]


def record_task(md: MetadataStore, job: dict[str, Any], inputs: dict[str, Any], msg: dict[str, Any]) -> dict[str, Any]:
    """The task's execution, artifacts and events (``inputs``: what the task started with); returns the execution."""
    local = job["_local"]
    store = store_name(local["project"], local["location"])
    run_ctx = job["jobDetail"]["pipelineRunContext"]["name"]
    metadata = {f"input:{k}": v for k, v in inputs.get("inputs", {}).items()}
    metadata.update({f"output:{k}": v for k, v in msg.get("outputs", {}).items()})
    with md.lock:
        execution = md.create(
            "executions",
            store,
            None,
            {
                "displayName": msg["task"],
                "schemaTitle": "system.ContainerExecution",
                "state": EXECUTION_STATES.get(msg["state"], "FAILED"),
                "metadata": metadata,
            },
        )
        md.add_links("assoc", run_ctx, [execution["name"]], "executions")
        events = []
        for kind, key in (("INPUT", ""), ("OUTPUT", "outputArtifacts")):
            source = inputs.get("inputArtifacts", {}) if kind == "INPUT" else msg.get(key, {})
            for items in source.values():
                for described in items:
                    if described["uri"].startswith("gs://"):
                        events.append({"artifact": _artifact(md, store, run_ctx, described), "type": kind})
        if events:
            md.add_events(execution["name"], events)
    return execution


def artifact_list(md: MetadataStore, execution: str, kind: str) -> dict[str, Any]:
    """taskDetail.inputs/outputs: {output name: {"artifacts": [Artifact]}} from the events."""
    out: dict[str, Any] = {}
    for event in md.events_of(executions={execution}):
        if event["type"] == kind:
            art = md.get("artifacts", event["artifact"])
            out.setdefault(art.get("displayName", "artifact"), {"artifacts": []})["artifacts"].append(art)
    return out
