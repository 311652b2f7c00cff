"""API tests of the local Vertex AI + storage emulator, through the real SDK clients.

The session's LocalStack (``local_stack`` in tests/conftest.py) serves these tests; the
environment variables it exports are the only thing that points ``google-genai`` and
``google-cloud-storage`` at it. Training is tiny (16 images of 32x32, 2 epochs); the
cancel and bad-dataset jobs end before or just after the worker starts.
"""

from __future__ import annotations

import base64
import copy
import inspect
import io
import json
import os
import socket
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageDraw

from localvertex import jobs as J
from localvertex import model as local_model
from localvertex import tuning_data
from localvertex.jobs.protocol import Done
from localvertex.stack import DataDirInUse, LocalStack
from localvertex.storage import InvalidUri, parse_gs_uri
from tests.harness import wait_for_job

# Intermediate checkpoints need model.train's on_checkpoint hook (jobs/worker.py).
TRAIN_HAS_CHECKPOINT_HOOK = "on_checkpoint" in inspect.signature(local_model.train).parameters
PROJECT = "local-project"
LOCATION = "us-central1"
BUCKET = "local-bucket"
PROMPT = "Analyze the following product image for manufacturing defects."
LABELS = {
    "pass": "Status: Pass",
    "scratch": "Status: Defect - Scratch detected on product surface.",
    "crack": "Status: Defect - Crack identified in main body.",
    "spot": "Status: Defect - Discoloration spot found.",
}


def draw(kind: str, shift: int = 0, size: int = 32) -> bytes:
    im = Image.new("RGB", (size, size), "#DDDDDD")
    d = ImageDraw.Draw(im)
    d.rectangle((6 + shift, 6, 26 + shift, 26), fill="#5555AA")
    if kind == "scratch":
        d.line((9 + shift, 9, 22 + shift, 22), fill="#FF3333", width=2)
    elif kind == "crack":
        d.line((9 + shift, 16, 22 + shift, 14), fill="#FFFFFF", width=2)
    elif kind == "spot":
        d.ellipse((17 + shift, 17, 24 + shift, 24), fill="#44AA44")
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def line(uri: str, label: str, roles=("user", "model")) -> str:
    return json.dumps(
        {
            "systemInstruction": {"parts": [{"text": "You are a QC inspector."}]},
            "contents": [
                {
                    "role": roles[0],
                    "parts": [{"text": PROMPT}, {"fileData": {"mimeType": "image/png", "fileUri": uri}}],
                },
                {"role": roles[1], "parts": [{"text": label}]},
            ],
        }
    )


def wait_for(client, name: str, states: set[str], timeout: float = 120.0):
    return wait_for_job(client, name, states, timeout)


@pytest.fixture(scope="module")
def gcs(local_stack):
    from google.cloud import storage

    return storage.Client(project=PROJECT)


@pytest.fixture(scope="module")
def client(local_stack):
    from google import genai

    return genai.Client(vertexai=True, project=PROJECT, location=LOCATION)


@pytest.fixture(scope="module")
def token(local_stack):
    resp = httpx.post(f"{local_stack.vertex_url}/token", data={"assertion": _assertion(local_stack)})
    resp.raise_for_status()
    return resp.json()["access_token"]


def _assertion(stack) -> str:
    from google.oauth2 import service_account

    creds = service_account.Credentials.from_service_account_file(stack.env["GOOGLE_APPLICATION_CREDENTIALS"])
    from google.auth import jwt

    return jwt.encode(
        creds.signer, {"iss": creds.service_account_email, "aud": "x", "exp": int(time.time()) + 60}
    ).decode()


@pytest.fixture(scope="module")
def dataset(gcs):
    """16 training and 4 validation images in gs://local-bucket, plus the JSONL files."""
    bucket = gcs.bucket(BUCKET)
    train, val = [], []
    for i in range(20):
        kind = list(LABELS)[i % 4]
        name = f"images/{kind}_{i}.png"
        bucket.blob(name).upload_from_string(draw(kind, shift=i % 3), content_type="image/png")
        (train if i < 16 else val).append(line(f"gs://{BUCKET}/{name}", LABELS[kind]))
    bucket.blob("data/train.jsonl").upload_from_string("\n".join(train) + "\n")
    bucket.blob("data/validation.jsonl").upload_from_string("\n".join(val) + "\n")
    return {"train": f"gs://{BUCKET}/data/train.jsonl", "validation": f"gs://{BUCKET}/data/validation.jsonl"}


