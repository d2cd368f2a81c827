"""The content-addressed blob store: streaming ingest, limits, dedup, durability order."""

import asyncio
import os

import pytest

from artifacta_box.storage import LimitExceeded, LocalBlobStore, StorageFull
from artifacta_box.storage.blobstore import MEMORY_MAX
from tests.helpers import sha


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def store(tmp_path):
    s = LocalBlobStore(tmp_path)
    s.prepare()
    return s


async def ingest(store, chunks, limit=10**9, tenant=1):
    staging = store.writer(tenant, limit)
    for c in chunks:
        await staging.write(c)
    return await staging.finish()


def test_ingest_hashes_counts_and_commits_under_content_address(store):
    data = os.urandom(3 * 1024 * 1024 + 17)  # spans several 1 MiB flushes
    chunks = [data[i:i + 65536] for i in range(0, len(data), 65536)]

    async def go():
        staged = await ingest(store, chunks, tenant=7)
        assert staged.sha256 == sha(data)
        assert staged.size == len(data)
        assert (staged.tenant_id, staged.location) == (7, None)
        assert await store.place(staged) is True
        await store.release(staged)
        return staged

    staged = run(go())
    path = store.path(7, staged.sha256)
    assert path.read_bytes() == data
    assert path.parent.parent.name == "7"  # blobs/<tenant>/<h[0:2]>/<sha256>
    assert path.parent.name == staged.sha256[:2]
    assert list(store.iter_temp_files()) == []


def test_same_content_is_stored_once_per_tenant(store):
    async def go():
        a = await ingest(store, [b"hello"])
        b = await ingest(store, [b"hel", b"lo"])
        c = await ingest(store, [b"hello"], tenant=2)
        first = await store.place(a)
        second = await store.place(b)
        other_tenant = await store.place(c)
        for r in (a, b, c):
            await store.release(r)
        return first, second, other_tenant

    assert run(go()) == (True, False, True)
    blobs = list(store.iter_blobs())
    assert sorted(b.tenant_id for b in blobs) == [1, 2]  # never shared across tenants


def test_limit_exceeded_mid_stream_leaves_nothing(store):
    async def go():
        staging = store.writer(1, limit=2 * 1024 * 1024)
        with pytest.raises(LimitExceeded):
            for _ in range(10):
                await staging.write(b"x" * 512 * 1024)

    run(go())
    assert list(store.iter_temp_files()) == []
    assert list(store.iter_blobs()) == []


def test_abort_removes_the_staging_file(store):
    async def go():
        staging = store.writer(1, 10**7)
        await staging.write(b"x" * (2 * 1024 * 1024))  # past the 1 MiB buffer: on disk
        await staging._wait_pending()
        assert os.path.exists(staging.path)
        await staging.abort()
        await staging.abort()  # idempotent
        return staging.path

    assert not os.path.exists(run(go()))


def test_small_upload_aborted_before_finish_never_touches_the_disk(store):
    async def go():
        staging = store.writer(1, 10**6)
        await staging.write(b"partial")
        await staging.abort()
        return staging.path

    assert not os.path.exists(run(go()))
    assert list(store.iter_temp_files()) == []


def test_ensure_placed_restores_a_blob_removed_between_link_and_row(store):
    async def go():
        staged = await ingest(store, [b"x" * (MEMORY_MAX + 1)], tenant=3)  # a staging file
        await store.place(staged)
        await store.delete(staged.ref)           # e.g. a concurrent gc
        store.ensure_placed(None, staged)        # inside the row's transaction
        await store.release(staged)
        return staged

    staged = run(go())
    assert store.path(3, staged.sha256).read_bytes() == b"x" * (MEMORY_MAX + 1)
    assert list(store.iter_temp_files()) == []


def test_leftover_temp_files_are_removed(store):
    (store.tmp_root / "123-abc.part").write_bytes(b"half an upload")
    assert store.remove_temp_files() == (1, 14)
    assert list(store.iter_temp_files()) == []


def test_old_temp_files_only_when_asked(store):
    p = store.tmp_root / "fresh.part"
    p.write_bytes(b"in flight")
    assert store.remove_temp_files(older_than_seconds=3600) == (0, 0)
    assert p.exists()


