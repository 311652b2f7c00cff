"""Offline tests of the Vertex AI commands (pipeline/commands/submit.py, schedule.py, upload.py,
compare.py; pipeline/vertex.py).

The requests are built by the real SDKs (google-cloud-aiplatform, kfp.registry). Where a
command sends them, they go to a loopback HTTP server that plays Vertex AI (REST transport),
Cloud Storage (STORAGE_EMULATOR_HOST) and Artifact Registry, and records every request. A
socket guard makes any other connection fail, so no test can reach Google.

The same commands also run end to end against the local twin (a real server that executes
the runs), without any fake or patch: submit in tests/test_twin_vertex_smoke.py (``make
submit``) and tests/test_twin_pipelines.py, schedule in tests/test_twin_schedules_api.py,
tests/test_twin_registry_env.py and tests/test_twin_nightly_soak.py, upload in
tests/test_twin_registry.py, compare in tests/test_twin_metadata.py, vertex-smoke in
tests/test_twin_vertex_smoke.py. What stays here is what the twin cannot stand in for: the
exact bodies Google receives (the twin accepts any body its schema allows, so it would not
notice a changed label or caching choice), Google's own refusals (403, quota), a project
taken from gcloud's ADC, Artifact Registry's https host, and everything checked before a
request is sent (one fast test each, no server).
"""

import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import google.auth
import google.auth.credentials
import pandas as pd
import pytest
import yaml
from google.cloud import aiplatform
from google.cloud.aiplatform import initializer
from google.cloud.aiplatform.utils import resource_manager_utils
from rich.console import Console
from typer.testing import CliRunner

from pipeline import vertex
from pipeline.commands import app
from pipeline.pipeline import PIPELINE_NAME, compile_pipeline

PROJECT, LOCATION, BUCKET = "test-project", "europe-west4", "gs://qc-bucket"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"
CONTEXTS = f"{PARENT}/metadataStores/default/contexts"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def template(tmp_path_factory) -> Path:
    """The real pipeline, compiled afresh (independent of the checked-in YAML)."""
    return compile_pipeline(tmp_path_factory.mktemp("compiled") / "visual_defect_sft.yaml")


