"""Helpers for the upload tests: a server with small plan limits, hand-built multipart bodies,
raw HTTP requests that stop part-way (early refusals, disconnects), and a snapshot of
everything an upload can leave behind (temp files, blob files, rows, usage)."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import BoxServer, blob_files, sql, temp_files, wait_for

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


def assert_nothing_left(server: BoxServer, before: dict[str, Any]) -> None:
    """No temp file, no blob file, no row, no usage change since `before`."""
    wait_for(lambda: not temp_files(server), what="the temp directory to be empty")
    after = snapshot(server)
    assert after == before


def data_path(server: BoxServer, *parts: str) -> Path:
    return server.data_dir.joinpath(*parts)
