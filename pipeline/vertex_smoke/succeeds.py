"""Check 1: a run with the smallest parameters (``SMOKE_PARAMS``) succeeds within a bounded
wait. Checks 2 and 3 look at the same run (experiment.py, tuning_link.py)."""

from dataclasses import dataclass

from pipeline.vertex import console_url
from pipeline.vertex_smoke.checklist import CHECK_TITLES, Check, not_run
from pipeline.vertex_smoke.experiment import experiment_check
from pipeline.vertex_smoke.observe import error_line, find_task, minutes
from pipeline.vertex_smoke.plan import PIPELINE_ENDED
from pipeline.vertex_smoke.session import Smoke
from pipeline.vertex_smoke.tuning_link import tuning_link_check


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
        f"{run.name}: {run.state} after {minutes(run.elapsed_s)} (bound {minutes(run.timeout_s)})",
        console_url(run.name),
    ]
    failed = [t for t in run.tasks if t.state == "FAILED"]
    evidence += [f"task {t.name} FAILED: {t.error}".rstrip(": ") for t in failed]
    if run.error:
        evidence.append(f"error: {run.error}")
    if run.cancelled_at_bound:
        evidence.append("still running at the bound: vertex-smoke cancelled it")
    return Check(1, CHECK_TITLES[1], ok, evidence)


def run_checks(smoke: Smoke) -> list[Check]:
    """Checks 1-3: the run succeeds, is in its experiment, and names its tuning job."""
    try:
        job = smoke.submit(smoke.names["run"], smoke.experiment)
    except Exception as error:
        reason = f"the run was not submitted ({error_line(error)})"
        return [not_run(1, reason), not_run(2, reason), not_run(3, reason)]
    state, tasks, error, elapsed, timed_out = smoke.wait(
        job, "smoke run", lambda s, _: s in PIPELINE_ENDED, smoke.run_timeout_s
    )
    launch = find_task(tasks, "launch-tuning")
    if launch and launch.job_name:
        smoke.tuning_jobs.append(launch.job_name)
    if timed_out:
        smoke.stop(job)
        smoke.cancel_tuning_jobs()
    checks = [
        run_row(
            RunObservation(
                name=job.resource_name,
                state=state,
                elapsed_s=elapsed,
                timeout_s=smoke.run_timeout_s,
                tasks=tuple(tasks),
                error=error,
                cancelled_at_bound=timed_out,
            )
        )
    ]
    checks.append(experiment_check(smoke, job))
    checks.append(tuning_link_check(smoke, job, tasks))
    return checks
