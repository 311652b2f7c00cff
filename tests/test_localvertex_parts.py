"""Unit tests of localvertex's parts, without a running stack: the worker protocol, the
runner's final-state rule, generateContent parsing, the path dependency, the body-size
middleware, and the module graph (no import cycles; a light training worker)."""

from __future__ import annotations

import ast
import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from localvertex import jobs as J
from localvertex.errors import RPC_ABORTED, RPC_CANCELLED, RPC_INTERNAL, RPC_INVALID_ARGUMENT, ApiError
from localvertex.generate import GenerationConfig, parse_generation_config, parse_prompt
from localvertex.jobs import protocol as P
from localvertex.jobs.runner import Stopped, settle
from localvertex.middleware import BodySizeLimitMiddleware
from localvertex.routes.deps import Location, location_path

PACKAGE = Path(__file__).resolve().parent.parent / "localvertex"
DONE = P.Done(epochs=[{"epoch": 1}], step_count=3, example_count=8, token_count=40, train_seconds=1.5)


# --------------------------------------------------------------------------- worker protocol


@pytest.mark.parametrize(
    "msg",
    [
        P.DataLoaded(stats={"tuningDatasetExampleCount": "8"}, validation_example_count=2),
        P.EpochFinished(stats={"epoch": 1, "step": 4, "train_loss": 0.5, "validation_loss": None}),
        DONE,
        P.Cancelled(),
        P.Failed(code=RPC_INVALID_ARGUMENT, message="Invalid dataset: gs://b/t.jsonl line 2: bad"),
    ],
)
def test_messages_round_trip_with_a_kind(msg):
    line = P.encode(msg)
    assert P.is_message(line) and f'"kind": "{msg.kind}"' in line
    assert P.decode(line) == msg


@pytest.mark.parametrize(
    "line",
    [
        P.PROTOCOL_PREFIX + '{"kind": "nope"}',
        P.PROTOCOL_PREFIX + '{"kind": "error", "code": 3}',
        P.PROTOCOL_PREFIX + '["error", 3, "old list form"]',
        P.PROTOCOL_PREFIX + "{not json",
    ],
)
def test_bad_messages_are_value_errors(line):
    with pytest.raises(ValueError):
        P.decode(line)


def test_worker_spec_round_trips_through_json():
    spec = P.WorkerSpec(
        job_id="1",
        project="p",
        storage_endpoint="http://127.0.0.1:1",
        training_uri="gs://b/t.jsonl",
        validation_uri=None,
        config={"epochs": 1},
        model_dir="/m",
        model_meta={"model": "m"},
    )
    assert P.WorkerSpec.from_json(spec.to_json()) == spec


# --------------------------------------------------------------------------- final state


def _running_job(state=J.RUNNING):
    job = J.build_job(
        {"baseModel": "gemini-3.5-flash", "supervisedTuningSpec": {"trainingDatasetUri": "gs://local-bucket/t.jsonl"}},
        "local-project",
        "us-central1",
    )
    job["state"] = state
    return job


@pytest.mark.parametrize(
    ("state", "result", "final", "code", "fragment"),
    [
        (J.RUNNING, DONE, J.SUCCEEDED, None, None),
        (J.RUNNING, P.Cancelled(), J.CANCELLED, RPC_CANCELLED, "cancelled"),
        (J.CANCELLING, DONE, J.CANCELLED, RPC_CANCELLED, "cancelled"),  # an accepted cancel wins
        (
            J.RUNNING,
            P.Failed(RPC_INVALID_ARGUMENT, "Invalid dataset: x"),
            J.FAILED,
            RPC_INVALID_ARGUMENT,
            "Invalid dataset",
        ),
        (J.RUNNING, Stopped(), J.FAILED, RPC_ABORTED, "stopped during training"),
        (J.RUNNING, None, J.FAILED, RPC_INTERNAL, "exited unexpectedly (exit code -9)"),
    ],
)
def test_settle(state, result, final, code, fragment):
    job = _running_job(state)
    settle(job, result, -9)
    assert job["state"] == final and job["endTime"]
    if code is None:
        assert "error" not in job
        assert job["tunedModel"]["endpoint"] == J.endpoint_name(job)
        assert job["_local"]["metrics"]["stepCount"] == 3  # served at /local/v1/...:epochs only
        assert "localTuningMetrics" not in job
        assert job["tuningDataStats"]["supervisedTuningDataStats"]["tuningStepCount"] == "3"
    else:
        assert job["error"]["code"] == code and fragment in job["error"]["message"]


