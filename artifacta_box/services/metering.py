"""Per-request accounting kept in memory: requests per tenant this month and each key's last
use, flushed to the database about once a second by the server (`Box.meter_loop`)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime

from artifacta_box.clock import iso
from artifacta_box.db import Database


@dataclass
class UsageMeter:
    """Counts API requests in memory and flushes them to the tenants table about once a second.

    A write per request would serialise every read on the writer; the cost is that a kill -9 can
    lose up to one interval of request counts (never artifacts).
    """

    pending_requests: dict[int, int] = field(default_factory=dict)
    key_last_used: dict[str, float] = field(default_factory=dict)  # Clock.time(), rendered at flush
    # requests of each tenant this process has handed to the database so far (never reset), so
    # a Principal cached a while ago can tell what it counted since (`counted_since`)
    flushed_requests: dict[int, int] = field(default_factory=dict)

    def count_request(self, tenant_id: int, key_id: str, at: float) -> None:
        self.pending_requests[tenant_id] = self.pending_requests.get(tenant_id, 0) + 1
        self.key_last_used[key_id] = at

    def pending_for(self, tenant_id: int) -> int:
        return self.pending_requests.get(tenant_id, 0)

    def flushed_for(self, tenant_id: int) -> int:
        return self.flushed_requests.get(tenant_id, 0)

    def counted_since(self, tenant_id: int, flushed_then: int) -> int:
        """Requests counted by this process since `flushed_for` read `flushed_then`: those
        flushed since (not in a row read back then) and those not flushed yet."""
        return self.flushed_for(tenant_id) - flushed_then + self.pending_for(tenant_id)

    async def flush(self, db: Database, month: str) -> None:
        if not self.pending_requests and not self.key_last_used:
            return
        requests, self.pending_requests = self.pending_requests, {}
        used, self.key_last_used = self.key_last_used, {}
        for tenant_id, n in requests.items():
            self.flushed_requests[tenant_id] = self.flushed_requests.get(tenant_id, 0) + n

        def write(conn: sqlite3.Connection) -> None:
            for tenant_id, n in requests.items():
                conn.execute(
                    "UPDATE tenants SET requests_count = CASE WHEN requests_month = ? "
                    "THEN requests_count + ? ELSE ? END, requests_month = ? WHERE tenant_id = ?",
                    (month, n, n, month, tenant_id),
                )
            conn.executemany(
                "UPDATE api_keys SET last_used_at = ? WHERE key_id = ?",
                [(iso(datetime.fromtimestamp(at, UTC)), key_id) for key_id, at in used.items()],
            )

        try:
            await db.execute_write_fn(write)
        except BaseException:
            # Put the counts back so a transient failure (busy database) loses nothing.
            for tenant_id, n in requests.items():
                self.pending_requests[tenant_id] = self.pending_requests.get(tenant_id, 0) + n
                self.flushed_requests[tenant_id] -= n
            for key_id, at in used.items():
                self.key_last_used.setdefault(key_id, at)
            raise
