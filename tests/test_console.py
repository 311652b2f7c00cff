"""The console over HTTP (httpx, no browser): its guards against the real local Vertex AI
(login token, session cookie, Host, CSRF, cross-site POSTs, headers), its pages against a
stand-in for the REST API (escaping of user text, the run page's DAG and rendered
artifacts, the PipelineJob that the create form sends, experiment rows, schedules), and its
parts (the DAG layout, the form's checks, which are ``make submit``'s).

The whole path against real runs is in test_console_browser.py (slow)."""

import json
import re
from pathlib import Path

import httpx
import pytest
import yaml

from localvertex.console import dag, run_form
from localvertex.console.security import ARTIFACT_CSP, COOKIE, read_keys

COMPILED = Path(__file__).resolve().parent.parent / "compiled" / "visual_defect_sft.yaml"
XSS = "<script>alert(1)</script>"
PARENT = "projects/local-project/locations/us-central1"


# ------------------------------------------------------------------ guards, on the real server
@pytest.fixture(scope="module")
def real(local_stack):
    """A client of the real server, logged in (the login URL's cookie)."""
    token = read_keys(local_stack.data_dir / "auth").login_token
    with httpx.Client(base_url=local_stack.vertex_url, timeout=60) as client:
        resp = client.get(f"/console/login?token={token}")
        assert resp.status_code == 303 and resp.headers["location"] == "/console/runs"
        cookie = resp.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
        yield client


def _csrf(client: httpx.Client, path: str = "/console/templates") -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', client.get(path).text).group(1)


def test_login_token_required(local_stack):
    with httpx.Client(base_url=local_stack.vertex_url) as anonymous:
        page = anonymous.get("/console/runs")
        assert page.status_code == 401 and "make console" in page.text
        wrong = anonymous.get("/console/login?token=not-the-token")
        assert wrong.status_code == 403 and "set-cookie" not in wrong.headers
        forged = anonymous.get("/console/runs", cookies={COOKIE: "abc.9999999999.0123"})
        assert forged.status_code == 401


def test_every_page_answers_with_the_security_headers(real):
    for path in (
        "/console/runs",
        "/console/templates",
        "/console/create",
        "/console/experiments",
        "/console/schedules",
    ):
        resp = real.get(path)
        assert resp.status_code == 200, (path, resp.text[:300])
        csp = resp.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert resp.headers["x-content-type-options"] == "nosniff"
        assert "<script>" not in resp.text and 'src="http' not in resp.text, "no inline script, no CDN"
    assert real.get("/console/static/console.js").status_code == 200


def test_foreign_host_refused(real, local_stack):
    """DNS rebinding: a page of evil.example resolved to 127.0.0.1 sends its own Host."""
    token = read_keys(local_stack.data_dir / "auth").login_token
    for path in ("/console/runs", f"/console/login?token={token}"):
        resp = real.get(path, headers={"Host": "evil.example:8080"})
        assert resp.status_code == 403 and "127.0.0.1 or localhost" in resp.text
    assert real.get("/console/runs", headers={"Host": "localhost:1234"}).status_code == 200


def test_post_needs_this_sessions_csrf_token_and_same_site(real):
    form = {"csrf": _csrf(real), "checked_in": "1", "tags": "csrf-test"}
    for data, headers in (
        ({k: v for k, v in form.items() if k != "csrf"}, {}),  # no token
        ({**form, "csrf": "0" * 40}, {}),  # another session's
        (form, {"Origin": "http://evil.example"}),  # a cross-site form post
        (form, {"Sec-Fetch-Site": "cross-site"}),
    ):
        resp = real.post("/console/templates/upload", data=data, headers=headers)
        assert resp.status_code == 403, (headers, resp.text[:200])
    with httpx.Client(base_url=str(real.base_url)) as stranger:  # no session at all
        assert stranger.post("/console/templates/upload", data=form).status_code == 401
    cancel = real.post("/console/runs/123/cancel", data={"csrf": "nope"})
    assert cancel.status_code == 403


