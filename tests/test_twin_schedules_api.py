"""Schedules of the local Vertex AI through the unchanged google-cloud-aiplatform SDK (REST)
and raw HTTP: create, get, list, update, pause, resume, delete, the errors, and (slow) a real
every-minute schedule that starts a run and skips the next fire while that run is active.

No ``from __future__ import annotations``: kfp reads the component's annotations as types."""

import time

import httpx
import pytest
from kfp import compiler, dsl

from tests.conftest import BUCKET, PROJECT

LOCATION = "us-central1"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"


@dsl.component(base_image="python:3.11")
def wait_and_echo(seconds: int, text: str) -> str:
    import time

    time.sleep(seconds)
    return text


@dsl.pipeline(name="toy-scheduled")
def toy_pipeline(seconds: int = 0, text: str = "hello"):
    wait_and_echo(seconds=seconds, text=text)


@pytest.fixture(scope="module")
def toy_yaml(tmp_path_factory):
    path = tmp_path_factory.mktemp("toy") / "toy.yaml"
    compiler.Compiler().compile(toy_pipeline, str(path))
    return str(path)


@pytest.fixture
def aiplatform_local(local_stack):
    """aiplatform.init against the stack (REST, http endpoint, the stack's credentials)."""
    import google.auth
    from google.cloud import aiplatform
    from google.cloud.aiplatform import initializer

    credentials, _ = google.auth.default()
    aiplatform.init(
        project=PROJECT,
        location=LOCATION,
        credentials=credentials,
        api_endpoint=local_stack.vertex_url,
        api_transport="rest",
    )
    yield aiplatform
    initializer.global_config.__init__()


@pytest.fixture
def http(local_stack):
    import google.auth
    import google.auth.transport.requests

    credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    credentials.refresh(google.auth.transport.requests.Request())
    with httpx.Client(
        base_url=f"{local_stack.vertex_url}/v1/{PARENT}",
        headers={"Authorization": f"Bearer {credentials.token}"},
        timeout=30,
    ) as client:
        yield client


def toy_job(aiplatform, toy_yaml, **kw):
    return aiplatform.PipelineJob(
        display_name="toy",
        template_path=toy_yaml,
        pipeline_root=f"{BUCKET}/pipeline_root",
        parameter_values=kw.pop("parameter_values", {"text": "hi"}),
        labels={"experiment": "qc-exp", "trigger": "schedule"},
        **kw,
    )


def test_sdk_create_get_list_update_pause_resume_delete(aiplatform_local, toy_yaml):
    aiplatform = aiplatform_local
    schedule = toy_job(aiplatform, toy_yaml).create_schedule(
        cron="CRON_TZ=Europe/Berlin 0 2 1 1 *",
        display_name="toy-yearly",
        max_concurrent_run_count=1,
        max_concurrent_active_run_count=1,
        max_run_count=3,
    )
    resource = schedule.gca_resource
    assert resource.name.startswith(f"{PARENT}/schedules/")
    assert resource.state.name == "ACTIVE" and resource.next_run_time.year >= 2027
    assert resource.max_concurrent_active_run_count == 1 and resource.max_run_count == 3
    job = resource.create_pipeline_job_request.pipeline_job
    assert job.labels["experiment"] == "qc-exp" and job.runtime_config.parameter_values["text"] == "hi"

    found = aiplatform.PipelineJobSchedule.list(filter='display_name="toy-yearly"')
    assert [s.resource_name for s in found] == [schedule.resource_name]
    assert aiplatform.PipelineJobSchedule.get(schedule.resource_name.rsplit("/", 1)[1]).cron == resource.cron

    schedule.update(cron="0 3 * * *", max_run_count=5)
    assert schedule.cron == "0 3 * * *" and schedule.max_run_count == 5
    schedule.pause()
    assert schedule.state.name == "PAUSED"
    schedule.resume()
    assert schedule.state.name == "ACTIVE"
    schedule.delete()
    assert aiplatform.PipelineJobSchedule.list(filter='display_name="toy-yearly"') == []


def test_the_pipeline_cli_schedule_commands_against_the_twin(aiplatform_local, local_stack, toy_yaml, monkeypatch):
    """``python -m pipeline schedule --list / --pause / --resume / --delete`` by display name."""
    from typer.testing import CliRunner

    from pipeline.commands import app

    aiplatform = aiplatform_local
    toy_job(aiplatform, toy_yaml).create_schedule(cron="0 2 1 1 *", display_name="toy-cli", max_concurrent_run_count=1)
    runner = CliRunner()
    where = ["--project", PROJECT, "--location", LOCATION]
    listed = runner.invoke(app, ["schedule", "--list", *where])
    assert listed.exit_code == 0, listed.output
    assert "toy-cli" in listed.output and "ACTIVE" in listed.output
    for flag in ("--pause", "--resume", "--delete"):
        result = runner.invoke(app, ["schedule", flag, "toy-cli", *where])
        assert result.exit_code == 0, result.output
    assert "toy-cli" not in runner.invoke(app, ["schedule", "--list", *where]).output


def schedule_body(**fields):
    body = {
        "displayName": "raw",
        "cron": "0 2 * * *",
        "maxConcurrentRunCount": "1",
        "createPipelineJobRequest": {
            "parent": PARENT,
            "pipelineJob": {"pipelineSpec": {"pipelineInfo": {"name": "raw"}, "root": {}}},
        },
    }
    body.update(fields)
    return body


