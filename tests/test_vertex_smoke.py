"""Offline tests of ``vertex-smoke`` (pipeline/vertex_smoke/, pipeline/commands/vertex_smoke.py).

The pure parts (cost estimate, refusals, request arguments, checklist rows) are tested
directly. The command itself runs the real aiplatform and google-genai SDKs against the
loopback Google of tests/test_vertex.py, extended here to play a run's progress, cancels,
tuning jobs and schedule pause/delete; a fake clock makes the bounded waits instant.
"""

import io
import json
import math
from datetime import UTC, datetime
from urllib.parse import parse_qs, unquote, urlparse

import pandas as pd
import pytest
from google.cloud import aiplatform
from google.cloud.aiplatform.compat.types import pipeline_job as gca_pipeline_job
from rich.console import Console
from typer.testing import CliRunner

from components.cost import training_price
from components.labels import LABELS, PROMPT
from pipeline.commands import app as root_app
from pipeline.commands import vertex_smoke as smoke_command
from pipeline.params import ParameterError
from pipeline.pipeline import PIPELINE_NAME, TASK_TITLES
from pipeline.vertex_smoke import (
    cancel,
    checklist,
    cost,
    experiment,
    observe,
    plan,
    schedule,
    session,
    succeeds,
    tuning_link,
)
from tests import test_vertex
from tests.test_vertex import BUCKET, CONTEXTS, LOCATION, PARENT, PROJECT, FakeGoogle, requests_to

# test_vertex's fixtures, used here too: stub ADC, the compiled pipeline, no internet, and a
# clean aiplatform global config (the last two autouse).
adc = test_vertex.adc
template = test_vertex.template
no_internet = test_vertex.no_internet
clean_aiplatform_config = test_vertex.clean_aiplatform_config

ROOT = "visual-defect-sft-smoke"


# --------------------------------------------------------------------------- a loopback Google that runs


def gcp_resources(name):
    return json.dumps(
        {
            "resources": [
                {"resourceType": "TuningJob", "resourceUri": f"https://{LOCATION}-aiplatform.googleapis.com/v1/{name}"}
            ]
        }
    )


def task(title, state, **metadata):
    return {
        "taskId": str(abs(hash(title)) % 10_000),
        "taskName": title,
        "state": state,
        "execution": {"metadata": metadata},
    }


def data_tasks():
    return [
        task(TASK_TITLES["synthesize-images"], "SUCCEEDED"),
        task(TASK_TITLES["split-manifest"], "SUCCEEDED"),
        task(TASK_TITLES["build-tuning-jsonl"], "SUCCEEDED"),
        task("condition-branches-1", "SUCCEEDED"),
    ]


class SmokeGoogle(FakeGoogle):
    """FakeGoogle plus what a smoke test observes: runs advance on each GET, cancels take effect,
    tuning jobs (google-genai, /v1beta1), schedule pause/delete, and pipeline-root listings."""

    def _handle(self, method):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlparse(self.path)
        path, query = unquote(url.path), parse_qs(url.query)
        state = self.server.state
        record = {
            "method": method,
            "path": path,
            "query": query,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
        }
        name = path.split("/", 2)[2] if path.startswith(("/v1/", "/v1beta1/")) else ""
        if path.startswith("/v1beta1/") and "/tuningJobs/" in name:
            state["requests"].append(record)
            job_name = name.removesuffix(":cancel")
            job = state["tuning"].get(job_name)
            if job is None:
                return self._reply(404, {"error": {"code": 404, "message": "no job", "status": "NOT_FOUND"}})
            if name.endswith(":cancel"):
                job["state"] = "JOB_STATE_CANCELLED"
                return self._reply(200, {})
            if job["state"] == "JOB_STATE_CANCELLING":  # the component's SIGTERM handler got through
                job["state"] = "JOB_STATE_CANCELLED"
            return self._reply(200, job)
        if path.startswith("/v1/") and name.endswith(":cancel") and name[:-7] in state["jobs"]:
            state["requests"].append(record)
            job = state["jobs"][name[:-7]]
            job["state"] = "PIPELINE_STATE_CANCELLING"
            tuning_job = job.get("_tuning_job")
            if tuning_job and state["sigterm_reaches_python"]:
                state["tuning"][tuning_job]["state"] = "JOB_STATE_CANCELLING"
            return self._reply(200, {})
        if path.startswith("/v1/") and method == "GET" and name in state["jobs"]:
            state["requests"].append(record)
            job = state["jobs"][name]
            advance(state, job)
            return self._reply(200, {k: v for k, v in job.items() if not k.startswith("_")})
        if path.startswith("/v1/") and name.endswith(":pause") and name[:-6] in state["schedules"]:
            state["requests"].append(record)
            state["schedules"][name[:-6]]["state"] = "PAUSED"
            return self._reply(200, {})
        if path.startswith("/v1/") and method == "DELETE" and name in state["schedules"]:
            state["requests"].append(record)
            del state["schedules"][name]
            return self._reply(
                200,
                {
                    "name": f"{PARENT}/operations/7",
                    "done": True,
                    "response": {"@type": "type.googleapis.com/google.protobuf.Empty"},
                },
            )
        bucket_name = BUCKET[len("gs://") :]
        if path == f"/storage/v1/b/{bucket_name}/o":
            state["requests"].append(record)
            items = [{"name": n, "bucket": bucket_name, "size": str(len(data))} for n, data in state["objects"].items()]
            return self._reply(200, {"kind": "storage#objects", "items": items})
        if path.startswith(f"/download/storage/v1/b/{bucket_name}/o/"):
            state["requests"].append(record)
            data = state["objects"][path.split("/o/", 1)[1]]
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return None
        self.rfile = io.BytesIO(body)
        return super()._handle(method)


