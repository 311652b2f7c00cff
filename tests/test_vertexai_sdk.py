"""google-cloud-aiplatform's ``vertexai`` SDK against the local Vertex AI.

The seed manual's code path (../shared/seeds/gemini-2.5-pro-tuning-manual.txt §5-6) runs
unchanged apart from ``vertexai.init``: ``sft.train``, ``job.refresh()`` until
``job.has_ended``, ``GenerativeModel(job.tuned_model_endpoint_name).generate_content``.
Credentials are ``google.auth.default()``: GOOGLE_APPLICATION_CREDENTIALS is the stack's
credentials file. The SDK's REST transport authenticates with JWTs it signs itself
(``always_use_jwt_access``) and sends enums as numbers (``$alt=json;enum-encoding=int``);
both are tested here, with the bearer-token refusals next to them.
"""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest

from localvertex.jobs.checkpoints import intermediate_epochs
from tests.test_localvertex import BUCKET, LABELS, LOCATION, PROJECT, PROMPT, draw, line

API_AUDIENCE = "https://aiplatform.googleapis.com/"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"


@pytest.fixture(scope="module")
def sft_dataset(local_stack):
    """8 training and 2 validation examples in the storage emulator."""
    from google.cloud import storage

    bucket = storage.Client(project=PROJECT).bucket(BUCKET)
    train, val = [], []
    for i in range(10):
        kind = list(LABELS)[i % 4]
        name = f"vertexai-sdk/{kind}_{i}.png"
        bucket.blob(name).upload_from_string(draw(kind, shift=i % 3), content_type="image/png")
        (train if i < 8 else val).append(line(f"gs://{BUCKET}/{name}", LABELS[kind]))
    bucket.blob("vertexai-sdk/train.jsonl").upload_from_string("\n".join(train) + "\n")
    bucket.blob("vertexai-sdk/validation.jsonl").upload_from_string("\n".join(val) + "\n")
    return f"gs://{BUCKET}/vertexai-sdk/train.jsonl", f"gs://{BUCKET}/vertexai-sdk/validation.jsonl"


@pytest.fixture
def vertexai_local(local_stack):
    """vertexai.init for the local stack, the only line that differs from the seed; the
    SDK's global configuration is reset afterwards."""
    import google.auth
    import vertexai
    from google.cloud.aiplatform import initializer

    credentials, _ = google.auth.default()  # GOOGLE_APPLICATION_CREDENTIALS: the stack's key
    vertexai.init(
        project=PROJECT,
        location=LOCATION,
        credentials=credentials,
        api_endpoint=local_stack.vertex_url,
        api_transport="rest",
    )
    yield
    # vertexai.init is the bound init of this very object: reset it in place.
    initializer.global_config.__init__()


# --------------------------------------------------------------------------- the seed's code


def run_fine_tuning_job(train_uri, validation_uri):
    """§5.2 of the seed, with its hyperparameters; the base model is 2.5 Pro's replacement
    (the seed's gemini-2.5-pro retired on 2026-06-17: test below)."""
    from vertexai.tuning import sft

    BASE_MODEL = "gemini-3.5-flash"
    EPOCHS = 4
    ADAPTER_SIZE = 4
    LEARNING_RATE_MULTIPLIER = 1.0
    sft_tuning_job = sft.train(
        source_model=BASE_MODEL,
        train_dataset=train_uri,
        validation_dataset=validation_uri,
        epochs=EPOCHS,
        adapter_size=ADAPTER_SIZE,
        learning_rate_multiplier=LEARNING_RATE_MULTIPLIER,
        tuned_model_display_name="gemini-2.5-pro-finance-v1",
    )
    return sft_tuning_job


def monitor_tuning_job(job, timeout_s=240.0):
    """§5.4 of the seed, with a bound on the wait and a short poll."""
    deadline = time.monotonic() + timeout_s
    while not job.has_ended:
        assert time.monotonic() < deadline, f"{job.resource_name} still {job.state.name}"
        time.sleep(0.5)
        job.refresh()
    if job.state.name == "JOB_STATE_SUCCEEDED":
        return job.tuned_model_endpoint_name
    return None


