"""A full disk under the local Vertex AI's data directory, and under a component's output.

Size-limited tmpfs mounts (root only; skipped with the reason otherwise) fill up for real:

* ``<data_dir>/models`` with room for one tuned model: the second job's model save fails
  (ENOSPC inside safetensors). The job ends FAILED saying "No space left on device", no half
  model is ever served or listed, the first model's files are untouched, and the ``.partial``
  folder is gone after a restart.
* ``<data_dir>/jobs`` full while one job trains and another waits (a module-scoped scenario,
  observed once, judged by several tests): job files are written atomically (tmp + rename), so
  every file still parses and no job is lost, and a failed write leaves no ``.tmp`` file. A
  create answers 429 RESOURCE_EXHAUSTED saying the data directory is full (these were bugs: a
  bare "500 Internal error: OSError"); the training job ends FAILED "No space left on device"
  (in memory at once, on disk once space comes back; it stayed RUNNING with no worker); the
  queued job's claim is retried with backoff (it was retried in a tight loop, thousands of
  tracebacks a second).
* a component's output file: synthesize_images and import_dataset write their manifest whole
  or not at all (helpers.write_manifest), so a disk that fills while they write leaves none.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from kfp.dsl import Dataset

from tests.faults import counts
from tests.harness import upload_training_file, wait_for_job, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.filterwarnings("ignore:The SDK's tuning implementation is experimental")]

PROJECT, LOCATION, BUCKET = "local-project", "us-central1", "local-bucket"
NO_SPACE = "No space left on device"


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    """A tmpfs of ``size`` mounted at ``path`` (skips the test where mounting is not permitted)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(
            f"cannot mount a size-limited tmpfs to fill up (needs root / CAP_SYS_ADMIN): "
            f"{(mounted.stderr or mounted.stdout).strip()}"
        )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(path: Path) -> Path:
    """Fills the filesystem holding ``path`` to the last byte; returns the filler file."""
    filler = path / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for block in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * block)
    finally:
        os.close(fd)
    return filler


def tuner():
    from google import genai
    from google.genai import types

    client = genai.Client(vertexai=True, project=PROJECT, location=LOCATION)

    def tune(uri: str, epochs: int) -> str:
        return client.tunings.tune(
            base_model="gemini-3.5-flash",
            training_dataset=types.TuningDataset(gcs_uri=uri),
            config=types.CreateTuningJobConfig(epoch_count=epochs, adapter_size="ADAPTER_SIZE_ONE"),
        ).name

    return client, tune


ENDED = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}


def wait_ended(client, name: str, timeout: float = 120.0):
    return wait_for_job(client, name, ENDED, timeout)


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def worker_alive(data_dir: Path, job: str) -> bool:
    """Whether a training worker for ``job`` runs (``python -m localvertex.jobs <data_dir>/work/<id>.json``)."""
    spec = str(data_dir / "work" / f"{job.rsplit('/', 1)[1]}.json").encode()
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if proc.name.isdigit() and spec in (proc / "cmdline").read_bytes():
                return True
    return False


def epochs_logged(log: Path, job: str) -> int:
    return log.read_text().count(f"job {job.rsplit('/', 1)[1]} epoch ")


def while_full(client, names: dict[str, str], log: Path, jobs: Path) -> dict:
    """What the runner and the job files show while ``jobs/`` is full: the training job's next
    epoch cannot be recorded, then the queued job's claim cannot."""
    seen = {}
    wait_until(lambda: "runner error" in log.read_text(), 60, "runner error")
    time.sleep(1.0)
    errors_before = log.read_text().count("runner error")
    time.sleep(3.0)
    seen["runner_errors_in_3_s"] = log.read_text().count("runner error") - errors_before
    seen["while_full"] = {name: client.tunings.get(name=name).state.name for name in names.values()}
    seen["tmp_files"] = sorted(p.name for p in jobs.glob(".*.tmp"))
    seen["files"] = {}
    for path in jobs.glob("*.json"):
        try:
            seen["files"][path.stem] = json.loads(path.read_text())["state"]
        except ValueError as error:
            seen["files"][path.stem] = f"corrupt: {error}"
    return seen


def after_space_returns(client, data_dir: Path, training: str, queued: str) -> dict:
    """The training and queued jobs once space is back: how they ended, and whether the worker lives."""
    # A generous bound on a state, not a fixed wait: at load 8 the job took over 20 s to end.
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        after = {name: client.tunings.get(name=name) for name in (training, queued)}
        if all(job.has_ended for job in after.values()):
            break
        time.sleep(0.5)
    return {
        "after": {name: (job.state.name, job.error.message if job.error else "") for name, job in after.items()},
        "training_worker_alive": worker_alive(data_dir, training),
    }


