"""Helpers for the upload tests: a server with small plan limits, hand-built multipart bodies,
raw HTTP requests that stop part-way (early refusals, disconnects), and a snapshot of
everything an upload can leave behind (temp files, blob files, rows, usage)."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from artifacta_box.storage.s3 import S3Client, S3Settings
from tests.conftest import BoxServer

# Plans with small limits so every limit is reachable with small bodies.
LIMITS_CONFIG = """
[plans.tiny]
storage_bytes = 250000
max_multipart_size = 100000
max_json_size = 10000
max_presigned_size = 200000

[plans.nopresign]
presigned_uploads = false
"""

BOUNDARY = "a1testBoundary0123456789"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def new_client(server: BoxServer, plan: str | None = None) -> httpx.Client:
    """A client of a fresh tenant (isolation on a shared server)."""
    key = server.new_tenant(f"u-{uuid.uuid4().hex[:10]}", plan)
    return server.client(key)


def tenant_key(client: httpx.Client) -> str:
    return client.headers["authorization"].split(" ", 1)[1]


def assert_error(resp: httpx.Response, status: int, code: str, *words: str) -> dict[str, Any]:
    """The SPEC error envelope, with this status and code, whose message names `words`."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert err["code"] == code and err["status"] == status, err
    for word in words:
        assert word in err["message"], (word, err["message"])
    return err


# ---------------------------------------------------------------------------- multipart bodies


def part(name: str, value: bytes | str, filename: str | None = None,
         content_type: str | None = None, extra_disposition: str = "") -> bytes:
    if isinstance(value, str):
        value = value.encode()
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    head = f"Content-Disposition: {disposition}{extra_disposition}\r\n"
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    return f"--{BOUNDARY}\r\n".encode() + head.encode() + b"\r\n" + value + b"\r\n"


def form(*parts: bytes, close: bool = True) -> bytes:
    return b"".join(parts) + (f"--{BOUNDARY}--\r\n".encode() if close else b"")


MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def post_form(client: httpx.Client, body: bytes, *, chunked: bool = False, piece: int = 4096,
              headers: dict[str, str] | None = None) -> httpx.Response:
    """POST a hand-built multipart body, with Content-Length or chunked (no Content-Length)."""
    hdrs = {"Content-Type": MULTIPART, **(headers or {})}
    if chunked:
        def gen():
            for i in range(0, len(body), piece):
                yield body[i:i + piece]
        return client.post("/v1/artifacts", content=gen(), headers=hdrs)
    return client.post("/v1/artifacts", content=body, headers=hdrs)


# ---------------------------------------------------------------------------- raw requests


class RawRequest:
    """An HTTP request written by hand so a test can stop part-way through the body."""

    def __init__(self, server: BoxServer, method: str, path: str, headers: dict[str, str],
                 timeout: float = 20) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
        self.conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in headers.items():
            self.conn.putheader(k, v)
        self.conn.endheaders()

    def send(self, data: bytes) -> None:
        self.conn.send(data)

    def response(self) -> tuple[int, dict[str, Any]]:
        resp = self.conn.getresponse()
        body = resp.read()
        self.conn.close()
        return resp.status, json.loads(body)

    def abort(self) -> None:
        """Drop the connection mid-body, like a client that crashed."""
        self.conn.sock.close()
        self.conn.close()


# ---------------------------------------------------------------------------- state snapshot