@pytest.mark.slow
def test_the_seeds_vertexai_code_path_tunes_and_answers(vertexai_local, sft_dataset):
    from vertexai.generative_models import GenerationConfig, GenerativeModel, Part

    job = run_fine_tuning_job(*sft_dataset)
    assert job.state.name == "JOB_STATE_PENDING"
    endpoint = monitor_tuning_job(job)
    assert endpoint, job.error
    assert job.tuned_model_name.endswith("@1")
    # Gemini 3 tuned in us-central1 is served on the "us" multi-region endpoint.
    assert endpoint.startswith(f"projects/{PROJECT}/locations/us/endpoints/")
    hp = job._gca_resource.supervised_tuning_spec.hyper_parameters
    assert (hp.epoch_count, hp.adapter_size.name) == (4, "ADAPTER_SIZE_FOUR")

    model = GenerativeModel(endpoint)
    response = model.generate_content([PROMPT, Part.from_data(draw("crack"), "image/png")])
    assert response.text.strip()
    assert response.candidates[0].finish_reason.name == "STOP"
    config = GenerationConfig(temperature=0.2, max_output_tokens=1024)  # §6.2
    assert model.generate_content(
        [PROMPT, Part.from_data(draw("pass"), "image/png")], generation_config=config
    ).text.strip()
    # A Gemini 3-tuned endpoint takes a thinking level, not a budget.
    from google.api_core import exceptions

    with pytest.raises(exceptions.BadRequest, match="thinking_budget is not supported"):
        model.generate_content(
            [PROMPT, Part.from_data(draw("pass"), "image/png")],
            generation_config={"thinking_config": {"thinking_budget": 0}},
        )
    listed = [j.resource_name for j in type(job).list()]
    assert job.resource_name in listed


def test_the_seeds_versioned_model_tag_is_refused_like_on_vertex(vertexai_local, sft_dataset):
    from google.api_core import exceptions
    from vertexai.tuning import sft

    with pytest.raises(exceptions.BadRequest, match="gemini-2.5-pro-001"):
        sft.train(source_model="gemini-2.5-pro-001", train_dataset=sft_dataset[0], epochs=1)


def test_the_seeds_retired_base_model_is_refused_naming_its_replacement(vertexai_local, sft_dataset):
    from google.api_core import exceptions
    from vertexai.tuning import sft

    with pytest.raises(exceptions.BadRequest, match=r"gemini-2.5-pro was retired on 2026-06-17.*use gemini-3.5-flash"):
        sft.train(source_model="gemini-2.5-pro", train_dataset=sft_dataset[0], adapter_size=4)


# --------------------------------------------------------------------------- self-signed JWTs


def _signer_and_email(stack):
    from google.oauth2 import service_account

    creds = service_account.Credentials.from_service_account_file(stack.env["GOOGLE_APPLICATION_CREDENTIALS"])
    return creds.signer, creds.service_account_email


def _jwt(signer, claims):
    from google.auth import jwt

    return jwt.encode(signer, claims).decode()


def _claims(email, **changes):
    now = int(time.time())
    claims = {"iss": email, "sub": email, "aud": API_AUDIENCE, "iat": now, "exp": now + 3600}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _other_key_signer():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from google.auth import crypt

    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return crypt.RSASigner.from_string(pem, key_id="local")


def _list_status(stack, token):
    url = f"{stack.vertex_url}/v1beta1/projects/{PROJECT}/locations/{LOCATION}/tuningJobs"
    resp = httpx.get(url, params={"pageSize": 1}, headers={"Authorization": f"Bearer {token}"})
    if resp.status_code == 401:
        assert resp.json()["error"]["status"] == "UNAUTHENTICATED"
    return resp.status_code


def test_self_signed_jwts_are_accepted(local_stack):
    signer, email = _signer_and_email(local_stack)
    assert _list_status(local_stack, _jwt(signer, _claims(email))) == 200
    # AIP-4111: with scopes the JWT names the scope instead of the audience.
    scoped = _claims(email, aud=None, scope=CLOUD_PLATFORM)
    assert _list_status(local_stack, _jwt(signer, scoped)) == 200


