"""Run: one PipelineJob. Its DAG drawn from the spec it ran, each task's state, times,
inputs, outputs and log tail, the tuning job's progress, the rendered artifacts, and cancel
(after a confirmation page). ``/runs/ID/live.json`` is what the page's script polls to update
the task states and the running tasks' logs without a reload.

A task's log is read as Google's clients read it: the task names the CustomJob it ran as
(``executorDetail.containerDetail.mainJob``), and Cloud Logging's ``entries:list`` with
``resource.type="ml_job" AND resource.labels.job_id="ID"`` (gcloud's ``ai custom-jobs
stream-logs`` filter, googlecloudsdk/command_lib/ai/log_util.py) serves what it printed."""

from __future__ import annotations

import asyncio
import re

from fastapi import APIRouter
from fastapi.responses import JSONResponse, RedirectResponse, Response

from . import artifacts, dag
from .api import ApiFailure
from .context import ActionDep, PageDep
from .page_runs import trigger_of
from .run_form import SECRET_RE
from .security import ARTIFACT_CSP
from .views import duration, state_word, when

router = APIRouter()

ACTIVE = ("queued", "pending", "running", "cancelling", "paused")
LOG_TAIL = 50  # lines of each task's log on the page


def task_rows(job: dict, graph: dag.Graph) -> list[dict]:
    """The graph's tasks in drawing order, with what the API says about each."""
    details = {t.get("taskName"): t for t in job.get("jobDetail", {}).get("taskDetails", [])}
    rows = []
    for node in sorted(graph.nodes, key=lambda n: (n.layer, n.x)):
        task = details.get(node.key, {})
        rows.append(
            {
                "key": node.key,
                "label": node.label,
                "state": state_word(task.get("state")) if task else "not started",
                "start": task.get("startTime", ""),
                "end": task.get("endTime", ""),
                "error": (task.get("error") or {}).get("message", ""),
                "inputs": artifacts.task_parameters(task, "input"),
                "outputs": artifacts.task_parameters(task, "output"),
                "input_artifacts": _artifact_names(task.get("inputs")),
                "output_artifacts": _artifact_names(task.get("outputs")),
            }
        )
    return rows


def _artifact_names(listing: dict | None) -> list[tuple[str, str, str]]:
    return [
        (name, a.get("schemaTitle", ""), a.get("uri", ""))
        for name, entry in sorted((listing or {}).items())
        for a in entry.get("artifacts", [])
    ]


def task_custom_job_id(task: dict) -> str:
    """The numeric id of the CustomJob the task ran as ('' for none: not started, or cached)."""
    main_job = (task.get("executorDetail") or {}).get("containerDetail", {}).get("mainJob", "")
    job_id = main_job.rsplit("/", 1)[-1]
    return job_id if re.fullmatch(r"\d{1,20}", job_id) else ""


async def log_tail(api, task: dict) -> list[str]:
    """The last LOG_TAIL lines the task printed, oldest first (newest first from the API)."""
    job_id = task_custom_job_id(task)
    if not job_id:
        return []
    query = f'resource.type="ml_job" AND resource.labels.job_id="{job_id}"'
    try:
        entries = await api.list_log_entries(query, LOG_TAIL)
    except ApiFailure as failure:
        return [f"(the log could not be read: {failure.message})"]
    return [entry.get("textPayload", "") for entry in reversed(entries)]


async def log_tails(api, job: dict, names: set[str] | None = None) -> dict[str, list[str]]:
    """{task: its log tail} for the tasks in ``names`` (every task when None), read in parallel."""
    tasks = [
        t
        for t in job.get("jobDetail", {}).get("taskDetails", [])
        if (names is None or t.get("taskName") in names) and task_custom_job_id(t)
    ]
    tails = await asyncio.gather(*(log_tail(api, t) for t in tasks))
    return {t["taskName"]: tail for t, tail in zip(tasks, tails, strict=True)}


def run_parameters(job: dict) -> list[tuple[str, str]]:
    values = job.get("runtimeConfig", {}).get("parameterValues", {})
    return [(k, "(set, not shown)" if SECRET_RE.search(k) and v else str(v)) for k, v in sorted(values.items())]


async def tuning_progress(api, job: dict) -> dict | None:
    """The tuning job the run launched, through the tuning API: state, epochs done."""
    name = artifacts.tuning_job_name(job)
    if not name:
        return None
    progress = {"name": name, "state": "", "epochs": [], "error": "", "total": 0}
    try:
        tuning = await api.get_tuning_job(name)
        progress["state"] = state_word(tuning.get("state"))
        progress["error"] = (tuning.get("error") or {}).get("message", "")
        hyper = tuning.get("supervisedTuningSpec", {}).get("hyperParameters", {})
        progress["total"] = int(hyper.get("epochCount") or 0)
        progress["epochs"] = (await api.tuning_epochs(name)).get("epochs", [])
    except ApiFailure as failure:
        progress["error"] = progress["error"] or failure.message
    return progress


