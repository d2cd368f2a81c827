"""API errors: one class per stable error code, and the single place that renders the envelope.

Services raise these (they carry no Sanic types); the HTTP layer turns any exception into
`{"error": {"code", "message", "status", ...}}` through `envelope()`.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ApiError(Exception):
    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500

    def __init__(
        self,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        return envelope(self.code, self.message, self.status, self.extra)


def envelope(code: str, message: str, status: int, extra: dict[str, Any] | None = None) -> dict:
    err: dict[str, Any] = {"code": code, "message": message, "status": status}
    if extra:
        err.update(extra)
    return {"error": err}


class InvalidRequest(ApiError):
    code = "invalid_request"
    status = 400


class TTLExceedsPlanLimit(ApiError):
    code = "ttl_exceeds_plan_limit"
    status = 400


class UploadNotFound(ApiError):
    code = "upload_not_found"
    status = 400


class Unauthorized(ApiError):
    code = "unauthorized"
    status = 401


class QuotaExceeded(ApiError):
    code = "quota_exceeded"
    status = 403


class InvalidSignature(ApiError):
    code = "invalid_signature"
    status = 403


class UrlExpired(ApiError):
    code = "url_expired"
    status = 403


class ArtifactNotFound(ApiError):
    code = "artifact_not_found"
    status = 404


class SessionNotFound(ApiError):
    code = "session_not_found"
    status = 404


class LinkNotFound(ApiError):
    code = "link_not_found"
    status = 404


class NotFound(ApiError):
    code = "not_found"
    status = 404


class MethodNotAllowed(ApiError):
    code = "method_not_allowed"
    status = 405


class Conflict(ApiError):
    """409 for a state conflict that has no more specific code (e.g. PUT after complete)."""

    code = "conflict"
    status = 409


class SessionSealed(ApiError):
    code = "session_sealed"
    status = 409


class ArtifactExpired(ApiError):
    code = "artifact_expired"
    status = 410


class ArtifactDeleted(ApiError):
    code = "artifact_already_deleted"
    status = 410


class LinkExpired(ApiError):
    code = "link_expired"
    status = 410


class FileTooLarge(ApiError):
    code = "file_too_large"
    status = 413


class RateLimited(ApiError):
    code = "rate_limited"
    status = 429


class InternalError(ApiError):
    code = "internal_error"
    status = 500


class Unavailable(ApiError):
    code = "unavailable"
    status = 503


ALL_ERRORS: tuple[type[ApiError], ...] = (
    InvalidRequest, TTLExceedsPlanLimit, UploadNotFound, Unauthorized, QuotaExceeded,
    InvalidSignature, UrlExpired, ArtifactNotFound, SessionNotFound, LinkNotFound, NotFound,
    MethodNotAllowed, Conflict, SessionSealed, ArtifactExpired, ArtifactDeleted, LinkExpired,
    FileTooLarge, RateLimited, InternalError, Unavailable,
)
