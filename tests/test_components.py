"""Unit tests of each data and tuning component's python_func, against the local stack."""

import csv
import json
import re

import pytest
from google.cloud import storage
from google_cloud_pipeline_components.types.artifact_types import VertexEndpoint, VertexModel
from kfp import dsl

from components.build_tuning_jsonl import build_tuning_jsonl
from components.clients import genai_client, parse_gcs_uri
from components.labels import LABELS, PROMPT
from components.launch_tuning import launch_tuning
from components.split_manifest import split_manifest
from components.summarize_run import summarize_run
from components.synthesize_images import synthesize_images
from components.wait_for_tuning import wait_for_tuning
from tests.conftest import BUCKET, PROJECT


def vertex_artifact(kind, tmp_path):
    """An output artifact of a GCPC type, as KFP hands it to the component."""
    return kind(name=kind.__name__, uri=str(tmp_path / kind.__name__), metadata={})


def read_csv(artifact):
    with open(artifact.path, newline="") as f:
        return list(csv.DictReader(f))


def read_gcs_text(uri):
    bucket, name = parse_gcs_uri(uri)
    return storage.Client(project=PROJECT).bucket(bucket).blob(name).download_as_text()


def build_jsonl(outputs, tmp_path, folder, **overrides):
    """build_tuning_jsonl.python_func on the split's manifests, any of them overridden."""
    manifests = {f"{split}_manifest": outputs[split] for split in ("train", "validation", "test")}
    args = {
        "project": PROJECT,
        "bucket": BUCKET,
        "prompt": PROMPT,
        **manifests,
        "jsonl_folder": folder,
        "jsonl_metrics": dsl.Metrics(name="j", uri=str(tmp_path / "j"), metadata={}),
        **overrides,
    }
    return build_tuning_jsonl.python_func(**args)