def test_create_form_errors_next_to_their_fields(real):
    page = real.get("/console/create").text
    assert 'name="base_model"' in page and "gemini-3.5-flash" in page and 'name="thinking"' in page
    resp = real.post(
        "/console/create",
        data={
            "csrf": _csrf(real, "/console/create"),
            "project": "local-project",
            "location": "us-central1",
            "bucket": "gs://local-bucket",
            "num_images": "0",
            "epoch_count": "two",
            "base_model": "gemini-2.5-pro",
            "experiment": "Bad Name",
            "labels": "ok=yes, Bad=1",
        },
    )
    assert resp.status_code == 400
    assert "must be at least 1" in _field_error(resp.text, "num_images")
    assert "not a valid int" in _field_error(resp.text, "epoch_count")
    assert "lowercase letters" in resp.text and "labels are key=value" in resp.text
    listed = real.get("/console/runs").text
    assert "No runs" in listed or "Bad Name" not in listed, "nothing was created"


def _field_error(page: str, name: str) -> str:
    match = re.search(rf'<span class="error" id="error-{name}">([^<]*)</span>', page)
    return match.group(1) if match else ""


# ------------------------------------------------------------------ pages, against a stand-in API
SPEC = {
    "pipelineInfo": {"name": "toy"},
    "root": {
        "inputDefinitions": {"parameters": {"a": {"parameterType": "NUMBER_INTEGER", "defaultValue": 1.0}}},
        "dag": {
            "tasks": {
                "add": {"taskInfo": {"name": "add"}, "componentRef": {"name": "comp-add"}},
                "show": {
                    "taskInfo": {"name": "show"},
                    "componentRef": {"name": "comp-show"},
                    "dependentTasks": ["add"],
                },
            }
        },
    },
    "components": {"comp-add": {}, "comp-show": {}},
}


def _job(job_id: str, display: str, state: str = "PIPELINE_STATE_SUCCEEDED", **extra) -> dict:
    return {
        "name": f"{PARENT}/pipelineJobs/{job_id}",
        "displayName": display,
        "state": state,
        "createTime": "2026-12-07T02:00:00Z",
        "startTime": "2026-12-07T02:00:01Z",
        "endTime": "2026-12-07T02:03:05Z",
        "labels": {"trigger": "console", "experiment": "exp"},
        "pipelineSpec": SPEC,
        "runtimeConfig": {"parameterValues": {"a": 3, "notify_webhook_url": "https://hooks.example/secret"}},
        **extra,
    }


def _artifact(kind: str, uri: str, metadata: dict) -> dict:
    return {
        "artifacts": [
            {
                "name": f"{PARENT}/metadataStores/default/artifacts/{kind}",
                "schemaTitle": kind,
                "uri": uri,
                "metadata": metadata,
            }
        ]
    }


DETAILED = _job(
    "run1",
    f"nightly {XSS}",
    jobDetail={
        "pipelineRunContext": {"name": f"{PARENT}/metadataStores/default/contexts/run1"},
        "taskDetails": [
            {"taskName": "add", "state": "SUCCEEDED", "startTime": "2026-12-07T02:00:02Z", "endTime": "2026-12-07T02:00:09Z",
             "executorDetail": {"containerDetail": {"mainJob": f"{PARENT}/customJobs/4242"}},
             "execution": {"metadata": {"input:a": 3, "output:gcp_resources": f'{{"resources": [{{"resourceUri": "https://x/v1/{PARENT}/tuningJobs/42"}}]}}'}},
             "outputs": {
                 "metrics": _artifact("system.Metrics", "gs://b/metrics", {"accuracy": 0.9166666, "display_name": "m"}),
                 "matrix": _artifact("system.ClassificationMetrics", "gs://b/cm", {"confusionMatrix": {"annotationSpecs": [{"displayName": "Pass"}, {"displayName": XSS}], "rows": [{"row": [5, 1]}, {"row": [0, 4]}]}}),
             }},
            {"taskName": "show", "state": "FAILED", "startTime": "2026-12-07T02:00:10Z", "error": {"message": f"boom {XSS}"},
             "outputs": {
                 "page": _artifact("system.Markdown", "gs://b/summary.md", {}),
                 "report": _artifact("system.HTML", "gs://b/report.html", {}),
             }},
        ],
    },
)  # fmt: skip


CHAMPION = {
    "inspector": "qc",
    "run": "run1",
    "endpoint": f"{PARENT}/endpoints/77",
    "base_model": "gemini-3.5-flash",
    "prompt": "Inspect this part.",
    "system_instruction": "You are a QC inspector.",
    "golden_id": "g1",
    "golden": {"status_accuracy": 1.0, "miss_rate": 0.0},
    "decision_reason": "no champion yet",
    "promoted_at": "2026-12-07T02:00:00Z",
}
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


