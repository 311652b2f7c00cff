"""Schedules: create, list (``filter``, ``orderBy``, paged), get, patch (``updateMask``),
``:pause``, ``:resume``, delete (a long-running Operation, already done).

The work is in localvertex/pipelines/schedules.py (resource, files) and
schedules_scheduler.py (when runs start); this module maps HTTP onto it. Bodies are parsed
against the published schema (deps.schema_body), so an unknown field is 400 naming it.
"""

from fastapi import APIRouter, Depends, Request

from ..errors import method_not_found
from ..pipelines.schedules import ScheduleService
from .deps import LOCATION_PREFIX, LocationDep, location_path, respond, schema_body

router = APIRouter(prefix=LOCATION_PREFIX, dependencies=[Depends(location_path)])


def schedules(request: Request) -> ScheduleService:
    return request.app.state.schedules


def _plain_id(schedule_id: str) -> str:
    if ":" in schedule_id:
        raise method_not_found()
    return schedule_id


@router.post("/schedules")
async def create_schedule(version: str, loc: LocationDep, request: Request):
    body = await schema_body(request, version, "Schedule", root="schedule")
    schedule = schedules(request).create(loc.project, loc.location, body)
    return respond(request, version, "Schedule", schedule)


@router.get("/schedules")
async def list_schedules(
    version: str,
    loc: LocationDep,
    request: Request,
    pageSize: int = 0,
    pageToken: str = "",
    filter: str = "",
    orderBy: str = "",
):
    out = schedules(request).list(loc.project, loc.location, filter, orderBy, pageSize, pageToken)
    return respond(request, version, "ListSchedulesResponse", out)


@router.get("/schedules/{schedule_id}")
async def get_schedule(version: str, loc: LocationDep, schedule_id: str, request: Request):
    schedule = schedules(request).get(loc.project, loc.location, _plain_id(schedule_id))
    return respond(request, version, "Schedule", schedule)


@router.patch("/schedules/{schedule_id}")
async def patch_schedule(version: str, loc: LocationDep, schedule_id: str, request: Request, updateMask: str = ""):
    body = await schema_body(request, version, "Schedule", root="schedule")
    schedule = schedules(request).patch(loc.project, loc.location, _plain_id(schedule_id), body, updateMask)
    return respond(request, version, "Schedule", schedule)


@router.delete("/schedules/{schedule_id}")
async def delete_schedule(version: str, loc: LocationDep, schedule_id: str, request: Request):
    operation = schedules(request).delete(loc.project, loc.location, _plain_id(schedule_id))
    return respond(request, version, "GoogleLongrunningOperation", operation)


@router.post("/schedules/{schedule_action}")
async def schedule_action(version: str, loc: LocationDep, schedule_action: str, request: Request):
    schedule_id, sep, action = schedule_action.partition(":")
    if not sep or action not in ("pause", "resume"):
        raise method_not_found()
    service = schedules(request)
    if action == "pause":
        await schema_body(request, version, "PauseScheduleRequest")
        service.pause(loc.project, loc.location, schedule_id)
    else:
        body = await schema_body(request, version, "ResumeScheduleRequest")
        service.resume(loc.project, loc.location, schedule_id, catch_up=bool(body.get("catchUp")))
    return respond(request, version, "GoogleProtobufEmpty", {})
