"""Periodic work inside `serve`: the lifecycle run (expiry, purge, stale uploads, orphan blobs,
links, idempotency keys, old temp files) every `[retention] gc_interval`; the free-space ballast
kept in place (`ballast_loop`).

Each run works in bounded batches (see services.lifecycle), so API requests keep getting the
writer between batches. The walk of the blob directory for row-less files is the only step whose
cost grows with the store rather than with the work to do, and an orphan cannot be deleted
before its grace has passed anyway, so it runs at most once per orphan grace.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from artifacta_box.context import Box
from artifacta_box.services import lifecycle

log = logging.getLogger("artifacta_box.jobs")


async def lifecycle_loop(
    box: Box,
    on_result: Callable[[dict[str, Any] | None], None] | None = None,
) -> None:
    """Run gc every gc_interval (the first one interval after start-up) until cancelled.
    `on_result` gets each run's figures (None when a run failed), for the metrics."""
    settings = box.settings
    interval = float(settings.gc_interval_seconds)
    scan_every = max(interval, float(settings.orphan_grace_seconds))
    last_scan: float | None = None
    while True:
        await asyncio.sleep(interval)
        scan = last_scan is None or time.monotonic() - last_scan >= scan_every
        try:
            report = await lifecycle.run_gc(box, scan_disk=scan, wait_for_lock=False)
        except lifecycle.GcBusy:
            # Another worker process or an `artifacta-box gc` is doing the work right now.
            log.debug("lifecycle run skipped: another gc run holds the lock")
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("lifecycle run failed; retrying in %ss", int(interval))
            if on_result is not None:
                on_result(None)
        else:
            if scan:
                last_scan = time.monotonic()
            if on_result is not None:
                on_result(report.as_dict())


BALLAST_CHECK_SECONDS = 5.0


async def ballast_loop(box: Box, interval: float = BALLAST_CHECK_SECONDS) -> None:
    """Keep the free-space ballast in place (storage.reserve): made at start-up, put back within
    `interval` once space returns after it was released."""
    reserve = box.reserve
    while True:
        try:
            await asyncio.to_thread(reserve.ensure_ballast)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("could not put the free-space ballast in place; retrying")
        await asyncio.sleep(interval)
