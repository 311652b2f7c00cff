"""Vertex AI for the commands submit, schedule, upload (template gallery) and compare (Experiments).

Everything goes through Google's own SDKs: ``google.cloud.aiplatform`` (PipelineJob,
PipelineJobSchedule, Experiments) and ``kfp.registry.RegistryClient`` (Artifact Registry).
Credentials are Application Default Credentials (``google.auth.default()``); they are never
printed, logged or written into the pipeline YAML.

Parameters are checked against the compiled pipeline's inputs (``pipeline.params.resolve``)
before anything is sent, so a typo fails at once with exit code 2 and one line.

Experiments and schedules: ``PipelineJob.submit(experiment=...)`` links a run to a Vertex AI
Experiment from the client, after the run is created. Vertex AI's Schedule API has no
experiment field, so runs started by a schedule belong to no experiment. ``schedule`` therefore
labels every run it will start with ``experiment=<name>`` (the same label ``submit`` sets), and
``compare`` adds the labelled runs that the experiment does not hold, reading their parameters
and metrics from Vertex ML Metadata the way ``get_experiment_df`` reads its own rows.

The commands' options and output are in pipeline/commands/ (submit.py, schedule.py, upload.py,
compare.py); what they send and read is here.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from pipeline.params import ParameterError, parse_assignments, resolve
from pipeline.pipeline import COMPILED_YAML, PIPELINE_NAME
from pipeline.terminal import fail

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

console = Console(stderr=True, soft_wrap=True)
out = Console()

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
ADC_HINT = (
    "no Google credentials found: run `gcloud auth application-default login` "
    "(or set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file)"
)
EXPERIMENT_LABEL = "experiment"
VERTEX_ENDPOINT_ENV = "GOOGLE_VERTEX_BASE_URL"
RANK_METRIC = "metric.eval_status_accuracy"
# Metric prefixes in the order `compare` shows them; the components log under these names.
METRIC_PREFIXES = ("eval_", "base_eval_", "train_", "jsonl_", "split_")
RUN_COLUMNS = ("run_name", "source", "state")
# Vertex AI Experiment names, also valid as label values (63 characters at most).
_EXPERIMENT_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_LABEL_VALUE_RE = re.compile(r"^[a-z0-9_-]{0,63}$")


# --------------------------------------------------------------------------- errors, auth


@contextmanager
def cloud_errors() -> Iterator[None]:
    """Turns the errors users meet with Google Cloud into one line each (exit code 1)."""
    import google.auth.exceptions
    import requests
    from google.api_core import exceptions as api_exceptions

    try:
        yield
    except google.auth.exceptions.DefaultCredentialsError:
        fail(ADC_HINT, 1)
    except google.auth.exceptions.RefreshError as error:
        fail(
            f"Google credentials could not be refreshed ({_first_line(error)}): "
            "run `gcloud auth application-default login`",
            1,
        )
    except api_exceptions.GoogleAPICallError as error:
        fail(f"Google Cloud refused the request: {error.code} {_first_line(error.message)}", 1)
    except requests.HTTPError as error:
        response = error.response
        detail = _first_line(response.text) if response is not None else ""
        fail(f"{error.request.method if error.request else 'request'} failed: {_first_line(error)} {detail}".strip(), 1)
    except ParameterError as error:
        fail(str(error), 2)
    except RuntimeError as error:
        # The SDK wraps API errors of the experiment calls in RuntimeError("... could not be ...").
        if isinstance(error, typer.Exit) or not isinstance(
            error.__cause__, (api_exceptions.GoogleAPICallError, google.auth.exceptions.GoogleAuthError)
        ):
            raise
        fail(f"{_first_line(error)} ({_first_line(error.__cause__)})", 1)


def _first_line(value) -> str:
    text = str(value).strip()
    return text.splitlines()[0][:300] if text else ""


def adc():
    """Application Default Credentials and their project (``google.auth.default``).

    Raises:
        google.auth.exceptions.DefaultCredentialsError: no ADC (turned into one line by
            ``cloud_errors``).
    """
    import google.auth

    return google.auth.default(scopes=SCOPES)


def credentials_and_project(project: str | None):
    """ADC and the project to use (``project``, else the one ADC knows)."""
    credentials, adc_project = adc()
    project = project or adc_project
    if not project:
        fail("no project: pass --project (or set one with `gcloud config set project ...`)")
    return credentials, project


def endpoint_options() -> dict:
    """Where the Vertex AI API is: Google's regional endpoint, unless ``GOOGLE_VERTEX_BASE_URL``
    names another (the local Vertex AI exports it, and google-genai honours it too). That one
    is reached over REST, the only transport it serves; the commands are otherwise the same."""
    url = os.environ.get(VERTEX_ENDPOINT_ENV, "").strip()
    return {"api_endpoint": url, "api_transport": "rest"} if url else {}


def init_vertex(project: str | None, location: str):
    """``aiplatform.init`` with ADC (and ``endpoint_options``); returns (aiplatform module, project)."""
    from google.cloud import aiplatform

    credentials, project = credentials_and_project(project)
    try:
        aiplatform.init(project=project, location=location, credentials=credentials, **endpoint_options())
    except ValueError as error:  # e.g. an unknown region
        fail(f"--location {location!r}: {_first_line(error).split(', select from')[0]}")
    return aiplatform, project


# --------------------------------------------------------------------------- requests


def check_experiment_name(experiment: str | None) -> None:
    """Experiment names end up in a label: lowercase letters, digits, hyphens, 63 at most.

    Nor may one be the pipeline's name: Vertex AI Pipelines records every run under a
    ``system.Pipeline`` metadata context with that ID (what ``get_pipeline_df`` reads), and an
    experiment is a context too, so the SDK refuses it ("Experiment name ... is of type
    (system.Pipeline)") once the pipeline has run in the project.
    """
    if experiment is not None and not _EXPERIMENT_RE.match(experiment):
        raise ParameterError(
            f"--experiment {experiment!r}: use lowercase letters, digits and hyphens, "
            "starting with a letter or digit, 63 characters at most"
        )
    if experiment == PIPELINE_NAME:
        raise ParameterError(
            f"--experiment {experiment!r} is the pipeline's own name, which Vertex AI gives the metadata "
            f"context of its runs; name the experiment otherwise, e.g. {PIPELINE_NAME}-runs"
        )


def run_parameters(
    project: str, location: str, bucket: str, assignments: list[str], template: Path = COMPILED_YAML
) -> dict:
    """The parameter values to send: project/location/bucket plus the ``--param`` overrides.

    Every value is checked (and typed) against the compiled pipeline by
    ``pipeline.params.resolve``; the pipeline's own defaults stay in the YAML.

    Raises:
        ParameterError: unknown, mistyped, out of range, or project/location/bucket given as --param.
    """
    overrides = parse_assignments(assignments)
    for name in ("project", "location", "bucket"):
        if name in overrides:
            raise ParameterError(f"--param {name}=...: use --{name} instead")
    overrides.update(project=project, location=location, bucket=bucket)
    resolved = resolve(overrides, template)
    return {name: resolved[name] for name in overrides}


def run_labels(experiment: str | None, trigger: str) -> dict[str, str]:
    """Labels of a run: the pipeline, how it was started, and its experiment (if any)."""
    labels = {"pipeline": PIPELINE_NAME, "trigger": trigger}
    if experiment:
        labels[EXPERIMENT_LABEL] = experiment
    assert all(_LABEL_VALUE_RE.match(v) for v in labels.values()), labels
    return labels


def pipeline_root(bucket: str) -> str:
    """``gs://B/pipeline_root`` for ``gs://B`` (or ``gs://B/``)."""
    return f"{bucket.rstrip('/')}/pipeline_root"


def default_display_name() -> str:
    return f"{PIPELINE_NAME}-{datetime.now(UTC):%Y%m%d-%H%M%S}"


def build_job(
    *,
    project: str,
    location: str,
    bucket: str,
    assignments: list[str] = (),
    experiment: str | None = None,
    cache: bool = True,
    display_name: str | None = None,
    trigger: str = "submit",
    template: Path = COMPILED_YAML,
    credentials=None,
):
    """The ``aiplatform.PipelineJob`` that ``submit`` and ``schedule`` send (nothing is sent here).

    ``cache=True`` keeps the caching chosen at compile time (data steps cached, tuning and
    evaluation not); ``cache=False`` turns caching off for every step.
    """
    from google.cloud import aiplatform

    check_experiment_name(experiment)
    parameter_values = run_parameters(project, location, bucket, list(assignments), template)
    return aiplatform.PipelineJob(
        display_name=display_name or default_display_name(),
        template_path=str(template),
        pipeline_root=pipeline_root(bucket),
        parameter_values=parameter_values,
        enable_caching=None if cache else False,
        labels=run_labels(experiment, trigger),
        project=project,
        location=location,
        credentials=credentials,
    )


def prepared_job(
    project: str | None, location: str, bucket: str, assignments: list[str], experiment: str | None, **job
):
    """The ``PipelineJob`` that ``submit`` and ``schedule --cron`` send.

    The experiment name and the parameters are checked before any credentials are asked for, so
    a typo fails at once; then ``aiplatform`` is initialised with ADC (``init_vertex``) and the
    job built (``build_job``, whose other arguments ``job`` holds); nothing is sent here.
    """
    check_experiment_name(experiment)
    run_parameters(project or "checking", location, bucket, assignments, job.get("template", COMPILED_YAML))
    _, project = init_vertex(project, location)
    job.update(project=project, location=location, bucket=bucket, assignments=assignments, experiment=experiment)
    return build_job(**job)


def console_url(resource_name: str) -> str:
    """Cloud console link of a pipeline run or schedule resource name."""
    parts = resource_name.split("/")
    fields = dict(zip(parts[0::2], parts[1::2], strict=False))
    project, location = fields.get("projects"), fields.get("locations")
    if "pipelineJobs" in fields:
        return (
            f"https://console.cloud.google.com/vertex-ai/locations/{location}/pipelines/runs/"
            f"{fields['pipelineJobs']}?project={project}"
        )
    if "schedules" in fields:
        return (
            f"https://console.cloud.google.com/vertex-ai/locations/{location}/pipelines/schedules/"
            f"{fields['schedules']}/detail?project={project}"
        )
    return resource_name


# --------------------------------------------------------------------------- comparison (pure)


def _metric_rank(column: str) -> tuple:
    name = column[len("metric.") :]
    if column == RANK_METRIC:
        return (0, 0, name)
    for i, prefix in enumerate(METRIC_PREFIXES):
        if name.startswith(prefix):
            return (1, i, name)
    return (2, 0, name)


def order_runs(df: pd.DataFrame) -> pd.DataFrame:
    """Runs best first (``metric.eval_status_accuracy``, runs without it last) and columns in
    reading order: run columns, ``metric.eval_*`` (accuracy first), ``metric.base_eval_*``,
    the other metrics by step, then ``param.*``. Time-series and bookkeeping columns go last.
    """
    import pandas as pd

    df = df.copy()
    if "source" not in df.columns:
        df["source"] = "experiment"
    metrics = sorted((c for c in df.columns if c.startswith("metric.")), key=_metric_rank)
    params = sorted(c for c in df.columns if c.startswith("param."))
    front = [c for c in RUN_COLUMNS if c in df.columns]
    rest = [c for c in df.columns if c not in set(front) | set(metrics) | set(params)]
    df = df[front + metrics + params + rest]
    if RANK_METRIC in df.columns:
        key = pd.to_numeric(df[RANK_METRIC], errors="coerce")
        df = df.assign(_rank=key).sort_values("_rank", ascending=False, na_position="last", kind="stable")
        df = df.drop(columns="_rank")
    return df.reset_index(drop=True)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.4f}".rstrip("0").rstrip(".") if not value.is_integer() else str(int(value))
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def runs_table(df: pd.DataFrame, title: str = "") -> Table:
    """A rich table of ``order_runs(df)``: one row per run, ``metric.``/``param.`` prefixes dropped.

    Shows every ``eval_*``/``base_eval_*`` metric; other metrics and parameters only where they
    differ between runs (the CSV keeps every column).
    """
    ordered = order_runs(df)
    candidates = [c for c in ordered.columns if c in RUN_COLUMNS or c.startswith("metric.") or c.startswith("param.")]

    def always(column: str) -> bool:
        return column in RUN_COLUMNS or column.startswith(("metric.eval_", "metric.base_eval_"))

    def varies(column: str) -> bool:
        return ordered[column].astype(str).nunique(dropna=False) > 1

    shown = [c for c in candidates if always(c) or len(ordered) < 2 or varies(c)]
    hidden = len(candidates) - len(shown)
    caption = f"{hidden} column(s) equal in every run not shown; --csv writes them all" if hidden else None
    table = Table(title=title or None, caption=caption)
    for column in shown:
        header = column.split(".", 1)[1] if "." in column else column
        style = "bold green" if column == RANK_METRIC else ("cyan" if column.startswith("metric.eval_") else None)
        table.add_column(
            header,
            style=style,
            overflow="fold",
            no_wrap=column in RUN_COLUMNS,
            justify="right" if column.startswith("metric.") else "left",
        )
    for _, row in ordered[shown].iterrows():
        table.add_row(*(_cell(row[c]) for c in shown))
    return table