def live_state(job: dict) -> dict:
    """What the polling script needs: the run's state and each task's state and times."""
    tasks = {}
    for t in job.get("jobDetail", {}).get("taskDetails", []):
        tasks[t.get("taskName", "")] = {
            "state": state_word(t.get("state")),
            "start": when(t.get("startTime")),
            "end": when(t.get("endTime")),
            "duration": duration(t.get("startTime"), t.get("endTime")) if t.get("startTime") else "",
            "error": (t.get("error") or {}).get("message", ""),
        }
    state = state_word(job.get("state"))
    return {
        "state": state,
        "active": state in ACTIVE,
        "duration": duration(job.get("startTime"), job.get("endTime")),
        "tasks": tasks,
        "error": (job.get("error") or {}).get("message"),
    }


@router.get("/runs/{job_id}")
async def run_page(current: PageDep, job_id: str) -> Response:
    job = await current.api.get_job(job_id)
    graph = dag.layout(job.get("pipelineSpec") or {})
    state = state_word(job.get("state"))
    tasks = task_rows(job, graph)
    tails = await log_tails(current.api, job)
    for row in tasks:
        row["log"] = tails.get(row["key"])
    return current.render(
        "run.html",
        job=job,
        job_id=job_id,
        state=state,
        active=state in ACTIVE,
        trigger=trigger_of(job),
        graph=graph,
        node_w=dag.NODE_W,
        node_h=dag.NODE_H,
        tasks=tasks,
        log_tail=LOG_TAIL,
        parameters=run_parameters(job),
        shown=await artifacts.shown_artifacts(current.api, job),
        tuning=await tuning_progress(current.api, job),
        live=live_state(job),
    )


@router.get("/runs/{job_id}/live.json")
async def run_live(current: PageDep, job_id: str, logs: str = "") -> Response:
    """``logs``: tasks (comma-separated) whose log the page wants besides the running ones'
    (those that ran at its last look, for their last lines)."""
    job = await current.api.get_job(job_id)
    live = live_state(job)
    wanted = {name for name, task in live["tasks"].items() if task["state"] in ACTIVE}
    live["logs"] = await log_tails(current.api, job, wanted | set(filter(None, logs.split(","))))
    progress = await tuning_progress(current.api, job)
    if progress:
        live["tuning"] = {k: progress[k] for k in ("state", "total", "error")} | {"done": len(progress["epochs"])}
    live["artifacts"] = len(
        [1 for _, _, a in artifacts.task_artifacts(job) if a.get("schemaTitle") in artifacts.RENDERED]
    )
    return JSONResponse(live)


@router.get("/runs/{job_id}/artifacts")
async def run_artifacts_fragment(current: PageDep, job_id: str) -> Response:
    """The rendered artifacts alone: the script swaps them in as tasks finish."""
    job = await current.api.get_job(job_id)
    return current.render("run_artifacts.html", job_id=job_id, shown=await artifacts.shown_artifacts(current.api, job))


@router.get("/runs/{job_id}/tuning")
async def run_tuning_fragment(current: PageDep, job_id: str) -> Response:
    """The tuning job's progress alone: the script swaps it in while the job trains."""
    job = await current.api.get_job(job_id)
    return current.render("run_tuning.html", tuning=await tuning_progress(current.api, job))


@router.get("/runs/{job_id}/artifact")
async def run_artifact_html(current: PageDep, job_id: str, uri: str) -> Response:
    """An HTML artifact of this run (the evaluation report), for a sandboxed frame: only
    URIs the run lists as its artifacts, read through the Cloud Storage API."""
    job = await current.api.get_job(job_id)
    if uri not in artifacts.artifact_uris(job):
        return Response("not an artifact of this run", status_code=404, media_type="text/plain")
    body = await current.api.read_object(uri)
    return Response(body, media_type="text/html; charset=utf-8", headers={"Content-Security-Policy": ARTIFACT_CSP})


@router.get("/runs/{job_id}/cancel")
async def cancel_confirm(current: PageDep, job_id: str) -> Response:
    job = await current.api.get_job(job_id)
    name = job.get("displayName") or job_id
    return current.render(
        "confirm.html",
        question=f"Cancel run {name}?",
        detail="Its running task is stopped, and a tuning job it started is cancelled too.",
        action=f"/console/runs/{job_id}/cancel",
        button="Yes, cancel the run",
        back=f"/console/runs/{job_id}",
    )


@router.post("/runs/{job_id}/cancel")
async def cancel_run(current: ActionDep, job_id: str) -> Response:
    await current.api.cancel_job(job_id)
    return RedirectResponse(f"/console/runs/{job_id}", status_code=303)