def advance(state, job):
    """One more GET of a run: the cancel run reaches wait-for-tuning; the smoke run succeeds."""
    count = job["_gets"] = job.get("_gets", 0) + 1
    tuning_job = f"{PARENT}/tuningJobs/{9000 + len(state['tuning'])}"
    outputs = {}
    if job["state"] == "PIPELINE_STATE_CANCELLING":
        job["state"] = "PIPELINE_STATE_CANCELLED"
        return
    if job["state"] != "PIPELINE_STATE_RUNNING":
        return
    if count >= 2 and "_tuning_job" not in job:  # launch-tuning has created the job
        job["_tuning_job"] = tuning_job
        state["tuning"][tuning_job] = {
            "name": tuning_job,
            "state": "JOB_STATE_RUNNING",
            "baseModel": "gemini-3.5-flash",
            "labels": {"app": "visual-defect-inspector"},
        }
    if "_tuning_job" in job and state["task_outputs"]:
        outputs = {"output:job_name": job["_tuning_job"], "output:gcp_resources": gcp_resources(job["_tuning_job"])}
    if "-smoke-cancel-" in job["displayName"]:
        tasks = data_tasks()[:2] + [task(TASK_TITLES["build-tuning-jsonl"], "RUNNING")]
        if count >= 2:
            tasks = data_tasks() + [
                task(TASK_TITLES["launch-tuning"], "SUCCEEDED", **outputs),
                task(TASK_TITLES["wait-for-tuning"], "RUNNING"),
            ]
        job["jobDetail"]["taskDetails"] = tasks
    else:
        if count >= 3:
            job["state"] = "PIPELINE_STATE_SUCCEEDED"
            state["tuning"][job["_tuning_job"]]["state"] = "JOB_STATE_SUCCEEDED"
        later = "SUCCEEDED" if count >= 3 else "PENDING"
        job["jobDetail"]["taskDetails"] = [
            task(PIPELINE_NAME, "SUCCEEDED" if count >= 3 else "RUNNING"),
            *data_tasks(),
            task(TASK_TITLES["launch-tuning"], "SUCCEEDED" if count >= 2 else "RUNNING", **outputs),
            task(TASK_TITLES["wait-for-tuning"], "SUCCEEDED" if count >= 3 else "RUNNING" if count >= 2 else "PENDING"),
            task(TASK_TITLES["evaluate-inspector"], later),
            task(TASK_TITLES["summarize-run"], later),
        ]


