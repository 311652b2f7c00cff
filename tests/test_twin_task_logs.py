"""A pipeline task's log in the local twin, read as a client of Google's APIs reads it:
the task's ``executorDetail.containerDetail.mainJob`` names its CustomJob, and Cloud Logging's
``entries:list`` (``resource.type="ml_job" AND resource.labels.job_id=...``) serves what the
task printed, stdout as INFO and stderr as ERROR; the filters the twin does not support are
400 INVALID_ARGUMENT. Also: a task's execution records the values its inputs resolved to
(``dsl.PIPELINE_JOB_ID_PLACEHOLDER``), not the placeholder.

No ``from __future__ import annotations`` here: kfp reads the components' annotations."""

import time
import uuid

import httpx
import pytest

PROJECT, LOCATION = "local-project", "us-central1"
LINES = 70


def _chatty_spec(tmp_path) -> dict:
    import yaml
    from kfp import compiler, dsl

    @dsl.component(base_image="python:3.11")
    def chatty(run_id: str, lines: int) -> str:
        import sys

        for i in range(lines):
            print(f"line {i} of {lines}")
        print('<script>alert("x")</script> & more', flush=True)
        print("careful: this goes to stderr", file=sys.stderr, flush=True)
        return run_id

    @dsl.pipeline(name="chatty")
    def chatty_pipeline(lines: int = 3):
        chatty(run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER, lines=lines)

    path = tmp_path / "chatty.yaml"
    compiler.Compiler().compile(chatty_pipeline, str(path))
    return yaml.safe_load(path.read_text())


def token_headers(stack) -> dict:
    from tests.test_localvertex import _assertion

    token = httpx.post(
        f"{stack.vertex_url}/token",
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": _assertion(stack)},
    ).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def http(local_stack):
    with httpx.Client(base_url=local_stack.vertex_url, headers=token_headers(local_stack), timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def chatty_job(http, tmp_path_factory) -> dict:
    """One finished run of the chatty pipeline (the twin's PipelineJob, as served)."""
    spec = _chatty_spec(tmp_path_factory.mktemp("chatty"))
    body = {
        "displayName": "chatty-run",
        "pipelineSpec": spec,
        "runtimeConfig": {"gcsOutputDirectory": "gs://local-bucket/pipeline-root", "parameterValues": {"lines": LINES}},
    }
    base = f"/v1/projects/{PROJECT}/locations/{LOCATION}/pipelineJobs"
    resp = http.post(base, json=body, params={"pipelineJobId": f"chatty-{uuid.uuid4().hex[:8]}"})
    assert resp.status_code == 200, resp.text
    name = resp.json()["name"].rsplit("/", 1)[-1]
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        job = http.get(f"{base}/{name}").json()
        if job["state"] in ("PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED"):
            assert job["state"] == "PIPELINE_STATE_SUCCEEDED", job.get("error")
            return job
        time.sleep(0.5)
    raise AssertionError(f"{name} still {job['state']}")


def task(job: dict, name: str) -> dict:
    return next(t for t in job["jobDetail"]["taskDetails"] if t["taskName"] == name)


def test_task_execution_records_the_resolved_pipeline_job_id(chatty_job):
    metadata = task(chatty_job, "chatty")["execution"]["metadata"]
    received = metadata["output:Output"]  # what the task itself was given
    assert "{{" not in received and received
    assert metadata["input:run_id"] == received
