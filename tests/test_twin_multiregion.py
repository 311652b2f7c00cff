"""Multi-region serving in the local Vertex AI: a Gemini 3 model tuned in us-central1 is
served on the ``us`` multi-region endpoint (europe-west4: ``eu``), as
platform_facts.gemini.serving_location says; its tuning job and Model stay in the tuning
region. The real google-genai client with ``location="us"`` reaches the local server (the
GOOGLE_VERTEX_BASE_URL the stack exports replaces the ``aiplatform.us.rep.googleapis.com``
host, so the location in the path is what counts).
"""

from __future__ import annotations

import pytest

from localvertex import jobs as J
from tests.test_localvertex import BUCKET, LABELS, PROJECT, draw, line, wait_for


@pytest.fixture(scope="module")
def train_uri(local_stack):
    from google.cloud import storage

    bucket = storage.Client(project=PROJECT).bucket(BUCKET)
    rows = []
    for i, kind in enumerate(list(LABELS) * 2):
        name = f"multiregion/{kind}_{i}.png"
        bucket.blob(name).upload_from_string(draw(kind, shift=i % 3), content_type="image/png")
        rows.append(line(f"gs://{BUCKET}/{name}", LABELS[kind]))
    bucket.blob("multiregion/train.jsonl").upload_from_string("\n".join(rows) + "\n")
    return f"gs://{BUCKET}/multiregion/train.jsonl"


_CLIENTS = {}  # one client per location, kept open (a client closes its connection when collected)


def _client(location):
    from google import genai

    if location not in _CLIENTS:
        _CLIENTS[location] = genai.Client(vertexai=True, project=PROJECT, location=location)
    return _CLIENTS[location]