@pytest.fixture
def smoke_api(monkeypatch, adc):
    """A running loopback Google (see SmokeGoogle), every SDK pointed at it, a fake clock."""
    import threading
    from http.server import ThreadingHTTPServer

    from google.cloud.aiplatform import initializer
    from google.cloud.aiplatform.utils import resource_manager_utils

    server = ThreadingHTTPServer(("127.0.0.1", 0), SmokeGoogle)
    server.state = {
        "requests": [],
        "jobs": {},
        "schedules": {},
        "experiments": {"qc-exp"},
        "executions": [],
        "artifacts": [],
        "tuning": {},
        "objects": {},
        "task_outputs": True,
        "sigterm_reaches_python": True,
    }
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    monkeypatch.setattr(initializer.global_config, "_api_endpoint", url)
    monkeypatch.setattr(initializer.global_config, "_api_transport", "rest")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)
    monkeypatch.setenv("GOOGLE_VERTEX_BASE_URL", url)  # google-genai (tuning jobs)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(resource_manager_utils, "get_project_number", lambda *a, **k: "123456")
    clock = {"t": 0.0}
    monkeypatch.setattr(session, "clock", lambda: clock["t"])
    monkeypatch.setattr(session, "sleep", lambda s: clock.__setitem__("t", clock["t"] + max(s, 1.0)))

    def experiment_df(name, **kwargs):  # what get_experiment_df shows once submit() linked the run
        linked = [r["path"].split("/")[-1].split(":")[0] for r in requests_to(server, "POST", ":addContextChildren")]
        children = [
            json.loads(r["body"])["childContexts"][0].rsplit("/", 1)[-1]
            for r in requests_to(server, "POST", ":addContextChildren")
        ]
        return pd.DataFrame(
            [
                {"experiment_name": e, "run_name": c, "state": "COMPLETE"}
                for e, c in zip(linked, children, strict=True)
                if e == name
            ]
        )

    monkeypatch.setattr(aiplatform, "get_experiment_df", experiment_df)
    server.clock = clock
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def cli():
    runner = CliRunner()  # the root CLI, as under `python -m pipeline`
    return lambda *args: runner.invoke(root_app, [str(a) for a in args])


WHERE = ["--project", PROJECT, "--location", LOCATION, "--bucket", BUCKET]


# --------------------------------------------------------------------------- cost estimate


def smoke_params(template, *extra):
    return plan.smoke_parameters(PROJECT, LOCATION, BUCKET, list(extra), template)


def test_smoke_parameters_are_the_smallest_run(template):
    params = smoke_params(template)
    assert {k: params[k] for k in plan.SMOKE_PARAMS} == plan.SMOKE_PARAMS
    assert params["dataset_uri"] == "" and params["base_model"] == "gemini-3.5-flash"
    assert cost.split_counts(40, 0.8, 0.1) == (32, 4, 4)  # what split_manifest targets
    assert smoke_params(template, "epoch_count=2")["epoch_count"] == 2
    with pytest.raises(ParameterError, match="synthesized images"):
        smoke_params(template, "dataset_uri=gs://b/parts/")
    with pytest.raises(ParameterError, match="adapter_size=3"):
        smoke_params(template, "adapter_size=3")


def test_cost_estimate_counts_training_tokens(template):
    params = smoke_params(template)
    estimate = cost.estimate_cost(params, prices={})
    defect_label = sum(len(LABELS[t]) for t in ("Scratch", "Crack", "Discoloration")) / 3
    # A Gemini 3 image at the default resolution counts 1,120 tokens (platform_facts.gemini); the
    # prompt and the answer (averaged over the class mix) are one example's text, counted as the
    # cost guard counts a line of the tuning file (components/cost.py): ~4 characters a token.
    text = len(PROMPT) + 0.5 * len("Status: Pass") + 0.5 * defect_label
    per_example = 1120 + math.ceil(int(text) / 4)
    assert estimate.tokens_per_example == per_example
    assert estimate.train_examples == 32 and estimate.epochs == 1
    assert estimate.training_tokens == 32 * per_example
    assert estimate.usd is None and estimate.price_per_m_tokens is None
    assert estimate.test_images == 4 and estimate.eval_calls == 4  # one call per test image
    # More epochs and images scale it; evaluating the base model too doubles the calls.
    bigger = cost.estimate_cost(
        smoke_params(template, "num_images=400", "epoch_count=3", "evaluate_base_model=true"), prices={}
    )
    assert bigger.training_tokens == 320 * per_example * 3
    assert bigger.eval_calls == 2 * 40
    # A price per 1M tokens for the model gives dollars.
    priced = cost.estimate_cost(params, prices={"gemini-3.5-flash": 5.0})
    assert priced.usd == pytest.approx(32 * per_example / 1e6 * 5.0)
    assert cost.estimate_cost(params, prices={"gemini-3.1-flash-lite": 25.0}).usd is None  # another model's price