class FakeVertex:
    """Answers the console's calls as the published API shapes them; records what it was sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        # A GET's query (filters, pages) is recorded where a POST's body is.
        body = json.loads(request.content) if request.content and method != "GET" else dict(request.url.params)
        self.sent.append((method, path, body))
        assert request.headers["authorization"].startswith("Bearer lv1."), "the console calls with a bearer token"
        answer = self.answer(method, path, dict(request.url.params), body)
        if isinstance(answer, httpx.Response):
            return answer
        return httpx.Response(200, json=answer)

    def answer(self, method, path, params, body):
        if path.endswith("/pipelineJobs") and method == "GET":
            jobs = [DETAILED, _job("run2", "second", "PIPELINE_STATE_RUNNING", scheduleName="s")]
            if params.get("pageToken", "").startswith("T"):  # the paging test's pages: T1, T2, T3 (the last)
                later = {"T1": "T2", "T2": "T3"}.get(params["pageToken"])
                return {"pipelineJobs": jobs, **({"nextPageToken": later} if later else {})}
            return {"pipelineJobs": jobs, **({"nextPageToken": "T1"} if params.get("pageSize") == "10" else {})}
        if path.endswith("/pipelineJobs") and method == "POST":
            return {**body, "name": f"{PARENT}/pipelineJobs/{params['pipelineJobId']}"}
        if "/pipelineJobs/" in path:
            job_id = path.rsplit("/", 1)[-1]
            return (
                DETAILED
                if job_id == "run1"
                else _job(
                    job_id,
                    "new",
                    jobDetail={"pipelineRunContext": {"name": f"{PARENT}/metadataStores/default/contexts/{job_id}"}},
                )
            )
        if "/kfp/" in path and path.endswith("/latest"):
            return httpx.Response(200, text=getattr(self, "answer_template", ""))
        if path.endswith("/tuningJobs/42"):
            return {"state": "JOB_STATE_RUNNING", "supervisedTuningSpec": {"hyperParameters": {"epochCount": "4"}}}
        if path.endswith("/tuningJobs/42:epochs"):
            return {"epochs": [{"epoch": 1, "train_loss": 0.5}]}
        if path.endswith("/o/summary.md"):
            return httpx.Response(200, text=f"# Summary\n\n{XSS} and **bold**")
        if path.endswith("/o/report.html"):
            return httpx.Response(200, text="<html><body><h1>Report</h1><script>steal()</script></body></html>")
        if path.endswith("/storage/v1/b/local-bucket/o"):
            prefix = params.get("prefix", "")
            names = ["inspectors/qc/champion.json", "inspectors/qc/history/20261207T020000Z-run1.json"]
            return {"items": [{"name": n} for n in names if n.startswith(prefix)]}
        if path.endswith("/o/inspectors%2Fqc%2Fchampion.json") or path.endswith("/o/inspectors/qc/champion.json"):
            return CHAMPION
        if "/o/inspectors" in path and "history" in path:
            return CHAMPION
        if path == "/v2/entries:list":  # newest first, as the console asks
            lines = [f"step {i}" for i in range(3)] + [f"printed {XSS}"]
            return {"entries": [{"textPayload": t, "severity": "INFO"} for t in reversed(lines)]}
        if path.endswith(":generateContent"):
            self.asked = body
            return {"candidates": [{"content": {"parts": [{"text": f"Status: Defect - Scratch {XSS}"}]}}]}
        if path.endswith("/storage/v1/b"):
            return {"items": [{"name": "local-bucket"}]}
        if path.endswith("/contexts") and method == "GET":
            return self.contexts(params["filter"])
        if path.endswith("/executions"):
            return {
                "executions": [{"state": "COMPLETE", "metadata": {"input:a": 3 if "run1" in params["filter"] else 5}}]
            }
        if path.endswith("/artifacts"):
            acc = 0.75 if "run1" in params["filter"] else 0.875
            return {"artifacts": [{"metadata": {"eval_status_accuracy": acc, "eval_defect_type_accuracy": acc - 0.1}}]}
        if "/contexts/" in path and method == "GET":
            return httpx.Response(404, json={"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}})
        if path.endswith("/schedules") and method == "GET":
            return {
                "schedules": [
                    {
                        "name": f"{PARENT}/schedules/7",
                        "displayName": f"nightly {XSS}",
                        "cron": "0 2 * * *",
                        "state": "ACTIVE",
                        "nextRunTime": "2026-12-08T02:00:00Z",
                        "startedRunCount": "3",
                        "maxConcurrentActiveRunCount": "1",
                    }
                ]
            }
        return {}

    def contexts(self, filter_text: str) -> dict:
        if "system.Experiment\"" in filter_text and "parent_contexts" not in filter_text:
            return {
                "contexts": [
                    {
                        "name": f"{PARENT}/metadataStores/default/contexts/exp",
                        "displayName": "exp",
                        "createTime": "2026-12-01T00:00:00Z",
                    }
                ]
            }
        return {
            "contexts": [
                {"name": f"{PARENT}/metadataStores/default/contexts/run1", "displayName": "run1", "schemaTitle": "system.PipelineRun", "createTime": "2026-12-06T02:00:00Z"},
                {"name": f"{PARENT}/metadataStores/default/contexts/run3", "displayName": "run3", "schemaTitle": "system.PipelineRun", "createTime": "2026-12-07T02:00:00Z"},
            ]
        }  # fmt: skip


@pytest.fixture()
def fake(tmp_path):
    """The console of a server that is never started, its API calls answered by FakeVertex."""
    from fastapi.testclient import TestClient

    from localvertex.server import LocalVertex

    lv = LocalVertex(tmp_path, "http://127.0.0.1:9")
    console = next(r for r in lv.app.routes if getattr(r, "path", "") == "/console").app
    api = FakeVertex()
    console.state.console.transport = httpx.MockTransport(api)
    client = TestClient(lv.app, base_url="http://127.0.0.1:8080", follow_redirects=False)
    assert client.get(f"/console/login?token={read_keys(tmp_path / 'auth').login_token}").status_code == 303
    client.api = api
    yield client
    lv.close()


def test_runs_page_escapes_names_and_shows_trigger(fake):
    page = fake.get("/console/runs").text
    assert XSS not in page and "nightly &lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert ">console<" in page and ">schedule<" in page and "3 min 04 s" in page
    filtered = fake.get("/console/runs", params={"state": "RUNNING", "label": "experiment=exp", "page_size": 10})
    assert filtered.status_code == 200
    method, path, query = fake.api.sent[-1]
    assert path.endswith("/pipelineJobs") and query["pageSize"] == "10" and query["orderBy"] == "create_time desc"
    assert query["filter"] == 'state="PIPELINE_STATE_RUNNING" AND labels.experiment="exp"'
    assert fake.get("/console/runs", params={"label": 'x" OR name="y'}).text.count("label filter") == 1


def _pager(page: str) -> dict[str, str]:
    """{link text: href} of the runs page's pager."""
    import html
    import re

    pager = page[page.index('<p class="pager">') :].split("</p>", 1)[0]
    return {text: html.unescape(href) for href, text in re.findall(r'<a[^>]* href="([^"]*)">([^<]*)</a>', pager)}


