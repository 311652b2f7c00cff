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


def custom_job_id(job: dict, name: str) -> str:
    main_job = task(job, name)["executorDetail"]["containerDetail"]["mainJob"]
    assert main_job.startswith(f"projects/{PROJECT}/locations/{LOCATION}/customJobs/")
    return main_job.rsplit("/", 1)[-1]


def entries_list(http, **body) -> httpx.Response:
    return http.post("/v2/entries:list", json={"resourceNames": [f"projects/{PROJECT}"], **body})


def test_the_tasks_log_is_served_by_entries_list_as_google_serves_it(http, chatty_job):
    job_id = custom_job_id(chatty_job, "chatty")
    query = f'resource.type="ml_job" AND resource.labels.job_id="{job_id}"'
    first = entries_list(http, filter=query, pageSize=30)
    assert first.status_code == 200, first.text
    page = first.json()
    assert len(page["entries"]) == 30 and page["nextPageToken"]
    entry = page["entries"][0]
    assert entry["resource"] == {
        "type": "ml_job",
        "labels": {"job_id": job_id, "project_id": PROJECT, "task_name": "workerpool0-0"},
    }
    assert entry["logName"] == f"projects/{PROJECT}/logs/workerpool0-0"
    assert entry["timestamp"].endswith("Z") and entry["insertId"]
    entries = page["entries"]
    token = page["nextPageToken"]
    while token:
        more = entries_list(http, filter=query, pageSize=30, pageToken=token).json()
        entries += more["entries"]
        token = more.get("nextPageToken")
    assert [e["timestamp"] for e in entries] == sorted(e["timestamp"] for e in entries)
    printed = [e["textPayload"] for e in entries if e["severity"] == "INFO"]  # kfp's executor prints too
    stdout = [t for t in printed if t.startswith(("line ", "<script>"))]
    assert stdout == [f"line {i} of {LINES}" for i in range(LINES)] + ['<script>alert("x")</script> & more']
    assert ("ERROR", "careful: this goes to stderr") in [(e["severity"], e["textPayload"]) for e in entries]

    # The tail, as the console asks for it: newest first, one page.
    tail = entries_list(http, filter=query, orderBy="timestamp desc", pageSize=5).json()["entries"]
    assert [e["timestamp"] for e in tail] == sorted((e["timestamp"] for e in tail), reverse=True)
    errors = entries_list(http, filter=f"{query} severity>=ERROR").json()["entries"]
    assert [(e["severity"], e["textPayload"]) for e in errors] == [("ERROR", "careful: this goes to stderr")]
    later = entries_list(http, filter=f'{query} AND timestamp>"{tail[0]["timestamp"]}"').json()
    assert later == {}  # nothing newer than the newest: proto3 JSON leaves the empty list out


@pytest.mark.parametrize(
    "body, words",
    [
        ({"filter": 'resource.labels.job_id="1" OR severity=ERROR'}, "'OR'"),
        ({"filter": "NOT severity=ERROR"}, "'NOT'"),
        ({"filter": '(resource.labels.job_id="1")'}, "comparison"),
        ({"filter": 'textPayload:"line"'}, "':'"),
        ({"filter": 'jsonPayload.message="x"'}, "jsonPayload.message"),
        ({"filter": 'resource.type="aiplatform.googleapis.com/PipelineJob"'}, "only ml_job"),
        ({"filter": "severity>=LOUD"}, "LogSeverity"),
        ({"filter": 'timestamp>="yesterday"'}, "RFC 3339"),
        ({"filter": "logName=~workerpool"}, "regular expressions"),
        ({"filter": "x" * 20_001}, "20000"),
        ({"pageSize": 1001}, "page_size"),
        ({"pageSize": -1}, "page_size"),
        ({"orderBy": "severity desc"}, "order_by"),
        ({"pageToken": "not-a-token"}, "pageToken"),
        ({"resourceNames": []}, "resource_names"),
        ({"resourceNames": ["organizations/1"]}, "only projects/"),
        ({"resourceNames": [f"projects/p{i}" for i in range(101)]}, "at most 100"),
        ({"bogus": 1}, '"bogus"'),
    ],
)
def test_unsupported_requests_are_invalid_argument_never_ignored(http, body, words):
    resp = entries_list(http, **body)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT" and words in error["message"], error["message"]


def test_entries_list_needs_a_bearer_token(local_stack):
    resp = httpx.post(f"{local_stack.vertex_url}/v2/entries:list", json={"resourceNames": [f"projects/{PROJECT}"]})
    assert resp.status_code == 401 and resp.json()["error"]["status"] == "UNAUTHENTICATED"


def test_a_growing_log_is_read_from_where_the_last_read_stopped(tmp_path):
    from localvertex import task_logs
    from localvertex.cloud_logging import TaskLogReader, parse_request

    path = task_logs.log_dir(tmp_path, PROJECT) / "123.jsonl"
    log = task_logs.TaskLog(path)
    log.write("INFO", "first")
    reader = TaskLogReader(tmp_path)
    query = parse_request({"resourceNames": [f"projects/{PROJECT}"], "filter": 'resource.labels.job_id="123"'})

    def texts():
        return [e["textPayload"] for e in reader.page(query, 0)[0]]

    assert texts() == ["first"]
    log.write("ERROR", "second")
    with open(path, "a") as fh:
        fh.write('{"t": "2099-01-01T00:00:00Z", "s": "INFO", "m": "half')  # a line still being written
    assert texts() == ["first", "second"]
    with open(path, "a") as fh:
        fh.write(' written", "n": 2}\n')
    assert texts() == ["first", "second", "half written"]
    log.close()
