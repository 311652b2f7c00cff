"""Runs through the twin's Pipelines with the real, unpatched ``google-cloud-aiplatform`` SDK:
cancelling the real compiled pipeline while ``wait-for-tuning`` waits ends the run CANCELLED
**and** its tuning job JOB_STATE_CANCELLED; caching as Vertex AI does it (a second run's
cached task is SKIPPED with a CACHED execution; ``enable_caching=False`` runs it again).

No ``from __future__ import annotations`` here: kfp reads the components' annotations."""

import uuid
from pathlib import Path

import pytest

from tests.harness import wait_until

PROJECT, LOCATION = "local-project", "us-central1"
REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = REPO_ROOT / "compiled" / "visual_defect_sft.yaml"
ENDED = {"PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED"}


@pytest.fixture()
def sdk(local_stack):
    """aiplatform pointed at the twin (the endpoint and the stack's credentials only)."""
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


def submit(aiplatform, template: str, params: dict, **kwargs):
    """A PipelineJob submitted to a fresh bucket with a service account: the SDK then skips
    its Resource Manager lookup (unreachable offline; it retries it for 60 s)."""
    job = aiplatform.PipelineJob(
        display_name=kwargs.pop("display_name", "twin-run"),
        template_path=template,
        pipeline_root=f"gs://runs-{uuid.uuid4().hex[:8]}/root",
        parameter_values=params,
        **kwargs,
    )
    job.submit(service_account="runner@local-project.iam.gserviceaccount.com")
    return job


def tasks_of(job) -> dict:
    job._sync_gca_resource()
    return {t.task_name: t for t in job.gca_resource.job_detail.task_details}


@pytest.mark.slow
def test_cancel_while_waiting_for_tuning_cancels_the_tuning_job(local_stack, sdk):
    from google import genai

    if not TEMPLATE.exists():
        pytest.skip("compiled/visual_defect_sft.yaml is missing (python -m pipeline compile)")
    params = {"project": PROJECT, "location": LOCATION, "bucket": "gs://local-bucket"}
    params.update(num_images=40, epoch_count=50, poll_interval_seconds=2)  # tuning still runs when cancelled
    job = submit(sdk, str(TEMPLATE), params, display_name="cancel-me")
    wait_until(
        lambda: (t := tasks_of(job).get("wait-for-tuning")) and t.state.name == "RUNNING",
        300,
        "wait-for-tuning running",
    )
    launch = tasks_of(job)["launch-tuning"]
    tuning_job = launch.execution.metadata["output:job_name"]
    assert "/tuningJobs/" in tuning_job and tuning_job in launch.execution.metadata["output:gcp_resources"]
    # Its first poll is printed after its SIGTERM handler is installed (a cancel before that
    # stops the task without cancelling the job, on Vertex AI too: see SETTLE_S in pipeline/vertex_smoke/plan.py).
    log = local_stack.data_dir / "pipelines" / "runs" / job.name / "pipeline.log"
    wait_until(lambda: f"{tuning_job}: JOB_STATE_" in log.read_text(errors="replace"), 120, "wait-for-tuning polling")
    client = genai.Client(vertexai=True, project=PROJECT, location=LOCATION)
    assert client.tunings.get(name=tuning_job).state.name in ("JOB_STATE_PENDING", "JOB_STATE_RUNNING")

    job.cancel()
    wait_until(lambda: job.state.name in ENDED, 120, "the run ending", poll=1)
    assert job.state.name == "PIPELINE_STATE_CANCELLED"
    assert tasks_of(job)["wait-for-tuning"].state.name == "CANCELLED"
    ended = wait_until(
        lambda: (j := client.tunings.get(name=tuning_job)).has_ended and j, 60, "the tuning job ending", poll=1
    )
    assert ended.state.name == "JOB_STATE_CANCELLED"
    listed = {j.name: j.state.name for j in client.tunings.list()}
    assert listed[tuning_job] == "JOB_STATE_CANCELLED"


def _caching_pipeline(tmp_path) -> str:
    """``add`` caches (KFP's default); ``show`` turns its own caching off at compile time."""
    from kfp import compiler, dsl

    @dsl.component(base_image="python:3.11")
    def add(a: int, b: int, metrics: dsl.Output[dsl.Metrics]) -> int:
        metrics.log_metric("sum", a + b)
        return a + b

    @dsl.component(base_image="python:3.11")
    def show(x: int) -> str:
        return f"sum {x}"

    @dsl.pipeline(name="caching-toy")
    def caching_toy(a: int = 1, b: int = 2):
        total = add(a=a, b=b)
        show(x=total.outputs["Output"]).set_caching_options(False)

    path = tmp_path / "caching-toy.yaml"
    compiler.Compiler().compile(caching_toy, str(path))
    return str(path)


def _task_states(job) -> dict[str, tuple[str, str]]:
    """{task: (task state, its execution's state)} of an ended run."""
    return {name: (t.state.name, t.execution.state.name) for name, t in tasks_of(job).items() if name != "caching-toy"}


