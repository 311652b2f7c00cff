"""``python -m pipeline schedule`` (``make schedule``): create, list, pause, resume or delete a
Vertex AI Pipelines schedule (pipeline/vertex.py builds the run it starts)."""

from pathlib import Path

import typer

from pipeline.commands import options
from pipeline.pipeline import PIPELINE_NAME
from pipeline.terminal import fail
from pipeline.vertex import (
    EXPERIMENT_LABEL,
    cloud_errors,
    console,
    console_url,
    find_schedule,
    init_vertex,
    out,
    prepared_job,
    schedules_table,
)

TEMPLATE = options.template_option()


def schedule_command(
    cron: str | None = typer.Option(
        None, "--cron", help='Cron in UTC, or with a zone: "CRON_TZ=Europe/Berlin 0 2 * * *".'
    ),
    name: str = typer.Option(f"{PIPELINE_NAME}-nightly", "--name", help="Schedule display name."),
    max_concurrent: int = typer.Option(
        1,
        "--max-concurrent",
        min=1,
        help="Runs of this schedule in progress at once; a start due while that many still run is skipped.",
    ),
    bucket: str | None = typer.Option(None, "--bucket", help="gs://BUCKET (needed with --cron)."),
    project: str | None = options.PROJECT,
    location: str = options.LOCATION,
    experiment: str | None = typer.Option(
        None, "--experiment", help="Label the scheduled runs experiment=NAME (see below)."
    ),
    service_account: str | None = typer.Option(None, "--service-account", help="Service account the runs execute as."),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="--no-cache reruns every step of every run."),
    param: list[str] = typer.Option([], "--param", "-p", help="Pipeline parameter as key=value (repeatable)."),
    list_: bool = typer.Option(False, "--list", help="List the schedules in PROJECT/LOCATION."),
    pause: str | None = typer.Option(
        None, "--pause", metavar="NAME", help="Pause a schedule (display name or resource name)."
    ),
    resume: str | None = typer.Option(
        None, "--resume", metavar="NAME", help="Resume a paused schedule (missed runs are not caught up)."
    ),
    delete: str | None = typer.Option(None, "--delete", metavar="NAME", help="Delete a schedule (its past runs stay)."),
    template: Path = TEMPLATE,
):
    """Create, list, pause, resume or delete a Vertex AI Pipelines schedule.

    Vertex AI does not attach scheduled runs to an experiment: the Schedule API has no
    experiment field (submit --experiment links a run from the client, after creating it).
    With --experiment NAME this command labels every scheduled run experiment=NAME, and
    `compare --experiment NAME` shows those runs next to the experiment's own.
    Each scheduled run tunes a model, and is billed for it.
    """
    actions = [
        flag
        for flag, given in (
            ("--cron", cron),
            ("--list", list_),
            ("--pause", pause),
            ("--resume", resume),
            ("--delete", delete),
        )
        if given
    ]
    if len(actions) != 1:
        fail(
            "give exactly one of --cron, --list, --pause NAME, --resume NAME, --delete NAME"
            + (f" (got {', '.join(actions)})" if actions else "")
        )
    with cloud_errors():
        if not cron:
            aiplatform, project = init_vertex(project, location)
            if list_:
                out.print(schedules_table(aiplatform.PipelineJobSchedule.list(order_by="create_time desc")))
                return
            schedule = find_schedule(aiplatform, pause or resume or delete)
            if pause:
                schedule.pause()
            elif resume:
                schedule.resume()
            else:
                schedule.delete()
            verb = "paused" if pause else "resumed" if resume else "deleted"
            console.print(f"{verb} [bold]{schedule.resource_name}[/bold]", highlight=False)
            return
        if not bucket:
            fail("--cron needs --bucket gs://BUCKET")
        options.require_compiled(template)
        job_options = {"cache": cache, "display_name": name, "trigger": "schedule", "template": template}
        job = prepared_job(project, location, bucket, param, experiment, **job_options)
        # maxConcurrentRunCount alone bounds start requests, not runs still in progress: with
        # tuning waits of hours, only maxConcurrentActiveRunCount keeps nightly runs from overlapping.
        schedule = job.create_schedule(
            cron=cron,
            display_name=name,
            max_concurrent_run_count=max_concurrent,
            max_concurrent_active_run_count=max_concurrent,
            allow_queueing=False,
            service_account=service_account,
        )
        console.print(f"created schedule [bold]{schedule.resource_name}[/bold] ({cron})", highlight=False)
        if experiment:
            console.print(
                f"scheduled runs are labelled {EXPERIMENT_LABEL}={experiment}; "
                f"see them with `compare --experiment {experiment}`",
                highlight=False,
            )
        out.print(console_url(schedule.resource_name), soft_wrap=True, highlight=False)
