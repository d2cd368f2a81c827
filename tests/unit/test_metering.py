"""The request meter's flush: request counts per tenant and month, and each key's last use
rendered as the API renders every time (`clock.iso`), from the instant the request came."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from artifacta_box.clock import iso
from artifacta_box.db import Database
from artifacta_box.services.metering import UsageMeter


def test_flush_writes_counts_and_the_keys_last_use(tmp_path):
    async def run() -> tuple:
        db = Database(tmp_path / "box.db")
        await db.open()
        try:
            await db.execute_write_fn(lambda c: (
                c.execute("INSERT INTO tenants (tenant_id, name, plan, created_at) "
                          "VALUES (1, 't', 'p', '2026-01-01T00:00:00.000000Z')"),
                c.execute("INSERT INTO api_keys (key_id, tenant_id, key_hash, name, last4, "
                          "created_at) "
                          "VALUES ('k1', 1, 'h', 'n', 'abcd', '2026-01-01T00:00:00.000000Z')")))
            meter = UsageMeter()
            at = datetime(2026, 12, 2, 9, 30, 1, 250000, tzinfo=UTC).timestamp()
            meter.count_request(1, "k1", at - 5)
            meter.count_request(1, "k1", at)
            await meter.flush(db, "2026-12")
            tenant = await db.fetchone("SELECT requests_month, requests_count FROM tenants")
            key = await db.fetchone("SELECT last_used_at FROM api_keys")
            return tuple(tenant), key[0], meter.counted_since(1, 0)
        finally:
            await db.close()

    tenant, last_used, counted = asyncio.run(run())
    assert tenant == ("2026-12", 2) and counted == 2
    assert last_used == "2026-12-02T09:30:01.250000Z" == iso(datetime(2026, 12, 2, 9, 30, 1,
                                                                       250000, tzinfo=UTC))
