"""Stalled upload bodies: a client that sends part of a body and then nothing must not hold the
server's memory or a staging file until `response_timeout` (an hour). Every upload path —
multipart, JSON base64, and the presigned PUT, which needs no key — is cut off with 408 after
`server.body_idle_timeout` without progress, and leaves nothing behind."""

from __future__ import annotations

import json
import selectors
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import pytest

from tests.attacks.test_attacks import auth_head, envelope, settle, state
from tests.helpers import BoxServer, key_of

CONFIG = """
[server]
body_idle_timeout = 1.0
"""


@pytest.fixture(scope="module")
def box(tmp_path_factory) -> Iterator[BoxServer]:
    srv = BoxServer(tmp_path_factory.mktemp("stalled") / "box", config=CONFIG).start()
    yield srv
    srv.stop()


def stalled_heads(box: BoxServer, c: httpx.Client) -> dict[str, bytes]:
    """What each kind of stalled upload sends before it stops: headers promising more body
    than follows."""
    key = key_of(c)
    grant = c.post("/v1/artifacts/upload-url", json={"filename": "p.bin", "size_bytes": 10**6})
    assert grant.status_code == 200, grant.text
    put = urlsplit(grant.json()["upload_url"])
    file_part = b'--B\r\nContent-Disposition: form-data; name="file"; filename="s"\r\n\r\n'
    return {
        "multipart": auth_head("POST", "/v1/artifacts", key, {
            "Content-Type": "multipart/form-data; boundary=B", "Content-Length": "1000000"})
        + file_part + b"x" * 100_000,
        "json": auth_head("POST", "/v1/artifacts", key, {
            "Content-Type": "application/json", "Content-Length": "1000000"})
        + b'{"filename": "s", "content": "' + b"A" * 100_000,
        "presigned": auth_head("PUT", f"{put.path}?{put.query}", "", {"Content-Length": "1000000"})
        + b"y" * 100_000,
    }


def answer_to_stall(box: BoxServer, head: bytes) -> bytes:
    """Send `head` and stop; return what the server answers (it must answer by itself)."""
    with socket.create_connection(("127.0.0.1", box.port), timeout=30) as sock:
        sock.sendall(head)
        received = b""
        while b"\r\n\r\n" not in received or len(received.partition(b"\r\n\r\n")[2]) < int(
                _header(received, b"content-length") or 0):
            piece = sock.recv(65536)
            if not piece:
                break
            received += piece
        return received


def _header(response: bytes, name: bytes) -> bytes | None:
    for line in response.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == name:
            return v.strip()
    return None


def test_stalled_bodies_of_every_kind_get_408_and_leave_nothing(box):
    c = box.client()
    heads = stalled_heads(box, c)
    settle(box)
    before = state(box)
    kinds = [kind for kind in heads for _ in range(10)]
    with ThreadPoolExecutor(len(kinds)) as pool:
        answers = list(pool.map(lambda kind: answer_to_stall(box, heads[kind]), kinds))
    for kind, answer in zip(kinds, answers, strict=True):
        status_line, _, _ = answer.partition(b"\r\n")
        assert b" 408 " in status_line, (kind, answer[:300])
        err = envelope(408, answer.partition(b"\r\n\r\n")[2], "request_timeout")
        assert "body_idle_timeout" in err["message"], err
    settle(box)
    assert state(box) == before
    # Meanwhile and after, a normal upload goes through.
    r = c.post("/v1/artifacts", json={"filename": "ok.txt", "content": "aGVsbG8="})
    assert r.status_code == 201, r.text
    assert json.loads(r.text)["size_bytes"] == 5


BUDGET_CONFIG = """
[server]
body_idle_timeout = 120.0
upload_memory = "64MB"
upload_memory_per_tenant = "32MB"

# 600 requests of one tenant in a few seconds: the memory budget is under test, not the rate
# limit (100/s, burst 200 by default), which a fast enough run would reach first.
[plans.selfhosted]
rate_burst = 10000
"""
MB = 10**6


def open_stalled(box: BoxServer, head: bytes, body: bytes) -> socket.socket | None:
    """Send `head` and `body` (less than promised) and leave the connection open; None when the
    server refused it (it answers and closes, so the send may fail half-way)."""
    sock = socket.create_connection(("127.0.0.1", box.port), timeout=30)
    try:
        sock.sendall(head + body)
    except OSError:
        sock.close()
        return None
    return sock