def test_runs_paging_goes_back_with_the_tokens_in_the_links(fake):
    first = _pager(fake.get("/console/runs", params={"label": "experiment=exp", "page_size": 10}).text)
    assert set(first) == {"Next page"}, "the first page has no way back"
    second = _pager(fake.get(first["Next page"]).text)
    assert second["Previous page"] == second["First page"] == "/console/runs?label=experiment%3Dexp&page_size=10"
    third_url = second["Next page"]
    assert third_url == "/console/runs?label=experiment%3Dexp&page_size=10&page_token=T2&back=&back=T1"
    assert fake.get(third_url).status_code == 200 and fake.api.sent[-1][2]["pageToken"] == "T2"
    third = _pager(fake.get(third_url).text)
    assert third["Previous page"] == "/console/runs?label=experiment%3Dexp&page_size=10&page_token=T1&back="
    assert _pager(fake.get(third["Previous page"]).text)["Previous page"] == second["First page"]
    assert "page 3" in fake.get(third_url).text
    last = _pager(fake.get(third["Next page"]).text)
    assert "Next page" not in last and last["Previous page"] == third_url, "back to the page it came from"


def test_run_page_draws_the_dag_and_renders_artifacts(fake):
    page = fake.get("/console/runs/run1").text
    assert XSS not in page, "display name, task error, matrix labels and Markdown are all escaped"
    assert 'data-task="add"' in page and 'class="node state-succeeded"' in page and "state-failed" in page
    assert "0.9167" in page and 'class="matrix"' in page and "&lt;script&gt;" in page
    assert "<h1>Summary</h1>" in page and "<strong>bold</strong>" in page
    assert "(set, not shown)" in page and "hooks.example" not in page, "no webhook URL on the page"
    assert "tuningJobs/42" in page and "1 of 4 epochs done" in page
    assert 'sandbox src="/console/runs/run1/artifact?uri=gs%3A//b/report.html"' in page
    live = fake.get("/console/runs/run1/live.json").json()
    assert live["tasks"]["show"]["state"] == "failed" and live["tuning"]["done"] == 1


