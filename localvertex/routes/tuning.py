"""Tuning jobs: create, list (paged, newest first), get, cancel."""

import binascii
import json
import logging
from typing import Any

from fastapi import APIRouter, Depends, Request

from ..datasets import camelize
from ..errors import ApiError, invalid, not_found
from ..httputil import b64url_decode, b64url_encode
from ..ids import check_id
from ..jobs import build_job, public_view
from .deps import LOCATION_PREFIX, Location, LocationDep, Services, ServicesDep, json_body, location_path

log = logging.getLogger("localvertex.server")

DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 100, 1000

router = APIRouter(prefix=LOCATION_PREFIX, dependencies=[Depends(location_path)])


def page_token(offset: int) -> str:
    return b64url_encode(json.dumps({"o": offset}).encode())


def parse_page_token(token: str) -> int:
    try:
        offset = int(json.loads(b64url_decode(token))["o"])
        if offset < 0:
            raise ValueError
        return offset
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise invalid("invalid pageToken") from None


def find_job(services: Services, loc: Location, job_id: str) -> dict[str, Any]:
    """The job ``job_id`` of this project and location; 400 for a bad id, else 404."""
    check_id(job_id, "tuning job id")
    job = services.store.get(job_id)
    if job is None or not loc.owns(job):
        raise not_found(f"TuningJob {loc.name}/tuningJobs/{job_id} not found.")
    return job


@router.post("/tuningJobs")
async def create_tuning_job(loc: LocationDep, services: ServicesDep, request: Request):
    body = camelize(await json_body(request))
    # build_job checks that the datasets exist: storage calls, off the event loop.
    job = await services.io.run(lambda: build_job(body, loc.project, loc.location, exists=services.reader.exists))
    services.store.add(job)
    services.runner.notify()
    log.info("created tuning job %s (base %s, %s)", job["_local"]["id"], job["baseModel"], job["_local"]["config"])
    return public_view(job)


@router.get("/tuningJobs")
async def list_tuning_jobs(
    loc: LocationDep, services: ServicesDep, pageSize: int = DEFAULT_PAGE_SIZE, pageToken: str = ""
):
    size = min(pageSize if pageSize > 0 else DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    offset = parse_page_token(pageToken) if pageToken else 0
    jobs = services.store.list(loc.project, loc.location)
    out: dict[str, Any] = {"tuningJobs": [public_view(j) for j in jobs[offset : offset + size]]}
    if offset + size < len(jobs):
        out["nextPageToken"] = page_token(offset + size)
    return out


@router.get("/tuningJobs/{job_id}")
async def get_tuning_job(loc: LocationDep, services: ServicesDep, job_id: str):
    return public_view(find_job(services, loc, job_id))


@router.post("/tuningJobs/{job_action}")
async def tuning_job_action(loc: LocationDep, services: ServicesDep, job_action: str):
    job_id, sep, action = job_action.partition(":")
    if not sep:
        raise ApiError(405, "METHOD_NOT_ALLOWED", "POST is not allowed on a tuning job")
    if action != "cancel":
        raise not_found(f"unknown method {action[:40]!r} on tuning jobs")
    find_job(services, loc, job_id)
    services.runner.cancel(job_id)
    return {}
