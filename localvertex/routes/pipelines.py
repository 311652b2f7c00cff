"""PipelineJobs: create (``pipelineJobId`` optional), list (AIP-160 ``filter`` on labels,
display_name, state, create_time, ...; ``orderBy``; paged), get, ``:cancel``, delete (a
long-running Operation, already done, served at ``GET .../operations/ID``).

The work is in localvertex/pipelines (service.py); this module maps HTTP onto it.
"""

import copy
from typing import Any

from fastapi import APIRouter, Depends, Request

from ..errors import invalid, method_not_found
from ..paging import parse_page
from ..pipelines.resource import public_view
from ..schema.walker import api_schema
from .deps import LOCATION_PREFIX, LocationDep, location_path, respond, schema_body

DEFAULT_PAGE_SIZE = 20

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
    readMask: str = "",
):
    page = parse_page(pageSize, pageToken, f"{filter}|{orderBy}", DEFAULT_PAGE_SIZE)
    mask = parse_read_mask(readMask, version)
    jobs = pipelines(request).list(loc.project, loc.location, filter, orderBy)
    out: dict[str, Any] = {"pipelineJobs": [masked(j, mask) if mask else public_view(j) for j in page.of(jobs)]}
    if next_token := page.next_token(len(jobs)):
        out["nextPageToken"] = next_token
    return respond(request, version, "ListPipelineJobsResponse", out)


def _camel(word: str) -> str:
    head, *rest = word.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def parse_read_mask(text: str, version: str) -> list[list[str]]:
    """``readMask`` (a FieldMask: comma-separated paths, snake_case or camelCase) as camelCase
    path lists; a path whose first field PipelineJob lacks is 400 INVALID_ARGUMENT. Vertex AI
    answers a list without one with whole jobs; with one (``PipelineJob.list(enable_simple_view=
    True)`` sends the SDK's own), with those fields only, which is what makes big pages fast."""
    if not text.strip():
        return []
    paths = [[_camel(part) for part in path.strip().split(".")] for path in text.split(",")]
    schema = api_schema(version)
    known = schema.schemas[schema.full("PipelineJob")]["properties"]
    for path in paths:
        if not all(path) or path[0] not in known:
            raise invalid(f"Invalid read_mask {text[:200]!r}: {'.'.join(path)!r} is not a field of PipelineJob.")
    return paths


def masked(job: dict[str, Any], paths: list[list[str]]) -> dict[str, Any]:
    """The fields of ``job`` that ``paths`` name (deep-copied), nested as in the job."""
    out: dict[str, Any] = {}
    for path in paths:
        source, target = job, out
        for i, key in enumerate(path):
            if not isinstance(source, dict) or key not in source:
                break
            if i == len(path) - 1:
                target[key] = copy.deepcopy(source[key])
            else:
                source, target = source[key], target.setdefault(key, {})
    return out


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
