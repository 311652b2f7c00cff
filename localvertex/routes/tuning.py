"""Tuning jobs: create, list (paged, newest first, AIP-160 ``filter``), get, cancel; and
the local-only route with the per-epoch figures.

Bodies are parsed and responses written against the published schema (deps.py): a create
body binds to the request's ``tuning_job`` field, so its violations are reported at
``'tuning_job...'``. Cancelling a job that has ended is FAILED_PRECONDITION (HTTP 400).
"""

import logging
from typing import Any

from fastapi import APIRouter, Depends, Request

from ..errors import method_not_found, not_found
from ..ids import check_id
from ..jobs import build_job, parse_filter, public_view
from ..paging import parse_page
from .deps import (
    LOCATION_PREFIX,
    Location,
    LocationDep,
    Services,
    ServicesDep,
    local_location_path,
    location_path,
    require_token,
    respond,
    schema_body,
)

log = logging.getLogger("localvertex.server")

DEFAULT_PAGE_SIZE = 100

router = APIRouter(prefix=LOCATION_PREFIX, dependencies=[Depends(location_path)])
# Local-only figures, outside the API versions: /local/v1/projects/P/locations/L/...
local_router = APIRouter(
    prefix="/local/v1/projects/{project}/locations/{location}", dependencies=[Depends(require_token)]
)


def find_job(services: Services, loc: Location, job_id: str) -> dict[str, Any]:
    """The job ``job_id`` of this project and location; 400 for a bad id, else 404."""
    if ":" in job_id:
        raise method_not_found()
    check_id(job_id, "tuning job id")
    job = services.store.get(job_id)
    if job is None or not loc.owns(job):
        raise not_found(f"TuningJob {loc.name}/tuningJobs/{job_id} not found.")
    return job


@router.post("/tuningJobs")
async def create_tuning_job(version: str, loc: LocationDep, services: ServicesDep, request: Request):
    body = await schema_body(request, version, "TuningJob", root="tuning_job")
    # build_job checks that the datasets exist: storage calls, off the event loop.
    job = await services.io.run(
        lambda: build_job(
            body, loc.project, loc.location, exists=services.reader.exists, find_model=services.store.by_model
        )
    )
    services.store.add(job)
    services.runner.notify()
    log.info(
        "created tuning job %s (base %s, %s)",
        job["_local"]["id"],
        job["_local"]["localBaseModel"],
        job["_local"]["config"],
    )
    return respond(request, version, "TuningJob", public_view(job))


@router.get("/tuningJobs")
async def list_tuning_jobs(
    version: str,
    loc: LocationDep,
    services: ServicesDep,
    request: Request,
    pageSize: int = 0,
    pageToken: str = "",
    filter: str = "",
):
    page = parse_page(pageSize, pageToken, filter, DEFAULT_PAGE_SIZE)
    matches = parse_filter(filter)
    jobs = [j for j in services.store.list(loc.project, loc.location) if matches(j)]
    out: dict[str, Any] = {"tuningJobs": [public_view(j) for j in page.of(jobs)]}
    if next_token := page.next_token(len(jobs)):
        out["nextPageToken"] = next_token
    return respond(request, version, "ListTuningJobsResponse", out)


@router.get("/tuningJobs/{job_id}")
async def get_tuning_job(version: str, loc: LocationDep, services: ServicesDep, job_id: str, request: Request):
    return respond(request, version, "TuningJob", public_view(find_job(services, loc, job_id)))


@router.post("/tuningJobs/{job_action}")
async def tuning_job_action(version: str, loc: LocationDep, services: ServicesDep, job_action: str, request: Request):
    job_id, sep, action = job_action.partition(":")
    if not sep or action != "cancel":
        raise method_not_found()
    await schema_body(request, version, "CancelTuningJobRequest")
    find_job(services, loc, job_id)
    services.runner.cancel(job_id)
    return respond(request, version, "GoogleProtobufEmpty", {})


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


@local_router.get("/tuningJobs/{job_action}")
async def local_epochs(project: str, location: str, services: ServicesDep, job_action: str):
    """``GET /local/v1/projects/P/locations/L/tuningJobs/ID:epochs``: what Vertex AI shows
    only as charts, as JSON (not part of any Google schema): per epoch ``epoch``, ``step``,
    ``trainLoss``, ``validationLoss`` (null without a validation set), ``seconds``; and,
    once the job has succeeded, ``stepCount``, ``exampleCount``, ``tokenCount``,
    ``trainSeconds``, and for a continued job (``preTunedModel``) ``initialWeights``: the
    weights it started from and how many tensors were loaded."""
    job_id, sep, action = job_action.partition(":")
    if not sep or action != "epochs":
        raise method_not_found()
    loc = await local_location_path(project, location)
    job = find_job(services, loc, job_id)
    local = job["_local"]
    return {
        "tuningJob": job["name"],
        "state": job["state"],
        "epochs": [{_camel(k): v for k, v in e.items()} for e in local.get("epochs", [])],
        "validationExampleCount": local.get("validationExampleCount"),
        "config": local["config"],
        **local.get("metrics", {}),
        **({"initialWeights": local["initialWeights"]} if local.get("initialWeights") else {}),
    }
