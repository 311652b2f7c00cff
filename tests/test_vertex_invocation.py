"""Components run the way Vertex AI runs them: the compiled command, Python behind a PID-1 shell.

Kubernetes stops a pod of a cancelled run by sending SIGTERM to the container's PID 1, from
outside its PID namespace. These tests take a task's command and args from the compiled YAML
(the pip step stubbed: the packages are installed here), start them as PID 1 of a fresh PID
namespace (``unshare --pid --fork --mount-proc``, as root), send SIGTERM from outside, and
look at what happened to the local tuning job.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from google.protobuf import json_format

from components.entrypoint import exec_python
from pipeline.pipeline import COMPILED_YAML
from tests.harness import wait_until

LOCATION = "us-central1"

needs_pid_namespace = pytest.mark.skipif(
    os.geteuid() != 0
    or shutil.which("unshare") is None
    or subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True).returncode != 0,
    reason="needs root and unshare to start a process as PID 1 of its own namespace",
)


def compiled_task(task: str) -> tuple[dict, dict]:
    """The compiled component spec and container (command, args) of ``task``."""
    spec = yaml.safe_load(COMPILED_YAML.read_text())
    return spec["components"][f"comp-{task}"], spec["deploymentSpec"]["executors"][f"exec-{task}"]["container"]


def stub_pip(command: list[str]) -> list[str]:
    """The command with its ``pip install`` step replaced by ``true`` (packages are installed here)."""
    return [
        re.sub(r"PIP_DISABLE_PIP_VERSION_CHECK=1 python3 -m pip install [^&]*&&", "true &&", part) for part in command
    ]


def executor_input(component: dict, arguments: dict, root: Path) -> str:
    """The executor input JSON KFP hands the task, built by kfp.local's own code (integer
    parameters as JSON integers, as the backends send them)."""
    from kfp.local.executor_input_utils import construct_executor_input, executor_input_to_dict
    from kfp.pipeline_spec import pipeline_spec_pb2

    spec = json_format.ParseDict(component, pipeline_spec_pb2.ComponentSpec())
    message = construct_executor_input(spec, arguments, str(root), block_input_artifact=False)
    return json.dumps(executor_input_to_dict(message, spec))


def start_as_pid1(command: list[str], args: list[str], env: dict, log: Path) -> subprocess.Popen:
    """``unshare`` forks the task as PID 1 of a new PID namespace; stdout+stderr go to ``log``."""
    venv_bin = str(Path(sys.executable).parent)
    return subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", *command, *args],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        cwd=log.parent,
        env={**env, "PATH": f"{venv_bin}:{os.environ['PATH']}", "PYTHONUNBUFFERED": "1"},
    )


def namespace_init(unshare: subprocess.Popen, timeout: float = 10.0) -> int:
    """The host PID of the namespace's PID 1 (unshare's only child)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = Path(f"/proc/{unshare.pid}/task/{unshare.pid}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.05)
    raise AssertionError("unshare started no child")


@pytest.fixture
def running_job(local_stack, tiny_train_jsonl):
    """A local tuning job that trains long enough to be cancelled while it runs."""
    from google import genai
    from google.genai import types

    client = genai.Client(vertexai=True, project=local_stack.project, location=LOCATION)
    job = client.tunings.tune(
        base_model="gemini-3.5-flash",
        training_dataset=types.TuningDataset(gcs_uri=tiny_train_jsonl),
        config=types.CreateTuningJobConfig(epoch_count=100),
    )
    wait_until(lambda: client.tunings.get(name=job.name).state.name == "JOB_STATE_RUNNING", 120, "the job to run")
    yield client, job.name
    if not client.tunings.get(name=job.name).has_ended:
        client.tunings.cancel(name=job.name)


@pytest.fixture(scope="module")
def tiny_train_jsonl(local_stack):
    """Eight examples of two classes in the local bucket."""
    import io

    from google.cloud import storage
    from PIL import Image

    bucket = storage.Client(project=local_stack.project).bucket(local_stack.bucket)
    lines = []
    for i in range(8):
        buffer = io.BytesIO()
        Image.new("RGB", (32, 32), "#5555AA" if i % 2 else "#FF3333").save(buffer, "PNG")
        bucket.blob(f"invocation/{i}.png").upload_from_string(buffer.getvalue(), content_type="image/png")
        label = "Status: Pass" if i % 2 else "Status: Defect - Crack identified in main body."
        lines.append(
            json.dumps(
                {
                    "contents": [
                        {
                            "role": "user",
                            "parts": [
                                {"text": "Inspect."},
                                {
                                    "fileData": {
                                        "mimeType": "image/png",
                                        "fileUri": f"gs://{local_stack.bucket}/invocation/{i}.png",
                                    }
                                },
                            ],
                        },
                        {"role": "model", "parts": [{"text": label}]},
                    ]
                }
            )
        )
    bucket.blob("invocation/train.jsonl").upload_from_string("\n".join(lines))
    return f"gs://{local_stack.bucket}/invocation/train.jsonl"


def run_compiled_task(task: str, arguments: dict, root: Path, env: dict) -> subprocess.CompletedProcess:
    """Runs ``task``'s compiled command and args (pip stubbed) as a plain process, like a pod."""
    component, container = compiled_task(task)
    args = [executor_input(component, arguments, root) if a == "{{$}}" else a for a in container["args"]]
    venv_bin = str(Path(sys.executable).parent)
    root.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [*stub_pip(container["command"]), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
        env={**env, "PATH": f"{venv_bin}:{os.environ['PATH']}"},
    )


def launched_job(run: subprocess.CompletedProcess) -> str:
    assert run.returncode == 0, run.stdout + run.stderr
    return re.search(r"(projects/\S+/tuningJobs/\d+)", run.stdout).group(1)


@pytest.mark.slow
def test_a_retried_launch_resumes_its_job_and_never_starts_a_second(local_stack, tiny_train_jsonl, tmp_path):
    """A retry is the same command and executor input again; a new pod has lost its output files."""
    from google import genai

    client = genai.Client(vertexai=True, project=local_stack.project, location=LOCATION)
    run_id = f"retry-{time.time_ns()}"
    arguments = {
        "project": local_stack.project,
        "location": LOCATION,
        "train_jsonl_uri": tiny_train_jsonl,
        "epoch_count": 100,
        "pipeline_run_id": run_id,
    }
    first = launched_job(run_compiled_task("launch-tuning", arguments, tmp_path / "attempt", local_stack.env))
    try:
        # Attempt 2 in the same sandbox: its gcp_resources output names the job.
        again = run_compiled_task("launch-tuning", arguments, tmp_path / "attempt", local_stack.env)
        assert launched_job(again) == first and "resuming tuning job" in again.stdout
        # Attempt 3 in a new pod: no output files, found by its kfp_launch label.
        fresh = run_compiled_task("launch-tuning", arguments, tmp_path / "new-pod", local_stack.env)
        assert launched_job(fresh) == first and "resuming tuning job" in fresh.stdout
        # Another run of the pipeline is another job.
        other = run_compiled_task(
            "launch-tuning", {**arguments, "pipeline_run_id": run_id + "-b"}, tmp_path / "other-run", local_stack.env
        )
        second = launched_job(other)
        assert second != first
        mine = [
            j.name for j in client.tunings.list() if (j.labels or {}).get("kfp_launch") and j.name in (first, second)
        ]
        assert sorted(mine) == sorted({first, second})
        # A job that ended CANCELLED is not resumed: the retry starts anew.
        client.tunings.cancel(name=first)
        wait_until(lambda: client.tunings.get(name=first).has_ended, 60, "the cancel")
        anew = launched_job(run_compiled_task("launch-tuning", arguments, tmp_path / "after-cancel", local_stack.env))
        assert anew not in (first, second)
    finally:
        for job in client.tunings.list():
            if (job.labels or {}).get("kfp_launch") and not job.has_ended:
                client.tunings.cancel(name=job.name)


def run_wait_task_and_terminate(
    local_stack, job_name: str, command: list[str], args: list[str], tmp_path: Path, grace: float = 20.0
):
    """Starts wait-for-tuning as PID 1, SIGTERMs it once it polls, returns (exit code, log text)."""
    component, _ = compiled_task("wait-for-tuning")
    arguments = {
        "project": local_stack.project,
        "location": LOCATION,
        "job_name": job_name,
        "poll_interval_seconds": 1,
        "timeout_seconds": 600,
    }
    args = [executor_input(component, arguments, tmp_path) if a == "{{$}}" else a for a in args]
    log = tmp_path / "task.log"
    unshare = start_as_pid1(command, args, local_stack.env, log)
    try:
        pid1 = namespace_init(unshare)
        wait_until(lambda: "JOB_STATE_RUNNING" in log.read_text(), 60, "the task to poll the job")
        os.kill(pid1, signal.SIGTERM)  # what the kubelet does to a pod of a cancelled run
        try:
            code = unshare.wait(timeout=grace)
        except subprocess.TimeoutExpired:  # the grace period ends: SIGKILL, as Kubernetes does
            os.kill(pid1, signal.SIGKILL)
            code = unshare.wait(timeout=20)
        return code, log.read_text()
    finally:
        if unshare.poll() is None:
            unshare.kill()
            unshare.wait()


@needs_pid_namespace
@pytest.mark.slow
def test_cancelling_the_run_cancels_the_tuning_job(local_stack, running_job, tmp_path):
    """The compiled command, as Vertex AI starts it: SIGTERM to PID 1 cancels the job."""
    client, job_name = running_job
    _, container = compiled_task("wait-for-tuning")
    code, log = run_wait_task_and_terminate(
        local_stack, job_name, stub_pip(container["command"]), container["args"], tmp_path
    )
    assert f"task terminated: cancelling {job_name}" in log, log
    assert code == 128 + signal.SIGTERM
    job = wait_until(lambda: (j := client.tunings.get(name=job_name)).has_ended and j, 60, "the job to end")
    assert job.state.name == "JOB_STATE_CANCELLED"


@needs_pid_namespace
@pytest.mark.slow
def test_without_exec_the_shell_swallows_sigterm_and_the_job_trains_on(local_stack, running_job, tmp_path):
    """Why exec_python exists: KFP's plain command leaves dash as PID 1, which ignores SIGTERM."""
    client, job_name = running_job
    _, container = compiled_task("wait-for-tuning")
    plain = [
        part.replace('&& exec "$0" "$@"', '&& "$0" "$@"').replace(
            "exec env _KFP_RUNTIME=true python3", "_KFP_RUNTIME=true python3"
        )
        for part in container["command"]
    ]
    assert plain != container["command"]
    code, log = run_wait_task_and_terminate(
        local_stack, job_name, stub_pip(plain), container["args"], tmp_path, grace=3.0
    )
    assert code == 128 + signal.SIGKILL or code == -signal.SIGKILL or code != 0
    assert "task terminated" not in log
    assert client.tunings.get(name=job_name).state.name == "JOB_STATE_RUNNING"


def test_exec_python_rewrites_both_shell_steps():
    from kfp import dsl

    @dsl.component(base_image="python:3.11-slim", packages_to_install=["kfp==2.17.0"], install_kfp_package=False)
    def noop():
        pass

    command = exec_python(noop).component_spec.implementation.container.command
    assert any('&& exec "$0" "$@"' in part for part in command)
    assert any("exec env _KFP_RUNTIME=true python3 -m kfp.dsl.executor_main" in part for part in command)
    _, container = compiled_task("wait-for-tuning")
    assert container["command"][:2] == ["sh", "-c"] and 'exec "$0" "$@"' in container["command"][2]


def test_exec_python_refuses_a_command_it_does_not_know():
    from kfp import dsl

    @dsl.component(base_image="python:3.11-slim", packages_to_install=["kfp==2.17.0"], install_kfp_package=False)
    def noop():
        pass

    noop.component_spec.implementation.container.command[:] = ["python3", "-m", "something"]
    with pytest.raises(RuntimeError, match="command changed"):
        exec_python(noop)


@pytest.mark.slow
def test_synthesis_hands_images_to_worker_processes_from_the_compiled_command(local_stack, tmp_path):
    """2,000+ images on 2+ cores are drawn by worker processes. Their code is the component's
    functions in KFP's generated module: this runs it from the compiled command, as a pod does,
    and checks every image came back, in order, the very bytes the manifest names."""
    import csv
    import hashlib

    from google.cloud import storage

    cores = len(os.sched_getaffinity(0))
    arguments = {
        "project": local_stack.project,
        "bucket": f"gs://{local_stack.bucket}",
        "num_images": 2400,
        "upload_workers": 4,
        "image_folder": "invocation/synth",
    }
    run = run_compiled_task("synthesize-images", arguments, tmp_path / "pod", local_stack.env)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert f"({min(cores, 2)} process(es)" in run.stdout
    (manifest,) = [p for p in (tmp_path / "pod").rglob("manifest") if p.is_file()]
    rows = list(csv.DictReader(manifest.open()))
    assert [r["image_name"] for r in rows] == [f"product_image_{i}.png" for i in range(2400)]
    assert len({r["sha256"] for r in rows}) == 2400
    bucket = storage.Client(project=local_stack.project).bucket(local_stack.bucket)
    for row in rows[::397]:
        data = bucket.blob(row["gcs_uri"].split("/", 3)[3]).download_as_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"], row["image_name"]
