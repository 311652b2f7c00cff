"""The local Vertex AI REST server (FastAPI).

Serves, under both ``/v1/`` and ``/v1beta1/``, the slice of Vertex AI that
``google-genai`` uses for supervised tuning and for prediction on tuned endpoints, plus a
``/token`` endpoint that plays the OAuth token server for the fake service-account key in
``<data_dir>/credentials.json``. See README.md for the routes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import math
import os
import secrets
import threading
import time
import urllib.parse
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import jobs as J
from .jobs import ApiError, invalid, not_found
from .datasets import camelize, decode_b64
from .storage import GcsReader, InvalidUri, ObjectNotFound, parse_gs_uri

log = logging.getLogger("localvertex.server")

API_VERSIONS = ("v1", "v1beta1")
DEFAULT_MAX_BODY = 32 * 1024 * 1024  # 20 MB image as base64 is ~27 MB
TOKEN_TTL_S = 3600
_HTTP_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 409: "FAILED_PRECONDITION",
                413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
                501: "UNIMPLEMENTED", 503: "UNAVAILABLE"}


def error_body(code: int, message: str, status: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message,
                      "status": status or _HTTP_STATUS.get(code, "UNKNOWN")}}


def error_response(code: int, message: str, status: str | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message, status), status_code=code)


# --------------------------------------------------------------------------- auth

def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


class Auth:
    """Fake service-account key + an OAuth token endpoint that accepts JWTs signed by it.

    Access tokens are HMAC-signed (secret kept in the data dir), so they survive a server
    restart on the same data dir and are never stored or logged.
    """

    def __init__(self, data_dir: Path, project: str) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.project = project
        self.dir = Path(data_dir) / "auth"
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        key_path = self.dir / "private_key.pem"
        if not key_path.exists():
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
            _write_private(key_path, pem)
        self.private_pem = key_path.read_bytes()
        self.public_key = serialization.load_pem_private_key(self.private_pem, None).public_key()
        secret_path = self.dir / "token_secret"
        if not secret_path.exists():
            _write_private(secret_path, secrets.token_bytes(32))
        self._secret = secret_path.read_bytes()
        self.client_email = f"local@{project}.iam.gserviceaccount.com"

    def write_credentials(self, path: Path, token_uri: str) -> Path:
        data = {
            "type": "service_account",
            "project_id": self.project,
            "private_key_id": "local",
            "private_key": self.private_pem.decode("ascii"),
            "client_email": self.client_email,
            "client_id": "1",
            "auth_uri": token_uri,
            "token_uri": token_uri,
        }
        _write_private(path, json.dumps(data, indent=1).encode("utf-8"))
        return path

    def verify_assertion(self, assertion: str) -> dict[str, Any]:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            header_b64, payload_b64, sig_b64 = assertion.split(".")
            header = json.loads(_b64url_decode(header_b64))
            payload = json.loads(_b64url_decode(payload_b64))
            sig = _b64url_decode(sig_b64)
        except (ValueError, binascii.Error):
            raise ValueError("malformed JWT") from None
        if not isinstance(header, dict) or not isinstance(payload, dict):
            raise ValueError("malformed JWT: header and payload must be JSON objects")
        if header.get("alg") != "RS256":
            raise ValueError("JWT must be RS256")
        try:
            self.public_key.verify(sig, f"{header_b64}.{payload_b64}".encode("ascii"),
                                   padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise ValueError("JWT signature does not match the local key") from None
        exp = payload.get("exp")
        if isinstance(exp, (int, float)) and exp < time.time() - 300:
            raise ValueError("JWT expired")
        return payload

    def issue(self) -> str:
        payload = _b64url(json.dumps({"exp": int(time.time()) + TOKEN_TTL_S,
                                      "n": secrets.token_hex(8)}).encode())
        sig = _b64url(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())
        return f"lv1.{payload}.{sig}"

    def check(self, token: str) -> bool:
        try:
            prefix, payload, sig = token.split(".")
        except ValueError:
            return False
        if prefix != "lv1":
            return False
        want = _b64url(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(want, sig):
            return False
        try:
            exp = json.loads(_b64url_decode(payload))["exp"]
        except (ValueError, KeyError, binascii.Error):
            return False
        return exp > time.time()


# --------------------------------------------------------------------------- prediction

@dataclass
class _Pending:
    image: Any
    future: asyncio.Future


class Predictor:
    """Loads tuned models lazily (LRU cache per endpoint) and batches greedy requests.

    ``generate`` runs on one dedicated thread so the event loop never blocks; requests
    that arrive while a batch is running are gathered into the next batch.
    """

    MAX_BATCH = 64
    GATHER_S = 0.003

    def __init__(self, models_dir: Path, cache_size: int = 4) -> None:
        self.models_dir = Path(models_dir)
        self.cache_size = cache_size
        self._models: OrderedDict[str, Any] = OrderedDict()
        self._load_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="localvertex-generate")
        self._queues: dict[tuple, list[_Pending]] = {}
        self._tasks: dict[tuple, asyncio.Task] = {}

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._models.clear()

    def model(self, model_id: str):
        with self._load_lock:
            if model_id in self._models:
                self._models.move_to_end(model_id)
                return self._models[model_id]
        path = self.models_dir / J.check_id(model_id, "model id")
        if not path.is_dir():
            raise not_found(f"model files for {model_id} are missing")
        from .model import InspectorModel  # torch: imported on first use only

        model = InspectorModel.load(path)
        with self._load_lock:
            self._models[model_id] = model
            while len(self._models) > self.cache_size:
                self._models.popitem(last=False)
        return model

    async def generate(self, model_id: str, image: Any, temperature: float,
                       max_new_tokens: int | None, seed: int | None) -> tuple[str, str]:
        """Return (text, finishReason)."""
        loop = asyncio.get_running_loop()
        kwargs: dict[str, Any] = {"temperature": temperature}
        if max_new_tokens is not None:
            kwargs["max_new_tokens"] = max_new_tokens
        if temperature > 0 or seed is not None:
            # Sampling: one request per call so a seed gives the same answer every time.
            if seed is not None:
                kwargs["seed"] = seed
            out = await loop.run_in_executor(self._executor, self._run, model_id, [image], kwargs)
            return out[0]
        key = (model_id, max_new_tokens)
        fut = loop.create_future()
        self._queues.setdefault(key, []).append(_Pending(image, fut))
        task = self._tasks.get(key)
        if task is None or task.done():
            self._tasks[key] = loop.create_task(self._drain(key, kwargs))
        return await fut

    def _run(self, model_id: str, images: list, kwargs: dict) -> list[tuple[str, str]]:
        model = self.model(model_id)
        limit = kwargs.get("max_new_tokens")
        return [(text, _finish_reason(text, limit))
                for text in model.generate(images, **kwargs)]

    async def _drain(self, key: tuple, kwargs: dict) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(self.GATHER_S)
        pending = self._queues.get(key)
        while pending:
            batch, pending[:] = pending[:self.MAX_BATCH], pending[self.MAX_BATCH:]
            try:
                answers = await loop.run_in_executor(self._executor, self._run, key[0],
                                                     [p.image for p in batch], kwargs)
                for p, answer in zip(batch, answers):
                    if not p.future.done():
                        p.future.set_result(answer)
            except BaseException as exc:  # noqa: BLE001
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)
            pending = self._queues.get(key)


def _finish_reason(text: str, limit: int | None) -> str:
    """MAX_TOKENS when the answer took the whole maxOutputTokens budget, so the model's end
    token did not fit. generate returns strings, so this re-splits the text into the
    tokenizer's pieces; re-splitting can only merge pieces, never report MAX_TOKENS wrongly."""
    from .model.tokenizer import split_pieces

    return "MAX_TOKENS" if limit is not None and len(split_pieces(text)) >= limit else "STOP"


