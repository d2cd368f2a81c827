"""Helpers every blueprint shares: the Box of the running app, JSON bodies, absolute URLs,
client addresses, and the bearer-auth gate for /v1."""

from __future__ import annotations

import ipaddress
import json
from typing import Any
from urllib.parse import parse_qsl

from sanic import Request
from sanic.response import HTTPResponse
from sanic.response.types import BaseHTTPResponse

from artifacta_box import errors
from artifacta_box.context import Box
from artifacta_box.http.sanic_seams import PreparedResponse
from artifacta_box.security.keys import KEY_FORMAT, parse_bearer
from artifacta_box.services import account, listing, tenants
from artifacta_box.services.principal import Principal


def box_of(request: Request) -> Box:
    return request.app.ctx.box


def principal_of(request: Request) -> Principal:
    return request.ctx.principal


def ok(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> HTTPResponse:
    """A JSON answer: the bytes and headers of Sanic's `json()`, sent as a PreparedResponse
    (one join and one write, http.sanic_seams 10.)."""
    return PreparedResponse(BaseHTTPResponse._dumps(body).encode(), status, headers,
                            "application/json")


def parse_json_object(raw: bytes | None, *, required: bool = True) -> dict[str, Any]:
    """Decode a JSON object body; an empty body is `{}` when not required. A body of only
    whitespace is not empty: it is not JSON, and is refused like any other malformed body."""
    if not raw:
        if required:
            raise errors.InvalidRequest("A JSON object body is required.")
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise errors.InvalidRequest("The request body is not valid UTF-8.") from None
    try:
        value = json.loads(text)
    except RecursionError:
        raise errors.InvalidRequest("The JSON body is nested too deeply.") from None
    except ValueError as exc:
        raise errors.InvalidRequest(f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(value, dict):
        raise errors.InvalidRequest("The request body must be a JSON object.")
    return value


def query_pairs(request: Request) -> list[tuple[str, str]]:
    """Every query parameter as decoded, blanks kept, in order (list filters read them so)."""
    try:
        return parse_qsl(request.query_string, keep_blank_values=True,
                         max_num_fields=listing.MAX_QUERY_FIELDS)
    except ValueError:
        raise errors.InvalidRequest(
            f"Too many query parameters (at most {listing.MAX_QUERY_FIELDS})."
        ) from None


# ---------------------------------------------------------------------------- addresses / URLs


def _is_trusted(box: Box, addr: str) -> bool:
    trusted = box.settings.trusted_proxies
    if not trusted or not addr:
        return False
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    for entry in trusted:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def client_address(request: Request) -> str:
    """The caller's address; X-Forwarded-For is honoured only from a trusted proxy."""
    peer = request.conn_info.client_ip if request.conn_info else ""
    box = box_of(request)
    if _is_trusted(box, peer):
        fwd = request.headers.get("x-forwarded-for", "")
        hops = [h.strip() for h in fwd.split(",") if h.strip()]
        # Walk from the nearest hop back, skipping our own proxies.
        for hop in reversed(hops):
            if not _is_trusted(box, hop):
                return hop
    return peer


def base_url(request: Request) -> str:
    """The public base of every absolute URL the API returns: `public_url`, else the request's
    own scheme and host (X-Forwarded-Proto/Host only when they come from a trusted proxy)."""
    box = box_of(request)
    if box.settings.public_url:
        return box.settings.public_url
    peer = request.conn_info.client_ip if request.conn_info else ""
    scheme = request.scheme if request.scheme in ("http", "https") else "http"
    host = request.headers.get("host", "") or f"{box.settings.host}:{box.settings.port}"
    if _is_trusted(box, peer):
        proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        if proto in ("http", "https"):
            scheme = proto
        fwd_host = request.headers.get("x-forwarded-host", "").split(",")[0].strip()
        if fwd_host:
            host = fwd_host
    if not host or any(c in host for c in " /\\@?#\r\n"):
        host = f"{box.settings.host}:{box.settings.port}"
    return f"{scheme}://{host}"


def absolute_url(request: Request, path: str) -> str:
    return base_url(request) + path


# ---------------------------------------------------------------------------- auth gate


async def authenticate_request(request: Request) -> None:
    """Bearer auth, failed-auth limit, tenant rate limit and monthly quota for a /v1 request.

    Sets `request.ctx.principal` and `request.ctx.rate_headers`.
    """
    key = parse_bearer(request.headers.get("authorization"))
    principal = await authenticate_key(
        request, key,
        f"Missing or malformed API key: send 'Authorization: Bearer {KEY_FORMAT}'.",
    )
    admit(request, principal)


async def authenticate_key(request: Request, key: str | None, malformed: str) -> Principal:
    """The tenant behind `key` (None: absent or malformed, refused with `malformed`), under the
    failed-authentication limit of the caller's address: the API's bearer header and the web
    console's sign-in form spend the same budget."""
    box = box_of(request)
    try:
        if key is None:
            raise errors.Unauthorized(malformed)
        principal = await tenants.authenticate(box, key)
    except errors.Unauthorized:
        # A correct key always passes (above); only failures count against the address, and
        # one past its budget is told to back off instead of being told the key is wrong.
        addr = client_address(request)
        wait = box.auth_failures.record_failure(addr)
        if wait:
            raise errors.RateLimited(
                f"Too many failed authentication attempts from {addr}; retry in {wait}s.",
                headers={"Retry-After": str(wait)},
                extra={"retry_after_seconds": wait, "retry_after": wait},
            ) from None
        raise
    return principal


def admit(request: Request, principal: Principal) -> None:
    """Admit one request of an authenticated tenant: its rate token, its monthly quota, the
    request meter (and `request.ctx.principal`, which the access log names)."""
    box = box_of(request)
    request.ctx.principal = principal
    charge_rate(request, principal.tenant_id, principal.plan.rate_sustained, principal.plan.rate_burst)
    used = account.requests_this_month(box, principal)
    if used >= principal.plan.requests_per_month:
        raise errors.QuotaExceeded(
            f"Monthly request quota of {principal.plan.requests_per_month:,} reached for plan "
            f"{principal.plan.name!r}; it resets at the start of next month (UTC).",
        )
    box.meter.count_request(principal.tenant_id, principal.key_id, box.clock.time())


def charge_rate(request: Request, bucket: int, sustained: float, burst: int,
                what: str = "Rate") -> None:
    """Take one token from `bucket` (a tenant id, or a key from security.ratelimit); sets the
    X-RateLimit-* headers; 429 when empty."""
    box = box_of(request)
    decision = box.rate.take(bucket, sustained, burst)
    request.ctx.rate_headers = decision.headers()
    if not decision.allowed:
        request.app.ctx.metrics.rate_limited += 1
        raise errors.RateLimited(
            f"{what} limit of {decision.headers()['X-RateLimit-Limit']} requests/s exceeded; "
            f"retry in {decision.retry_after}s.",
            headers={"Retry-After": str(decision.retry_after)},
            extra={"retry_after_seconds": decision.retry_after, "retry_after": decision.retry_after},
        )
