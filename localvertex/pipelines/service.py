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

``services_or_store`` is the ``PipelineService`` itself, or any object with a
``pipelines`` attribute holding it (``LocalVertex``, ``app.state``).
"""

from __future__ import annotations

from typing import Any


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
