"""The local Vertex AI against Vertex AI's published REST schema.

tests/schema/aiplatform.{v1,v1beta1}.json are google-api-python-client's discovery
documents, unchanged (revision in the file). The checks here:

* the slice the server uses (localvertex/schema/) is generated from them, enum numbers from
  google-cloud-aiplatform's protos (never the list index);
* the schema walker (localvertex/schema): unknown fields, types, enums by name and number,
  64-bit integers, output-only fields, required fields, Google's error messages;
* every request the components send (launch_tuning, wait_for_tuning, earlier_attempts_job,
  evaluate_inspector's ask_model) and every response the server returns, recorded on the
  wire, validate against the full discovery documents;
* error codes follow google.rpc.Code's HTTP mapping; the data stats carry the fields
  clients read; the list filter; checkpoints.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from localvertex import jobs as J
from localvertex import tuning_data
from localvertex.errors import RPC_CODES
from localvertex.jobs.checkpoints import checkpoint_epochs, intermediate_epochs
from localvertex.schema.walker import ApiSchema, SchemaError, api_schema
from tests.test_localvertex import BUCKET, LABELS, LOCATION, PROJECT, draw, line

SCHEMA_DIR = Path(__file__).resolve().parent / "schema"


@pytest.fixture(scope="module")
def discovery():
    """Full schemas of both versions, from the vendored discovery documents (enum numbers
    from the generated slice, which the build checks against the protos)."""
    from tests.schema.build_subset import discovery as load

    out = {}
    for version in ("v1", "v1beta1"):
        doc = load(version)
        numbers = api_schema(version).schemas
        schemas = {}
        for name, schema in doc["schemas"].items():
            props = {}
            for field, prop in schema.get("properties", {}).items():
                entry = dict(prop)
                extra = numbers.get(name, {}).get("properties", {}).get(field, {})
                entry.update({k: extra[k] for k in ("enumNumbers", "enumType") if k in extra})
                props[field] = entry
            schemas[name] = {
                **schema,
                "properties": props,
                "required": [
                    f
                    for f, p in schema.get("properties", {}).items()
                    if p.get("description", "").startswith("Required.")
                ],
            }
        out[version] = ApiSchema(
            {"version": version, "revision": doc["revision"], "prefix": api_schema(version).prefix, "schemas": schemas}
        )
    return out


# --------------------------------------------------------------------------- the vendored schema


def test_vendored_discovery_documents_and_the_servers_slice_agree():
    from tests.schema.build_subset import main

    for version in ("v1", "v1beta1"):
        doc = json.loads((SCHEMA_DIR / f"aiplatform.{version}.json").read_text())
        assert doc["id"] == f"aiplatform:{version}" and doc["revision"]
        assert api_schema(version).revision == doc["revision"]
    assert main(["--check"]) == 0, "run python -m tests.schema.build_subset"


def test_enum_numbers_are_the_protos_not_the_list_order():
    from google.cloud.aiplatform_v1beta1.types import tuning_job

    prop = api_schema("v1beta1").schemas["GoogleCloudAiplatformV1beta1SupervisedHyperParameters"]["properties"][
        "adapterSize"
    ]
    proto = tuning_job.SupervisedHyperParameters.AdapterSize
    assert prop["enumNumbers"] == {v.name: v.value for v in proto}
    assert prop["enum"].index("ADAPTER_SIZE_TWO") == 2 and prop["enumNumbers"]["ADAPTER_SIZE_TWO"] == 6
    assert prop["enumNumbers"]["ADAPTER_SIZE_FOUR"] == 2


# --------------------------------------------------------------------------- the walker

V1BETA1 = api_schema("v1beta1")


def parse(body, name="TuningJob", root="tuning_job"):
    return V1BETA1.parse_request(name, body, root)


def violations(body, name="TuningJob", root="tuning_job"):
    with pytest.raises(SchemaError) as exc:
        parse(body, name, root)
    return [v.description for v in exc.value.violations]


def test_requests_parse_like_protobuf_json():
    got = parse(
        {
            "base_model": "gemini-3.5-flash",
            "supervisedTuningSpec": {
                "training_dataset_uri": "gs://b/t.jsonl",
                "hyperParameters": {"epochCount": 3, "adapterSize": 6, "learningRateMultiplier": "0.5"},
            },
            "labels": {"Any_Key": "v"},
            "description": None,
            "experiment": "projects/p/experiments/x",
            "state": "JOB_STATE_SUCCEEDED",
        }
    )
    assert got == {
        "baseModel": "gemini-3.5-flash",
        "supervisedTuningSpec": {
            "trainingDatasetUri": "gs://b/t.jsonl",
            "hyperParameters": {"epochCount": "3", "adapterSize": "ADAPTER_SIZE_TWO", "learningRateMultiplier": 0.5},
        },
        "labels": {"Any_Key": "v"},
    }  # null = unset; output-only experiment/state ignored


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"foo": 1}, 'Invalid JSON payload received. Unknown name "foo" at \'tuning_job\': Cannot find field.'),
        (
            {"supervisedTuningSpec": {"hyperParameters": {"adapterSize": "ADAPTER_SIZE_3"}}},
            "Invalid value at 'tuning_job.supervised_tuning_spec.hyper_parameters.adapter_size' "
            "(type.googleapis.com/google.cloud.aiplatform.v1beta1.SupervisedHyperParameters.AdapterSize)"
            ', "ADAPTER_SIZE_3"',
        ),
        ({"supervisedTuningSpec": {"hyperParameters": {"adapterSize": 99}}}, "adapter_size"),
        (
            {"supervisedTuningSpec": {"hyperParameters": {"epochCount": 1.5}}},
            "Invalid value at 'tuning_job.supervised_tuning_spec.hyper_parameters.epoch_count' (TYPE_INT64), 1.5",
        ),
        ({"supervisedTuningSpec": {"exportLastCheckpointOnly": "yes"}}, "(TYPE_BOOL)"),
        ({"labels": {"a": 1}}, "Invalid value at 'tuning_job.labels[0].value' (TYPE_STRING), 1"),
        ({"supervisedTuningSpec": "gs://x"}, "SupervisedTuningSpec)"),
        ({"base__model": "x"}, 'Unknown name "base__model"'),
        ({"createTime": "yesterday"}, "(TYPE_STRING)"),  # output only, but still parsed
    ],
)
def test_bad_requests_name_the_field(body, message):
    assert any(message in v for v in violations(body)), violations(body)


def test_every_violation_is_reported_with_a_bad_request_detail():
    with pytest.raises(SchemaError) as exc:
        parse({"a": 1, "b": 2})
    assert len(exc.value.violations) == 2
    detail = exc.value.details()[0]
    assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert [v["field"] for v in detail["fieldViolations"]] == ["tuning_job", "tuning_job"]
    assert violations([1], "GenerateContentRequest", "") == [
        'Invalid JSON payload received. Unknown name "": Root element must be a message.'
    ]
    assert violations({"contents": [{"parts": [{"fileData": {"uri": "gs://b/x"}}]}]}, "GenerateContentRequest", "") == [
        'Invalid JSON payload received. Unknown name "uri" at \'contents[0].parts[0].file_data\': Cannot find field.'
    ]


def test_responses_are_checked_strictly_and_encoded_as_asked():
    ok = {
        "state": "JOB_STATE_RUNNING",
        "createTime": "2026-01-01T00:00:00.000001Z",
        "tuningDataStats": {"supervisedTuningDataStats": {"tuningStepCount": "3"}},
    }
    assert V1BETA1.check("TuningJob", ok) == []
    assert V1BETA1.check("TuningJob", {**ok, "localTuningMetrics": {}})  # not in the schema
    bad_int64 = {"tuningDataStats": {"supervisedTuningDataStats": {"tuningStepCount": 3}}}
    assert V1BETA1.check("TuningJob", bad_int64)  # int64 is written as a string
    assert V1BETA1.check("TuningJob", {"state": 3})
    assert V1BETA1.check("TuningJob", {"state": 3}, int_enums=True) == []
    assert V1BETA1.encode("TuningJob", ok, int_enums=True)["state"] == 3
    with pytest.raises(SchemaError):
        V1BETA1.encode("TuningJob", {"localTuningMetrics": {}})
    # v1 has no tuningJobState: a v1 reader does not get it, as its proto would not.
    assert "tuningJobState" not in api_schema("v1").encode(
        "TuningJob", {**ok, "tuningJobState": "TUNING_JOB_STATE_TUNING"}, fallback=V1BETA1
    )
    assert V1BETA1.check("Content", {"role": "user"}, required=True)  # parts: "Required."


# --------------------------------------------------------------------------- errors


def test_statuses_follow_google_rpc_code_http_mapping():
    # google/rpc/code.proto, "HTTP Mapping" of each code.
    assert {name: http for name, (_, http) in RPC_CODES.items()} == {
        "CANCELLED": 499,
        "UNKNOWN": 500,
        "INVALID_ARGUMENT": 400,
        "DEADLINE_EXCEEDED": 504,
        "NOT_FOUND": 404,
        "ALREADY_EXISTS": 409,
        "PERMISSION_DENIED": 403,
        "RESOURCE_EXHAUSTED": 429,
        "FAILED_PRECONDITION": 400,
        "ABORTED": 409,
        "OUT_OF_RANGE": 400,
        "UNIMPLEMENTED": 501,
        "INTERNAL": 500,
        "UNAVAILABLE": 503,
        "DATA_LOSS": 500,
        "UNAUTHENTICATED": 401,
    }
    from localvertex.errors import ApiError

    with pytest.raises(ValueError):
        ApiError(409, "FAILED_PRECONDITION", "x")
    with pytest.raises(ValueError):
        ApiError(405, "METHOD_NOT_ALLOWED", "x")


# --------------------------------------------------------------------------- jobs: rules


def test_checkpoint_epochs_follow_vertex():
    assert checkpoint_epochs(1) == [1] and checkpoint_epochs(9) == list(range(1, 10))
    assert checkpoint_epochs(10) == list(range(1, 11))
    assert checkpoint_epochs(25) == [2, 5, 8, 10, 12, 15, 18, 20, 22, 25]
    assert intermediate_epochs(5, False) == [1, 2, 3, 4]
    assert intermediate_epochs(5, True) == []


def _body(**spec):
    hp = spec.pop("hp", {})
    return {
        "baseModel": spec.pop("base", "gemini-3.5-flash"),
        "supervisedTuningSpec": {"trainingDatasetUri": "gs://local-bucket/t.jsonl", "hyperParameters": hp, **spec},
    }


@pytest.mark.parametrize(
    ("body", "location", "status", "fragment"),
    [
        (_body(base="gemini-2.0-flash-bogus-suffix"), "us-central1", 400, "not supported"),
        (_body(base="projects/p/locations/l/publishers/google/models/gemini-9"), "us-central1", 400, "not supported"),
        (_body(hp={"adapterSize": "ADAPTER_SIZE_THIRTY_TWO"}), "us-central1", 400, "adapter_size 32"),
        (_body(base="gemini-2.5-pro"), "us-central1", 400, "retired on 2026-06-17"),  # by today's date
        (_body(base="gemini-3.5-flash-lite"), "us-central1", 400, "not supported"),  # no tuning listed
        (_body(), "us-east1", 400, "use us-central1, europe-west4"),  # Gemini 3 tunes in two regions
        (_body(), "mars-north1", 400, "mars-north1"),
        (_body(hp={"epochCount": "-1"}), "us-central1", 400, "epochCount"),
        (_body(hp={"learningRateMultiplier": -1}), "us-central1", 400, "learningRateMultiplier"),
        (_body(hp={"learningRate": 0.1}), "us-central1", 400, "open source models"),
        (_body(hp={"batchSize": "8"}), "us-central1", 400, "open source models"),
        ({**_body(), "outputUri": "gs://b/o"}, "us-central1", 400, "open source models"),
        ({**_body(), "distillationSpec": {}}, "us-central1", 501, "distillationSpec"),
        ({**_body(), "encryptionSpec": {"kmsKeyName": "k"}}, "us-central1", 501, "encryption"),
        (_body(evaluationConfig={}), "us-central1", 501, "evaluationConfig"),
        (_body(tuningMode="TUNING_MODE_FULL"), "us-central1", 501, "TUNING_MODE_FULL"),
        ({**_body(), "labels": {"Team": "qc"}}, "us-central1", 400, "invalid label"),
        ({**_body(), "labels": {"team": "x" * 64}}, "us-central1", 400, "invalid label"),
        ({**_body(), "tunedModelDisplayName": "x" * 129}, "us-central1", 400, "128"),
        ({"baseModel": "gemini-3.5-flash"}, "us-central1", 400, "supervisedTuningSpec"),
    ],
)
def test_create_requests_vertex_refuses(body, location, status, fragment):
    from localvertex.errors import ApiError

    with pytest.raises(ApiError) as exc:
        J.build_job(body, PROJECT, location)
    assert exc.value.http_code == status and fragment in exc.value.message, exc.value.message


def test_create_defaults_and_what_is_kept():
    job = J.build_job(
        {
            **_body(hp={"epochCount": "0", "learningRateMultiplier": 0}, exportLastCheckpointOnly=True),
            "labels": {"équipe": "contrôle", "kfp_launch": "abc"},
        },
        PROJECT,
        "europe-west4",
    )
    hp = job["supervisedTuningSpec"]["hyperParameters"]
    assert hp == {"epochCount": "5", "learningRateMultiplier": 1.0, "adapterSize": "ADAPTER_SIZE_FOUR"}
    assert job["_local"]["exportLastCheckpointOnly"] is True
    assert job["labels"] == {"équipe": "contrôle", "kfp_launch": "abc"}  # international characters
    assert V1BETA1.check("TuningJob", J.public_view(job)) == []


def test_list_filter_is_aip_160():
    job = {"state": "JOB_STATE_RUNNING", "labels": {"kfp_launch": "abc", "team": "qc"}}
    for text, expected in [
        ('labels.kfp_launch="abc"', True),
        ("labels.kfp_launch=abd", False),
        ("state=JOB_STATE_RUNNING AND labels.team=qc", True),
        ('state="JOB_STATE_SUCCEEDED"', False),
        ("labels.team:*", True),
        ("labels.other:*", False),
        ("state!=JOB_STATE_RUNNING", False),
        ("labels.team=ops OR labels.kfp_launch=abc", True),
        ("NOT (state=JOB_STATE_RUNNING)", False),
        ("", True),
    ]:
        assert J.parse_filter(text)(job) is expected, text
    from localvertex.errors import ApiError

    for text in (
        "state=RUNNING",
        "display_name=x",
        "labels.a",
        "(labels.a=1",
        "labels.a=1 and labels.b=2",
        "labels.a=1 AND",
    ):
        with pytest.raises(ApiError) as exc:
            J.parse_filter(text)
        assert exc.value.http_code == 400, text


def test_dataset_stats_carry_what_clients_read():
    lines = [line(f"gs://{BUCKET}/i{i}.png", LABELS["pass" if i % 2 else "crack"]) for i in range(5)]
    records = tuning_data.parse_jsonl("\n".join(lines), "gs://b/t.jsonl")
    stats = tuning_data.dataset_stats(records, epochs=3)
    for key in (
        "userInputTokenDistribution",
        "userOutputTokenDistribution",
        "userMessagePerExampleDistribution",
        "totalTruncatedExampleCount",
        "truncatedExampleIndices",
        "droppedExampleReasons",
    ):
        assert key in stats
    assert stats["userMessagePerExampleDistribution"]["sum"] == "10"
    dist = stats["userOutputTokenDistribution"]
    assert dist["min"] <= dist["p5"] <= dist["median"] <= dist["p95"] <= dist["max"]
    assert sum(b["count"] for b in dist["buckets"]) == 5
    assert V1BETA1.check("SupervisedTuningDataStats", stats) == []


def test_dataset_limits_come_from_the_capabilities_table():
    from platform_facts.gemini import tuning_limits

    assert tuning_data.MAX_VALIDATION_EXAMPLES == tuning_limits()["max_validation_examples"] == 5000
    assert tuning_data.MAX_IMAGES_PER_EXAMPLE == 30 and tuning_data.MAX_IMAGE_BYTES == 20 * 1024 * 1024
    assert tuning_data.default_limits("gemini-2.5-pro")["max_example_tokens"] == 131_072
    image = {"fileData": {"mimeType": "image/png", "fileUri": f"gs://{BUCKET}/x.png"}}
    many = {
        "contents": [{"role": "user", "parts": [image] * 31}, {"role": "model", "parts": [{"text": "Status: Pass"}]}]
    }
    with pytest.raises(tuning_data.DatasetError, match="at most 30"):
        tuning_data.parse_jsonl(json.dumps(many), "f")
    long = {
        "contents": [
            {"role": "user", "parts": [{"text": "x" * 524_300}, image]},
            {"role": "model", "parts": [{"text": "Status: Pass"}]},
        ]
    }
    with pytest.raises(tuning_data.DatasetError, match="131072"):
        tuning_data.parse_jsonl(json.dumps(long), "f")
    records = tuning_data.parse_jsonl(line(f"gs://{BUCKET}/x.png", "Status: Pass"), "v") * 5001
    with pytest.raises(tuning_data.DatasetError, match="at most 5000"):
        tuning_data.check_validation_size(records, "gs://b/v.jsonl")


# --------------------------------------------------------------------------- on the wire


class Recorder:
    """Every request to the local Vertex AI and its answer, as sent and received by
    google-genai (httpx) and google-cloud-aiplatform (requests)."""

    def __init__(self, base_url: str) -> None:
        self.base_url, self.exchanges = base_url, []

    def add(self, method, url, body, status, answer):
        if str(url).startswith(self.base_url):
            self.exchanges.append((method, str(url), body, status, answer))


@pytest.fixture
def recorder(local_stack, monkeypatch):
    import requests

    rec = Recorder(local_stack.vertex_url)
    real_httpx, real_requests = httpx.Client.send, requests.Session.send

    def httpx_send(self, request, **kwargs):
        response = real_httpx(self, request, **kwargs)
        response.read()
        rec.add(request.method, request.url, request.content, response.status_code, response.content)
        return response

    def requests_send(self, request, **kwargs):
        response = real_requests(self, request, **kwargs)
        rec.add(request.method, request.url, request.body, response.status_code, response.content)
        return response

    monkeypatch.setattr(httpx.Client, "send", httpx_send)
    monkeypatch.setattr(requests.Session, "send", requests_send)
    return rec


ROUTES = [  # (method, path pattern, request message and its root, response message)
    ("POST", r"/tuningJobs", ("TuningJob", "tuning_job"), "TuningJob"),
    ("GET", r"/tuningJobs", None, "ListTuningJobsResponse"),
    ("GET", r"/tuningJobs/\d+", None, "TuningJob"),
    ("POST", r"/tuningJobs/\d+:cancel", ("CancelTuningJobRequest", ""), "GoogleProtobufEmpty"),
    ("POST", r"/endpoints/\d+:generateContent", ("GenerateContentRequest", ""), "GenerateContentResponse"),
]


def validate_exchanges(rec: Recorder, discovery) -> list[str]:
    """Every recorded request and response against the full discovery documents."""
    problems = []
    for method, url, body, status, answer in rec.exchanges:
        parts = urlsplit(url)
        m = re.fullmatch(r"/(v1|v1beta1)/projects/[^/]+/locations/[^/]+(/.*)", parts.path)
        if m is None:
            continue
        version, rest = m.groups()
        schema = discovery[version]
        route = next((r for r in ROUTES if r[0] == method and re.fullmatch(r[1], rest)), None)
        if route is None:  # no such API method: only Google's 404 may come back
            assert status == 404, f"unexpected {method} {rest} -> {status}"
            route = (method, rest, None, None)
        if route[2] is not None and body and status < 400:  # every accepted request conforms
            try:
                schema.parse_request(route[2][0], json.loads(body), route[2][1])
            except SchemaError as exc:
                problems.append(f"request {method} {rest}: {exc}")
        payload = json.loads(answer)
        if status >= 400:
            error = dict(payload["error"])
            assert error.pop("status") in RPC_CODES and RPC_CODES[payload["error"]["status"]][1] == status
            found = schema.check("GoogleRpcStatus", error)
        else:
            alt = parse_qs(parts.query).get("$alt", [""])[0]
            found = schema.check(route[3], payload, int_enums="enum-encoding=int" in alt)
        problems += [f"response {method} {rest} ({status}): {v.description}" for v in found]
    return problems


@pytest.fixture(scope="module")
def small_dataset(local_stack):
    from google.cloud import storage

    bucket = storage.Client(project=PROJECT).bucket(BUCKET)
    rows = []
    for i in range(8):
        kind = list(LABELS)[i % 4]
        bucket.blob(f"schema/{kind}_{i}.png").upload_from_string(draw(kind, shift=i % 3), content_type="image/png")
        rows.append(line(f"gs://{BUCKET}/schema/{kind}_{i}.png", LABELS[kind]))
    bucket.blob("schema/train.jsonl").upload_from_string("\n".join(rows) + "\n")
    bucket.blob("schema/validation.jsonl").upload_from_string("\n".join(rows[:2]) + "\n")
    return f"gs://{BUCKET}/schema/train.jsonl", f"gs://{BUCKET}/schema/validation.jsonl"


@pytest.mark.slow
def test_component_traffic_follows_the_schema(recorder, discovery, small_dataset, tmp_path):
    """launch_tuning, wait_for_tuning (which trains), earlier_attempts_job and
    evaluate_inspector's ask_model, unchanged, against the local stack."""
    from google_cloud_pipeline_components.types.artifact_types import VertexEndpoint, VertexModel
    from kfp import dsl

    from components.clients import genai_client
    from components.evaluate_inspector import ask_model
    from components.gcp_resources import earlier_attempts_job
    from components.launch_tuning import launch_tuning
    from components.wait_for_tuning import wait_for_tuning

    train, validation = small_dataset
    launched = launch_tuning.python_func(
        project=PROJECT,
        location=LOCATION,
        train_jsonl_uri=train,
        validation_jsonl_uri=validation,
        gcp_resources=str(tmp_path / "launch.json"),
        epoch_count=2,
        adapter_size=4,
        pipeline_run_id="schema-run",
    )
    done = wait_for_tuning.python_func(
        project=PROJECT,
        location=LOCATION,
        job_name=launched.job_name,
        tuning_metrics=dsl.Metrics(name="m", uri=str(tmp_path / "m"), metadata={}),
        gcp_resources=str(tmp_path / "wait.json"),
        poll_interval_seconds=1,
        timeout_seconds=300,
        model=VertexModel(name="model", uri=str(tmp_path / "model"), metadata={}),
        endpoint=VertexEndpoint(name="endpoint", uri=str(tmp_path / "endpoint"), metadata={}),
    )
    client = genai_client(PROJECT, LOCATION)
    again = earlier_attempts_job(client, str(tmp_path / "none.json"), _launch_key("schema-run"))
    assert again is not None and again.name == launched.job_name
    example = _example()
    answer = ask_model(client, done.tuned_endpoint, example, 0, 64)
    assert not answer.failed, answer.error
    problems = validate_exchanges(recorder, discovery)
    assert not problems, "\n".join(problems)
    methods = {(m, re.sub(r"\d{6,}", "ID", urlsplit(u).path)) for m, u, *_ in recorder.exchanges}
    assert len(methods) >= 4, methods


