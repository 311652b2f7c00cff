"""PipelineJobs: create (``pipelineJobId`` optional), list (AIP-160 ``filter`` on labels,
display_name, state, create_time, ...; ``orderBy``; paged), get, ``:cancel``, delete (a
long-running Operation, already done, served at ``GET .../operations/ID``).

The work is in localvertex/pipelines (service.py); this module maps HTTP onto it.
"""

from typing import Any

from fastapi import APIRouter, Depends, Request

from ..errors import invalid, method_not_found
from ..pipelines.resource import public_view
from .deps import LOCATION_PREFIX, LocationDep, location_path, respond, schema_body
from .tuning import page_token, parse_page_token

DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 20, 1000

router = APIRouter(prefix=LOCATION_PREFIX, dependencies=[Depends(location_path)])


def pipelines(request: Request):
    return request.app.state.pipelines


@router.post("/pipelineJobs")
async def create_pipeline_job(version: str, loc: LocationDep, request: Request, pipelineJobId: str | None = None):
    body = await schema_body(request, version, "PipelineJob", root="pipeline_job")
    service = pipelines(request)
    job = await request.app.state.services.io.run(
        lambda: service.create(loc.project, loc.location, body, pipelineJobId or None)
    )
    service.runner.notify()
    return respond(request, version, "PipelineJob", job)


@router.get("/pipelineJobs")
async def list_pipeline_jobs(
    version: str,
    loc: LocationDep,
    request: Request,
    pageSize: int = 0,
    pageToken: str = "",
    filter: str = "",
    orderBy: str = "",
):
    if pageSize < 0:
        raise invalid(f"Invalid value at 'page_size' (TYPE_INT32), {pageSize}: must not be negative")
    size = min(pageSize or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    jobs = pipelines(request).list(loc.project, loc.location, filter, orderBy)
    offset = parse_page_token(pageToken, f"{filter}|{orderBy}") if pageToken else 0
    out: dict[str, Any] = {"pipelineJobs": [public_view(j) for j in jobs[offset : offset + size]]}
    if offset + size < len(jobs):
        out["nextPageToken"] = page_token(offset + size, f"{filter}|{orderBy}")
    return respond(request, version, "ListPipelineJobsResponse", out)


@router.get("/pipelineJobs/{job_id}")
async def get_pipeline_job(version: str, loc: LocationDep, job_id: str, request: Request):
    if ":" in job_id:
        raise method_not_found()
    return respond(
        request, version, "PipelineJob", public_view(pipelines(request).find(loc.project, loc.location, job_id))
    )


@router.post("/pipelineJobs/{job_action}")
async def pipeline_job_action(version: str, loc: LocationDep, job_action: str, request: Request):
    job_id, sep, action = job_action.partition(":")
    if not sep or action != "cancel":
        raise method_not_found()
    await schema_body(request, version, "CancelPipelineJobRequest")
    pipelines(request).cancel(loc.project, loc.location, job_id)
    return respond(request, version, "GoogleProtobufEmpty", {})


@router.delete("/pipelineJobs/{job_id}")
async def delete_pipeline_job(version: str, loc: LocationDep, job_id: str, request: Request):
    op = pipelines(request).delete(loc.project, loc.location, job_id)
    return respond(request, version, "GoogleLongrunningOperation", op)


@router.get("/operations/{operation_id}")
async def get_operation(version: str, loc: LocationDep, operation_id: str, request: Request):
    op = pipelines(request).operation(f"{loc.name}/operations/{operation_id}")
    return respond(request, version, "GoogleLongrunningOperation", op)