def db(server: BoxServer) -> sqlite3.Connection:
    conn = sqlite3.connect(str(server.data_dir / "artifacta.db"), timeout=15, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 15000")
    return conn


def sql(server: BoxServer, query: str, params: tuple = ()) -> list[tuple]:
    conn = db(server)
    try:
        return [tuple(r) for r in conn.execute(query, params).fetchall()]
    finally:
        conn.close()


def s3_settings_of(server: BoxServer) -> S3Settings | None:
    """The [s3] settings of a box on the S3 backend (tests/backends.py), else None."""
    if server.env.get("ARTIFACTA_BOX_STORAGE_BACKEND") != "s3":
        return None
    prefix = "ARTIFACTA_BOX_S3_"
    return S3Settings.build({k[len(prefix):].lower(): v for k, v in server.env.items()
                             if k.startswith(prefix)}, {})


def _s3(server: BoxServer, listing: str) -> list[str]:
    settings = s3_settings_of(server)
    if settings is None:
        return []

    async def go() -> list[str]:
        async with S3Client(settings) as client:
            if listing == "objects":
                return [i.key async for i in client.list_objects("blobs/")]
            return [u.key async for u in client.list_multipart_uploads("blobs/")]

    return sorted(asyncio.run(go()))


def temp_files(server: BoxServer) -> list[str]:
    """Staging files, and on S3 incomplete multipart uploads: an upload in progress."""
    tmp = server.data_dir / "tmp"
    local = sorted(p.name for p in tmp.iterdir()) if tmp.is_dir() else []
    return local + _s3(server, "uploads")


def blob_files(server: BoxServer) -> list[str]:
    """Stored blobs: local files (tenant/aa/sha256) and S3 objects (s3:blobs/tenant/rr/key)."""
    root = server.data_dir / "blobs"
    local = sorted(str(p.relative_to(root)) for p in root.rglob("*")
                   if p.is_file() and p.parent != root)  # not the LAYOUT marker
    return local + ["s3:" + k for k in _s3(server, "objects")]


def read_blob(server: BoxServer, tenant_id: int, sha256: str) -> bytes:
    """The stored bytes of a blob, from wherever its row says they are."""
    location = sql(server, "SELECT location FROM blobs WHERE tenant_id = ? AND sha256 = ?",
                   (tenant_id, sha256))[0][0]
    if location is None:
        return (server.data_dir / "blobs" / str(tenant_id) / sha256[:2] / sha256).read_bytes()
    settings = s3_settings_of(server)
    assert settings is not None and location.startswith("s3:"), location

    async def go() -> bytes:
        async with S3Client(settings) as client:
            return await client.get_bytes(location[3:])

    return asyncio.run(go())


def delete_blob(server: BoxServer, tenant_id: int, sha256: str) -> None:
    """Lose a blob's stored bytes behind the box's back (damage for check and serving tests)."""
    location = sql(server, "SELECT location FROM blobs WHERE tenant_id = ? AND sha256 = ?",
                   (tenant_id, sha256))[0][0]
    if location is None:
        (server.data_dir / "blobs" / str(tenant_id) / sha256[:2] / sha256).unlink()
        return
    settings = s3_settings_of(server)
    assert settings is not None

    async def go() -> None:
        async with S3Client(settings) as client:
            await client.delete(location[3:])

    asyncio.run(go())


def snapshot(server: BoxServer) -> dict[str, Any]:
    """Everything an upload can change: files on disk, rows, usage."""
    return {
        "tmp": temp_files(server),
        "blob_files": blob_files(server),
        "artifacts": sql(server, "SELECT artifact_id, state, upload_sha256 FROM artifacts ORDER BY 1"),
        "blobs": sql(server, "SELECT tenant_id, sha256, refs, live_refs FROM blobs ORDER BY 1, 2"),
        "usage": sql(server, "SELECT tenant_id, storage_bytes FROM tenants ORDER BY 1"),
        "sessions": sql(server, "SELECT tenant_id, session_id, artifact_count FROM sessions ORDER BY 1, 2"),
        "metadata": sql(server, "SELECT count(*) FROM artifact_metadata"),
        "idempotency": sql(server, "SELECT count(*) FROM idempotency_keys"),
    }


def wait_for(predicate, timeout: float = 10.0, what: str = "condition") -> None:
    """Poll a condition the server reaches on its own (e.g. cleanup after a disconnect)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def assert_nothing_left(server: BoxServer, before: dict[str, Any]) -> None:
    """No temp file, no blob file, no row, no usage change since `before`."""
    wait_for(lambda: not temp_files(server), what="the temp directory to be empty")
    after = snapshot(server)
    assert after == before


def data_path(server: BoxServer, *parts: str) -> Path:
    return server.data_dir.joinpath(*parts)
