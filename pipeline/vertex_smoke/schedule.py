"""Check 5: a schedule is created (paused at once, its first start a year ahead, one run at
most) with ``maxConcurrentActiveRunCount=1``, then paused and deleted; no run ever starts."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pipeline.vertex import console, console_url
from pipeline.vertex_smoke.checklist import CHECK_TITLES, Check
from pipeline.vertex_smoke.observe import error_line
from pipeline.vertex_smoke.session import Smoke


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


def schedule_check(smoke: Smoke) -> Check:
    """Check 5: create (paused at once, first start a year ahead), read, pause, delete."""
    from google.api_core import exceptions as api_exceptions

    observed = {}
    schedule = None
    try:
        job = smoke.job(smoke.names["schedule"], smoke.experiment)
        schedule = job.create_schedule(**schedule_arguments(smoke.names["schedule"], smoke.now, smoke.service_account))
        observed["name"] = schedule.resource_name
        console.print(f"created schedule {schedule.resource_name}", highlight=False, markup=False)
        created = smoke.aiplatform.PipelineJobSchedule.get(schedule.resource_name).gca_resource
        observed.update(
            created_state=created.state.name,
            max_concurrent_active_run_count=int(created.max_concurrent_active_run_count),
            max_concurrent_run_count=int(created.max_concurrent_run_count),
        )
        schedule.pause()
        observed["paused_state"] = smoke.aiplatform.PipelineJobSchedule.get(
            schedule.resource_name
        ).gca_resource.state.name
    except Exception as error:  # becomes a ✗ with its reason
        observed["error"] = error_line(error)
    finally:
        if schedule is not None:
            try:
                schedule.delete()
                try:
                    smoke.aiplatform.PipelineJobSchedule.get(schedule.resource_name)
                except api_exceptions.NotFound:
                    observed["deleted"] = True
            except Exception as error:
                observed["error"] = observed.get("error") or error_line(error)
    return schedule_row(ScheduleObservation(**observed))
