"""Reading and managing existing artifacts: `GET /v1/artifacts` (list), `GET`/`DELETE
/v1/artifacts/<id>` and `POST /v1/artifacts/<id>/extend-ttl`.

The upload routes (`POST /v1/artifacts`, `POST /v1/artifacts/upload-url`) live in
`http/artifacts.py`; Sanic matches static path segments before `<artifact_id>`, so
`/v1/artifacts/upload-url` is never taken for an artifact id.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from sanic import Blueprint, Request

from artifacta_box import errors
from artifacta_box.http.common import box_of, ok, parse_json_object, principal_of
from artifacta_box.services import artifact_ops, listing

bp = Blueprint("artifacts_read", url_prefix="/v1")


def query_pairs(request: Request) -> list[tuple[str, str]]:
    """Every query parameter as decoded, blanks kept, in order."""
    try:
        return parse_qsl(request.query_string, keep_blank_values=True,
                         max_num_fields=listing.MAX_QUERY_FIELDS)
    except ValueError:
        raise errors.InvalidRequest(
            f"Too many query parameters (at most {listing.MAX_QUERY_FIELDS})."
        ) from None


@bp.get("/artifacts")
async def list_artifacts(request: Request):
    principal = principal_of(request)
    query = listing.parse_artifact_query(query_pairs(request), principal.plan)
    page = await listing.list_artifacts(box_of(request), principal.tenant_id, query)
    return ok({"artifacts": page.items, "next_cursor": page.next_cursor, "has_more": page.has_more})


@bp.get("/artifacts/<artifact_id:str>")
async def get_artifact(request: Request, artifact_id: str):
    return ok(await artifact_ops.get_artifact(box_of(request), principal_of(request), artifact_id))


@bp.delete("/artifacts/<artifact_id:str>")
async def delete_artifact(request: Request, artifact_id: str):
    return ok(await artifact_ops.delete_artifact(box_of(request), principal_of(request), artifact_id))


@bp.post("/artifacts/<artifact_id:str>/extend-ttl")
async def extend_ttl(request: Request, artifact_id: str):
    body = parse_json_object(request.body, required=True)
    return ok(await artifact_ops.extend_ttl(box_of(request), principal_of(request), artifact_id, body))