def labelled_run_row(
    experiment: str, run_name: str, state: str, run_metadata: dict, metric_metadatas: list[dict]
) -> dict:
    """A ``get_experiment_df``-shaped row for a run found by its experiment label.

    ``run_metadata`` is the metadata of the run's ``system.Run`` execution (parameters as
    ``input:NAME``); ``metric_metadatas`` those of its ``system.Metrics`` artifacts, merged in
    order like the SDK does.
    """
    row = {
        "experiment_name": experiment,
        "run_name": run_name,
        "run_type": "system.PipelineRun",
        "state": state,
        "source": "label",
    }
    for key, value in (run_metadata or {}).items():
        if key.startswith("input:"):
            row[f"param.{key[len('input:') :]}"] = value
    for metadata in metric_metadatas:
        for key, value in (metadata or {}).items():
            row[f"metric.{key}"] = value
    return row


# --------------------------------------------------------------------------- comparison (Vertex)


def experiment_runs(aiplatform, experiment: str, include_labelled: bool = True) -> pd.DataFrame:
    """``get_experiment_df(experiment)`` plus the runs labelled ``experiment=<name>`` it lacks."""
    import pandas as pd
    from google.api_core import exceptions as api_exceptions

    try:
        df = aiplatform.get_experiment_df(experiment, include_time_series=False)
    except api_exceptions.NotFound:
        df = pd.DataFrame()
    if not df.empty:
        df = df.assign(source="experiment")
    if not include_labelled:
        return df
    known = set(df["run_name"]) if "run_name" in df.columns else set()
    rows = []
    for job in aiplatform.PipelineJob.list(filter=f'labels.{EXPERIMENT_LABEL}="{experiment}"'):
        run_name = job.resource_name.rsplit("/", 1)[-1]
        if run_name in known:
            continue
        if not job.gca_resource.job_detail.pipeline_run_context.name:  # list views may omit it
            job = aiplatform.PipelineJob.get(job.resource_name)
        context = job.gca_resource.job_detail.pipeline_run_context.name
        run_metadata, metric_metadatas = {}, []
        if context:
            executions = aiplatform.Execution.list(filter=f'in_context("{context}") AND schema_title="system.Run"')
            run_metadata = dict(executions[0].metadata) if executions else {}
            metric_metadatas = [
                dict(a.metadata)
                for a in aiplatform.Artifact.list(filter=f'in_context("{context}") AND schema_title="system.Metrics"')
            ]
        state = job.gca_resource.state.name.replace("PIPELINE_STATE_", "")
        rows.append(labelled_run_row(experiment, run_name, state, run_metadata, metric_metadatas))
    return pd.concat([df, pd.DataFrame(rows)], ignore_index=True) if rows else df


# --------------------------------------------------------------------------- schedules


def find_schedule(aiplatform, name: str):
    """A schedule by resource name, numeric ID or (unique) display name."""
    if name.startswith("projects/") or name.isdigit():
        return aiplatform.PipelineJobSchedule.get(name)
    matches = aiplatform.PipelineJobSchedule.list(filter=f'display_name="{name}"')
    if not matches:
        fail(f"no schedule named {name!r} here: see `schedule --list`", 1)
    if len(matches) > 1:
        fail(
            f"{len(matches)} schedules are named {name!r}; pass one resource name: "
            + ", ".join(s.resource_name for s in matches),
            1,
        )
    return matches[0]


def schedules_table(schedules) -> Table:
    table = Table(title="Pipeline schedules")
    for column in ("display name", "state", "cron", "next run", "runs started", "resource name"):
        table.add_column(column, overflow="fold")
    for s in schedules:
        r = s.gca_resource
        next_run = r.next_run_time.strftime("%Y-%m-%d %H:%M UTC") if r.next_run_time else ""
        table.add_row(r.display_name, r.state.name, r.cron, next_run, str(r.started_run_count), s.resource_name)
    return table
