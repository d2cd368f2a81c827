"""Blob references and storage usage, kept exact inside the write transactions that change them.

- blobs.refs: rows referencing the blob in any committed state (active, expired, deleted) —
  the blob file may be deleted only when it is 0 (and its grace has passed).
- blobs.live_refs: live `active` rows referencing it. tenants.storage_bytes is the sum of
  size_bytes over the tenant's blobs with live_refs > 0 (each distinct live blob counted once).

An artifact leaves "live" when deleted or when its expiry is processed; expiry is processed
lazily by `expire_due` (called before any usage figure is read, and before a limit is found
exceeded) and by the periodic sweep, so usage drops the instant an artifact expires as far as any reader can tell.
"""

from __future__ import annotations

import sqlite3

from artifacta_box import errors
from artifacta_box.config import Plan
from artifacta_box.db import fetchall, fetchone

# Each rule is one synchronous function of a sqlite3 connection, called from inside the write
# transaction (`Database.execute_write_fn`) that changes what it accounts for.


_REFERENCE_SQL = (
    "INSERT INTO blobs (tenant_id, sha256, size_bytes, refs, live_refs, created_at, location) "
    "VALUES (?, ?, ?, 1, 1, ?, ?) ON CONFLICT (tenant_id, sha256) DO UPDATE SET "
    "refs = refs + 1, live_refs = live_refs + 1, unreferenced_at = NULL "
    "RETURNING live_refs, location"
)
_CHARGE_SQL = (
    "UPDATE tenants SET storage_bytes = storage_bytes + ? "
    "WHERE tenant_id = ? AND storage_bytes + ? <= ? RETURNING storage_bytes"
)


def add_reference_within_quota(conn: sqlite3.Connection, tenant_id: int, plan: Plan,
                               sha256: str, size: int, now_iso: str, location: str | None,
                               adding: str) -> bool:
    """Reference a blob from a newly active artifact whose bytes were received at `location`
    (storage/blobs.py), charging the tenant's storage for them, in two statements (the upload
    commits' hot path). A new blob row records that location; on a dedup hit the row keeps
    its own. The bytes are billed only when no live artifact held them, and only if they fit
    the plan; else 403 quota_exceeded, as `check_storage` words it. Due expiries are processed
    only when the bytes do not fit as things stand: they can only lower usage, so they change
    the answer only then. Raising leaves the caller's SAVEPOINT to undo the reference.

    Returns whether the row names `location`, i.e. whether the received bytes are the ones
    kept (False: they are a duplicate of bytes stored elsewhere, to be deleted after the
    commit unless the store shares one copy per content)."""
    row = fetchone(conn, _REFERENCE_SQL, (tenant_id, sha256, size, now_iso, location))
    kept = row["location"] == location
    if row["live_refs"] == 1:  # no live artifact held these bytes: they are billed
        charge = (size, tenant_id, size, plan.storage_bytes)
        if fetchone(conn, _CHARGE_SQL, charge) is None:
            expire_due(conn, now_iso, tenant_id=tenant_id)
            if fetchone(conn, _CHARGE_SQL, charge) is None:
                check_storage(conn, tenant_id, plan, size, now_iso, adding)
    return kept


def billable_bytes(conn: sqlite3.Connection, tenant_id: int, sha256: str, size: int) -> int:
    """Bytes that referencing this content would add to usage (0 if a live blob already has it)."""
    row = fetchone(
        conn, "SELECT live_refs FROM blobs WHERE tenant_id = ? AND sha256 = ?", (tenant_id, sha256)
    )
    return 0 if row is not None and row["live_refs"] > 0 else size


def release_live(conn: sqlite3.Connection, tenant_id: int, sha256: str) -> int:
    """An artifact stopped being live (deleted or expired). Returns the bytes released."""
    row = fetchone(
        conn, "SELECT live_refs, size_bytes FROM blobs WHERE tenant_id = ? AND sha256 = ?",
        (tenant_id, sha256),
    )
    if row is None or row["live_refs"] <= 0:
        return 0
    conn.execute(
        "UPDATE blobs SET live_refs = live_refs - 1 WHERE tenant_id = ? AND sha256 = ?", (tenant_id, sha256)
    )
    if row["live_refs"] == 1:
        conn.execute(
            "UPDATE tenants SET storage_bytes = MAX(0, storage_bytes - ?) WHERE tenant_id = ?",
            (row["size_bytes"], tenant_id),
        )
        return int(row["size_bytes"])
    return 0


