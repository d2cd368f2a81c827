"""The blob-store contract (storage/blobs.py): what every backend promises the services.

Each case runs against every backend through the same `BlobStore` interface: streaming write
with the byte limit enforced mid-stream, abort, the three commit steps, stat, ranged reads,
verify, delete, listing and leftovers of interrupted uploads. "s3" is a real SeaweedFS
(tests/s3_server.py), a fresh bucket per test.
"""

import asyncio
import hashlib
import os

import pytest

from artifacta_box.storage import BlobMissing, BlobRef, LimitExceeded, LocalBlobStore
from artifacta_box.storage.s3 import S3Client
from artifacta_box.storage.s3.blobstore import S3BlobStore
from tests.backends import BACKENDS


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    if request.param == "local":
        s = LocalBlobStore(tmp_path)
        s.prepare()
        yield s
        return
    s3 = S3BlobStore(S3Client(request.getfixturevalue("s3_settings")))
    yield s3
    asyncio.run(s3.aclose())


def run(coro):
    return asyncio.run(coro)


async def put(store, data: bytes, tenant: int = 1, chunk: int = 256 * 1024):
    """One upload through every commit step; returns the ref a row would record."""
    writer = store.writer(tenant, len(data) + 1)
    for i in range(0, len(data), chunk):
        await writer.write(data[i:i + chunk])
    received = await writer.finish()
    assert (received.tenant_id, received.size) == (tenant, len(data))
    assert received.sha256 == hashlib.sha256(data).hexdigest()
    await store.place(received)
    store.ensure_placed(None, received)
    await store.release(received)
    return received.ref


async def read(store, ref, start: int, length: int) -> bytes:
    reader = await store.open(ref, start, length)
    try:
        chunks = [bytes(c) async for c in reader]
    finally:
        await reader.aclose()
    assert all(len(c) <= 1024 * 1024 for c in chunks)
    return b"".join(chunks)


@pytest.mark.parametrize("size", [0, 1, 300 * 1024, 3 * 1024 * 1024 + 5])
def test_written_bytes_read_back_whole_and_by_range(store, size):
    data = os.urandom(size)

    async def go():
        ref = await put(store, data)
        st = await store.stat(ref)
        assert st is not None and st.size == size
        assert await read(store, ref, 0, size) == data
        if size > 10:
            assert await read(store, ref, 3, 7) == data[3:10]
            assert await read(store, ref, size - 4, 4) == data[-4:]
        assert await store.verify(ref) == (hashlib.sha256(data).hexdigest(), size)

    run(go())


def test_limit_exceeded_mid_stream_leaves_nothing(store):
    async def go():
        writer = store.writer(1, 2 * 1024 * 1024)
        with pytest.raises(LimitExceeded):
            for _ in range(10):
                await writer.write(os.urandom(512 * 1024))
        await writer.abort()  # idempotent after the store already aborted
        return [b async for b in store.listing()], await store.remove_incomplete(0)

    listed, leftovers = run(go())
    assert listed == [] and leftovers == (0, 0)


def test_abort_leaves_nothing(store):
    async def go():
        writer = store.writer(1, 10**8)
        await writer.write(os.urandom(3 * 1024 * 1024))
        await writer.abort()
        await writer.abort()
        return [b async for b in store.listing()], await store.remove_incomplete(0)

    assert run(go()) == ([], (0, 0))


def test_listing_names_every_stored_blob_with_its_tenant_and_location(store):
    async def go():
        a = await put(store, b"first", tenant=1)
        b = await put(store, os.urandom(2 * 1024 * 1024), tenant=2)
        return {a, b}, [x async for x in store.listing()]

    refs, listed = run(go())
    assert sorted((x.tenant_id, x.location, x.size) for x in listed) == sorted(
        (r.tenant_id, r.location, r.size) for r in refs)
    assert not any(x.stray for x in listed)
    if store.content_addressed:
        assert sorted(x.sha256 for x in listed) == sorted(r.sha256 for r in refs)


def test_delete_frees_the_bytes_once(store):
    async def go():
        ref = await put(store, b"short-lived bytes")
        assert await store.delete(ref) == len(b"short-lived bytes")
        assert await store.delete(ref) == 0
        assert await store.stat(ref) is None
        with pytest.raises(BlobMissing):
            await read(store, ref, 0, ref.size)
        with pytest.raises(BlobMissing):
            await store.verify(ref)

    run(go())


def test_a_read_past_the_stored_bytes_is_missing_not_short(store):
    """A row that records more bytes than the store holds must never serve a short body as if
    it were whole."""
    async def go():
        ref = await put(store, b"0123456789")
        longer = BlobRef(ref.tenant_id, ref.sha256, 20, ref.location)
        with pytest.raises(BlobMissing):
            await read(store, longer, 0, 20)

    run(go())


def test_a_reader_closed_half_way_releases_everything(store):
    async def go():
        ref = await put(store, os.urandom(4 * 1024 * 1024))
        for _ in range(50):  # would run out of descriptors/connections if any leaked
            reader = await store.open(ref, 0, ref.size)
            async for _chunk in reader:
                break
            await reader.aclose()
            await reader.aclose()
        assert (await store.stat(ref)).size == ref.size

    run(go())


def test_a_multipart_upload_cut_short_is_removed_as_incomplete(store):
    """Bytes past the first part of an object store are in flight in the store itself; an
    upload the box never finished (a crash) is what `remove_incomplete` clears."""
    async def go():
        writer = store.writer(1, 10**8)
        await writer.write(os.urandom(9 * 1024 * 1024))  # past S3's first part / the buffer
        if store.content_addressed:
            await writer._wait_pending()  # noqa: SLF001 - on disk now, as after a crash
        # the box dies here: nothing aborts the writer
        removed = await store.remove_incomplete(0)
        listed = [b async for b in store.listing()]
        return removed, listed

    (n, _size), listed = run(go())
    assert n == 1 and listed == []