def test_in_flight_upload_memory_is_bounded_and_other_tenants_still_upload(tmp_path):
    """200 stalled uploads of each kind (3 MB declared, 2 MiB of the budget each):
    the server admits what the tenant's share of its in-flight budget allows, refuses the rest
    with 503 and Retry-After (and closes their connections), and another tenant's upload goes
    through meanwhile."""
    srv = BoxServer(tmp_path / "box", config=BUDGET_CONFIG).start()
    sockets: list[socket.socket] = []
    try:
        attacker = srv.client(srv.new_tenant("attacker"))
        bystander = srv.client(srv.new_tenant("bystander"))
        grant = attacker.post("/v1/artifacts/upload-url", json={"filename": "p.bin",
                                                                "size_bytes": 3 * MB}).json()
        put = urlsplit(grant["upload_url"])
        key = key_of(attacker)
        json_head = auth_head("POST", "/v1/artifacts", key, {
            "Content-Type": "application/json", "Content-Length": str(3 * MB)})
        json_body = b'{"filename": "s", "content": "' + b"A" * (3 * MB - 100)
        multipart_head = auth_head("POST", "/v1/artifacts", key, {
            "Content-Type": "multipart/form-data; boundary=B", "Content-Length": str(3 * MB)})
        multipart_body = (b'--B\r\nContent-Disposition: form-data; name="file"; filename="s"\r\n\r\n'
                          + b"x" * (2 * MB))
        put_head = auth_head("PUT", f"{put.path}?{put.query}", "", {"Content-Length": str(3 * MB)})
        put_body = b"y" * (2 * MB)
        settle(srv)
        before = state(srv)
        for head, body in [(json_head, json_body), (multipart_head, multipart_body),
                           (put_head, put_body)] * 200:
            sock = open_stalled(srv, head, body)
            if sock is not None:
                sockets.append(sock)
        # The attacker's share is taken: its next upload is told to come back.
        refused = answer_to_stall(srv, json_head)
        assert b" 503 " in refused.partition(b"\r\n")[0], refused[:300]
        err = envelope(503, refused.partition(b"\r\n\r\n")[2], "unavailable")
        assert "upload_memory_per_tenant" in err["message"]
        assert int(_header(refused, b"retry-after")) >= 1
        # Another tenant is not starved.
        ok = bystander.post("/v1/artifacts", json={"filename": "b.txt", "content": "aGk="})
        assert ok.status_code == 201, ok.text
        metrics = httpx.get(srv.url + "/metrics").text
        held = [line for line in metrics.splitlines()
                if line.startswith("artifacta_box_upload_memory_bytes ")]
        assert held and 0 < float(held[0].split()[1]) <= 32 * MB, held
    except BaseException:
        srv.stop()  # the server is the test's own: never left running after a failure
        raise
    finally:
        for sock in sockets:
            sock.close()
    try:
        settle(srv)  # no staging file is left
        after = state(srv)
        # Only the bystander's upload was stored: its one blob and row; the attacker has
        # nothing but the presigned reservation it had before.
        assert len(after["artifacts"]) == len(before["artifacts"]) + 1
        assert len(after["blobs"]) == len(before["blobs"]) + 1
    finally:
        srv.stop()


# ---------------------------------------------------------------------------- the RSS proof

# A small budget and a short idle timeout: every stalled upload the budget admits is cut off
# (408) within seconds, every other one is refused at once (503), so each connection ends with
# an answer the test can wait for.
RSS_CONFIG = """
[server]
body_idle_timeout = 3.0
upload_memory = "24MB"
upload_memory_per_tenant = "16MB"

[plans.selfhosted]
rate_burst = 10000
"""
UPLOAD_MEMORY_CEILING = 24 * MB  # server.upload_memory above
STALLS_PER_KIND = 200