@pytest.fixture(scope="module")
def tuned(client, dataset):
    from google.genai import types

    job = client.tunings.tune(
        base_model="gemini-3.5-flash",
        training_dataset=types.TuningDataset(gcs_uri=dataset["train"]),
        config=types.CreateTuningJobConfig(
            validation_dataset=types.TuningValidationDataset(gcs_uri=dataset["validation"]),
            epoch_count=2,
            learning_rate_multiplier=1.0,
            adapter_size="ADAPTER_SIZE_FOUR",
            tuned_model_display_name="inspector-test",
            labels={"team": "qc"},
        ),
    )
    assert job.state.name == "JOB_STATE_PENDING"
    return wait_for(client, job.name, {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED"}, timeout=240)


# --------------------------------------------------------------------------- storage


def test_storage_roundtrip(gcs, local_stack):
    bucket = gcs.bucket(BUCKET)
    blob = bucket.blob("roundtrip/hello.txt")
    blob.upload_from_string(b"hello", content_type="text/plain")
    assert blob.exists()
    assert bucket.blob("roundtrip/hello.txt").download_as_bytes() == b"hello"
    assert [b.name for b in gcs.list_blobs(BUCKET, prefix="roundtrip/")] == ["roundtrip/hello.txt"]
    assert (local_stack.data_dir / "storage").is_dir()
    assert not Path(".cloudstorage").exists() or Path(".cloudstorage").resolve().is_relative_to(local_stack.data_dir)


# --------------------------------------------------------------------------- tuning + prediction


@pytest.mark.slow
def test_tune_and_generate(client, tuned, dataset, local_stack, token):
    from google.genai import types

    assert tuned.state.name == "JOB_STATE_SUCCEEDED", tuned.error
    assert tuned.base_model == "gemini-3.5-flash"
    assert tuned.tuned_model_display_name == "inspector-test"
    assert tuned.labels == {"team": "qc"}
    assert tuned.create_time and tuned.start_time and tuned.end_time and tuned.update_time
    assert tuned.tuned_model.model.startswith(f"projects/{PROJECT}/locations/{LOCATION}/models/")
    assert tuned.tuned_model.model.endswith("@1")
    endpoint = tuned.tuned_model.endpoint
    # Gemini 3 tuned in us-central1 is served on the "us" multi-region endpoint (test_twin_multiregion.py).
    assert endpoint.startswith(f"projects/{PROJECT}/locations/us/endpoints/")
    # One checkpoint per epoch: epoch 1 at its own endpoint, the final one at the model's.
    checkpoints = tuned.tuned_model.checkpoints
    assert [c.epoch for c in checkpoints] == ([1, 2] if TRAIN_HAS_CHECKPOINT_HOOK else [2])
    assert [c.checkpoint_id for c in checkpoints] == [str(i + 1) for i in range(len(checkpoints))]
    assert checkpoints[-1].endpoint == tuned.tuned_model.endpoint
    stats = tuned.tuning_data_stats.supervised_tuning_data_stats
    assert stats.tuning_dataset_example_count == 16
    assert stats.tuning_step_count > 0 and stats.total_billable_token_count > 0
    hp = tuned.supervised_tuning_spec.hyper_parameters
    assert (hp.epoch_count, hp.learning_rate_multiplier, hp.adapter_size.name) == (2, 1.0, "ADAPTER_SIZE_FOUR")

    raw = httpx.get(
        f"{local_stack.vertex_url}/v1beta1/{tuned.name}", headers={"Authorization": f"Bearer {token}"}
    ).json()
    assert "_local" not in raw and "localTuningMetrics" not in raw  # not in the schema
    assert "experiment" not in raw  # output only: never echoed from a request
    local = httpx.get(
        f"{local_stack.vertex_url}/local/v1/{tuned.name}:epochs", headers={"Authorization": f"Bearer {token}"}
    ).json()
    assert [e["epoch"] for e in local["epochs"]] == [1, 2]
    assert all(e["validationLoss"] is not None for e in local["epochs"])
    assert local["stepCount"] == int(stats.tuning_step_count)
    assert httpx.get(f"{local_stack.vertex_url}/local/v1/{tuned.name}:epochs").status_code == 401

    config = types.GenerateContentConfig(temperature=0.0, max_output_tokens=64, seed=1)
    by_uri = client.models.generate_content(
        model=endpoint,
        config=config,
        contents=[
            types.Content(
                role="user",
                parts=[
                    types.Part.from_text(text=PROMPT),
                    types.Part.from_uri(file_uri=f"gs://{BUCKET}/images/pass_0.png", mime_type="image/png"),
                ],
            )
        ],
    )
    assert isinstance(by_uri.text, str) and by_uri.text.strip()
    assert by_uri.candidates[0].finish_reason.name == "STOP"
    cut = client.models.generate_content(
        model=endpoint,
        config=types.GenerateContentConfig(temperature=0.0, max_output_tokens=1),
        contents=[types.Part.from_uri(file_uri=f"gs://{BUCKET}/images/pass_0.png", mime_type="image/png")],
    )
    assert cut.candidates[0].finish_reason.name == "MAX_TOKENS"
    assert by_uri.text.startswith(cut.text) and len(cut.text) < len(by_uri.text)
    assert by_uri.usage_metadata.prompt_token_count > 0
    inline = client.models.generate_content(
        model=endpoint,
        config=config,
        contents=[PROMPT, types.Part.from_bytes(data=draw("pass"), mime_type="image/png")],
    )
    assert isinstance(inline.text, str) and inline.text.strip()
    # Greedy decoding is deterministic, and /v1 answers like /v1beta1.
    from google import genai

    v1 = genai.Client(
        vertexai=True, project=PROJECT, location=LOCATION, http_options=types.HttpOptions(api_version="v1")
    )
    again = v1.models.generate_content(
        model=endpoint,
        config=config,
        contents=[PROMPT, types.Part.from_bytes(data=draw("pass"), mime_type="image/png")],
    )
    assert again.text == inline.text
    assert v1.tunings.get(name=tuned.name).state.name == "JOB_STATE_SUCCEEDED"


@pytest.mark.slow
def test_concurrent_generate(client, tuned):
    from concurrent.futures import ThreadPoolExecutor

    from google.genai import types

    def ask(i):
        kind = list(LABELS)[i % 4]
        return client.models.generate_content(
            model=tuned.tuned_model.endpoint,
            config=types.GenerateContentConfig(temperature=0),
            contents=[
                PROMPT,
                types.Part.from_uri(file_uri=f"gs://{BUCKET}/images/{kind}_{i % 8}.png", mime_type="image/png"),
            ],
        ).text

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(16)))
    assert all(isinstance(a, str) and a for a in answers)
    assert answers[:8] == answers[8:]  # same image, same greedy answer, batched or not


