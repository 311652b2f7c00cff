"""The local Vertex AI SIGKILLed while it trains, then started again on the same data directory and
ports: the restart rule (localvertex/README.md) holds and no job or endpoint is lost.

``python -m localvertex serve`` runs as a subprocess (its own process group) on fixed ports, so
clients that were talking to it reconnect to the new one. The pipeline's wait step
(components/wait_for_tuning.py ``python_func``, in a child process like a KFP task, with KFP's
executor logging) polls the job that is training when the server dies. Its client (6 attempts,
1 s doubling backoff, ~31 s in all) outlasts the outage: it prints the client's retries while the
server is down, then fails with the job's own error, the server's "stopped or restarted during
training ... Create the tuning job again". An outage longer than the client's retries is the
test at the end: the step polls on with backoff until its own deadline, then fails naming the
job and the outage (it was a bug: the step died at once with a bare ``httpx.ConnectError``).

A second server on the same data directory is refused with one clear line (``DataDirInUse``).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.faults import counts
from tests.harness import upload_training_file, wait_for_job

pytestmark = [pytest.mark.faults, pytest.mark.filterwarnings("ignore:The SDK's tuning implementation is experimental")]

PROJECT, LOCATION, BUCKET = "local-project", "us-central1", "local-bucket"
REPO = Path(__file__).resolve().parents[2]

# A wait step as a KFP task runs it: the executor's logging (INFO to stdout), then python_func.
# argv: job name, output folder, client attempts ("" = the component's own client)[, timeout_seconds].
WAIT_STEP = """
import logging, sys
logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="[KFP Executor %(levelname)s]: %(message)s")
from kfp import dsl
from google_cloud_pipeline_components.types.artifact_types import VertexEndpoint, VertexModel
import components.wait_for_tuning as module
from components.clients import genai_client
if sys.argv[3]:  # a client that gives up sooner: an outage longer than its retries
    module.genai_client = lambda project, location: genai_client(project, location, attempts=int(sys.argv[3]))
out = sys.argv[2]
module.wait_for_tuning.python_func(
    project="local-project", location="us-central1", job_name=sys.argv[1], poll_interval_seconds=1,
    timeout_seconds=int(sys.argv[4]) if len(sys.argv) > 4 else 240, tuning_metrics=dsl.Metrics(name="t", uri=out + "/t", metadata={}),
    gcp_resources=out + "/r", model=VertexModel(name="m", uri=out + "/m", metadata={}),
    endpoint=VertexEndpoint(name="e", uri=out + "/e", metadata={}))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``python -m localvertex serve`` in its own process group, its output in a file."""

    def __init__(self, data_dir: Path, port: int, storage_port: int, log: Path) -> None:
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "localvertex",
                    "serve",
                    "--port",
                    str(port),
                    "--storage-port",
                    str(storage_port),
                    "--data-dir",
                    str(data_dir),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                start_new_session=True,
            )

    def wait_up(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while "Ctrl-C to stop" not in self.log.read_text(errors="replace"):
            assert self.proc.poll() is None, f"server exited: {self.log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"server not up after {timeout} s: {self.log.read_text()[-2000:]}"
            time.sleep(0.2)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def wait_state(client, name: str, states: set[str], timeout: float = 120.0):
    return wait_for_job(client, name, states, timeout)


def workers_of(data_dir: Path) -> list[int]:
    """Pids of training workers whose spec lies in ``data_dir`` (``python -m localvertex.jobs``)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"localvertex.jobs" in cmdline and any(str(data_dir).encode() in part for part in cmdline):
                pids.append(int(proc.name))
    return pids


