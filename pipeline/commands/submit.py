"""``python -m pipeline submit`` (``make submit``): one run on Vertex AI Pipelines, optionally
linked to an Experiment (pipeline/vertex.py builds and sends it)."""

from pathlib import Path

import typer

from pipeline.commands import options
from pipeline.vertex import (
    cloud_errors,
    console,
    console_url,
    out,
    prepared_job,
)

TEMPLATE = options.template_option()


def submit_command(
    bucket: str = typer.Option(
        ..., "--bucket", help="gs://BUCKET for data and pipeline_root (gs://BUCKET/pipeline_root)."
    ),
    project: str | None = options.PROJECT,
    location: str = options.LOCATION,
    experiment: str | None = typer.Option(
        None, "--experiment", help="Vertex AI Experiment to link the run to (created if missing)."
    ),
    service_account: str | None = typer.Option(
        None, "--service-account", help="Service account the run executes as (default: the Compute Engine default SA)."
    ),
    cache: bool = typer.Option(
        True,
        "--cache/--no-cache",
        help="--no-cache reruns every step; by default data steps are cached and tuning/evaluation never are.",
    ),
    param: list[str] = typer.Option(
        [], "--param", "-p", help="Pipeline parameter as key=value (repeatable), e.g. -p num_images=400."
    ),
    display_name: str | None = typer.Option(
        None, "--display-name", help="Run display name (default: visual-defect-sft-YYYYMMDD-HHMMSS, UTC)."
    ),
    template: Path = TEMPLATE,
):
    """Submit one run to Vertex AI Pipelines (optionally in an Experiment) and print its console link."""
    options.require_compiled(template)
    with cloud_errors():
        job_options = {"cache": cache, "display_name": display_name, "template": template}
        job = prepared_job(project, location, bucket, param, experiment, **job_options)
        job.submit(service_account=service_account, experiment=experiment)
        console.print(
            f"submitted [bold]{job.resource_name}[/bold]"
            + (f" to experiment [bold]{experiment}[/bold]" if experiment else ""),
            highlight=False,
        )
        out.print(console_url(job.resource_name), soft_wrap=True, highlight=False)
