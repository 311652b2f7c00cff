"""Schedules of the local Vertex AI: the firing rules on an injected clock (no server, no
runs: a fake PipelineJobs service records the starts), the cron, the filter, and the
resource rules. The routes and the SDK are in test_twin_schedules_api.py."""

from datetime import UTC, datetime, timedelta

import pytest

from localvertex.errors import ApiError, api_error
from localvertex.pipelines.schedules import ACTIVE, COMPLETED, PAUSED, ScheduleService
from localvertex.pipelines.schedules_cron import parse_cron
from localvertex.pipelines.schedules_filter import parse_filter, parse_order_by
from localvertex.pipelines.schedules_scheduler import BILLING_LABEL, tick

P, L = "local-project", "us-central1"
PARENT = f"projects/{P}/locations/{L}"
T0 = datetime(2026, 3, 1, 0, 0, 30, tzinfo=UTC)


class Clock:
    def __init__(self, now=T0):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, **kw):
        self.now += timedelta(**kw)
        return self.now


class FakeRuns:
    """Plays pipelines/service.py: records each start; runs stay active until ended."""

    def __init__(self):
        self.jobs = {}  # name -> {"body", "schedule", "active"}
        self.refuse = None

    def start(self, project, location, body, job_id, schedule_name):
        if self.refuse:
            raise self.refuse
        name = f"projects/{project}/locations/{location}/pipelineJobs/{job_id}"
        if name in self.jobs:
            raise api_error("ALREADY_EXISTS", f"{name} already exists")
        self.jobs[name] = {"body": body, "schedule": schedule_name, "active": True}
        return {"name": name, "scheduleName": schedule_name}

    def active(self, project, location, schedule_name):
        return sum(1 for j in self.jobs.values() if j["schedule"] == schedule_name and j["active"])

    def end_all(self):
        for job in self.jobs.values():
            job["active"] = False


def schedule_body(cron="* * * * *", **fields):
    body = {
        "displayName": "nightly",
        "cron": cron,
        "maxConcurrentRunCount": "1",
        "createPipelineJobRequest": {
            "parent": PARENT,
            "pipelineJob": {
                "pipelineSpec": {"pipelineInfo": {"name": "toy-pipeline"}, "root": {}},
                "runtimeConfig": {"gcsOutputDirectory": "gs://b/root"},
                "labels": {"experiment": "qc-exp"},
            },
        },
    }
    body.update(fields)
    return body


@pytest.fixture
def env(tmp_path):
    clock, runs = Clock(), FakeRuns()
    service = ScheduleService(tmp_path, runs, clock=clock)
    return service, clock, runs


def kinds(events):
    return [kind for _, kind, _ in events]


# --------------------------------------------------------------------------- firing rules


def test_fires_on_time_labels_runs_and_records_the_response(env):
    service, clock, runs = env
    s = service.create(P, L, schedule_body())
    assert s["state"] == ACTIVE and s["nextRunTime"] == "2026-03-01T00:01:00.000000Z"
    assert s["startTime"] == s["createTime"]
    assert tick(service) == []  # not yet due
    clock.advance(seconds=30)
    assert kinds(tick(service)) == ["started"]
    [(name, job)] = runs.jobs.items()
    assert job["schedule"] == s["name"]
    assert job["body"]["labels"]["experiment"] == "qc-exp" and job["body"]["labels"][BILLING_LABEL].isdigit()
    assert name.endswith("/pipelineJobs/toy-pipeline-20260301000100-" + s["name"][-6:])
    got = service.get(P, L, s["name"].rsplit("/", 1)[1])
    assert got["startedRunCount"] == "1"
    assert got["lastScheduledRunResponse"] == {"scheduledRunTime": "2026-03-01T00:01:00.000000Z", "runResponse": name}
    assert got["nextRunTime"] == "2026-03-01T00:02:00.000000Z"


def test_a_fire_while_the_active_limit_is_reached_is_skipped(env):
    service, clock, runs = env
    s = service.create(P, L, schedule_body(maxConcurrentActiveRunCount="1"))
    clock.advance(minutes=1)
    assert kinds(tick(service)) == ["started"]
    clock.advance(minutes=1)
    assert kinds(tick(service)) == ["skipped"]  # the first run is still active
    runs.end_all()
    clock.advance(minutes=1)
    assert kinds(tick(service)) == ["started"]
    got = service.find(P, L, s["name"].rsplit("/", 1)[1])
    assert got["startedRunCount"] == "2" and got["_local"]["skippedRunCount"] == 1
    assert len(runs.jobs) == 2


