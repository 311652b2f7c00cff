"""An experiment's rows as ``aiplatform.get_experiment_df(name)`` builds them, read with
the same ML Metadata queries it sends (over REST, here asynchronously), plus the runs
labelled ``experiment=<name>`` that it lacks (scheduled runs), as ``make compare`` adds them
(pipeline/vertex.py ``experiment_runs``).

A ``system.PipelineRun`` row: ``run_name`` the context's display name, ``state`` the name
of its ``system.Run`` execution's state, ``param.X`` from that execution's ``input:X``,
``metric.X`` from its metrics artifacts, merged in order. A ``system.ExperimentRun`` row
(``aiplatform.start_run``) takes them from the context's ``_params``, ``_metrics`` and
``_state``. Each row also keeps, outside its columns, when its run was created (the chart's
time axis) and its PipelineJob id where it has one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

RUN_TYPES = ("system.ExperimentRun", "system.PipelineRun")  # aiplatform's _SUPPORTED_LOGGABLE_RESOURCES
METRIC_TYPES = (
    "system.Metrics",
    "google.ClassificationMetrics",
    "google.RegressionMetrics",
    "google.ForecastingMetrics",
)
FIRST_COLUMNS = {"experiment_name": -1, "run_name": 1, "run_type": 2, "state": 3}
PARALLEL = 8


@dataclass
class Row:
    columns: dict[str, Any]
    created: str = ""
    job_id: str = ""
    source: str = "experiment"
    extra: dict[str, Any] = field(default_factory=dict)


def _or(titles) -> str:
    return "(" + " OR ".join(f'schema_title="{t}"' for t in titles) + ")"


def column_order(columns) -> list[str]:
    """get_experiment_df's column order: experiment, run, type, state, params, metrics, rest."""

    def key(name: str) -> int:
        if name in FIRST_COLUMNS:
            return FIRST_COLUMNS[name]
        return 5 if name.startswith("param") else 6 if name.startswith("metric") else 7

    return sorted(columns, key=key)


async def _pipeline_row(api, context: dict, experiment: str) -> Row:
    name = context["name"]
    executions, metrics = await asyncio.gather(
        api.metadata_list("executions", f'in_context("{name}") AND schema_title="system.Run"'),
        api.metadata_list("artifacts", f'{_or(METRIC_TYPES)} AND in_context("{name}")'),
    )
    columns: dict[str, Any] = {"experiment_name": experiment, "run_type": context.get("schemaTitle")}
    columns["run_name"] = context.get("displayName")
    columns["state"] = None
    if executions:
        for key, value in (executions[0].get("metadata") or {}).items():
            if key.startswith("input:"):
                columns[f"param.{key[len('input:') :]}"] = value
        columns["state"] = executions[0].get("state")
    for artifact in metrics:
        for key, value in (artifact.get("metadata") or {}).items():
            columns[f"metric.{key}"] = value
    return Row(columns, created=context.get("createTime", ""), job_id=str(context.get("displayName") or ""))


def _experiment_run_row(context: dict, experiment: str) -> Row:
    metadata = context.get("metadata") or {}
    columns: dict[str, Any] = {
        "experiment_name": experiment,
        "run_type": context.get("schemaTitle"),
        "run_name": context.get("displayName"),
        "state": metadata.get("_state"),
    }
    columns.update({f"param.{k}": v for k, v in (metadata.get("_params") or {}).items()})
    columns.update({f"metric.{k}": v for k, v in (metadata.get("_metrics") or {}).items()})
    return Row(columns, created=context.get("createTime", ""))


async def experiment_rows(api, experiment: str, include_labelled: bool = True) -> list[Row]:
    """The experiment's rows (get_experiment_df), then its labelled runs it lacks."""
    parent = f"{api.parent}/metadataStores/default/contexts/{experiment}"
    contexts = await api.metadata_list("contexts", f'{_or(RUN_TYPES)} AND parent_contexts:"{parent}"')
    limit = asyncio.Semaphore(PARALLEL)

    async def row_of(context: dict) -> Row:
        if context.get("schemaTitle") == "system.ExperimentRun":
            return _experiment_run_row(context, experiment)
        async with limit:
            return await _pipeline_row(api, context, experiment)

    rows = list(await asyncio.gather(*(row_of(c) for c in contexts)))
    if include_labelled:
        known = {r.columns.get("run_name") for r in rows}
        rows.extend(await _labelled_rows(api, experiment, known, limit))
    return rows


async def _labelled_rows(api, experiment: str, known: set, limit: asyncio.Semaphore) -> list[Row]:
    jobs, token = [], ""
    while True:
        page = await api.list_jobs(f'labels.experiment="{experiment}"', 100, token)
        jobs.extend(page.get("pipelineJobs", []))
        token = page.get("nextPageToken", "")
        if not token:
            break

    async def row_of(job: dict) -> Row | None:
        job_id = job["name"].rsplit("/", 1)[-1]
        if job_id in known:
            return None
        context = job.get("jobDetail", {}).get("pipelineRunContext")
        async with limit:
            if context and context.get("name"):
                row = await _pipeline_row(api, context, experiment)
            else:
                row = Row({"experiment_name": experiment, "run_type": "system.PipelineRun", "run_name": job_id})
        row.columns["run_name"] = job_id
        row.columns["state"] = str(job.get("state", "")).removeprefix("PIPELINE_STATE_")
        row.created, row.job_id, row.source = job.get("createTime", ""), job_id, "label"
        return row

    return [r for r in await asyncio.gather(*(row_of(j) for j in jobs)) if r is not None]


async def experiments(api) -> list[dict]:
    return await api.metadata_list("contexts", 'schema_title="system.Experiment"')
