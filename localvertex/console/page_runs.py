"""Runs: the PipelineJobs of the project and location, newest first, filtered by state and
label (as AIP-160 filters the API evaluates), a page at a time (the API's page tokens).

The API's tokens only go forward, so the way back lives in the links, not on the server:
each page's URL carries ``back``, the tokens of the pages before it (``""`` for the first),
and Previous pops the last one."""

from __future__ import annotations

import re
import urllib.parse

from fastapi import APIRouter, Query

from .context import PageDep
from .views import state_word

router = APIRouter()

STATES = ("QUEUED", "PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLING", "CANCELLED", "PAUSED")
LABEL_FILTER_RE = re.compile(r"([a-z][a-z0-9_-]{0,62})=([a-z0-9_-]{0,63})")
PAGE_SIZES = (10, 25, 50, 100)
MAX_BACK = 50  # pages remembered for Previous (the URL stays short); First page always works


def trigger_of(job: dict) -> str:
    """How a run was started: by a schedule (the API's scheduleName), from the console or a
    command (the ``trigger`` label that submit, schedule and the console set)."""
    if job.get("scheduleName"):
        return "schedule"
    trigger = job.get("labels", {}).get("trigger", "")
    return {"console": "console", "schedule": "schedule"}.get(trigger, "manual")


def job_id(job: dict) -> str:
    return job.get("name", "").rsplit("/", 1)[-1]


def run_filter(state: str, label: str) -> tuple[str, str]:
    """(AIP-160 filter, error): a state from the list, a label as key=value."""
    parts = []
    if state:
        if state not in STATES:
            return "", f"unknown state {state[:30]!r}"
        parts.append(f'state="PIPELINE_STATE_{state}"')
    if label:
        match = LABEL_FILTER_RE.fullmatch(label.strip())
        if not match:
            return "", "label filter: key=value, lowercase letters, digits, _ and -"
        parts.append(f'labels.{match.group(1)}="{match.group(2)}"')
    return " AND ".join(parts), ""


def pager_links(state: str, label: str, page_size: int, page_token: str, back: list[str], next_token: str) -> dict:
    """The hrefs of First, Previous and Next ('' where there is none) and the page number."""

    def href(token: str, stack: list[str]) -> str:
        query = {"state": state, "label": label, "page_size": page_size, "page_token": token, "back": stack}
        return "/console/runs?" + urllib.parse.urlencode({k: v for k, v in query.items() if v != ""}, doseq=True)

    first = href("", []) if page_token else ""
    previous = href(back[-1], back[:-1]) if page_token and back else first
    forward = href(next_token, ([*back, page_token])[-MAX_BACK:]) if next_token else ""
    return {"first": first, "previous": previous, "next": forward, "number": len(back) + 1 if page_token else 1}


@router.get("/runs")
async def runs_page(
    current: PageDep,
    state: str = "",
    label: str = "",
    page_token: str = "",
    page_size: int = 25,
    back: list[str] = Query([]),  # repeated: ?back=&back=T1
):
    filter_text, problem = run_filter(state, label)
    page_size = page_size if page_size in PAGE_SIZES else 25
    page = {} if problem else await current.api.list_jobs(filter_text, page_size, page_token)
    rows = [
        {
            "id": job_id(job),
            "display_name": job.get("displayName") or job_id(job),
            "state": state_word(job.get("state")),
            "create": job.get("createTime"),
            "start": job.get("startTime"),
            "end": job.get("endTime"),
            "experiment": job.get("labels", {}).get("experiment", ""),
            "trigger": trigger_of(job),
            "labels": job.get("labels", {}),
        }
        for job in page.get("pipelineJobs", [])
    ]
    return current.render(
        "runs.html",
        rows=rows,
        states=STATES,
        state=state,
        label=label,
        problem=problem,
        page_size=page_size,
        page_sizes=PAGE_SIZES,
        pager=pager_links(state, label, page_size, page_token, back[-MAX_BACK:], page.get("nextPageToken", "")),
    )