def test_queueing_starts_the_waiting_fire_when_a_run_ends_up_to_max_concurrent_run_count(env):
    service, clock, runs = env
    service.create(P, L, schedule_body(maxConcurrentActiveRunCount="1", allowQueueing=True, maxConcurrentRunCount="2"))
    clock.advance(minutes=1)
    assert kinds(tick(service)) == ["started"]
    clock.advance(minutes=3)  # three fires due: two queue (maxConcurrentRunCount 2), one is skipped
    assert kinds(tick(service)) == ["queued", "queued", "skipped"]
    assert len(runs.jobs) == 1
    runs.end_all()
    assert kinds(tick(service)) == ["started"]  # oldest queued first, then the limit binds again
    started = sorted(runs.jobs)[-1]
    assert "-20260301000200-" in started


def test_max_run_count_completes_the_schedule(env):
    service, clock, runs = env
    s = service.create(P, L, schedule_body(maxRunCount="2"))
    clock.advance(minutes=5)
    assert kinds(tick(service)) == ["started", "started", "completed"]
    got = service.get(P, L, s["name"].rsplit("/", 1)[1])
    assert got["state"] == COMPLETED and "nextRunTime" not in got and got["startedRunCount"] == "2"
    clock.advance(minutes=5)
    assert tick(service) == [] and len(runs.jobs) == 2
    with pytest.raises(ApiError) as err:
        service.resume(P, L, s["name"].rsplit("/", 1)[1])
    assert err.value.status == "FAILED_PRECONDITION"


def test_end_time_completes_and_start_time_delays(env):
    service, clock, runs = env
    s = service.create(P, L, schedule_body(startTime="2026-03-01T00:10:00Z", endTime="2026-03-01T00:12:00Z"))
    assert s["nextRunTime"] == "2026-03-01T00:10:00.000000Z"  # a start time on a fire time fires then
    clock.advance(minutes=30)
    assert kinds(tick(service)) == ["started", "started", "started", "completed"]  # 10, 11, 12
    assert service.get(P, L, s["name"].rsplit("/", 1)[1])["state"] == COMPLETED


def test_pause_resume_skip_the_missed_fires_unless_catch_up(env):
    service, clock, runs = env
    sid = service.create(P, L, schedule_body())["name"].rsplit("/", 1)[1]
    service.pause(P, L, sid)
    got = service.get(P, L, sid)
    assert got["state"] == PAUSED and "nextRunTime" not in got and got["lastPauseTime"]
    with pytest.raises(ApiError) as err:
        service.pause(P, L, sid)
    assert err.value.status == "FAILED_PRECONDITION"
    clock.advance(minutes=10)
    assert tick(service) == []
    service.resume(P, L, sid)
    assert service.get(P, L, sid)["nextRunTime"] == "2026-03-01T00:11:00.000000Z"
    service.pause(P, L, sid)
    clock.advance(minutes=3)
    service.resume(P, L, sid, catch_up=True)
    assert kinds(tick(service)) == ["started"] * 3  # 00:11, 00:12, 00:13 missed while paused
    assert service.get(P, L, sid)["catchUp"] is True


def test_a_refused_start_is_recorded_not_counted(env):
    service, clock, runs = env
    sid = service.create(P, L, schedule_body())["name"].rsplit("/", 1)[1]
    runs.refuse = api_error("INVALID_ARGUMENT", "unknown parameter 'nope'")
    clock.advance(minutes=1)
    assert kinds(tick(service)) == ["failed"]
    got = service.get(P, L, sid)
    assert "startedRunCount" not in got
    assert got["lastScheduledRunResponse"]["runResponse"] == "INVALID_ARGUMENT: unknown parameter 'nope'"


def test_a_start_cut_short_by_a_restart_is_not_repeated(env, tmp_path):
    service, clock, runs = env
    sid = service.create(P, L, schedule_body())["name"].rsplit("/", 1)[1]
    clock.advance(minutes=1)

    class Crash(BaseException):
        pass

    real_start = runs.start

    def start_then_die(*args, **kw):
        real_start(*args, **kw)
        raise Crash  # the server stops after the run exists, before the schedule is updated

    runs.start = start_then_die
    with pytest.raises(Crash):
        tick(service)
    runs.start = real_start
    restarted = ScheduleService(tmp_path, runs, clock=clock)
    assert kinds(tick(restarted)) == ["started"]  # the 409 says the run exists: counted once
    got = restarted.get(P, L, sid)
    assert got["startedRunCount"] == "1" and len(runs.jobs) == 1
    assert got["nextRunTime"] == "2026-03-01T00:02:00.000000Z"


