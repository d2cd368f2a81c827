"""`GET /v1/sessions` and `POST /v1/sessions/<session_id>/seal`.

The official SDK and CLI build the sessions query string by hand without URL-encoding, so a
`+00:00` offset arrives as a space; `clock.parse_iso` takes it back.
"""

from __future__ import annotations

from sanic import Blueprint, Request

from artifacta_box.http.common import box_of, ok, principal_of, query_pairs
from artifacta_box.services import sessions

bp = Blueprint("sessions", url_prefix="/v1")


@bp.get("/sessions")
async def list_sessions(request: Request):
    principal = principal_of(request)
    query = sessions.parse_session_query(query_pairs(request), principal.plan)
    page = await sessions.list_sessions(box_of(request), principal.tenant_id, query)
    return ok({"sessions": page.items, "next_cursor": page.next_cursor, "has_more": page.has_more})


@bp.post("/sessions/<session_id:str>/seal", unquote=True)
async def seal_session(request: Request, session_id: str):
    return ok(await sessions.seal_session(box_of(request), principal_of(request), session_id))
