"""Store-wide figures for `/metrics`: artifacts by state, blobs, bytes, the last gc run.

Each count is served by a partial index (one per artifact state) or a small table, so reading
them walks indexes, never the artifact rows; still, at a million artifacts that is 0.1-1 s, so
a scrape never reads them itself: `StoreGauges` keeps the last figures and recomputes them in
the background, at most once per `metrics.gauge_interval`.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from typing import Any

from artifacta_box.clock import parse_iso
from artifacta_box.context import Box
from artifacta_box.db import fetchall, fetchone

log = logging.getLogger("artifacta_box")

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


class StoreGauges:
    """`store_stats`, cached: a read returns the last figures at once and, when they are older
    than `interval` seconds, starts one background recomputation (never more than one at a
    time, whatever the number of scrapers). Only a read before the very first figures exist
    waits for them (`start` begins that computation when the server starts)."""

    def __init__(self, box: Box, interval: float, clock=time.monotonic) -> None:
        self._box = box
        self._interval = interval
        self._clock = clock
        self._value: dict[str, Any] | None = None
        self._computed_at = 0.0
        self._task: asyncio.Task | None = None
        self.computations = 0  # how many times the store was read (tests)

    def start(self) -> None:
        self._refresh()

    async def stop(self) -> None:
        """Cancel a computation in flight (the database is about to close)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass

    async def read(self) -> dict[str, Any]:
        if self._value is None:
            await asyncio.shield(self._refresh())
        elif self._clock() - self._computed_at >= self._interval:
            self._refresh()
        assert self._value is not None
        return self._value

    def _refresh(self) -> asyncio.Task:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._compute())
        return self._task

    async def _compute(self) -> None:
        try:
            value = await store_stats(self._box)
        except Exception:  # noqa: BLE001 - the last figures stay; retried at the next scrape
            log.exception("computing the store gauges for /metrics failed")
            if self._value is None:
                raise
            return
        value["computed_at"] = time.time()
        self._value, self._computed_at = value, self._clock()
        self.computations += 1
