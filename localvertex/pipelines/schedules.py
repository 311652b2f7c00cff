"""Vertex AI Schedules (``projects/P/locations/L/schedules``): the resource, its checks, its
files, and the service the routes call. When runs start is schedules_scheduler.py.

Semantics follow the published schema's descriptions (see schedules_scheduler.py for the
firing rules): ``state`` ACTIVE / PAUSED / COMPLETED; pause and resume only from ACTIVE and
PAUSED respectively (FAILED_PRECONDITION otherwise, and a COMPLETED schedule can be neither
paused, resumed nor updated); a patch reschedules from the update time and drops the fires
queued before it ("All unstarted runs before the update time will be skipped").

Files: ``<data_dir>/schedules/<id>.json``, one schedule each, written whole
(``atomic_write_json``), so schedules and their counters survive a restart. Private state
(queued fire times, the fire being started, counters) lives under ``_local`` and is never
served.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from ..errors import api_error, failed_precondition, invalid, not_found
from ..ids import ID_RE, check_id, new_id
from ..jobs.store import atomic_write_json, read_json_files, read_named_json
from ..paging import parse_page
from .schedules_cron import parse_cron
from .schedules_filter import parse_filter, parse_order_by

log = logging.getLogger("localvertex.schedules")

ACTIVE, PAUSED, COMPLETED = "ACTIVE", "PAUSED", "COMPLETED"
DEFAULT_PAGE_SIZE = 100
MAX_DISPLAY_NAME = 128
MAX_RUN_ID_PREFIX = 40
# Fields a patch may name (snake_case; camelCase masks are converted).
MUTABLE_FIELDS = {
    "display_name": "displayName",
    "cron": "cron",
    "start_time": "startTime",
    "end_time": "endTime",
    "max_run_count": "maxRunCount",
    "max_concurrent_run_count": "maxConcurrentRunCount",
    "max_concurrent_active_run_count": "maxConcurrentActiveRunCount",
    "allow_queueing": "allowQueueing",
    "create_pipeline_job_request": "createPipelineJobRequest",
}


class RunStarter(Protocol):
    """What the scheduler needs from the PipelineJobs service (pipelines/service.py)."""

    def start(self, project: str, location: str, body: dict, job_id: str, schedule_name: str) -> dict: ...

    def active(self, project: str, location: str, schedule_name: str) -> int: ...


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(moment: datetime) -> str:
    """One fixed format (microseconds, ``Z``), so stored times also sort as text."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def public_view(schedule: dict[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in schedule.items() if not k.startswith("_")}


def _int(schedule: dict[str, Any], key: str) -> int | None:
    value = schedule.get(key)
    return None if value in (None, "") else int(value)


def check_schedule(schedule: dict[str, Any], parent: str, now: datetime) -> None:
    """Every rule a created or patched schedule must meet; 400 / 501 naming the field."""
    name = schedule.get("displayName", "")
    if not name.strip():
        raise invalid("display_name is required.")
    if len(name) > MAX_DISPLAY_NAME:
        raise invalid(f"display_name is longer than {MAX_DISPLAY_NAME} characters.")
    parse_cron(schedule.get("cron", ""))
    if "createNotebookExecutionJobRequest" in schedule:
        raise api_error(
            "UNIMPLEMENTED", "The local Vertex AI schedules pipeline runs only (create_pipeline_job_request)."
        )
    request = schedule.get("createPipelineJobRequest")
    if not request:
        raise invalid("create_pipeline_job_request is required: a schedule needs a request to run.")
    if request.get("parent") != parent:
        raise invalid(
            f"create_pipeline_job_request.parent must be the schedule's location {parent!r}, "
            f"got {str(request.get('parent', ''))[:100]!r}."
        )
    job = request.get("pipelineJob") or {}
    if not job.get("pipelineSpec") and not job.get("templateUri"):
        raise invalid("create_pipeline_job_request.pipeline_job needs a pipeline_spec or a template_uri.")
    job_id = request.get("pipelineJobId", "")
    if job_id and (len(job_id) > MAX_RUN_ID_PREFIX or not ID_RE.fullmatch(job_id)):
        # Each run's id is this prefix, the fire time and the schedule (schedules_scheduler.run_id).
        raise invalid(f"create_pipeline_job_request.pipeline_job_id: at most {MAX_RUN_ID_PREFIX} of a-z, 0-9 and -.")
    concurrent = _int(schedule, "maxConcurrentRunCount")
    if concurrent is None or concurrent <= 0:
        raise invalid("max_concurrent_run_count is required and must be positive.")
    for key, field in (
        ("maxRunCount", "max_run_count"),
        ("maxConcurrentActiveRunCount", "max_concurrent_active_run_count"),
    ):
        value = _int(schedule, key)
        if value is not None and value <= 0:
            raise invalid(f"{field} must be positive, got {value}.")
    if schedule.get("endTime"):
        start = parse_time(schedule["startTime"]) if schedule.get("startTime") else now
        if parse_time(schedule["endTime"]) <= max(start, now):
            raise invalid("end_time must be later than start_time and than now.")