def lock_is_free(data_dir: Path) -> bool:
    fd = os.open(data_dir / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@pytest.fixture
def server_env(tmp_path, monkeypatch):
    """Fixed ports and a data directory; the SDKs pointed at them (restored afterwards)."""
    ports = {"port": free_port(), "storage_port": free_port()}
    data_dir = tmp_path / "lv"
    monkeypatch.setenv("GOOGLE_VERTEX_BASE_URL", f"http://127.0.0.1:{ports['port']}")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{ports['storage_port']}")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(data_dir / "credentials.json"))
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
    servers: list[Server] = []

    def start(log_name: str, **override) -> Server:
        server = Server(data_dir, **{**ports, **override}, log=tmp_path / log_name)
        servers.append(server)
        return server

    yield data_dir, start
    for server in servers:
        server.kill()


def start_wait_step(running: str, tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """The pipeline's wait step polling the training job ``running``, as a KFP task (its own
    process); returns once it has seen the job RUNNING: (the process, the file it writes to)."""
    waited_path = tmp_path / "wait-step.txt"
    with open(waited_path, "w") as log:
        step = subprocess.Popen(
            [sys.executable, "-c", WAIT_STEP, running, str(tmp_path), ""],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=os.environ.copy(),
        )
    deadline = time.monotonic() + 90
    while f"{running}: JOB_STATE_RUNNING" not in waited_path.read_text():
        assert step.poll() is None and time.monotonic() < deadline, waited_path.read_text()[-1500:]
        time.sleep(0.3)
    return step, waited_path


def kill_the_server(server: Server, data_dir: Path, running: str) -> float:
    """SIGKILL to the server's whole process group (the storage child dies with it); checks that
    the lock went with it and its orphaned worker stopped; returns when it was killed."""
    assert workers_of(data_dir), "the 100-epoch job has a worker"
    server.kill()
    killed_at = time.monotonic()
    counts.add_faults()
    # The lock went with the process (the kernel releases an flock), and the orphaned worker
    # stops by itself: its stdin closed.
    assert lock_is_free(data_dir)
    while workers_of(data_dir):
        assert time.monotonic() - killed_at < 30, "the worker outlived its server by 30 s"
        time.sleep(0.2)
    on_disk = json.loads((data_dir / "jobs" / f"{running.rsplit('/', 1)[1]}.json").read_text())
    assert on_disk["state"] == "JOB_STATE_RUNNING"  # nobody could say otherwise: the server died
    return killed_at


def assert_a_second_server_is_refused(start, data_dir: Path, running_server: Server) -> None:
    """A second server on the same data directory is refused, in one line."""
    third = start("third.log", port=0, storage_port=0)
    assert third.proc.wait(timeout=60) == 1
    said = third.log.read_text().strip().splitlines()
    assert len(said) == 1, said
    assert said[0] == (
        f"cannot start: {data_dir} is in use by another local Vertex AI (pid {running_server.proc.pid}); "
        "stop it, pass another --data-dir, or point the SDKs at the running one with its exports "
        "(python -m localvertex env)"
    ), said
    counts.add_faults()


def test_sigkill_during_tuning_then_restart(server_env, tmp_path):
    from google import genai
    from google.cloud import storage
    from google.genai import types

    data_dir, start = server_env
    first = start("first.log")
    first.wait_up()
    train_uri = upload_training_file("img")
    client = genai.Client(vertexai=True, project=PROJECT, location=LOCATION)

    def tune(epochs: int) -> str:
        return client.tunings.tune(
            base_model="gemini-3.5-flash",
            training_dataset=types.TuningDataset(gcs_uri=train_uri),
            config=types.CreateTuningJobConfig(epoch_count=epochs, adapter_size="ADAPTER_SIZE_ONE"),
        ).name

    done = wait_state(client, tune(1), {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED"})
    assert done.state.name == "JOB_STATE_SUCCEEDED", done.error
    image = types.Part.from_uri(file_uri=f"gs://{BUCKET}/img/1.png", mime_type="image/png")
    before = client.models.generate_content(model=done.tuned_model.endpoint, contents=["Inspect.", image]).text
    running = tune(100)
    wait_state(client, running, {"JOB_STATE_RUNNING"}, timeout=60)
    pending = tune(1)
    assert client.tunings.get(name=pending).state.name == "JOB_STATE_PENDING"
    step, waited_path = start_wait_step(running, tmp_path)

    # ---- the fault, then a restart on the same directory and ports
    killed_at = kill_the_server(first, data_dir, running)
    second = start("second.log")
    second.wait_up()
    down_s = time.monotonic() - killed_at
    assert down_s < 31, f"the outage ({down_s:.1f} s) outlasted the client's retries (~31 s): machine too busy"
    assert step.wait(timeout=120) == 1
    waited = waited_path.read_text()
    print(f"\nserver down {down_s:.1f} s; the wait step said:\n{waited[-1500:]}")

    # The restart rule: nothing lost, the interrupted job FAILED saying why, the queue resumed.
    client = genai.Client(vertexai=True, project=PROJECT, location=LOCATION)
    again = client.tunings.get(name=done.name)
    stopped = client.tunings.get(name=running)
    assert stopped.state.name == "JOB_STATE_FAILED"
    assert "stopped or restarted during training" in stopped.error.message, stopped.error.message
    requeued = wait_state(client, pending, {"JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED"})
    after = client.models.generate_content(model=done.tuned_model.endpoint, contents=["Inspect.", image]).text
    listed = {job.name for job in client.tunings.list()}
    lost = len({done.name, running, pending} - listed)
    lost += again.state.name != "JOB_STATE_SUCCEEDED" or again.tuned_model.endpoint != done.tuned_model.endpoint
    lost += after != before
    lost += not storage.Client(project=PROJECT).bucket(BUCKET).blob("img/train.jsonl").exists()
    counts.add_data_lost(lost)
    assert lost == 0, (listed, again.state, after, before)
    assert requeued.state.name in ("JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"), requeued.error
    counts.add_runs()  # the wait step that saw its job through the outage and reported it

    # The wait step that outlived the outage: its client retried through it, then it failed with
    # the job's own error, which says what happened and what to do.
    assert (
        f"{running} ended JOB_STATE_FAILED: The local Vertex AI server stopped or restarted during "
        "training, so this job did not finish. Create the tuning job again." in waited
    )
    # While the server was down it printed the client's retries (KFP's executor logs INFO). An
    # outage longer than those retries is the last test below.
    assert "Retrying" in waited and "ConnectError" in waited

    assert_a_second_server_is_refused(start, data_dir, second)
    second.proc.send_signal(signal.SIGTERM)
    assert second.proc.wait(timeout=30) == 0


def test_an_outage_longer_than_the_clients_retries_is_reported_clearly(local_stack, tmp_path, monkeypatch):
    """The API stays unreachable (tokens still come from the session's server): the wait step must
    poll on until its own deadline and then say which job it lost sight of, and for how long."""
    monkeypatch.setenv("GOOGLE_VERTEX_BASE_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens
    job = f"projects/{PROJECT}/locations/{LOCATION}/tuningJobs/123"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", WAIT_STEP, job, str(tmp_path), "2", "6"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=os.environ.copy(),
        timeout=120,
    )
    counts.add_faults()
    said = (result.stdout + result.stderr).strip().splitlines()
    print(f"\nafter {time.monotonic() - started:.1f} s the wait step ended with: {said[-1]}")
    assert result.returncode != 0
    # Clear: its last line names the job and says the API could not be reached; it kept polling
    # until its deadline (6 s here) rather than dying at the client's second attempt.
    assert job in said[-1] and "reach" in said[-1], said[-1]
    assert time.monotonic() - started >= 6