def test_schedules_survive_a_restart(env, tmp_path):
    service, clock, runs = env
    sid = service.create(P, L, schedule_body(maxConcurrentActiveRunCount="1", allowQueueing=True))["name"]
    clock.advance(minutes=2)
    assert kinds(tick(service)) == ["started", "queued"]
    restarted = ScheduleService(tmp_path, runs, clock=clock)
    got = restarted.find(P, L, sid.rsplit("/", 1)[1])
    assert got["startedRunCount"] == "1" and got["_local"]["queue"] == ["2026-03-01T00:02:00.000000Z"]
    runs.end_all()
    assert kinds(tick(restarted)) == ["started"]


def test_patch_reschedules_from_the_update_and_drops_the_queue(env):
    service, clock, runs = env
    sid = service.create(P, L, schedule_body(maxConcurrentActiveRunCount="1", allowQueueing=True))["name"]
    sid = sid.rsplit("/", 1)[1]
    clock.advance(minutes=2)
    tick(service)
    got = service.patch(P, L, sid, {"cron": "0 3 * * *", "displayName": "x"}, "cron")
    assert got["cron"] == "0 3 * * *" and got["displayName"] == "nightly"  # only the masked field
    assert got["nextRunTime"] == "2026-03-01T03:00:00.000000Z"
    assert service.find(P, L, sid)["_local"]["queue"] == []
    for mask, status in (("state", "INVALID_ARGUMENT"), ("", "INVALID_ARGUMENT")):
        with pytest.raises(ApiError) as err:
            service.patch(P, L, sid, {}, mask)
        assert err.value.status == status
    with pytest.raises(ApiError):
        service.patch(P, L, sid, {"cron": "bad"}, "cron")
    assert service.get(P, L, sid)["cron"] == "0 3 * * *"  # a refused patch changes nothing


def test_daylight_saving_zone(env):
    service, clock, runs = env
    clock.now = datetime(2026, 3, 28, 12, tzinfo=UTC)
    s = service.create(P, L, schedule_body("CRON_TZ=Europe/Berlin 0 2 * * *"))
    assert s["nextRunTime"] == "2026-03-29T01:00:00.000000Z"  # 02:00 does not exist that night: 03:00 CEST
    clock.advance(days=1)
    tick(service)
    assert service.get(P, L, s["name"].rsplit("/", 1)[1])["nextRunTime"] == "2026-03-30T00:00:00.000000Z"


def test_thirty_nights_on_the_injected_clock_never_overlap(env):
    service, clock, runs = env
    sid = service.create(P, L, schedule_body("TZ=Europe/Berlin 0 2 * * *", maxConcurrentActiveRunCount="1"))
    sid = sid["name"].rsplit("/", 1)[1]
    started = skipped = 0
    for night in range(30):
        clock.advance(days=1)
        events = tick(service)
        started += kinds(events).count("started")
        skipped += kinds(events).count("skipped")
        assert runs.active(P, L, service.get(P, L, sid)["name"]) <= 1
        if night % 3 != 2:  # every third run is still tuning at the next night's start
            runs.end_all()
    assert started == int(service.get(P, L, sid)["startedRunCount"]) == len(runs.jobs)
    assert service.find(P, L, sid)["_local"]["skippedRunCount"] == skipped
    # 31 fires in 30 days: after the switch to summer time 02:00 CEST is 00:00 UTC, before 00:00:30.
    assert started + skipped == 31 and skipped == 10


# --------------------------------------------------------------------------- resource rules