def test_list_and_paging(client, dataset, local_stack, token):
    from google.genai import types

    names = set()
    for _ in range(2):
        names.add(
            client.tunings.tune(
                base_model="publishers/google/models/gemini-3.1-flash-lite",
                training_dataset=types.TuningDataset(gcs_uri=dataset["train"]),
                config=types.CreateTuningJobConfig(epoch_count=1),
            ).name
        )
    for name in names:  # not needed any more; cancelling a PENDING job is immediate
        client.tunings.cancel(name=name)
    listed = [j.name for j in client.tunings.list(config={"page_size": 1})]
    assert names <= set(listed)
    assert len(listed) == len(set(listed))
    url = f"{local_stack.vertex_url}/v1beta1/projects/{PROJECT}/locations/{LOCATION}/tuningJobs"
    page = httpx.get(url, params={"pageSize": 1}, headers={"Authorization": f"Bearer {token}"}).json()
    assert len(page["tuningJobs"]) == 1 and page["nextPageToken"]
    bad = httpx.get(url, params={"pageToken": "!!"}, headers={"Authorization": f"Bearer {token}"})
    assert bad.status_code == 400


@pytest.mark.slow
def test_cancel(client, dataset):
    from google.genai import errors, types

    def tune(epochs):
        return client.tunings.tune(
            base_model="gemini-3.5-flash",
            training_dataset=types.TuningDataset(gcs_uri=dataset["train"]),
            config=types.CreateTuningJobConfig(epoch_count=epochs),
        )

    long_job = tune(100)
    queued = tune(1)
    running = wait_for(client, long_job.name, {"JOB_STATE_RUNNING"}, timeout=60)
    assert running.start_time is not None
    client.tunings.cancel(name=queued.name)
    assert client.tunings.get(name=queued.name).state.name == "JOB_STATE_CANCELLED"
    client.tunings.cancel(name=long_job.name)
    done = wait_for(
        client, long_job.name, {"JOB_STATE_CANCELLED", "JOB_STATE_FAILED", "JOB_STATE_SUCCEEDED"}, timeout=30
    )
    assert done.state.name == "JOB_STATE_CANCELLED"
    assert done.end_time is not None
    with pytest.raises(errors.ClientError) as exc:
        client.tunings.cancel(name=long_job.name)
    # google.rpc.Code FAILED_PRECONDITION maps to HTTP 400 (code.proto), not 409.
    assert exc.value.code == 400 and exc.value.status == "FAILED_PRECONDITION"


