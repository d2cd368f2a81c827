"""GET /health: unauthenticated, not rate limited.

503 when the box cannot serve (database silent, data directory unwritable, shutting down);
otherwise 200 — it is alive — with `status` `ok`, or `degraded` and a `reason` when it serves
only part of its API (below the free-space reserve: reads, deletes and links work, uploads are
refused). A load balancer keeps routing to a degraded box; a monitor alerts on the status.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3

from sanic import Blueprint, Request

from artifacta_box import __version__, errors
from artifacta_box.context import Box
from artifacta_box.http.common import box_of, ok

bp = Blueprint("system")


@bp.get("/health")
async def health(request: Request):
    box = box_of(request)
    try:
        await asyncio.wait_for(box.db.fetchone("SELECT 1"), timeout=5)
    except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
        raise errors.Unavailable(f"The database does not answer: {exc}") from None
    for d in (box.root, box.blobs.local.tmp_root, box.blobs.local.blob_root):
        if not os.access(d, os.W_OK | os.X_OK):
            raise errors.Unavailable(f"The data directory {d} is not writable.")
    if box.shutting_down:
        raise errors.Unavailable("The server is shutting down.")
    body = {"status": "ok", "version": __version__, "sqlite_version": sqlite3.sqlite_version}
    reasons = degraded_reasons(box)
    if reasons:
        body.update(status="degraded", reason="; ".join(reasons))
    if box.blobs.backend != "local":
        # From the start-up probe: a health check sends no request to the store.
        body.update(blobs=box.blobs.backend, direct_uploads=box.blobs.direct_uploads)
    return ok(body)


def degraded_reasons(box: Box) -> list[str]:
    """What the box cannot do right now although it is alive."""
    reserve = box.reserve
    try:
        free = reserve.free_bytes()
    except OSError as exc:
        return [f"free disk space cannot be read ({exc.strerror or exc})"]
    if free < reserve.min_free_bytes:
        return [f"free disk space ({free} bytes) is below the reserve of {reserve.min_free_bytes} "
                "bytes (storage.min_free_bytes): uploads are refused until space returns"]
    return []
