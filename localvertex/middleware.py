"""HTTP plumbing around the routes: error responses and exception handlers, the request
log, and the request-size limit. The bearer-token check is in auth.py.

Statuses are google.rpc.Codes with code.proto's HTTP mapping (errors.py). A method and
path that match no API method (an unknown ``:verb``, or a wrong HTTP method, which
Starlette calls 405) answer 404 NOT_FOUND "Method not found.", as Google's front end does.
A body over the size limit answers 400 INVALID_ARGUMENT "Request payload size exceeds the
limit: N bytes.", Google's front end's answer: no google.rpc.Code maps to HTTP 413. A write
refused by a full data disk answers 429 RESOURCE_EXHAUSTED naming the directory and the fix
(code.proto's own example for that code), not a bare 500.
"""

from __future__ import annotations

import json
import logging
import time

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .errors import HTTP_STATUS, METHOD_NOT_FOUND, ApiError, error_body, is_disk_full

log = logging.getLogger("localvertex.server")


API_PATH_PREFIXES = ("/v1/", "/v1beta1/", "/local/")


def error_response(code: int, message: str, status: str | None = None, details: list | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message, status, details), status_code=code)


def payload_too_large(limit: int) -> JSONResponse:
    return error_response(400, f"Request payload size exceeds the limit: {limit} bytes.", "INVALID_ARGUMENT")


def disk_full_response(request: Request, exc: OSError) -> JSONResponse:
    """RESOURCE_EXHAUSTED, which google.rpc.Code documents for "the entire file system is out of
    space", naming the full directory and the fix."""
    services = getattr(request.app.state, "services", None)
    where = str(services.store.dir.parent) if services is not None else "its data directory"
    return error_response(
        429,
        f"The local Vertex AI cannot save to its data directory {where}: {exc.strerror}. "
        "Free space on that disk (or start it with another --data-dir) and try again.",
        "RESOURCE_EXHAUSTED",
    )


def _query_name(loc: tuple) -> str:
    from .schema.walker import proto_name

    return ".".join(proto_name(str(part)) for part in loc[1:]) or "request"


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves as ``{"error": {"code", "message", "status"}}``."""

    async def api_error(request: Request, exc: ApiError):
        return error_response(exc.http_code, exc.message, exc.status, exc.details)

    async def http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code in (404, 405):
            if request.url.path.startswith(API_PATH_PREFIXES):
                return error_response(404, METHOD_NOT_FOUND, "NOT_FOUND")
            return error_response(
                404, f"The requested URL {request.url.path[:200]} was not found on this server.", "NOT_FOUND"
            )
        code = exc.status_code if exc.status_code in HTTP_STATUS else 400
        return error_response(code, exc.detail if isinstance(exc.detail, str) else "error")

    async def validation_error(request: Request, exc: RequestValidationError):
        # Query parameters of the wrong type, in the words of Google's front end.
        lines = [
            f"Invalid value at '{_query_name(tuple(e.get('loc', ())))}' "
            f"({'TYPE_INT32' if e.get('type', '').startswith('int') else 'TYPE_STRING'}), "
            f"{json.dumps(e.get('input'), default=str)[:80]}"
            for e in exc.errors()[:10]
        ]
        return error_response(400, "\n".join(lines) or "Invalid request", "INVALID_ARGUMENT")

    async def internal(request: Request, exc: Exception):
        log.exception("internal error on %s %s", request.method, request.url.path)
        return error_response(500, f"Internal error: {type(exc).__name__}")

    async def os_error(request: Request, exc: OSError):
        # Its own handler (not Exception's, after which Starlette re-raises for the server to
        # log a second traceback): a full disk is one line, its cause and fix being known.
        if not is_disk_full(exc):
            return await internal(request, exc)
        log.error("%s %s: the data directory is full: %s", request.method, request.url.path[:200], exc)
        return disk_full_response(request, exc)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(OSError, os_error)
    app.add_exception_handler(Exception, internal)


async def log_requests(request: Request, call_next):
    """One log line per request; successful reads and predictions only at DEBUG."""
    t0 = time.monotonic()
    response = await call_next(request)
    path = request.url.path
    quiet = response.status_code < 400 and (request.method == "GET" or path.endswith(":generateContent"))
    level = logging.DEBUG if quiet else logging.INFO
    log.log(
        level, "%s %s -> %s (%.0f ms)", request.method, path[:200], response.status_code, (time.monotonic() - t0) * 1000
    )
    return response


class RequestLogMiddleware:
    """ASGI middleware: one log line per request; successful reads and predictions only at
    DEBUG. Pure ASGI: Starlette's BaseHTTPMiddleware (``app.middleware("http")``) runs each
    request in a task group with memory streams, which cost more than the route's own work."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.monotonic()
        status = [500]

        async def send_logged(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        finally:
            method, path = scope["method"], scope["path"]
            quiet = status[0] < 400 and (method == "GET" or path.endswith(":generateContent"))
            level = logging.DEBUG if quiet else logging.INFO
            if log.isEnabledFor(level):
                log.log(level, "%s %s -> %s (%.0f ms)", method, path[:200], status[0], (time.monotonic() - t0) * 1000)


class BodySizeLimitMiddleware:
    """ASGI middleware: refuse request bodies over ``max_body`` bytes (400), from the
    Content-Length header before reading, or while buffering a chunked body."""

    def __init__(self, app, max_body: int) -> None:
        self.app, self.max_body = app, max_body

    def _too_big(self) -> JSONResponse:
        return payload_too_large(self.max_body)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            try:
                if int(length) > self.max_body:
                    return await self._too_big()(scope, receive, send)
            except ValueError:
                return await error_response(400, "Invalid Content-Length header.", "INVALID_ARGUMENT")(
                    scope, receive, send
                )
            return await self.app(scope, receive, send)
        if scope.get("method") in ("GET", "HEAD", "DELETE"):
            return await self.app(scope, receive, send)
        # No Content-Length (chunked): buffer with a cap, then replay.
        body = await self._read_capped(receive)
        if body is None:  # the client went away
            return
        if len(body) > self.max_body:
            return await self._too_big()(scope, receive, send)
        replay = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive_again():
            return replay.pop() if replay else await receive()

        return await self.app(scope, receive_again, send)

    async def _read_capped(self, receive) -> bytes | None:
        """The whole body, or as much as exceeds the cap; None on disconnect."""
        chunks, total = [], 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return None
            body = msg.get("body", b"")
            total += len(body)
            chunks.append(body)
            if total > self.max_body or not msg.get("more_body"):
                return b"".join(chunks)