def test_bad_datasets_fail_with_line(client, gcs, dataset):
    from google.genai import types

    bucket = gcs.bucket(BUCKET)
    good = line(f"gs://{BUCKET}/images/pass_0.png", LABELS["pass"])
    cases = {
        "roles.jsonl": (
            [good, good, line(f"gs://{BUCKET}/images/pass_0.png", "x", roles=("model", "user"))],
            "line 3",
            "role",
        ),
        "missing.jsonl": ([good, line(f"gs://{BUCKET}/images/nope.png", "x")], "line 2", "not found"),
        "json.jsonl": ([good, "{not json"], "line 2", "invalid JSON"),
    }
    names = {}
    for fname, (lines, _, _) in cases.items():
        bucket.blob(f"bad/{fname}").upload_from_string("\n".join(lines))
        names[fname] = client.tunings.tune(
            base_model="gemini-3.5-flash",
            training_dataset=types.TuningDataset(gcs_uri=f"gs://{BUCKET}/bad/{fname}"),
            config=types.CreateTuningJobConfig(epoch_count=1),
        ).name
    for fname, (_, where, why) in cases.items():
        job = wait_for(client, names[fname], {"JOB_STATE_FAILED", "JOB_STATE_SUCCEEDED"}, 90)
        assert job.state.name == "JOB_STATE_FAILED"
        assert f"gs://{BUCKET}/bad/{fname}" in job.error.message
        assert where in job.error.message and why in job.error.message, job.error.message


def test_create_validation(client, dataset):
    from google.genai import errors, types

    def tune(base="gemini-3.5-flash", uri=dataset["train"], **cfg):
        return client.tunings.tune(
            base_model=base,
            training_dataset=types.TuningDataset(gcs_uri=uri),
            config=types.CreateTuningJobConfig(**cfg),
        )

    for kwargs, fragment in [
        ({"base": "gemini-1.0-pro"}, "not supported"),
        ({"uri": f"gs://{BUCKET}/data/missing.jsonl"}, "does not exist"),
        ({"uri": "file:///etc/passwd.jsonl"}, "gs://"),
        ({"uri": f"gs://{BUCKET}/../secret.jsonl"}, ".."),
        ({"epoch_count": -1}, "epochCount"),  # 0 is "unset" in protobuf JSON: the default
        ({"labels": {"team": "qc\n"}}, "invalid label"),
        # platform_facts/gemini.py: models, their retirement, adapter sizes per model.
        ({"base": "gemini-2.0-flash-bogus-suffix"}, "not supported"),
        ({"base": "gemini-2.0-flash-001"}, "not supported"),  # no longer listed for tuning
        ({"base": "models/gemini-3.5-flash"}, "not supported"),
        ({"adapter_size": "ADAPTER_SIZE_THIRTY_TWO"}, "adapter_size 32"),
        ({"base": "gemini-2.5-pro"}, "retired on 2026-06-17"),  # by today's date; names gemini-3.5-flash
    ]:
        with pytest.raises(errors.ClientError) as exc:
            tune(**kwargs)
        assert exc.value.code == 400 and exc.value.status == "INVALID_ARGUMENT"
        assert fragment in exc.value.message, exc.value.message


