"""Errors in Google's shape: ``{"error": {"code", "message", "status", "details"?}}``
(google.rpc.Status, as Google's REST front end writes it).

Every status is a google.rpc.Code, and its HTTP code is the one google/rpc/code.proto gives
it ("HTTP Mapping: ..."): FAILED_PRECONDITION is 400, not 409; there is no 405 or 413 code.

Standard library only: the training worker imports this module too, and must not pull in
the web framework. The HTTP side (responses, exception handlers) is in middleware.py.
"""

from __future__ import annotations

import errno
from typing import Any

# google.rpc.Code: name -> (number, HTTP status), from google/rpc/code.proto.
RPC_CODES: dict[str, tuple[int, int]] = {
    "CANCELLED": (1, 499),
    "UNKNOWN": (2, 500),
    "INVALID_ARGUMENT": (3, 400),
    "DEADLINE_EXCEEDED": (4, 504),
    "NOT_FOUND": (5, 404),
    "ALREADY_EXISTS": (6, 409),
    "PERMISSION_DENIED": (7, 403),
    "RESOURCE_EXHAUSTED": (8, 429),
    "FAILED_PRECONDITION": (9, 400),
    "ABORTED": (10, 409),
    "OUT_OF_RANGE": (11, 400),
    "UNIMPLEMENTED": (12, 501),
    "INTERNAL": (13, 500),
    "UNAVAILABLE": (14, 503),
    "DATA_LOSS": (15, 500),
    "UNAUTHENTICATED": (16, 401),
}
# google.rpc.Code values used in TuningJob.error.
RPC_CANCELLED = RPC_CODES["CANCELLED"][0]
RPC_INVALID_ARGUMENT = RPC_CODES["INVALID_ARGUMENT"][0]
RPC_RESOURCE_EXHAUSTED = RPC_CODES["RESOURCE_EXHAUSTED"][0]
RPC_ABORTED = RPC_CODES["ABORTED"][0]
RPC_INTERNAL = RPC_CODES["INTERNAL"][0]

# The status an HTTP code is answered with when nothing more specific is known.
HTTP_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

# What Google's front end answers for a method and path that match no API method.
METHOD_NOT_FOUND = "Method not found."


def http_code(status: str) -> int:
    return RPC_CODES[status][1]


class ApiError(Exception):
    """An error to serve as ``{"error": {"code", "message", "status", "details"?}}``."""

    def __init__(self, http_code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> None:
        if RPC_CODES.get(status, (0, None))[1] != http_code:
            raise ValueError(f"{status} is not answered with HTTP {http_code} (google.rpc.Code)")
        super().__init__(message)
        self.http_code, self.status, self.message = http_code, status, message
        self.details = details


def api_error(status: str, message: str, details: list[dict[str, Any]] | None = None) -> ApiError:
    return ApiError(http_code(status), status, message, details)


def invalid(message: str, details: list[dict[str, Any]] | None = None) -> ApiError:
    return api_error("INVALID_ARGUMENT", message, details)


def not_found(message: str) -> ApiError:
    return api_error("NOT_FOUND", message)


def method_not_found() -> ApiError:
    return api_error("NOT_FOUND", METHOD_NOT_FOUND)


def failed_precondition(message: str) -> ApiError:
    return api_error("FAILED_PRECONDITION", message)


def unimplemented(message: str) -> ApiError:
    return api_error("UNIMPLEMENTED", message)


def unauthenticated(message: str) -> ApiError:
    return api_error("UNAUTHENTICATED", message)


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is a write refused for want of space (a full disk, or its quota)."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def error_body(
    code: int, message: str, status: str | None = None, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"code": code, "message": message, "status": status or HTTP_STATUS.get(code, "UNKNOWN")}
    if details:
        out["details"] = details
    return {"error": out}