def test_cost_lines_never_invent_a_price(template):
    params = smoke_params(template)
    unpriced = " ".join(cost.cost_lines(cost.estimate_cost(params, prices={})))
    assert cost.PRICING_URL in unpriced and "$" not in unpriced
    assert "training tokens" in unpriced and "once per test image" in unpriced
    priced = " ".join(
        cost.cost_lines(
            cost.estimate_cost(params, prices={"gemini-3.5-flash": 5.0}),
            price_source="Vertex AI pricing page, read 2026-01-01",
        )
    )
    usd = 32 * cost.estimate_cost(params, prices={}).tokens_per_example / 1e6 * 5.0
    assert f"≈ ${usd:.2f} per tuning job" in priced and "read 2026-01-01" in priced
    # Without prices given, the cost guard's own price lookup is used (none is recorded today).
    assert cost.estimate_cost(params).price_per_m_tokens == training_price("gemini-3.5-flash")[0]


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "value, refused", [("true", True), ("TRUE", True), ("1", True), ("false", False), ("", False), (None, False)]
)
def test_ci_refusal(value, refused):
    environ = {} if value is None else {"CI": value}
    message = plan.ci_refusal(environ)
    assert bool(message) is refused
    if refused:
        assert "never runs in CI" in message


def test_command_refuses_in_ci_before_anything(cli, monkeypatch, template):
    import google.auth

    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(google.auth, "default", lambda *a, **k: pytest.fail("asked for credentials in CI"))
    result = cli("vertex-smoke", *WHERE, "--yes", "--template", template)
    assert result.exit_code == 2, result.output
    assert "never runs in CI (CI=true is set)" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_command_refuses_without_yes_when_stdin_is_not_a_terminal(cli, smoke_api, template):
    result = cli("vertex-smoke", *WHERE, "--template", template)  # CliRunner's stdin is not a terminal
    assert result.exit_code == 2, result.output
    assert "stdin is not a terminal" in result.output and "--yes" in result.output
    assert "training tokens" in result.output  # the cost was stated first
    assert smoke_api.state["requests"] == []  # nothing was sent


def test_command_refuses_without_credentials(cli, monkeypatch, template):
    import google.auth
    import google.auth.exceptions

    def no_adc(*args, **kwargs):
        raise google.auth.exceptions.DefaultCredentialsError("Your default credentials were not found.")

    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(google.auth, "default", no_adc)
    result = cli("vertex-smoke", *WHERE, "--yes", "--template", template)
    assert result.exit_code == 1, result.output
    assert "gcloud auth application-default login" in result.output
    assert "training tokens" not in result.output  # refused before any estimate or run


def test_confirmation_refusal():
    assert plan.confirmation_refusal(yes=True, interactive=False) is None
    assert plan.confirmation_refusal(yes=False, interactive=True) is None
    assert "--yes" in plan.confirmation_refusal(yes=False, interactive=False)


# --------------------------------------------------------------------------- requests and observations


def test_schedule_arguments_never_start_a_run():
    args = schedule.schedule_arguments(
        "visual-defect-sft-smoke-schedule-x",
        datetime(2026, 3, 1, 12, 30, 5, 7, UTC),
        service_account="sa@p.iam.gserviceaccount.com",
    )
    assert args["start_time"] == "2027-03-01T12:30:05Z"  # first start a year ahead (and paused at once)
    assert args["max_run_count"] == 1 and args["allow_queueing"] is False
    assert args["max_concurrent_active_run_count"] == 1 and args["max_concurrent_run_count"] == 1
    assert args["service_account"] == "sa@p.iam.gserviceaccount.com"
    assert args["cron"] == "0 0 1 1 *"


def detail_of(rest_json):
    """A PipelineTaskDetail parsed from its REST JSON, as the SDK's REST transport does."""
    return gca_pipeline_job.PipelineTaskDetail.from_json(json.dumps(rest_json))


