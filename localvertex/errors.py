"""Errors in Google's shape: ``{"error": {"code", "message", "status"}}`` (google.rpc.Status).

Standard library only: the training worker imports this module too, and must not pull in
the web framework. The HTTP side (responses, exception handlers) is in middleware.py.
"""

from __future__ import annotations

from typing import Any

# google.rpc.Code values used in TuningJob.error.
RPC_CANCELLED, RPC_INVALID_ARGUMENT, RPC_ABORTED, RPC_INTERNAL = 1, 3, 10, 13

HTTP_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "FAILED_PRECONDITION",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
}


class ApiError(Exception):
    """An error to serve as ``{"error": {"code", "message", "status"}}``."""

    def __init__(self, http_code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.http_code, self.status, self.message = http_code, status, message


def invalid(message: str) -> ApiError:
    return ApiError(400, "INVALID_ARGUMENT", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "NOT_FOUND", message)


def failed_precondition(message: str) -> ApiError:
    return ApiError(409, "FAILED_PRECONDITION", message)


def unimplemented(message: str) -> ApiError:
    return ApiError(501, "UNIMPLEMENTED", message)


def error_body(code: int, message: str, status: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status or HTTP_STATUS.get(code, "UNKNOWN")}}
