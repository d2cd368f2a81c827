"""The audit trail of admin and destructive actions (key create/revoke, tenant changes,
deletes, seals). Written inside the same transaction as the action it records."""

from __future__ import annotations

import json
from typing import Any


async def record_audit(
    conn,
    at: str,
    actor: str,
    action: str,
    tenant: str | None,
    target: str | None,
    details: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO audit_log (at, actor, action, tenant, target, details) VALUES (?, ?, ?, ?, ?, ?)",
        (at, actor, action, tenant, target, json.dumps(details or {}, separators=(",", ":"))),
    )
