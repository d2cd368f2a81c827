"""Serving the bytes that a signed URL (`/d/`) or a share link (`/l/`) grants: both byte routes
charge one token to the artifact's tenant's *anonymous* bucket (`charge_anonymous`: its plan's
`anonymous_rate_sustained`/`_burst`, apart from its API bucket: a leaked link cannot starve
the tenant's API; an artifact page at /a/ costs the same), then answer through `byteserve` with
the same headers, ranges and validators. Shared by `http/downloads.py`, `http/links.py` and
`http/public_pages.py`."""

from __future__ import annotations

from collections.abc import Awaitable

from sanic import Request
from sanic.response import HTTPResponse

from artifacta_box import errors
from artifacta_box.http import byteserve
from artifacta_box.http.common import box_of, charge_rate
from artifacta_box.security.ratelimit import anonymous_bucket
from artifacta_box.services import downloads
from artifacta_box.services.downloads import Grant


async def serve_grant(request: Request, authorize: Awaitable[Grant]):
    """Answer a byte route: await its authorisation, charge the rate token, serve the bytes.
    Every answer, errors included, carries the CORS headers (a browser caller may read why)."""
    cors = cors_for(request)
    try:
        grant = await authorize
        box = box_of(request)
        charge_anonymous(request, grant)
        rep = downloads.open_grant(box, grant)
        if rep.path is None and not byteserve.if_none_match_hits(
                request.headers.get("if-none-match"), rep.etag):
            # The box still answers a revalidation with its own ETag (cheap, and the SHA-256
            # is the representation's identity); anything else may go to the store itself.
            target = downloads.redirect_target(box, grant, rep, request.method,
                                               byteserve.content_disposition(rep.filename))
            if target is not None:
                return HTTPResponse(status=302, headers={
                    "Location": target, "Cache-Control": "no-store",
                    "X-Content-Type-Options": "nosniff", **cors})
        return await byteserve.serve(request, rep, box.blobs, cors,
                                     use_sendfile=box.settings.sendfile)
    except errors.ApiError as exc:
        exc.headers.update(cors)
        raise


def charge_anonymous(request: Request, grant: Grant) -> None:
    """What a request without a key costs the tenant whose artifact it reaches (a signed URL, a
    share link, an artifact page): one token of its anonymous bucket; 429 when empty."""
    charge_rate(request, anonymous_bucket(grant.tenant_id), grant.plan.anonymous_rate_sustained,
                grant.plan.anonymous_rate_burst, what="Anonymous download rate")


def cors_for(request: Request) -> dict[str, str]:
    """CORS headers for a byte route's answer (its errors too, so a browser may read why)."""
    return byteserve.cors_headers(request.headers.get("origin"), box_of(request).settings.cors_origins)


def preflight(request: Request):
    return byteserve.preflight(request, box_of(request).settings.cors_origins)
