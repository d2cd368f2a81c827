"""Share links.

API (authenticated, /v1):
- `POST /v1/artifacts/<id>/links`    a share link (201)
- `DELETE /v1/links/<link_id>`       revoke it

Byte route (no auth; charged one rate token to the artifact's tenant):
- `GET|HEAD /l/<link_id>`; `OPTIONS` answers CORS preflights for `server.cors_origins`.
"""

from __future__ import annotations

from sanic import Blueprint, Request

from artifacta_box.http.common import absolute_url, box_of, ok, parse_json_object, principal_of
from artifacta_box.http.grants import preflight, serve_grant
from artifacta_box.services import links

bp = Blueprint("links")


@bp.post("/v1/artifacts/<artifact_id:str>/links", unquote=True)
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


@bp.delete("/v1/links/<link_id:str>", unquote=True)
async def revoke_link(request: Request, link_id: str):
    return ok(await links.revoke_link(box_of(request), principal_of(request), link_id))


@bp.route("/l/<link_id:str>", unquote=True, methods=["GET", "HEAD"])
async def share_link(request: Request, link_id: str):
    return await serve_grant(request, links.authorize_link(box_of(request), link_id))


@bp.options("/l/<link_id:str>", unquote=True)
async def share_link_preflight(request: Request, link_id: str):
    return preflight(request)
