"""Domain errors and the one table of error codes.

Logic raises these; it knows nothing of HTTP. `bloxserver.api` maps each code to its status, once.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    BAD_REQUEST = "bad_request"
    INVALID_SIGNATURE = "invalid_signature"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    LIMIT_REACHED = "limit_reached"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    INVALID_STATE = "invalid_state"
    CONFLICT = "conflict"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    VALIDATION_ERROR = "validation_error"
    INVALID_FLOW = "invalid_flow"
    QUOTA_EXCEEDED = "quota_exceeded"
    RATE_LIMITED = "rate_limited"
    MEMORY_DISABLED = "memory_disabled"
    VERSION_MISMATCH = "version_mismatch"
    MEMORY_FULL = "memory_full"
    INTERNAL_ERROR = "internal_error"
    SERVICE_UNAVAILABLE = "service_unavailable"


HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.INVALID_SIGNATURE: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.LIMIT_REACHED: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.INVALID_STATE: 409,
    ErrorCode.CONFLICT: 409,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.VALIDATION_ERROR: 422,
    ErrorCode.INVALID_FLOW: 422,
    ErrorCode.QUOTA_EXCEEDED: 429,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.MEMORY_DISABLED: 409,
    ErrorCode.VERSION_MISMATCH: 412,
    ErrorCode.MEMORY_FULL: 413,
    ErrorCode.INTERNAL_ERROR: 500,
    ErrorCode.SERVICE_UNAVAILABLE: 503,
}


class AppError(Exception):
    """An error a client can act on: a stable code, a message for people, optional structured details."""

    code: ErrorCode = ErrorCode.BAD_REQUEST
    # The answer's status when it is not the code's usual one (HTTP_STATUS): one code, two meanings by route.
    status: int | None = None

    def __init__(
        self,
        message: str,
        details: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers or {}


class BadRequest(AppError):
    code = ErrorCode.BAD_REQUEST


class InvalidSignature(AppError):
    code = ErrorCode.INVALID_SIGNATURE


class WebhookSignatureInvalid(AppError):
    """A delivery to a trigger with `config.verify` that does not verify: 401, unlike Clerk's 400 (docs/api.md)."""

    code = ErrorCode.INVALID_SIGNATURE
    status = 401


class Unauthorized(AppError):
    code = ErrorCode.UNAUTHORIZED


class Forbidden(AppError):
    code = ErrorCode.FORBIDDEN


class LimitReached(AppError):
    code = ErrorCode.LIMIT_REACHED


class NotFound(AppError):
    code = ErrorCode.NOT_FOUND


class InvalidState(AppError):
    code = ErrorCode.INVALID_STATE


class Conflict(AppError):
    code = ErrorCode.CONFLICT


class PayloadTooLarge(AppError):
    code = ErrorCode.PAYLOAD_TOO_LARGE


class ValidationFailed(AppError):
    code = ErrorCode.VALIDATION_ERROR


class InvalidFlow(AppError):
    code = ErrorCode.INVALID_FLOW


class QuotaExceeded(AppError):
    code = ErrorCode.QUOTA_EXCEEDED


class RateLimited(AppError):
    code = ErrorCode.RATE_LIMITED


class MemoryDisabled(AppError):
    code = ErrorCode.MEMORY_DISABLED


class VersionMismatch(AppError):
    code = ErrorCode.VERSION_MISMATCH


class MemoryFull(AppError):
    code = ErrorCode.MEMORY_FULL


class ServiceUnavailable(AppError):
    code = ErrorCode.SERVICE_UNAVAILABLE


def flow_not_found() -> NotFound:
    """Absent and someone else's are the same answer: a caller never learns another user's flow exists."""
    return NotFound("Flow not found")
