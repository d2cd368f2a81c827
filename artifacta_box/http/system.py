"""GET /health: unauthenticated, not rate limited."""

from __future__ import annotations

import asyncio
import os
import sqlite3

from sanic import Blueprint, Request

from artifacta_box import __version__, errors
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
    return ok({"status": "ok", "version": __version__, "sqlite_version": sqlite3.sqlite_version})