@pytest.mark.slow
def test_caching_follows_enable_caching_and_each_tasks_own_setting(sdk, tmp_path):
    template = _caching_pipeline(tmp_path)
    params = {"a": int(uuid.uuid4().int % 10**6), "b": 2}  # a key no earlier run has cached

    def run(**kwargs):
        job = submit(sdk, template, params, **kwargs)
        job.wait()
        assert job.state.name == "PIPELINE_STATE_SUCCEEDED"
        return job

    first = run()
    assert _task_states(first) == {"add": ("SUCCEEDED", "COMPLETE"), "show": ("SUCCEEDED", "COMPLETE")}
    second = run()  # enable_caching unset: the compiled settings stand
    assert _task_states(second) == {"add": ("SKIPPED", "CACHED"), "show": ("SUCCEEDED", "COMPLETE")}
    cached = tasks_of(second)["add"]
    assert cached.execution.metadata["output:Output"] == params["a"] + 2
    assert cached.outputs["metrics"].artifacts[0].metadata["sum"] == params["a"] + 2
    third = run(enable_caching=False)  # the job's setting overrides every task's
    assert _task_states(third) == {"add": ("SUCCEEDED", "COMPLETE"), "show": ("SUCCEEDED", "COMPLETE")}


def test_list_with_the_sdks_simple_view_reads_only_the_masked_fields(sdk, tmp_path):
    """``PipelineJob.list(enable_simple_view=True)`` sends the SDK's readMask; the twin answers
    with those fields only (a default list keeps whole jobs, as Vertex AI's does)."""
    import httpx

    template = _caching_pipeline(tmp_path)
    job = submit(sdk, template, {"a": 1, "b": 2}, display_name="masked-list")
    try:
        [simple] = sdk.PipelineJob.list(filter='display_name="masked-list"', enable_simple_view=True)
        resource = simple.gca_resource
        assert resource.name == job.resource_name and resource.state.name.startswith("PIPELINE_STATE_")
        assert set(dict(resource.pipeline_spec)) == {"pipelineInfo"}
        assert not resource.runtime_config.gcs_output_directory and not resource.service_account
        [whole] = sdk.PipelineJob.list(filter='display_name="masked-list"')
        assert whole.gca_resource.runtime_config.gcs_output_directory and "root" in dict(
            whole.gca_resource.pipeline_spec
        )
    finally:
        if job.state.name not in ENDED:
            job.cancel()
    base = sdk.initializer.global_config.api_endpoint
    import google.auth.transport.requests

    credentials = sdk.initializer.global_config.credentials
    credentials.refresh(google.auth.transport.requests.Request())
    token = credentials.token
    bad = httpx.get(
        f"{base}/v1/projects/{PROJECT}/locations/{LOCATION}/pipelineJobs",
        params={"readMask": "name,noSuchField"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert (bad.status_code, bad.json()["error"]["status"]) == (400, "INVALID_ARGUMENT"), bad.text
    assert "noSuchField" in bad.json()["error"]["message"]


@pytest.mark.slow
def test_runs_from_a_registry_template_record_its_version(local_stack, sdk, tmp_path):
    """The console's path: a template uploaded with the unchanged RegistryClient; a run created
    with its ``templateUri`` (with the spec, as the SDK and the console send it, or alone) records
    ``templateMetadata.version``; a missing template is 404 and creates nothing."""
    import google.auth.transport.requests
    import httpx
    from kfp.registry import RegistryClient

    from localvertex.pipelines.registry import host_url

    credentials = sdk.initializer.global_config.credentials
    credentials.refresh(google.auth.transport.requests.Request())
    host = host_url(local_stack.vertex_url, PROJECT, LOCATION)
    package, version = RegistryClient(host=host, auth=credentials).upload_pipeline(
        _caching_pipeline(tmp_path), tags=["nightly"]
    )
    api = httpx.Client(
        base_url=f"{local_stack.vertex_url}/v1/projects/{PROJECT}/locations/{LOCATION}/",
        headers={"Authorization": f"Bearer {credentials.token}"},
        timeout=30,
    )
    runtime = {"gcsOutputDirectory": "gs://local-bucket/template-runs", "parameterValues": {"a": 7}}
    alone = api.post("pipelineJobs", json={"templateUri": f"{host}/{package}/nightly", "runtimeConfig": runtime})
    assert alone.status_code == 200, alone.text
    assert alone.json()["templateMetadata"] == {"version": version}
    job = sdk.PipelineJob.get(alone.json()["name"])
    wait_until(lambda: job.state.name in ENDED, 120, "the template run ending")
    assert job.state.name == "PIPELINE_STATE_SUCCEEDED"
    found = api.get("pipelineJobs", params={"filter": f'template_metadata.version="{version}"'}).json()
    assert [j["name"] for j in found["pipelineJobs"]] == [job.resource_name]
    before = len(api.get("pipelineJobs", params={"pageSize": 1000}).json()["pipelineJobs"])
    missing = api.post("pipelineJobs", json={"templateUri": f"{host}/{package}/no-such-tag", "runtimeConfig": runtime})
    assert (missing.status_code, missing.json()["error"]["status"]) == (404, "NOT_FOUND"), missing.text
    assert len(api.get("pipelineJobs", params={"pageSize": 1000}).json()["pipelineJobs"]) == before
