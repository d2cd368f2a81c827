"""Helpers for the tests of listing, reading, deleting, extending and sealing: a fresh tenant on a
running server, real HTTP uploads, and direct access to the server's SQLite file for what a test
cannot wait for (moving `expires_at` into the past) or must inspect (the audit log)."""

from __future__ import annotations

import json
import sqlite3
import uuid
from typing import Any

import httpx

from tests.conftest import BoxServer

PAST = "2000-01-01T00:00:00.000000Z"


def new_tenant(server: BoxServer, plan: str | None = None, prefix: str = "t") -> tuple[str, httpx.Client]:
    """A tenant of its own (isolation on a shared server) and a client holding its key."""
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    key = server.new_tenant(name, plan)
    return name, server.client(key)


def upload(
    client: httpx.Client,
    content: bytes | None = None,
    filename: str = "file.txt",
    content_type: str | None = "text/plain",
    session_id: str | None = None,
    agent_id: str | None = None,
    metadata: dict[str, str] | None = None,
    ttl: str | None = None,
) -> dict[str, Any]:
    """One multipart upload through the API (201), returning the artifact record."""
    data: dict[str, str] = {}
    if session_id is not None:
        data["session_id"] = session_id
    if agent_id is not None:
        data["agent_id"] = agent_id
    if metadata is not None:
        data["metadata"] = json.dumps(metadata)
    if ttl is not None:
        data["ttl"] = ttl
    if content is None:
        content = uuid.uuid4().hex.encode()
    part = (filename, content, content_type) if content_type else (filename, content)
    r = client.post("/v1/artifacts", data=data, files={"file": part})
    assert r.status_code == 201, r.text
    return r.json()


def db(server: BoxServer) -> sqlite3.Connection:
    """The server's own database file (WAL; safe beside the running server)."""
    conn = sqlite3.connect(str(server.data_dir / "artifacta.db"), timeout=15, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 15000")
    return conn


def expire_now(server: BoxServer, artifact_id: str) -> None:
    """Move an artifact's expiry into the past, as if its TTL had run out."""
    with db(server) as conn:
        conn.execute("UPDATE artifacts SET expires_at = ? WHERE artifact_id = ?", (PAST, artifact_id))
    conn.close()


def audit_rows(server: BoxServer, action: str, target: str) -> list[sqlite3.Row]:
    conn = db(server)
    try:
        return conn.execute(
            "SELECT * FROM audit_log WHERE action = ? AND target = ? ORDER BY id", (action, target)
        ).fetchall()
    finally:
        conn.close()


def assert_error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The SPEC error envelope with this status and code."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert body["error"]["status"] == status, body
    assert body["error"]["message"], body
    return body["error"]


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
