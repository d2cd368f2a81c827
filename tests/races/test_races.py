"""Races a real server must win: many requests at once from one tenant, against one process.

Each test fires its requests together (asyncio + httpx, one connection per request) and then
checks the exact end state — rows, reference counts, usage, files — not only the statuses.
The per-path races the endpoint suites already cover (multipart/JSON uploads racing a seal,
one Idempotency-Key over multipart, eight deletes of one artifact, unfiltered paging during
uploads) are not repeated here; these cover the cross-path and accounting races.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.helpers import BoxServer, error_code, sha, sql, temp_files, tenant_id, unique_name

# Timing- and load-sensitive (many requests at once, against one process):
# one at a time, on one xdist worker.
pytestmark = pytest.mark.serial

RACE_CONFIG = """
[plans.roomy]
rate_sustained = 100000
rate_burst = 100000

[plans.capped]
rate_sustained = 100000
rate_burst = 100000
max_active_links = 5
storage_bytes = 100000

[plans.trickle]
rate_sustained = 0.01
rate_burst = 40

[plans.brisk]
rate_sustained = 40
rate_burst = 200

[logging]
access_log = false
"""


@pytest.fixture(scope="module")
def box(tmp_path_factory) -> Iterator[BoxServer]:
    srv = BoxServer(tmp_path_factory.mktemp("races") / "box", config=RACE_CONFIG).start()
    yield srv
    srv.stop()


def tenant(box: BoxServer, plan: str = "roomy") -> tuple[str, str]:
    name = unique_name("r")
    return name, box.new_tenant(name, plan)


def blob_files(box: BoxServer, tid: int) -> list[str]:
    """The content hashes of a tenant's stored bytes: its files and its inline blobs."""
    root = box.data_dir / "blobs" / str(tid)
    files = [p.name for p in root.rglob("*") if p.is_file()] if root.is_dir() else []
    inline = [r[0] for r in sql(box, "SELECT sha256 FROM blob_data WHERE tenant_id = ?", (tid,))]
    return sorted(files + inline)


def together(key: str, box: BoxServer, make_calls) -> list[Any]:
    """Run `make_calls(client)` (a list of coroutines) all at once; their results in order."""

    async def main() -> list[Any]:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=box.url, headers={"Authorization": f"Bearer {key}"},
                                     timeout=120, limits=limits) as client:
            return await asyncio.gather(*make_calls(client))

    return asyncio.run(main())


async def multipart(client: httpx.AsyncClient, content: bytes, name: str = "same.bin",
                    **fields: str) -> httpx.Response:
    return await client.post("/v1/artifacts", files={"file": (name, content, "application/x-race")},
                             data=fields)


async def json_upload(client: httpx.AsyncClient, content: bytes, name: str = "same.bin",
                      headers: dict[str, str] | None = None, **fields: str) -> httpx.Response:
    body = {"filename": name, "content": base64.b64encode(content).decode(),
            "content_encoding": "base64", "content_type": "application/x-race", **fields}
    return await client.post("/v1/artifacts", json=body, headers=headers)


async def presigned(client: httpx.AsyncClient, content: bytes, name: str = "same.bin",
                    **fields: str) -> httpx.Response:
    r = await client.post("/v1/artifacts/upload-url", json={
        "filename": name, "content_type": "application/x-race", "size_bytes": len(content), **fields})
    if r.status_code != 200:
        return r
    grant = r.json()
    async with httpx.AsyncClient(timeout=120) as bare:  # the upload URL needs no key
        put = await bare.request(grant["upload_method"], grant["upload_url"], content=content,
                                 headers=grant["upload_headers"] or {})
    assert put.status_code == 200, put.text
    return await client.post(f"/v1/artifacts/{grant['artifact_id']}/complete")


# ---------------------------------------------------------------------------- dedup accounting