def test_tuning_regions_come_from_the_capabilities_table(dataset):
    from google import genai
    from google.genai import errors, types

    elsewhere = genai.Client(vertexai=True, project=PROJECT, location="us-west2")
    with pytest.raises(errors.ClientError) as exc:
        elsewhere.tunings.tune(
            base_model="gemini-3.5-flash", training_dataset=types.TuningDataset(gcs_uri=dataset["train"])
        )
    assert exc.value.code == 400 and "us-west2" in exc.value.message
    europe = genai.Client(vertexai=True, project=PROJECT, location="europe-west4")
    job = europe.tunings.tune(
        base_model="gemini-3.5-flash",
        training_dataset=types.TuningDataset(gcs_uri=dataset["train"]),
        config=types.CreateTuningJobConfig(epoch_count=1),
    )
    europe.tunings.cancel(name=job.name)


@pytest.mark.slow
def test_thinking_levels_follow_the_tuned_base_model(client, tuned):
    """A Gemini 3.5 Flash-tuned endpoint takes a thinking level it lists (LOW, MEDIUM, HIGH);
    a budget is 400, and so is MINIMAL (listed for 3.5 Flash-Lite only). The 2.5 budget rules
    are in test_localvertex_parts.py (no 2.5 model can be tuned after its retirement)."""
    from google.genai import errors, types

    image = types.Part.from_bytes(data=draw("pass"), mime_type="image/png")

    def ask(**thinking):
        return client.models.generate_content(
            model=tuned.tuned_model.endpoint,
            contents=[PROMPT, image],
            config=types.GenerateContentConfig(temperature=0, thinking_config=types.ThinkingConfig(**thinking)),
        )

    for level in ("LOW", "MEDIUM", "HIGH"):
        assert ask(thinking_level=level).text
    for thinking, fragment in (
        ({"thinking_budget": 1024}, "thinking_budget is not supported"),
        ({"thinking_budget": 0}, "thinking_budget is not supported"),
        ({"thinking_level": "MINIMAL"}, "thinking_level MINIMAL is not supported"),
        ({"thinking_level": "LOW", "thinking_budget": 128}, "cannot both be set"),
    ):
        with pytest.raises(errors.ClientError) as exc:
            ask(**thinking)
        assert exc.value.code == 400 and fragment in exc.value.message, exc.value.message


@pytest.mark.slow
def test_media_resolution_follows_the_tuned_base_model(client, tuned):
    """Gemini 3 takes a part-level mediaResolution (LOW, MEDIUM, HIGH) and counts the image's
    tokens at it (platform_facts.gemini media_resolutions)."""
    from google.genai import types

    def ask(level):
        image = types.Part.from_bytes(data=draw("pass"), mime_type="image/png")
        image.media_resolution = types.PartMediaResolution(level=level)
        return client.models.generate_content(
            model=tuned.tuned_model.endpoint, contents=[image], config=types.GenerateContentConfig(temperature=0)
        )

    tokens = {
        level: ask(level).usage_metadata.prompt_token_count
        for level in ("MEDIA_RESOLUTION_LOW", "MEDIA_RESOLUTION_HIGH")
    }
    assert tokens == {"MEDIA_RESOLUTION_LOW": 280, "MEDIA_RESOLUTION_HIGH": 1120}


def test_publisher_model_is_404(client):
    from google.genai import errors

    with pytest.raises(errors.ClientError) as exc:
        client.models.generate_content(model="gemini-3.5-flash", contents="hello")
    assert exc.value.code == 404 and exc.value.status == "NOT_FOUND"
    assert "no local Gemini" in exc.value.message


# --------------------------------------------------------------------------- security


@pytest.mark.slow
def test_file_uris_refused(client, tuned):
    from google.genai import errors, types

    for uri in (
        "file:///etc/passwd",
        "/etc/passwd",
        f"gs://{BUCKET}/images/../../x.png",
        f"gs://{BUCKET}//etc/passwd",
        "gs://../x.png",
        "http://127.0.0.1/x.png",
    ):
        with pytest.raises(errors.ClientError) as exc:
            client.models.generate_content(
                model=tuned.tuned_model.endpoint, contents=[types.Part.from_uri(file_uri=uri, mime_type="image/png")]
            )
        assert exc.value.code == 400, uri


