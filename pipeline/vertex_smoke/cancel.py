"""Check 4: cancelling a run cancels its tuning job. A second run is cancelled while
``wait-for-tuning`` waits, and its tuning job must end ``JOB_STATE_CANCELLED`` by itself (the
SIGTERM path of components/entrypoint.py and components/wait_for_tuning.py). That run plans
``CANCEL_EPOCHS`` epochs so that its job is still training when it is cancelled on any back end.
A job the cancel missed is cancelled by vertex-smoke, and the check fails."""

from dataclasses import dataclass

from pipeline.params import parse_assignments
from pipeline.vertex import console, console_url
from pipeline.vertex_smoke import session
from pipeline.vertex_smoke.checklist import CHECK_TITLES, Check, not_run
from pipeline.vertex_smoke.observe import TaskView, error_line, find_task, minutes
from pipeline.vertex_smoke.plan import (
    CANCEL_EPOCHS,
    PIPELINE_ENDED,
    SETTLE_MIN_S,
    SETTLE_POLL_S,
    TUNING_ENDED,
    tuning_job_url,
)
from pipeline.vertex_smoke.session import Smoke
from pipeline.vertex_smoke.tuning_link import gcp_resources, tuning_jobs_in


def cancel_assignments(assignments: list[str]) -> list[str]:
    """The cancel run's ``key=value``: the smoke run's, with at least ``CANCEL_EPOCHS`` epochs."""
    merged = parse_assignments(list(assignments))
    merged["epoch_count"] = str(max(int(merged.get("epoch_count", 1)), CANCEL_EPOCHS))
    return [f"{name}={value}" for name, value in merged.items()]


def cancel_ready(state: str, tasks: list[TaskView]) -> bool:
    """The cancel run is ready to be cancelled: wait-for-tuning runs (its job exists) or the run ended."""
    wait = find_task(tasks, "wait-for-tuning")
    return state in PIPELINE_ENDED or (wait is not None and wait.state == "RUNNING")


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
        waited = minutes(c.waited_s)
        ended = (
            f"{c.tuning_state} {waited} after the cancel request"
            if c.tuning_state in TUNING_ENDED
            else f"still {c.tuning_state or 'unknown'} after {waited}"
        )
        evidence += [f"{c.tuning_job}: {ended} (bound {minutes(c.bound_s)})", tuning_job_url(c.tuning_job)]
    else:
        evidence.append("its tuning job could not be found")
    if c.cancelled_by_smoke:
        evidence.append("the run's cancel did not stop the tuning job: vertex-smoke cancelled it itself")
    if c.note:
        evidence.append(c.note)
    return Check(4, CHECK_TITLES[4], ok, evidence)


def cancel_check(smoke: Smoke) -> Check:
    """Check 4: a run cancelled while wait-for-tuning waits leaves its job JOB_STATE_CANCELLED."""
    try:
        job = smoke.submit(smoke.names["cancel"], None, cancel_assignments(smoke.assignments))
    except Exception as error:
        return not_run(4, f"the run was not submitted ({error_line(error)})")
    state, tasks, error, _, timed_out = smoke.wait(job, "cancel run", cancel_ready, smoke.cancel_reach_s)
    notes, tuning_job = [], ""
    if find_task(tasks, "launch-tuning"):
        try:
            names, _, job_name = gcp_resources(smoke, job, tasks)
            tuning_job = job_name or next(iter(tuning_jobs_in(names)), "")
        except Exception as error:
            notes.append(f"reading launch-tuning's outputs failed: {error_line(error)}")
    if tuning_job:
        smoke.tuning_jobs.append(tuning_job)
    if state in PIPELINE_ENDED:
        notes.append(f"the run ended {state} before wait-for-tuning ran" + (f": {error}" if error else ""))
    else:
        if timed_out:
            notes.append(f"wait-for-tuning was not running after {minutes(smoke.cancel_reach_s)}")
        else:
            console.print(
                f"wait-for-tuning is running; cancelling the run in {int(smoke.settle_s)} s, or once "
                "its tuning job has trained an epoch (time for its Python to start and install the "
                "SIGTERM handler)",
                highlight=False,
            )
            ended = settle(smoke, tuning_job)
            if ended:
                notes.append(f"its tuning job ended {ended} before the cancel")
        smoke.stop(job)
        console.print(f"cancel requested for {job.resource_name}", highlight=False, markup=False)
    return cancel_row(watch_cancel(smoke, job, tuning_job, "; ".join(notes)))


def settle(smoke: Smoke, tuning_job: str) -> str:
    """Waits ``settle_s`` after wait-for-tuning turned RUNNING, or less once the tuning job
    lists a checkpoint: a job that has trained an epoch has been waited on by a running
    wait-for-tuning for long enough (on Google an epoch takes longer than the settle, so
    there it is always the full wait). Returns the job's state if it ended meanwhile."""
    start = session.clock()
    while (elapsed := session.clock() - start) < smoke.settle_s:
        if tuning_job and elapsed >= SETTLE_MIN_S:
            job = smoke.tuning.tunings.get(name=tuning_job)
            if job.has_ended:
                return job.state.name
            if job.tuned_model and job.tuned_model.checkpoints:
                return ""
        session.sleep(max(0.0, min(SETTLE_POLL_S, smoke.settle_s - elapsed)))
    return ""


def watch_cancel(smoke: Smoke, job, tuning_job: str, note: str) -> CancelObservation:
    """Watches the cancelled run and its tuning job until both ended or ``cancel_end_s``; a job
    still going then is cancelled here (and the check fails: the run's cancel missed it)."""
    start = session.clock()
    run_state = tuning_state = ""
    while True:
        run_state = job.state.name
        if tuning_job:
            tuning_state = smoke.tuning_state(tuning_job)
        elapsed = session.clock() - start
        if run_state in PIPELINE_ENDED and (not tuning_job or tuning_state in TUNING_ENDED):
            break
        if elapsed >= smoke.cancel_end_s:
            break
        console.print(
            f"[{minutes(elapsed):>8}] cancel run: {run_state.replace('PIPELINE_STATE_', '')}"
            + (f" · tuning job {tuning_state}" if tuning_job else ""),
            highlight=False,
            markup=False,
        )
        session.sleep(max(0.0, min(smoke.poll_s, smoke.cancel_end_s - elapsed)))
    cancelled_by_smoke = bool(tuning_job) and tuning_state not in TUNING_ENDED
    if cancelled_by_smoke:
        try:
            smoke.tuning.tunings.cancel(name=tuning_job)
        except Exception as error:
            note = (note + "; " if note else "") + f"cancelling it failed too: {error_line(error)}"
    return CancelObservation(
        run_name=job.resource_name,
        tuning_job=tuning_job,
        run_state=run_state,
        tuning_state=tuning_state,
        waited_s=elapsed,
        bound_s=smoke.cancel_end_s,
        cancelled_by_smoke=cancelled_by_smoke,
        note=note,
    )
