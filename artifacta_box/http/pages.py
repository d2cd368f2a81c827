"""Publishing artifact pages (the API side; the pages themselves are `http/site.py`).

- `POST   /v1/artifacts/<id>/publish`   publish: 201 the first time, 200 after (same URL)
- `DELETE /v1/artifacts/<id>/publish`   take the page down (200, idempotent)
"""

from __future__ import annotations

from sanic import Blueprint, Request

from artifacta_box.http.common import absolute_url, box_of, ok, parse_json_object, principal_of
from artifacta_box.services import pages

bp = Blueprint("pages")


@bp.post("/v1/artifacts/<artifact_id:str>/publish", unquote=True)
async def publish(request: Request, artifact_id: str):
    body = parse_json_object(request.body, required=False)
    page, created = await pages.publish(box_of(request), principal_of(request), artifact_id, body)
    return ok(public_record(request, page), status=201 if created else 200)


@bp.delete("/v1/artifacts/<artifact_id:str>/publish", unquote=True)
async def unpublish(request: Request, artifact_id: str):
    return ok(await pages.unpublish(box_of(request), principal_of(request), artifact_id))


def public_record(request: Request, page: dict) -> dict:
    """The page as the API answers it: its `path` made the absolute `public_url`."""
    return {"page_id": page["page_id"], "public_url": absolute_url(request, page["path"]),
            "visibility": page["visibility"], "access": page["access"], "title": page["title"],
            "created_at": page["created_at"], "updated_at": page["updated_at"]}