def test_task_view_reads_outputs_and_display_titles():
    name = f"{PARENT}/tuningJobs/77"
    detail = detail_of(
        task(
            TASK_TITLES["launch-tuning"],
            "SUCCEEDED",
            **{"output:job_name": name, "output:gcp_resources": gcp_resources(name)},
        )
    )
    view = observe.task_view(detail)
    assert view.name == "launch-tuning" and view.state == "SUCCEEDED" and view.job_name == name
    assert tuning_link.parse_gcp_resources(view.gcp_resources) == [name]
    assert observe.task_view(detail_of(task("launch-tuning", "RUNNING"))).name == "launch-tuning"
    assert tuning_link.parse_gcp_resources("") == [] and tuning_link.parse_gcp_resources("not json") == []


def test_progress_line_and_cancel_readiness():
    tasks = [
        observe.TaskView("split-manifest", "SUCCEEDED"),
        observe.TaskView("launch-tuning", "SUCCEEDED"),
        observe.TaskView("wait-for-tuning", "RUNNING"),
        observe.TaskView("condition-branches-1", "SUCCEEDED"),
    ]
    line = observe.progress_line("cancel run", 125, "PIPELINE_STATE_RUNNING", tasks)
    expected = len(TASK_TITLES) - 1  # every task but promote-champion, which runs only on a win
    assert line == f"[   2m05s] cancel run: RUNNING · 2/{expected} tasks done · running wait-for-tuning"
    assert cancel.cancel_ready("PIPELINE_STATE_RUNNING", tasks)
    assert not cancel.cancel_ready("PIPELINE_STATE_RUNNING", tasks[:2])
    assert cancel.cancel_ready("PIPELINE_STATE_FAILED", [])


# --------------------------------------------------------------------------- checklist


JOB = f"{PARENT}/pipelineJobs/visual-defect-sft-20260301123005"
TUNING = f"{PARENT}/tuningJobs/9000"


def test_rows_from_observations():
    run = succeeds.run_row(succeeds.RunObservation(JOB, "PIPELINE_STATE_SUCCEEDED", 1830, 10800))
    assert run.ok and "SUCCEEDED after 30m30s" in run.evidence[0]
    assert run.evidence[1].startswith(
        f"https://console.cloud.google.com/vertex-ai/locations/{LOCATION}/pipelines/runs/"
    )
    failed = succeeds.run_row(
        succeeds.RunObservation(
            JOB, "PIPELINE_STATE_FAILED", 60, 10800, tasks=(observe.TaskView("launch-tuning", "FAILED", error="quota"),)
        )
    )
    assert not failed.ok and "task launch-tuning FAILED: quota" in failed.evidence

    exp = experiment.experiment_row(
        "qc-exp", "visual-defect-sft-20260301123005", ["visual-defect-sft-20260301123005"], PROJECT, LOCATION
    )
    assert exp.ok and exp.evidence[1] == (
        f"https://console.cloud.google.com/vertex-ai/experiments/locations/"
        f"{LOCATION}/experiments/qc-exp?project={PROJECT}"
    )
    assert not experiment.experiment_row("qc-exp", "x", ["y"], PROJECT, LOCATION).ok

    link = tuning_link.tuning_link_row(tuning_link.TuningLink((TUNING,), "task details", TUNING, "JOB_STATE_SUCCEEDED"))
    assert link.ok and f"names {TUNING}" in link.evidence[0]
    assert link.evidence[-1] == (
        f"https://console.cloud.google.com/vertex-ai/generative/language/locations/"
        f"{LOCATION}/tuning/tuningJob/9000?project={PROJECT}"
    )
    assert not tuning_link.tuning_link_row(
        tuning_link.TuningLink((TUNING,), "task details", f"{PARENT}/tuningJobs/1", "JOB_STATE_SUCCEEDED")
    ).ok  # names another job
    assert not tuning_link.tuning_link_row(
        tuning_link.TuningLink((TUNING,), "task details", TUNING, "")
    ).ok  # not found
    assert not tuning_link.tuning_link_row(tuning_link.TuningLink()).ok

    cancelled = cancel.cancel_row(
        cancel.CancelObservation(JOB, TUNING, "PIPELINE_STATE_CANCELLED", "JOB_STATE_CANCELLED", 95, 1200)
    )
    assert cancelled.ok and f"{TUNING}: JOB_STATE_CANCELLED 1m35s after the cancel request" in cancelled.evidence[2]
    still = cancel.cancel_row(
        cancel.CancelObservation(
            JOB, TUNING, "PIPELINE_STATE_CANCELLED", "JOB_STATE_RUNNING", 1200, 1200, cancelled_by_smoke=True
        )
    )
    assert not still.ok and any("vertex-smoke cancelled it itself" in e for e in still.evidence)

    scheduled = schedule.schedule_row(
        schedule.ScheduleObservation(f"{PARENT}/schedules/42", 1, 1, "ACTIVE", "PAUSED", True)
    )
    assert scheduled.ok and "maxConcurrentActiveRunCount=1" in scheduled.evidence[0]
    kept = schedule.schedule_row(
        schedule.ScheduleObservation(f"{PARENT}/schedules/42", 1, 1, "ACTIVE", "PAUSED", False)
    )
    assert not kept.ok and any("make schedule ARGS=\"--delete" in e for e in kept.evidence)
    assert not schedule.schedule_row(
        schedule.ScheduleObservation(f"{PARENT}/schedules/42", 0, 1, "ACTIVE", "PAUSED", True)
    ).ok


