"""What vertex-smoke creates and how long it waits: the smallest run's parameters, the names of
its runs and schedule, the bounds of every wait, and when it refuses to start (all pure)."""

import os
from pathlib import Path

from pipeline.params import ParameterError, parse_assignments, resolve
from pipeline.pipeline import COMPILED_YAML, PIPELINE_NAME
from pipeline.vertex import run_parameters

# The smallest run worth checking: 40 synthesized images split 32/4/4 (every class trained on),
# one epoch, the smallest adapter, two evaluation calls at a time. Users may override any of
# these with --param (the estimate follows).
SMOKE_PARAMS = {"num_images": 40, "epoch_count": 1, "adapter_size": 1, "eval_concurrency": 2}
TRIGGER = "smoke"
DEFAULT_EXPERIMENT = f"{PIPELINE_NAME}-smoke"

# Bounds of the waits (minutes), overridable on the command line.
RUN_TIMEOUT_MIN = 180  # the whole successful run, tuning included
CANCEL_REACH_MIN = 60  # the cancel run reaching wait-for-tuning (data steps, launch, pod start)
CANCEL_END_MIN = 20  # the tuning job ending after the run was cancelled
SETTLE_S = 120  # after wait-for-tuning turns RUNNING: image pull, pip install, handler installed
POLL_S = 30
HEARTBEAT_S = 600  # a progress line at least this often, even when nothing changed
SETTLE_POLL_S = 5  # how often the settle looks at the tuning job
SETTLE_MIN_S = 10  # the settle never ends sooner, whatever the job reports
# Epochs the cancel run plans (at least): its tuning job must still be training when the run is
# cancelled, up to ~3 minutes after wait-for-tuning starts. It is cancelled then, so it trains
# (and is billed) for those minutes only; vertex-smoke cancels it itself at the latest after
# --cancel-end-timeout. VERTEX_SMOKE_CANCEL_EPOCHS raises it where epochs take seconds (the
# local twin trains 32 small images 20 times in well under a minute on an idle machine).
CANCEL_EPOCHS = int(os.environ.get("VERTEX_SMOKE_CANCEL_EPOCHS") or 20)

PIPELINE_ENDED = {"PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED"}
TUNING_ENDED = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}


def ci_refusal(environ) -> str | None:
    """Why this command must not run here (``CI`` set to a true value), or None."""
    value = (environ.get("CI") or "").strip().lower()
    if value in ("true", "1", "yes"):
        return (
            f"vertex-smoke starts billed tuning jobs on a real Google Cloud project and never runs in CI "
            f"(CI={environ.get('CI')} is set); run `make vertex-smoke` by hand from a terminal"
        )
    return None


def confirmation_refusal(yes: bool, interactive: bool) -> str | None:
    """Why the command cannot ask for confirmation (no --yes, stdin not a terminal), or None."""
    if yes or interactive:
        return None
    return (
        "vertex-smoke is billed and asks for confirmation, but stdin is not a terminal: "
        "read the cost above and pass --yes (make vertex-smoke ARGS=--yes) to start it"
    )


def smoke_assignments(extra: list[str] = ()) -> list[str]:
    """``key=value`` of the smoke run: ``SMOKE_PARAMS`` with the user's ``--param`` over them.

    Raises:
        ParameterError: a malformed item, or ``dataset_uri`` (the estimate needs synthesized images).
    """
    overrides = parse_assignments(list(extra))
    if overrides.get("dataset_uri", "").strip():
        raise ParameterError(
            "--param dataset_uri=...: vertex-smoke runs on synthesized images "
            "(its cost estimate counts them); use `make submit` for your own images"
        )
    merged = {name: str(value) for name, value in SMOKE_PARAMS.items()}
    merged.update(overrides)
    return [f"{name}={value}" for name, value in merged.items()]


def smoke_parameters(
    project: str, location: str, bucket: str, extra: list[str] = (), template: Path = COMPILED_YAML
) -> dict:
    """Every parameter of the smoke run (compiled defaults included), checked and typed."""
    sent = run_parameters(project, location, bucket, smoke_assignments(extra), template)
    return resolve(sent, template)


def display_names(stamp: str) -> dict[str, str]:
    """Display names of what the smoke test creates, all starting ``visual-defect-sft-smoke-``."""
    prefix = f"{PIPELINE_NAME}-smoke"
    return {
        "run": f"{prefix}-run-{stamp}",
        "cancel": f"{prefix}-cancel-{stamp}",
        "schedule": f"{prefix}-schedule-{stamp}",
    }


def tuning_job_url(resource_name: str) -> str:
    """Console link of ``projects/P/locations/L/tuningJobs/ID`` (the format of vertexai's SDK)."""
    parts = resource_name.split("/")
    fields = dict(zip(parts[0::2], parts[1::2], strict=False))
    return (
        f"https://console.cloud.google.com/vertex-ai/generative/language/locations/{fields.get('locations')}"
        f"/tuning/tuningJob/{fields.get('tuningJobs')}?project={fields.get('projects')}"
    )


def experiment_url(experiment: str, project: str, location: str) -> str:
    """Console link of an experiment (the format of aiplatform's ``Experiment.dashboard_url``)."""
    return (
        f"https://console.cloud.google.com/vertex-ai/experiments/locations/{location}/experiments/"
        f"{experiment}?project={project}"
    )
