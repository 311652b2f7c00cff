"""PipelineJobs in the local twin, through the real google-cloud-aiplatform SDK and REST:
a toy two-step pipeline runs (kfp.local in the twin's worker), its artifacts land in the
twin's storage as gs:// URIs, its run shows in ``get_experiment_df``; bad input gets one
Google-style error and records nothing; list filters and pages; cancel; failed tasks.

No ``from __future__ import annotations`` here: kfp reads the components' annotations."""

import concurrent.futures
import time
import uuid

import httpx
import pytest

PROJECT, LOCATION = "local-project", "us-central1"


def _toy_pipeline(tmp_path) -> dict:
    import yaml
    from kfp import compiler, dsl

    from components.entrypoint import exec_python

    @dsl.component(base_image="python:3.11")
    def add(a: int, b: int, metrics: dsl.Output[dsl.Metrics]) -> int:
        metrics.log_metric("sum", a + b)
        return a + b

    # Python replaces the shells, as in the product's long-running components, so a cancel's
    # SIGTERM reaches it (dash would die and leave Python sleeping: components/entrypoint.py).
    @exec_python
    @dsl.component(base_image="python:3.11")
    def show(x: int, seconds: float, page: dsl.Output[dsl.Markdown]):
        import time

        if x < 0:
            raise ValueError(f"negative sum {x}")
        print(f"sleeping {seconds}s", flush=True)
        time.sleep(seconds)
        with open(page.path, "w") as f:
            f.write(f"# {x}")

    @dsl.pipeline(name="toy")
    def toy(a: int = 1, b: int = 2, seconds: float = 0.0):
        s = add(a=a, b=b)
        show(x=s.outputs["Output"], seconds=seconds)

    path = tmp_path / f"toy-{uuid.uuid4().hex[:6]}.yaml"
    compiler.Compiler().compile(toy, str(path))
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def toy_spec(tmp_path_factory):
    return _toy_pipeline(tmp_path_factory.mktemp("toy"))


@pytest.fixture(scope="module")
def api(local_stack):
    from tests.test_localvertex import _assertion

    token = httpx.post(
        f"{local_stack.vertex_url}/token",
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": _assertion(local_stack)},
    ).json()["access_token"]
    base = f"{local_stack.vertex_url}/v1/projects/{PROJECT}/locations/{LOCATION}"
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        yield client


def job_body(spec: dict, **params) -> dict:
    return {
        "displayName": "toy-run",
        "pipelineSpec": spec,
        "runtimeConfig": {"gcsOutputDirectory": "gs://local-bucket/pipeline-root", "parameterValues": params},
        "labels": {"suite": "twin"},
    }


