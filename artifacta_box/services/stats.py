"""Store-wide figures for `/metrics`: artifacts by state, blobs, bytes, the last gc run.

Each count is served by a partial index (one per artifact state) or a small table, so a scrape
walks indexes, never the artifact rows.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from artifacta_box.clock import parse_iso
from artifacta_box.context import Box
from artifacta_box.db import fetchall, fetchone

# One query per state so each uses that state's partial index instead of scanning the table.
_STATE_COUNTS = {
    "active": "SELECT COUNT(*) FROM artifacts WHERE state = 'active'",
    "pending": "SELECT COUNT(*) FROM artifacts WHERE state = 'pending'",
    "expired": "SELECT COUNT(*) FROM artifacts WHERE state = 'expired'",
    "deleted": "SELECT COUNT(*) FROM artifacts WHERE state = 'deleted'",
}


def _read_stats(conn: sqlite3.Connection) -> tuple[dict[str, int], Any, Any, list[Any]]:
    by_state = {state: int(fetchone(conn, sql)[0]) for state, sql in _STATE_COUNTS.items()}
    blobs = fetchone(conn, "SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM blobs")
    tenants = fetchone(conn, "SELECT COUNT(*), COALESCE(SUM(storage_bytes), 0) FROM tenants")
    last = fetchall(
        conn, "SELECT * FROM gc_runs WHERE finished_at IS NOT NULL ORDER BY id DESC LIMIT 1"
    )
    return by_state, blobs, tenants, last


async def store_stats(box: Box) -> dict[str, Any]:
    by_state, blobs, tenants, last = await box.db.execute_fn(_read_stats)
    last_gc: dict[str, Any] = {}
    if last:
        r = last[0]
        last_gc = {
            "finished_at": parse_iso(r["finished_at"]).timestamp(),
            "expired": r["expired"],
            "purged_artifacts": r["purged_artifacts"],
            "purged_pending": r["purged_pending"],
            "deleted_blobs": r["deleted_blobs"],
            "reclaimed_bytes": r["reclaimed_bytes"],
            "dropped_links": r["dropped_links"],
        }
    return {
        "artifacts_by_state": by_state,
        "blobs": int(blobs[0]),
        "blob_bytes": int(blobs[1]),
        "tenants": int(tenants[0]),
        "billed_bytes": int(tenants[1]),
        "last_gc": last_gc,
    }
