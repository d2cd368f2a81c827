"""Reading and managing existing artifacts: `GET /v1/artifacts` (list), `GET`/`DELETE
/v1/artifacts/<id>` and `POST /v1/artifacts/<id>/extend-ttl`.

The upload routes (`POST /v1/artifacts`, `POST /v1/artifacts/upload-url`, `.../complete`) live
in `http/uploads.py`; Sanic matches static path segments before `<artifact_id>`, so
`/v1/artifacts/upload-url` is never taken for an artifact id.
"""

from __future__ import annotations

from sanic import Blueprint, Request

from artifacta_box.http.common import box_of, ok, parse_json_object, principal_of, query_pairs
from artifacta_box.services import artifacts, listing

bp = Blueprint("artifacts", url_prefix="/v1")


@bp.get("/artifacts")
async def list_artifacts(request: Request):
    principal = principal_of(request)
    query = listing.parse_artifact_query(query_pairs(request), principal.plan)
    page = await listing.list_artifacts(box_of(request), principal.tenant_id, query)
    return ok({"artifacts": page.items, "next_cursor": page.next_cursor, "has_more": page.has_more})


@bp.get("/artifacts/<artifact_id:str>", unquote=True)
async def get_artifact(request: Request, artifact_id: str):
    return ok(await artifacts.get_artifact(box_of(request), principal_of(request), artifact_id))


@bp.delete("/artifacts/<artifact_id:str>", unquote=True)
async def delete_artifact(request: Request, artifact_id: str):
    return ok(await artifacts.delete_artifact(box_of(request), principal_of(request), artifact_id))


@bp.post("/artifacts/<artifact_id:str>/extend-ttl", unquote=True)
async def extend_ttl(request: Request, artifact_id: str):
    body = parse_json_object(request.body, required=True)
    return ok(await artifacts.extend_ttl(box_of(request), principal_of(request), artifact_id, body))