def rss_bytes(pid: int, field: str) -> int:
    """VmRSS (resident now) or VmHWM (peak since the last reset) of a process, in bytes."""
    for line in open(f"/proc/{pid}/status"):  # noqa: SIM115 - read at once
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def reset_rss_peak(pid: int) -> None:
    """Restart the process's VmHWM from its current RSS (Linux clear_refs, value 5)."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def stall_all(srv: BoxServer, stalls: list[bytes]) -> list[socket.socket]:
    """Open one connection per request in `stalls`, send it and stop; the open sockets."""
    opened = []
    for data in stalls:
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        opened.append(sock)
        try:
            sock.sendall(data)
        except OSError:
            pass  # refused and closed while sending: it has had its answer
    return opened


def wait_until_all_answered(sockets: list[socket.socket], timeout: float = 120.0) -> None:
    """Wait until the server has answered (or reset) every connection: read each to its end."""
    with selectors.DefaultSelector() as sel:
        for sock in sockets:
            sock.setblocking(False)
            sel.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while sel.get_map():
            left = deadline - time.monotonic()
            assert left > 0, f"{len(sel.get_map())} stalled uploads were never answered"
            for key, _ in sel.select(left):
                try:
                    ended = not key.fileobj.recv(65536)
                except (BlockingIOError, InterruptedError):
                    ended = False
                except OSError:  # reset: refused with unread body bytes in flight
                    ended = True
                if ended:
                    sel.unregister(key.fileobj)


def test_stalled_uploads_of_every_kind_keep_server_memory_bounded(tmp_path):
    """The proof issue 13 asks for: 200 stalled uploads of each kind (JSON base64, multipart,
    presigned PUT), each 2 MB sent of 3 MB declared, grow the server's peak RSS by less than
    its in-flight ceiling (server.upload_memory) plus 50 MB, and another tenant uploads
    meanwhile. Refused uploads are closed without reading their bodies; admitted ones hold only
    their bounded buffers until the idle timeout cuts them off. (Before refused uploads were
    closed unread, this grew by 141 MB: each refusal drained its body and pinned 256 KB.)"""
    srv = BoxServer(tmp_path / "box", config=RSS_CONFIG).start()
    pid = srv.proc.pid
    sockets: list[socket.socket] = []
    try:
        attacker = srv.client(srv.new_tenant("attacker"))
        bystander = srv.client(srv.new_tenant("bystander"))
        key = key_of(attacker)
        grant = attacker.post("/v1/artifacts/upload-url", json={"filename": "p.bin",
                                                                "size_bytes": 3 * MB}).json()
        put = urlsplit(grant["upload_url"])
        declared = {"Content-Length": str(3 * MB)}
        stall_of_kind = {
            "json": auth_head("POST", "/v1/artifacts", key,
                              {"Content-Type": "application/json", **declared})
            + b'{"filename": "s", "content": "' + b"A" * (2 * MB - 30),
            "multipart": auth_head("POST", "/v1/artifacts", key,
                                   {"Content-Type": "multipart/form-data; boundary=B", **declared})
            + b'--B\r\nContent-Disposition: form-data; name="file"; filename="s"\r\n\r\n'
            + b"x" * (2 * MB - 70),
            "presigned": auth_head("PUT", f"{put.path}?{put.query}", "", declared) + b"y" * 2 * MB,
        }
        # Warm up every path once (first-use imports and caches are not per-connection memory).
        warm = stall_all(srv, list(stall_of_kind.values()) * 5)
        wait_until_all_answered(warm)
        for sock in warm:
            sock.close()
        assert attacker.post("/v1/artifacts", files={"file": ("w.bin", b"w" * MB)}).status_code \
            == 201
        before = rss_bytes(pid, "VmRSS")
        reset_rss_peak(pid)

        sockets = stall_all(srv, [stall_of_kind[kind] for _ in range(STALLS_PER_KIND)
                                  for kind in stall_of_kind])
        ok = bystander.post("/v1/artifacts", json={"filename": "b.txt", "content": "aGk="})
        assert ok.status_code == 201, ok.text
        held = [line for line in httpx.get(srv.url + "/metrics").text.splitlines()
                if line.startswith("artifacta_box_upload_memory_bytes ")]
        assert held and float(held[0].split()[1]) > 0, ("no stall was in flight meanwhile", held)
        wait_until_all_answered(sockets)
        grown = rss_bytes(pid, "VmHWM") - before
        assert grown < UPLOAD_MEMORY_CEILING + 50 * MB, \
            f"server RSS grew by {grown / MB:.0f} MB for {len(sockets)} stalled uploads"
    finally:
        for sock in sockets:
            sock.close()
        srv.stop()