@pytest.fixture(scope="module")
def full_disk(tmp_path_factory):
    """One scenario, observed once and judged by the tests below.

    ``<data_dir>/models`` is a tmpfs with room for one model, ``<data_dir>/jobs`` one of 64 KiB.
    1. A job succeeds; a second one's model save runs out of space.
    2. A 100-epoch job trains, another waits behind it; ``jobs/`` fills to the last byte while it
       does; a create is tried; the runner's reaction is watched; then space comes back.
    3. The stack restarts on the same directory.
    """
    from google.genai import errors, types

    from localvertex import LocalStack

    data_dir = tmp_path_factory.mktemp("full-disk") / "lv"
    log = data_dir / "localvertex.log"
    seen: dict = {}
    image = types.Part.from_uri(file_uri=f"gs://{BUCKET}/disk/1.png", mime_type="image/png")
    with tmpfs(data_dir / "models", "700k") as models, tmpfs(data_dir / "jobs", "64k") as jobs:
        with LocalStack(data_dir) as stack:
            stack.apply_env()
            client, tune = tuner()
            uri = upload_training_file("disk")
            # 1. models/ holds one model of the smallest adapter (~470 KB), not two
            first = wait_ended(client, tune(uri, 1))
            assert first.state.name == "JOB_STATE_SUCCEEDED", first.error
            [model_dir] = [p for p in models.iterdir() if p.is_dir()]
            seen["model_dir"], seen["model_digests"] = model_dir.name, digests(model_dir)
            seen["answer"] = client.models.generate_content(
                model=first.tuned_model.endpoint, contents=["Inspect.", image]
            ).text
            second = wait_ended(client, tune(uri, 1))
            seen["second"] = (
                second.state.name,
                second.error.message if second.error else "",
                bool(second.tuned_model and second.tuned_model.endpoint),
            )
            seen["models"] = sorted(p.name for p in models.iterdir())

            # 2. jobs/ fills while a job trains and another waits
            training = tune(uri, 100)
            wait_until(lambda: epochs_logged(log, training) >= 1, 90, "epoch of the training job")
            queued = tune(uri, 1)
            names = {"first": first.name, "second": second.name, "training": training, "queued": queued}
            seen["before"] = {job.name: job.state.name for job in client.tunings.list()}
            filler = fill(jobs)
            try:
                tune(uri, 1)
            except errors.APIError as error:
                seen["create"] = (error.code, error.status, error.message)
            seen.update(while_full(client, names, log, jobs))
            filler.unlink()  # space comes back
            seen.update(after_space_returns(client, data_dir, training, queued))
            seen["names"] = names
        # 3. restarted on the same directory (the mounts stay)
        with LocalStack(data_dir) as again:
            again.apply_env()
            client, _ = tuner()
            seen["restarted"] = {name: client.tunings.get(name=name).state.name for name in names.values()}
            seen["restarted_tmp_files"] = sorted(p.name for p in jobs.glob(".*.tmp"))
            seen["restarted_partials"] = sorted(p.name for p in models.glob("*.partial"))
            seen["restarted_model_digests"] = digests(model_dir)
            seen["restarted_answer"] = client.models.generate_content(
                model=first.tuned_model.endpoint, contents=["Inspect.", image]
            ).text
            client.tunings.cancel(name=queued) if seen["restarted"][queued] in (
                "JOB_STATE_PENDING",
                "JOB_STATE_RUNNING",
            ) else None
    print(f"\nfull disk: {json.dumps(seen, indent=1)}")
    return seen


# Each test counts the writes that hit the full disk which it judges.


def test_a_model_save_on_a_full_disk_fails_the_job_and_harms_no_model(full_disk):
    seen = full_disk
    counts.add_faults()  # the second model's save
    state, message, has_endpoint = seen["second"]
    assert state == "JOB_STATE_FAILED" and not has_endpoint
    # "Training failed: SafetensorError: Error while serializing: I/O error: No space left on device (os error 28)"
    assert NO_SPACE in message, message
    # No half model is served: the first model's folder and the failed save's .partial folder only,
    # and the restart removes the .partial.
    assert [name for name in seen["models"] if not name.endswith(".partial")] == [seen["model_dir"]]
    assert seen["restarted_partials"] == []
    lost = int(seen["restarted_model_digests"] != seen["model_digests"])
    lost += seen["restarted_answer"] != seen["answer"]
    counts.add_data_lost(lost)
    assert not lost
    counts.add_runs()