def _launch_key(run_id):
    import hashlib

    return hashlib.sha256(f"{run_id}/launch-tuning".encode()).hexdigest()[:32]


def _example():
    """One test example as evaluate_inspector parses it from the test JSONL."""
    from components.evaluation import parse_test_jsonl

    text = line(f"gs://{BUCKET}/schema/pass_0.png", LABELS["pass"])
    return parse_test_jsonl(text, "gs://b/test.jsonl")[0]


def test_error_answers_follow_the_schema_and_google_rpc(local_stack, recorder, discovery, small_dataset):
    import google.auth.transport.requests
    from google.oauth2 import service_account

    creds = service_account.Credentials.from_service_account_file(
        local_stack.env["GOOGLE_APPLICATION_CREDENTIALS"], scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )
    creds.refresh(google.auth.transport.requests.Request())
    http = httpx.Client(headers={"Authorization": f"Bearer {creds.token}"})
    base = f"{local_stack.vertex_url}/v1beta1/projects/{PROJECT}/locations/{LOCATION}"
    train = small_dataset[0]

    # Unknown fields: 400 naming each, with a google.rpc.BadRequest detail.
    resp = http.post(
        f"{base}/tuningJobs",
        json={
            "baseModel": "gemini-3.5-flash",
            "bogus": 1,
            "supervisedTuningSpec": {"trainingDatasetUri": train, "hyperParams": {}},
        },
    )
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert 'Unknown name "bogus" at \'tuning_job\'' in error["message"]
    assert 'Unknown name "hyperParams" at \'tuning_job.supervised_tuning_spec\'' in error["message"]
    assert error["details"][0]["@type"] == "type.googleapis.com/google.rpc.BadRequest"

    # The output-only experiment is ignored, not echoed.
    job = http.post(
        f"{base}/tuningJobs",
        json={
            "baseModel": "gemini-3.5-flash",
            "experiment": "projects/p/locations/l/x",
            "supervisedTuningSpec": {"trainingDatasetUri": train},
        },
    ).json()
    assert "experiment" not in job and job["state"] == "JOB_STATE_PENDING"
    cancel = http.post(f"{local_stack.vertex_url}/v1beta1/{job['name']}:cancel")
    assert cancel.status_code == 200 and cancel.json() == {}
    deadline = time.monotonic() + 60
    while http.get(f"{local_stack.vertex_url}/v1beta1/{job['name']}").json()["state"] != "JOB_STATE_CANCELLED":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    # Cancelling a job that has ended: FAILED_PRECONDITION is HTTP 400 (code.proto).
    again = http.post(f"{local_stack.vertex_url}/v1beta1/{job['name']}:cancel")
    assert again.status_code == 400 and again.json()["error"]["status"] == "FAILED_PRECONDITION"

    # A method and path that match no API method: 404 "Method not found." (never 405).
    for method, path in (
        ("POST", f"/v1beta1/{job['name']}"),
        ("PUT", f"/v1beta1/{job['name']}"),
        ("POST", f"/v1beta1/{job['name']}:pause"),
        ("GET", f"/v1beta1/{job['name']}:cancel"),
        ("DELETE", f"/v1beta1/{job['name']}"),
    ):
        resp = http.request(method, local_stack.vertex_url + path)
        assert resp.status_code == 404, (method, path, resp.text)
        assert resp.json()["error"] == {"code": 404, "message": "Method not found.", "status": "NOT_FOUND"}

    # The list filter: labels and state; one it cannot parse is 400.
    listed = http.get(f"{base}/tuningJobs", params={"filter": "state=JOB_STATE_CANCELLED"}).json()
    assert job["name"] in [j["name"] for j in listed["tuningJobs"]]
    assert all(j["state"] == "JOB_STATE_CANCELLED" for j in listed["tuningJobs"])
    assert http.get(f"{base}/tuningJobs", params={"filter": "state = = x"}).status_code == 400
    assert http.get(f"{base}/tuningJobs", params={"pageSize": "x"}).status_code == 400
    problems = validate_exchanges(recorder, discovery)
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_the_wire_shapes_of_a_finished_job_follow_the_schema(local_stack, discovery, small_dataset):
    """A job run to the end by the runner, read back in both versions, both enum encodings."""
    from google import genai
    from google.genai import types

    client = genai.Client(vertexai=True, project=PROJECT, location=LOCATION)
    job = client.tunings.tune(
        base_model="gemini-3.1-flash-lite",
        training_dataset=types.TuningDataset(gcs_uri=small_dataset[0]),
        config=types.CreateTuningJobConfig(epoch_count=1, labels={"k": "v"}),
    )
    deadline = time.monotonic() + 240
    while not client.tunings.get(name=job.name).has_ended:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    import google.auth.transport.requests
    from google.oauth2 import service_account

    creds = service_account.Credentials.from_service_account_file(
        local_stack.env["GOOGLE_APPLICATION_CREDENTIALS"], scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )
    creds.refresh(google.auth.transport.requests.Request())
    headers = {"Authorization": f"Bearer {creds.token}"}
    for version in ("v1", "v1beta1"):
        for alt in ("", "json;enum-encoding=int"):
            resp = httpx.get(
                f"{local_stack.vertex_url}/{version}/{job.name}", headers=headers, params={"$alt": alt} if alt else {}
            )
            body = resp.json()
            assert body["state"] in ("JOB_STATE_SUCCEEDED", 4), body
            assert discovery[version].check("TuningJob", body, int_enums=bool(alt)) == []
            stats = body["tuningDataStats"]["supervisedTuningDataStats"]
            assert {
                "userInputTokenDistribution",
                "userOutputTokenDistribution",
                "userMessagePerExampleDistribution",
                "totalTruncatedExampleCount",
                "truncatedExampleIndices",
                "droppedExampleReasons",
            } <= set(stats)
            assert ("tuningJobState" in body) is False  # only while RUNNING, and v1beta1 only
