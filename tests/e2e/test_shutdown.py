"""Graceful shutdown (README, "Install as a single binary"): on SIGTERM the server stops accepting, lets in-flight requests
finish within `server.shutdown_timeout`, aborts the rest cleanly (their temporary files
removed, no partial artifact) and exits 0."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers import download, sql

# Timing- and load-sensitive (shutdown deadlines of a second, measured against in-flight uploads):
# one at a time, on one xdist worker.
pytestmark = pytest.mark.serial

CHUNK = 64 * 1024


def slow_multipart(total_chunks: int, delay: float, started: threading.Event,
                   payload: bytearray) -> Iterator[bytes]:
    """A chunked multipart body trickling in over total_chunks * delay seconds."""
    yield b'--bnd\r\nContent-Disposition: form-data; name="file"; filename="slow.bin"\r\n'
    yield b"Content-Type: application/octet-stream\r\n\r\n"
    for i in range(total_chunks):
        chunk = bytes([i % 251]) * CHUNK
        payload += chunk
        yield chunk
        started.set()
        time.sleep(delay)
    yield b"\r\n--bnd--\r\n"


def start_slow_upload(srv, total_chunks: int, delay: float):
    started = threading.Event()
    payload = bytearray()
    result: dict = {}

    def run() -> None:
        try:
            with srv.client() as c:
                result["response"] = c.post(
                    "/v1/artifacts", content=slow_multipart(total_chunks, delay, started, payload),
                    headers={"Content-Type": "multipart/form-data; boundary=bnd"}, timeout=60)
        except httpx.HTTPError as exc:
            result["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    return t, started, payload, result


def wait_for_temp_file(srv, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not any((srv.data_dir / "tmp").iterdir()):
        assert time.monotonic() < deadline, "the upload never reached the staging file"
        time.sleep(0.02)


def test_sigterm_lets_an_in_flight_upload_finish_and_exits_0(make_server):
    srv = make_server(config="[server]\nshutdown_timeout = 20.0\n")
    t, started, payload, result = start_slow_upload(srv, total_chunks=30, delay=0.05)
    assert started.wait(10)
    wait_for_temp_file(srv)
    srv.proc.send_signal(signal.SIGTERM)
    # It stops accepting: a new connection is refused while the upload drains.
    deadline = time.monotonic() + 5
    refused = False
    while time.monotonic() < deadline and not refused:
        try:
            httpx.get(srv.url + "/health", timeout=1, headers={"Connection": "close"})
        except httpx.TransportError:
            refused = True
        time.sleep(0.05)
    t.join(60)
    assert refused, "the server kept accepting connections after SIGTERM"
    assert srv.proc.wait(30) == 0
    response = result.get("response")
    assert response is not None and response.status_code == 201, result
    art = response.json()

    srv.start()
    with srv.client() as c:
        assert download(c, art["artifact_id"]) == bytes(payload)


def test_sigterm_aborts_uploads_past_the_deadline_cleanly(make_server):
    srv = make_server(config="[server]\nshutdown_timeout = 1.0\n")
    rows_before = sql(srv, "SELECT COUNT(*) FROM artifacts")[0][0]
    t, started, _payload, result = start_slow_upload(srv, total_chunks=400, delay=0.05)
    assert started.wait(10)
    wait_for_temp_file(srv)
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(30) == 0
    t.join(60)
    response = result.get("response")
    assert response is None or response.status_code >= 500, response.text
    assert os.listdir(srv.data_dir / "tmp") == []  # the aborted upload's staging file is gone
    assert sql(srv, "SELECT COUNT(*) FROM artifacts")[0][0] == rows_before
    srv.start()
    assert srv.admin("check").returncode == 0