@pytest.mark.parametrize(
    "case",
    [
        "forged",
        "expired",
        "wrong key",
        "wrong audience",
        "regional audience",
        "no audience or scope",
        "other scope only",
        "issuer",
        "lifetime over an hour",
        "issued in the future",
        "no kid",
        "HS256",
        "not a JWT",
    ],
)
def test_bad_self_signed_jwts_are_401(local_stack, case):
    signer, email = _signer_and_email(local_stack)
    now = int(time.time())
    token = {
        "forged": lambda: _jwt(signer, _claims(email))[:-6] + "AAAAAA",
        "expired": lambda: _jwt(signer, _claims(email, iat=now - 7200, exp=now - 3600)),
        "wrong key": lambda: _jwt(_other_key_signer(), _claims(email)),
        "wrong audience": lambda: _jwt(signer, _claims(email, aud="https://storage.googleapis.com/")),
        "regional audience": lambda: _jwt(signer, _claims(email, aud="https://us-central1-aiplatform.googleapis.com/")),
        "no audience or scope": lambda: _jwt(signer, _claims(email, aud=None)),
        "other scope only": lambda: _jwt(
            signer, _claims(email, aud=None, scope="https://www.googleapis.com/auth/devstorage.read_only")
        ),
        "issuer": lambda: _jwt(signer, _claims(email, iss="someone@else.iam.gserviceaccount.com")),
        "lifetime over an hour": lambda: _jwt(signer, _claims(email, exp=now + 7200)),
        "issued in the future": lambda: _jwt(signer, _claims(email, iat=now + 3600, exp=now + 4000)),
        "no kid": lambda: _unsigned_header_jwt(signer, _claims(email), {"alg": "RS256", "typ": "JWT"}),
        "HS256": lambda: _unsigned_header_jwt(signer, _claims(email), {"alg": "HS256", "typ": "JWT", "kid": "local"}),
        "not a JWT": lambda: "a.b.c",
    }[case]()
    assert _list_status(local_stack, token) == 401


def _unsigned_header_jwt(signer, claims, header):
    """A JWT with ``header`` as is, signed (RS256) with ``signer``."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(signer.sign(signing_input.encode()))}"


# --------------------------------------------------------------------------- numeric enums


def test_numeric_enums_and_int64_strings_are_accepted_and_answered(local_stack, sft_dataset):
    signer, email = _signer_and_email(local_stack)
    headers = {"Authorization": f"Bearer {_jwt(signer, _claims(email))}"}
    url = f"{local_stack.vertex_url}/v1beta1/projects/{PROJECT}/locations/{LOCATION}/tuningJobs"
    body = {
        "baseModel": "gemini-3.5-flash",
        "supervisedTuningSpec": {
            "trainingDatasetUri": sft_dataset[0],
            "hyperParameters": {"epochCount": "1", "adapterSize": 1},
        },
    }  # 1 = ADAPTER_SIZE_ONE
    resp = httpx.post(url, params={"$alt": "json;enum-encoding=int"}, json=body, headers=headers)
    assert resp.status_code == 200, resp.text
    job = resp.json()
    assert job["state"] == 2  # JOB_STATE_PENDING's number in the JobState enum
    assert job["supervisedTuningSpec"]["hyperParameters"] == {
        "epochCount": "1",
        "learningRateMultiplier": 1.0,
        "adapterSize": 1,
    }
    by_name = httpx.get(f"{local_stack.vertex_url}/v1beta1/{job['name']}", headers=headers).json()
    assert by_name["supervisedTuningSpec"]["hyperParameters"]["adapterSize"] == "ADAPTER_SIZE_ONE"
    # FOUR is 2 and TWO is 6 in the proto: the discovery document's list order is not the number.
    body["supervisedTuningSpec"]["hyperParameters"]["adapterSize"] = 2
    four = httpx.post(url, json=body, headers=headers).json()
    assert four["supervisedTuningSpec"]["hyperParameters"]["adapterSize"] == "ADAPTER_SIZE_FOUR"
    body["supervisedTuningSpec"]["hyperParameters"]["adapterSize"] = 99
    bad = httpx.post(url, json=body, headers=headers)
    assert bad.status_code == 400
    assert "'tuning_job.supervised_tuning_spec.hyper_parameters.adapter_size'" in bad.json()["error"]["message"]
    for name in (job["name"], four["name"]):
        httpx.post(f"{local_stack.vertex_url}/v1beta1/{name}:cancel", headers=headers)


def test_sft_train_request_is_what_the_sdk_sends(vertexai_local, sft_dataset):
    """sft.train(adapter_size=1) reaches the server as adapterSize 1 and epochCount "2"."""
    from vertexai.tuning import sft

    job = sft.train(source_model="gemini-3.5-flash", train_dataset=sft_dataset[0], adapter_size=1, epochs=2)
    hp = job._gca_resource.supervised_tuning_spec.hyper_parameters
    assert (hp.adapter_size.name, hp.epoch_count) == ("ADAPTER_SIZE_ONE", 2)
    job.cancel()
    job.refresh()
    assert job.state.name in ("JOB_STATE_CANCELLED", "JOB_STATE_CANCELLING")
    assert intermediate_epochs(2, False) == [1]
