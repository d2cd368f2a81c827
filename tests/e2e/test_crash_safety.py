"""Crash safety (README, "Operations"): `kill -9` in the middle of many concurrent uploads, multipart and
presigned. After a restart every upload that was acknowledged (2xx) is present and
byte-identical, no partial artifact is visible anywhere, the first start has removed the
temporary leftovers, and `check` is clean."""

from __future__ import annotations

import os
import random
import threading
import time

import httpx
import pytest

from tests.helpers import INLINE_MAX, download, sha, sql

# Timing- and load-sensitive (kill -9 in the middle of a load of concurrent uploads):
# one at a time, on one xdist worker.
pytestmark = pytest.mark.serial

WRITERS = 6
SLOW_CHUNK = 32 * 1024


def test_kill_9_during_concurrent_uploads_loses_nothing_acknowledged(make_server):
    srv = make_server()
    stop = threading.Event()
    lock = threading.Lock()
    acked: dict[str, bytes] = {}          # artifact_id -> content, upload answered 2xx
    put_acked: dict[str, bytes] = {}      # presigned: PUT answered 2xx, complete not (yet)
    counts = {"multipart": 0, "presigned": 0}
    slow_started = threading.Event()

    def multipart_writer(seed: int) -> None:
        rnd = random.Random(seed)
        with srv.client() as c:
            while not stop.is_set():
                content = os.urandom(rnd.choice((1, 700, 20_000, 300_000, 1_200_000)))
                try:
                    r = c.post("/v1/artifacts", files={"file": ("m.bin", content, "application/octet-stream")})
                except httpx.HTTPError:
                    return
                if r.status_code == 201:
                    with lock:
                        acked[r.json()["artifact_id"]] = content
                        counts["multipart"] += 1

    def presigned_writer(seed: int) -> None:
        rnd = random.Random(seed)
        with srv.client() as c:
            while not stop.is_set():
                content = os.urandom(rnd.choice((5, 50_000, 900_000)))
                try:
                    res = c.post("/v1/artifacts/upload-url", json={
                        "filename": "p.bin", "content_type": "application/octet-stream",
                        "size_bytes": len(content)})
                    if res.status_code != 200:
                        continue
                    res = res.json()
                    put = httpx.put(res["upload_url"], content=content,
                                    headers=res["upload_headers"], timeout=30)
                    if put.status_code != 200:
                        continue
                    with lock:
                        put_acked[res["artifact_id"]] = content
                    done = c.post(f"/v1/artifacts/{res['artifact_id']}/complete")
                except httpx.HTTPError:
                    return
                if done.status_code == 200:
                    with lock:
                        acked[res["artifact_id"]] = put_acked.pop(res["artifact_id"])
                        counts["presigned"] += 1

    def slow_writer() -> None:
        """An upload guaranteed to be mid-stream (bytes in a staging file) at the kill."""
        def body():
            yield b'--s\r\nContent-Disposition: form-data; name="file"; filename="slow.bin"\r\n\r\n'
            while True:
                yield b"s" * SLOW_CHUNK
                slow_started.set()
                time.sleep(0.02)
        try:
            with srv.client() as c:
                c.post("/v1/artifacts", content=body(),
                       headers={"Content-Type": "multipart/form-data; boundary=s"}, timeout=60)
        except httpx.HTTPError:
            pass

    threads = [threading.Thread(target=multipart_writer, args=(i,)) for i in range(WRITERS // 2)]
    threads += [threading.Thread(target=presigned_writer, args=(100 + i,)) for i in range(WRITERS // 2)]
    threads.append(threading.Thread(target=slow_writer))
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while True:  # let real work pile up: both kinds acknowledged, a slow upload mid-stream
        with lock:
            enough = counts["multipart"] >= 15 and counts["presigned"] >= 8
        # The slow upload's first MiB is buffered in memory; past it, it is in a staging file.
        if enough and slow_started.is_set() and any((srv.data_dir / "tmp").iterdir()):
            break
        assert time.monotonic() < deadline, f"uploads too slow: {counts}"
        time.sleep(0.02)
    srv.kill()  # SIGKILL, mid-flight
    stop.set()
    for t in threads:
        t.join(60)
    leftovers = os.listdir(srv.data_dir / "tmp")
    assert leftovers, "no upload was in flight at the kill"

    srv.start()
    assert os.listdir(srv.data_dir / "tmp") == []  # the first start removed the leftovers
    with srv.client() as c:
        for artifact_id, content in acked.items():
            r = c.get(f"/v1/artifacts/{artifact_id}")
            assert r.status_code == 200, (artifact_id, r.text)
            assert r.json()["status"] == "active"
            assert download(c, artifact_id) == content
        # A PUT that was acknowledged keeps its bytes: complete works after the restart (or the
        # complete had already committed before the kill and is idempotent).
        for artifact_id, content in put_acked.items():
            done = c.post(f"/v1/artifacts/{artifact_id}/complete")
            assert done.status_code == 200, (artifact_id, done.text)
            assert download(c, artifact_id) == content
        # Nothing partial anywhere: every listed artifact's bytes match its hash and size.
        listed, cursor = [], None
        while True:
            page = c.get("/v1/artifacts", params={"limit": 200, **({"cursor": cursor} if cursor else {})}).json()
            listed += page["artifacts"]
            if not page["has_more"]:
                break
            cursor = page["next_cursor"]
        assert {a["artifact_id"] for a in listed} >= set(acked) | set(put_acked)
        for art in listed:
            data = download(c, art["artifact_id"])
            assert len(data) == art["size_bytes"]
            assert sha(data) == art["content_hash"]
    res = srv.admin("check")
    assert res.returncode == 0, res.stdout


@pytest.mark.parametrize("durability", ["full", "relaxed"])
def test_kill_9_during_small_uploads_loses_no_acknowledged_inline_blob(make_server, durability):
    """Small bodies live in the database (storage.inline_max_bytes), acknowledged only after
    the group commit that holds row and bytes. A process crash loses none of them in either
    durability mode ("relaxed" only risks the last commits on a power loss)."""
    srv = make_server(config="[plans.selfhosted]\nrate_sustained = 100000\nrate_burst = 100000\n"
                      "anonymous_rate_sustained = 100000\nanonymous_rate_burst = 100000\n",
                      env={"ARTIFACTA_BOX_STORAGE_DURABILITY": durability})
    stop = threading.Event()
    lock = threading.Lock()
    acked: dict[str, bytes] = {}

    def writer(seed: int) -> None:
        rnd = random.Random(seed)
        with srv.client() as c:
            while not stop.is_set():
                # 0 .. exactly the threshold (and now and then one byte over it: a file)
                size = rnd.choice((0, 1, 4096, INLINE_MAX, INLINE_MAX + 1, rnd.randrange(INLINE_MAX)))
                content = os.urandom(size)
                try:
                    r = c.post("/v1/artifacts", files={"file": ("s.bin", content)})
                except httpx.HTTPError:
                    return
                if r.status_code == 201:
                    with lock:
                        acked[r.json()["artifact_id"]] = content

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(acked) < 150:  # a load of group commits in flight at the kill
        assert time.monotonic() < deadline, f"uploads too slow: {len(acked)}"
        time.sleep(0.02)
    srv.kill()
    stop.set()
    for t in threads:
        t.join(60)

    srv.start()
    inline = sql(srv, "SELECT COUNT(*) FROM blobs WHERE location = 'inline'")[0][0]
    assert inline > 0
    with srv.client() as c:
        for artifact_id, content in acked.items():
            r = c.get(f"/v1/artifacts/{artifact_id}")
            assert r.status_code == 200, (artifact_id, r.text)
            assert download(c, artifact_id) == content
    res = srv.admin("check", "--verify")
    assert res.returncode == 0, res.stdout