# --------------------------------------------------------------------------- app

class SizeAndAuthMiddleware:
    """ASGI middleware: bearer-token check on API paths, then a request-size limit (413)."""

    def __init__(self, app, auth: Auth, max_body: int) -> None:
        self.app, self.auth, self.max_body = app, auth, max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if path.startswith(("/v1/", "/v1beta1/")):
            headers = dict(scope.get("headers") or [])
            authz = headers.get(b"authorization", b"").decode("latin-1")
            scheme, _, token = authz.partition(" ")
            if scheme.lower() != "bearer" or not self.auth.check(token.strip()):
                resp = error_response(401, "Request is missing a valid OAuth 2 access token "
                                      "(get one from the local /token endpoint).",
                                      "UNAUTHENTICATED")
                resp.headers["WWW-Authenticate"] = "Bearer"
                return await resp(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        too_big = error_response(413, f"Request payload is larger than {self.max_body} bytes.",
                                 "INVALID_ARGUMENT")
        if length is not None:
            try:
                if int(length) > self.max_body:
                    return await too_big(scope, receive, send)
            except ValueError:
                return await error_response(400, "bad Content-Length")(scope, receive, send)
            return await self.app(scope, receive, send)
        if scope.get("method") in ("GET", "HEAD", "DELETE"):
            return await self.app(scope, receive, send)
        # No Content-Length (chunked): buffer with a cap, then replay.
        chunks, total = [], 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            body = msg.get("body", b"")
            total += len(body)
            if total > self.max_body:
                return await too_big(scope, receive, send)
            chunks.append(body)
            if not msg.get("more_body"):
                break
        replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def receive_again():
            return replay.pop() if replay else await receive()
        return await self.app(scope, receive_again, send)


class LocalVertex:
    """Everything the HTTP app needs: store, runner, auth, storage reader, predictor."""

    def __init__(self, data_dir: Path, storage_endpoint: str, project: str = "local-project",
                 max_body: int = DEFAULT_MAX_BODY) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.project = project
        self.storage_endpoint = storage_endpoint
        self.max_body = max_body
        self.auth = Auth(self.data_dir, project)
        self.store = J.JobStore(self.data_dir)
        self.runner = J.TrainingRunner(self.store, self.data_dir, storage_endpoint)
        self.reader = GcsReader(storage_endpoint, project)
        self.predictor = Predictor(self.runner.models_dir)
        self._io = ThreadPoolExecutor(8, thread_name_prefix="localvertex-io")
        self.app = build_app(self)
        self._started = False

    def start(self) -> None:
        if not self._started:
            self.runner.start()
            self._started = True

    def close(self) -> None:
        if self._started:
            self.runner.stop()
            self._started = False
        self.predictor.close()
        self._io.shutdown(wait=False, cancel_futures=True)


def _page_token(offset: int) -> str:
    return _b64url(json.dumps({"o": offset}).encode())


def _parse_page_token(token: str) -> int:
    try:
        offset = int(json.loads(_b64url_decode(token))["o"])
        if offset < 0:
            raise ValueError
        return offset
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise invalid("invalid pageToken") from None


def _count_tokens_text(text: str) -> int:
    return math.ceil(len(text) / 4) if text else 0


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise invalid(f"Invalid JSON payload received: {exc}") from None


def build_app(lv: LocalVertex) -> FastAPI:
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app):
        lv.start()
        yield

    app = FastAPI(title="localvertex", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)

    @app.exception_handler(ApiError)
    async def _api_error(request, exc: ApiError):
        return error_response(exc.http_code, exc.message, exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc: StarletteHTTPException):
        msg = exc.detail if isinstance(exc.detail, str) else "error"
        if exc.status_code == 404:
            msg = f"The requested URL {request.url.path[:200]} was not found on this server."
        return error_response(exc.status_code, msg)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, exc):
        return error_response(400, f"Invalid request: {exc.errors()[:3]}")

    @app.exception_handler(Exception)
    async def _internal(request, exc):
        log.exception("internal error on %s %s", request.method, request.url.path)
        return error_response(500, f"Internal error: {type(exc).__name__}")

    @app.middleware("http")
    async def _log(request: Request, call_next):
        t0 = time.monotonic()
        response = await call_next(request)
        path = request.url.path
        quiet = response.status_code < 400 and (request.method == "GET"
                                                or path.endswith(":generateContent"))
        level = logging.DEBUG if quiet else logging.INFO
        log.log(level, "%s %s -> %s (%.0f ms)", request.method, path[:200],
                response.status_code, (time.monotonic() - t0) * 1000)
        return response

    app.add_middleware(SizeAndAuthMiddleware, auth=lv.auth, max_body=lv.max_body)

    def check_path(version: str, project: str, location: str) -> None:
        if version not in API_VERSIONS:
            raise not_found(f"API version {version[:20]!r} not found (use v1 or v1beta1)")
        J.check_segment(project, "project")
        J.check_segment(location, "location")

    # -- auth / health
    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.post("/token")
    async def token(request: Request):
        form = urllib.parse.parse_qs((await request.body()).decode("utf-8", "replace"))
        assertion = (form.get("assertion") or [""])[0]
        grant = (form.get("grant_type") or [""])[0]
        if not assertion:
            return JSONResponse({"error": "invalid_request",
                                 "error_description": f"missing assertion (grant_type {grant!r})"},
                                status_code=400)
        try:
            lv.auth.verify_assertion(assertion)
        except ValueError as exc:
            return JSONResponse({"error": "invalid_grant", "error_description": str(exc)},
                                status_code=400)
        return {"access_token": lv.auth.issue(), "expires_in": TOKEN_TTL_S,
                "token_type": "Bearer"}

    base = "/{version}/projects/{project}/locations/{location}"

    def get_job(project: str, location: str, job_id: str) -> dict:
        J.check_id(job_id, "tuning job id")
        job = lv.store.get(job_id)
        if job is None or job["_local"]["project"] != project \
                or job["_local"]["location"] != location:
            raise not_found(f"TuningJob projects/{project}/locations/{location}/tuningJobs/"
                            f"{job_id} not found.")
        return job

    # -- tuning jobs
    @app.post(base + "/tuningJobs")
    async def create_tuning_job(version: str, project: str, location: str, request: Request):
        check_path(version, project, location)
        body = camelize(await _json_body(request))
        loop = asyncio.get_running_loop()
        job = await loop.run_in_executor(lv._io, lambda: J.build_job(
            body, project, location, exists=lv.reader.exists))
        lv.store.add(job)
        lv.runner.notify()
        log.info("created tuning job %s (base %s, %s)", job["_local"]["id"],
                 job["baseModel"], job["_local"]["config"])
        return J.public_view(job)

    @app.get(base + "/tuningJobs")
    async def list_tuning_jobs(version: str, project: str, location: str,
                               pageSize: int = 100, pageToken: str = ""):
        check_path(version, project, location)
        if pageSize <= 0:
            pageSize = 100
        pageSize = min(pageSize, 1000)
        offset = _parse_page_token(pageToken) if pageToken else 0
        jobs = lv.store.list(project, location)
        page = jobs[offset:offset + pageSize]
        out: dict[str, Any] = {"tuningJobs": [J.public_view(j) for j in page]}
        if offset + pageSize < len(jobs):
            out["nextPageToken"] = _page_token(offset + pageSize)
        return out

    @app.get(base + "/tuningJobs/{job_id}")
    async def get_tuning_job(version: str, project: str, location: str, job_id: str):
        check_path(version, project, location)
        return J.public_view(get_job(project, location, job_id))

    @app.post(base + "/tuningJobs/{job_action}")
    async def tuning_job_action(version: str, project: str, location: str, job_action: str):
        check_path(version, project, location)
        job_id, sep, action = job_action.partition(":")
        if not sep:
            raise ApiError(405, "METHOD_NOT_ALLOWED", "POST is not allowed on a tuning job")
        if action != "cancel":
            raise not_found(f"unknown method {action[:40]!r} on tuning jobs")
        get_job(project, location, job_id)
        lv.runner.cancel(job_id)
        return {}

    # -- prediction
    @app.post(base + "/endpoints/{endpoint_action}")
    async def endpoint_action(version: str, project: str, location: str,
                              endpoint_action: str, request: Request):
        check_path(version, project, location)
        endpoint_id, sep, action = endpoint_action.partition(":")
        J.check_id(endpoint_id, "endpoint id")
        if action != "generateContent":
            if action in ("streamGenerateContent", "countTokens", "predict", "rawPredict"):
                raise ApiError(501, "UNIMPLEMENTED",
                               f"{action} is not implemented by the local Vertex AI; use "
                               "generateContent.")
            raise not_found(f"unknown method {action[:40]!r} on endpoints")
        job = lv.store.by_endpoint(endpoint_id)
        if job is None or job["_local"]["project"] != project \
                or job["_local"]["location"] != location:
            raise not_found(f"Endpoint projects/{project}/locations/{location}/endpoints/"
                            f"{endpoint_id} not found.")
        if job["state"] != J.SUCCEEDED:
            raise not_found(f"Endpoint {J.endpoint_name(job)} is not deployed: its tuning job "
                            f"is {job['state'].removeprefix('JOB_STATE_')}.")
        body = camelize(await _json_body(request))
        image, prompt_text, image_count, gen = await _parse_generate(lv, body)
        text, finish = await lv.predictor.generate(job["_local"]["modelId"], image, **gen)
        prompt_tokens = _count_tokens_text(prompt_text) + 258 * image_count
        out_tokens = _count_tokens_text(text)
        return {
            "candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                            "finishReason": finish, "index": 0}],
            "usageMetadata": {"promptTokenCount": prompt_tokens,
                              "candidatesTokenCount": out_tokens,
                              "totalTokenCount": prompt_tokens + out_tokens,
                              "trafficType": "ON_DEMAND"},
            "modelVersion": J.model_name(job),
            "createTime": J.now_rfc3339(),
            "responseId": secrets.token_urlsafe(12),
        }

    @app.post(base + "/publishers/{publisher}/models/{model_action}")
    async def publisher_model(version: str, project: str, location: str, publisher: str,
                              model_action: str):
        check_path(version, project, location)
        model = model_action.partition(":")[0]
        raise not_found(f"Publisher model publishers/{publisher[:40]}/models/{model[:80]} is not "
                        "available: the local Vertex AI has no local Gemini (only tuned "
                        "endpoints answer). Fall back or use the real Vertex AI.")

    @app.post("/{version}/publishers/{publisher}/models/{model_action}")
    async def global_publisher_model(version: str, publisher: str, model_action: str):
        raise not_found("Publisher models are not available: the local Vertex AI has no "
                        "local Gemini (only tuned endpoints answer).")

    return app


