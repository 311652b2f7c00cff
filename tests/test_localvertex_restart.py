"""Restarting the local stack on the same data directory loses nothing.

Restart rule (localvertex/jobs/runner.py): a finished job and its endpoint survive; a job
that was RUNNING when the stack stopped ends FAILED saying so, one that was CANCELLING ends
CANCELLED; a PENDING job is re-queued. Cloud Storage objects survive too (fake-gcs-server's
files in the data directory), and data written by the earlier storage emulator
(gcp-storage-emulator) is migrated at the first start.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

from localvertex.stack import LocalStack
from tests.harness import CRACK, PASS, tiny_png, upload_training_file, wait_for_job

PROJECT, LOCATION, BUCKET = "local-project", "us-central1", "local-bucket"


def _clients():
    from google import genai
    from google.cloud import storage

    return (genai.Client(vertexai=True, project=PROJECT, location=LOCATION), storage.Client(project=PROJECT))


def _wait(client, name, states, timeout=180.0):
    return wait_for_job(client, name, states, timeout)


@pytest.mark.slow
def test_restart_keeps_jobs_and_endpoints(tmp_path):
    from google.genai import types

    data_dir = tmp_path / "lv"
    image_part = types.Part.from_uri(file_uri=f"gs://{BUCKET}/img/1.png", mime_type="image/png")
    with LocalStack(data_dir, bucket=BUCKET, project=PROJECT) as first:
        first.apply_env()
        client, gcs = _clients()
        examples = [(PASS if i % 2 else CRACK, "#5555AA" if i % 2 else "#FF3333") for i in range(8)]
        train_uri = upload_training_file("img", examples)

        def tune(epochs):
            return client.tunings.tune(
                base_model="gemini-3.5-flash",
                training_dataset=types.TuningDataset(gcs_uri=train_uri),
                config=types.CreateTuningJobConfig(epoch_count=epochs),
            ).name

        done = _wait(client, tune(1), {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED"})
        assert done.state.name == "JOB_STATE_SUCCEEDED", done.error
        before = client.models.generate_content(model=done.tuned_model.endpoint, contents=["Inspect.", image_part]).text
        # The prediction process is started again if it dies between requests.
        worker = first._lv.predictor._proc
        assert worker is not None and worker.poll() is None
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        assert (
            client.models.generate_content(model=done.tuned_model.endpoint, contents=["Inspect.", image_part]).text
            == before
        )
        running = tune(100)
        _wait(client, running, {"JOB_STATE_RUNNING"}, timeout=60)
        pending = tune(1)
        assert client.tunings.get(name=pending).state.name == "JOB_STATE_PENDING"
        first_url = first.vertex_url
    # Stopping marked the job it was training; the queued one is still PENDING on disk.
    job_file = data_dir / "jobs" / f"{pending.rsplit('/', 1)[1]}.json"
    assert json.loads(job_file.read_text())["state"] == "JOB_STATE_PENDING"

    with LocalStack(data_dir, bucket=BUCKET, project=PROJECT) as second:
        second.apply_env()
        client, gcs = _clients()
        assert gcs.bucket(BUCKET).blob("img/train.jsonl").exists()
        # mediaLinks name the current port (get_blob + download uses them).
        assert gcs.bucket(BUCKET).get_blob("img/1.png").download_as_bytes() == tiny_png("#5555AA")
        again = client.tunings.get(name=done.name)
        assert again.state.name == "JOB_STATE_SUCCEEDED"
        assert again.tuned_model.endpoint == done.tuned_model.endpoint
        after = client.models.generate_content(model=done.tuned_model.endpoint, contents=["Inspect.", image_part]).text
        assert after == before
        stopped = client.tunings.get(name=running)
        assert stopped.state.name == "JOB_STATE_FAILED"
        assert "stopped" in stopped.error.message and "during training" in stopped.error.message
        # The PENDING job was re-queued and is picked up again.
        requeued = _wait(client, pending, {"JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"}, 60)
        assert requeued.state.name in ("JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED")
        assert {j.name for j in client.tunings.list()} >= {done.name, running, pending}
        assert second.vertex_url != first_url or second.vertex_url  # ports may differ
        creds = json.loads((data_dir / "credentials.json").read_text())
        assert creds["token_uri"] == f"{second.vertex_url}/token"


def test_recover_marks_running_failed_and_cancelling_cancelled(tmp_path):
    """Unit check of the restart rule without a server (a crash leaves RUNNING on disk)."""
    from localvertex import jobs as J

    store = J.JobStore(tmp_path)
    job = J.build_job(
        {"baseModel": "gemini-3.5-flash", "supervisedTuningSpec": {"trainingDatasetUri": "gs://local-bucket/t.jsonl"}},
        PROJECT,
        LOCATION,
    )
    job["state"] = J.RUNNING
    store.add(job)
    queued = J.build_job(
        {"baseModel": "gemini-3.5-flash", "supervisedTuningSpec": {"trainingDatasetUri": "gs://local-bucket/t.jsonl"}},
        PROJECT,
        LOCATION,
    )
    store.add(queued)
    cancelling = J.build_job(
        {"baseModel": "gemini-3.5-flash", "supervisedTuningSpec": {"trainingDatasetUri": "gs://local-bucket/t.jsonl"}},
        PROJECT,
        LOCATION,
    )
    cancelling["state"] = J.CANCELLING
    store.add(cancelling)
    J.TrainingRunner(J.JobStore(tmp_path), tmp_path, "http://127.0.0.1:1")
    reloaded = J.JobStore(tmp_path)
    crashed = reloaded.get(job["_local"]["id"])
    assert crashed["state"] == J.FAILED and "restarted during training" in crashed["error"]["message"]
    assert reloaded.get(cancelling["_local"]["id"])["state"] == J.CANCELLED
    assert reloaded.get(queued["_local"]["id"])["state"] == J.PENDING
    assert reloaded.next_pending()["_local"]["id"] == queued["_local"]["id"]


def _queued_job(store):
    from localvertex import jobs as J

    job = J.build_job(
        {"baseModel": "gemini-3.5-flash", "supervisedTuningSpec": {"trainingDatasetUri": "gs://local-bucket/t.jsonl"}},
        PROJECT,
        LOCATION,
    )
    store.add(job)
    return job["_local"]["id"]


def _full_disk(monkeypatch, calls=None):
    """Job-file writes fail as on a full disk (at the fsync, after the tmp file was made)."""
    import errno

    def refuse(fd):
        if calls is not None:
            calls.append((threading.current_thread(), time.monotonic()))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", refuse)


def test_a_job_write_the_full_disk_refuses_leaves_no_tmp_file_and_a_final_state_waits_in_memory(tmp_path, monkeypatch):
    from localvertex import jobs as J
    from localvertex.errors import RPC_INTERNAL
    from localvertex.jobs.resource import mark_failed, mark_running

    store = J.JobStore(tmp_path)
    job_id = _queued_job(store)
    on_disk = tmp_path / "jobs" / f"{job_id}.json"
    with monkeypatch.context() as full:
        _full_disk(full)
        with pytest.raises(OSError, match="No space left"):
            store.update(job_id, mark_running)
        assert store.get(job_id)["state"] == J.PENDING  # a refused change is not kept...
        ended = store.update(job_id, lambda j: mark_failed(j, RPC_INTERNAL, "x"), keep_unsaved=True)
        assert ended["state"] == J.FAILED == store.get(job_id)["state"]  # ...unless asked to
        assert json.loads(on_disk.read_text())["state"] == J.PENDING and store.has_unsaved
        with pytest.raises(OSError):
            store.save_unsaved()
        assert not list((tmp_path / "jobs").glob(".*.tmp")), "a failed write left its tmp file"
    store.save_unsaved()  # space came back
    assert json.loads(on_disk.read_text())["state"] == J.FAILED and not store.has_unsaved


def test_the_runner_backs_off_while_the_disk_refuses_a_claim(tmp_path, monkeypatch):
    """A PENDING job whose claim cannot be written stays PENDING and is tried again with backoff
    (it was retried in a tight loop: thousands of tracebacks a second)."""
    from localvertex import jobs as J

    store = J.JobStore(tmp_path)
    job_id = _queued_job(store)
    runner = J.TrainingRunner(store, tmp_path, "http://127.0.0.1:1")
    calls = []
    _full_disk(monkeypatch, calls)
    runner.start()
    time.sleep(3.0)
    runner.stop()
    # Only this runner's claims: other stacks alive in the test process write job files too.
    claims = [at for thread, at in calls if thread is runner._thread]
    assert 2 <= len(claims) <= 6, f"{len(claims)} claims in 3 s"  # backoff 0.5, 1, 2 s
    assert store.get(job_id)["state"] == J.PENDING