def first_run_time(schedule: dict[str, Any], now: datetime) -> datetime:
    """The first fire at or after the later of now and ``startTime``."""
    cron = parse_cron(schedule["cron"])
    start = parse_time(schedule["startTime"]) if schedule.get("startTime") else now
    return cron.first_at_or_after(max(start, now))


class ScheduleStore:
    """Schedules in memory, each persisted to its own file; readers get copies."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = Path(data_dir) / "schedules"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        items = read_json_files(self.dir, read_named_json, "schedule", log)
        self._items: dict[str, dict[str, Any]] = {item["_local"]["id"]: item for item in items}

    def _path(self, schedule_id: str) -> Path:
        return self.dir / f"{check_id(schedule_id, 'schedule id')}.json"

    def put(self, schedule: dict[str, Any]) -> None:
        with self.lock:
            atomic_write_json(self._path(schedule["_local"]["id"]), schedule)
            self._items[schedule["_local"]["id"]] = copy.deepcopy(schedule)

    def get(self, schedule_id: str) -> dict[str, Any] | None:
        with self.lock:
            item = self._items.get(schedule_id)
            return copy.deepcopy(item) if item is not None else None

    def delete(self, schedule_id: str) -> None:
        with self.lock:
            self._path(schedule_id).unlink(missing_ok=True)
            self._items.pop(schedule_id, None)

    def ids(self) -> list[str]:
        with self.lock:
            return sorted(self._items)

    def list(self, project: str, location: str) -> list[dict[str, Any]]:
        with self.lock:
            return [
                copy.deepcopy(s)
                for s in self._items.values()
                if (s["_local"]["project"], s["_local"]["location"]) == (project, location)
            ]


class ScheduleService:
    """create / get / list / patch / pause / resume / delete, and ``tick`` (the scheduler's
    step, schedules_scheduler.py), all under one lock so a fire never races a patch."""

    def __init__(
        self,
        data_dir: Path,
        starter: RunStarter,
        clock: Callable[[], datetime] = utcnow,
        operations: Callable[[str, str, str], dict] | None = None,
    ) -> None:
        self.store = ScheduleStore(data_dir)
        self.starter = starter
        self.clock = clock
        # Records the finished delete operation where ``GET .../operations/ID`` serves it
        # (pipelines/service.record_operation); None: answered, not recorded.
        self.operations = operations
        self.lock = self.store.lock
        self.changed = threading.Event()  # wakes the scheduler thread after a change

    # -- reads
    def find(self, project: str, location: str, schedule_id: str) -> dict[str, Any]:
        check_id(schedule_id, "schedule id")
        schedule = self.store.get(schedule_id)
        if schedule is None or (schedule["_local"]["project"], schedule["_local"]["location"]) != (project, location):
            raise not_found(f"Schedule projects/{project}/locations/{location}/schedules/{schedule_id} not found.")
        return schedule

    def get(self, project: str, location: str, schedule_id: str) -> dict[str, Any]:
        return public_view(self.find(project, location, schedule_id))

    def list(
        self,
        project: str,
        location: str,
        filter_text: str = "",
        order_by: str = "",
        page_size: int = 0,
        token: str = "",
    ) -> dict[str, Any]:
        page = parse_page(page_size, token, json.dumps([filter_text, order_by]), DEFAULT_PAGE_SIZE)
        matches, sort = parse_filter(filter_text), parse_order_by(order_by)
        items = sort([public_view(s) for s in self.store.list(project, location)])
        items = [s for s in items if matches(s)]
        out: dict[str, Any] = {"schedules": page.of(items)}
        if next_token := page.next_token(len(items)):
            out["nextPageToken"] = next_token
        return out

    # -- writes
    def create(self, project: str, location: str, body: dict[str, Any]) -> dict[str, Any]:
        parent = f"projects/{project}/locations/{location}"
        now = self.clock()
        schedule = {
            k: v for k, v in body.items() if k in MUTABLE_FIELDS.values() or k == "createNotebookExecutionJobRequest"
        }
        check_schedule(schedule, parent, now)
        schedule_id = new_id()
        schedule.update(
            name=f"{parent}/schedules/{schedule_id}",
            state=ACTIVE,
            createTime=rfc3339(now),
            updateTime=rfc3339(now),
            startTime=schedule.get("startTime") or rfc3339(now),  # "Default to Schedule create time"
            nextRunTime=rfc3339(first_run_time(schedule, now)),
            _local={"id": schedule_id, "project": project, "location": location, "queue": [], "skippedRunCount": 0},
        )
        if not schedule.get("allowQueueing"):
            schedule.pop("allowQueueing", None)
        with self.lock:
            self.store.put(schedule)
        self.changed.set()
        log.info("created schedule %s (%r, cron %r)", schedule["name"], schedule["displayName"], schedule["cron"])
        return public_view(schedule)

    def patch(self, project: str, location: str, schedule_id: str, body: dict[str, Any], mask: str) -> dict[str, Any]:
        paths = [_snake(p.strip()) for p in mask.split(",") if p.strip()]
        if not paths:
            raise invalid("update_mask is required: name the fields to update.")
        for path in paths:
            if path not in MUTABLE_FIELDS:
                raise invalid(f"update_mask: {path!r} cannot be updated (updatable: {', '.join(MUTABLE_FIELDS)}).")
        with self.lock:
            schedule = self.find(project, location, schedule_id)
            if schedule["state"] == COMPLETED:
                raise failed_precondition(f"Schedule {schedule['name']} is COMPLETED and cannot be updated.")
            now = self.clock()
            for path in paths:
                key = MUTABLE_FIELDS[path]
                if key in body:
                    schedule[key] = body[key]
                else:
                    schedule.pop(key, None)  # a masked field absent from the body is cleared
            check_schedule(schedule, f"projects/{project}/locations/{location}", now)
            schedule["updateTime"] = rfc3339(now)
            schedule["_local"]["queue"] = []  # "All unstarted runs before the update time will be skipped"
            if schedule["state"] == ACTIVE:
                schedule["nextRunTime"] = rfc3339(first_run_time(schedule, now))
            self.store.put(schedule)
        self.changed.set()
        return public_view(schedule)

    def pause(self, project: str, location: str, schedule_id: str) -> None:
        with self.lock:
            schedule = self.find(project, location, schedule_id)
            if schedule["state"] != ACTIVE:
                raise failed_precondition(
                    f"Schedule {schedule['name']} is {schedule['state']}; only an ACTIVE schedule can be paused."
                )
            now = rfc3339(self.clock())
            schedule.update(state=PAUSED, lastPauseTime=now, updateTime=now)
            schedule.pop("nextRunTime", None)
            self.store.put(schedule)

    def resume(self, project: str, location: str, schedule_id: str, catch_up: bool = False) -> None:
        """From the next fire after now; with ``catch_up`` from the first fire missed while
        paused, so the scheduler starts the missed runs first (each under the usual limits)."""
        with self.lock:
            schedule = self.find(project, location, schedule_id)
            if schedule["state"] != PAUSED:
                raise failed_precondition(
                    f"Schedule {schedule['name']} is {schedule['state']}; only a PAUSED schedule can be resumed."
                )
            now = self.clock()
            since = parse_time(schedule["lastPauseTime"]) if catch_up else now
            schedule.update(state=ACTIVE, lastResumeTime=rfc3339(now), updateTime=rfc3339(now))
            schedule["nextRunTime"] = rfc3339(first_run_time(schedule, since))
            if catch_up:
                schedule["catchUp"] = True
            else:
                schedule.pop("catchUp", None)
            self.store.put(schedule)
        self.changed.set()

    def delete(self, project: str, location: str, schedule_id: str) -> dict[str, Any]:
        """Deletes at once and answers the long-running operation already done, as the SDK
        reads it (runs the schedule started are kept)."""
        with self.lock:
            name = self.find(project, location, schedule_id)["name"]
            self.store.delete(schedule_id)
        log.info("deleted schedule %s", name)
        if self.operations is not None:
            return self.operations(project, location, "DeleteOperationMetadata")
        now = rfc3339(self.clock())
        return {
            "name": f"projects/{project}/locations/{location}/operations/{new_id()}",
            "metadata": {
                "@type": "type.googleapis.com/google.cloud.aiplatform.v1.DeleteOperationMetadata",
                "genericMetadata": {"createTime": now, "updateTime": now},
            },
            "done": True,
            "response": {"@type": "type.googleapis.com/google.protobuf.Empty"},
        }


def _snake(name: str) -> str:
    out = []
    for ch in name:
        out.append("_" + ch.lower() if ch.isupper() else ch)
    return "".join(out)
