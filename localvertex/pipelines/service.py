"""The entry points of the local Vertex AI Pipelines that other parts of the server use
(the schedules' scheduler, template runs) without going through HTTP.

Stable API (keep the signatures):

* ``create_pipeline_job(services_or_store, project, location, body, pipeline_job_id=None,
  *, schedule_name=None) -> dict``: validate ``body`` (a PipelineJob in canonical form, as
  ``routes.deps.schema_body(..., "PipelineJob")`` returns it), record the job and queue it.
  Returns the PipelineJob resource exactly as Vertex returns it (public fields only).
  Raises ``localvertex.errors.ApiError`` for bad input (400 INVALID_ARGUMENT naming the
  field or parameter, 409 ALREADY_EXISTS for a duplicate ``pipeline_job_id``); nothing is
  recorded then. ``schedule_name`` (``projects/P/locations/L/schedules/ID``) sets the
  job's output-only ``scheduleName``, as Vertex does for scheduled runs.
* ``active_run_count(services_or_store, project, location, schedule_name) -> int``: how
  many jobs started by that schedule are active (QUEUED, PENDING, RUNNING, CANCELLING):
  what ``maxConcurrentRunCount`` / ``maxConcurrentActiveRunCount`` count.
* ``get_pipeline_job(services_or_store, project, location, job_id) -> dict | None``.

* ``record_operation(services_or_store, project, location, metadata_type) -> dict``: a
  finished long-running Operation (``done: true``) that ``GET .../operations/ID`` serves.

``services_or_store`` is the ``PipelineService`` itself, or any object with a
``pipelines`` attribute holding it (``LocalVertex``, ``app.state``).
"""

from __future__ import annotations

import copy
import logging
import re
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import aip160
from ..errors import ApiError, api_error, failed_precondition, invalid, not_found
from ..ids import new_id
from ..metadata import pipeline_runs
from ..metadata.store import MetadataStore
from .resource import (
    ACTIVE,
    PENDING,
    PIPELINE_STATES,
    QUEUED,
    RUNNING,
    TERMINAL,
    id_of,
    mark_cancelled,
    mark_cancelling,
    now_rfc3339,
    public_view,
    state_word,
)
from .runner import PipelineRunner
from .spec import check_parameter_values, check_pipeline_spec, legacy_parameters, pipeline_name
from .store import PipelineJobStore

log = logging.getLogger("localvertex.pipelines")


def _service(services_or_store: Any):
    return getattr(services_or_store, "pipelines", services_or_store)


def create_pipeline_job(
    services_or_store: Any,
    project: str,
    location: str,
    body: dict,
    pipeline_job_id: str | None = None,
    *,
    schedule_name: str | None = None,
) -> dict:
    return _service(services_or_store).create(project, location, body, pipeline_job_id, schedule_name=schedule_name)


def active_run_count(services_or_store: Any, project: str, location: str, schedule_name: str) -> int:
    return _service(services_or_store).active_run_count(project, location, schedule_name)


def get_pipeline_job(services_or_store: Any, project: str, location: str, job_id: str) -> dict | None:
    return _service(services_or_store).get_public(project, location, job_id)


def record_operation(services_or_store: Any, project: str, location: str, metadata_type: str) -> dict:
    return _service(services_or_store).record_operation(project, location, metadata_type)