def wait_done(api, name: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get(f"pipelineJobs/{name}").json()
        if job["state"] in ("PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"{name} still {job['state']}")


def test_sdk_submit_with_experiment_runs_and_shows_in_experiment_df(local_stack, toy_spec, tmp_path):
    import google.auth
    import yaml
    from google.cloud import aiplatform, storage
    from google.cloud.aiplatform import initializer

    credentials, _ = google.auth.default()
    aiplatform.init(
        project=PROJECT,
        location=LOCATION,
        credentials=credentials,
        api_endpoint=local_stack.vertex_url,
        api_transport="rest",
    )
    experiment = f"exp-{uuid.uuid4().hex[:6]}"
    aiplatform.init(experiment=experiment, experiment_tensorboard=False)
    template = tmp_path / "toy.yaml"
    template.write_text(yaml.safe_dump(toy_spec))
    # A bucket the SDK creates itself: for an existing one it asks Resource Manager (not
    # Vertex AI, unreachable offline) for the project number, retrying for 60 s.
    bucket = f"runs-{uuid.uuid4().hex[:8]}"
    try:
        job = aiplatform.PipelineJob(
            display_name="toy",
            template_path=str(template),
            pipeline_root=f"gs://{bucket}/root",
            parameter_values={"a": 3},
        )
        job.submit(experiment=experiment, service_account="runner@local-project.iam.gserviceaccount.com")
        job.wait()
        assert job.state.name == "PIPELINE_STATE_SUCCEEDED"
        details = {t.task_name: t for t in job.gca_resource.job_detail.task_details}
        assert set(details) == {"toy", "add", "show"}
        assert all(t.state.name == "SUCCEEDED" and t.start_time and t.end_time for t in details.values())
        page = details["show"].outputs["page"].artifacts[0]
        assert page.uri.startswith(f"gs://{bucket}/root/") and page.schema_title == "system.Markdown"
        blob = storage.Client(project=PROJECT).bucket(bucket).blob(page.uri.split("/", 3)[3])
        assert blob.download_as_text() == "# 5"
        df = aiplatform.get_experiment_df(experiment)
        row = df[df.run_name == job.name].iloc[0]
        assert (row["param.a"], row["param.b"], row["metric.sum"], row["state"]) == (3, 2, 5, "COMPLETE")
        assert row["run_type"] == "system.PipelineRun"
    finally:
        initializer.global_config.__init__()


@pytest.mark.parametrize(
    "change, status, words",
    [
        (lambda b: b["runtimeConfig"]["parameterValues"].update(c=1), "INVALID_ARGUMENT", "parameter c"),
        (lambda b: b["runtimeConfig"]["parameterValues"].update(a="x"), "INVALID_ARGUMENT", "parameter a"),
        (lambda b: b["runtimeConfig"]["parameterValues"].update(a=1.5), "INVALID_ARGUMENT", "parameter a"),
        (lambda b: b["pipelineSpec"].update(bogus=1), "INVALID_ARGUMENT", "bogus"),
        (lambda b: b["pipelineSpec"]["root"].update(dag={"tasks": {}}), "INVALID_ARGUMENT", "no tasks"),
        (lambda b: b.update(pipelineSpec={}), "INVALID_ARGUMENT", "pipeline_spec"),
        (lambda b: b["runtimeConfig"].update(gcsOutputDirectory="/tmp/x"), "INVALID_ARGUMENT", "gcs_output_directory"),
        (lambda b: b.update(unknownField=1), "INVALID_ARGUMENT", "unknownField"),
    ],
)
def test_bad_input_is_one_error_and_records_nothing(api, toy_spec, change, status, words):
    import copy

    before = len(api.get("pipelineJobs", params={"pageSize": 1000}).json().get("pipelineJobs", []))
    body = copy.deepcopy(job_body(toy_spec, a=1))
    change(body)
    resp = api.post("pipelineJobs", json=body)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["status"] == status and words in error["message"], error
    assert len(api.get("pipelineJobs", params={"pageSize": 1000}).json().get("pipelineJobs", [])) == before


def test_duplicate_id_list_filter_paging_delete(api, toy_spec):
    run_id = f"dup-{uuid.uuid4().hex[:6]}"
    first = api.post("pipelineJobs", params={"pipelineJobId": run_id}, json=job_body(toy_spec, a=1))
    assert first.status_code == 200 and first.json()["state"] == "PIPELINE_STATE_PENDING"
    again = api.post("pipelineJobs", params={"pipelineJobId": run_id}, json=job_body(toy_spec, a=2))
    assert (again.status_code, again.json()["error"]["status"]) == (409, "ALREADY_EXISTS")
    assert api.get(f"pipelineJobs/{run_id}").json()["runtimeConfig"]["parameterValues"] == {"a": 1}
    tag = uuid.uuid4().hex[:6]
    names = [
        api.post("pipelineJobs", json={**job_body(toy_spec), "labels": {"batch": tag}}).json()["name"] for _ in range(3)
    ]
    page = api.get("pipelineJobs", params={"filter": f'labels.batch="{tag}"', "pageSize": 2}).json()
    assert len(page["pipelineJobs"]) == 2 and page["nextPageToken"]
    rest = api.get(
        "pipelineJobs", params={"filter": f'labels.batch="{tag}"', "pageSize": 2, "pageToken": page["nextPageToken"]}
    ).json()
    assert sorted(j["name"] for j in page["pipelineJobs"] + rest["pipelineJobs"]) == sorted(names)
    oldest = api.get(
        "pipelineJobs", params={"filter": f'labels.batch="{tag}" AND display_name="toy-run"', "orderBy": "create_time"}
    ).json()["pipelineJobs"][0]
    assert oldest["name"] == names[0]
    since = api.get("pipelineJobs", params={"filter": f'create_time>"{oldest["createTime"]}" AND labels.batch:*'})
    assert names[0] not in [j["name"] for j in since.json()["pipelineJobs"]]
    for bad in (
        {"filter": "state=NOPE"},
        {"filter": "nosuch=1"},
        {"filter": "labels.a="},
        {"pageToken": "!!"},
        {"orderBy": "name desc"},
    ):
        resp = api.get("pipelineJobs", params=bad)
        assert (resp.status_code, resp.json()["error"]["status"]) == (400, "INVALID_ARGUMENT"), bad
    for name in names + [first.json()["name"]]:
        job_id = name.rsplit("/", 1)[1]
        wait_done(api, job_id)
        op = api.delete(f"pipelineJobs/{job_id}").json()
        assert op["done"] and api.get(f"operations/{op['name'].rsplit('/', 1)[1]}").json()["done"]
        assert api.get(f"pipelineJobs/{job_id}").status_code == 404


def test_failed_task_names_itself_and_its_error(api, toy_spec):
    job = api.post("pipelineJobs", json=job_body(toy_spec, a=-5, b=1)).json()
    done = wait_done(api, job["name"].rsplit("/", 1)[1])
    assert done["state"] == "PIPELINE_STATE_FAILED"
    assert "show" in done["error"]["message"] and "negative sum -4" in done["error"]["message"]
    tasks = {t["taskName"]: t for t in done["jobDetail"]["taskDetails"]}
    assert tasks["add"]["state"] == "SUCCEEDED" and tasks["show"]["state"] == "FAILED"
    assert "negative sum -4" in tasks["show"]["error"]["message"]


def test_cancel_running_and_pending(api, toy_spec, local_stack):
    slow = api.post("pipelineJobs", json=job_body(toy_spec, seconds=120.0)).json()["name"].rsplit("/", 1)[1]
    queued = api.post("pipelineJobs", json=job_body(toy_spec)).json()["name"].rsplit("/", 1)[1]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        tasks = api.get(f"pipelineJobs/{slow}").json().get("jobDetail", {}).get("taskDetails", [])
        if any(t["taskName"] == "show" and t["state"] == "RUNNING" for t in tasks):
            break
        time.sleep(0.3)
    else:
        raise AssertionError(f"{slow}: show never started")
    # Cancel while show's Python sleeps (not while pip runs): the case a late cancel meets.
    log = local_stack.data_dir / "pipelines" / "runs" / slow / "pipeline.log"
    while "sleeping 120.0s" not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"{slow}: show never slept"
        time.sleep(0.3)
    assert api.get(f"pipelineJobs/{queued}").json()["state"] == "PIPELINE_STATE_PENDING"
    assert api.post(f"pipelineJobs/{queued}:cancel").status_code == 200
    assert api.get(f"pipelineJobs/{queued}").json()["state"] == "PIPELINE_STATE_CANCELLED"
    assert api.post(f"pipelineJobs/{slow}:cancel").status_code == 200
    done = wait_done(api, slow, timeout=60)
    assert done["state"] == "PIPELINE_STATE_CANCELLED"
    tasks = {t["taskName"]: t["state"] for t in done["jobDetail"]["taskDetails"]}
    assert tasks["show"] == "CANCELLED"
    again = api.post(f"pipelineJobs/{slow}:cancel")
    assert (again.status_code, again.json()["error"]["status"]) == (400, "FAILED_PRECONDITION")


@pytest.mark.slow
def test_twenty_concurrent_submits_all_run_in_turn(api, toy_spec):
    tag = uuid.uuid4().hex[:6]
    body = {**job_body(toy_spec), "labels": {"burst": tag}}
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: api.post("pipelineJobs", json=body), range(20)))
    assert all(a.status_code == 200 for a in answers)
    names = {a.json()["name"].rsplit("/", 1)[1] for a in answers}
    assert len(names) == 20
    deadline, most_running = time.monotonic() + 600, 0
    while time.monotonic() < deadline:
        jobs = api.get("pipelineJobs", params={"filter": f"labels.burst={tag}", "pageSize": 100}).json()["pipelineJobs"]
        most_running = max(most_running, sum(j["state"] == "PIPELINE_STATE_RUNNING" for j in jobs))
        if all(j["state"] == "PIPELINE_STATE_SUCCEEDED" for j in jobs):
            break
        time.sleep(0.5)
    assert {j["name"].rsplit("/", 1)[1] for j in jobs} == names
    assert all(j["state"] == "PIPELINE_STATE_SUCCEEDED" for j in jobs) and most_running == 1