def test_a_full_job_store_corrupts_and_loses_no_job(full_disk):
    seen, names = full_disk, full_disk["names"]
    counts.add_faults()  # jobs/ filled to the last byte under four jobs
    corrupt = [stem for stem, state in seen["files"].items() if state.startswith("corrupt")]
    lost = len(set(names.values()) - set(seen["before"])) + len(corrupt)
    lost += seen["restarted"][names["first"]] != "JOB_STATE_SUCCEEDED"
    counts.add_data_lost(lost)
    assert not corrupt and lost == 0, seen
    # Every file holds the last state that was written whole, and a create on a full disk fails
    # with nothing half-made: no fifth job appears.
    assert {f"projects/{PROJECT}/locations/{LOCATION}/tuningJobs/{stem}" for stem in seen["files"]} == set(
        names.values()
    )
    # RESOURCE_EXHAUSTED: google.rpc.Code's example for it is "the entire file system is out of space".
    assert seen["create"][:2] == (429, "RESOURCE_EXHAUSTED"), seen["create"]
    assert seen["restarted"][names["training"]] in ("JOB_STATE_FAILED", "JOB_STATE_CANCELLED")
    assert seen["restarted_tmp_files"] == []  # the next start removes leftovers
    counts.add_runs()


def test_a_full_job_store_says_so(full_disk):
    counts.add_faults()  # the create on the full disk
    assert NO_SPACE in full_disk["create"][2], full_disk["create"]


def test_the_runner_does_not_spin_on_a_full_disk(full_disk):
    counts.add_faults()  # the queued job's claim on the full disk
    assert full_disk["runner_errors_in_3_s"] <= 10, full_disk["runner_errors_in_3_s"]


def test_a_failed_job_write_leaves_no_tmp_file(full_disk):
    counts.add_faults(max(1, len(full_disk["tmp_files"])))  # the writes that failed half-way
    assert not full_disk["tmp_files"], full_disk["tmp_files"]


def test_jobs_hit_by_a_full_disk_end_saying_why(full_disk):
    seen, names = full_disk, full_disk["names"]
    counts.add_faults()  # the training job's progress write on the full disk
    state, message = seen["after"][names["training"]]
    assert not seen["training_worker_alive"]
    assert state in ("JOB_STATE_FAILED", "JOB_STATE_CANCELLED") and NO_SPACE in message, (state, message)
    state, message = seen["after"][names["queued"]]
    assert state == "JOB_STATE_SUCCEEDED" or NO_SPACE in message, (state, message)
    # What the API said of them is what a restart finds (not a FAILED job back in the queue).
    assert seen["restarted"][names["queued"]] == state, seen["restarted"]


# ---- a component's output on a full disk


def synthesize_to(folder: Path, image_folder: str, num_images: int = 40) -> Dataset:
    from components.synthesize_images import synthesize_images

    manifest = Dataset(name="manifest", uri=str(folder / "manifest.csv"), metadata={})
    with contextlib.redirect_stdout(io.StringIO()):
        synthesize_images.python_func(
            project=PROJECT,
            bucket=f"gs://{BUCKET}",
            manifest=manifest,
            num_images=num_images,
            image_folder=image_folder,
            seed=15,
        )
    return manifest


# Was a bug: the manifest was written in place; helpers.write_manifest writes it whole or not at all.
@pytest.mark.parametrize("component", ["synthesize_images", "import_dataset"])
def test_a_component_that_fails_writing_its_manifest_leaves_none(component, local_stack, tmp_path):
    from google.cloud import storage

    from components.import_dataset import import_dataset

    run = uuid.uuid4().hex[:6]
    with tmpfs(tmp_path / "out", "4k") as out:  # one page: a 40-row manifest (~7 KB) does not fit
        if component == "synthesize_images":
            with pytest.raises(OSError) as caught:
                synthesize_to(out, f"disk/manifest-{run}")
        else:
            rows = list(
                csv.DictReader(io.StringIO(Path(synthesize_to(tmp_path, f"disk/manifest-{run}").path).read_text()))
            )
            dataset = f"disk/manifest-{run}/dataset.csv"
            storage.Client(project=PROJECT).bucket(BUCKET).blob(dataset).upload_from_string(
                "gcs_uri,label\n" + "".join(f"{r['gcs_uri']},{r['label']}\n" for r in rows)
            )
            with pytest.raises(OSError) as caught, contextlib.redirect_stdout(io.StringIO()):
                import_dataset.python_func(
                    project=PROJECT,
                    dataset_uri=f"gs://{BUCKET}/{dataset}",
                    manifest=Dataset(name="m", uri=str(out / "manifest.csv"), metadata={}),
                )
        counts.add_faults()
        assert NO_SPACE in str(caught.value)
        left = out / "manifest.csv"
        assert not left.exists(), f"{component} failed and left a {left.stat().st_size}-byte manifest"
