"""Helpers for the operations tests (gc, check, backup/restore, crash safety, metrics): real
HTTP uploads, the admin CLI with --json, and direct access to the server's SQLite file and blob
directory for what a test cannot wait for (moving timestamps and file times into the past)."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import BoxServer, box_command, clean_env

DAY = 86400


def offline_cli(*args: str) -> subprocess.CompletedProcess:
    """`artifacta-box ARGS...` with no server of ours around it (restore, check of a copy)."""
    return subprocess.run(box_command() + list(args), capture_output=True, text=True,
                          env=clean_env(), timeout=300, check=False)


def iso_ago(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(time.time() - seconds))


def db(server: BoxServer) -> sqlite3.Connection:
    """The server's own database (WAL; safe beside the running server)."""
    conn = sqlite3.connect(str(server.data_dir / "artifacta.db"), timeout=15, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 15000")
    return conn


def sql(server: BoxServer, query: str, params: tuple = ()) -> list[sqlite3.Row]:
    conn = db(server)
    try:
        return list(conn.execute(query, params).fetchall())
    finally:
        conn.close()


def tenant_id(server: BoxServer, name: str) -> int:
    return int(sql(server, "SELECT tenant_id FROM tenants WHERE name = ?", (name,))[0][0])


def blob_path(data_dir: Path, tenant: int, sha256: str) -> Path:
    return data_dir / "blobs" / str(tenant) / sha256[:2] / sha256


def age_file(path: Path, seconds: float) -> None:
    """Set a file's mtime `seconds` into the past (as if untouched that long)."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def new_tenant(server: BoxServer, prefix: str = "ops") -> tuple[str, httpx.Client]:
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    return name, server.client(server.new_tenant(name))


def upload(client: httpx.Client, content: bytes, filename: str = "file.bin", **fields: str) -> dict:
    r = client.post("/v1/artifacts", data=fields,
                    files={"file": (filename, content, "application/octet-stream")})
    assert r.status_code == 201, r.text
    return r.json()


def reserve(client: httpx.Client, size: int, filename: str = "big.bin") -> dict:
    r = client.post("/v1/artifacts/upload-url", json={
        "filename": filename, "content_type": "application/octet-stream", "size_bytes": size})
    assert r.status_code == 200, r.text
    return r.json()


def put_bytes(reservation: dict, content: bytes) -> httpx.Response:
    return httpx.put(reservation["upload_url"], content=content,
                     headers=reservation["upload_headers"], timeout=60)


def download(client: httpx.Client, artifact_id: str) -> bytes:
    r = client.get(f"/v1/artifacts/{artifact_id}/download-url")
    assert r.status_code == 200, r.text
    got = httpx.get(r.json()["download_url"], timeout=60)
    assert got.status_code == 200, got.text
    return got.content


def admin_json(server: BoxServer, *args: str, check: bool = True) -> Any:
    res = server.admin(*args, "--json", check=check)
    return json.loads(res.stdout)


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def error_code(response: httpx.Response) -> str:
    return response.json()["error"]["code"]
