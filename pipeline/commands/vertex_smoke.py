"""``python -m pipeline vertex-smoke`` (``make vertex-smoke``): the smallest real run on Vertex AI,
then the checklist of what only Vertex AI shows. The checks are in pipeline/vertex_smoke/ (one
module each); here are the options, the cost stated first, the confirmation and the checklist's output.
"""

import os
import sys
from pathlib import Path

import typer

from pipeline.commands import options
from pipeline.terminal import fail
from pipeline.vertex import check_experiment_name, cloud_errors, console, init_vertex, out
from pipeline.vertex_smoke.checklist import Check, checklist_lines
from pipeline.vertex_smoke.cost import cost_lines, estimate_cost
from pipeline.vertex_smoke.plan import (
    CANCEL_END_MIN,
    CANCEL_REACH_MIN,
    DEFAULT_EXPERIMENT,
    RUN_TIMEOUT_MIN,
    ci_refusal,
    confirmation_refusal,
    smoke_assignments,
    smoke_parameters,
)
from pipeline.vertex_smoke.runner import run_all
from pipeline.vertex_smoke.session import Smoke, tuning_client

TEMPLATE = options.template_option()


def print_checklist(checks: list[Check]) -> None:
    """The checklist on stdout: ✓ rows green, ✗ rows red, evidence as it is (never read as markup)."""
    from rich.text import Text

    for line in checklist_lines(checks):
        style = "bold green" if line.startswith("✓") else "bold red" if line.startswith("✗") else None
        out.print(Text(line, style=style), soft_wrap=True)


def smoke_command(
    bucket: str = typer.Option(..., "--bucket", help="gs://BUCKET for data and pipeline_root."),
    project: str | None = typer.Option(None, "--project", help="Google Cloud project (default: that of your ADC)."),
    location: str = options.LOCATION,
    experiment: str | None = typer.Option(
        None, "--experiment", help=f"Experiment the run is linked to (default {DEFAULT_EXPERIMENT})."
    ),
    service_account: str | None = typer.Option(None, "--service-account", help="Service account the runs execute as."),
    param: list[str] = typer.Option([], "--param", "-p", help="Override a smoke parameter, key=value (repeatable)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Start without asking (the cost is printed first)."),
    run_timeout: int = typer.Option(
        RUN_TIMEOUT_MIN, "--run-timeout", min=1, help="Minutes the successful run may take."
    ),
    cancel_reach: int = typer.Option(
        CANCEL_REACH_MIN, "--cancel-reach-timeout", min=1, help="Minutes for the cancel run to reach wait-for-tuning."
    ),
    cancel_end: int = typer.Option(
        CANCEL_END_MIN, "--cancel-end-timeout", min=1, help="Minutes for its tuning job to end once cancelled."
    ),
    template: Path = TEMPLATE,
):
    """Smallest real run on Vertex AI, then check what only Vertex AI shows (billed: asks first).

    Checks: the run succeeds; it is in its experiment; its gcp_resources names an existing
    tuning job; a cancelled run's tuning job ends JOB_STATE_CANCELLED; a schedule is created
    with maxConcurrentActiveRunCount=1, paused and deleted. Prints a ✓/✗ checklist with the
    resource names and console links; exit code 1 if any check fails. Never runs with CI=true.
    """
    refusal = ci_refusal(os.environ)
    if refusal:
        fail(refusal, 2)
    options.require_compiled(template)
    experiment = experiment or DEFAULT_EXPERIMENT
    from google.cloud.aiplatform import initializer

    with cloud_errors():
        check_experiment_name(experiment)
        smoke_parameters(project or "checking", location, bucket, param, template)  # fail before auth
        aiplatform, project = init_vertex(project, location)  # ADC, or one line saying how to log in
        credentials = initializer.global_config.credentials
        params = smoke_parameters(project, location, bucket, param, template)
    estimate = estimate_cost(params)
    console.print(
        f"vertex-smoke on [bold]{project}[/bold] ({location}): a schedule (deleted again), two "
        f"runs of {params['num_images']} images, two tuning jobs (the second cancelled).",
        highlight=False,
    )
    for line in cost_lines(estimate):
        console.print(f"  {line}", highlight=False, markup=False)
    console.print(
        f"  Bounded: at most ~{run_timeout + cancel_reach + cancel_end + 5} minutes; "
        "a run or job still going at its bound is cancelled.",
        highlight=False,
        markup=False,
    )
    refusal = confirmation_refusal(yes, sys.stdin.isatty())
    if refusal:
        fail(refusal, 2)
    if not yes and not typer.confirm("Start the smoke test?", default=False, err=True):
        fail("not started", 1)
    with cloud_errors():
        smoke = Smoke(
            aiplatform,
            tuning_client(project, location, credentials),
            project=project,
            location=location,
            bucket=bucket,
            experiment=experiment,
            service_account=service_account,
            assignments=smoke_assignments(param),
            template=template,
            credentials=credentials,
            run_timeout_s=run_timeout * 60,
            cancel_reach_s=cancel_reach * 60,
            cancel_end_s=cancel_end * 60,
        )
        checks = run_all(smoke)
    print_checklist(checks)
    if not all(c.ok for c in checks):
        raise typer.Exit(1)