def test_checklist_rendering():
    checks = [
        checklist.Check(2, "The run is linked to its experiment", False, ["experiment qc-exp does not list run x"]),
        checklist.Check(1, "A smallest run succeeds within the bound", True, [JOB, "https://console/run"]),
    ]
    lines = checklist.checklist_lines(checks)
    assert lines == [
        "✓ 1. A smallest run succeeds within the bound",
        f"    {JOB}",
        "    https://console/run",
        "✗ 2. The run is linked to its experiment",
        "    experiment qc-exp does not list run x",
        "1/2 checks passed",
    ]
    console = Console(record=True, width=200)
    smoke_command.out, saved = console, smoke_command.out
    try:
        smoke_command.print_checklist(checks)
    finally:
        smoke_command.out = saved
    text = console.export_text()
    assert "✓ 1. A smallest run" in text and "✗ 2. The run is linked" in text
    assert "    experiment qc-exp does not list run x" in text and "1/2 checks passed" in text
    # Evidence is printed as it is, never read as rich markup.
    console = Console(record=True, width=200)
    smoke_command.out, saved = console, smoke_command.out
    try:
        smoke_command.print_checklist([checklist.Check(3, "t", False, ["error: [bold]x[/bold]"])])
    finally:
        smoke_command.out = saved
    assert "error: [bold]x[/bold]" in console.export_text()


# --------------------------------------------------------------------------- the command against the fake server


def created_jobs(server):
    return {
        json.loads(r["body"])["displayName"]: (r, json.loads(r["body"]))
        for r in requests_to(server, "POST", f"{PARENT}/pipelineJobs")
    }


