"""ML Metadata in the local twin over REST and through the unpatched SDK: contexts,
artifacts and executions (create, get, list with AIP-160 filters, patch, delete), context
children and attributions, lineage, the errors; ``get_experiment_df`` and
``python -m pipeline compare`` on runs whose metadata is written as Vertex AI Pipelines
writes it; everything survives a server restart."""

import os
import subprocess
import sys
import uuid

import httpx
import pytest

PROJECT, LOCATION = "local-project", "us-central1"
STORE = f"projects/{PROJECT}/locations/{LOCATION}/metadataStores/default"


def api_client(stack) -> httpx.Client:
    from tests.test_localvertex import _assertion

    token = httpx.post(
        f"{stack.vertex_url}/token",
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": _assertion(stack)},
    ).json()["access_token"]
    return httpx.Client(
        base_url=f"{stack.vertex_url}/v1/{STORE}", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


@pytest.fixture(scope="module")
def api(local_stack):
    with api_client(local_stack) as client:
        yield client


def ok(resp: httpx.Response) -> dict:
    assert resp.status_code == 200, resp.text
    return resp.json()


def record_pipeline_run(api: httpx.Client, experiment_ctx: str, run_id: str, params: dict, metrics: dict) -> str:
    """A finished pipeline run's metadata, as Vertex AI Pipelines writes it (what the twin's
    runner writes too): system.PipelineRun context under the experiment, system.Run
    execution with input:* parameters, a system.Metrics artifact."""
    run = ok(
        api.post(
            "contexts", params={"contextId": run_id}, json={"schemaTitle": "system.PipelineRun", "displayName": run_id}
        )
    )
    ex = ok(
        api.post(
            "executions",
            json={
                "schemaTitle": "system.Run",
                "displayName": run_id,
                "state": "COMPLETE",
                "metadata": {f"input:{k}": v for k, v in params.items()},
            },
        )
    )
    art = ok(
        api.post(
            "artifacts",
            json={
                "schemaTitle": "system.Metrics",
                "displayName": "metrics",
                "metadata": metrics,
                "uri": f"gs://local-bucket/root/{run_id}/evaluate/metrics",
            },
        )
    )
    ok(
        api.post(
            f"contexts/{run_id}:addContextArtifactsAndExecutions",
            json={"artifacts": [art["name"]], "executions": [ex["name"]]},
        )
    )
    ok(
        api.post(
            f"executions/{ex['name'].rsplit('/', 1)[1]}:addExecutionEvents",
            json={"events": [{"artifact": art["name"], "type": "OUTPUT"}]},
        )
    )
    ok(
        api.post(
            f"{experiment_ctx.split('/metadataStores/default/')[1]}:addContextChildren",
            json={"childContexts": [run["name"]]},
        )
    )
    return run["name"]


def new_experiment(api: httpx.Client) -> tuple[str, str]:
    name = f"exp-{uuid.uuid4().hex[:8]}"
    ctx = ok(
        api.post(
            "contexts",
            params={"contextId": name},
            json={"schemaTitle": "system.Experiment", "displayName": name, "metadata": {"experiment_deleted": False}},
        )
    )
    return name, ctx["name"]


def test_crud_filters_lineage_and_errors(api):
    exp, exp_ctx = new_experiment(api)
    run = record_pipeline_run(api, exp_ctx, f"run-{uuid.uuid4().hex[:6]}", {"lr": 0.5}, {"accuracy": 0.9})
    children = ok(
        api.get("contexts", params={"filter": f'parent_contexts:"{exp_ctx}" AND schema_title="system.PipelineRun"'})
    )
    assert [c["name"] for c in children["contexts"]] == [run]
    assert ok(api.get(f"contexts/{run.rsplit('/', 1)[1]}"))["parentContexts"] == [exp_ctx]
    runs = ok(api.get("executions", params={"filter": f'in_context("{run}") AND schema_title="system.Run"'}))[
        "executions"
    ]
    assert runs[0]["metadata"] == {"input:lr": 0.5} and runs[0]["state"] == "COMPLETE"
    arts = ok(
        api.get(
            "artifacts",
            params={
                "filter": f'in_context("{run}") AND (schema_title="system.Metrics" OR schema_title="google.ClassificationMetrics")'
            },
        )
    )
    assert arts["artifacts"][0]["metadata"] == {"accuracy": 0.9}
    graph = ok(api.get(f"contexts/{run.rsplit('/', 1)[1]}:queryContextLineageSubgraph"))
    assert len(graph["artifacts"]) == 1 and graph["events"][0]["type"] == "OUTPUT"
    patched = ok(
        api.patch(
            f"executions/{runs[0]['name'].rsplit('/', 1)[1]}",
            params={"updateMask": "metadata"},
            json={"metadata": {"input:extra": "x"}},
        )
    )
    assert patched["metadata"] == {"input:lr": 0.5, "input:extra": "x"}
    by_name = ok(api.get("contexts", params={"filter": f'display_name="{exp}"'}))["contexts"]
    assert [c["name"] for c in by_name] == [exp_ctx]
    again = api.post("contexts", params={"contextId": exp}, json={"schemaTitle": "system.Experiment"})
    assert (again.status_code, again.json()["error"]["status"]) == (409, "ALREADY_EXISTS")
    for path, params in [
        ("contexts", {"filter": "bogus=1"}),
        ("artifacts", {"filter": 'in_context("x"'}),
        ("executions", {"filter": "state=DONE"}),
        ("contexts", {"pageToken": "zz"}),
    ]:
        resp = api.get(path, params=params)
        assert (resp.status_code, resp.json()["error"]["status"]) == (400, "INVALID_ARGUMENT"), (path, params)
    cycle = api.post(f"contexts/{run.rsplit('/', 1)[1]}:addContextChildren", json={"childContexts": [exp_ctx]})
    assert cycle.status_code == 400
    missing = api.post(
        f"contexts/{exp}:addContextArtifactsAndExecutions", json={"artifacts": [f"{STORE}/artifacts/404"]}
    )
    assert missing.status_code == 400
    assert api.get("contexts/nope-404").status_code == 404
    assert api.get(f"{STORE}/contexts/x".replace(STORE, "../other")).status_code == 404
    op = ok(api.delete(f"contexts/{run.rsplit('/', 1)[1]}"))
    assert op["done"] and api.get(f"contexts/{run.rsplit('/', 1)[1]}").status_code == 404


def test_experiment_df_and_compare_command(local_stack, api):
    import google.auth
    from google.cloud import aiplatform
    from google.cloud.aiplatform import initializer

    exp, exp_ctx = new_experiment(api)
    for i in range(3):
        record_pipeline_run(
            api, exp_ctx, f"{exp}-run-{i}", {"epochs": i + 1, "base_model": "m"}, {"eval_status_accuracy": i / 4}
        )
    credentials, _ = google.auth.default()
    aiplatform.init(
        project=PROJECT,
        location=LOCATION,
        credentials=credentials,
        api_endpoint=local_stack.vertex_url,
        api_transport="rest",
    )
    try:
        df = aiplatform.get_experiment_df(exp)
    finally:
        initializer.global_config.__init__()
    assert sorted(df.run_name) == [f"{exp}-run-{i}" for i in range(3)]
    assert {"param.epochs", "param.base_model", "metric.eval_status_accuracy", "state"} <= set(df.columns)
    env = {**os.environ, **local_stack.env}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "compare",
            "--experiment",
            exp,
            "--project",
            PROJECT,
            "--location",
            LOCATION,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert all(f"{exp}-run-{i}" in out.stdout for i in range(3)), out.stdout


def test_metadata_and_jobs_survive_a_restart(tmp_path):
    from localvertex import LocalStack

    with LocalStack(tmp_path, bucket="local-bucket", project=PROJECT) as stack, api_client(stack) as api:
        _, exp_ctx = new_experiment(api)
        run = record_pipeline_run(api, exp_ctx, "kept-run", {"a": 1}, {"m": 2.0})
    with LocalStack(tmp_path, bucket="local-bucket", project=PROJECT) as stack, api_client(stack) as api:
        assert ok(api.get("contexts/kept-run"))["parentContexts"] == [exp_ctx]
        arts = ok(api.get("artifacts", params={"filter": f'in_context("{run}")'}))["artifacts"]
        assert arts[0]["metadata"] == {"m": 2.0}
