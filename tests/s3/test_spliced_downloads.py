"""Proxied S3 downloads moved in the kernel (store socket -> pipe -> client socket, os.splice),
against a real SeaweedFS: whole and ranged bodies byte-identical, keep-alive framing intact, a
client that leaves mid-body leaves no pipe behind and no half-read store connection in the
pool, and a store connection lost or silent mid-body is resumed."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from pathlib import Path

import httpx
import pytest

from artifacta_box.storage.s3 import S3Client
from tests.api.download_helpers import download_url
from tests.backends import backend_env
from tests.helpers import BoxServer, new_tenant, upload, wait_for
from tests.s3.tcp_faults import FaultyRelay

MiB = 1024 * 1024
BODY = os.urandom(20 * MiB + 7)   # more than two 8 MiB splice steps and a partial one

def pipes_of(pid: int) -> int:
    n = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            n += os.readlink(fd).startswith("pipe:")
        except OSError:
            pass  # closed meanwhile
    return n


def store_connections_with_unread_bytes(pid: int, store_port: int) -> list[str]:
    """The box's TCP connections to the store whose receive queue holds bytes nobody read
    (a half-read response kept for reuse would): /proc/net/tcp rows of the box's sockets."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            link = os.readlink(fd)
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    dirty = []
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        remote_port = int(f[2].split(":")[1], 16)
        rx_queue = int(f[4].split(":")[1], 16)
        if f[9] in inodes and remote_port == store_port and rx_queue:
            dirty.append(line)
    return dirty


@pytest.fixture(scope="module")
def box(tmp_path_factory, request):
    srv = BoxServer(tmp_path_factory.mktemp("spliced") / "box",
                    env=backend_env(request, "s3")).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(box):
    _, c = new_tenant(box)
    yield c
    c.close()


@pytest.fixture(scope="module")
def url(client):
    return download_url(client, upload(client, BODY, "big.bin")["artifact_id"])


def test_whole_and_ranged_bodies_arrive_byte_identical_on_one_connection(box, url):
    with httpx.Client(timeout=60, trust_env=False) as http:  # one keep-alive connection
        whole = http.get(url)
        ranged = http.get(url, headers={"Range": f"bytes={3 * MiB + 1}-{17 * MiB}"})
        tail = http.get(url, headers={"Range": "bytes=-100000"})
        again = http.get(url)
    assert whole.status_code == 200 and whole.content == BODY
    assert whole.headers["content-length"] == str(len(BODY))
    assert ranged.status_code == 206 and ranged.content == BODY[3 * MiB + 1:17 * MiB + 1]
    assert ranged.headers["content-range"] == f"bytes {3 * MiB + 1}-{17 * MiB}/{len(BODY)}"
    assert tail.status_code == 206 and tail.content == BODY[-100000:]
    assert again.content == BODY


def test_a_download_in_progress_goes_through_a_pipe_that_is_closed_after(box, url):
    before = pipes_of(box.proc.pid)
    with httpx.Client(timeout=60, trust_env=False) as http, http.stream("GET", url) as r:
        it = r.iter_bytes()
        got = [next(it)]
        # The client reads no further: the box waits with its pipe open.
        assert pipes_of(box.proc.pid) == before + 2
        got += list(it)
    assert b"".join(got) == BODY
    wait_for(lambda: pipes_of(box.proc.pid) == before, what="the pipe closed")


def test_a_client_leaving_mid_body_leaves_no_pipe_and_no_half_read_store_connection(
        box, url, seaweedfs):
    before = pipes_of(box.proc.pid)
    target = url.removeprefix(box.url)
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", box.port)) as s:
            s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            received = 0
            while received < 2 * MiB:
                received += len(s.recv(65536))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        # closed with a reset: the box's next write fails
    wait_for(lambda: pipes_of(box.proc.pid) == before, what="every pipe closed")
    wait_for(lambda: not store_connections_with_unread_bytes(box.proc.pid, seaweedfs.ports["s3"]),
             what="no half-read store connection kept")
    with httpx.Client(timeout=60, trust_env=False) as http:
        assert http.get(url).content == BODY   # the pool hands out only clean connections


# ---------------------------------------------------------------------------- the reader itself


def splice_object(settings, key: str, start: int = 0, end: int | None = None,
                  **client_options) -> tuple[bytes, int, int]:
    """splice_to a socket pair read by a thread: (bytes received, resumes, bytes reported)."""
    left, right = socket.socketpair()
    left.setblocking(False)
    received = bytearray()

    def drain() -> None:
        while chunk := right.recv(MiB):
            received.extend(chunk)

    reader_thread = threading.Thread(target=drain)
    reader_thread.start()

    async def go():
        async with S3Client(settings, **client_options) as c:
            reader = await c.open_read(key, start, end)
            assert reader.can_splice()
            loop = asyncio.get_running_loop()

            async def writable(fd: int) -> None:
                ready = loop.create_future()
                loop.add_writer(fd, ready.set_result, None)
                try:
                    await ready
                finally:
                    loop.remove_writer(fd)

            counted = []
            try:
                n = await reader.splice_to(left.fileno(), writable, counted.append)
            finally:
                await reader.aclose()
            assert n == sum(counted)
            return reader._resumes, n

    try:
        resumes, n = asyncio.run(go())
    finally:
        left.close()
        reader_thread.join(30)
        right.close()
    return bytes(received), resumes, n


def test_splice_to_sends_a_range_exactly(s3_settings):
    data = os.urandom(5 * MiB)
    asyncio.run(_put(s3_settings, "r", data))
    got, resumes, n = splice_object(s3_settings, "r", 12345, 4 * MiB)
    assert got == data[12345:4 * MiB + 1] and n == len(got) and resumes == 0


def test_a_store_connection_cut_mid_splice_is_resumed_where_it_stopped(seaweedfs, s3_bucket):
    data = os.urandom(10 * MiB)
    asyncio.run(_put(seaweedfs.settings(s3_bucket), "cut", data))
    relay = FaultyRelay(seaweedfs.ports["s3"], cut_after=3 * MiB)
    try:
        got, resumes, _ = splice_object(seaweedfs.settings(s3_bucket, endpoint=relay.endpoint),
                                        "cut")
    finally:
        relay.close()
    assert relay.faulted.is_set()
    assert got == data and resumes == 1


def test_a_silent_store_is_resumed_after_the_read_timeout(seaweedfs, s3_bucket):
    data = os.urandom(6 * MiB)
    asyncio.run(_put(seaweedfs.settings(s3_bucket), "stall", data))
    relay = FaultyRelay(seaweedfs.ports["s3"], stall_after=2 * MiB)
    try:
        got, resumes, _ = splice_object(seaweedfs.settings(s3_bucket, endpoint=relay.endpoint),
                                        "stall", timeout=1.0)
    finally:
        relay.close()
    assert got == data and resumes == 1


async def _put(settings, key: str, data: bytes) -> None:
    async with S3Client(settings) as c:
        await c.put_bytes(key, data)