def test_run_page_shows_each_tasks_log_tail_read_from_cloud_logging(fake):
    page = fake.get("/console/runs/run1").text
    asked = [body for method, path, body in fake.api.sent if path == "/v2/entries:list"]
    assert asked == [
        {
            "resourceNames": [f"projects/{PARENT.split('/')[1]}"],
            "filter": 'resource.type="ml_job" AND resource.labels.job_id="4242"',
            "orderBy": "timestamp desc",
            "pageSize": 50,
        }
    ], "one call, for the one task that ran a container"
    assert XSS not in page
    assert "step 0\nstep 1\nstep 2\nprinted &lt;script&gt;alert(1)&lt;/script&gt;</pre>" in page, "oldest first"
    assert "(no log: the task has not run a container)" in page  # "show" names no CustomJob
    live = fake.get("/console/runs/run1/live.json").json()
    assert live["logs"] == {}, "no task is running: no log is read"
    live = fake.get("/console/runs/run1/live.json", params={"logs": "add,nope"}).json()
    assert live["logs"] == {"add": ["step 0", "step 1", "step 2", f"printed {XSS}"]}


def test_html_artifact_is_sandboxed_and_only_the_runs_own(fake):
    report = fake.get("/console/runs/run1/artifact", params={"uri": "gs://b/report.html"})
    assert report.status_code == 200 and report.headers["content-security-policy"] == ARTIFACT_CSP
    assert fake.get("/console/runs/run1/artifact", params={"uri": "gs://b/other.html"}).status_code == 404


def test_create_sends_the_job_as_the_sdk_and_links_the_experiment(fake):
    page = fake.get("/console/create").text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
    form = {
        "csrf": csrf,
        "display_name": f"mine {XSS}",
        "experiment": "exp",
        "labels": "team=qc",
        "enable_caching": "1",
        "project": "local-project",
        "location": "us-central1",
        "bucket": "gs://local-bucket",
        "num_images": "40",
        "epoch_count": "2",
    }
    refused = fake.post("/console/create", data={**form, "experiment": "visual-defect-sft"})
    assert refused.status_code == 400 and "the pipeline&#39;s own name" in refused.text
    resp = fake.post("/console/create", data=form)
    assert resp.status_code == 303, (
        resp.status_code,
        re.findall(r"class=\"(?:error|error-box)\"[^>]*>([^<]*)", resp.text),
    )
    (created,) = [b for m, p, b in fake.api.sent if m == "POST" and p.endswith("/pipelineJobs")]
    assert created["displayName"] == f"mine {XSS}"
    assert created["labels"] == {
        "team": "qc",
        "pipeline": "visual-defect-sft",
        "trigger": "console",
        "experiment": "exp",
    }
    config = created["runtimeConfig"]
    assert config["gcsOutputDirectory"] == "gs://local-bucket/pipeline_root"
    assert config["parameterValues"] == {
        "project": "local-project",
        "bucket": "gs://local-bucket",
        "num_images": 40,
        "epoch_count": 2,
    }, "only what differs from the spec's defaults, and the required values, as make submit sends"
    assert created["pipelineSpec"]["pipelineInfo"]["name"] == "visual-defect-sft"
    linked = [(p, b) for m, p, b in fake.api.sent if p.endswith(":addContextChildren")]
    assert linked and linked[0][0].endswith("/contexts/exp:addContextChildren")
    assert linked[0][1]["childContexts"][0].endswith(resp.headers["location"].rsplit("/", 1)[-1])


def test_experiment_rows_chart_and_diff(fake):
    page = fake.get("/console/experiments/exp").text
    assert "metric.eval_status_accuracy" in page and "0.875" in page and '<circle class="dot series-0"' in page
    filters = [q.get("filter", "") for m, p, q in fake.api.sent if m == "GET"]
    parent = f"{PARENT}/metadataStores/default/contexts/exp"
    assert (
        f'(schema_title="system.ExperimentRun" OR schema_title="system.PipelineRun") AND parent_contexts:"{parent}"'
        in filters
    )
    assert 'labels.experiment="exp"' in filters, "and the runs labelled with it, as make compare adds them"
    diff = fake.get("/console/experiments/exp/diff", params=[("run", "run1"), ("run", "run3")]).text
    assert 'class="differs"><th>param.a</th><td>3</td><td>5</td>' in diff
    assert fake.get("/console/experiments/exp%22%20OR").status_code == 400


