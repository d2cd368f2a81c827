"""Everything that moves bytes out of the box.

API (authenticated, /v1):
- `GET  /v1/artifacts/<id>/download-url`       a signed URL valid 1 h
- `POST /v1/artifacts/batch/download-urls`     up to 20 of them, per-id errors
- `POST /v1/artifacts/<id>/links`              a share link (201)
- `DELETE /v1/links/<link_id>`                 revoke a share link

Byte routes (no auth; charged one rate token to the artifact's tenant):
- `GET|HEAD /d/<artifact_id>?e=<expiry>&s=<signature>`   signed download URL
- `GET|HEAD /l/<link_id>`                                share link
- `OPTIONS` on both answers CORS preflights for `server.cors_origins`.

`batch` in `/v1/artifacts/batch/download-urls` is a static segment: Sanic matches it before the
`<artifact_id>` routes, and no artifact route ends in `/download-urls`.
"""

from __future__ import annotations

from sanic import Blueprint, Request

from artifacta_box import errors
from artifacta_box.http import byteserve
from artifacta_box.http.common import (
    absolute_url,
    box_of,
    charge_rate,
    ok,
    parse_json_object,
    principal_of,
)
from artifacta_box.services import downloads, links
from artifacta_box.services.downloads import Grant

bp = Blueprint("downloads")


# ------------------------------------------------------------------------------ API


@bp.get("/v1/artifacts/<artifact_id:str>/download-url")
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


@bp.post("/v1/artifacts/<artifact_id:str>/links")
async def create_link(request: Request, artifact_id: str):
    # The official SDK and CLI POST with no body at all when no expiry is given.
    body = parse_json_object(request.body, required=False)
    link = await links.create_link(box_of(request), principal_of(request), artifact_id, body)
    return ok(
        {
            "link_id": link["link_id"],
            "url": absolute_url(request, link["path"]),
            "artifact_id": link["artifact_id"],
            "expires_at": link["expires_at"],
            "created_at": link["created_at"],
        },
        status=201,
    )


@bp.delete("/v1/links/<link_id:str>")
async def revoke_link(request: Request, link_id: str):
    return ok(await links.revoke_link(box_of(request), principal_of(request), link_id))


# ------------------------------------------------------------------------------ byte routes


async def _serve_grant(request: Request, grant: Grant, cors: dict[str, str]):
    box = box_of(request)
    charge_rate(request, grant.tenant_id, grant.plan.rate_sustained, grant.plan.rate_burst)
    blob = downloads.open_grant(box, grant)
    rep = byteserve.Representation(blob.path, blob.size, blob.sha256, blob.content_type, blob.filename)
    return await byteserve.serve(request, rep, cors, use_sendfile=box.settings.sendfile)


def _cors(request: Request) -> dict[str, str]:
    return byteserve.cors_headers(request.headers.get("origin"), box_of(request).settings.cors_origins)


@bp.route("/d/<artifact_id:str>", methods=["GET", "HEAD"])
async def signed_download(request: Request, artifact_id: str):
    cors = _cors(request)
    try:
        args = request.get_args(keep_blank_values=True)
        grant = await downloads.authorize_signed(
            box_of(request), request.method, artifact_id, args.get("e"), args.get("s")
        )
        return await _serve_grant(request, grant, cors)
    except errors.ApiError as exc:
        exc.headers.update(cors)  # a browser caller may read why
        raise


@bp.route("/l/<link_id:str>", methods=["GET", "HEAD"])
async def share_link(request: Request, link_id: str):
    cors = _cors(request)
    try:
        grant = await links.authorize_link(box_of(request), link_id)
        return await _serve_grant(request, grant, cors)
    except errors.ApiError as exc:
        exc.headers.update(cors)
        raise


@bp.options("/d/<artifact_id:str>")
async def signed_download_preflight(request: Request, artifact_id: str):
    return byteserve.preflight(request, box_of(request).settings.cors_origins)


@bp.options("/l/<link_id:str>")
async def share_link_preflight(request: Request, link_id: str):
    return byteserve.preflight(request, box_of(request).settings.cors_origins)