def test_free_space_reserve_refuses_before_writing(tmp_path):
    free = {"bytes": 10_000}
    store = LocalBlobStore(tmp_path, min_free_bytes=1_000, free_space_probe=lambda _p: free["bytes"])
    store.prepare()
    store.check_space(9_000)
    with pytest.raises(StorageFull):
        store.check_space(9_500)
    free["bytes"] = 10**9
    store.check_space(9_500)  # recovers when space returns


def test_path_refuses_non_digest(store):
    with pytest.raises(ValueError):
        store.path(1, "../../etc/passwd")


def test_small_body_is_written_once_at_its_address_without_a_staging_file(store):
    async def go():
        staged = await ingest(store, [b"small ", b"body"], tenant=5)
        assert staged.staging_path is None and list(store.iter_temp_files()) == []
        assert await store.place(staged) is True
        again = await ingest(store, [b"small body"], tenant=5)
        assert await store.place(again) is False  # dedup: nothing written
        return staged

    staged = run(go())
    assert staged.sha256 == sha(b"small body")
    assert store.path(5, staged.sha256).read_bytes() == b"small body"
    assert list(store.iter_temp_files()) == []
    assert [p.name for p in store.path(5, staged.sha256).parent.iterdir()] == [staged.sha256]


def test_the_memory_limit_separates_memory_from_staging_files(store):
    async def go():
        at = await ingest(store, [b"a" * MEMORY_MAX])
        over = await ingest(store, [b"b" * (MEMORY_MAX + 1)])
        empty = await ingest(store, [])
        for s in (at, over, empty):
            assert await store.place(s) is True
            await store.release(s)
        return at, over, empty

    at, over, empty = run(go())
    assert tuple(r.staging_path is not None for r in (at, over, empty)) == (False, True, False)
    assert store.path(1, at.sha256).stat().st_size == MEMORY_MAX
    assert store.path(1, over.sha256).stat().st_size == MEMORY_MAX + 1
    assert store.path(1, empty.sha256).read_bytes() == b""
    assert list(store.iter_temp_files()) == []


def test_small_bodies_fall_back_to_named_staging_without_o_tmpfile(store, monkeypatch):
    import artifacta_box.storage.blobstore as bs

    monkeypatch.setattr(bs, "_tmpfile_ok", False)  # e.g. a filesystem that refuses O_TMPFILE

    async def go():
        staged = await ingest(store, [b"no tmpfile here"], tenant=2)
        assert await store.place(staged) is True
        return staged

    staged = run(go())
    assert store.path(2, staged.sha256).read_bytes() == b"no tmpfile here"
    assert list(store.iter_temp_files()) == []


def test_ensure_placed_rewrites_a_small_blob_removed_before_its_row(store):
    async def go():
        staged = await ingest(store, [b"tiny"], tenant=3)
        await store.place(staged)
        await store.delete(staged.ref)           # a concurrent gc
        store.ensure_placed(None, staged)        # inside the row's transaction
        return staged

    staged = run(go())
    assert store.path(3, staged.sha256).read_bytes() == b"tiny"


def test_prepare_moves_blobs_of_the_two_level_layout_up_one_level(tmp_path):
    digest = sha(b"old layout")
    old = tmp_path / "blobs" / "4" / digest[:2] / digest[2:4] / digest
    old.parent.mkdir(parents=True)
    old.write_bytes(b"old layout")
    store = LocalBlobStore(tmp_path)
    assert store.find(4, digest) == old  # found where it is before migrating
    store.prepare()  # creates directories, but moves nothing without the server lock
    assert old.is_file() and not store.layout_current()
    assert store.upgrade_layout() == 1
    assert store.path(4, digest).read_bytes() == b"old layout"
    assert not old.parent.exists()  # the second-level directory is gone
    assert store.find(4, digest) == store.path(4, digest)
    assert [b.sha256 for b in store.iter_blobs()] == [digest]
    assert (tmp_path / "blobs" / "LAYOUT").read_text().strip() == "2"
    assert store.upgrade_layout() == 0  # idempotent
    store.prepare()
    assert store.path(4, digest).read_bytes() == b"old layout"


def test_a_new_store_is_marked_with_the_current_layout(tmp_path):
    store = LocalBlobStore(tmp_path)
    store.prepare()
    assert store.layout_current()
