"""Signed download URLs.

API (authenticated, /v1):
- `GET  /v1/artifacts/<id>/download-url`       a signed URL valid 1 h
- `POST /v1/artifacts/batch/download-urls`     up to 20 of them, per-id errors

Byte route (no auth; charged one rate token to the artifact's tenant):
- `GET|HEAD /d/<artifact_id>?e=<expiry>&s=<signature>`; `OPTIONS` answers CORS preflights for
  `server.cors_origins`.

`batch` in `/v1/artifacts/batch/download-urls` is a static segment: Sanic matches it before the
`<artifact_id>` routes, and no artifact route ends in `/download-urls`.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from sanic import Blueprint, Request

from artifacta_box.http.common import absolute_url, box_of, ok, parse_json_object, principal_of
from artifacta_box.http.grants import preflight, serve_grant
from artifacta_box.services import downloads

bp = Blueprint("downloads")


@bp.get("/v1/artifacts/<artifact_id:str>/download-url", unquote=True)
async def download_url(request: Request, artifact_id: str):
    return ok(await downloads.describe_download(
        box_of(request), principal_of(request), artifact_id, lambda path: absolute_url(request, path)
    ))


@bp.post("/v1/artifacts/batch/download-urls")
async def batch_download_urls(request: Request):
    ids = downloads.parse_batch(parse_json_object(request.body, required=True))
    results = await downloads.describe_downloads(
        box_of(request), principal_of(request), ids, lambda path: absolute_url(request, path)
    )
    return ok({"results": results})


@bp.route("/d/<artifact_id:str>", unquote=True, methods=["GET", "HEAD"])
async def signed_download(request: Request, artifact_id: str):
    args = signed_query(request.query_string)
    return await serve_grant(request, downloads.authorize_signed(
        box_of(request), request.method, artifact_id, args.get("e"), args.get("s"), args.get("k")))


def signed_query(query: str) -> dict[str, str]:
    """Each query parameter's first value, blanks kept: what `parse_qs(query,
    keep_blank_values=True)` gives as first values. A URL the box minted has nothing to decode
    (digits, key ids, URL-safe base64), so without `%` or `+` a split is the whole parse
    (0.4 us instead of parse_qs's 4 us); anything else goes through parse_qs."""
    if "%" in query or "+" in query:
        return {k: v[0] for k, v in parse_qs(query, keep_blank_values=True,
                                              errors="replace").items()}
    first: dict[str, str] = {}
    for piece in query.split("&"):
        if piece:
            name, _, value = piece.partition("=")
            first.setdefault(name, value)
    return first


@bp.options("/d/<artifact_id:str>", unquote=True)
async def signed_download_preflight(request: Request, artifact_id: str):
    return preflight(request)
