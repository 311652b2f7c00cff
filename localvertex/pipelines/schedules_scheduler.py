"""When a schedule starts runs: ``tick(service, now)``, and the thread that calls it.

The rules are the schema's descriptions of Schedule's fields:

* A fire is due at each cron time from ``nextRunTime`` on (the first at or after
  ``startTime``). Due fires are taken in order, so a server that was stopped for a few
  minutes starts the fires it missed behind schedule ("a next_run_time in the past means the
  runs are being started behind schedule"), each under the limits below. At most
  ``MAX_FIRES_PER_TICK`` per tick, so a long-stopped server with a per-minute cron does not
  spin.
* ``maxConcurrentActiveRunCount``: "the maximum number of active runs ... in a non-terminal
  state at the same time". A fire that finds that many runs of the schedule active is
  **skipped**, or **queued** with ``allowQueueing`` ("new runs will be queued instead of
  skipped"); queued fires start, oldest first, as soon as a run ends.
* ``maxConcurrentRunCount`` bounds start requests in flight ("not the execution of the ...
  jobs created by the requests"). Here a start completes within the tick, so it never
  binds a start; it bounds the queue: a fire that finds that many fires already queued is
  skipped even with ``allowQueueing``.
* ``maxRunCount``: the schedule is COMPLETED when ``startedRunCount`` reaches it (queued
  fires count against it, so it is never exceeded); ``endTime``: COMPLETED once the next
  fire falls after it. Queued fires of a COMPLETED schedule still start ("already scheduled
  runs will be allowed to complete"); a PAUSED schedule holds its queue.
* A start that the PipelineJobs service refuses (an ApiError) is recorded in
  ``lastScheduledRunResponse.runResponse`` and does not count as started.

A run is started with a deterministic id (``run_id``) after the fire is written to the
schedule's file as ``_local.starting``: if the server dies between the two, the restarted
scheduler repeats the start, and 409 ALREADY_EXISTS tells it the run exists, so a fire never
starts two runs.
"""

from __future__ import annotations

import copy
import logging
import re
import threading
from collections.abc import Callable
from datetime import datetime

from ..errors import ApiError
from ..ids import new_id
from .schedules import ACTIVE, COMPLETED, PAUSED, RunStarter, ScheduleService, parse_time, rfc3339
from .schedules_cron import parse_cron

log = logging.getLogger("localvertex.schedules")

MAX_FIRES_PER_TICK = 100
# The label Vertex AI Pipelines sets on every run ("reserved label key ... user set value
# will get overrided", PipelineJob.labels in the discovery document).
BILLING_LABEL = "vertex-ai-pipelines-run-billing-id"
POLL_S = 1.0


def run_id(schedule: dict, fire: datetime) -> str:
    """``<pipelineJobId or pipeline name>-<fire time, UTC>-<schedule id tail>``: unique per
    schedule and fire, at most 63 characters ([a-z0-9-], as the service accepts)."""
    request = schedule["createPipelineJobRequest"]
    prefix = request.get("pipelineJobId") or (
        (request.get("pipelineJob", {}).get("pipelineSpec") or {}).get("pipelineInfo", {}).get("name", "")
    )
    prefix = re.sub("[^-0-9a-z]+", "-", prefix.lower()).strip("-")[:40].strip("-") or "run"
    return f"{prefix}-{fire:%Y%m%d%H%M%S}-{schedule['_local']['id'][-6:]}"


def tick(service: ScheduleService, now: datetime | None = None) -> list[tuple[str, str, str]]:
    """One pass over every schedule at ``now`` (the service's clock if None). Returns the
    events, ``(schedule name, "started" | "queued" | "skipped" | "failed" | "completed",
    fire time or run name)``, for tests and the log."""
    now = now or service.clock()
    events: list[tuple[str, str, str]] = []
    for schedule_id in service.store.ids():
        with service.lock:
            schedule = service.store.get(schedule_id)
            if schedule is None:
                continue  # deleted meanwhile
            before = copy.deepcopy(schedule)
            _step(service, schedule, now, events)
            if schedule != before:
                service.store.put(schedule)
    for name, kind, detail in events:
        log.info("schedule %s: %s %s", name, kind, detail)
    return events


