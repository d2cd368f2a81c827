"""The S3 race: the same bytes uploaded concurrently while gc collects them.

On S3 every upload writes its own key; the commit either creates the blob row with that key
or finds the row (dedup) and deletes its own key afterwards, and gc deletes an object only
after the transaction that removed its row committed. Here uploads of one content race each
other, their deletes, the purge that drops the last reference, and the server's own gc
(every second, grace 1 s): at every moment an active artifact must download byte-identical,
and at the end exactly the object the row names is left.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time

import httpx
import pytest

from tests.backends import backend_env
from tests.helpers import BoxServer, blob_files, sql

CONFIG = """
[retention]
deleted = 0
orphan_grace = "1s"
gc_interval = "1s"

[plans.selfhosted]
rate_sustained = 100000
rate_burst = 100000

[logging]
access_log = false
"""

ROUNDS = 12
UPLOADERS = 4


@pytest.fixture
def box(tmp_path, request, seaweedfs) -> BoxServer:
    srv = BoxServer(tmp_path / "box", config=CONFIG, env=backend_env(request, "s3")).start()
    yield srv
    srv.stop()


async def _round(c: httpx.AsyncClient, content: bytes) -> list[str]:
    """UPLOADERS uploads of `content` at once; each is downloaded back at once; then all but
    one are deleted (the purge makes the blob collectable as soon as the last one goes)."""
    ups = await asyncio.gather(*(c.post("/v1/artifacts", files={"file": ("same.bin", content)})
                                 for _ in range(UPLOADERS)))
    assert [u.status_code for u in ups] == [201] * UPLOADERS, [u.text for u in ups]
    ids = [u.json()["artifact_id"] for u in ups]
    for aid in ids:
        url = (await c.get(f"/v1/artifacts/{aid}/download-url")).json()["download_url"]
        got = await c.get(url, headers={"Authorization": ""})
        assert got.status_code == 200 and got.content == content, (got.status_code, aid)
    dels = await asyncio.gather(*(c.delete(f"/v1/artifacts/{aid}") for aid in ids))
    assert [d.status_code for d in dels] == [200] * UPLOADERS
    return ids


def test_same_bytes_uploaded_concurrently_while_gc_runs(box):
    content = os.urandom(300_000)
    digest = hashlib.sha256(content).hexdigest()

    async def go() -> None:
        async with httpx.AsyncClient(base_url=box.url, timeout=60,
                                     headers={"Authorization": f"Bearer {box.key}"}) as c:
            for i in range(ROUNDS):
                await _round(c, content)
                if i % 3 == 2:  # let a gc run find the blob unreferenced past its grace
                    await _gc_collected(box, digest)
            last = await c.post("/v1/artifacts", files={"file": ("same.bin", content)})
            assert last.status_code == 201
            url = (await c.get(f"/v1/artifacts/{last.json()['artifact_id']}/download-url")
                   ).json()["download_url"]
            assert (await c.get(url, headers={"Authorization": ""})).content == content

    asyncio.run(go())
    gc = box.admin("gc", "--json")
    assert gc.returncode == 0
    rows = sql(box, "SELECT location FROM blobs WHERE sha256 = ? AND refs > 0", (digest,))
    assert len(rows) == 1
    # Exactly the row's object: every duplicate key was deleted after its commit, every
    # collected one after gc's commit, and none of them was the one a row still names.
    assert blob_files(box) == [rows[0][0]]
    check = box.admin("check", "--verify", check=False)
    assert check.returncode == 0, check.stdout + check.stderr


async def _gc_collected(box: BoxServer, digest: str, timeout: float = 20.0) -> None:
    """Wait (polling the database) until the server's gc removed the unreferenced blob row."""
    deadline = time.monotonic() + timeout
    while sql(box, "SELECT 1 FROM blobs WHERE sha256 = ?", (digest,)):
        assert time.monotonic() < deadline, "gc never collected the unreferenced blob"
        await asyncio.sleep(0.05)