class PipelineService:
    """PipelineJobs (store + runner), the ML Metadata store, and long-running operations."""

    def __init__(self, data_dir: Path, slots: int | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.metadata = MetadataStore(self.data_dir)
        self.store = PipelineJobStore(self.data_dir)
        self.runner = PipelineRunner(self.store, self.metadata, self.data_dir, slots)
        self.operations: dict[str, dict[str, Any]] = {}
        # templateUri -> {"pipelineSpec", "templateMetadata"} (TemplateRegistry.resolve_template);
        # the server sets it, None resolves nothing.
        self.templates: Callable[[str], dict] | None = None
        self._async = ThreadPoolExecutor(1, thread_name_prefix="localvertex-pipeline-metadata")
        for job in self.store.list():  # contexts a stop interrupted before they were written
            if "runExecution" not in job["_local"]:
                self._async.submit(self._write_contexts, id_of(job))

    def start(self) -> None:
        self.runner.start()

    def close(self) -> None:
        self.runner.stop()
        self._async.shutdown(wait=True)

    # -- PipelineJobs
    def create(
        self, project: str, location: str, body: dict, job_id: str | None = None, *, schedule_name: str | None = None
    ) -> dict:
        template = self._template(body)
        if template and not body.get("pipelineSpec"):  # a run from a template alone (REST, the console)
            body = {**body, "pipelineSpec": template["pipelineSpec"]}
        job = build_pipeline_job(body, project, location, job_id, schedule_name)
        if template:
            job["templateMetadata"] = template["templateMetadata"]
        if not self.store.add(job):
            raise api_error("ALREADY_EXISTS", f"PipelineJob {job['name']} already exists.")
        self._async.submit(self._write_contexts, id_of(job))
        log.info("created pipeline job %s (%s)", id_of(job), job["_local"]["pipelineName"])
        return public_view(job)

    def _template(self, body: dict) -> dict | None:
        """``{"pipelineSpec", "templateMetadata"}`` of the job's ``templateUri`` (``templates``,
        the registry's resolver, set by the server), as Vertex AI records ``templateMetadata.version``.
        A template that is missing is 404 and nothing is created. A URI of no registry (the
        SDK also records plain https YAML URLs) is kept as sent when a spec came with it."""
        uri = body.get("templateUri")
        if not uri or self.templates is None:
            return None
        try:
            return self.templates(uri)
        except ApiError as exc:
            if exc.status == "INVALID_ARGUMENT" and body.get("pipelineSpec"):
                return None
            raise

    def _write_contexts(self, job_id: str) -> None:
        """jobDetail's contexts, written just after create, as Vertex does (asynchronously)."""
        try:
            job = self.store.get(job_id)
            if job is None or "runExecution" in job["_local"]:
                return
            detail = pipeline_runs.start_run(self.metadata, job)

            def record(j):
                j.setdefault("jobDetail", {}).update(
                    pipelineContext=detail["pipelineContext"], pipelineRunContext=detail["pipelineRunContext"]
                )
                j["_local"]["runExecution"] = detail["runExecution"]

            self.store.update(job_id, record)
        except Exception:
            log.exception("pipeline job %s: its metadata contexts could not be written", job_id)
        self.runner.notify()

    def find(self, project: str, location: str, job_id: str) -> dict:
        job = self.store.get(job_id) if JOB_ID_RE.fullmatch(job_id or "") else None
        if job is None or (job["_local"]["project"], job["_local"]["location"]) != (project, location):
            raise not_found(f"PipelineJob projects/{project}/locations/{location}/pipelineJobs/{job_id} not found.")
        return job

    def get_public(self, project: str, location: str, job_id: str) -> dict | None:
        try:
            return public_view(self.find(project, location, job_id))
        except ApiError:
            return None

    def list(self, project: str, location: str, filter_text: str, order_by: str) -> list[dict]:
        matches = aip160.parse(filter_text, JOB_FIELDS)
        jobs = [j for j in self.store.list(project, location) if matches(j)]
        return sort_jobs(jobs, order_by)

    def cancel(self, project: str, location: str, job_id: str) -> None:
        with self.store.lock:
            job = self.find(project, location, job_id)
            if job["state"] in TERMINAL:
                raise failed_precondition(f"Cannot cancel pipeline job {job['name']}: it is already {state_word(job)}.")
            if job["state"] in (PENDING, QUEUED):
                self.store.update(job_id, mark_cancelled)
                self.runner._end_metadata(job_id)
            elif job["state"] == RUNNING:
                self.store.update(job_id, mark_cancelling)
        log.info("cancel requested for pipeline job %s (was %s)", job_id, job["state"])

    def delete(self, project: str, location: str, job_id: str) -> dict:
        with self.store.lock:
            job = self.find(project, location, job_id)
            if job["state"] not in TERMINAL:
                raise failed_precondition(
                    f"Cannot delete pipeline job {job['name']}: it is {state_word(job)}; cancel it first."
                )
            self.store.delete(job_id)
        shutil.rmtree(self.runner.runs_dir / job_id, ignore_errors=True)
        return self.record_operation(project, location, "DeleteOperationMetadata")

    def active_run_count(self, project: str, location: str, schedule_name: str) -> int:
        return sum(
            1
            for j in self.store.peek()
            if j.get("scheduleName") == schedule_name
            and j["state"] in ACTIVE
            and (j["_local"]["project"], j["_local"]["location"]) == (project, location)
        )

    # -- operations
    def record_operation(self, project: str, location: str, metadata_type: str) -> dict:
        """A finished long-running operation (delete), served under ``operations/ID``."""
        now = now_rfc3339()
        op = {
            "name": f"projects/{project}/locations/{location}/operations/{new_id()}",
            "metadata": {
                "@type": f"type.googleapis.com/google.cloud.aiplatform.v1.{metadata_type}",
                "genericMetadata": {"createTime": now, "updateTime": now},
            },
            "done": True,
            "response": {"@type": "type.googleapis.com/google.protobuf.Empty"},
        }
        self.operations[op["name"]] = op
        return copy.deepcopy(op)

    def operation(self, name: str) -> dict:
        if name not in self.operations:
            raise not_found(f"Operation {name} not found.")
        return copy.deepcopy(self.operations[name])


# -- building a job
JOB_ID_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,127}")
_LABEL_RE = re.compile(r"[a-z0-9_-]{0,63}")


