"""Helpers for the tests of listing, reading, deleting, extending and sealing: every page of a
listing, and the audit log rows of an action."""

from __future__ import annotations

import sqlite3
from typing import Any

import httpx

from tests.helpers import BoxServer, rows


def audit_rows(server: BoxServer, action: str, target: str) -> list[sqlite3.Row]:
    return rows(server, "SELECT * FROM audit_log WHERE action = ? AND target = ? ORDER BY id",
                (action, target))


def list_all(client: httpx.Client, limit: int, **params: str) -> list[dict[str, Any]]:
    """Every page of GET /v1/artifacts, following next_cursor."""
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        q = {**params, "limit": str(limit)}
        if cursor:
            q["cursor"] = cursor
        r = client.get("/v1/artifacts", params=q)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["artifacts"]) <= limit
        out.extend(body["artifacts"])
        if not body["has_more"]:
            assert body["next_cursor"] is None
            return out
        assert body["next_cursor"]
        cursor = body["next_cursor"]