@pytest.mark.parametrize(
    "body, code, status, words",
    [
        (schedule_body(cron="0 2 * *"), 400, "INVALID_ARGUMENT", "expected 5 fields"),
        (schedule_body(cron="CRON_TZ=Nowhere/City 0 2 * * *"), 400, "INVALID_ARGUMENT", "IANA"),
        (schedule_body(colour="red"), 400, "INVALID_ARGUMENT", 'Unknown name "colour"'),
        (schedule_body(maxRunCount="many"), 400, "INVALID_ARGUMENT", "max_run_count"),
        (schedule_body(displayName=""), 400, "INVALID_ARGUMENT", "display_name"),
    ],
)
def test_bad_create_is_one_google_error_and_creates_nothing(http, body, code, status, words):
    before = http.get("/schedules").json().get("schedules", [])
    response = http.post("/schedules", json=body)
    assert response.status_code == code, response.text
    error = response.json()["error"]
    assert error["status"] == status and words in error["message"]
    assert http.get("/schedules").json().get("schedules", []) == before


def test_http_errors(http):
    created = http.post("/schedules", json=schedule_body(displayName="raw-errors")).json()
    sid = created["name"].rsplit("/", 1)[1]
    assert created["state"] == "ACTIVE" and "startedRunCount" not in created
    assert http.get("/schedules/123").json()["error"]["status"] == "NOT_FOUND"
    assert http.post(f"/schedules/{sid}:explode").json()["error"]["message"] == "Method not found."
    assert http.get("/schedules", params={"filter": "colour=red"}).json()["error"]["status"] == "INVALID_ARGUMENT"
    assert http.get("/schedules", params={"pageToken": "nope"}).json()["error"]["status"] == "INVALID_ARGUMENT"
    assert http.get("/schedules", params={"orderBy": "cron"}).json()["error"]["status"] == "INVALID_ARGUMENT"
    assert http.post(f"/schedules/{sid}:resume").json()["error"]["status"] == "FAILED_PRECONDITION"
    patched = http.patch(f"/schedules/{sid}", params={"updateMask": "displayName"}, json={"displayName": "raw-2"})
    assert patched.json()["displayName"] == "raw-2"
    bad = http.patch(f"/schedules/{sid}", params={"updateMask": "state"}, json={})
    assert bad.status_code == 400
    ints = http.get(f"/schedules/{sid}", params={"$alt": "json;enum-encoding=int"}).json()
    assert ints["state"] == 1  # ACTIVE as a number, as the SDK asks
    op = http.delete(f"/schedules/{sid}").json()
    assert op["done"] is True and "/operations/" in op["name"]
    assert http.get(f"/schedules/{sid}").status_code == 404


def test_schedules_survive_a_restart(tmp_path):
    from localvertex import LocalStack

    body = schedule_body(displayName="survivor")
    with LocalStack(tmp_path, bucket="local-bucket", project=PROJECT) as stack:
        name = _client(stack).post("/schedules", json=body).json()["name"]
    with LocalStack(tmp_path, bucket="local-bucket", project=PROJECT) as stack:
        got = _client(stack).get(f"/schedules/{name.rsplit('/', 1)[1]}").json()
    assert got["displayName"] == "survivor" and got["state"] == "ACTIVE"


def _client(stack) -> httpx.Client:
    import google.auth.transport.requests
    from google.oauth2 import service_account

    credentials = service_account.Credentials.from_service_account_file(
        str(stack.credentials_path), scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )
    credentials.refresh(google.auth.transport.requests.Request())
    return httpx.Client(
        base_url=f"{stack.vertex_url}/v1/{PARENT}", headers={"Authorization": f"Bearer {credentials.token}"}
    )


@pytest.mark.slow
def test_every_minute_schedule_starts_a_run_and_skips_the_next_fire_while_it_is_active(aiplatform_local, toy_yaml):
    """A real ``* * * * *`` schedule: the first fire starts a run (labelled, ``scheduleName``
    set); that run sleeps through the next minute, so the second fire is skipped, not queued."""
    aiplatform = aiplatform_local
    job = toy_job(aiplatform, toy_yaml, parameter_values={"seconds": 75, "text": "slow"})
    schedule = job.create_schedule(
        cron="* * * * *",
        display_name="toy-every-minute",
        max_concurrent_run_count=1,
        max_concurrent_active_run_count=1,
    )
    try:
        first_fire = schedule.gca_resource.next_run_time.timestamp()
        runs = _wait(lambda: schedule.list_jobs(), deadline=time.time() + 90)
        assert len(runs) == 1
        # Past the second fire (first + 60 s) while the run still sleeps its 75 s.
        time.sleep(max(0.0, first_fire + 63 - time.time()))
        schedule._sync_gca_resource()
        [listed] = schedule.list_jobs()
        assert listed.gca_resource.state.name in ("PIPELINE_STATE_PENDING", "PIPELINE_STATE_RUNNING")
        assert schedule.gca_resource.started_run_count == 1  # the second fire was skipped
        assert schedule.gca_resource.next_run_time.timestamp() >= first_fire + 120
        ended = _wait(
            lambda: [r for r in schedule.list_jobs() if r.gca_resource.state.name == "PIPELINE_STATE_SUCCEEDED"],
            deadline=time.time() + 120,
        )
        assert ended, "the scheduled run did not succeed"
        run = aiplatform.PipelineJob.get(listed.resource_name)
        assert run.gca_resource.schedule_name == schedule.resource_name
        assert run.labels["experiment"] == "qc-exp" and "vertex-ai-pipelines-run-billing-id" in run.labels
    finally:
        schedule.pause()
        for run in schedule.list_jobs():
            if run.state.name not in ("PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED"):
                run.cancel()
        schedule.delete()


def _wait(fetch, deadline):
    while True:
        got = fetch()
        if got or time.time() > deadline:
            return got
        time.sleep(2)
