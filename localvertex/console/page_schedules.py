"""Schedules: the list (state, next run time, started runs, last fire), create one from a
template with a cron and an active-run limit, pause, resume and delete (after a
confirmation). The schedule's PipelineJob is built as for a run (page_create.py), labelled
``trigger=schedule`` and ``experiment=<name>`` as ``make schedule`` labels its runs."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from .api import ApiFailure
from .context import ActionDep, Page, PageDep
from .forms import read_form
from .page_create import (
    default_values,
    job_body,
    load_spec,
    pipeline_name,
    quiet_packages,
    submitted_run_form,
)
from .run_form import RunForm, build_fields, check_run_form

router = APIRouter()

VERBS = {"pause": "Pause", "resume": "Resume", "delete": "Delete"}


def schedule_rows(schedules: list[dict]) -> list[dict]:
    rows = []
    for s in schedules:
        last = s.get("lastScheduledRunResponse") or {}
        run = str(last.get("runResponse", ""))
        rows.append(
            {
                "id": s["name"].rsplit("/", 1)[-1],
                "display_name": s.get("displayName", ""),
                "cron": s.get("cron", ""),
                "state": str(s.get("state", "")).lower(),
                "next": s.get("nextRunTime", ""),
                "started": int(s.get("startedRunCount") or 0),
                "limit": s.get("maxConcurrentActiveRunCount") or s.get("maxConcurrentRunCount") or "",
                "last_time": last.get("scheduledRunTime", ""),
                "last_run": run.rsplit("/", 1)[-1] if "/pipelineJobs/" in run else "",
                "last_text": run if "/pipelineJobs/" not in run else "",
            }
        )
    return rows


@router.get("/schedules")
async def schedules_page(current: PageDep) -> Response:
    page = await current.api.list_schedules()
    packages = [p["name"].rsplit("/", 1)[-1] for p in await quiet_packages(current.api)]
    return current.render("schedules.html", rows=schedule_rows(page.get("schedules", [])), packages=packages)


@router.get("/schedules/new")
async def new_schedule_page(current: PageDep, package: str = "", ref: str = "latest") -> Response:
    spec = await load_spec(current.api, package, ref)
    fields = await asyncio.to_thread(build_fields, spec, await default_values(current.api))
    run = RunForm(
        fields,
        display_name=f"{pipeline_name(spec)}-nightly",
        experiment=f"{pipeline_name(spec)}-runs",
        pipeline=pipeline_name(spec),
    )
    return current.render(
        "schedule_new.html", run=run, package=package, ref=ref, cron="0 2 * * *", limit="1", problems={}
    )


@router.post("/schedules/new")
async def create_schedule(current: ActionDep, request: Request) -> Response:
    form = await read_form(request)
    package, ref, spec, run = await submitted_run_form(current.api, form, default_ref="latest")
    cron, limit_text = str(form.get("cron") or "").strip(), str(form.get("limit") or "").strip()
    values, labels = await asyncio.to_thread(check_run_form, run)
    problems = _schedule_problems(cron, limit_text)
    if not run.ok or problems:
        return _again(current, run, package, ref, cron, limit_text, problems)
    body = {
        "displayName": run.display_name,
        "cron": cron,
        "maxConcurrentRunCount": limit_text,
        # The limit that counts runs still in progress (tuning takes hours), as make schedule sets it.
        "maxConcurrentActiveRunCount": limit_text,
        "createPipelineJobRequest": {
            "parent": current.api.parent,
            "pipelineJob": job_body(current, spec, run, values, labels, package, ref, trigger="schedule"),
        },
    }
    try:
        await current.api.create_schedule(body)
    except ApiFailure as failure:
        field = "cron" if "cron" in failure.message.lower() else "form"
        return _again(current, run, package, ref, cron, limit_text, {field: failure.message})
    return RedirectResponse("/console/schedules", status_code=303)


def _schedule_problems(cron: str, limit_text: str) -> dict[str, str]:
    problems = {}
    if not cron:
        problems["cron"] = "required, e.g. 0 2 * * * (02:00 UTC) or TZ=Europe/Berlin 0 2 * * *"
    if not limit_text.isdigit() or int(limit_text) < 1:
        problems["limit"] = "a whole number, at least 1"
    return problems


def _again(current: Page, run: RunForm, package: str, ref: str, cron: str, limit: str, problems: dict) -> Response:
    return current.render(
        "schedule_new.html", 400, run=run, package=package, ref=ref, cron=cron, limit=limit, problems=problems
    )


@router.get("/schedules/{schedule_id}/{verb}")
async def confirm_action(current: PageDep, schedule_id: str, verb: str) -> Response:
    if verb not in VERBS:
        raise ApiFailure(404, f"no such action: {verb[:20]!r}")
    detail = {
        "pause": "It starts no run until resumed; runs already started go on.",
        "resume": "It starts runs again at its next cron time.",
        "delete": "The schedule is removed; the runs it started stay.",
    }[verb]
    return current.render(
        "confirm.html",
        question=f"{VERBS[verb]} schedule {schedule_id}?",
        detail=detail,
        action=f"/console/schedules/{schedule_id}/{verb}",
        button=f"Yes, {verb}",
        back="/console/schedules",
    )


@router.post("/schedules/{schedule_id}/{verb}")
async def schedule_action(current: ActionDep, schedule_id: str, verb: str) -> Response:
    if verb not in VERBS:
        raise ApiFailure(404, f"no such action: {verb[:20]!r}")
    await current.api.schedule_action(schedule_id, verb)
    return RedirectResponse("/console/schedules", status_code=303)
