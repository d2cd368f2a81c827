"""Undelete within retention: `artifacta-box artifacts list --deleted` and `artifacts restore`.

A deleted artifact keeps its row, its blob reference and its bytes for `retention.deleted`
(30 days), answering 410; then gc purges it (services/lifecycle.py) and its id answers 404.
Until then an operator can bring it back as it was before the delete: same id, metadata,
session and expiry, and its signed URLs and share links that have not expired (or been
revoked) work again. Restoring

- charges the tenant for the bytes again, unless a live artifact already holds the same
  content (storage counts each distinct content once), and is refused with `quota_exceeded`
  when that would take the tenant past its plan's storage;
- counts the artifact in its session again;
- needs a new lifetime (`ttl`) when the artifact's expiry passed while it was deleted, since it
  would otherwise expire the moment it is restored;
- is recorded in the audit log (`artifact.restore`).

Expired artifacts are not restored here: their lifetime ended as asked (extend-ttl is the tool
before that). A presigned upload deleted before it completed has no bytes to restore.

The write is one transaction, a synchronous function of the writer's sqlite3 connection run
through `Database.execute_write_fn`.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from artifacta_box import errors
from artifacta_box.clock import iso, iso_in, parse_iso
from artifacta_box.context import Box
from artifacta_box.db import fetchone
from artifacta_box.services import tenants, usage, validation
from artifacta_box.services.audit import record_audit
from artifacta_box.storage import BlobRef
from artifacta_box.units import format_duration

# Deleted rows that still have their bytes, newest delete first: the partial index
# artifacts_deleted (deleted_at WHERE state = 'deleted') walked backwards, so a page costs the
# rows deleted within the retention period at most. Named, because for one tenant SQLite would
# otherwise pick (tenant_id, content_hash) and sort every artifact the tenant has.
_DELETED_SQL = (
    "SELECT a.*, t.name AS tenant FROM artifacts AS a INDEXED BY artifacts_deleted "
    "JOIN tenants AS t USING (tenant_id) "
    "WHERE a.state = 'deleted' AND a.deleted_at > ? AND a.content_hash IS NOT NULL{tenant} "
    "ORDER BY a.deleted_at DESC LIMIT ?"
)


def _purge_after(box: Box, deleted_at: str) -> str:
    """When gc may purge a row deleted at `deleted_at` (lifecycle's retention cutoff)."""
    return iso_in(parse_iso(deleted_at), box.settings.deleted_retention_seconds)


async def list_deleted(box: Box, tenant: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Deleted artifacts that can still be restored, newest delete first."""
    if limit < 1 or limit > 100_000:
        raise errors.InvalidRequest("--limit must be between 1 and 100000.")
    cutoff = iso_in(box.clock.now(), -box.settings.deleted_retention_seconds)
    if tenant is None:
        rows = await box.db.fetchall(_DELETED_SQL.format(tenant=""), (cutoff, limit))
    else:
        tenant_id = await tenants.require_tenant(box, tenant)
        rows = await box.db.fetchall(_DELETED_SQL.format(tenant=" AND a.tenant_id = ?"),
                                     (cutoff, tenant_id, limit))
    return [
        {
            "artifact_id": r["artifact_id"],
            "tenant": r["tenant"],
            "filename": r["filename"],
            "size_bytes": int(r["size_bytes"]),
            "session_id": r["session_id"],
            "created_at": r["created_at"],
            "expires_at": r["expires_at"],
            "deleted_at": r["deleted_at"],
            "purge_after": _purge_after(box, r["deleted_at"]),
        }
        for r in rows
    ]


async def restore_artifact(box: Box, artifact_id: str, ttl: str | None = None,
                           actor: str = "cli") -> dict[str, Any]:
    """Undelete `artifact_id` (see the module docstring). `ttl` ("7d", "never") gives it a new
    expiry counted from now; without it the artifact keeps the expiry it had."""
    # The bytes are looked up in their store first (no store I/O holds the writer): a deleted
    # row keeps its blob reference, so gc cannot take them before the job below runs.
    present = True
    stored = None
    if validation.is_artifact_id(artifact_id):
        stored = await box.db.fetchone(
            "SELECT a.tenant_id, a.content_hash, a.size_bytes, b.location FROM artifacts a "
            "LEFT JOIN blobs b ON b.tenant_id = a.tenant_id AND b.sha256 = a.content_hash "
            "WHERE a.artifact_id = ? AND a.state = 'deleted'", (artifact_id,))
    if stored is not None and stored["content_hash"] is not None:
        present = await box.blobs.stat(BlobRef(int(stored["tenant_id"]), stored["content_hash"],
                                               int(stored["size_bytes"]),
                                               stored["location"])) is not None

    def restore(conn: sqlite3.Connection) -> dict[str, Any]:
        now = box.clock.now()
        now_iso = iso(now)
        row = None
        if validation.is_artifact_id(artifact_id):
            row = fetchone(
                conn,
                "SELECT a.*, t.name AS tenant, t.plan AS plan_name FROM artifacts AS a "
                "JOIN tenants AS t USING (tenant_id) WHERE a.artifact_id = ?",
                (artifact_id,),
            )
        if row is None:
            raise errors.ArtifactNotFound(
                f"No artifact {artifact_id}: it never existed, or it was purged after "
                f"retention.deleted ({format_duration(box.settings.deleted_retention_seconds)})."
            )
        if row["state"] != "deleted":
            state = "pending (its upload has not completed)" if row["state"] == "pending" else row["state"]
            raise errors.InvalidRequest(
                f"Artifact {artifact_id} is not deleted (it is {state}); only deleted artifacts "
                "can be restored."
            )
        if row["content_hash"] is None:
            raise errors.InvalidRequest(
                f"Artifact {artifact_id} was deleted before its upload completed; it has no "
                "bytes to restore."
            )
        purge_after = _purge_after(box, row["deleted_at"])
        if purge_after <= now_iso:
            raise errors.ArtifactDeleted(
                f"Artifact {artifact_id} was deleted at {row['deleted_at']}, longer ago than "
                f"retention.deleted; gc purges it, it can no longer be restored."
            )
        plan = box.settings.plan(row["plan_name"])
        expires_at = row["expires_at"]
        if ttl is not None:
            seconds = validation.ttl_seconds(ttl, plan)
            expires_at = None if seconds is None else iso_in(now, seconds)
        elif expires_at is not None and expires_at <= now_iso:
            raise errors.InvalidRequest(
                f"Artifact {artifact_id} would have expired at {expires_at}, while it was "
                "deleted; give it a new lifetime, e.g. --ttl 7d."
            )
        tenant_id, sha256, size = int(row["tenant_id"]), row["content_hash"], int(row["size_bytes"])
        if not present:
            raise errors.InternalError(
                f"The bytes of {artifact_id} are missing from the blob store; run "
                "`artifacta-box check` and restore them from a backup."
            )
        usage.check_storage(conn, tenant_id, plan, usage.billable_bytes(
            conn, tenant_id, sha256, size), now_iso, f"restoring {artifact_id}")
        conn.execute(
            "UPDATE artifacts SET state = 'active', deleted_at = NULL, expires_at = ? WHERE id = ?",
            (expires_at, row["id"]),
        )
        billed = usage.restore_live(conn, tenant_id, sha256)
        if row["session_id"] is not None:
            conn.execute(
                "UPDATE sessions SET artifact_count = artifact_count + 1 "
                "WHERE tenant_id = ? AND session_id = ?", (tenant_id, row["session_id"]),
            )
        record_audit(conn, now_iso, actor, "artifact.restore", row["tenant"], artifact_id,
                     {"deleted_at": row["deleted_at"], "size_bytes": size,
                      "billed_bytes": billed, "expires_at": expires_at})
        return {"artifact_id": artifact_id, "tenant": row["tenant"], "filename": row["filename"],
                "size_bytes": size, "billed_bytes": billed, "expires_at": expires_at,
                "restored_at": now_iso}

    return await box.db.execute_write_fn(restore)
