"""The REST routes, as FastAPI routers.

* token.py: ``POST /token`` (OAuth JWT-bearer grant) and ``GET /healthz``;
* tuning.py: ``.../tuningJobs`` create, list, get, ``:cancel``; and the local-only
  ``/local/v1/.../tuningJobs/ID:epochs`` (per-epoch figures, bearer token required);
* prediction.py: ``.../endpoints/ID:generateContent`` (tuned models and their
  checkpoints) and the 404 publisher models;
* logging_entries.py: Cloud Logging's ``POST /v2/entries:list`` (the pipeline tasks' logs).

Routes under ``/{version}/projects/{project}/locations/{location}`` check that prefix
with the ``location_path`` dependency (deps.py) and reach the auth keys, job store, runner,
storage reader and predictor through ``Services`` (``app.state.services``).
"""

from fastapi import FastAPI

from ..console import mount as mount_console
from . import logging_entries, metadata, pipelines, prediction, registry, schedules, token, tuning
from .deps import API_VERSIONS, LOCATION_PREFIX, BlockingIO, Location, Services

__all__ = ["API_VERSIONS", "LOCATION_PREFIX", "BlockingIO", "Location", "Services", "include_routes"]


def include_routes(app: FastAPI) -> None:
    app.include_router(token.router)
    app.include_router(tuning.router)
    app.include_router(tuning.local_router)
    app.include_router(prediction.router)
    app.include_router(prediction.global_router)
    app.include_router(pipelines.router)
    app.include_router(metadata.router)
    app.include_router(schedules.router)
    app.include_router(registry.router)
    app.include_router(logging_entries.router)
    mount_console(app)  # the web console at /console (localvertex/console)