def _step(service: ScheduleService, schedule: dict, now: datetime, events: list) -> None:
    local = schedule["_local"]
    if local.get("starting"):  # a start the server may not have finished before it stopped
        _start(service, schedule, parse_time(local["starting"]), events)
    if schedule["state"] != PAUSED:
        _drain_queue(service, schedule, events)
    if schedule["state"] != ACTIVE or not schedule.get("nextRunTime"):
        return
    cron = parse_cron(schedule["cron"])
    end = parse_time(schedule["endTime"]) if schedule.get("endTime") else None
    fire = parse_time(schedule["nextRunTime"])
    for _ in range(MAX_FIRES_PER_TICK):
        if fire > now:
            break
        if end is not None and fire > end:
            break
        # Advanced before the start is written ahead, so a restart never fires it again.
        schedule["nextRunTime"] = rfc3339(cron.next_after(fire))
        _fire(service, schedule, fire, events)
        fire = parse_time(schedule["nextRunTime"])
        if _run_count_reached(schedule):
            break
    if _run_count_reached(schedule) or (end is not None and fire > end):
        schedule["state"] = COMPLETED
        schedule.pop("nextRunTime", None)
        schedule["updateTime"] = rfc3339(now)
        events.append((schedule["name"], "completed", rfc3339(now)))


def _run_count_reached(schedule: dict) -> bool:
    limit = schedule.get("maxRunCount")
    return limit is not None and int(schedule.get("startedRunCount", 0)) >= int(limit)


def _active_limit_reached(service: ScheduleService, schedule: dict) -> bool:
    limit = schedule.get("maxConcurrentActiveRunCount")
    if limit is None:
        return False
    local = schedule["_local"]
    return service.starter.active(local["project"], local["location"], schedule["name"]) >= int(limit)


def _fire(service: ScheduleService, schedule: dict, fire: datetime, events: list) -> None:
    queue = schedule["_local"]["queue"]
    if not queue and not _active_limit_reached(service, schedule):
        _start(service, schedule, fire, events)
        return
    started = int(schedule.get("startedRunCount", 0))
    room_in_runs = schedule.get("maxRunCount") is None or started + len(queue) < int(schedule["maxRunCount"])
    if schedule.get("allowQueueing") and len(queue) < int(schedule["maxConcurrentRunCount"]) and room_in_runs:
        queue.append(rfc3339(fire))
        events.append((schedule["name"], "queued", rfc3339(fire)))
        return
    schedule["_local"]["skippedRunCount"] = schedule["_local"].get("skippedRunCount", 0) + 1
    events.append((schedule["name"], "skipped", rfc3339(fire)))


def _drain_queue(service: ScheduleService, schedule: dict, events: list) -> None:
    queue = schedule["_local"]["queue"]
    while queue and not _active_limit_reached(service, schedule):
        _start(service, schedule, parse_time(queue.pop(0)), events)


def _start(service: ScheduleService, schedule: dict, fire: datetime, events: list) -> None:
    """Starts the run of ``fire``: written ahead as ``_local.starting`` (see the module doc)."""
    local = schedule["_local"]
    local["starting"] = rfc3339(fire)
    service.store.put(schedule)
    job_id = run_id(schedule, fire)
    parent = f"projects/{local['project']}/locations/{local['location']}"
    body = copy.deepcopy(schedule["createPipelineJobRequest"].get("pipelineJob", {}))
    body.setdefault("displayName", f"{schedule['displayName'][:100]}-{fire:%Y%m%d%H%M%S}")
    body["labels"] = {**body.get("labels", {}), BILLING_LABEL: new_id()}
    try:
        job = service.starter.start(local["project"], local["location"], body, job_id, schedule["name"])
        response, started = job["name"], True
    except ApiError as exc:
        if exc.status == "ALREADY_EXISTS":  # started before a restart cut the bookkeeping short
            response, started = f"{parent}/pipelineJobs/{job_id}", True
        else:
            response, started = f"{exc.status}: {exc.message}"[:1000], False
    except Exception as exc:  # a bug in the service must not stop every schedule
        log.exception("schedule %s: starting a run failed", schedule["name"])
        response, started = f"INTERNAL: {type(exc).__name__}: {exc}"[:1000], False
    local.pop("starting", None)
    schedule["lastScheduledRunResponse"] = {"scheduledRunTime": rfc3339(fire), "runResponse": response}
    if started:
        schedule["startedRunCount"] = str(int(schedule.get("startedRunCount", 0)) + 1)
    events.append((schedule["name"], "started" if started else "failed", response))


class Scheduler:
    """The thread that calls ``tick`` about once a second (at once after a change)."""

    def __init__(self, service: ScheduleService, poll_s: float = POLL_S) -> None:
        self.service = service
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="localvertex-scheduler", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.service.changed.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                tick(self.service)
            except Exception:  # logged; the next tick tries again
                log.exception("scheduler tick failed")
            self.service.changed.wait(self.poll_s)
            self.service.changed.clear()


def starter_from(create: Callable[..., dict], active_count: Callable[[str, str, str], int]) -> RunStarter:
    """A RunStarter over pipelines/service.py's functions (see ScheduleService)."""

    class _Starter:
        def start(self, project: str, location: str, body: dict, job_id: str, schedule_name: str) -> dict:
            return create(project, location, body, job_id, schedule_name=schedule_name)

        def active(self, project: str, location: str, schedule_name: str) -> int:
            return active_count(project, location, schedule_name)

    return _Starter()