def manifest_file(path, rows):
    """A manifest CSV artifact holding ``rows``."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return dsl.Dataset(name=path.stem, uri=str(path), metadata={})


@pytest.fixture(scope="module")
def synthesized(local_stack, tmp_path_factory):
    """40 synthesized images in the emulator and their manifest."""
    folder = tmp_path_factory.mktemp("synth")
    manifest = dsl.Dataset(name="manifest", uri=str(folder / "manifest.csv"), metadata={})
    synthesize_images.python_func(
        project=PROJECT,
        bucket=BUCKET,
        manifest=manifest,
        num_images=40,
        defect_ratio=0.5,
        seed=7,
        image_folder="unit/images",
    )
    return manifest


@pytest.fixture(scope="module")
def splits(synthesized, tmp_path_factory):
    folder = tmp_path_factory.mktemp("split")
    outputs = {
        name: dsl.Dataset(name=name, uri=str(folder / f"{name}.csv"), metadata={})
        for name in ("train", "validation", "test")
    }
    metrics = dsl.Metrics(name="m", uri=str(folder / "metrics"), metadata={})
    split_manifest.python_func(
        manifest=synthesized,
        train_manifest=outputs["train"],
        validation_manifest=outputs["validation"],
        test_manifest=outputs["test"],
        split_metrics=metrics,
        seed=7,
    )
    return outputs, metrics


def test_synthesize_writes_balanced_unique_labelled_images(synthesized):
    rows = read_csv(synthesized)
    assert len(rows) == 40
    assert sum(r["status"] == "Defect" for r in rows) == 20
    defect_counts = {t: sum(r["defect_type"] == t for r in rows) for t in ("Scratch", "Crack", "Discoloration")}
    assert sorted(defect_counts.values()) == [6, 7, 7]
    assert len({r["sha256"] for r in rows}) == 40, "every image must differ"
    assert {r["label"] for r in rows} == set(LABELS.values())
    for row in rows:
        assert row["label"] == LABELS[None if row["defect_type"] == "None" else row["defect_type"]]
    bucket, name = parse_gcs_uri(rows[0]["gcs_uri"])
    assert name.startswith("unit/images/standard-seed7-n40-defects0.5/")
    data = storage.Client(project=PROJECT).bucket(bucket).blob(name).download_as_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"


def test_synthesize_is_deterministic_for_a_seed(synthesized, local_stack, tmp_path):
    again = dsl.Dataset(name="again", uri=str(tmp_path / "again.csv"), metadata={})
    synthesize_images.python_func(
        project=PROJECT,
        bucket=BUCKET,
        manifest=again,
        num_images=40,
        defect_ratio=0.5,
        seed=7,
        image_folder="unit/images",
    )
    assert read_csv(again) == read_csv(synthesized)


@pytest.mark.parametrize(
    "emulator, trusts_environment",
    [
        ("http://127.0.0.1:9023", False),
        ("localhost:4443", False),
        ("http://[::1]:80", False),
        ("http://10.0.0.5:4443", True),  # an emulator elsewhere may need the proxy settings
        ("https://gcs.example.com", True),
    ],
)
def test_storage_client_ignores_proxy_settings_only_for_a_loopback_emulator(monkeypatch, emulator, trusts_environment):
    from components.clients import storage_client

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator)
    assert storage_client(PROJECT)._http.trust_env is trusts_environment


def test_synthesize_redraws_a_duplicate_image_and_uploads_the_redraw(local_stack, tmp_path, monkeypatch):
    """Three possible drawings, and seed 4 draws the same one first for all three images:
    duplicates are redrawn in index order, and
    every object in the bucket is the image its manifest row names."""
    import hashlib

    from PIL import Image

    import components.synthesize_images as module

    monkeypatch.setattr(
        module, "draw_product_image", lambda rng, *_: Image.new("RGB", (4, 4), (rng.randint(0, 2), 0, 0))
    )
    manifest = dsl.Dataset(name="dup", uri=str(tmp_path / "dup.csv"), metadata={})
    args = {"project": PROJECT, "bucket": BUCKET, "num_images": 3, "seed": 4, "image_folder": "unit/dup"}
    synthesize_images.python_func(manifest=manifest, **args)
    rows = read_csv(manifest)
    assert len({r["sha256"] for r in rows}) == 3
    for row in rows:
        bucket, name = parse_gcs_uri(row["gcs_uri"])
        data = storage.Client(project=PROJECT).bucket(bucket).blob(name).download_as_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"], row["image_name"]
    again = dsl.Dataset(name="dup2", uri=str(tmp_path / "dup2.csv"), metadata={})
    synthesize_images.python_func(manifest=again, upload_workers=1, **args)
    assert read_csv(again) == rows  # the same set whatever the thread count


def test_synthesize_never_overwrites_another_parameter_sets_images(synthesized, tmp_path):
    other = dsl.Dataset(name="other", uri=str(tmp_path / "other.csv"), metadata={})
    synthesize_images.python_func(
        project=PROJECT,
        bucket=BUCKET,
        manifest=other,
        num_images=40,
        defect_ratio=0.5,
        seed=8,
        image_folder="unit/images",
    )
    assert not {r["gcs_uri"] for r in read_csv(other)} & {r["gcs_uri"] for r in read_csv(synthesized)}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_images": 0}, "num_images must be at least 1"),
        ({"defect_ratio": 1.5}, "defect_ratio must be in [0, 1]"),
        ({"bucket": "local-bucket"}, "expected a gs://bucket/object URI"),
    ],
)
def test_synthesize_rejects_bad_parameters(kwargs, message, tmp_path):
    manifest = dsl.Dataset(name="m", uri=str(tmp_path / "m.csv"), metadata={})
    args = {"project": PROJECT, "bucket": BUCKET, "manifest": manifest, **kwargs}
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        synthesize_images.python_func(**args)
    assert not (tmp_path / "m.csv").exists()


def test_split_is_stratified_disjoint_and_complete(synthesized, splits):
    outputs, metrics = splits
    rows = {name: read_csv(a) for name, a in outputs.items()}
    hashes = {name: {r["sha256"] for r in part} for name, part in rows.items()}
    assert not hashes["train"] & hashes["test"] and not hashes["train"] & hashes["validation"]
    assert not hashes["validation"] & hashes["test"]
    assert sum(len(part) for part in rows.values()) == 40
    assert len(rows["train"]) == 32 and len(rows["validation"]) == 4 and len(rows["test"]) == 4
    for name in ("Pass", "Scratch", "Crack", "Discoloration"):  # every class is trained on
        assert any((r["defect_type"] if r["status"] == "Defect" else r["status"]) == name for r in rows["train"])
    assert metrics.metadata["split_train_examples"] == 32
    assert metrics.metadata["split_train_pass"] == 16


def test_split_keeps_identical_images_together(tmp_path):
    rows = [
        {
            "gcs_uri": f"gs://b/{i}.png",
            "label": "Status: Pass",
            "status": "Pass",
            "defect_type": "None",
            "sha256": "same" if i < 5 else str(i),
        }
        for i in range(20)
    ]
    manifest = manifest_file(tmp_path / "m.csv", rows)
    outs = [dsl.Dataset(name=n, uri=str(tmp_path / n), metadata={}) for n in ("a", "b", "c")]
    split_manifest.python_func(
        manifest=manifest,
        train_manifest=outs[0],
        validation_manifest=outs[1],
        test_manifest=outs[2],
        split_metrics=dsl.Metrics(name="x", uri=str(tmp_path / "x"), metadata={}),
    )
    holders = [o for o in outs if any(r["sha256"] == "same" for r in read_csv(o))]
    assert len(holders) == 1 and sum(r["sha256"] == "same" for r in read_csv(holders[0])) == 5


def test_jsonl_lines_are_gemini_sft_format(splits, tmp_path):
    outputs, _ = splits
    metrics = dsl.Metrics(name="j", uri=str(tmp_path / "j"), metadata={})
    uris = build_jsonl(
        outputs, tmp_path, "unit/tuning", jsonl_metrics=metrics, system_instruction="You are a QC inspector."
    )
    assert re.fullmatch(r"gs://local-bucket/unit/tuning/[0-9a-f]{16}/train\.jsonl", uris.train_jsonl_uri)
    assert uris.test_jsonl_uri == uris.train_jsonl_uri.replace("train.jsonl", "test.jsonl")
    lines = [json.loads(line) for line in read_gcs_text(uris.train_jsonl_uri).splitlines()]
    assert len(lines) == 32 == metrics.metadata["jsonl_train_lines"]
    first = lines[0]
    assert [turn["role"] for turn in first["contents"]] == ["user", "model"]
    assert first["contents"][0]["parts"][0] == {"text": PROMPT}
    assert first["contents"][0]["parts"][1]["fileData"]["mimeType"] == "image/png"
    assert first["contents"][1]["parts"][0]["text"] in LABELS.values()
    assert first["systemInstruction"]["parts"][0]["text"] == "You are a QC inspector."


def test_jsonl_names_file_line_and_reason_and_writes_nothing(splits, tmp_path):
    outputs, _ = splits
    rows = read_csv(outputs["test"])
    rows[1]["gcs_uri"] = "gs://local-bucket/unit/images/missing.png"
    with pytest.raises(
        ValueError, match=r"test\.jsonl line 2: gs://local-bucket/unit/images/missing\.png does not exist"
    ):
        build_jsonl(outputs, tmp_path, "unit/broken", test_manifest=manifest_file(tmp_path / "test.csv", rows))
    assert not list(storage.Client(project=PROJECT).bucket("local-bucket").list_blobs(prefix="unit/broken/"))


def test_jsonl_oversampling_balances_training_labels(splits, tmp_path):
    outputs, _ = splits
    rows = read_csv(outputs["train"])
    skewed = [r for r in rows if r["status"] == "Pass"] + [r for r in rows if r["defect_type"] == "Crack"][:2]
    uris = build_jsonl(
        outputs,
        tmp_path,
        "unit/oversampled",
        oversample_rare_classes=True,
        train_manifest=manifest_file(tmp_path / "train.csv", skewed),
    )
    labels = [
        json.loads(line)["contents"][1]["parts"][0]["text"] for line in read_gcs_text(uris.train_jsonl_uri).splitlines()
    ]
    assert labels.count(LABELS["Crack"]) == labels.count(LABELS[None]) == 16


@pytest.mark.slow
def test_launch_wait_and_summarize_a_real_local_tuning_job(splits, tmp_path):
    outputs, _ = splits
    jsonl = build_jsonl(outputs, tmp_path, "unit/tune")
    resources = tmp_path / "gcp_resources"
    launched = launch_tuning.python_func(
        project=PROJECT,
        location="us-central1",
        train_jsonl_uri=jsonl.train_jsonl_uri,
        gcp_resources=str(resources),
        validation_jsonl_uri=jsonl.validation_jsonl_uri,
        epoch_count=1,
        adapter_size=1,
    )
    assert launched.job_name.startswith(f"projects/{PROJECT}/locations/us-central1/tuningJobs/")
    resource = json.loads(resources.read_text())["resources"][0]
    assert resource["resourceType"] == "TuningJob" and resource["resourceUri"].endswith(launched.job_name)

    metrics = dsl.Metrics(name="t", uri=str(tmp_path / "t"), metadata={})
    waited = wait_for_tuning.python_func(
        project=PROJECT,
        location="us-central1",
        job_name=launched.job_name,
        tuning_metrics=metrics,
        gcp_resources=str(tmp_path / "waited"),
        model=(model := vertex_artifact(VertexModel, tmp_path)),
        endpoint=(endpoint := vertex_artifact(VertexEndpoint, tmp_path)),
        poll_interval_seconds=1,
        timeout_seconds=300,
    )
    assert json.loads((tmp_path / "waited").read_text()) == json.loads(resources.read_text())
    assert "/endpoints/" in waited.tuned_endpoint and "/models/" in waited.tuned_model
    # GCPC's convention: resourceName in metadata, the API URI of the resource as the artifact's uri.
    assert model.metadata["resourceName"] == waited.tuned_model and model.uri.endswith("/v1/" + waited.tuned_model)
    assert endpoint.metadata["resourceName"] == waited.tuned_endpoint
    assert endpoint.uri.endswith("/v1/" + waited.tuned_endpoint)
    assert metrics.metadata["train_example_count"] == 32
    assert metrics.metadata["train_epochs_completed"] == 1

    eval_metrics = dsl.Metrics(
        name="e",
        uri=str(tmp_path / "e"),
        metadata={"eval_status_accuracy": 1.0, "eval_defect_type_accuracy": 0.75, "eval_examples": 4},
    )
    summary = dsl.Markdown(name="s", uri=str(tmp_path / "summary.md"), metadata={})
    text = summarize_run.python_func(
        project=PROJECT,
        location="us-central1",
        job_name=launched.job_name,
        base_model="gemini-3.5-flash",
        tuned_model_display_name="inspector",
        tuned_endpoint=waited.tuned_endpoint,
        eval_metrics=eval_metrics,
        summary=summary,
    )
    written = (tmp_path / "summary.md").read_text()
    # Four test images are no evidence of readiness either way (summarize_run.readiness).
    assert "75.0% defect-type accuracy" in text and "readiness cannot be judged on 4 test image(s)" in text
    assert "Source: template (Gemini unavailable: ClientError" in written  # no local Gemini: 404


def test_wait_fails_with_the_jobs_error(splits, tmp_path, local_stack):
    from google.genai import types

    # A training file whose label turn has the wrong role: the job must end FAILED.
    bad = '{"contents":[{"role":"user","parts":[{"text":"x"}]},{"role":"user","parts":[{"text":"y"}]}]}\n'
    storage.Client(project=PROJECT).bucket("local-bucket").blob("unit/bad/train.jsonl").upload_from_string(bad)
    client = genai_client(PROJECT, "us-central1")
    job = client.tunings.tune(
        base_model="gemini-3.5-flash",
        training_dataset=types.TuningDataset(gcs_uri="gs://local-bucket/unit/bad/train.jsonl"),
    )
    with pytest.raises(RuntimeError, match=r"ended JOB_STATE_FAILED: .*train\.jsonl line 1"):
        wait_for_tuning.python_func(
            project=PROJECT,
            location="us-central1",
            job_name=job.name,
            tuning_metrics=dsl.Metrics(name="t", uri=str(tmp_path / "t"), metadata={}),
            gcp_resources=str(tmp_path / "r"),
            model=vertex_artifact(VertexModel, tmp_path),
            endpoint=vertex_artifact(VertexEndpoint, tmp_path),
            poll_interval_seconds=1,
            timeout_seconds=120,
        )


def test_launch_rejects_an_unknown_adapter_size(tmp_path):
    with pytest.raises(
        ValueError, match="adapter_size 3 is not supported for gemini-3.5-flash; use one of 1, 2, 4, 8, 16"
    ):
        launch_tuning.python_func(
            project=PROJECT,
            location="us-central1",
            train_jsonl_uri="gs://b/t.jsonl",
            gcp_resources=str(tmp_path / "r"),
            adapter_size=3,
        )


def test_launch_refuses_a_retired_base_model_before_any_job_exists(local_stack, tmp_path):
    """A model retired since the run was submitted is refused by the task itself, naming the replacement."""
    client = genai_client(PROJECT, "us-central1")
    before = [job.name for job in client.tunings.list()]
    with pytest.raises(ValueError, match=r"gemini-2.5-flash was retired on 2026-06-17.*use gemini-3.5-flash"):
        launch_tuning.python_func(
            project=PROJECT,
            location="us-central1",
            train_jsonl_uri="gs://b/t.jsonl",
            gcp_resources=str(tmp_path / "r"),
            base_model="gemini-2.5-flash",
        )
    assert [job.name for job in client.tunings.list()] == before


WAIT_IN_CHILD = """
import sys
from kfp import dsl
from google_cloud_pipeline_components.types.artifact_types import VertexEndpoint, VertexModel
from components.wait_for_tuning import wait_for_tuning
wait_for_tuning.python_func(project=sys.argv[1], location="us-central1", job_name=sys.argv[2],
                            tuning_metrics=dsl.Metrics(name="t", uri=sys.argv[3] + "/t", metadata={}),
                            gcp_resources=sys.argv[3] + "/r", poll_interval_seconds=1, timeout_seconds=300,
                            model=VertexModel(name="m", uri=sys.argv[3] + "/m", metadata={}),
                            endpoint=VertexEndpoint(name="e", uri=sys.argv[3] + "/e", metadata={}))
"""


@pytest.mark.slow
def test_a_terminated_wait_cancels_its_tuning_job(splits, tmp_path):
    """A cancelled pipeline run sends SIGTERM to the task: the job must not train on unseen."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from google.genai import types

    from components.clients import genai_client

    outputs, _ = splits
    jsonl = build_jsonl(outputs, tmp_path, "unit/sigterm")
    client = genai_client(PROJECT, "us-central1")
    job = client.tunings.tune(
        base_model="gemini-3.5-flash",
        training_dataset=types.TuningDataset(gcs_uri=jsonl.train_jsonl_uri),
        config=types.CreateTuningJobConfig(epoch_count=50),
    )
    child = subprocess.Popen(
        [sys.executable, "-c", WAIT_IN_CHILD, PROJECT, job.name, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ.copy(),
    )
    for line in child.stdout:  # wait until the task is polling
        if "JOB_STATE_" in line:
            break
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=60) == 128 + signal.SIGTERM
    deadline = time.monotonic() + 60
    while (state := client.tunings.get(name=job.name).state.name) != "JOB_STATE_CANCELLED":
        assert state in ("JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_CANCELLING"), state
        assert time.monotonic() < deadline, f"job still {state}"
        time.sleep(0.5)