def build_pipeline_job(body: dict, project: str, location: str, job_id: str | None, schedule_name: str | None) -> dict:
    """The new PENDING job, or ApiError; nothing is recorded here."""
    if job_id is not None and not JOB_ID_RE.fullmatch(job_id):
        raise invalid(
            f"Invalid pipeline_job_id {job_id[:140]!r}: up to 128 of a-z, 0-9 and -, starting with a letter or digit."
        )
    spec = check_pipeline_spec(body.get("pipelineSpec"))
    runtime = dict(body.get("runtimeConfig") or {})
    values = dict(runtime.get("parameterValues") or {})
    if runtime.get("parameters"):
        values.update(legacy_parameters(runtime["parameters"]))
    arguments = check_parameter_values(spec, values)
    root = runtime.get("gcsOutputDirectory") or spec.get("defaultPipelineRoot", "")
    if not root.startswith("gs://") or len(root) <= 5:
        raise invalid(
            "PipelineJob.runtime_config.gcs_output_directory must be a gs:// URI (or the pipeline must "
            f"have a defaultPipelineRoot); got {root[:200]!r}."
        )
    runtime["gcsOutputDirectory"] = root
    for key, value in (body.get("labels") or {}).items():
        if not (key and _LABEL_RE.fullmatch(key) and _LABEL_RE.fullmatch(value)):
            raise invalid(f"Invalid label {key[:80]!r}={value[:80]!r}: lowercase letters, digits, _ and -, 63 at most.")
    job_id = job_id or f"{pipeline_name(spec)[:100]}-{datetime.now(UTC):%Y%m%d%H%M%S}-{new_id()[:6]}"
    now = now_rfc3339()
    kept = ("displayName", "labels", "serviceAccount", "network", "templateUri", "encryptionSpec", "reservedIpRanges")
    job = {k: copy.deepcopy(body[k]) for k in kept if body.get(k)}
    job.update(
        name=f"projects/{project}/locations/{location}/pipelineJobs/{job_id}",
        displayName=body.get("displayName") or pipeline_name(spec),
        pipelineSpec=spec,
        runtimeConfig=runtime,
        state=PENDING,
        createTime=now,
        updateTime=now,
        labels={**(body.get("labels") or {}), "vertex-ai-pipelines-run-billing-id": new_id()},
    )
    if schedule_name:
        job["scheduleName"] = schedule_name
    job["_local"] = {
        "id": job_id,
        "project": project,
        "location": location,
        "arguments": arguments,
        "pipelineName": pipeline_name(spec),
        "taskIdBase": new_id()[:12] + "000000",
    }
    return job


JOB_FIELDS = aip160.Fields(
    strings={
        "display_name": lambda j: j.get("displayName"),
        "pipeline_name": lambda j: j["_local"]["pipelineName"],
        "template_uri": lambda j: j.get("templateUri"),
        "template_metadata.version": lambda j: (j.get("templateMetadata") or {}).get("version"),
        "schedule_name": lambda j: j.get("scheduleName"),
        "pipeline_job_user_id": lambda j: j["_local"]["id"],
    },
    enums={"state": (lambda j: j["state"], PIPELINE_STATES)},
    times={
        "create_time": lambda j: j.get("createTime"),
        "update_time": lambda j: j.get("updateTime"),
        "start_time": lambda j: j.get("startTime"),
        "end_time": lambda j: j.get("endTime"),
    },
    maps={"labels": lambda j: j.get("labels")},
)
_ORDER_FIELDS = {
    "create_time": "createTime",
    "update_time": "updateTime",
    "start_time": "startTime",
    "end_time": "endTime",
}


def sort_jobs(jobs: list[dict], order_by: str) -> list[dict]:
    """``order_by``: comma-separated fields, each optionally `` desc`` (default: create_time desc)."""
    keys = []
    for part in [p.strip() for p in (order_by or "create_time desc").split(",")]:
        words = part.split()
        if (
            not words
            or words[0] not in _ORDER_FIELDS
            or len(words) > 2
            or (len(words) == 2 and words[1] not in ("asc", "desc"))
        ):
            raise invalid(
                f"Invalid order_by {order_by[:200]!r}: fields are {', '.join(_ORDER_FIELDS)}, each optionally 'desc'."
            )
        keys.append((_ORDER_FIELDS[words[0]], len(words) == 2 and words[1] == "desc"))
    for field_name, desc in reversed(keys):
        jobs.sort(key=lambda j: j.get(field_name) or "", reverse=desc)
    return jobs