async def _parse_generate(lv: LocalVertex, body: Any):
    """Return (image, prompt text, image count, generate kwargs) or raise 400."""
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise invalid("contents must be a non-empty list")
    user_turns = [c for c in contents if isinstance(c, dict) and c.get("role", "user") == "user"]
    if not user_turns:
        raise invalid("contents has no user turn")
    texts: list[str] = []
    last_image = None
    image_count = 0
    for turn in contents:
        if not isinstance(turn, dict) or not isinstance(turn.get("parts"), list):
            raise invalid("each content needs a 'parts' list")
        for part in turn["parts"]:
            if not isinstance(part, dict):
                raise invalid("each part must be an object")
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            if "fileData" in part or "inlineData" in part:
                image_count += 1
                if turn is user_turns[-1]:
                    last_image = part
    if last_image is None:
        raise invalid("the last user turn has no image part: the tuned inspector needs an image "
                      "(fileData with a gs:// URI or inlineData)")
    loop = asyncio.get_running_loop()
    if "fileData" in last_image:
        fd = last_image["fileData"]
        if not isinstance(fd, dict):
            raise invalid("fileData must be an object with a fileUri")
        try:
            ref = parse_gs_uri(fd.get("fileUri"))
        except InvalidUri as exc:
            raise invalid(f"fileData.fileUri: {exc}") from None
        try:
            data = await loop.run_in_executor(lv._io, lv.reader.read_bytes, ref)
        except ObjectNotFound:
            raise invalid(f"fileData.fileUri: object {ref} does not exist") from None
        except ValueError as exc:
            raise invalid(f"fileData.fileUri: {exc}") from None
    else:
        inline = last_image["inlineData"]
        if not isinstance(inline, dict):
            raise invalid("inlineData must be an object with base64 data")
        try:
            data = decode_b64(str(inline.get("data") or ""))
        except (binascii.Error, ValueError):
            raise invalid("inlineData.data is not valid base64") from None
        if not data:
            raise invalid("inlineData.data is empty")
    from .model import load_image  # torch: imported on first use only

    try:
        image = await loop.run_in_executor(lv._io, load_image, data)
    except ValueError as exc:
        raise invalid(f"cannot decode the image: {exc}") from None
    cfg = body.get("generationConfig") or {}
    if not isinstance(cfg, dict):
        raise invalid("generationConfig must be an object")
    try:
        temperature = float(cfg.get("temperature", 0.0) or 0.0)
        max_tokens = cfg.get("maxOutputTokens")
        max_tokens = None if max_tokens is None else int(max_tokens)
        seed = cfg.get("seed")
        seed = None if seed is None else int(seed)
        candidates = int(cfg.get("candidateCount") or 1)
    except (TypeError, ValueError, OverflowError):
        raise invalid("generationConfig: temperature must be a number, maxOutputTokens, seed "
                      "and candidateCount integers") from None
    if not 0.0 <= temperature <= 2.0:
        raise invalid("generationConfig.temperature must be in [0, 2]")
    if max_tokens is not None:
        if max_tokens < 1:
            raise invalid("generationConfig.maxOutputTokens must be positive")
        max_tokens = min(max_tokens, 1024)
    if candidates != 1:
        raise invalid("generationConfig.candidateCount must be 1 here")
    return image, "\n".join(texts), image_count, {"temperature": temperature,
                                                  "max_new_tokens": max_tokens, "seed": seed}
