"""API errors: one class per stable error code, and the single place that renders the envelope.

Services raise these (they carry no Sanic types); `http/errors.py` maps every other exception
(Sanic's, storage's, SQLite's) to the most specific class here, and every error leaves as the
envelope `{"error": {"code", "message", "status", ...}}` built by `envelope()`.

The hierarchy (status, code); `code` is the stable contract clients match on:

    ApiError                    500 internal_error            base class; carries headers, extra
    ├── InvalidRequest          400 invalid_request           the catch-all for bad input
    │   └── HeadersTooLarge     431 invalid_request           the one code with a second status
    ├── TTLExceedsPlanLimit     400 ttl_exceeds_plan_limit
    ├── UploadNotFound          400 upload_not_found          presigned bytes not arrived
    ├── Unauthorized            401 unauthorized
    ├── QuotaExceeded           403 quota_exceeded
    ├── InvalidSignature        403 invalid_signature
    ├── UrlExpired              403 url_expired
    ├── ArtifactNotFound        404 artifact_not_found
    ├── SessionNotFound         404 session_not_found
    ├── LinkNotFound            404 link_not_found
    ├── NotFound                404 not_found                 no such route
    ├── MethodNotAllowed        405 method_not_allowed
    ├── RequestTimeout          408 request_timeout
    ├── Conflict                409 conflict
    ├── SessionSealed           409 session_sealed
    ├── ArtifactExpired         410 artifact_expired
    ├── ArtifactDeleted         410 artifact_already_deleted
    ├── LinkExpired             410 link_expired
    ├── FileTooLarge            413 file_too_large
    ├── RangeNotSatisfiable     416 range_not_satisfiable
    ├── RateLimited             429 rate_limited
    ├── InternalError           500 internal_error
    └── Unavailable             503 unavailable

Adding a class here is the whole job of adding an error code: `ALL_ERRORS` and `ERROR_CODES`
(and from them the OpenAPI document's error tables) are derived from the classes of this module.
A class that reuses its parent's code at another status (only `HeadersTooLarge`) declares no
`code` of its own and is listed in `STATUS_VARIANTS` instead.
"""

from __future__ import annotations

from collections.abc import Mapping
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


class HeadersTooLarge(InvalidRequest):
    """431: Sanic refused the request headers. The error table has no code for it, so it answers
    `invalid_request` at its own status: the one code documented at two statuses."""

    status = 431


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


class RequestTimeout(ApiError):
    """408: the request (headers or body) did not arrive in time (http/deadlines.py)."""

    code = "request_timeout"
    status = 408


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


class RangeNotSatisfiable(ApiError):
    """416: no byte of the requested range exists (http/byteserve.py)."""

    code = "range_not_satisfiable"
    status = 416


class RateLimited(ApiError):
    code = "rate_limited"
    status = 429


class InternalError(ApiError):
    code = "internal_error"
    status = 500


class Unavailable(ApiError):
    code = "unavailable"
    status = 503


def declared_errors(namespace: Mapping[str, object]) -> tuple[type[ApiError], ...]:
    """Every ApiError class of this module in `namespace` that declares its own code, in the
    order written; TypeError if two declare the same code."""
    found = tuple(
        obj for obj in namespace.values()
        if isinstance(obj, type) and issubclass(obj, ApiError) and obj is not ApiError
        and obj.__module__ == __name__ and "code" in vars(obj)
    )
    codes = [cls.code for cls in found]
    duplicated = sorted({c for c in codes if codes.count(c) > 1})
    if duplicated:  # a second class for one code would make the status of that code ambiguous
        raise TypeError(f"error codes declared twice: {duplicated}")
    return found


ALL_ERRORS: tuple[type[ApiError], ...] = declared_errors(globals())
# code -> HTTP status: the table the OpenAPI document and the fuzz checks read.
ERROR_CODES: dict[str, int] = {cls.code: cls.status for cls in ALL_ERRORS}
# Classes answering a parent's code at another status; each is documented case by case.
STATUS_VARIANTS: tuple[type[ApiError], ...] = (HeadersTooLarge,)