def test_identical_uploads_over_every_path_share_one_blob_with_exact_counts(box):
    name, key = tenant(box)
    tid = tenant_id(box, name)
    content = os.urandom(64 * 1024)
    n = 24
    paths = [multipart, json_upload, presigned]

    results = together(key, box, lambda c: [paths[i % 3](c, content) for i in range(n)])

    assert [r.status_code for r in results].count(201) == 16, [r.text for r in results]
    assert all(r.status_code in (200, 201) for r in results)  # complete answers 200
    records = [r.json() for r in results]
    ids = {rec["artifact_id"] for rec in records}
    assert len(ids) == n, "every upload is a new artifact"
    assert {rec["content_hash"] for rec in records} == {sha(content)}
    assert {rec["status"] for rec in records} == {"active"}
    # exactly one blob row and one file, referenced n times; billed once
    assert sql(box, "SELECT sha256, size_bytes, refs, live_refs FROM blobs WHERE tenant_id = ?",
               (tid,)) == [(sha(content), len(content), n, n)]
    assert blob_files(box, tid) == [sha(content)]
    assert sql(box, "SELECT storage_bytes FROM tenants WHERE tenant_id = ?", (tid,)) == [(len(content),)]
    with box.client(key) as c:
        assert c.get("/v1/whoami").json()["usage_storage_bytes"] == len(content)
        listed = c.get("/v1/artifacts", params={"limit": 200}).json()["artifacts"]
    assert {a["artifact_id"] for a in listed} == ids

    # Now delete every artifact twice, all at once: n deletes win, n see "already deleted".
    deletes = together(key, box, lambda c: [c.delete(f"/v1/artifacts/{aid}")
                                            for aid in sorted(ids) * 2])
    assert sorted(r.status_code for r in deletes) == [200] * n + [410] * n
    assert {error_code(r) for r in deletes if r.status_code == 410} == {"artifact_already_deleted"}
    assert {r.json()["artifact_id"] for r in deletes if r.status_code == 200} == ids
    # usage released exactly once per artifact; the bytes stay for the retention period
    assert sql(box, "SELECT refs, live_refs FROM blobs WHERE tenant_id = ?", (tid,)) == [(n, 0)]
    assert sql(box, "SELECT storage_bytes FROM tenants WHERE tenant_id = ?", (tid,)) == [(0,)]
    assert blob_files(box, tid) == [sha(content)]
    assert not temp_files(box)


# ---------------------------------------------------------------------------- idempotency


def test_one_idempotency_key_in_parallel_over_json_and_multipart_makes_one_artifact(box):
    name, key = tenant(box)
    tid = tenant_id(box, name)
    content = os.urandom(10_000)
    n = 12
    headers = {"Idempotency-Key": "same-key-both-encodings"}

    async def via_multipart(c: httpx.AsyncClient) -> httpx.Response:
        return await c.post("/v1/artifacts", headers=headers, data={"session_id": "idem"},
                            files={"file": ("same.bin", content, "application/x-race")})

    results = together(key, box, lambda c: [
        via_multipart(c) if i % 2 else json_upload(c, content, headers=headers, session_id="idem")
        for i in range(n)])

    assert sorted(r.status_code for r in results) == [200] * (n - 1) + [201], [r.text for r in results]
    assert len({r.json()["artifact_id"] for r in results}) == 1
    assert all(r.headers.get("Idempotent-Replayed") == "true" for r in results if r.status_code == 200)
    assert sql(box, "SELECT count(*) FROM artifacts WHERE tenant_id = ?", (tid,)) == [(1,)]
    assert sql(box, "SELECT storage_bytes FROM tenants WHERE tenant_id = ?", (tid,)) == [(10_000,)]
    assert sql(box, "SELECT artifact_count FROM sessions WHERE tenant_id = ?", (tid,)) == [(1,)]


# ---------------------------------------------------------------------------- seal


