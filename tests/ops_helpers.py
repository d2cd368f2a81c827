"""Helpers for the operations tests (gc, check, backup/restore, crash safety, metrics): the
admin CLI with --json, an admin command with no server around it, and what a test cannot wait
for (timestamps and file times moved into the past)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import BoxServer, box_command, clean_env

DAY = 86400


def offline_cli(*args: str) -> subprocess.CompletedProcess:
    """`artifacta-box ARGS...` with no server of ours around it (restore, check of a copy)."""
    return subprocess.run(box_command() + list(args), capture_output=True, text=True,
                          env=clean_env(), timeout=300, check=False)


def iso_ago(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(time.time() - seconds))


def blob_path(data_dir: Path, tenant: int, sha256: str) -> Path:
    return data_dir / "blobs" / str(tenant) / sha256[:2] / sha256


def age_file(path: Path, seconds: float) -> None:
    """Set a file's mtime `seconds` into the past (as if untouched that long)."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def reserve(client: httpx.Client, size: int, filename: str = "big.bin") -> dict:
    r = client.post("/v1/artifacts/upload-url", json={
        "filename": filename, "content_type": "application/octet-stream", "size_bytes": size})
    assert r.status_code == 200, r.text
    return r.json()


def put_bytes(reservation: dict, content: bytes) -> httpx.Response:
    return httpx.put(reservation["upload_url"], content=content,
                     headers=reservation["upload_headers"], timeout=60)


def admin_json(server: BoxServer, *args: str, check: bool = True) -> Any:
    res = server.admin(*args, "--json", check=check)
    return json.loads(res.stdout)
