"""Helpers for the download and share-link tests: tenants of their own on a shared server, real
HTTP uploads, and the server's own SQLite file and secret for what a test must not wait for
(expiry in the past) or must inspect (audit rows)."""

from __future__ import annotations

import hashlib
import sqlite3
import time
import uuid
from typing import Any

import httpx

from artifacta_box.security.signing import UrlSigner
from tests.conftest import BoxServer

PAST = "2000-01-01T00:00:00.000000Z"


def new_tenant(server: BoxServer, plan: str | None = None) -> tuple[str, httpx.Client]:
    name = f"dl-{uuid.uuid4().hex[:10]}"
    return name, server.client(server.new_tenant(name, plan))


def upload(client: httpx.Client, content: bytes, filename: str = "file.bin",
           content_type: str | None = "application/octet-stream", ttl: str | None = None) -> dict:
    part = (filename, content, content_type) if content_type else (filename, content)
    data = {"ttl": ttl} if ttl else {}
    r = client.post("/v1/artifacts", files={"file": part}, data=data)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["content_hash"] == hashlib.sha256(content).hexdigest()
    return body


def download_url(client: httpx.Client, artifact_id: str) -> str:
    r = client.get(f"/v1/artifacts/{artifact_id}/download-url")
    assert r.status_code == 200, r.text
    return r.json()["download_url"]


def db(server: BoxServer) -> sqlite3.Connection:
    conn = sqlite3.connect(str(server.data_dir / "artifacta.db"), timeout=15, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 15000")
    return conn


def execute(server: BoxServer, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
    conn = db(server)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def tenant_id_of(server: BoxServer, artifact_id: str) -> int:
    return execute(server, "SELECT tenant_id FROM artifacts WHERE artifact_id = ?", (artifact_id,))[0][0]


def signer(server: BoxServer) -> UrlSigner:
    """The server's own signer, from `<data_dir>/secret.key`."""
    return UrlSigner((server.data_dir / "secret.key").read_text("ascii").strip().encode("ascii"))


def signed_url(server: BoxServer, artifact_id: str, expires: int, method: str = "GET",
               tenant_id: int | None = None) -> str:
    tid = tenant_id_of(server, artifact_id) if tenant_id is None else tenant_id
    sig = signer(server).sign(method, artifact_id, tid, expires)
    return f"{server.url}/d/{artifact_id}?e={expires}&s={sig}"


def past_expiry() -> int:
    return int(time.time()) - 60


def assert_error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert body["error"]["status"] == status
    assert body["error"]["message"]
    return body["error"]
