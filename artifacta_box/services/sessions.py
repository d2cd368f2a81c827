"""Sessions: listing them by recent activity, and sealing one.

A session exists once any artifact has used its id (`uploads.record_session_use` creates the
row). `artifact_count` counts the session's artifacts that were uploaded and not deleted.

Listing order is most recent activity first: `last_artifact_at DESC, session_id DESC`, served
by the `sessions_by_activity` index, paged with a signed keyset cursor. `created_after` and
`created_before` (exclusive) filter on when the session was created, i.e. its
`first_artifact_at` — what the official CLI documents ("first artifact after/before this
timestamp"). A session's first activity is never later than its last, so `created_after` also
bounds the index range (`last_artifact_at > created_after`): a query for recent sessions reads
only recent index entries. Because a session moves to the top when it gets a new artifact, a
session active while a client pages may be seen twice or missed; sessions that stay untouched
are listed exactly once.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from artifacta_box import errors
from artifacta_box.clock import iso
from artifacta_box.config import Plan
from artifacta_box.context import Box
from artifacta_box.db import fetchone
from artifacta_box.services import validation
from artifacta_box.services.audit import record_audit
from artifacta_box.services.listing import (
    Page,
    decode_position,
    page_of,
    parse_limit,
    parse_time_bound,
    single_values,
)
from artifacta_box.services.principal import Principal


def parse_session_query(pairs: list[tuple[str, str]], plan: Plan) -> dict[str, Any]:
    """Validate the query of `GET /v1/sessions`; the cursor is `after` (`cursor` is an alias)."""
    params = single_values(pairs)
    if params.get("after") and params.get("cursor") and params["after"] != params["cursor"]:
        raise errors.InvalidRequest("Give the cursor once, as 'after' (or its alias 'cursor').")
    return {
        "created_after": parse_time_bound("created_after", params.get("created_after")),
        "created_before": parse_time_bound("created_before", params.get("created_before")),
        "limit": parse_limit(params.get("limit")),
        "cursor": params.get("after") or params.get("cursor") or None,
    }


def _scope(query: dict[str, Any]) -> dict[str, Any]:
    return {"list": "sessions", "created_after": query["created_after"],
            "created_before": query["created_before"]}


def build_sessions_sql(
    tenant_id: int, query: dict[str, Any], after: tuple[str, str] | None, fetch: int
) -> tuple[str, list[Any]]:
    """SQL and parameters for one page of sessions (exposed for EXPLAIN QUERY PLAN tests)."""
    where = ["tenant_id = ?", "last_artifact_at IS NOT NULL"]
    params: list[Any] = [tenant_id]
    if query["created_after"] is not None:
        where += ["last_artifact_at > ?", "first_artifact_at > ?"]
        params += [query["created_after"], query["created_after"]]
    if query["created_before"] is not None:
        where.append("first_artifact_at < ?")
        params.append(query["created_before"])
    if after is not None:
        where.append("(last_artifact_at, session_id) < (?, ?)")
        params += [after[0], after[1]]
    sql = (
        "SELECT session_id, artifact_count, first_artifact_at, last_artifact_at, sealed_at "
        "FROM sessions INDEXED BY sessions_by_activity WHERE " + " AND ".join(where)
        + " ORDER BY last_artifact_at DESC, session_id DESC LIMIT ?"
    )
    params.append(fetch)
    return sql, params


def session_record(row: Any) -> dict[str, Any]:
    return {
        "session_id": row["session_id"],
        "artifact_count": int(row["artifact_count"]),
        "is_sealed": row["sealed_at"] is not None,
        "first_artifact_at": row["first_artifact_at"],
        "last_artifact_at": row["last_artifact_at"],
        "sealed_at": row["sealed_at"],
    }


async def list_sessions(box: Box, tenant_id: int, query: dict[str, Any]) -> Page:
    scope = _scope(query)
    after = decode_position(box, tenant_id, query["cursor"], scope)
    sql, params = build_sessions_sql(tenant_id, query, after, query["limit"] + 1)
    rows = await box.db.fetchall(sql, params)
    return page_of(box, tenant_id, scope, rows, query["limit"],
                   lambda r: [r["last_artifact_at"], r["session_id"]], session_record)


async def seal_session(box: Box, principal: Principal, session_id: str) -> dict[str, Any]:
    """Seal a session (irreversible, idempotent: sealing again returns the first sealed_at).

    Uploads check the seal inside their own commit transaction, so once this commits no upload
    path can add an artifact to the session.
    """
    validation.label("session_id", session_id)

    def seal(conn: sqlite3.Connection) -> tuple[str, int]:
        row = fetchone(
            conn, "SELECT * FROM sessions WHERE tenant_id = ? AND session_id = ?",
            (principal.tenant_id, session_id),
        )
        if row is None:
            raise errors.SessionNotFound(
                f"Session {session_id} was not found: no artifact has been uploaded with that session_id."
            )
        sealed_at = row["sealed_at"]
        if sealed_at is None:
            sealed_at = iso(box.clock.now())
            conn.execute(
                "UPDATE sessions SET sealed_at = ? WHERE tenant_id = ? AND session_id = ?",
                (sealed_at, principal.tenant_id, session_id),
            )
            record_audit(conn, sealed_at, principal.actor, "session.seal",
                         principal.tenant_name, session_id,
                         {"artifact_count": int(row["artifact_count"])})
        return sealed_at, int(row["artifact_count"])

    sealed_at, artifact_count = await box.db.execute_write_fn(seal)
    return {
        "session_id": session_id,
        "status": "sealed",
        "sealed_at": sealed_at,
        "artifact_count": artifact_count,
    }
