"""Upload bodies framed every way HTTP/1.1 allows, back to back on one keep-alive connection:
each is stored byte for byte and the next request is read from exactly where the body ended
(a pipelined request sharing a receive buffer with the end of a body must neither leak into it
nor be lost). The guard for any change to how body bytes are taken from Sanic's buffer."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.attacks.test_attacks import auth_head
from tests.helpers import BoxServer, key_of, new_tenant, sha


@pytest.fixture(scope="module")
def box(tmp_path_factory) -> Iterator[BoxServer]:
    srv = BoxServer(tmp_path_factory.mktemp("framing") / "box").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def c(box) -> Iterator[httpx.Client]:
    _, client = new_tenant(box, prefix="f")
    yield client
    client.close()


def multipart(content: bytes, name: str) -> bytes:
    return (b'--B\r\nContent-Disposition: form-data; name="file"; filename="' + name.encode()
            + b'"\r\nContent-Type: application/octet-stream\r\n\r\n' + content + b"\r\n--B--\r\n")


def chunked(body: bytes, piece: int) -> bytes:
    out = b"".join(b"%x\r\n" % len(body[i:i + piece]) + body[i:i + piece] + b"\r\n"
                   for i in range(0, len(body), piece))
    return out + b"0\r\n\r\n"


def read_responses(sock: socket.socket, n: int) -> list[tuple[int, dict]]:
    """n responses with Content-Length bodies, in order."""
    buf, out = b"", []
    while len(out) < n:
        while b"\r\n\r\n" not in buf:
            data = sock.recv(65536)
            assert data, f"connection closed after {len(out)} of {n} responses"
            buf += data
        head, _, buf = buf.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        if status == 100:
            continue
        length = int(headers["content-length"])
        while len(buf) < length:
            data = sock.recv(65536)
            assert data, "connection closed mid-response"
            buf += data
        out.append((status, json.loads(buf[:length])))
        buf = buf[length:]
    return out


def test_pipelined_uploads_of_every_framing_are_stored_byte_for_byte(box, c):
    key = key_of(c)
    contents = [os.urandom(n) for n in (3 * 1024 * 1024 + 5, 1, 700_001, 2 * 1024 * 1024 + 3)]
    form = {"Content-Type": "multipart/form-data; boundary=B"}
    bodies = [multipart(x, f"f{i}.bin") for i, x in enumerate(contents)]
    requests = [
        auth_head("POST", "/v1/artifacts", key, {**form, "Content-Length": str(len(bodies[0]))})
        + bodies[0],
        auth_head("POST", "/v1/artifacts", key, {**form, "Content-Length": str(len(bodies[1]))})
        + bodies[1],
        auth_head("POST", "/v1/artifacts", key, {**form, "Transfer-Encoding": "chunked"})
        + chunked(bodies[2], 65_537),
        auth_head("POST", "/v1/artifacts", key, {**form, "Content-Length": str(len(bodies[3])),
                                                 "Expect": "100-continue"}) + bodies[3],
    ]
    wire = b"".join(requests)
    with socket.create_connection(("127.0.0.1", box.port), timeout=60) as sock:
        # Odd-sized writes: request boundaries fall anywhere inside the server's reads.
        for i in range(0, len(wire), 99_991):
            sock.sendall(wire[i:i + 99_991])
        answers = read_responses(sock, len(requests))
    for (status, rec), content in zip(answers, contents, strict=True):
        assert status == 201, rec
        assert rec["size_bytes"] == len(content)
        assert rec["content_hash"] == sha(content)
        url = c.get(f"/v1/artifacts/{rec['artifact_id']}/download-url").json()["download_url"]
        assert httpx.get(url).content == content


def read_answers(sock: socket.socket, heads_only: list[bool]) -> list[tuple[int, dict, bytes]]:
    """One response per entry, in order: (status, headers, body); `heads_only` marks answers
    that carry no body whatever their Content-Length says (HEAD, 304)."""
    buf, out = b"", []
    for head_only in heads_only:
        while b"\r\n\r\n" not in buf:
            data = sock.recv(65536)
            assert data, f"connection closed after {len(out)} of {len(heads_only)} responses"
            buf += data
        head, _, buf = buf.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        length = 0 if head_only else int(headers.get("content-length", 0))
        while len(buf) < length:
            data = sock.recv(65536)
            assert data, "connection closed mid-response"
            buf += data
        out.append((int(lines[0].split()[1]), headers, buf[:length]))
        buf = buf[length:]
    assert buf == b""
    return out


def test_pipelined_answers_of_every_kind_are_framed_for_the_next_request(box, c):
    # Answers written in one piece by the box (JSON, small and inline bytes, HEAD, 304) and by
    # Sanic itself (an error) back to back on one connection: each is framed exactly, the
    # connection stays open until the request that asks to close it.
    key = key_of(c)
    content = os.urandom(4096)
    body = multipart(content, "small.bin")
    form = {"Content-Type": "multipart/form-data; boundary=B", "Content-Length": str(len(body))}
    rec = c.post("/v1/artifacts", files={"file": ("seed.bin", content)}).json()
    url = c.get(f"/v1/artifacts/{rec['artifact_id']}/download-url").json()["download_url"]
    path = url.split("127.0.0.1", 1)[1].split("/", 1)[1]
    signed = f"/{path}"

    def anon(method: str, headers: dict[str, str]) -> bytes:  # a signed URL needs no key
        lines = [f"{method} {signed} HTTP/1.1", "Host: 127.0.0.1",
                 *(f"{k}: {v}" for k, v in headers.items())]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    asks = [
        (auth_head("POST", "/v1/artifacts", key, form) + body, False),
        (anon("GET", {}), False),
        (anon("GET", {"Range": "bytes=10-19"}), False),
        (anon("HEAD", {}), True),
        (anon("GET", {"If-None-Match": f'"{rec["content_hash"]}"'}), True),
        (auth_head("GET", "/v1/artifacts/art_doesnotexist0", key, {}), False),
        (auth_head("GET", "/v1/artifacts?limit=2", key, {"Connection": "close"}), False),
    ]
    with socket.create_connection(("127.0.0.1", box.port), timeout=60) as sock:
        sock.sendall(b"".join(a for a, _ in asks))
        answers = read_answers(sock, [h for _, h in asks])
        assert sock.recv(1) == b""  # closed, as the last request asked
    statuses = [s for s, _, _ in answers]
    assert statuses == [201, 200, 206, 200, 304, 404, 200]
    (_, _, created), (_, got, whole), (_, ranged, part), (_, head, _), (_, _, _), \
        (_, _, missing), (_, _, listed) = answers
    assert json.loads(created)["content_hash"] == sha(content)
    assert whole == content and got["content-length"] == "4096"
    assert part == content[10:20] and ranged["content-range"] == "bytes 10-19/4096"
    assert head["content-length"] == "4096" and head["etag"] == got["etag"]
    assert json.loads(missing)["error"]["code"] == "artifact_not_found"
    assert len(json.loads(listed)["artifacts"]) == 2
    assert [h["connection"] for _, h, _ in answers] == ["keep-alive"] * 6 + ["close"]
    for _, h, _ in answers:
        assert h["x-request-id"].startswith("req_")
    # Alt-Svc as Sanic leaves it (TouchUp removes it for HTTP/1 only), the same on every answer
    assert len({"alt-svc" in h for _, h, _ in answers}) == 1
