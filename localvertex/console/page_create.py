"""Create run: a form generated from a pipeline spec's inputs (a registry template, or the
checked-in compiled YAML), checked as ``make submit`` checks it (run_form.py), sent as a
PipelineJob through the API the way the SDK's ``PipelineJob.submit`` sends it, and linked
to its experiment the way ``submit(experiment=...)`` links it (addContextChildren)."""

from __future__ import annotations

import asyncio
import re
import secrets
from datetime import UTC, datetime

import yaml
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from .api import ApiFailure
from .context import ActionDep, Page, PageDep
from .forms import read_form
from .page_templates import checked_in_yaml, template_spec
from .run_form import RunForm, build_fields, check_run_form

router = APIRouter()

TEMPLATE_URI_RE = re.compile(r"/kfp/[^/]+/[^/]+/[^/]+/([^/]+)/([^/?#]+)$")
CONTEXT_WAIT_S = 20.0  # jobDetail.pipelineRunContext is set just after create, asynchronously


async def load_spec(api, package: str, ref: str) -> dict:
    if package:
        return await template_spec(api, package, ref or "latest")
    return yaml.safe_load(checked_in_yaml())


async def default_values(api) -> dict:
    """project, location and bucket as ``make submit`` fills them from env.sh."""
    try:
        buckets = await api.list_buckets()
    except ApiFailure:
        buckets = []
    values = {"project": api.project, "location": api.location}
    if buckets:
        values["bucket"] = f"gs://{buckets[0]}"
    return values


async def run_again(api, from_run: str) -> tuple[dict, str, str, str]:
    """(parameter values, experiment, package, ref) of a past run, for "Run again": its
    template (from its ``templateUri``) or the checked-in pipeline."""
    job = await api.get_job(from_run)
    match = TEMPLATE_URI_RE.search(job.get("templateUri", ""))
    package, ref = (match.group(1), match.group(2)) if match else ("", "")
    values = dict(job.get("runtimeConfig", {}).get("parameterValues", {}))
    return values, job.get("labels", {}).get("experiment", ""), package, ref


def default_display_name(spec: dict) -> str:
    return f"{pipeline_name(spec)}-{datetime.now(UTC):%Y%m%d-%H%M%S}"


def pipeline_name(spec: dict) -> str:
    return (spec.get("pipelineInfo") or {}).get("name") or "pipeline"


@router.get("/create")
async def create_page(current: PageDep, package: str = "", ref: str = "", from_run: str = "") -> Response:
    prefill, experiment = await default_values(current.api), None
    if from_run:
        values, experiment, package, ref = await run_again(current.api, from_run)
        prefill.update(values)
    spec = await load_spec(current.api, package, ref)
    fields = await asyncio.to_thread(build_fields, spec, prefill)
    run = RunForm(
        fields,
        display_name=default_display_name(spec),
        experiment=experiment or f"{pipeline_name(spec)}-runs",
        pipeline=pipeline_name(spec),
    )
    packages = [p["name"].rsplit("/", 1)[-1] for p in await quiet_packages(current.api)]
    return current.render("create.html", run=run, package=package, ref=ref, spec=spec, packages=packages)


async def quiet_packages(api) -> list[dict]:
    """The registry's packages, or none when the registry cannot be read (the form still works)."""
    try:
        return await api.list_packages()
    except ApiFailure:
        return []


async def submitted_run_form(api, form, default_ref: str):
    """(package, ref, spec, RunForm) of a posted run form: the template it names and the values
    the user gave (the create-run and new-schedule pages post the same fields)."""
    package, ref = str(form.get("package") or ""), str(form.get("ref") or default_ref)
    spec = await load_spec(api, package, ref)
    fields = await asyncio.to_thread(build_fields, spec)
    run = RunForm(
        fields,
        display_name=str(form.get("display_name") or "").strip() or default_display_name(spec),
        experiment=str(form.get("experiment") or "").strip(),
        labels_text=str(form.get("labels") or ""),
        enable_caching=bool(form.get("enable_caching")),
        submitted={f.name: form.get(f.name) for f in fields if form.get(f.name) is not None},
        pipeline=pipeline_name(spec),
    )
    return package, ref, spec, run