def test_smoke_sends_every_request_and_all_checks_pass(cli, smoke_api, template):
    result = cli(
        "vertex-smoke",
        *WHERE,
        "--experiment",
        "qc-exp",
        "--yes",
        "--service-account",
        "runner@test-project.iam.gserviceaccount.com",
        "--template",
        template,
    )
    assert result.exit_code == 0, result.output
    state = smoke_api.state

    # 5. The schedule: created never to start a run, read back, paused, deleted.
    [create] = requests_to(smoke_api, "POST", f"{PARENT}/schedules")
    schedule = json.loads(create["body"])
    assert schedule["displayName"].startswith(f"{ROOT}-schedule-")
    assert int(schedule["maxConcurrentActiveRunCount"]) == 1 and int(schedule["maxRunCount"]) == 1
    assert schedule["startTime"] > datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert schedule["createPipelineJobRequest"]["pipelineJob"]["labels"]["trigger"] == "smoke"
    assert requests_to(smoke_api, "POST", f"{PARENT}/schedules/42:pause")
    assert requests_to(smoke_api, "DELETE", f"{PARENT}/schedules/42")
    assert state["schedules"] == {}

    # Two runs with the smallest parameters; only the checked run is linked to the experiment.
    jobs = created_jobs(smoke_api)
    [cancel_name] = [n for n in jobs if n.startswith(f"{ROOT}-cancel-")]
    [run_name] = [n for n in jobs if n.startswith(f"{ROOT}-run-")]
    for name, (_, body) in jobs.items():
        assert body["runtimeConfig"]["parameterValues"] == {
            "project": PROJECT,
            "location": LOCATION,
            "bucket": BUCKET,
            "num_images": 40,
            # The cancel run plans more epochs, so its job is still training when it is cancelled.
            "epoch_count": plan.CANCEL_EPOCHS if name == cancel_name else 1,
            "adapter_size": 1,
            "eval_concurrency": 2,
        }
        assert body["serviceAccount"] == "runner@test-project.iam.gserviceaccount.com"
        assert body["runtimeConfig"]["gcsOutputDirectory"] == "gs://qc-bucket/pipeline_root"
    assert jobs[run_name][1]["labels"] == {"pipeline": PIPELINE_NAME, "trigger": "smoke", "experiment": "qc-exp"}
    assert jobs[cancel_name][1]["labels"] == {"pipeline": PIPELINE_NAME, "trigger": "smoke"}
    [link] = requests_to(smoke_api, "POST", f"{CONTEXTS}/qc-exp:addContextChildren")
    run_id = jobs[run_name][0]["query"]["pipelineJobId"][0]
    assert run_id == run_name  # IDs are the display names: the two runs never share an ID
    assert json.loads(link["body"]) == {"childContexts": [f"{CONTEXTS}/{run_id}"]}

    # 4. Only the cancel run is cancelled; its tuning job is polled until CANCELLED, never cancelled by us.
    cancel_id = jobs[cancel_name][0]["query"]["pipelineJobId"][0]
    [cancel] = [r for r in state["requests"] if r["method"] == "POST" and r["path"].endswith(":cancel")]
    assert cancel["path"] == f"/v1/{PARENT}/pipelineJobs/{cancel_id}:cancel"
    assert not [r for r in state["requests"] if "/tuningJobs/" in r["path"] and r["method"] == "POST"]
    assert smoke_api.clock["t"] >= plan.SETTLE_S  # it let wait-for-tuning start before cancelling

    # The checklist: five ✓ with their evidence.
    out = result.stdout
    for number in range(1, 6):
        assert f"✓ {number}. " in out
    assert "5/5 checks passed" in out
    assert f"pipelines/runs/{run_id}" in out and "experiments/qc-exp" in out
    assert "tuning/tuningJob/" in out and "JOB_STATE_CANCELLED" in out and f"{PARENT}/schedules/42" in out
    assert "training tokens" in result.output  # the cost came first


def test_a_tuning_job_the_cancel_missed_fails_check_4_and_is_cancelled(cli, smoke_api, template):
    smoke_api.state["sigterm_reaches_python"] = False  # e.g. a shell as PID 1 swallowing SIGTERM
    result = cli(
        "vertex-smoke", *WHERE, "--experiment", "qc-exp", "--yes", "--cancel-end-timeout", "5", "--template", template
    )
    assert result.exit_code == 1, result.output
    assert "✗ 4. Cancelling a run leaves its tuning job JOB_STATE_CANCELLED" in result.stdout
    assert "still JOB_STATE_RUNNING after 5m00s" in result.stdout
    assert "vertex-smoke cancelled it itself" in result.stdout
    # The smoke test stopped the job it found running, so nothing goes on billing.
    [stop] = [r for r in smoke_api.state["requests"] if r["path"].endswith(":cancel") and "/tuningJobs/" in r["path"]]
    assert stop["path"].startswith("/v1beta1/") and "4/5 checks passed" in result.stdout


def test_gcp_resources_read_from_the_pipeline_root_when_task_details_lack_outputs(
    cli, smoke_api, template, monkeypatch
):
    smoke_api.state["task_outputs"] = False
    original = advance

    def advance_and_write(state, job):  # launch-tuning's executor output, as Vertex AI keeps it
        original(state, job)
        if "_tuning_job" in job:
            run_id = job["name"].rsplit("/", 1)[-1]
            key = f"pipeline_root/123456/{run_id}/launch-tuning_-4711/executor_output.json"
            state["objects"][key] = json.dumps(
                {
                    "parameterValues": {
                        "job_name": job["_tuning_job"],
                        "gcp_resources": gcp_resources(job["_tuning_job"]),
                    }
                }
            ).encode()

    monkeypatch.setitem(globals(), "advance", advance_and_write)
    result = cli("vertex-smoke", *WHERE, "--experiment", "qc-exp", "--yes", "--template", template)
    assert result.exit_code == 0, result.output
    listing = requests_to(smoke_api, "GET", "/storage/v1/b/qc-bucket/o")
    assert listing and listing[0]["query"]["matchGlob"][0].startswith("pipeline_root/*/")
    assert listing[0]["query"]["matchGlob"][0].endswith("/launch-tuning_*/executor_output.json")
    assert "gs://qc-bucket/pipeline_root/123456/" in result.stdout and "✓ 3. " in result.stdout