# --------------------------------------------------------------------------- generateContent

IMAGE = {"fileData": {"mimeType": "image/png", "fileUri": "gs://b/x.png"}}


def test_parse_prompt_takes_the_last_image_of_the_last_user_turn():
    first = {"inlineData": {"mimeType": "image/png", "data": "aGk="}}
    prompt = parse_prompt(
        {
            "contents": [
                {"role": "user", "parts": [{"text": "a"}, first]},
                {"role": "model", "parts": [{"text": "b"}]},
                {"parts": [{"text": "c"}, first, IMAGE]},  # role defaults to user
            ]
        }
    )
    assert prompt.image_part == IMAGE
    assert (prompt.text, prompt.image_count) == ("a\nb\nc", 3)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ([], "JSON object"),
        ({"contents": []}, "non-empty list"),
        ({"contents": [{"role": "model", "parts": []}]}, "no user turn"),
        ({"contents": [{"role": "user", "parts": "x"}]}, "'parts' list"),
        ({"contents": [{"role": "user", "parts": ["x"]}]}, "part must be an object"),
        ({"contents": [{"role": "user", "parts": [{"text": "t"}]}]}, "no image part"),
    ],
)
def test_parse_prompt_errors(body, fragment):
    with pytest.raises(ApiError) as exc:
        parse_prompt(body)
    assert exc.value.http_code == 400 and fragment in exc.value.message


def _thinking(**config):
    return {"generationConfig": {"thinkingConfig": config}}


@pytest.mark.parametrize(
    ("base", "body", "fragment"),
    [
        # A Gemini 3 tuned endpoint takes a level it lists, never a budget.
        ("gemini-3.5-flash", _thinking(thinkingBudget=1024), "thinking_budget is not supported"),
        ("gemini-3.5-flash", _thinking(thinkingBudget=-1), "thinking_budget is not supported"),
        ("gemini-3.5-flash", _thinking(thinkingLevel="MINIMAL"), "thinking_level MINIMAL is not supported"),
        ("gemini-3.1-flash-lite", _thinking(thinkingLevel="ULTRA"), "thinking_level ULTRA is not supported"),
        ("gemini-3.5-flash", _thinking(thinkingLevel="LOW", thinkingBudget=0), "cannot both be set"),
        ("gemini-3.5-flash", _thinking(thinkingLevel="HIGH"), None),
        ("gemini-3.5-flash", _thinking(thinkingLevel="THINKING_LEVEL_UNSPECIFIED"), None),
        # A 2.5 tuned endpoint (a job tuned before the 2.5 retirement) takes a budget only.
        ("gemini-2.5-flash", _thinking(thinkingLevel="LOW"), "thinking_level is not supported"),
        ("gemini-2.5-flash", _thinking(thinkingBudget=24_577), "thinking budget (24577) is invalid"),
        ("gemini-2.5-pro", _thinking(thinkingBudget=0), "does not support setting thinking_budget to 0"),
        ("gemini-2.5-flash", _thinking(thinkingBudget=0), None),
        ("gemini-2.5-flash", _thinking(thinkingBudget=-1), None),
    ],
)
def test_thinking_control_follows_the_tuned_base_model(base, body, fragment):
    from localvertex.generate import check_thinking

    if fragment is None:
        check_thinking(body, base)
        return
    with pytest.raises(ApiError) as exc:
        check_thinking(body, base)
    assert exc.value.http_code == 400 and exc.value.status == "INVALID_ARGUMENT"
    assert fragment in exc.value.message, exc.value.message


