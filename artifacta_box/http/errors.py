"""Every error leaves through here: API errors, Sanic's own (404, 405, 413, bad bodies) and
crashes all become the error envelope (`ErrorEnvelope` in the OpenAPI document), with the
request id and rate-limit headers attached."""

from __future__ import annotations

import logging
import sqlite3

from sanic import Request
from sanic.exceptions import RequestCancelled, SanicException
from sanic.handlers import ErrorHandler
from sanic.response import HTTPResponse, json

from artifacta_box import errors
from artifacta_box.storage import LimitExceeded, StorageFull, StorageUnwritable
from artifacta_box.storage.s3 import S3AccessDenied, S3NoSuchBucket, S3Unavailable

log = logging.getLogger("artifacta_box.http")

_BY_STATUS: dict[int, type[errors.ApiError]] = {
    400: errors.InvalidRequest,
    401: errors.Unauthorized,
    403: errors.QuotaExceeded,
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
    413: errors.FileTooLarge,
    429: errors.RateLimited,
    503: errors.Unavailable,
}


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request | None, exc: BaseException) -> list[str]:
    """The methods the requested path supports. Sanic names them only for static paths, so for
    a path with parameters each method is resolved against the router (only on a 405)."""
    allowed = set(getattr(exc, "allowed_methods", None) or ())
    if not allowed and request is not None:
        for method in _METHODS:
            try:
                request.app.router.get(request.path, method, None)
            except SanicException:
                continue
            allowed.add(method)
    return sorted(allowed)


def _is_transient_db_error(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text or "disk is full" in text or "disk i/o" in text


def to_api_error(request: Request | None, exc: BaseException) -> errors.ApiError:
    """Map any exception to the most specific ApiError."""
    if isinstance(exc, errors.ApiError):
        return exc
    if isinstance(exc, StorageFull):
        return errors.Unavailable(f"Storage is full: {exc}. Free disk space and retry.")
    if isinstance(exc, StorageUnwritable):
        return errors.Unavailable(f"Storage is unavailable: {exc}.")
    if isinstance(exc, S3Unavailable):
        return errors.Unavailable(f"The blob store does not answer ({exc}); retry shortly.")
    if isinstance(exc, S3AccessDenied | S3NoSuchBucket):
        # Passed the start-up probe, so the store's configuration changed since: the operator
        # must act (logged as an error below).
        return errors.Unavailable("The blob store refuses the box's requests; the server log "
                                  "says why.")
    if isinstance(exc, LimitExceeded):
        return errors.FileTooLarge(f"The body exceeds the limit of {exc.limit} bytes.")
    if isinstance(exc, sqlite3.OperationalError) and _is_transient_db_error(exc):
        return errors.Unavailable(
            "The database is busy (another process holds its write lock) or out of space; retry shortly."
        )
    if isinstance(exc, SanicException):
        status = getattr(exc, "status_code", 500) or 500
        if status == 404:
            where = f"{request.method} {request.path}" if request is not None else "this route"
            return errors.NotFound(f"No such route: {where}. See the API reference for /v1 paths.")
        if status == 405:
            where = f"{request.method} {request.path}" if request is not None else "this route"
            allowed = _allowed_methods(request, exc)
            # RFC 9110 §15.5.6: a 405 must say which methods the resource supports.
            allow_headers = {"Allow": ", ".join(allowed)} if allowed else None
            return errors.MethodNotAllowed(
                f"Method not allowed: {where}."
                + (f" Allowed: {', '.join(allowed)}." if allowed else ""),
                headers=allow_headers,
            )
        if status == 413:
            if "header" in str(exc).lower():  # Sanic raises PayloadTooLarge for headers too
                return errors.HeadersTooLarge("The request headers are too large.")
            return errors.FileTooLarge(
                "The request body is larger than this route accepts."
            )
        if status == 408:
            detail = str(exc)  # the deadline protocol says which part was late
            if not detail or detail == "Request Timeout":
                detail = "The request was not received in time."
            return errors.RequestTimeout(detail)
        if status == 416:
            return errors.RangeNotSatisfiable(str(exc) or "Range not satisfiable.")
        if status == 431:
            return errors.HeadersTooLarge("The request headers are too large.")
        if status < 500:
            cls = _BY_STATUS.get(status, errors.InvalidRequest)
            message = str(exc) or "The request could not be understood."
            err = cls(f"Bad request: {message}" if cls is errors.InvalidRequest else message)
            if cls is errors.InvalidRequest and status != 400:
                err.status = status  # type: ignore[misc]
            return err
        if status == 503:
            return errors.Unavailable(str(exc) or "The service is unavailable.")
    rid = getattr(getattr(request, "ctx", None), "request_id", None) if request else None
    return errors.InternalError(
        f"Internal error (request id {rid or 'unknown'}); the server log has the details."
    )


# nginx's "client closed request": the status the access log and metrics record for a request
# whose client left before the answer (never sent: nobody is listening).
CLIENT_CLOSED_REQUEST = 499


def error_response(request: Request | None, exc: BaseException) -> HTTPResponse:
    if isinstance(exc, RequestCancelled):
        # The client went away mid-request: nobody is left to answer, and nothing is wrong
        # with the server, so it must not show up as a 5xx on the operator's dashboards.
        log.debug("client disconnected (request id %s)",
                  getattr(getattr(request, "ctx", None), "request_id", None))
        return HTTPResponse(status=CLIENT_CLOSED_REQUEST)
    err = to_api_error(request, exc)
    if err.status >= 500 and not isinstance(exc, errors.ApiError | StorageFull | StorageUnwritable):
        rid = getattr(getattr(request, "ctx", None), "request_id", None) if request else None
        log.error("unhandled error (request id %s)", rid, exc_info=exc)
    body = err.body()
    if isinstance(err, errors.QuotaExceeded):
        upgrade_url = _upgrade_url(request)
        if upgrade_url:
            body["error"].setdefault("upgrade_url", upgrade_url)
    headers = dict(err.headers)
    ctx = getattr(request, "ctx", None) if request is not None else None
    if ctx is not None:
        rid = getattr(ctx, "request_id", None)
        if rid:
            headers["X-Request-Id"] = rid
        headers.update(getattr(ctx, "rate_headers", None) or {})
        ctx.error_code = err.code
    return json(body, status=err.status, headers=headers)


def _upgrade_url(request: Request | None) -> str | None:
    """`[tenants] upgrade_url`: every quota_exceeded answer carries it when one is configured
    (whatever limit was hit: storage, monthly requests, links, keys, a plan-gated feature)."""
    settings = getattr(getattr(getattr(request, "app", None), "ctx", None), "settings", None)
    return getattr(settings, "upgrade_url", None)


class EnvelopeErrorHandler(ErrorHandler):
    def default(self, request: Request, exception: Exception) -> HTTPResponse:
        return error_response(request, exception)