@pytest.mark.slow
def test_malformed_generate_is_400(local_stack, tuned, token):
    url = f"{local_stack.vertex_url}/v1beta1/{tuned.tuned_model.endpoint}:generateContent"
    png = {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(draw("pass")).decode()}}
    for part, config in [
        ({"fileData": "gs://local-bucket/images/pass_0.png"}, {}),
        ({"inlineData": "aGk="}, {}),
        (png, {"candidateCount": "two"}),
        (png, {"maxOutputTokens": float("inf")}),
    ]:
        body = {"contents": [{"role": "user", "parts": [part]}], "generationConfig": config}
        resp = httpx.post(
            url,
            content=json.dumps(body),  # json= refuses inf
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        assert resp.status_code == 400, (part, config, resp.text)
        assert set(resp.json()["error"]) <= {"code", "message", "status", "details"}
        assert resp.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_bad_ids_refused(client, local_stack, token):
    from google.genai import errors

    with pytest.raises(errors.ClientError) as exc:
        client.tunings.get(name=f"projects/{PROJECT}/locations/{LOCATION}/tuningJobs/BAD_ID")
    assert exc.value.code == 400
    with pytest.raises(errors.ClientError) as exc:
        client.tunings.get(name=f"projects/{PROJECT}/locations/{LOCATION}/tuningJobs/123")
    assert exc.value.code == 404
    hdr = {"Authorization": f"Bearer {token}"}
    base = f"{local_stack.vertex_url}/v1beta1/projects/{PROJECT}/locations/{LOCATION}"
    resp = httpx.get(base + "/tuningJobs/123%0A", headers=hdr)  # "$" alone accepts a final \n
    assert resp.status_code == 400 and resp.json()["error"]["status"] == "INVALID_ARGUMENT"
    for path in ("/tuningJobs/..%2F..%2Fauth", "/tuningJobs/a.b", "/endpoints/x%2Fy:generateContent"):
        method = httpx.post if "generate" in path else httpx.get
        resp = method(base + path, headers=hdr)
        assert resp.status_code in (400, 404), path
        assert resp.json()["error"]["status"] in ("INVALID_ARGUMENT", "NOT_FOUND")
    assert (
        httpx.get(
            f"{local_stack.vertex_url}/v2/projects/{PROJECT}/locations/{LOCATION}/tuningJobs", headers=hdr
        ).status_code
        == 404
    )


def test_auth_required(local_stack, token):
    url = f"{local_stack.vertex_url}/v1beta1/projects/{PROJECT}/locations/{LOCATION}/tuningJobs"
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {token}"}):
        resp = httpx.get(url, headers=headers)
        assert resp.status_code == 401
        assert resp.json()["error"] == {
            "code": 401,
            "status": "UNAUTHENTICATED",
            "message": resp.json()["error"]["message"],
        }
    assert httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    # The token endpoint only accepts JWTs signed with the key in credentials.json.
    forged = _assertion(local_stack)[:-4] + "AAAA"
    assert httpx.post(f"{local_stack.vertex_url}/token", data={"assertion": forged}).status_code == 400
    # A header or payload that is JSON but not an object is a malformed JWT, not a 500.
    for header, payload in (([1], {}), ({"alg": "RS256"}, "x")):
        parts = [base64.urlsafe_b64encode(json.dumps(x).encode()).decode().rstrip("=") for x in (header, payload)]
        resp = httpx.post(f"{local_stack.vertex_url}/token", data={"assertion": ".".join(parts + ["AAAA"])})
        assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant", resp.text
    creds = json.loads(Path(local_stack.env["GOOGLE_APPLICATION_CREDENTIALS"]).read_text())
    assert creds["type"] == "service_account"
    assert creds["token_uri"] == f"{local_stack.vertex_url}/token"
    assert Path(local_stack.env["GOOGLE_APPLICATION_CREDENTIALS"]).stat().st_mode & 0o077 == 0
    log = (local_stack.data_dir / "localvertex.log").read_text()
    assert token not in log and "PRIVATE KEY" not in log


def test_oversized_request_is_400_like_googles_front_end(local_stack, token):
    url = f"{local_stack.vertex_url}/v1beta1/projects/{PROJECT}/locations/{LOCATION}/endpoints/1:generateContent"
    # Content-Length is checked before the body is read.
    with httpx.Client() as http:
        req = http.build_request(
            "POST",
            url,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            content=b" " * (33 * 1024 * 1024),
        )
        try:
            resp = http.send(req)
        except httpx.TransportError:  # the server may close before reading everything
            pytest.skip("connection closed before the 413 was read")
    # No google.rpc.Code maps to HTTP 413; Google's front end answers INVALID_ARGUMENT.
    assert resp.status_code == 400
    assert resp.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert resp.json()["error"]["message"].startswith("Request payload size exceeds the limit: ")


# --------------------------------------------------------------------------- lifecycle


def test_data_dir_lock(tmp_path):
    with LocalStack(tmp_path, log_file=False):
        with pytest.raises(DataDirInUse) as exc, LocalStack(tmp_path, log_file=False):
            pass
        assert str(exc.value) == (
            f"{tmp_path.resolve()} is in use by another local Vertex AI (pid {os.getpid()}); "
            "stop it, pass another --data-dir, or point the SDKs at the running one with its "
            "exports (python -m localvertex env)"
        )
    with LocalStack(tmp_path, log_file=False) as again:  # released on stop
        assert httpx.get(f"{again.vertex_url}/healthz").status_code == 200


def test_env_restored_on_exit(tmp_path):
    with LocalStack(tmp_path, log_file=False) as st:
        st.apply_env()
        assert os.environ["GOOGLE_VERTEX_BASE_URL"] == st.vertex_url
    for key in ("GOOGLE_VERTEX_BASE_URL", "STORAGE_EMULATOR_HOST"):
        assert os.environ.get(key) != st.env[key], "environment not restored"


def test_failed_start_closes_api_socket(tmp_path, monkeypatch):
    from localvertex.auth import Auth

    def broken(*args):
        raise OSError("disk full")

    monkeypatch.setattr(Auth, "write_credentials", broken)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(OSError) as exc:
        LocalStack(tmp_path, vertex_port=port, log_file=False).start()
    # No SO_REUSEADDR: this fails while any socket holds the port (exc keeps start's frame).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))
    assert "disk full" in str(exc.value)


# --------------------------------------------------------------------------- units


def test_parse_gs_uri():
    assert parse_gs_uri("gs://local-bucket/images/a b.png").name == "images/a b.png"
    for bad in (
        "gs://b/x",
        "gs://local-bucket/",
        "gs://local-bucket/a/../b",
        "s3://b/x",
        "gs://local-bucket/a//b",
        "gs://UPPER/x",
        "gs://local-bucket/a\x00b",
        "file:///etc/passwd",
        "/abs/path",
        "gs://local-bucket/./a",
        "gs://local-bucket\n/a",
    ):
        with pytest.raises(InvalidUri):
            parse_gs_uri(bad)


def test_dataset_parsing():
    ok = line("gs://local-bucket/i.png", "Status: Pass")
    recs = tuning_data.parse_jsonl(ok + "\n\n" + ok, "gs://b/t.jsonl")
    assert [r.line for r in recs] == [1, 3] and recs[0].label == "Status: Pass"
    snake = json.dumps(
        {
            "contents": [
                {
                    "role": "user",
                    "parts": [{"file_data": {"file_uri": "gs://local-bucket/i.png", "mime_type": "image/png"}}],
                },
                {"role": "model", "parts": [{"text": "Status: Pass"}]},
            ]
        }
    )
    assert tuning_data.parse_jsonl(snake, "s")[0].image.uri.name == "i.png"
    inline = json.dumps(
        {
            "contents": [
                {"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": "aGk="}}]},
                {"role": "model", "parts": [{"text": "Status: Pass"}]},
            ]
        }
    )
    assert tuning_data.parse_jsonl(inline, "s")[0].image.data == b"hi"

    def err(obj) -> str:
        with pytest.raises(tuning_data.DatasetError) as exc:
            tuning_data.parse_jsonl(ok + "\n" + (obj if isinstance(obj, str) else json.dumps(obj)), "f")
        assert str(exc.value).startswith("f line 2: ")
        return exc.value.reason

    user = {
        "role": "user",
        "parts": [{"text": "p"}, {"fileData": {"mimeType": "image/png", "fileUri": "gs://local-bucket/i.png"}}],
    }
    model = {"role": "model", "parts": [{"text": "Status: Pass"}]}
    assert "JSON" in err("[1,")
    assert "contents" in err({"x": 1})
    assert "alternate" in err({"contents": [model, user]})
    assert "last turn" in err({"contents": [user]})
    assert "alternate" in err({"contents": [user, user, model]})
    assert "no image" in err({"contents": [{"role": "user", "parts": [{"text": "p"}]}, model]})
    assert "label" in err({"contents": [user, {"role": "model", "parts": [{"text": "  "}]}]})
    assert "'system'" in err({"contents": [{"role": "system", "parts": [{"text": "x"}]}]})
    assert "gs://" in err(
        {
            "contents": [
                {"role": "user", "parts": [{"fileData": {"mimeType": "image/png", "fileUri": "file:///etc/passwd"}}]},
                model,
            ]
        }
    )
    with pytest.raises(tuning_data.DatasetError, match="no examples"):
        tuning_data.parse_jsonl("\n\n", "empty.jsonl")