def test_presigned_completes_racing_a_seal_are_committed_before_it_or_refused(box):
    name, key = tenant(box)
    tid = tenant_id(box, name)
    n = 16
    contents = [os.urandom(2_000 + i) for i in range(n)]
    with box.client(key) as c:
        opening = c.post("/v1/artifacts", files={"file": ("open", b"open")},
                         data={"session_id": "race"}).json()
        grants = []
        for content in contents:
            g = c.post("/v1/artifacts/upload-url", json={
                "filename": "p.bin", "size_bytes": len(content), "session_id": "race"}).json()
            assert httpx.put(g["upload_url"], content=content,
                             headers=g["upload_headers"]).status_code == 200
            grants.append(g["artifact_id"])

    async def seal(c: httpx.AsyncClient) -> httpx.Response:
        await asyncio.sleep(0)  # let the first completes start
        return await c.post("/v1/sessions/race/seal")

    results = together(key, box, lambda c: [
        *(c.post(f"/v1/artifacts/{aid}/complete") for aid in grants[: n // 2]),
        seal(c),
        *(c.post(f"/v1/artifacts/{aid}/complete") for aid in grants[n // 2:]),
    ])
    sealed = results[n // 2]
    completes = results[: n // 2] + results[n // 2 + 1:]
    assert sealed.status_code == 200, sealed.text
    sealed_body = sealed.json()
    committed = [r.json() for r in completes if r.status_code == 200]
    refused = [r for r in completes if r.status_code != 200]
    assert all(r.status_code == 409 and error_code(r) == "session_sealed" for r in refused), \
        [r.text for r in refused]
    assert all(a["created_at"] <= sealed_body["sealed_at"] for a in committed)
    # the seal counted exactly what was committed before it
    assert sealed_body["artifact_count"] == len(committed) + 1
    with box.client(key) as c:
        listed = c.get("/v1/artifacts", params={"session_id": "race", "limit": 200}).json()["artifacts"]
        assert sorted(a["artifact_id"] for a in listed) == sorted(
            [a["artifact_id"] for a in committed] + [opening["artifact_id"]])
        for r in refused:
            aid = grants[completes.index(r)]
            assert c.get(f"/v1/artifacts/{aid}").json()["status"] == "pending"
        [session] = c.get("/v1/sessions").json()["sessions"]
        assert session["artifact_count"] == len(committed) + 1 and session["is_sealed"] is True
        billed = sum(a["size_bytes"] for a in committed) + len(b"open")
        assert c.get("/v1/whoami").json()["usage_storage_bytes"] == billed
    assert sql(box, "SELECT storage_bytes FROM tenants WHERE tenant_id = ?", (tid,)) == [(billed,)]


# ---------------------------------------------------------------------------- caps and quotas


def test_active_link_cap_holds_under_parallel_creates(box):
    _, key = tenant(box, "capped")
    with box.client(key) as c:
        art = c.post("/v1/artifacts", files={"file": ("l.txt", b"link me")}).json()
    results = together(key, box, lambda c: [
        c.post(f"/v1/artifacts/{art['artifact_id']}/links") for _ in range(16)])
    assert sorted(r.status_code for r in results) == [201] * 5 + [403] * 11
    assert {error_code(r) for r in results if r.status_code == 403} == {"quota_exceeded"}
    assert len({r.json()["link_id"] for r in results if r.status_code == 201}) == 5
    with box.client(key) as c:
        assert c.get("/v1/whoami").json()["active_links"] == 5


def test_storage_quota_holds_under_parallel_distinct_uploads(box):
    name, key = tenant(box, "capped")  # 100,000 bytes
    tid = tenant_id(box, name)
    contents = [os.urandom(20_000) for _ in range(12)]
    results = together(key, box, lambda c: [
        (multipart if i % 2 else json_upload)(c, content, name=f"{i}.bin")
        for i, content in enumerate(contents)])
    ok = [r for r in results if r.status_code == 201]
    refused = [r for r in results if r.status_code != 201]
    assert len(ok) == 5, [r.status_code for r in results]
    assert all(r.status_code == 403 and error_code(r) == "quota_exceeded" for r in refused)
    assert sql(box, "SELECT storage_bytes FROM tenants WHERE tenant_id = ?", (tid,)) == [(100_000,)]
    kept = sorted(r.json()["content_hash"] for r in ok)
    # refused bytes left nothing behind: only the accepted blobs exist, with their rows
    assert blob_files(box, tid) == kept
    assert [row[0] for row in sql(box, "SELECT sha256 FROM blobs WHERE tenant_id = ? ORDER BY 1",
                                  (tid,))] == kept
    assert not temp_files(box)


def test_rate_limit_is_exact_under_parallel_load(box):
    # burst 40, refilling one token per 100 s: over this test the bucket holds 40 tokens (+1 at
    # most if a refill lands), however many requests arrive at once.
    _, key = tenant(box, "trickle")
    started = time.monotonic()
    results = together(key, box, lambda c: [c.get("/v1/whoami") for _ in range(100)])
    refill = 0.01 * (time.monotonic() - started)
    ok = [r for r in results if r.status_code == 200]
    limited = [r for r in results if r.status_code == 429]
    assert len(ok) + len(limited) == 100
    assert 40 - 1 <= len(ok) <= 40 + 1 + int(refill), len(ok)
    for r in limited:
        assert error_code(r) == "rate_limited"
        assert int(r.headers["Retry-After"]) >= 1
        assert r.json()["error"]["retry_after_seconds"] == int(r.headers["Retry-After"])
    # every token was handed out once: the remaining counts seen by the winners are distinct
    remaining = sorted(int(r.headers["X-RateLimit-Remaining"]) for r in ok)
    assert len(set(remaining)) == len(remaining) or refill >= 1, remaining
    assert remaining[0] == 0


def test_rate_limit_is_one_bucket_across_worker_processes(tmp_path):
    # With --workers 2 each process answers part of the requests; the bucket must still be one:
    # 40 tokens in total, not 40 per worker.
    srv = BoxServer(tmp_path / "workers", config=RACE_CONFIG, args=["--workers", "2"]).start()
    try:
        _, key = tenant(srv, "trickle")
        started = time.monotonic()
        results = together(key, srv, lambda c: [c.get("/v1/whoami") for _ in range(120)])
        refill = 0.01 * (time.monotonic() - started)
        ok = [r for r in results if r.status_code == 200]
        assert all(r.status_code in (200, 429) for r in results)
        assert 40 - 1 <= len(ok) <= 40 + 1 + int(refill), len(ok)
        remaining = sorted(int(r.headers["X-RateLimit-Remaining"]) for r in ok)
        assert len(set(remaining)) == len(remaining) or refill >= 1, remaining
    finally:
        srv.stop()


def test_two_workers_leasing_tokens_still_refuse_past_the_limit(tmp_path):
    # 40 tokens/s is fast enough for each worker to lease 2 tokens at a time and take them
    # without the table's lock (security.ratelimit.SharedTokenBuckets); the two together
    # still admit the burst plus what refilled, and a worker may be refused one lease early.
    srv = BoxServer(tmp_path / "workers", config=RACE_CONFIG, args=["--workers", "2"]).start()
    try:
        _, key = tenant(srv, "brisk")

        async def caller(c: httpx.AsyncClient) -> list[httpx.Response]:
            return [await c.get("/v1/whoami") for _ in range(40)]

        started = time.monotonic()  # 16 callers at once, one request after another each
        results = [r for rs in together(key, srv, lambda c: [caller(c) for _ in range(16)])
                   for r in rs]
        refill = 40 * (time.monotonic() - started)
        ok = [r for r in results if r.status_code == 200]
        limited = [r for r in results if r.status_code == 429]
        assert len(ok) + len(limited) == 640
        assert 200 - 2 * 2 <= len(ok) <= 200 + 1 + int(refill), (len(ok), refill)
        for r in limited:
            assert error_code(r) == "rate_limited"
            assert int(r.headers["Retry-After"]) >= 1
    finally:
        srv.stop()


# ---------------------------------------------------------------------------- paging


@pytest.mark.parametrize("filters", [
    {"session_id": "paged"},
    {"metadata.run": "r1"},
    {"agent_id": "bot", "metadata.run": "r1"},
])
def test_filtered_paging_while_matching_uploads_run_never_skips_or_repeats(box, filters):
    _, key = tenant(box)
    fields = {"session_id": "paged", "agent_id": "bot", "metadata": '{"run": "r1"}'}
    with box.client(key) as c:
        before = [c.post("/v1/artifacts", files={"file": (f"{i}.txt", os.urandom(16))},
                         data=fields).json()["artifact_id"] for i in range(40)]
    expected = list(reversed(before))  # newest first

    async def writer(c: httpx.AsyncClient, n: int) -> int:
        for i in range(n):
            r = await c.post("/v1/artifacts", files={"file": (f"w{i}.txt", os.urandom(16))},
                             data=fields)
            assert r.status_code == 201
        return n

    async def reader(c: httpx.AsyncClient) -> list[dict]:
        out: list[dict] = []
        cursor = None
        while True:
            q = {"limit": "3", **filters, **({"cursor": cursor} if cursor else {})}
            body = (await c.get("/v1/artifacts", params=q)).json()
            out += body["artifacts"]
            if not body["has_more"]:
                return out
            cursor = body["next_cursor"]

    *written, seen = together(key, box, lambda c: [writer(c, 10), writer(c, 10), reader(c)])
    assert sum(written) == 20
    seen_ids = [a["artifact_id"] for a in seen]
    assert len(seen_ids) == len(set(seen_ids)), "an artifact was listed twice"
    assert [i for i in seen_ids if i in set(before)] == expected, "a pre-existing artifact was skipped"
    order = [(a["created_at"], a["artifact_id"]) for a in seen]
    assert order == sorted(order, reverse=True)


def test_session_paging_while_new_sessions_appear_lists_each_old_session_once(box):
    _, key = tenant(box)
    with box.client(key) as c:
        old = []
        for i in range(24):
            c.post("/v1/artifacts", files={"file": ("s.txt", b"s")}, data={"session_id": f"old-{i}"})
            old.append(f"old-{i}")

    async def writer(c: httpx.AsyncClient, tag: str) -> None:
        for i in range(12):
            r = await c.post("/v1/artifacts", files={"file": ("n.txt", b"n")},
                             data={"session_id": f"new-{tag}-{i}"})
            assert r.status_code == 201

    async def reader(c: httpx.AsyncClient) -> list[str]:
        out: list[str] = []
        after = None
        while True:
            q = {"limit": "2", **({"after": after} if after else {})}
            body = (await c.get("/v1/sessions", params=q)).json()
            out += [s["session_id"] for s in body["sessions"]]
            if not body["has_more"]:
                return out
            after = body["next_cursor"]

    *_, seen = together(key, box, lambda c: [writer(c, "a"), writer(c, "b"), reader(c)])
    assert len(seen) == len(set(seen)), "a session was listed twice"
    assert [s for s in seen if s.startswith("old-")] == list(reversed(old))