@pytest.mark.parametrize(
    "change, status, words",
    [
        ({"cron": "0 2 * *"}, "INVALID_ARGUMENT", "expected 5 fields"),
        ({"cron": "CRON_TZ=Mars/Olympus 0 2 * * *"}, "INVALID_ARGUMENT", "IANA"),
        ({"cron": ""}, "INVALID_ARGUMENT", "cron"),
        ({"displayName": ""}, "INVALID_ARGUMENT", "display_name"),
        ({"maxConcurrentRunCount": "0"}, "INVALID_ARGUMENT", "max_concurrent_run_count"),
        ({"maxRunCount": "-1"}, "INVALID_ARGUMENT", "max_run_count"),
        ({"endTime": "2020-01-01T00:00:00Z"}, "INVALID_ARGUMENT", "end_time"),
        ({"createPipelineJobRequest": None}, "INVALID_ARGUMENT", "create_pipeline_job_request"),
        (
            {"createPipelineJobRequest": {"parent": "projects/x/locations/y", "pipelineJob": {}}},
            "INVALID_ARGUMENT",
            "parent",
        ),
        ({"createPipelineJobRequest": {"parent": PARENT, "pipelineJob": {}}}, "INVALID_ARGUMENT", "pipeline_spec"),
        ({"createNotebookExecutionJobRequest": {}}, "UNIMPLEMENTED", "pipeline runs only"),
    ],
)
def test_bad_schedules_are_refused_and_nothing_is_created(env, change, status, words):
    service, _, _ = env
    body = schedule_body(**change)
    body = {k: v for k, v in body.items() if v is not None}
    with pytest.raises(ApiError) as err:
        service.create(P, L, body)
    assert err.value.status == status and words in err.value.message
    assert service.list(P, L)["schedules"] == []


def test_get_of_another_location_or_unknown_id_is_404(env):
    service, _, _ = env
    sid = service.create(P, L, schedule_body())["name"].rsplit("/", 1)[1]
    for project, location, schedule_id in ((P, "europe-west4", sid), (P, L, "123")):
        with pytest.raises(ApiError) as err:
            service.get(project, location, schedule_id)
        assert err.value.status == "NOT_FOUND"


def test_list_filter_order_and_pages(env):
    service, clock, _ = env
    for name in ("b-nightly", "a-weekly", "c-nightly"):
        service.create(P, L, schedule_body(displayName=name))
        clock.advance(seconds=1)
    service.pause(P, L, service.list(P, L, 'display_name="a-weekly"')["schedules"][0]["name"].rsplit("/", 1)[1])

    def names(**kw):
        return [s["displayName"] for s in service.list(P, L, **kw)["schedules"]]

    assert names() == ["b-nightly", "a-weekly", "c-nightly"]  # oldest first
    assert names(filter_text='display_name:"*-nightly"') == ["b-nightly", "c-nightly"]
    assert names(filter_text='state="PAUSED" OR NOT display_name="b-nightly"') == ["a-weekly", "c-nightly"]
    assert names(filter_text="state=ACTIVE AND create_pipeline_job_request:*") == ["b-nightly", "c-nightly"]
    assert names(filter_text='create_time>"2026-03-01T00:00:30.500Z"') == ["a-weekly", "c-nightly"]
    assert names(filter_text="NOT end_time:*", order_by="display_name desc") == ["c-nightly", "b-nightly", "a-weekly"]
    page = service.list(P, L, order_by="display_name", page_size=2)
    assert [s["displayName"] for s in page["schedules"]] == ["a-weekly", "b-nightly"]
    rest = service.list(P, L, order_by="display_name", page_size=2, token=page["nextPageToken"])
    assert [s["displayName"] for s in rest["schedules"]] == ["c-nightly"] and "nextPageToken" not in rest
    for kw in (
        {"filter_text": "state=RUNNING"},
        {"filter_text": "labels.x=y"},
        {"filter_text": "display_name="},
        {"filter_text": "(state=ACTIVE"},
        {"filter_text": 'create_time>"yesterday"'},
        {"order_by": "cron"},
        {"token": "garbage"},
        {"token": page["nextPageToken"], "order_by": "create_time"},  # a token of another request
    ):
        with pytest.raises(ApiError) as err:
            service.list(P, L, **kw)
        assert err.value.status == "INVALID_ARGUMENT", kw


def test_filter_precedence_or_binds_tighter_than_and():
    match = parse_filter('state=ACTIVE AND display_name="a" OR display_name="b"')
    assert match({"state": "ACTIVE", "displayName": "b"})
    assert not match({"state": "PAUSED", "displayName": "b"})
    assert parse_filter("-state=ACTIVE")({"state": "PAUSED"})
    assert parse_order_by("")([{"name": "2", "createTime": "b"}, {"name": "1", "createTime": "a"}])[0]["name"] == "1"


def test_cron_parser():
    assert parse_cron("TZ=America/New_York 1 * * * *").zone.key == "America/New_York"
    assert parse_cron("0 2 * JAN-MAR MON").fields == "0 2 * JAN-MAR MON"
    for bad in ("@daily", "0 0 2 * * *", "61 * * * *", "0 2 L * *", "0 2 * * 5#2", "TZ=../../etc 1 * * * *"):
        with pytest.raises(ApiError):
            parse_cron(bad)