def _tuned(location, train_uri, epochs):
    from google.genai import types

    client = _client(location)
    job = client.tunings.tune(
        base_model="gemini-3.5-flash",
        training_dataset=types.TuningDataset(gcs_uri=train_uri),
        config=types.CreateTuningJobConfig(epoch_count=epochs),
    )
    done = wait_for(client, job.name, {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED"}, timeout=300)
    assert done.state.name == "JOB_STATE_SUCCEEDED", done.error
    return done


def _ask(location, endpoint_name):
    from google.genai import types

    return _client(location).models.generate_content(
        model=endpoint_name,
        contents=[types.Part.from_bytes(data=draw("pass"), mime_type="image/png")],
        config=types.GenerateContentConfig(temperature=0),
    )


def _at(name, location):
    """``name`` (projects/P/locations/L/...) with another location."""
    head, _, rest = name.partition("/locations/")
    return f"{head}/locations/{location}/{rest.split('/', 1)[1]}"


def _assert_not_found(location, endpoint_name):
    from google.genai import errors

    with pytest.raises(errors.ClientError) as exc:
        _ask(location, endpoint_name)
    assert exc.value.code == 404 and exc.value.status == "NOT_FOUND", exc.value.message
    assert endpoint_name in exc.value.message


@pytest.mark.slow
def test_gemini_3_tuned_in_us_central1_is_served_on_the_us_endpoint(train_uri, local_stack):
    from google.genai import errors

    job = _tuned("us-central1", train_uri, epochs=2)
    assert job.name.startswith(f"projects/{PROJECT}/locations/us-central1/tuningJobs/")
    assert job.tuned_model.model.startswith(f"projects/{PROJECT}/locations/us-central1/models/")
    endpoint = job.tuned_model.endpoint
    assert endpoint.startswith(f"projects/{PROJECT}/locations/us/endpoints/")
    checkpoints = job.tuned_model.checkpoints
    assert [c.epoch for c in checkpoints] == [1, 2]
    assert all(c.endpoint.startswith(f"projects/{PROJECT}/locations/us/endpoints/") for c in checkpoints)

    us = _client("us")
    assert us._api_client.location == "us"
    assert us._api_client._http_options.base_url.rstrip("/") == local_stack.vertex_url.rstrip("/")
    assert _ask("us", endpoint).text
    assert _ask("us", checkpoints[0].endpoint).text
    # A client of the tuning region reaches the endpoint by its full name too.
    assert _ask("us-central1", endpoint).text == _ask("us", endpoint).text

    # Not served at the tuning region, nor on the other multi-region endpoint.
    for location in ("us-central1", "eu"):
        _assert_not_found(location, _at(endpoint, location))
        _assert_not_found(location, _at(checkpoints[0].endpoint, location))
    # The tuning job itself stays in its tuning region.
    with pytest.raises(errors.ClientError) as exc:
        us.tunings.get(name=_at(job.name, "us"))
    assert exc.value.code == 404


@pytest.mark.slow
def test_gemini_3_tuned_in_europe_west4_is_served_on_the_eu_endpoint(train_uri):
    job = _tuned("europe-west4", train_uri, epochs=1)
    endpoint = job.tuned_model.endpoint
    assert endpoint.startswith(f"projects/{PROJECT}/locations/eu/endpoints/")
    assert _ask("eu", endpoint).text
    _assert_not_found("europe-west4", _at(endpoint, "europe-west4"))
    _assert_not_found("us", _at(endpoint, "us"))


def _job(base, location):
    """A job of ``base`` tuned in ``location``, even one build_job refuses today (a 2.5 model,
    tuned before its retirement)."""
    job = J.build_job(
        {"baseModel": "gemini-3.5-flash", "supervisedTuningSpec": {"trainingDatasetUri": "gs://local-bucket/t.jsonl"}},
        PROJECT,
        "us-central1",
    )
    job["_local"].update(localBaseModel=base, location=location)
    job["_local"].pop("servingLocation")  # as a job file written before it was recorded
    return job


@pytest.mark.parametrize(
    ("base", "location", "served"),
    [
        ("gemini-3.5-flash", "us-central1", "us"),
        ("gemini-3.1-flash-lite", "europe-west4", "eu"),
        ("gemini-2.5-flash", "us-central1", "us-central1"),  # 2.5 is served in its tuning region
        ("gemini-2.5-pro", "europe-west1", "europe-west1"),
    ],
)
def test_endpoint_names_follow_the_serving_location(base, location, served):
    job = _job(base, location)
    assert J.serving_location(job) == served
    assert J.endpoint_name(job) == f"projects/{PROJECT}/locations/{served}/endpoints/{job['_local']['endpointId']}"
    assert J.model_name(job).startswith(f"projects/{PROJECT}/locations/{location}/models/")


def test_a_new_job_records_where_it_is_served():
    job = J.build_job(
        {"baseModel": "gemini-3.5-flash", "supervisedTuningSpec": {"trainingDatasetUri": "gs://local-bucket/t.jsonl"}},
        PROJECT,
        "europe-west4",
    )
    assert job["_local"]["servingLocation"] == "eu"


@pytest.mark.parametrize(("base", "answers"), [("gemini-3.5-flash", True), ("gemini-2.5-flash", False)])
def test_a_tuned_model_stops_answering_when_its_base_model_retires(base, answers):
    """A tuned model shares its base model's retirement date (issue 30): an endpoint of a job
    tuned on gemini-2.5-flash before June 17, 2026 is not found today."""
    from types import SimpleNamespace

    from localvertex.errors import ApiError
    from localvertex.routes.deps import Location
    from localvertex.routes.prediction import deployed_model

    job = _job(base, "us-central1")
    job["state"] = "JOB_STATE_SUCCEEDED"
    services = SimpleNamespace(store=SimpleNamespace(by_endpoint=lambda endpoint_id, read_only: job))
    where = Location(PROJECT, J.serving_location(job))
    if answers:
        assert deployed_model(services, where, job["_local"]["endpointId"])[0] is job
        return
    with pytest.raises(ApiError) as caught:
        deployed_model(services, where, job["_local"]["endpointId"])
    assert caught.value.http_code == 404 and "gemini-2.5-flash was retired on 2026-06-17" in caught.value.message