@router.post("/create")
async def create_run(current: ActionDep, request: Request) -> Response:
    form = await read_form(request)
    package, ref, spec, run = await submitted_run_form(current.api, form, default_ref="")
    values, labels = await asyncio.to_thread(check_run_form, run)
    if not run.ok:
        return _form_again(current, run, package, ref, spec)
    body = job_body(current, spec, run, values, labels, package, ref)
    try:
        job = await current.api.create_job(body, job_id(spec))
    except ApiFailure as failure:
        run.errors["form"] = f"The API refused the run ({failure.status}): {failure.message}"
        return _form_again(current, run, package, ref, spec)
    new_id = job["name"].rsplit("/", 1)[-1]
    if run.experiment:
        await link_experiment(current.api, run.experiment, new_id)
    return RedirectResponse(f"/console/runs/{new_id}", status_code=303)


def _form_again(current: Page, run: RunForm, package: str, ref: str, spec: dict) -> Response:
    return current.render("create.html", 400, run=run, package=package, ref=ref, spec=spec, packages=[])


def job_id(spec: dict) -> str:
    """``<pipeline>-<UTC time>-<4 hex>``: the SDK's id plus a suffix, so a double click is two runs."""
    name = re.sub(r"[^a-z0-9-]+", "-", pipeline_name(spec).lower()).strip("-")[:40] or "pipeline"
    return f"{name}-{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(2)}"


def job_body(
    current: Page,
    spec: dict,
    run: RunForm,
    values: dict,
    labels: dict,
    package: str,
    ref: str,
    trigger: str = "console",
) -> dict:
    """The PipelineJob as ``aiplatform.PipelineJob(...).submit()`` sends it: the spec itself,
    the output directory (``<bucket>/pipeline_root``, as submit's pipeline_root), the values,
    labels (pipeline, trigger, experiment) and, from a template, its URI."""
    bucket = values.get("bucket") or _field_default(run, "bucket") or ""
    root = spec.get("defaultPipelineRoot") or (f"{bucket.rstrip('/')}/pipeline_root" if bucket else "")
    all_labels = {"pipeline": re.sub(r"[^a-z0-9_-]", "-", pipeline_name(spec).lower())[:63], "trigger": trigger}
    if run.experiment:
        all_labels["experiment"] = run.experiment
    body = {
        "displayName": run.display_name,
        "pipelineSpec": spec,
        "labels": {**labels, **all_labels},
        "runtimeConfig": {"parameterValues": values, **({"gcsOutputDirectory": root} if root else {})},
    }
    if not run.enable_caching:
        _disable_caching(body["pipelineSpec"])
    if package:
        body["templateUri"] = current.api.template_uri(package, ref or "latest")
    return body


def _field_default(run: RunForm, name: str):
    return next((f.default for f in run.fields if f.name == name), None)


def _disable_caching(spec: dict) -> None:
    """``enable_caching=False``: the SDK turns every task's cache off in the spec it sends."""
    for component in [spec.get("root", {})] + list(spec.get("components", {}).values()):
        for task in component.get("dag", {}).get("tasks", {}).values():
            task.setdefault("cachingOptions", {})["enableCache"] = False


async def link_experiment(api, experiment: str, new_id: str) -> None:
    """As ``PipelineJob.submit(experiment=)``: the experiment's context (created if missing)
    gets the run's ``system.PipelineRun`` context as a child, once the API has set it."""
    experiment_context = await api.ensure_experiment(experiment)
    deadline = asyncio.get_running_loop().time() + CONTEXT_WAIT_S
    while True:
        job = await api.get_job(new_id)
        run_context = job.get("jobDetail", {}).get("pipelineRunContext", {}).get("name")
        if run_context:
            await api.add_context_child(experiment_context, run_context)
            return
        if asyncio.get_running_loop().time() > deadline:
            raise ApiFailure(504, f"run {new_id} was created, but its run context never appeared to link it")
        await asyncio.sleep(0.2)
