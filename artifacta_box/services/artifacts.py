"""Operations on one existing artifact: read it, soft-delete it, extend its TTL.

Every state change happens in one write transaction that first re-reads the row with
`records.load_artifact`, so the 404/410 precedence is decided on the committed state at that
instant: of two concurrent deletes exactly one succeeds and the other sees `deleted` (410), and
an artifact whose TTL passed a microsecond ago can no longer be extended.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from artifacta_box import errors
from artifacta_box.clock import iso, iso_in
from artifacta_box.context import Box
from artifacta_box.db import fetchone
from artifacta_box.services import usage, validation
from artifacta_box.services.audit import record_audit
from artifacta_box.services.records import artifact_record, load_artifact
from artifacta_box.services.principal import Principal


async def get_artifact(box: Box, principal: Principal, artifact_id: str) -> dict[str, Any]:
    """The public record; pending artifacts too (status `pending`)."""
    now_iso = iso(box.clock.now())
    row = await box.db.execute_fn(lambda conn: load_artifact(
        conn, principal.tenant_id, artifact_id, now_iso, allow_pending=True))
    return artifact_record(row)


async def delete_artifact(box: Box, principal: Principal, artifact_id: str) -> dict[str, Any]:
    """Soft delete: the artifact leaves lists and stops counting toward storage at once.

    Its row and blob reference stay until the retention purge (the 410 holds until then).
    A pending reservation may be deleted too; it never held a live reference.
    """
    def delete(conn: sqlite3.Connection) -> str:
        now_iso = iso(box.clock.now())
        row = load_artifact(conn, principal.tenant_id, artifact_id, now_iso, allow_pending=True)
        conn.execute(
            "UPDATE artifacts SET state = 'deleted', deleted_at = ? WHERE id = ?", (now_iso, row["id"])
        )
        released = 0
        if row["state"] == "active":
            released = usage.release_live(conn, principal.tenant_id, row["content_hash"])
            if row["session_id"] is not None:
                conn.execute(
                    "UPDATE sessions SET artifact_count = MAX(0, artifact_count - 1) "
                    "WHERE tenant_id = ? AND session_id = ?",
                    (principal.tenant_id, row["session_id"]),
                )
        record_audit(
            conn, now_iso, principal.actor, "artifact.delete", principal.tenant_name, artifact_id,
            {"state": row["state"], "size_bytes": int(row["size_bytes"]), "released_bytes": released},
        )
        return now_iso

    deleted_at = await box.db.execute_write_fn(delete)
    return {"artifact_id": artifact_id, "deleted": True, "deleted_at": deleted_at}


async def extend_ttl(box: Box, principal: Principal, artifact_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Set `expires_at` to now + ttl (`never` → null). It only extends: an earlier result is 400."""
    if "ttl" not in body or body["ttl"] is None or body["ttl"] == "":
        raise errors.InvalidRequest("ttl is required, e.g. {\"ttl\": \"30d\"} or {\"ttl\": \"never\"}.")
    seconds = validation.ttl_seconds(body["ttl"], principal.plan)

    def extend(conn: sqlite3.Connection) -> Any:
        now = box.clock.now()
        now_iso = iso(now)
        row = load_artifact(conn, principal.tenant_id, artifact_id, now_iso)
        new_expiry = None if seconds is None else iso_in(now, seconds)
        current = row["expires_at"]
        if new_expiry is not None and (current is None or new_expiry < current):
            shown = "never" if current is None else current
            raise errors.InvalidRequest(
                f"ttl {body['ttl']} would move the expiry of {artifact_id} earlier, to {new_expiry} "
                f"(it expires {shown}); extend-ttl can only extend."
            )
        if new_expiry != current:
            conn.execute("UPDATE artifacts SET expires_at = ? WHERE id = ?", (new_expiry, row["id"]))
            record_audit(
                conn, now_iso, principal.actor, "artifact.extend_ttl", principal.tenant_name,
                artifact_id, {"from": current, "to": new_expiry},
            )
        return fetchone(conn, "SELECT * FROM artifacts WHERE id = ?", (row["id"],))

    return artifact_record(await box.db.execute_write_fn(extend))