def test_run_executing_when_the_server_stops_ends_failed_saying_so(tmp_path, toy_spec):
    from localvertex import LocalStack
    from localvertex.pipelines.runner import STOPPED_MESSAGE
    from tests.test_twin_metadata import api_client

    def client(stack):
        c = api_client(stack)
        c.base_url = f"{stack.vertex_url}/v1/projects/{PROJECT}/locations/{LOCATION}/"
        return c

    with LocalStack(tmp_path / "data", bucket="local-bucket", project=PROJECT) as stack, client(stack) as api:
        job_id = api.post("pipelineJobs", json=job_body(toy_spec, seconds=120.0)).json()["name"].rsplit("/", 1)[1]
        deadline = time.monotonic() + 120
        while api.get(f"pipelineJobs/{job_id}").json()["state"] != "PIPELINE_STATE_RUNNING":
            assert time.monotonic() < deadline
            time.sleep(0.3)
    with LocalStack(tmp_path / "data", bucket="local-bucket", project=PROJECT) as stack, client(stack) as api:
        job = api.get(f"pipelineJobs/{job_id}").json()
        assert job["state"] == "PIPELINE_STATE_FAILED" and job["error"]["message"] == STOPPED_MESSAGE
        run_ctx = job["jobDetail"]["pipelineRunContext"]["name"]
        meta = api_client(stack)
        runs = meta.get("executions", params={"filter": f'in_context("{run_ctx}") AND schema_title="system.Run"'})
        assert runs.json()["executions"][0]["state"] == "FAILED"