def test_a_failed_run_is_a_cross_with_its_reason(cli, smoke_api, template, monkeypatch):
    def fail_the_run(state, job):
        job["state"] = "PIPELINE_STATE_FAILED"
        job["error"] = {"code": 9, "message": "The DAG failed because some tasks failed."}
        job["jobDetail"]["taskDetails"] = [task(TASK_TITLES["launch-tuning"], "FAILED")]

    monkeypatch.setitem(globals(), "advance", fail_the_run)
    result = cli("vertex-smoke", *WHERE, "--experiment", "qc-exp", "--yes", "--template", template)
    assert result.exit_code == 1, result.output
    assert "✗ 1. " in result.stdout and "PIPELINE_STATE_FAILED" in result.stdout
    assert "The DAG failed because some tasks failed." in result.stdout
    assert "✗ 3. " in result.stdout and "launch-tuning FAILED" in result.stdout
    assert "✗ 4. " in result.stdout and "before wait-for-tuning ran" in result.stdout
    assert "✓ 5. " in result.stdout


def test_the_root_cli_runs_vertex_smoke_from_its_command_module():
    from pipeline.commands import COMMANDS, load

    assert COMMANDS["vertex-smoke"] == "vertex_smoke:smoke_command"
    assert load("vertex-smoke") is smoke_command.smoke_command


def test_an_error_in_one_phase_is_a_cross_and_the_others_still_run(cli, smoke_api, template, monkeypatch):
    def broken(smoke, job, tuning_job, note):
        raise RuntimeError("lost the connection")

    monkeypatch.setattr(cancel, "watch_cancel", broken)
    result = cli("vertex-smoke", *WHERE, "--experiment", "qc-exp", "--yes", "--template", template)
    assert result.exit_code == 1, result.output
    assert "✗ 4. " in result.stdout and "stopped by an error: RuntimeError: lost the connection" in result.stdout
    for number in (1, 2, 3, 5):
        assert f"✓ {number}. " in result.stdout


def test_interrupted_smoke_cancels_its_runs_and_tuning_jobs(cli, smoke_api, template, monkeypatch):
    original_wait, original_advance = session.Smoke.wait, advance

    def interrupt_the_second_run(self, job, label, done, timeout_s):
        if label == "smoke run":  # Ctrl-C while it runs, with a tuning job going
            self.tuning_jobs.append(next(iter(smoke_api.state["tuning"])))
            smoke_api.state["tuning"][self.tuning_jobs[-1]]["state"] = "JOB_STATE_RUNNING"
            raise KeyboardInterrupt
        return original_wait(self, job, label, done, timeout_s)

    def the_second_run_keeps_running(state, job):
        if "-smoke-run-" not in job["displayName"]:
            original_advance(state, job)

    monkeypatch.setattr(session.Smoke, "wait", interrupt_the_second_run)
    monkeypatch.setitem(globals(), "advance", the_second_run_keeps_running)
    result = cli("vertex-smoke", *WHERE, "--experiment", "qc-exp", "--yes", "--template", template)
    assert result.exit_code != 0
    jobs = created_jobs(smoke_api)
    [run_name] = [n for n in jobs if n.startswith(f"{ROOT}-run-")]
    cancels = [
        r["path"] for r in smoke_api.state["requests"] if r["method"] == "POST" and r["path"].endswith(":cancel")
    ]
    assert f"/v1/{PARENT}/pipelineJobs/{run_name}:cancel" in cancels
    assert any(p.startswith("/v1beta1/") and "/tuningJobs/" in p for p in cancels)
    assert "interrupted: cancelling" in result.output


def test_cancel_run_plans_enough_epochs_to_be_cancelled_while_training():
    assert cancel.cancel_assignments(["num_images=40", "epoch_count=1"]) == [
        "num_images=40",
        f"epoch_count={plan.CANCEL_EPOCHS}",
    ]
    assert cancel.cancel_assignments(["epoch_count=50"]) == ["epoch_count=50"]  # never fewer than asked
