"""Continuous tuning in the local Vertex AI (``preTunedModel``), through the real google-genai
client: the request rules (400/404 as Vertex AI answers them), the served resource, and the
local trainer really starting from the pre-tuned model's weights (lower loss than a fresh
network on the same data). Training is tiny: 16 images of 32x32, one or two epochs.
"""

from __future__ import annotations

import httpx
import pytest

from localvertex import jobs as J
from localvertex.errors import ApiError
from localvertex.jobs.continuous import resolve_pre_tuned
from tests.test_localvertex import BUCKET, LABELS, PROJECT, draw, line, wait_for

LOCATION = "us-central1"
BASE = "gemini-3.5-flash"
NEW_LABEL = "Status: Defect - Dent pressed into the rim."  # words the champion never saw


@pytest.fixture(scope="module")
def client(local_stack):
    from google import genai

    return genai.Client(vertexai=True, project=PROJECT, location=LOCATION)


@pytest.fixture(scope="module")
def http(local_stack):
    import google.auth.transport.requests
    from google.oauth2 import service_account

    creds = service_account.Credentials.from_service_account_file(
        local_stack.env["GOOGLE_APPLICATION_CREDENTIALS"], scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )
    creds.refresh(google.auth.transport.requests.Request())
    with httpx.Client(base_url=local_stack.vertex_url, headers={"Authorization": f"Bearer {creds.token}"}) as c:
        yield c


@pytest.fixture(scope="module")
def data(local_stack):
    """16 training images (4 per class), and the same with a fifth class of new words."""
    from google.cloud import storage

    bucket = storage.Client(project=PROJECT).bucket(BUCKET)
    rows = []
    for i in range(16):
        kind = list(LABELS)[i % 4]
        name = f"continuous/{kind}_{i}.png"
        bucket.blob(name).upload_from_string(draw(kind, shift=i % 3), content_type="image/png")
        rows.append(line(f"gs://{BUCKET}/{name}", LABELS[kind]))
    bucket.blob("continuous/dent.png").upload_from_string(draw("spot", shift=2), content_type="image/png")
    extended = rows + [line(f"gs://{BUCKET}/continuous/dent.png", NEW_LABEL)] * 4
    bucket.blob("continuous/train.jsonl").upload_from_string("\n".join(rows) + "\n")
    bucket.blob("continuous/extended.jsonl").upload_from_string("\n".join(extended) + "\n")
    return {"train": f"gs://{BUCKET}/continuous/train.jsonl", "extended": f"gs://{BUCKET}/continuous/extended.jsonl"}


def _tune(client, base_model, uri, **config):
    from google.genai import types

    return client.tunings.tune(
        base_model=base_model,
        training_dataset=types.TuningDataset(gcs_uri=uri),
        config=types.CreateTuningJobConfig(**config),
    )


