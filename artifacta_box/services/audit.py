"""The audit trail of admin and destructive actions (key create/revoke, tenant changes,
deletes, seals, gc runs from the CLI, repairs, backups and restores). Written inside the same
transaction as the action it records; read with `artifacta-box audit`."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from artifacta_box import errors
from artifacta_box.clock import iso, parse_iso
from artifacta_box.context import Box


def record_audit(
    conn: sqlite3.Connection,
    at: str,
    actor: str,
    action: str,
    tenant: str | None,
    target: str | None,
    details: dict[str, Any] | None = None,
) -> None:
    conn.execute(
        "INSERT INTO audit_log (at, actor, action, tenant, target, details) VALUES (?, ?, ?, ?, ?, ?)",
        (at, actor, action, tenant, target, json.dumps(details or {}, separators=(",", ":"))),
    )


async def query_audit(
    box: Box,
    *,
    tenant: str | None = None,
    action: str | None = None,
    since: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Audit entries, newest first. `action` matches exactly or as a prefix group (`key` matches
    `key.create` and `key.revoke`); `since` is an ISO 8601 date-time (or date)."""
    if limit < 1 or limit > 100_000:
        raise errors.InvalidRequest("--limit must be between 1 and 100000.")
    where, params = [], []
    if since is not None:
        text = since.strip()
        if len(text) == 10:  # a bare date
            text += "T00:00:00Z"
        try:
            where.append("at >= ?")
            params.append(iso(parse_iso(text)))
        except ValueError:
            raise errors.InvalidRequest(
                f"--since {since!r} is not a date or date-time such as 2026-01-31 or "
                "2026-01-31T12:00:00Z."
            ) from None
    if tenant is not None:
        where.append("tenant = ?")
        params.append(tenant)
    if action is not None:
        where.append("(action = ? OR action LIKE ? ESCAPE '\\')")
        escaped = action.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params += [action, escaped.rstrip(".") + ".%"]
    sql = "SELECT * FROM audit_log"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY at DESC, id DESC LIMIT ?"
    rows = await box.db.fetchall(sql, (*params, limit))
    return [
        {
            "at": r["at"],
            "actor": r["actor"],
            "action": r["action"],
            "tenant": r["tenant"],
            "target": r["target"],
            "details": json.loads(r["details"] or "{}"),
        }
        for r in rows
    ]