def test_cancel_accepted_before_finish_wins(tmp_path, monkeypatch):
    """A cancel that lands after the runner last looked at the job still ends CANCELLED."""
    store = J.JobStore(tmp_path)
    runner = J.TrainingRunner(store, tmp_path, "http://127.0.0.1:1")
    job = J.build_job(
        {"baseModel": "gemini-3.5-flash", "supervisedTuningSpec": {"trainingDatasetUri": "gs://local-bucket/t.jsonl"}},
        PROJECT,
        LOCATION,
    )
    job["state"] = J.RUNNING
    store.add(job)
    job_id = job["_local"]["id"]
    runner.cancel(job_id)
    stale = store.get(job_id) | {"state": J.RUNNING}  # what a read before the cancel saw
    monkeypatch.setattr(store, "get", lambda _: copy.deepcopy(stale))
    result = Done(epochs=[], step_count=1, example_count=1, token_count=1, train_seconds=0.1)
    runner._finish(job, result, 0)
    assert J.JobStore(tmp_path).get(job_id)["state"] == J.CANCELLED


def test_part_media_resolution_in_tuning_data_follows_the_base_model(gcs, local_stack, tmp_path):
    """A tuning JSONL with a part-level mediaResolution: fine for Gemini 3; for a 2.5 base
    model (a job created before its retirement) the job fails naming the file and the line."""
    from localvertex.jobs import protocol as P
    from localvertex.jobs.worker import train_worker

    image = json.loads(line(f"gs://{BUCKET}/images/pass_0.png", LABELS["pass"]))
    image["contents"][0]["parts"][1]["mediaResolution"] = {"level": "MEDIA_RESOLUTION_LOW"}
    rows = [line(f"gs://{BUCKET}/images/pass_0.png", LABELS["pass"]), json.dumps(image)]
    gcs.bucket(BUCKET).blob("mediares/train.jsonl").upload_from_string("\n".join(rows) + "\n")
    uri = f"gs://{BUCKET}/mediares/train.jsonl"

    records = tuning_data.parse_jsonl("\n".join(rows), uri, tuning_data.default_limits("gemini-3.5-flash"))
    assert records[1].image_tokens == 280  # counted at the part's resolution (LOW)

    messages = []
    spec = P.WorkerSpec(
        job_id="1",
        project=PROJECT,
        storage_endpoint=local_stack.storage_url,
        training_uri=uri,
        validation_uri=None,
        config={"epochs": 1, "learning_rate_multiplier": 1.0, "adapter_size": 4, "seed": 0},
        model_dir=str(tmp_path / "model"),
        model_meta={},
        limits=tuning_data.default_limits("gemini-2.5-flash"),
    )
    train_worker(spec, messages.append, lambda: False)
    assert len(messages) == 1 and isinstance(messages[0], P.Failed), messages
    assert messages[0].code == 3  # INVALID_ARGUMENT, as TuningJob.error carries it
    assert uri in messages[0].message and "line 2" in messages[0].message, messages[0].message
    assert "takes no per-image media resolution" in messages[0].message