@pytest.fixture(autouse=True)
def no_internet(monkeypatch):
    """Any TCP connection other than to 127.0.0.1 fails at once."""
    real_connect = socket.socket.connect

    def guarded(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        if sock.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1", "localhost"):
            raise OSError(f"test tried to reach {address}: tests must stay offline")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(autouse=True)
def clean_aiplatform_config():
    """aiplatform.init() mutates a global; restore it after each test."""
    saved = dict(vars(initializer.global_config))
    yield
    vars(initializer.global_config).clear()
    vars(initializer.global_config).update(saved)


class StubCredentials(google.auth.credentials.Credentials):
    """Credentials with a fixed token: no metadata server, no OAuth exchange."""

    def __init__(self):
        super().__init__()
        self.token = "test-token"

    def refresh(self, request):
        self.token = "test-token"


@pytest.fixture
def adc(monkeypatch):
    """google.auth.default() returns stub credentials (the user's ADC, offline)."""
    credentials = StubCredentials()
    monkeypatch.setattr(google.auth, "default", lambda *a, **k: (credentials, "adc-project"))
    return credentials


class FakeGoogle(BaseHTTPRequestHandler):
    """Vertex AI REST + Cloud Storage JSON API + Artifact Registry KFP upload, recorded."""

    def log_message(self, *args):
        pass

    def _reply(self, code, body):
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_DELETE(self):
        self._handle("DELETE")

    def _handle(self, method):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlparse(self.path)
        path, query = unquote(url.path), parse_qs(url.query)
        state = self.server.state
        state["requests"].append(
            {
                "method": method,
                "path": path,
                "query": query,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body,
            }
        )
        # Cloud Storage: the SDK checks that the pipeline_root bucket exists and is the project's.
        if path.startswith("/storage/v1/b/"):
            return self._reply(200, {"name": path.split("/")[4], "projectNumber": "123456"})
        # Artifact Registry KFP repository: upload answers "package/version".
        if path == "/kfp-repo" and method == "POST":
            return self._reply(200, f"{PIPELINE_NAME}/sha256:0123abcd")
        if not path.startswith("/v1/"):
            return self._reply(404, {"error": {"code": 404, "message": "no route", "status": "NOT_FOUND"}})
        name = path[len("/v1/") :]
        if name.endswith("/pipelineJobs") and method == "POST":
            job = json.loads(body)
            job_id = query["pipelineJobId"][0]
            parent = name[: -len("/pipelineJobs")]
            job.update(
                name=f"{parent}/pipelineJobs/{job_id}",
                state="PIPELINE_STATE_RUNNING",
                jobDetail={
                    "pipelineRunContext": {
                        "name": f"{parent}/metadataStores/default/contexts/{job_id}",
                        "schemaTitle": "system.PipelineRun",
                    }
                },
            )
            state["jobs"][job["name"]] = job
            return self._reply(200, job)
        if name == f"{PARENT}/pipelineJobs" and method == "GET":
            return self._reply(200, {"pipelineJobs": list(state["jobs"].values())})
        if name in state["jobs"]:
            return self._reply(200, state["jobs"][name])
        if name == f"{PARENT}/metadataStores/default":
            return self._reply(200, {"name": name})
        if name.startswith(CONTEXTS) and name.endswith(":addContextChildren"):
            return self._reply(200, {})
        if name.startswith(CONTEXTS + "/") and method == "GET":
            context_id = name.rsplit("/", 1)[-1]
            if context_id in state["experiments"]:
                return self._reply(
                    200, {"name": name, "displayName": context_id, "schemaTitle": "system.Experiment", "metadata": {}}
                )
        if name == f"{PARENT}/metadataStores/default/executions":
            return self._reply(200, {"executions": state["executions"]})
        if name == f"{PARENT}/metadataStores/default/artifacts":
            return self._reply(200, {"artifacts": state["artifacts"]})
        if name == f"{PARENT}/schedules" and method == "POST":
            schedule = json.loads(body)
            schedule.update(name=f"{PARENT}/schedules/42", state="ACTIVE")
            state["schedules"][schedule["name"]] = schedule
            return self._reply(200, schedule)
        if name == f"{PARENT}/schedules" and method == "GET":
            return self._reply(200, {"schedules": list(state["schedules"].values())})
        if name.endswith((":pause", ":resume")) and name.split(":")[0] in state["schedules"]:
            return self._reply(200, {})
        if name in state["schedules"] and method == "DELETE":
            return self._reply(
                200,
                {
                    "name": f"{PARENT}/operations/7",
                    "done": True,
                    "response": {"@type": "type.googleapis.com/google.protobuf.Empty"},
                },
            )
        if name in state["schedules"]:
            return self._reply(200, state["schedules"][name])
        return self._reply(404, {"error": {"code": 404, "message": f"{name} not found", "status": "NOT_FOUND"}})


@pytest.fixture
def google_api(monkeypatch, adc):
    """A loopback Google: the SDKs' requests land here and are recorded in server.state."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeGoogle)
    server.state = {
        "requests": [],
        "jobs": {},
        "schedules": {},
        "experiments": set(),
        "executions": [],
        "artifacts": [],
    }
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    server.url = url
    # aiplatform: the REST transport to our endpoint (kept by the command's own aiplatform.init,
    # which would point at a local Vertex AI instead if its GOOGLE_VERTEX_BASE_URL were set).
    monkeypatch.delenv("GOOGLE_VERTEX_BASE_URL", raising=False)
    monkeypatch.setattr(initializer.global_config, "_api_endpoint", url)
    monkeypatch.setattr(initializer.global_config, "_api_transport", "rest")
    # google-cloud-storage honours STORAGE_EMULATOR_HOST.
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)
    # The bucket-ownership check asks Cloud Resource Manager (gRPC) for the project number.
    monkeypatch.setattr(resource_manager_utils, "get_project_number", lambda *a, **k: "123456")
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def cli():
    runner = CliRunner()

    def invoke(*args):  # the root CLI, as under `python -m pipeline`
        return runner.invoke(app, [str(a) for a in args])

    return invoke


def requests_to(server, method, suffix):
    return [r for r in server.state["requests"] if r["method"] == method and r["path"].endswith(suffix)]


# --------------------------------------------------------------------------- the request, built by the SDK


def test_build_job_request_carries_parameters_root_labels(template):
    aiplatform.init(project=PROJECT, location=LOCATION, credentials=google.auth.credentials.AnonymousCredentials())
    job = vertex.build_job(
        project=PROJECT,
        location=LOCATION,
        bucket=BUCKET,
        assignments=["num_images=400", "evaluate_base_model=true", "defect_ratio=0.25"],
        experiment="qc-exp",
        display_name="nightly-check",
        template=template,
    )
    request = job.to_dict()
    runtime = request["runtimeConfig"]
    assert runtime["gcsOutputDirectory"] == "gs://qc-bucket/pipeline_root"
    assert runtime["parameterValues"] == {
        "project": PROJECT,
        "location": LOCATION,
        "bucket": BUCKET,
        "num_images": 400,
        "evaluate_base_model": True,
        "defect_ratio": 0.25,
    }
    assert request["labels"] == {"pipeline": PIPELINE_NAME, "trigger": "submit", "experiment": "qc-exp"}
    assert request["displayName"] == "nightly-check"
    assert request["pipelineSpec"]["pipelineInfo"]["name"] == PIPELINE_NAME
    assert job.job_id.startswith(PIPELINE_NAME + "-")


def _task_caching(request) -> dict:
    """Every task's cache setting, the tasks inside the exit handler's and conditions' DAGs included."""
    spec = request["pipelineSpec"]
    dags = [spec["root"]["dag"]] + [c["dag"] for c in spec["components"].values() if "dag" in c]
    return {
        name: task.get("cachingOptions", {}).get("enableCache", False)
        for dag in dags
        for name, task in dag["tasks"].items()
    }


def test_cache_keeps_compiled_choices_and_no_cache_turns_all_off(template):
    aiplatform.init(project=PROJECT, location=LOCATION, credentials=google.auth.credentials.AnonymousCredentials())
    default = _task_caching(
        vertex.build_job(project=PROJECT, location=LOCATION, bucket=BUCKET, template=template).to_dict()
    )
    assert default["split-manifest"] is True  # a data step stays cached
    assert default["launch-tuning"] is False and default["wait-for-tuning"] is False  # never a stale tuning
    off = _task_caching(
        vertex.build_job(project=PROJECT, location=LOCATION, bucket=BUCKET, cache=False, template=template).to_dict()
    )
    assert set(off.values()) == {False}


# Against the twin: tests/test_twin_vertex_smoke.py::test_make_submit_creates_the_run_linked_to_its_experiment.
def test_submit_sends_the_job_and_links_the_experiment(cli, google_api, template):
    google_api.state["experiments"].add("qc-exp")
    result = cli(
        "submit",
        "--project",
        PROJECT,
        "--location",
        LOCATION,
        "--bucket",
        BUCKET,
        "--experiment",
        "qc-exp",
        "--service-account",
        "runner@test-project.iam.gserviceaccount.com",
        "--no-cache",
        "-p",
        "epoch_count=3",
        "--display-name",
        "try-3-epochs",
        "--template",
        template,
    )
    assert result.exit_code == 0, result.output
    [create] = requests_to(google_api, "POST", f"{PARENT}/pipelineJobs")
    job = json.loads(create["body"])
    assert create["headers"]["authorization"] == "Bearer test-token"
    assert job["displayName"] == "try-3-epochs"
    assert job["serviceAccount"] == "runner@test-project.iam.gserviceaccount.com"
    assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://qc-bucket/pipeline_root"
    assert job["runtimeConfig"]["parameterValues"] == {
        "project": PROJECT,
        "location": LOCATION,
        "bucket": BUCKET,
        "epoch_count": 3,
    }
    assert job["labels"]["experiment"] == "qc-exp"
    assert set(_task_caching(job).values()) == {False}
    job_id = create["query"]["pipelineJobId"][0]
    # The SDK then adds the run's context to the experiment's.
    [link] = requests_to(google_api, "POST", f"{CONTEXTS}/qc-exp:addContextChildren")
    assert json.loads(link["body"]) == {"childContexts": [f"{CONTEXTS}/{job_id}"]}
    assert (
        f"https://console.cloud.google.com/vertex-ai/locations/{LOCATION}/pipelines/runs/{job_id}?project={PROJECT}"
    ) in result.stdout


def test_submit_takes_the_project_from_adc(cli, google_api, template):
    result = cli("submit", "--bucket", BUCKET, "--location", LOCATION, "--template", template)
    assert result.exit_code == 0, result.output
    [create] = requests_to(google_api, "POST", "/projects/adc-project/locations/europe-west4/pipelineJobs")
    assert json.loads(create["body"])["runtimeConfig"]["parameterValues"]["project"] == "adc-project"


@pytest.mark.parametrize(
    "args, message",
    [
        (["-p", "num_imags=10"], "unknown parameter 'num_imags'; did you mean num_images?"),
        (["-p", "num_images=many"], "num_images: 'many' is not a valid int"),
        (["-p", "adapter_size=3"], "adapter_size=3 must be one of"),
        (["-p", "defect_ratio=1.5"], "defect_ratio=1.5 must be in [0, 1]"),
        (["-p", "epoch_count"], "expected key=value"),
        (["-p", "project=other"], "use --project instead"),
        (["--experiment", "QC_Exp"], "--experiment 'QC_Exp'"),
        # The pipeline's name is its runs' system.Pipeline context: the twin showed the SDK refuse it.
        (["--experiment", "visual-defect-sft"], "is the pipeline's own name"),
        # A retired base model fails before any request, naming the replacement (issue 30).
        (["-p", "base_model=gemini-2.5-flash"], "gemini-2.5-flash was retired on 2026-06-17"),
        (["-p", "base_model=gemini-2.5-pro"], "use gemini-3.5-flash instead"),
        (["-p", "thinking=1024"], "takes a thinking level"),
    ],
)
def test_bad_parameters_exit_2_with_one_line_before_any_request(cli, google_api, template, args, message):
    for command in (["submit"], ["schedule", "--cron", "0 2 * * *"]):
        result = cli(*command, "--project", PROJECT, "--bucket", BUCKET, "--template", template, *args)
        assert result.exit_code == 2, result.output
        assert message in result.output
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert google_api.state["requests"] == []


def test_unknown_region_is_one_line(cli, adc, template):
    result = cli("submit", "--project", PROJECT, "--location", "mars-east1", "--bucket", BUCKET, "--template", template)
    assert result.exit_code == 2, result.output
    # Checked before anything is sent, against the base model's tuning regions (platform_facts/gemini.py).
    assert result.output.strip().startswith(
        "error: parameter location 'mars-east1' does not run gemini-3.5-flash tuning jobs; use us-central1, europe-west4"
    )
    assert len(result.output.strip().splitlines()) == 1


def test_bucket_must_be_a_gcs_uri(cli, template):
    result = cli("submit", "--project", PROJECT, "--bucket", "qc-bucket", "--template", template)
    assert result.exit_code == 2 and "must be a gs:// URI" in result.output


def test_missing_adc_is_one_helpful_line(cli, monkeypatch, template):
    import google.auth.exceptions

    def no_adc(*args, **kwargs):
        raise google.auth.exceptions.DefaultCredentialsError("Your default credentials were not found.")

    monkeypatch.setattr(google.auth, "default", no_adc)
    for args in (
        ["submit", "--project", PROJECT, "--bucket", BUCKET, "--template", template],
        ["compare", "--experiment", "qc-exp"],
        ["upload", "--repo", "https://europe-west4-kfp.pkg.dev/p/r", "--template", template],
    ):
        result = cli(*args)
        assert result.exit_code == 1, result.output
        assert "gcloud auth application-default login" in result.output
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_api_errors_are_one_line(cli, google_api, template):
    # No experiment context on the server: the SDK's get_or_create then fails to create it (404 here).
    result = cli(
        "submit",
        "--project",
        PROJECT,
        "--location",
        LOCATION,
        "--bucket",
        BUCKET,
        "--experiment",
        "missing-exp",
        "--template",
        template,
    )
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "missing-exp" in result.output
    assert requests_to(google_api, "POST", f"{PARENT}/pipelineJobs") == []  # nothing was created


# --------------------------------------------------------------------------- schedules


# Against the twin: tests/test_twin_registry_env.py (the command), test_twin_nightly_soak.py (its runs).
def test_schedule_request(cli, google_api, template):
    result = cli(
        "schedule",
        "--cron",
        "CRON_TZ=Europe/Berlin 0 2 * * *",
        "--name",
        "qc-nightly",
        "--project",
        PROJECT,
        "--location",
        LOCATION,
        "--bucket",
        BUCKET,
        "--experiment",
        "qc-exp",
        "--service-account",
        "runner@test-project.iam.gserviceaccount.com",
        "-p",
        "num_images=300",
        "--template",
        template,
    )
    assert result.exit_code == 0, result.output
    [create] = requests_to(google_api, "POST", f"{PARENT}/schedules")
    schedule = json.loads(create["body"])
    assert schedule["displayName"] == "qc-nightly"
    assert schedule["cron"] == "CRON_TZ=Europe/Berlin 0 2 * * *"
    assert int(schedule["maxConcurrentRunCount"]) == 1
    # Runs in progress, not only start requests, are bounded: a 6 h tuning wait never overlaps the next night.
    assert int(schedule["maxConcurrentActiveRunCount"]) == 1
    assert not schedule.get("allowQueueing", False)  # a start due while a run is active is skipped, not queued
    request = schedule["createPipelineJobRequest"]
    assert request["parent"] == PARENT
    job = request["pipelineJob"]
    assert job["serviceAccount"] == "runner@test-project.iam.gserviceaccount.com"
    assert job["labels"] == {"pipeline": PIPELINE_NAME, "trigger": "schedule", "experiment": "qc-exp"}
    assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://qc-bucket/pipeline_root"
    assert job["runtimeConfig"]["parameterValues"]["num_images"] == 300
    assert job["pipelineSpec"]["pipelineInfo"]["name"] == PIPELINE_NAME
    # No run was started and nothing was linked to an experiment: only the schedule.
    assert requests_to(google_api, "POST", f"{PARENT}/pipelineJobs") == []
    assert "compare --experiment qc-exp" in result.output
    assert f"locations/{LOCATION}/pipelines/schedules/42" in result.stdout


# Against the twin: tests/test_twin_schedules_api.py::test_the_pipeline_cli_schedule_commands_against_the_twin.
def test_schedule_list_pause_resume_delete(cli, google_api):
    google_api.state["schedules"][f"{PARENT}/schedules/42"] = {
        "name": f"{PARENT}/schedules/42",
        "displayName": "qc-nightly",
        "cron": "0 2 * * *",
        "state": "ACTIVE",
        "startedRunCount": "3",
        "createPipelineJobRequest": {"parent": PARENT},
    }
    where = ["--project", PROJECT, "--location", LOCATION]
    listed = cli("schedule", "--list", *where)
    assert listed.exit_code == 0, listed.output
    assert "qc-nightly" in listed.stdout and "0 2 * * *" in listed.stdout and "ACTIVE" in listed.stdout
    for flag, suffix in (("--pause", ":pause"), ("--resume", ":resume")):
        result = cli("schedule", flag, "qc-nightly", *where)
        assert result.exit_code == 0, result.output
        assert requests_to(google_api, "POST", f"{PARENT}/schedules/42{suffix}")
    result = cli("schedule", "--delete", f"{PARENT}/schedules/42", *where)
    assert result.exit_code == 0, result.output
    assert requests_to(google_api, "DELETE", f"{PARENT}/schedules/42")
    # Lookup by display name filters on the server.
    lists = requests_to(google_api, "GET", f"{PARENT}/schedules")
    assert any(q["query"].get("filter") == ['display_name="qc-nightly"'] for q in lists)


def test_schedule_unknown_name_and_conflicting_actions(cli, google_api):
    where = ["--project", PROJECT, "--location", LOCATION]
    result = cli("schedule", "--pause", "nope", *where)
    assert result.exit_code == 1 and "no schedule named 'nope'" in result.output
    result = cli("schedule", "--list", "--pause", "x", *where)
    assert result.exit_code == 2 and "exactly one of" in result.output
    result = cli("schedule", "--cron", "0 2 * * *", *where)
    assert result.exit_code == 2 and "--cron needs --bucket" in result.output


def test_help_explains_scheduled_runs_and_experiments(cli):
    result = cli("schedule", "--help")
    text = " ".join(result.output.split())
    assert "does not attach scheduled runs to an experiment" in text
    assert "experiment=NAME" in text


# --------------------------------------------------------------------------- upload


# Against the twin: tests/test_twin_registry.py::test_upload_command_against_the_twin.
def test_upload_posts_yaml_and_tags_to_the_registry(cli, google_api, template):
    repo = f"{google_api.url}/kfp-repo"
    result = cli(
        "upload",
        "--repo",
        repo,
        "--tag",
        "latest",
        "--tag",
        "v7",
        "--description",
        "QC inspector tuning",
        "--template",
        template,
    )
    assert result.exit_code == 0, result.output
    [upload] = requests_to(google_api, "POST", "/kfp-repo")
    assert upload["headers"]["authorization"] == "Bearer test-token"
    assert upload["headers"]["description"] == "QC inspector tuning"
    assert upload["headers"]["content-type"].startswith("multipart/form-data")
    body = upload["body"]
    assert b'name="tags"\r\n\r\nlatest,v7\r\n' in body
    assert b'name="content"; filename="visual_defect_sft.yaml"' in body
    assert template.read_bytes() in body
    assert "sha256:0123abcd" in result.output
    assert f"{repo}/{PIPELINE_NAME}/latest" in result.stdout


def test_upload_refuses_version_like_tags(cli, template):
    result = cli(
        "upload", "--repo", "https://us-central1-kfp.pkg.dev/p/r", "--tag", "sha256:abc", "--template", template
    )
    assert result.exit_code == 2 and "sha256" in result.output


# --------------------------------------------------------------------------- compare


def experiment_df() -> pd.DataFrame:
    """Shaped like aiplatform.get_experiment_df() for pipeline runs."""
    return pd.DataFrame(
        [
            {
                "experiment_name": "qc-exp",
                "run_name": "visual-defect-sft-20250101000000",
                "run_type": "system.PipelineRun",
                "state": "COMPLETE",
                "param.num_images": 200.0,
                "param.epoch_count": 5.0,
                "metric.split_train_examples": 160.0,
                "metric.train_example_count": 160.0,
                "metric.eval_defect_type_accuracy": 0.9,
                "metric.eval_status_accuracy": 0.85,
                "metric.base_eval_status_accuracy": 0.5,
                "metric.jsonl_train_lines": 160.0,
            },
            {
                "experiment_name": "qc-exp",
                "run_name": "visual-defect-sft-20250102000000",
                "run_type": "system.PipelineRun",
                "state": "FAILED",
                "param.num_images": 400.0,
                "param.epoch_count": 3.0,
                "metric.split_train_examples": 320.0,
                "metric.train_example_count": None,
                "metric.eval_defect_type_accuracy": None,
                "metric.eval_status_accuracy": None,
                "metric.base_eval_status_accuracy": None,
                "metric.jsonl_train_lines": 320.0,
            },
            {
                "experiment_name": "qc-exp",
                "run_name": "visual-defect-sft-20250103000000",
                "run_type": "system.PipelineRun",
                "state": "COMPLETE",
                "param.num_images": 400.0,
                "param.epoch_count": 8.0,
                "metric.split_train_examples": 320.0,
                "metric.train_example_count": 320.0,
                "metric.eval_defect_type_accuracy": 0.97,
                "metric.eval_status_accuracy": 0.975,
                "metric.base_eval_status_accuracy": 0.5,
                "metric.jsonl_train_lines": 320.0,
            },
        ]
    )


def test_order_runs_best_first_eval_columns_first():
    ordered = vertex.order_runs(experiment_df())
    assert list(ordered["run_name"]) == [
        "visual-defect-sft-20250103000000",
        "visual-defect-sft-20250101000000",
        "visual-defect-sft-20250102000000",
    ]  # no accuracy: last
    metrics = [c for c in ordered.columns if c.startswith("metric.")]
    assert metrics == [
        "metric.eval_status_accuracy",
        "metric.eval_defect_type_accuracy",
        "metric.base_eval_status_accuracy",
        "metric.train_example_count",
        "metric.jsonl_train_lines",
        "metric.split_train_examples",
    ]
    assert list(ordered.columns[:3]) == ["run_name", "source", "state"]
    assert ordered.columns.get_loc("metric.split_train_examples") < ordered.columns.get_loc("param.epoch_count")


def test_runs_table_renders_rows_in_order():
    table = vertex.runs_table(experiment_df(), title="Experiment qc-exp")
    headers = [c.header for c in table.columns]
    assert headers[:4] == ["run_name", "source", "state", "eval_status_accuracy"]
    assert "num_images" in headers and "experiment_name" not in headers
    assert "base_eval_status_accuracy" in headers  # eval metrics always shown
    assert table.caption is None  # every other column differs between these runs
    same = experiment_df().assign(**{"param.seed": 42})
    assert "seed" not in [c.header for c in vertex.runs_table(same).columns]
    assert "1 column(s) equal in every run" in vertex.runs_table(same).caption
    console = Console(width=400, record=True)
    console.print(table)
    text = console.export_text()
    lines = [line for line in text.splitlines() if "visual-defect-sft-2025" in line]
    assert [re.search(r"2025010\d", line).group() for line in lines] == ["20250103", "20250101", "20250102"]
    assert "0.975" in lines[0] and "0.85" in lines[1]


def test_order_runs_without_eval_metric_or_runs():
    df = pd.DataFrame([{"run_name": "a", "state": "RUNNING", "param.seed": 1}])
    assert list(vertex.order_runs(df)["run_name"]) == ["a"]


def test_labelled_run_row_matches_experiment_columns():
    row = vertex.labelled_run_row(
        "qc-exp",
        "visual-defect-sft-1",
        "SUCCEEDED",
        {"input:num_images": 200.0, "other": 1},
        [{"split_train_examples": 160.0}, {"eval_status_accuracy": 0.9}],
    )
    assert row["param.num_images"] == 200.0 and "param.other" not in row
    assert row["metric.eval_status_accuracy"] == 0.9 and row["metric.split_train_examples"] == 160.0
    assert row["source"] == "label"


# Against the twin, unpatched: tests/test_twin_metadata.py::test_experiment_df_and_compare_command and
# test_twin_nightly_soak.py (labelled scheduled runs). Patched here only to pin the row order.
def test_compare_merges_experiment_and_labelled_runs_and_writes_csv(cli, google_api, monkeypatch, tmp_path):
    calls = []

    def fake_get_experiment_df(name, **kwargs):
        calls.append((name, kwargs))
        return experiment_df()

    monkeypatch.setattr(aiplatform, "get_experiment_df", fake_get_experiment_df)
    scheduled = f"{PARENT}/pipelineJobs/visual-defect-sft-20250104000000"
    google_api.state["jobs"][scheduled] = {
        "name": scheduled,
        "state": "PIPELINE_STATE_SUCCEEDED",
        "labels": {"experiment": "qc-exp"},
        "jobDetail": {"pipelineRunContext": {"name": f"{CONTEXTS}/visual-defect-sft-20250104000000"}},
    }
    in_experiment = f"{PARENT}/pipelineJobs/visual-defect-sft-20250101000000"  # already a row: not added twice
    google_api.state["jobs"][in_experiment] = {
        "name": in_experiment,
        "state": "PIPELINE_STATE_SUCCEEDED",
        "labels": {"experiment": "qc-exp"},
    }
    google_api.state["executions"] = [
        {"name": "e", "schemaTitle": "system.Run", "metadata": {"input:num_images": 600, "input:epoch_count": 5}}
    ]
    google_api.state["artifacts"] = [
        {
            "name": "a",
            "schemaTitle": "system.Metrics",
            "metadata": {"eval_status_accuracy": 0.99, "split_train_examples": 480},
        }
    ]
    monkeypatch.setattr(vertex, "out", Console(width=300))
    csv = tmp_path / "runs.csv"
    result = cli("compare", "--experiment", "qc-exp", "--project", PROJECT, "--location", LOCATION, "--csv", csv)
    assert result.exit_code == 0, result.output
    assert calls == [("qc-exp", {"include_time_series": False})]
    [listing] = requests_to(google_api, "GET", f"{PARENT}/pipelineJobs")
    assert listing["query"]["filter"] == ['labels.experiment="qc-exp"']
    [executions] = requests_to(google_api, "GET", "/metadataStores/default/executions")
    assert executions["query"]["filter"] == [
        f'in_context("{CONTEXTS}/visual-defect-sft-20250104000000") AND schema_title="system.Run"'
    ]
    written = pd.read_csv(csv)
    assert list(written["run_name"]) == [
        "visual-defect-sft-20250104000000",
        "visual-defect-sft-20250103000000",
        "visual-defect-sft-20250101000000",
        "visual-defect-sft-20250102000000",
    ]
    assert written.loc[0, "source"] == "label" and written.loc[0, "param.num_images"] == 600
    assert written.columns[3] == "metric.eval_status_accuracy"
    assert "visual-defect-sft-20250104000000" in result.stdout


def test_compare_empty_experiment(cli, google_api, monkeypatch):
    monkeypatch.setattr(aiplatform, "get_experiment_df", lambda name, **k: pd.DataFrame())
    result = cli("compare", "--experiment", "qc-exp", "--project", PROJECT, "--location", LOCATION)
    assert result.exit_code == 1 and "no runs in experiment 'qc-exp'" in result.output


# --------------------------------------------------------------------------- files users copy


def test_env_example_names_every_setting():
    text = (Path(__file__).resolve().parent.parent / "env.sh.example").read_text()
    for name in ("PROJECT", "LOCATION", "BUCKET", "EXPERIMENT", "SERVICE_ACCOUNT", "REPO", "CRON"):
        assert re.search(rf"^#?\s*(export\s+)?{name}=", text, re.M), name


def test_the_four_commands_have_a_module_each():
    from pipeline.commands import COMMANDS, load

    for name in ("submit", "schedule", "upload", "compare"):
        assert COMMANDS[name] == f"{name}:{name}_command"
        assert load(name).__module__ == f"pipeline.commands.{name}"


def test_compiled_template_inputs_are_what_the_commands_check(template):
    spec = yaml.safe_load(template.read_text())
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert {"project", "location", "bucket"} <= set(inputs)