def restore_live(conn: sqlite3.Connection, tenant_id: int, sha256: str) -> int:
    """A deleted artifact is live again (undelete, services.recovery): the reverse of
    `release_live`. Returns the bytes billed again (0 when a live artifact already holds the
    same content). The deleted row kept its reference, so the blob row is there."""
    row = fetchone(
        conn, "SELECT live_refs, size_bytes FROM blobs WHERE tenant_id = ? AND sha256 = ?",
        (tenant_id, sha256),
    )
    if row is None:
        raise errors.InternalError(
            f"blob {sha256} of tenant {tenant_id} has no row; run `artifacta-box check --repair`"
        )
    conn.execute(
        "UPDATE blobs SET live_refs = live_refs + 1, unreferenced_at = NULL "
        "WHERE tenant_id = ? AND sha256 = ?", (tenant_id, sha256),
    )
    if row["live_refs"] > 0:
        return 0
    conn.execute("UPDATE tenants SET storage_bytes = storage_bytes + ? WHERE tenant_id = ?",
                 (row["size_bytes"], tenant_id))
    return int(row["size_bytes"])


def check_storage(conn: sqlite3.Connection, tenant_id: int, plan: Plan, billable: int,
                  now_iso: str, adding: str) -> None:
    """403 quota_exceeded when `billable` new bytes (counted after dedup) would take the
    tenant past its plan's storage. `adding` names what adds them ("this upload")."""
    if billable <= 0:
        return
    expire_due(conn, now_iso, tenant_id=tenant_id)
    row = fetchone(conn, "SELECT storage_bytes FROM tenants WHERE tenant_id = ?", (tenant_id,))
    used = int(row["storage_bytes"]) if row else 0
    if used + billable > plan.storage_bytes:
        raise errors.QuotaExceeded(
            f"Storage quota exceeded: {used:,} of {plan.storage_bytes:,} bytes used and {adding} "
            f"adds {billable:,}; delete artifacts or ask for a larger plan."
        )


def drop_reference(conn: sqlite3.Connection, tenant_id: int, sha256: str, now_iso: str) -> None:
    """A row referencing the blob was purged. At refs = 0 the blob becomes collectable."""
    conn.execute(
        "UPDATE blobs SET refs = MAX(0, refs - 1), "
        "unreferenced_at = CASE WHEN refs <= 1 THEN ? ELSE unreferenced_at END "
        "WHERE tenant_id = ? AND sha256 = ?",
        (now_iso, tenant_id, sha256),
    )


def expire_due(conn: sqlite3.Connection, now_iso: str, tenant_id: int | None = None,
               limit: int = 1000) -> int:
    """Process the expiry of active artifacts past expires_at: state `expired`, usage released.

    Bounded by `limit` per call so it never holds the writer for long. Returns rows processed.
    """
    if tenant_id is None:
        rows = fetchall(
            conn,
            "SELECT id, tenant_id, content_hash FROM artifacts WHERE state = 'active' "
            "AND expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at LIMIT ?",
            (now_iso, limit),
        )
    else:
        rows = fetchall(
            conn,
            "SELECT id, tenant_id, content_hash FROM artifacts WHERE tenant_id = ? AND state = 'active' "
            "AND expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at LIMIT ?",
            (tenant_id, now_iso, limit),
        )
    for r in rows:
        conn.execute(
            "UPDATE artifacts SET state = 'expired', expired_at = ? WHERE id = ?", (now_iso, r["id"])
        )
        release_live(conn, r["tenant_id"], r["content_hash"])
    return len(rows)


def has_due_expiry(conn: sqlite3.Connection, tenant_id: int, now_iso: str) -> bool:
    row = fetchone(
        conn,
        "SELECT 1 FROM artifacts WHERE tenant_id = ? AND state = 'active' AND expires_at IS NOT NULL "
        "AND expires_at <= ? LIMIT 1",
        (tenant_id, now_iso),
    )
    return row is not None

