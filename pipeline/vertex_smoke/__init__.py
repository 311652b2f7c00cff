"""``vertex-smoke``: the smallest real run on Vertex AI, then the checks only Vertex AI can show.

What the offline tests cannot prove, this command checks on a real project and prints as a
checklist (✓/✗, each with its evidence: resource names and console links):

1. a run with the smallest parameters (``SMOKE_PARAMS``) succeeds within a bounded wait;
2. the run is linked to its Vertex AI Experiment (``get_experiment_df`` lists it);
3. the run's ``launch-tuning`` task names its tuning job in ``gcp_resources`` and that job exists;
4. cancelling a run cancels its tuning job: a second run is cancelled while ``wait-for-tuning``
   waits, and its tuning job must end ``JOB_STATE_CANCELLED`` (the SIGTERM path of
   ``components/entrypoint.py`` and ``components/wait_for_tuning.py``). That run plans
   ``CANCEL_EPOCHS`` epochs so that its job is still training when it is cancelled on any
   backend: a one-epoch job on 32 examples outlasts the settle time on Google (minutes of
   set-up alone), but not on the local Vertex AI, which trains it in under a minute;
5. a schedule can be created (paused at once, first start a year ahead, one run at most),
   carries ``maxConcurrentActiveRunCount=1``, and can be paused and deleted.

It is billed (two tuning jobs, one cancelled early, and the evaluation calls), so it states the
cost first and asks for confirmation unless ``--yes``; it refuses to run in CI (``CI=true``)
and without Application Default Credentials. Every wait is bounded; a run or tuning job still
going at its bound is cancelled by this command, so nothing goes on billing unseen.

Every request and every checklist row is built by a pure function here (tested offline in
tests/test_vertex_smoke.py); the ``Smoke`` class only sends them and observes.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer

from components.labels import DEFECT_TYPES, LABELS
from pipeline.params import ParameterError, parse_assignments, resolve
from pipeline.pipeline import COMPILED_YAML, PIPELINE_NAME, TASK_TITLES
from pipeline.terminal import fail
from pipeline.vertex import (
    build_job,
    check_experiment_name,
    cloud_errors,
    console,
    console_url,
    init_vertex,
    out,
    pipeline_root,
    run_parameters,
)
from platform_facts.gemini import image_token_count, text_token_count, tuning_prices

# --------------------------------------------------------------------------- settings

# The smallest run worth checking: 40 synthesized images split 32/4/4 (every class trained on),
# one epoch, the smallest adapter, two evaluation calls at a time. Users may override any of
# these with --param (the estimate follows).
SMOKE_PARAMS = {"num_images": 40, "epoch_count": 1, "adapter_size": 1, "eval_concurrency": 2}
TRIGGER = "smoke"
DEFAULT_EXPERIMENT = f"{PIPELINE_NAME}-smoke"

# Token arithmetic and prices are Google's facts, in platform_facts/gemini.py (with sources).
PRICE_SOURCE = tuning_prices()["source"]
TUNING_PRICE_PER_M_TOKENS: dict[str, float] = dict(tuning_prices()["usd_per_million_training_tokens"])
PRICING_URL = tuning_prices()["source"]

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

# Monotonic clock and sleep, replaced by the tests.
_clock: Callable[[], float] = time.monotonic
_sleep: Callable[[float], None] = time.sleep


# --------------------------------------------------------------------------- refusals


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


# --------------------------------------------------------------------------- requests (pure)


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


def cancel_assignments(assignments: list[str]) -> list[str]:
    """The cancel run's ``key=value``: the smoke run's, with at least ``CANCEL_EPOCHS`` epochs."""
    merged = parse_assignments(list(assignments))
    merged["epoch_count"] = str(max(int(merged.get("epoch_count", 1)), CANCEL_EPOCHS))
    return [f"{name}={value}" for name, value in merged.items()]


def display_names(stamp: str) -> dict[str, str]:
    """Display names of what the smoke test creates, all starting ``visual-defect-sft-smoke-``."""
    prefix = f"{PIPELINE_NAME}-smoke"
    return {
        "run": f"{prefix}-run-{stamp}",
        "cancel": f"{prefix}-cancel-{stamp}",
        "schedule": f"{prefix}-schedule-{stamp}",
    }


def schedule_arguments(display_name: str, now: datetime, service_account: str | None = None) -> dict:
    """``PipelineJob.create_schedule`` arguments of a schedule that never starts a run.

    Its first start is a year ahead (``start_time``), it is paused right after creation, and it
    may start one run at most; like ``make schedule``, at most one run may be in progress.
    """
    start = (now.astimezone(UTC) + timedelta(days=365)).replace(microsecond=0)
    return {
        "cron": "0 0 1 1 *",
        "display_name": display_name,
        "start_time": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "max_run_count": 1,
        "max_concurrent_run_count": 1,
        "max_concurrent_active_run_count": 1,
        "allow_queueing": False,
        "service_account": service_account,
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


# --------------------------------------------------------------------------- cost (pure)


@dataclass(frozen=True)
class CostEstimate:
    base_model: str
    train_examples: int
    tokens_per_example: int
    epochs: int
    training_tokens: int  # per tuning job
    price_per_m_tokens: float | None
    usd: float | None  # per tuning job
    test_images: int
    eval_calls: int  # generateContent calls of one evaluation
    eval_input_tokens: int  # per call
    eval_output_tokens: int  # per call


def _text_tokens(text: str) -> int:
    return text_token_count(len(text.strip()))


def split_counts(num_images: int, train_fraction: float, validation_fraction: float) -> tuple[int, int, int]:
    """Train, validation and test sizes as ``split_manifest`` targets them (e.g. 32/4/4 of 40)."""
    validation = round(num_images * validation_fraction)
    train = round(num_images * train_fraction)
    return train, validation, max(0, num_images - train - validation)


def estimate_cost(params: dict, prices: dict[str, float] | None = None) -> CostEstimate:
    """Billed training tokens (and USD where ``prices`` knows the model) of one tuning job.

    Per example: one image as the base model counts it at ``media_resolution``
    (platform_facts.gemini.image_token_count; 100 px synthesized images) plus the prompt, the system instruction and the expected
    answer as text (characters / 4; the answer averaged over the synthesized class mix), times
    the training examples (80 % of the images by default; more with oversampling) and epochs.
    """
    prices = TUNING_PRICE_PER_M_TOKENS if prices is None else prices
    train, _, test = split_counts(params["num_images"], params["train_fraction"], params["validation_fraction"])
    defect_ratio = params["defect_ratio"]
    if params.get("oversample_rare_classes"):  # every class repeated up to the largest one's count
        largest_share = max(1 - defect_ratio, defect_ratio / len(DEFECT_TYPES))
        train = math.ceil(train * largest_share * (len(DEFECT_TYPES) + 1))
    defect_chars = sum(len(LABELS[t]) for t in DEFECT_TYPES) / len(DEFECT_TYPES)
    label_chars = (1 - defect_ratio) * len(LABELS[None]) + defect_ratio * defect_chars
    label_tokens = text_token_count(label_chars)
    image_tokens = image_token_count(100, 100, params["base_model"], params.get("media_resolution", ""))
    prompt_tokens = image_tokens + _text_tokens(params["prompt"]) + _text_tokens(params.get("system_instruction", ""))
    per_example = prompt_tokens + label_tokens
    epochs = params["epoch_count"]
    tokens = train * per_example * epochs
    price = prices.get(params["base_model"])
    usd = tokens / 1e6 * price if price is not None else None
    calls = test * (2 if params.get("evaluate_base_model") else 1)
    return CostEstimate(
        base_model=params["base_model"],
        train_examples=train,
        tokens_per_example=per_example,
        epochs=epochs,
        training_tokens=tokens,
        price_per_m_tokens=price,
        usd=usd,
        test_images=test,
        eval_calls=calls,
        eval_input_tokens=prompt_tokens,
        eval_output_tokens=label_tokens,
    )


def cost_lines(estimate: CostEstimate, price_source: str = "") -> list[str]:
    """What the user reads before confirming: the tuning estimate, its basis, the other charges."""
    e = estimate
    price_source = price_source or PRICE_SOURCE
    lines = [
        f"Tuning {e.base_model}: {e.train_examples} training examples × ~{e.tokens_per_example} tokens "
        f"({image_token_count(100, 100, e.base_model):,} per image at the default resolution + prompt and "
        "answer at ~4 characters per token) × "
        f"{e.epochs} epoch(s) ≈ {e.training_tokens:,} training tokens per tuning job."
    ]
    if e.usd is not None:
        lines.append(
            f"At ${e.price_per_m_tokens:g} per 1M training tokens ({price_source}): ≈ ${e.usd:.2f} per tuning job "
            f"of {e.epochs} epoch(s), the checked run's. The cancelled run's job plans {max(e.epochs, CANCEL_EPOCHS)} epochs so "
            "that it is still training when cancelled, minutes after it starts; were it never stopped it "
            f"would cost ≈ ${e.usd * max(e.epochs, CANCEL_EPOCHS) / e.epochs:.2f}."
        )
    else:
        lines.append(
            f"No tuning price for {e.base_model} is recorded here (none from a cited source): multiply "
            f"the training tokens by the price per 1M training tokens at {PRICING_URL}. Two tuning jobs "
            f"are started; the second plans {max(e.epochs, CANCEL_EPOCHS)} epochs, so that it is still training "
            "when it is cancelled, minutes after it starts."
        )
    lines.append(
        f"Evaluation calls the tuned endpoint once per test image: {e.eval_calls} call(s) of ~"
        f"{e.eval_input_tokens} input and ~{e.eval_output_tokens} output tokens, billed at "
        f"{e.base_model}'s prediction price; the summary step calls {e.base_model} once."
    )
    lines.append(
        "Also billed: two Vertex AI Pipelines runs and their task machines while they run (wait-for-tuning's "
        "for as long as the tuning), and a few MB in your bucket. The tuned model and its endpoint stay "
        "in the project."
    )
    return lines


# --------------------------------------------------------------------------- observations (pure)


@dataclass(frozen=True)
class TaskView:
    """What the smoke test reads of one ``PipelineTaskDetail``."""

    name: str  # the DAG task key when known (launch-tuning), else the task name as Vertex reports it
    state: str  # SUCCEEDED, RUNNING, ...
    job_name: str = ""  # output:job_name of launch-tuning
    gcp_resources: str = ""  # output:gcp_resources (JSON text)
    error: str = ""


_TITLE_KEYS = {title: key for key, title in TASK_TITLES.items()}


def task_key(task_name: str) -> str:
    """``launch-tuning`` for ``launch-tuning`` or its display title ``4. Launch Gemini tuning``."""
    return _TITLE_KEYS.get(task_name, task_name)


def task_view(detail) -> TaskView:
    """A ``TaskView`` of an aiplatform ``PipelineTaskDetail`` (output parameters come from the
    execution's ``output:NAME`` metadata, as Vertex AI records them)."""
    metadata = dict(detail.execution.metadata) if detail.execution else {}
    return TaskView(
        name=task_key(detail.task_name),
        state=detail.state.name,
        job_name=str(metadata.get("output:job_name") or ""),
        gcp_resources=str(metadata.get("output:gcp_resources") or ""),
        error=(detail.error.message or "") if detail.error else "",
    )


def find_task(tasks: list[TaskView], key: str) -> TaskView | None:
    return next((t for t in tasks if t.name == key), None)


def parse_gcp_resources(text: str) -> list[str]:
    """Resource names in a GCPC ``gcp_resources`` JSON (``.../v1/projects/...`` URIs), [] if none."""
    try:
        resources = json.loads(text).get("resources", []) if text else []
    except (ValueError, AttributeError):
        return []
    return [r["resourceUri"].split("/v1/", 1)[-1] for r in resources if isinstance(r, dict) and r.get("resourceUri")]


def tuning_jobs_in(names: list[str]) -> list[str]:
    return [n for n in names if "/tuningJobs/" in n]


def cancel_ready(state: str, tasks: list[TaskView]) -> bool:
    """The cancel run is ready to be cancelled: wait-for-tuning runs (its job exists) or the run ended."""
    wait = find_task(tasks, "wait-for-tuning")
    return state in PIPELINE_ENDED or (wait is not None and wait.state == "RUNNING")


def _minutes(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s"


def progress_line(label: str, elapsed_s: float, state: str, tasks: list[TaskView]) -> str:
    """One progress line: run state, tasks done, tasks running."""
    known = [t for t in tasks if t.name in TASK_TITLES]
    done = sum(t.state == "SUCCEEDED" for t in known)
    running = [t.name for t in known if t.state == "RUNNING"]
    failed = [t.name for t in known if t.state == "FAILED"]
    parts = [
        f"[{_minutes(elapsed_s):>8}] {label}: {state.replace('PIPELINE_STATE_', '')}",
        f"{done}/{len(TASK_TITLES) - 1} tasks done",
    ]  # promote-champion runs only when the challenger wins
    if running:
        parts.append("running " + ", ".join(running))
    if failed:
        parts.append("failed " + ", ".join(failed))
    return " · ".join(parts)


def progress_key(state: str, tasks: list[TaskView]) -> tuple:
    return state, tuple(sorted((t.name, t.state) for t in tasks))


# --------------------------------------------------------------------------- checklist (pure)


@dataclass
class Check:
    number: int
    title: str
    ok: bool
    evidence: list[str] = field(default_factory=list)


CHECK_TITLES = {
    1: "A smallest run succeeds within the bound",
    2: "The run is linked to its experiment",
    3: "launch-tuning's gcp_resources names a tuning job that exists",
    4: "Cancelling a run leaves its tuning job JOB_STATE_CANCELLED",
    5: "A schedule is created with maxConcurrentActiveRunCount=1, paused and deleted",
}


def not_run(number: int, reason: str) -> Check:
    return Check(number, CHECK_TITLES[number], False, [f"not checked: {reason}"])


@dataclass(frozen=True)
class RunObservation:
    name: str  # resource name
    state: str
    elapsed_s: float
    timeout_s: float
    tasks: tuple = ()
    error: str = ""
    cancelled_at_bound: bool = False


def run_row(run: RunObservation) -> Check:
    ok = run.state == "PIPELINE_STATE_SUCCEEDED"
    evidence = [
        f"{run.name}: {run.state} after {_minutes(run.elapsed_s)} (bound {_minutes(run.timeout_s)})",
        console_url(run.name),
    ]
    failed = [t for t in run.tasks if t.state == "FAILED"]
    evidence += [f"task {t.name} FAILED: {t.error}".rstrip(": ") for t in failed]
    if run.error:
        evidence.append(f"error: {run.error}")
    if run.cancelled_at_bound:
        evidence.append("still running at the bound: vertex-smoke cancelled it")
    return Check(1, CHECK_TITLES[1], ok, evidence)


def experiment_row(
    experiment: str, run_id: str, run_names: list[str], project: str, location: str, error: str = ""
) -> Check:
    """``run_names``: the ``run_name`` column of ``get_experiment_df(experiment)``."""
    ok = run_id in run_names and not error
    if error:
        found = f"get_experiment_df({experiment!r}) failed: {error}"
    elif ok:
        found = f"experiment {experiment} lists run {run_id} (of {len(run_names)} run(s))"
    else:
        found = f"experiment {experiment} does not list run {run_id} ({len(run_names)} run(s) listed)"
    return Check(2, CHECK_TITLES[2], ok, [found, experiment_url(experiment, project, location)])


@dataclass(frozen=True)
class TuningLink:
    gcp_resources_names: tuple = ()  # resource names in launch-tuning's gcp_resources
    source: str = ""  # where gcp_resources was read
    job_name_output: str = ""  # launch-tuning's job_name output
    job_state: str = ""  # the named job's state, "" if it could not be read
    error: str = ""


def tuning_link_row(link: TuningLink) -> Check:
    jobs = tuning_jobs_in(list(link.gcp_resources_names))
    evidence = []
    if not jobs:
        evidence.append(f"no tuningJobs resource in launch-tuning's gcp_resources ({link.source or 'not found'})")
    else:
        evidence.append(f"gcp_resources ({link.source}) names {jobs[0]}")
        if link.job_name_output and link.job_name_output != jobs[0]:
            evidence.append(f"but its job_name output is {link.job_name_output}")
        if link.job_state:
            evidence.append(f"the tuning job exists: {link.job_state}")
        evidence.append(tuning_job_url(jobs[0]))
    if link.error:
        evidence.append(f"error: {link.error}")
    ok = (
        bool(jobs)
        and bool(link.job_state)
        and not link.error
        and (not link.job_name_output or link.job_name_output == jobs[0])
    )
    return Check(3, CHECK_TITLES[3], ok, evidence)


@dataclass(frozen=True)
class CancelObservation:
    run_name: str
    tuning_job: str = ""
    run_state: str = ""  # pipeline state when observed last
    tuning_state: str = ""  # tuning job state when observed last
    waited_s: float = 0.0  # from the cancel request to the tuning job's end (or the bound)
    bound_s: float = 0.0
    cancelled_by_smoke: bool = False  # the job did not end by itself: vertex-smoke cancelled it
    note: str = ""


def cancel_row(c: CancelObservation) -> Check:
    ok = c.tuning_state == "JOB_STATE_CANCELLED" and not c.cancelled_by_smoke
    evidence = [f"{c.run_name}: cancelled, now {c.run_state or 'unknown'}", console_url(c.run_name)]
    if c.tuning_job:
        waited = _minutes(c.waited_s)
        ended = (
            f"{c.tuning_state} {waited} after the cancel request"
            if c.tuning_state in TUNING_ENDED
            else f"still {c.tuning_state or 'unknown'} after {waited}"
        )
        evidence += [f"{c.tuning_job}: {ended} (bound {_minutes(c.bound_s)})", tuning_job_url(c.tuning_job)]
    else:
        evidence.append("its tuning job could not be found")
    if c.cancelled_by_smoke:
        evidence.append("the run's cancel did not stop the tuning job: vertex-smoke cancelled it itself")
    if c.note:
        evidence.append(c.note)
    return Check(4, CHECK_TITLES[4], ok, evidence)


@dataclass(frozen=True)
class ScheduleObservation:
    name: str = ""
    max_concurrent_active_run_count: int = 0
    max_concurrent_run_count: int = 0
    created_state: str = ""
    paused_state: str = ""
    deleted: bool = False
    error: str = ""


def schedule_row(s: ScheduleObservation) -> Check:
    ok = (
        bool(s.name)
        and s.max_concurrent_active_run_count == 1
        and s.paused_state == "PAUSED"
        and s.deleted
        and not s.error
    )
    if not s.name:
        return Check(5, CHECK_TITLES[5], False, [f"not created: {s.error or 'unknown error'}"])
    evidence = [
        f"{s.name}: created {s.created_state or '?'} with maxConcurrentActiveRunCount="
        f"{s.max_concurrent_active_run_count}, maxConcurrentRunCount={s.max_concurrent_run_count}",
        f"paused: {s.paused_state or 'no'}; deleted: {'yes (a GET answers 404)' if s.deleted else 'no'}",
    ]
    if s.error:
        evidence.append(f"error: {s.error}")
    if not s.deleted:
        evidence.append(f"delete it: make schedule ARGS=\"--delete {s.name}\"  ({console_url(s.name)})")
    return Check(5, CHECK_TITLES[5], ok, evidence)


def checklist_lines(checks: list[Check]) -> list[str]:
    """The checklist as text: ``✓ 1. title`` / ``✗ 1. title`` then the evidence, indented."""
    lines = []
    for check in sorted(checks, key=lambda c: c.number):
        lines.append(f"{'✓' if check.ok else '✗'} {check.number}. {check.title}")
        lines += [f"    {item}" for item in check.evidence]
    passed = sum(c.ok for c in checks)
    lines.append(f"{passed}/{len(checks)} checks passed")
    return lines


# --------------------------------------------------------------------------- Vertex AI (sends, observes)


def _error_line(error: BaseException) -> str:
    text = str(getattr(error, "message", "") or error).strip()
    return (f"{type(error).__name__}: " + (text.splitlines()[0][:300] if text else "")).strip()


def tuning_client(project: str, location: str, credentials):
    """google-genai client for tuning jobs (GOOGLE_VERTEX_BASE_URL, if set, points it elsewhere)."""
    from google import genai
    from google.genai import types

    retry = types.HttpRetryOptions(
        attempts=5, initial_delay=1.0, max_delay=30.0, http_status_codes=[408, 429, 500, 502, 503, 504]
    )
    return genai.Client(
        vertexai=True,
        project=project,
        location=location,
        credentials=credentials,
        http_options=types.HttpOptions(retry_options=retry, timeout=60_000),
    )


class Smoke:
    """Runs the five checks against a real project; every wait is bounded."""

    def __init__(
        self,
        aiplatform,
        tuning,
        *,
        project: str,
        location: str,
        bucket: str,
        experiment: str,
        service_account: str | None,
        assignments: list[str],
        template: Path,
        credentials=None,
        run_timeout_s: float = RUN_TIMEOUT_MIN * 60,
        cancel_reach_s: float = CANCEL_REACH_MIN * 60,
        cancel_end_s: float = CANCEL_END_MIN * 60,
        settle_s: float = SETTLE_S,
        poll_s: float = POLL_S,
        now: datetime | None = None,
    ):
        self.aiplatform, self.tuning = aiplatform, tuning
        self.project, self.location, self.bucket = project, location, bucket
        self.experiment, self.service_account = experiment, service_account
        self.assignments, self.template, self.credentials = assignments, template, credentials
        self.run_timeout_s, self.cancel_reach_s, self.cancel_end_s = run_timeout_s, cancel_reach_s, cancel_end_s
        self.settle_s, self.poll_s = settle_s, poll_s
        self.now = now or datetime.now(UTC)
        self.names = display_names(self.now.strftime("%Y%m%d-%H%M%S"))
        self.submitted = []  # PipelineJobs to cancel if the smoke test is interrupted
        self.tuning_jobs = []  # tuning jobs seen, likewise

    # ---- building and sending

    def _job(self, display_name: str, experiment: str | None, assignments: list[str] | None = None):
        job = build_job(
            project=self.project,
            location=self.location,
            bucket=self.bucket,
            assignments=self.assignments if assignments is None else assignments,
            experiment=experiment,
            display_name=display_name,
            trigger=TRIGGER,
            template=self.template,
            credentials=self.credentials,
        )
        # The run ID is its display name: recognizable, and the two runs of one smoke test never
        # share the SDK's default ID (pipeline name + time to the second).
        job.job_id = display_name
        return job

    def _submit(self, display_name: str, experiment: str | None, assignments: list[str] | None = None):
        job = self._job(display_name, experiment, assignments)
        job.submit(service_account=self.service_account, experiment=experiment)
        self.submitted.append(job)
        console.print(
            f"submitted {job.resource_name}\n  {console_url(job.resource_name)}", highlight=False, markup=False
        )
        return job

    def _observe(self, job) -> tuple[str, list[TaskView], str]:
        details = job.task_details  # one GET of the run
        resource = job.gca_resource
        error = resource.error.message if resource.error and resource.error.message else ""
        return resource.state.name, [task_view(d) for d in details], error

    def _wait(self, job, label: str, done: Callable[[str, list[TaskView]], bool], timeout_s: float):
        """Polls the run until ``done(state, tasks)`` or ``timeout_s``, printing progress."""
        start = last_print = _clock()
        last_key = None
        while True:
            state, tasks, error = self._observe(job)
            elapsed = _clock() - start
            key = progress_key(state, tasks)
            if key != last_key or _clock() - last_print >= HEARTBEAT_S:
                console.print(progress_line(label, elapsed, state, tasks), highlight=False, markup=False)
                last_key, last_print = key, _clock()
            if done(state, tasks):
                return state, tasks, error, elapsed, False
            if elapsed >= timeout_s:
                return state, tasks, error, elapsed, True
            _sleep(max(0.0, min(self.poll_s, timeout_s - elapsed)))

    def _stop(self, job) -> None:
        try:
            job.cancel()
        except Exception as error:  # reported; never hides the checklist
            console.print(f"could not cancel {job.resource_name}: {_error_line(error)}", highlight=False, markup=False)

    def _tuning_state(self, name: str) -> str:
        job = self.tuning.tunings.get(name=name)
        return job.state.name if job.state else "JOB_STATE_UNSPECIFIED"

    def _gcp_resources(self, job, tasks: list[TaskView]) -> tuple[list[str], str, str]:
        """(names, where they were read, launch-tuning's job_name output) of the run's launch-tuning."""
        launch = find_task(tasks, "launch-tuning")
        job_name = launch.job_name if launch else ""
        if launch and launch.gcp_resources:
            return parse_gcp_resources(launch.gcp_resources), "task details: output:gcp_resources", job_name
        names, where = self._gcp_resources_in_root(job.resource_name.rsplit("/", 1)[-1])
        return names, where, job_name

    def _gcp_resources_in_root(self, run_id: str) -> tuple[list[str], str]:
        """launch-tuning's executor_output.json under the pipeline root, for a run whose task
        details do not carry output parameters."""
        from google.cloud import storage

        root = pipeline_root(self.bucket)[len("gs://") :]
        bucket_name, _, prefix = root.partition("/")
        glob = f"{prefix}/*/{run_id}/launch-tuning_*/executor_output.json"
        client = storage.Client(project=self.project, credentials=self.credentials)
        for blob in client.list_blobs(bucket_name, prefix=f"{prefix}/", match_glob=glob):
            values = json.loads(blob.download_as_bytes()).get("parameterValues", {})
            return parse_gcp_resources(values.get("gcp_resources", "")), f"gs://{bucket_name}/{blob.name}"
        return [], f"no gs://{bucket_name}/{glob}"

    # ---- the checks

    def schedule_check(self) -> Check:
        """Check 5: create (paused at once, first start a year ahead), read, pause, delete."""
        from google.api_core import exceptions as api_exceptions

        observed = {}
        schedule = None
        try:
            job = self._job(self.names["schedule"], self.experiment)
            schedule = job.create_schedule(**schedule_arguments(self.names["schedule"], self.now, self.service_account))
            observed["name"] = schedule.resource_name
            console.print(f"created schedule {schedule.resource_name}", highlight=False, markup=False)
            created = self.aiplatform.PipelineJobSchedule.get(schedule.resource_name).gca_resource
            observed.update(
                created_state=created.state.name,
                max_concurrent_active_run_count=int(created.max_concurrent_active_run_count),
                max_concurrent_run_count=int(created.max_concurrent_run_count),
            )
            schedule.pause()
            observed["paused_state"] = self.aiplatform.PipelineJobSchedule.get(
                schedule.resource_name
            ).gca_resource.state.name
        except Exception as error:  # becomes a ✗ with its reason
            observed["error"] = _error_line(error)
        finally:
            if schedule is not None:
                try:
                    schedule.delete()
                    try:
                        self.aiplatform.PipelineJobSchedule.get(schedule.resource_name)
                    except api_exceptions.NotFound:
                        observed["deleted"] = True
                except Exception as error:
                    observed["error"] = observed.get("error") or _error_line(error)
        return schedule_row(ScheduleObservation(**observed))

    def cancel_check(self) -> Check:
        """Check 4: a run cancelled while wait-for-tuning waits leaves its job JOB_STATE_CANCELLED."""
        try:
            job = self._submit(self.names["cancel"], None, cancel_assignments(self.assignments))
        except Exception as error:
            return not_run(4, f"the run was not submitted ({_error_line(error)})")
        state, tasks, error, _, timed_out = self._wait(job, "cancel run", cancel_ready, self.cancel_reach_s)
        notes, tuning_job = [], ""
        if find_task(tasks, "launch-tuning"):
            try:
                names, _, job_name = self._gcp_resources(job, tasks)
                tuning_job = job_name or next(iter(tuning_jobs_in(names)), "")
            except Exception as error:
                notes.append(f"reading launch-tuning's outputs failed: {_error_line(error)}")
        if tuning_job:
            self.tuning_jobs.append(tuning_job)
        if state in PIPELINE_ENDED:
            notes.append(f"the run ended {state} before wait-for-tuning ran" + (f": {error}" if error else ""))
        else:
            if timed_out:
                notes.append(f"wait-for-tuning was not running after {_minutes(self.cancel_reach_s)}")
            else:
                console.print(
                    f"wait-for-tuning is running; cancelling the run in {int(self.settle_s)} s, or once "
                    "its tuning job has trained an epoch (time for its Python to start and install the "
                    "SIGTERM handler)",
                    highlight=False,
                )
                ended = self._settle(tuning_job)
                if ended:
                    notes.append(f"its tuning job ended {ended} before the cancel")
            self._stop(job)
            console.print(f"cancel requested for {job.resource_name}", highlight=False, markup=False)
        return cancel_row(self._watch_cancel(job, tuning_job, "; ".join(notes)))

    def _settle(self, tuning_job: str) -> str:
        """Waits ``settle_s`` after wait-for-tuning turned RUNNING, or less once the tuning job
        lists a checkpoint: a job that has trained an epoch has been waited on by a running
        wait-for-tuning for long enough (on Google an epoch takes longer than the settle, so
        there it is always the full wait). Returns the job's state if it ended meanwhile."""
        start = _clock()
        while (elapsed := _clock() - start) < self.settle_s:
            if tuning_job and elapsed >= SETTLE_MIN_S:
                job = self.tuning.tunings.get(name=tuning_job)
                if job.has_ended:
                    return job.state.name
                if job.tuned_model and job.tuned_model.checkpoints:
                    return ""
            _sleep(max(0.0, min(SETTLE_POLL_S, self.settle_s - elapsed)))
        return ""

    def _watch_cancel(self, job, tuning_job: str, note: str) -> CancelObservation:
        start = _clock()
        run_state = tuning_state = ""
        while True:
            run_state = job.state.name
            if tuning_job:
                tuning_state = self._tuning_state(tuning_job)
            elapsed = _clock() - start
            if run_state in PIPELINE_ENDED and (not tuning_job or tuning_state in TUNING_ENDED):
                break
            if elapsed >= self.cancel_end_s:
                break
            console.print(
                f"[{_minutes(elapsed):>8}] cancel run: {run_state.replace('PIPELINE_STATE_', '')}"
                + (f" · tuning job {tuning_state}" if tuning_job else ""),
                highlight=False,
                markup=False,
            )
            _sleep(max(0.0, min(self.poll_s, self.cancel_end_s - elapsed)))
        cancelled_by_smoke = bool(tuning_job) and tuning_state not in TUNING_ENDED
        if cancelled_by_smoke:
            try:
                self.tuning.tunings.cancel(name=tuning_job)
            except Exception as error:
                note = (note + "; " if note else "") + f"cancelling it failed too: {_error_line(error)}"
        return CancelObservation(
            run_name=job.resource_name,
            tuning_job=tuning_job,
            run_state=run_state,
            tuning_state=tuning_state,
            waited_s=elapsed,
            bound_s=self.cancel_end_s,
            cancelled_by_smoke=cancelled_by_smoke,
            note=note,
        )

    def run_checks(self) -> list[Check]:
        """Checks 1-3: the run succeeds, is in its experiment, and names its tuning job."""
        try:
            job = self._submit(self.names["run"], self.experiment)
        except Exception as error:
            reason = f"the run was not submitted ({_error_line(error)})"
            return [not_run(1, reason), not_run(2, reason), not_run(3, reason)]
        state, tasks, error, elapsed, timed_out = self._wait(
            job, "smoke run", lambda s, _: s in PIPELINE_ENDED, self.run_timeout_s
        )
        launch = find_task(tasks, "launch-tuning")
        if launch and launch.job_name:
            self.tuning_jobs.append(launch.job_name)
        if timed_out:
            self._stop(job)
            self._cancel_tuning_jobs()
        checks = [
            run_row(
                RunObservation(
                    name=job.resource_name,
                    state=state,
                    elapsed_s=elapsed,
                    timeout_s=self.run_timeout_s,
                    tasks=tuple(tasks),
                    error=error,
                    cancelled_at_bound=timed_out,
                )
            )
        ]
        run_id = job.resource_name.rsplit("/", 1)[-1]
        try:
            df = self.aiplatform.get_experiment_df(self.experiment, include_time_series=False)
            run_names = [str(n) for n in df["run_name"]] if "run_name" in df.columns else []
            checks.append(experiment_row(self.experiment, run_id, run_names, self.project, self.location))
        except Exception as error:
            checks.append(
                experiment_row(self.experiment, run_id, [], self.project, self.location, error=_error_line(error))
            )
        checks.append(self._tuning_link(job, tasks))
        return checks

    def _tuning_link(self, job, tasks: list[TaskView]) -> Check:
        launch = find_task(tasks, "launch-tuning")
        if launch is None or launch.state != "SUCCEEDED":
            return not_run(3, f"launch-tuning {launch.state if launch else 'did not run'}")
        link = {}
        try:
            names, source, job_name = self._gcp_resources(job, tasks)
            link.update(gcp_resources_names=tuple(names), source=source, job_name_output=job_name)
            jobs = tuning_jobs_in(names)
            if jobs:
                link["job_state"] = self._tuning_state(jobs[0])
        except Exception as error:
            link["error"] = _error_line(error)
        return tuning_link_row(TuningLink(**link))

    def _cancel_tuning_jobs(self) -> None:
        """Cancels the tuning jobs seen so far that have not ended (best effort)."""
        for name in self.tuning_jobs:
            try:
                if self._tuning_state(name) not in TUNING_ENDED:
                    console.print(f"cancelling tuning job {name}", highlight=False, markup=False)
                    self.tuning.tunings.cancel(name=name)
            except Exception as error:  # reported; the caller goes on
                console.print(f"could not cancel {name}: {_error_line(error)}", highlight=False, markup=False)

    def _clean_up(self, why: str) -> None:
        """Cancels the runs this smoke test started that are still going, and their tuning jobs."""
        for job in self.submitted:
            try:
                if job.state.name not in PIPELINE_ENDED:
                    console.print(f"{why}: cancelling {job.resource_name}", highlight=False, markup=False)
                    job.cancel()
            except Exception as error:  # best effort on the way out
                console.print(
                    f"could not cancel {job.resource_name}: {_error_line(error)}", highlight=False, markup=False
                )
        self._cancel_tuning_jobs()

    def _guarded(self, numbers: list[int], phase: Callable[[], list[Check]]) -> list[Check]:
        """A phase's checks, or ✗ for each of them if it broke off with an error (after cleaning up)."""
        try:
            return phase()
        except Exception as error:
            self._clean_up("stopped by an error")
            return [not_run(n, f"stopped by an error: {_error_line(error)}") for n in numbers]

    def run_all(self) -> list[Check]:
        """Schedule first (seconds, free), then the cancel run, then the successful run (its data
        steps are cache hits of the cancel run's). If interrupted, cancels what it started."""
        try:
            checks = self._guarded([5], lambda: [self.schedule_check()])
            checks += self._guarded([4], lambda: [self.cancel_check()])
            checks += self._guarded([1, 2, 3], self.run_checks)
        except BaseException:  # Ctrl-C: nothing goes on running (and billing) unseen
            self._clean_up("interrupted")
            raise
        return sorted(checks, key=lambda c: c.number)


# --------------------------------------------------------------------------- command


def print_checklist(checks: list[Check]) -> None:
    from rich.text import Text

    for line in checklist_lines(checks):
        style = "bold green" if line.startswith("✓") else "bold red" if line.startswith("✗") else None
        out.print(Text(line, style=style), soft_wrap=True)


def smoke_command(
    bucket: str = typer.Option(..., "--bucket", help="gs://BUCKET for data and pipeline_root."),
    project: str | None = typer.Option(None, "--project", help="Google Cloud project (default: that of your ADC)."),
    location: str = typer.Option("us-central1", "--location", help="Vertex AI region (pipelines and tuning)."),
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
    template: Path = typer.Option(COMPILED_YAML, "--template", help="Compiled pipeline YAML.", show_default=False),
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
    if not template.exists():
        fail(f"{template} is missing: run `python -m pipeline compile` first")
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
        checks = smoke.run_all()
    print_checklist(checks)
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Adds ``vertex-smoke`` to the root CLI."""
    app.command("vertex-smoke")(smoke_command)
