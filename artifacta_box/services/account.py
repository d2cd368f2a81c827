"""What `whoami` reports about the caller's tenant: requests this month, storage used, active
share links and published pages. It reads across tenants, usage, links and pages, so it lives
above them all."""

from __future__ import annotations

import sqlite3

from artifacta_box.clock import iso
from artifacta_box.context import Box
from artifacta_box.db import fetchone
from artifacta_box.services import usage
from artifacta_box.services.links import count_active_links
from artifacta_box.services.pages import count_active_pages
from artifacta_box.services.principal import Principal


def requests_this_month(box: Box, principal: Principal) -> int:
    """Requests counted so far this month, including those not yet flushed to the database."""
    stored = principal.requests_count if principal.requests_month == box.month() else 0
    return stored + box.meter.counted_since(principal.tenant_id, principal.requests_flushed_then)


async def tenant_usage(box: Box, tenant_id: int) -> dict:
    """Storage usage, active links and active pages of a tenant, as whoami shows them."""
    now = iso(box.clock.now())
    if await box.db.execute_fn(lambda conn: usage.has_due_expiry(conn, tenant_id, now)):
        # expired artifacts stop counting at once, not only when the sweep passes
        await box.db.execute_write_fn(
            lambda conn: usage.expire_due(conn, now, tenant_id=tenant_id, limit=100_000))

    def read(conn: sqlite3.Connection) -> dict:
        t = fetchone(conn, "SELECT storage_bytes FROM tenants WHERE tenant_id = ?", (tenant_id,))
        links = count_active_links(conn, tenant_id, now)
        pages = count_active_pages(conn, tenant_id, now)
        return {"storage_bytes": int(t["storage_bytes"]) if t else 0, "active_links": links,
                "active_pages": pages}

    return await box.db.execute_fn(read)
