"""The offline runner SIGKILLed while its tuning job trains, then run again on the same data folder.

``python -m pipeline run --num-images 40 --epochs 1 --data-dir D`` (``PIPELINE_RUNS_DIR`` set)
runs in its own process group; once its tuning job is RUNNING the whole group gets SIGKILL (the
runner, kfp.local, the task processes; the storage server dies with its owner; the training
worker, in a session of its own, stops when its stdin closes). Then:

* the data folder's lock is free at once (an ``flock``, released by the kernel on death);
* the killed run's folder has no ``metrics.json`` nor ``result.json``, so ``runs`` and
  ``inspect`` (which read only runs with metrics, the latest successful one for ``inspect``)
  never take it for a result;
* the second run on the same folder succeeds with a tuning job of its own; the killed run's job
  ends FAILED under the restart rule and is not resumed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.faults import counts

pytestmark = [pytest.mark.faults, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
RUN = [sys.executable, "-m", "pipeline", "run", "--num-images", "40", "--epochs", "1", "--adapter-size", "1"]
SDK_VARIABLES = (
    "GOOGLE_VERTEX_BASE_URL",
    "STORAGE_EMULATOR_HOST",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_CLOUD_PROJECT",
)


def jobs_in(data_dir: Path) -> dict[str, dict]:
    jobs = {}
    for path in (data_dir / "jobs").glob("*.json"):
        with contextlib.suppress(OSError, ValueError):  # being replaced right now
            jobs[path.stem] = json.loads(path.read_text())
    return jobs


def processes_using(data_dir: Path) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(data_dir).encode() in (proc / "cmdline").read_bytes():
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:150])
        except OSError:
            pass
    return found


def kill_a_run_while_it_tunes(env: dict, data_dir: Path, tmp_path: Path) -> float:
    """Starts a run on ``data_dir`` in its own process group and SIGKILLs the group once its tuning
    job is RUNNING; returns the seconds it ran."""
    started = time.monotonic()
    with open(tmp_path / "first.out", "w") as out:
        first = subprocess.Popen(
            [*RUN, "--data-dir", str(data_dir)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=env,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 240
            while not any(job["state"] == "JOB_STATE_RUNNING" for job in jobs_in(data_dir).values()):
                assert first.poll() is None, (tmp_path / "first.out").read_text()[-2000:]
                assert time.monotonic() < deadline, "no tuning job RUNNING after 240 s"
                time.sleep(0.3)
        finally:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    counts.add_faults()
    return time.monotonic() - started


def assert_nothing_holds_the_folder(data_dir: Path) -> None:
    """The lock is free at once; whatever the killed run started stops by itself within 30 s."""
    fd = os.open(data_dir / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError if still held
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    deadline = time.monotonic() + 30
    while left := processes_using(data_dir):
        assert time.monotonic() < deadline, f"still running 30 s after the kill: {left}"
        time.sleep(0.3)


def assert_runs_and_inspect_see_the_finished_run(env: dict, data_dir: Path, new_run: Path, killed_run: Path) -> None:
    """`runs` lists both runs, the killed one with its state; `inspect` asks the finished run's endpoint."""
    listed = subprocess.run(
        [sys.executable, "-m", "pipeline", "runs", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**env, "COLUMNS": "250"},
        timeout=120,
    )
    table = listed.stdout + listed.stderr  # the table goes to the console, which is stderr
    assert listed.returncode == 0, table
    assert new_run.name in table and killed_run.name in table and "2 offline run(s)" in table, table
    killed_row = next(line for line in table.splitlines() if killed_run.name in line)
    assert "succeeded" not in killed_row, killed_row  # shown interrupted or failed, never as a success
    image = data_dir.parent / "photo.png"
    from PIL import Image

    Image.new("RGB", (100, 100), (0x55, 0x55, 0xAA)).save(image)
    asked = subprocess.run(
        [sys.executable, "-m", "pipeline", "inspect", str(image), "--json", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=180,
    )
    assert asked.returncode == 0, asked.stdout[-2000:] + asked.stderr[-2000:]
    answer = json.loads(asked.stdout.strip().splitlines()[-1])
    assert answer["answer"].startswith("Status:") and not answer["error"]


def test_the_runner_killed_during_tuning_then_run_again(tmp_path):
    data_dir, runs = tmp_path / "lv", tmp_path / "runs"
    # The CLI starts its own local Vertex AI on the data folder: no session stack's variables.
    env = {k: v for k, v in os.environ.items() if k not in SDK_VARIABLES}
    env.update(PIPELINE_RUNS_DIR=str(runs), PYTHONUNBUFFERED="1")
    killed_after = kill_a_run_while_it_tunes(env, data_dir, tmp_path)
    [killed_job] = [job_id for job_id, job in jobs_in(data_dir).items() if job["state"] == "JOB_STATE_RUNNING"]
    assert_nothing_holds_the_folder(data_dir)
    [killed_run] = list(runs.iterdir())
    assert not (killed_run / "metrics.json").exists() and not (killed_run / "result.json").exists()

    # ---- run again on the same data folder
    second = subprocess.run(
        [*RUN, "--data-dir", str(data_dir)], capture_output=True, text=True, cwd=REPO, env=env, timeout=400
    )
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    metrics = json.loads(second.stdout.strip().splitlines()[-1])
    assert metrics["ok"] is True and metrics["eval_examples"] == 4
    counts.add_runs()
    [new_run] = [path for path in runs.iterdir() if path != killed_run]
    assert metrics["run_id"] == new_run.name
    result = json.loads((new_run / "result.json").read_text())
    jobs = jobs_in(data_dir)
    # The killed run's job: FAILED by the restart rule, not resumed, not the new run's.
    assert jobs[killed_job]["state"] == "JOB_STATE_FAILED"
    assert "stopped or restarted during training" in jobs[killed_job]["error"]["message"]
    [new_job] = [job for job_id, job in jobs.items() if job_id != killed_job and job["state"] == "JOB_STATE_SUCCEEDED"]
    assert result["tuned_endpoint"] == new_job["tunedModel"]["endpoint"]

    assert_runs_and_inspect_see_the_finished_run(env, data_dir, new_run, killed_run)
    lost = int(not (new_run / "metrics.json").exists())
    counts.add_data_lost(lost)
    print(
        f"\nkilled after {killed_after:.0f} s (job {killed_job} RUNNING); the second run took "
        f"{metrics['seconds']:.0f} s"
    )