@pytest.mark.parametrize(
    ("base", "level", "fragment"),
    [
        ("gemini-2.5-flash", "MEDIA_RESOLUTION_LOW", "takes no per-image media resolution"),
        ("gemini-2.5-pro", "MEDIA_RESOLUTION_HIGH", "takes no per-image media resolution"),
        ("gemini-3.5-flash", "MEDIA_RESOLUTION_ULTRA_HIGH", "not offered for gemini-3.5-flash"),
        ("gemini-3.5-flash", "MEDIA_RESOLUTION_LOW", None),
        ("gemini-3.1-flash-lite", "MEDIA_RESOLUTION_HIGH", None),
    ],
)
def test_part_media_resolution_follows_the_tuned_base_model(base, level, fragment):
    from localvertex.generate import check_media_resolution

    image = {**IMAGE, "mediaResolution": {"level": level}}
    prompt = parse_prompt({"contents": [{"role": "user", "parts": [{"text": "t"}, image]}]})
    assert prompt.levels == (level,)
    if fragment is None:
        check_media_resolution(prompt, base)
        return
    with pytest.raises(ApiError) as exc:
        check_media_resolution(prompt, base)
    assert exc.value.http_code == 400 and fragment in exc.value.message, exc.value.message


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (None, GenerationConfig()),
        ({"temperature": 0.7, "maxOutputTokens": 5000, "seed": "3"}, GenerationConfig(0.7, 1024, 3)),
        ({"temperature": None, "candidateCount": 1}, GenerationConfig()),
        ("x", "must be an object"),
        ({"temperature": 2.5}, "in [0, 2]"),
        ({"maxOutputTokens": 0}, "must be positive"),
        ({"maxOutputTokens": float("inf")}, "integers"),
        ({"candidateCount": 2}, "must be 1"),
    ],
)
def test_parse_generation_config(config, expected):
    body = {"contents": []} if config is None else {"generationConfig": config}
    if isinstance(expected, GenerationConfig):
        assert parse_generation_config(body) == expected
        return
    with pytest.raises(ApiError) as exc:
        parse_generation_config(body)
    assert exc.value.http_code == 400 and expected in exc.value.message


# --------------------------------------------------------------------------- path dependency


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("v2", "p", "l"), 404),
        (("v1", "Bad_Project", "l"), 400),
        (("v1beta1", "p", "us-central1\n"), 400),
    ],
)
def test_location_path_refuses(args, code):
    with pytest.raises(ApiError) as exc:
        asyncio.run(location_path(*args))  # an async dependency: no thread hand-off per request
    assert exc.value.http_code == code


def test_location_path_owns_only_its_jobs():
    loc = asyncio.run(location_path("v1", "local-project", "us-central1"))
    assert loc == Location("local-project", "us-central1")
    assert loc.owns(_running_job())
    assert not Location("local-project", "europe-west4").owns(_running_job())
    # Its endpoints answer on the "us" multi-region endpoint only (a Gemini 3 model tuned in us-central1).
    assert Location("local-project", "us").serves(_running_job())
    assert not loc.serves(_running_job()) and not Location("local-project", "eu").serves(_running_job())


# --------------------------------------------------------------------------- body size


def _asgi_post(app, chunks: list[bytes]) -> tuple[int, bytes]:
    """POST a chunked body (no Content-Length) through an ASGI app: (status, app's body)."""
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    sent = []

    async def receive():
        return messages.pop(0)

    async def send(msg):
        sent.append(msg)

    scope = {"type": "http", "method": "POST", "path": "/x", "headers": []}
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


async def _echo(scope, receive, send):
    body = b""
    while True:
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.mark.parametrize(
    ("chunks", "status"),
    [
        ([b"0123", b"4567"], 200),
        ([b"0123", b"4567", b"89ab"], 400),  # Google's front end: INVALID_ARGUMENT, not 413
        ([b"0123456789ab"], 400),
    ],
)
def test_chunked_bodies_are_capped(chunks, status):
    got, body = _asgi_post(BodySizeLimitMiddleware(_echo, max_body=10), chunks)
    assert got == status
    if status == 200:
        assert body == b"".join(chunks)
    else:
        assert b'"status":"INVALID_ARGUMENT"' in body
        assert b"Request payload size exceeds the limit: 10 bytes." in body


# --------------------------------------------------------------------------- module graph


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """localvertex modules that ``path`` imports anywhere (lazy imports included)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            out |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}
    return {m for m in out if m in modules and m != name}


def test_no_import_cycles():
    files = list(PACKAGE.rglob("*.py"))
    modules = {_module_name(p) for p in files}
    graph = {_module_name(p): _imports(p, modules) for p in files}
    done, path = set(), []

    def visit(module):
        if module in path:
            pytest.fail("import cycle: " + " -> ".join(path[path.index(module) :] + [module]))
        if module in done:
            return
        path.append(module)
        for dep in sorted(graph[module]):
            visit(dep)
        path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)
    assert "localvertex.stack" not in graph["localvertex.storage"]


def test_the_training_worker_does_not_import_the_web_server():
    code = (
        "import sys, localvertex.jobs.worker; "
        "print(sorted(m for m in ('fastapi', 'starlette', 'uvicorn', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PACKAGE.parent)
    assert out.stdout.strip() == "[]"