def test_schedules_page(fake):
    page = fake.get("/console/schedules").text
    assert XSS not in page and "2026-12-08 02:00:00 UTC" in page and ">3<" in page and "Pause…" in page


# ------------------------------------------------------------------ parts
def test_dag_of_the_compiled_pipeline():
    graph = dag.layout(yaml.safe_load(COMPILED.read_text()))
    keys = {n.key for n in graph.nodes}
    assert {"synthesize-images", "wait-for-tuning", "promote-champion", "notify-run"} <= keys
    assert "exit-handler-1" not in keys and "condition-2" not in keys, "groups are flattened"
    layer = {n.key: n.layer for n in graph.nodes}
    assert layer["split-manifest"] > layer["synthesize-images"] and layer["notify-run"] == max(layer.values())
    edges = {(a.key, b.key) for a, b in graph.edges}
    assert ("decide-promotion", "promote-champion") in edges and ("promote-champion", "notify-run") in edges
    assert ("split-manifest", "build-tuning-jsonl") not in edges, "an edge another path implies is not drawn"


def test_form_checks_are_make_submits():
    fields = run_form.build_fields(yaml.safe_load(COMPILED.read_text()), {"project": "p", "bucket": "gs://b"})
    by = {f.name: f for f in fields}
    assert by["bucket"].required and by["base_model"].choices and by["thinking"].open_choices
    assert all(v != "gemini-2.5-pro" for v, _ in by["base_model"].choices), "retired models are not offered"
    assert by["notify_webhook_url"].secret and by["notify_webhook_secret"].secret
    assert not by["max_training_tokens"].secret and by["max_training_tokens"].text == "0"
    run = run_form.RunForm(
        fields,
        submitted={
            "project": "p",
            "bucket": "gs://b",
            "train_fraction": "0.9",
            "validation_fraction": "0.2",
            "thinking": "4096",
            "defect_ratio": "1.5",
        },
    )
    run_form.check_run_form(run)
    errors = {f.name: f.error for f in fields if f.error}
    assert "defect_ratio" in errors and "[0, 1]" in errors["defect_ratio"]
    assert "thinking" in errors and "thinking level" in errors["thinking"], "a budget for a Gemini 3 model"
    assert "train_fraction" in errors, "the cross-field check lands on the first field it names"
    assert run_form.parse_labels("a=b\nc=d")[0] == {"a": "b", "c": "d"}
    assert run_form.parse_labels("trigger=x")[1]


def test_run_again_prefills_the_runs_values_and_template(fake):
    DETAILED["templateUri"] = "http://127.0.0.1:8080/kfp/us-central1/local-project/local-repo/toy/latest"
    try:
        fake.api.answer_template = yaml.safe_dump(SPEC)
        page = fake.get("/console/create", params={"from_run": "run1"}).text
    finally:
        del DETAILED["templateUri"]
    downloads = [p for m, p, _ in fake.api.sent if p.endswith("/local-repo/toy/latest")]
    assert downloads, "the form is the run's template's"
    assert 'id="p-a" name="a" value="3"' in page and 'name="experiment" value="exp"' in page


def test_inspector_asks_the_champion_as_make_inspect(fake):
    page = fake.get("/console/inspector").text
    assert "Champion of qc" in page and f"{PARENT}/endpoints/77" in page and "no champion yet" in page
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
    answer = fake.post(
        "/console/inspector/ask", data={"csrf": csrf, "name": "qc"}, files={"photo": ("part.png", PNG, "image/png")}
    ).text
    assert "Defect: Scratch" in answer and XSS not in answer, "the model's answer is escaped"
    asked = fake.api.asked
    assert asked["contents"][0]["parts"][0] == {"text": "Inspect this part."}
    assert asked["contents"][0]["parts"][1]["inlineData"]["mimeType"] == "image/png"
    assert asked["systemInstruction"] == {"parts": [{"text": "You are a QC inspector."}]}
    assert asked["generationConfig"] == {"temperature": 0.0, "thinkingConfig": {"thinkingLevel": "LOW"}}
    not_image = fake.post(
        "/console/inspector/ask", data={"csrf": csrf}, files={"photo": ("x.png", b"<svg onload=x>", "image/png")}
    )
    assert not_image.status_code == 400 and "PNG, JPEG" in not_image.text