def _finished(client, job):
    done = wait_for(client, job.name, {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"}, 300)
    assert done.state.name == "JOB_STATE_SUCCEEDED", done.error
    return done


@pytest.fixture(scope="module")
def champion(client, data):
    """A tuned model with two checkpoints (epoch 1 and the final, default one)."""
    return _finished(client, _tune(client, BASE, data["train"], epoch_count=2, tuned_model_display_name="champion"))


def _epochs(http, job):
    return http.get(f"/local/v1/{job.name}:epochs").json()


@pytest.mark.slow
def test_a_continued_job_starts_from_the_champions_weights(client, http, champion, data, local_stack):
    continued = _finished(client, _tune(client, champion.tuned_model.model, data["train"], epoch_count=1))
    fresh = _finished(client, _tune(client, BASE, data["train"], epoch_count=1))

    # The served resource: preTunedModel with its output-only baseModel, and no baseModel beside it
    # (source_model is a oneof: the SDK's proto parser refuses a job with both).
    assert continued.pre_tuned_model.tuned_model_name == champion.tuned_model.model
    assert continued.pre_tuned_model.base_model == BASE and continued.pre_tuned_model.checkpoint_id is None
    assert continued.base_model is None
    assert continued.tuned_model.model != champion.tuned_model.model  # a new model (module docstring of continuous.py)

    # Every tensor of the champion loaded (same adapter size, vocabulary and input size).
    initial = _epochs(http, continued)["initialWeights"]
    assert initial["modelDir"] == champion.tuned_model.model.rsplit("/", 1)[1].removesuffix("@1")
    assert initial["loadedTensors"] == initial["totalTensors"] > 0 and initial["skippedTensors"] == []
    assert "initialWeights" not in _epochs(http, fresh)
    job_id = continued.name.rsplit("/", 1)[1]
    log = (local_stack.data_dir / "logs" / f"{job_id}.log").read_text()
    assert f"{initial['loadedTensors']} of {initial['totalTensors']} tensors loaded" in log

    # Same data, same seed, same epochs: only the starting weights differ.
    continued_loss = _epochs(http, continued)["epochs"][0]["trainLoss"]
    fresh_loss = _epochs(http, fresh)["epochs"][0]["trainLoss"]
    assert continued_loss < 0.7 * fresh_loss, (continued_loss, fresh_loss)


@pytest.mark.slow
def test_a_checkpoint_with_new_words_grows_the_vocabulary(client, http, champion, data):
    from google.genai import types

    job = _tune(
        client,
        champion.tuned_model.model.removesuffix("@1") + "@default",
        data["extended"],
        epoch_count=1,
        pre_tuned_model_checkpoint_id="1",
        adapter_size="ADAPTER_SIZE_FOUR",
    )
    assert job.pre_tuned_model.checkpoint_id == "1"
    done = _finished(client, job)
    initial = _epochs(http, done)["initialWeights"]
    assert initial["modelDir"].endswith("-checkpoint-1")  # the checkpoint's weights, not the final ones
    assert initial["newWords"] == 5  # " Dent", " pressed", " into", " the", " rim"
    assert initial["grownTensors"] >= 3  # embedding and output rows (weight, bias) for the new words
    assert initial["skippedTensors"] == []
    answer = client.models.generate_content(
        model=done.tuned_model.endpoint,
        contents=[types.Part.from_bytes(data=draw("pass"), mime_type="image/png")],
        config=types.GenerateContentConfig(temperature=0),
    )
    assert answer.text


def _post(http, body, location=LOCATION):
    return http.post(f"/v1beta1/projects/{PROJECT}/locations/{location}/tuningJobs", json=body)


def _spec(data):
    return {"supervisedTuningSpec": {"trainingDatasetUri": data["train"]}}


@pytest.mark.slow
def test_continuous_tuning_request_rules(client, http, champion, data):
    model = champion.tuned_model.model.removesuffix("@1")
    other_project = model.replace(f"projects/{PROJECT}/", "projects/someone-else/")
    cases = [
        # source_model is a union: both set, or a malformed name, is 400.
        ({"baseModel": BASE, "preTunedModel": {"tunedModelName": model}}, 400, "Only one of baseModel"),
        ({"preTunedModel": {"checkpointId": "1"}}, 400, "tunedModelName is required"),
        ({"preTunedModel": {"tunedModelName": "models/123"}}, 400, "not a model resource name"),
        # A model that does not exist in this project, or a version it lacks: 404.
        ({"preTunedModel": {"tunedModelName": model[:-3] + "999"}}, 404, "not found"),
        ({"preTunedModel": {"tunedModelName": other_project}}, 404, "not found"),
        ({"preTunedModel": {"tunedModelName": model + "@2"}}, 404, "not found"),
        # A checkpoint the job does not have: 400, listing those it has.
        ({"preTunedModel": {"tunedModelName": model, "checkpointId": "7"}}, 400, "its checkpoints: 1, 2"),
        # The base model's rules apply as for any job.
        (
            {
                "preTunedModel": {"tunedModelName": model},
                "supervisedTuningSpec": {
                    "trainingDatasetUri": data["train"],
                    "hyperParameters": {"adapterSize": "ADAPTER_SIZE_THIRTY_TWO"},
                },
            },
            400,
            "adapter_size 32",
        ),
    ]
    for body, status, fragment in cases:
        resp = _post(http, {**_spec(data), **body})
        assert resp.status_code == status, (body, resp.text)
        error = resp.json()["error"]
        assert error["status"] == ("NOT_FOUND" if status == 404 else "INVALID_ARGUMENT")
        assert fragment in error["message"], (body, error["message"])
    # A region that does not tune the base model (the model itself is found in us-central1).
    resp = _post(http, {**_spec(data), "preTunedModel": {"tunedModelName": model}}, location="us-east1")
    assert resp.status_code == 400 and "us-east1" in resp.json()["error"]["message"]


# --------------------------------------------------------------------------- rules without a stack


def _succeeded_job(base=BASE, created="2026-11-01T00:00:00Z", state=J.SUCCEEDED):
    job = _job_of(base)
    job["state"], job["createTime"] = state, created
    job["_local"]["checkpoints"] = [{"checkpointId": "1", "modelKey": f"{job['_local']['modelId']}-checkpoint-1"}]
    return job


def _job_of(base):
    """A job of ``base``, even one build_job refuses today (tuned before its base model retired)."""
    job = J.build_job(
        {"baseModel": BASE, "supervisedTuningSpec": {"trainingDatasetUri": "gs://local-bucket/t.jsonl"}},
        PROJECT,
        LOCATION,
    )
    job["baseModel"] = job["_local"]["localBaseModel"] = base
    return job


def _resolve(job, checkpoint_id=None):
    name = f"projects/{PROJECT}/locations/{LOCATION}/models/{job['_local']['modelId']}"
    pre = {"tunedModelName": name, **({"checkpointId": checkpoint_id} if checkpoint_id else {})}
    return resolve_pre_tuned(pre, PROJECT, lambda p, loc, m: job if m == job["_local"]["modelId"] else None)


@pytest.mark.parametrize(
    ("job", "status", "fragment"),
    [
        (_succeeded_job(created="2025-07-10T23:59:00Z"), 400, "tuned on or after 2025-07-11"),
        (_succeeded_job(base="gemini-2.5-flash", created="2026-01-05T00:00:00Z"), 400, "retired on 2026-06-17"),
        (_succeeded_job(base="gemini-3.5-flash-lite"), 400, "does not support continuous tuning"),
        (_succeeded_job(state=J.RUNNING), 404, "is RUNNING"),
        (_succeeded_job(state=J.FAILED), 404, "is FAILED"),
    ],
)
def test_pre_tuned_model_rules(job, status, fragment):
    with pytest.raises(ApiError) as exc:
        _resolve(job)
    assert exc.value.http_code == status and fragment in exc.value.message, exc.value.message


def test_a_pre_tuned_job_resource_records_its_source():
    champion = _succeeded_job(created="2025-07-11T00:00:00Z")  # the first day continuous tuning allows
    assert _resolve(champion).weights_key == champion["_local"]["modelId"]  # the default checkpoint
    assert _resolve(champion, "1").weights_key.endswith("-checkpoint-1")
    name = f"projects/{PROJECT}/locations/{LOCATION}/models/{champion['_local']['modelId']}@default"
    job = J.build_job(
        {
            "preTunedModel": {"tunedModelName": name},
            "supervisedTuningSpec": {"trainingDatasetUri": "gs://local-bucket/t.jsonl"},
        },
        PROJECT,
        LOCATION,
        find_model=lambda p, loc, m: champion,
    )
    assert "baseModel" not in job
    assert job["preTunedModel"] == {"tunedModelName": name, "baseModel": BASE}
    assert job["_local"]["preTuned"] == {"job": champion["name"], "modelKey": champion["_local"]["modelId"]}
    assert J.public_view(job)["preTunedModel"]["baseModel"] == BASE
