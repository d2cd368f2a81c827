"""The S3 client against a real SeaweedFS: objects, ranges, conditional writes, checksums,
streaming multipart uploads, listing, incomplete uploads, resumed and interrupted downloads."""

from __future__ import annotations

import asyncio
import os
import time
import tracemalloc

import pytest

from artifacta_box.storage import LimitExceeded
from artifacta_box.storage.s3 import (
    ObjectWriter,
    S3BadDigest,
    S3Client,
    S3PreconditionFailed,
    S3Unavailable,
)
from artifacta_box.storage.s3.client import SHA256, b64_sha256
from artifacta_box.storage.s3.sigv4 import UNSIGNED_PAYLOAD
from artifacta_box.storage.s3.writer import writer_memory
from tests.helpers import free_port, sha
from tests.s3.tcp_faults import FaultyRelay

MiB = 1024 * 1024


def run(settings, fn, **client_options):
    async def go():
        async with S3Client(settings, **client_options) as client:
            return await fn(client)

    return asyncio.run(go())


async def upload(client: S3Client, key: str, data: bytes, chunk: int = 256 * 1024, **kw):
    writer = ObjectWriter(client, key, kw.pop("limit", 5 * 10**9), **kw)  # 8 MiB parts
    for i in range(0, len(data), chunk):
        await writer.write(data[i:i + chunk])
    return await writer.finish()


async def uploads_under(client: S3Client, prefix: str = "") -> list[str]:
    return [u.key async for u in client.list_multipart_uploads(prefix)]


def test_put_head_get_delete(s3_settings):
    async def go(c: S3Client):
        etag = await c.put_bytes("a/one", b"hello world", content_type="text/plain")
        info = await c.head("a/one")
        body = await c.get_bytes("a/one")
        await c.delete("a/one")
        await c.delete("a/one")  # deleting what is gone is not an error
        return etag, info, body, await c.head("a/one")

    etag, info, body, after = run(s3_settings, go)
    assert body == b"hello world"
    assert info.size == 11 and info.etag == etag and info.key == "a/one"
    assert abs(info.last_modified - time.time()) < 600
    assert after is None


def test_keys_live_under_the_configured_prefix(seaweedfs, s3_bucket):
    prefixed = seaweedfs.settings(s3_bucket, prefix="/team/box/")
    plain = seaweedfs.settings(s3_bucket)

    async def go():
        async with S3Client(prefixed) as p, S3Client(plain) as q:
            await p.put_bytes("k", b"x")
            return ([o.key async for o in p.list_objects()], [o.key async for o in q.list_objects()])

    inside, whole = asyncio.run(go())
    assert prefixed.prefix == "team/box/"
    assert inside == ["k"]
    assert whole == ["team/box/k"]


def test_ranged_reads(s3_settings):
    data = os.urandom(3 * MiB + 123)

    async def go(c: S3Client):
        await upload(c, "r", data)
        middle = await c.open_read("r", 1000, 1999)
        async with middle:
            got = b"".join([bytes(x) async for x in middle])
        tail = await c.open_read("r", len(data) - 10)
        async with tail:
            got_tail = b"".join([bytes(x) async for x in tail])
        past_end = await c.get_bytes("r", len(data) - 5, len(data) + 1000)  # clamped
        return middle, got, tail, got_tail, past_end

    middle, got, tail, got_tail, past_end = run(s3_settings, go)
    assert (middle.status, middle.start, middle.length, middle.size) == (206, 1000, 1000, len(data))
    assert got == data[1000:2000]
    assert (tail.start, tail.length) == (len(data) - 10, 10)
    assert got_tail == data[-10:]
    assert past_end == data[-5:]


def test_if_none_match_create_is_refused_with_412_on_existing_keys(s3_settings):
    async def go(c: S3Client):
        await c.put_bytes("once", b"first", if_none_match=True)
        with pytest.raises(S3PreconditionFailed) as single:
            await c.put_bytes("once", b"second", if_none_match=True)
        big = os.urandom(9 * MiB)
        await upload(c, "once-big", big, create_only=True)
        with pytest.raises(S3PreconditionFailed):
            await upload(c, "once-big", os.urandom(9 * MiB), create_only=True)
        return (single.value, await c.get_bytes("once"), await c.get_bytes("once-big") == big,
                await uploads_under(c))

    err, first, big_kept, pending = run(s3_settings, go)
    assert err.status == 412
    assert first == b"first"
    assert big_kept
    assert pending == []  # the multipart upload refused by the 412 was aborted


def test_a_wrong_checksum_is_refused_and_nothing_is_stored(s3_settings):
    async def go(c: S3Client):
        wrong = sha(b"something else")

        def put_with_wrong_checksum():
            c._request("PUT", "bad", headers={"x-amz-checksum-sha256": b64_sha256(wrong)},
                       body=b"the real bytes", retry=False, ok=(200,))

        with pytest.raises(S3BadDigest) as exc:
            await c.run_blocking(put_with_wrong_checksum)
        return exc.value, await c.head("bad")

    err, stored = run(s3_settings, go)
    assert err.status == 400 and err.code == "BadDigest"
    assert stored is None


def test_a_part_changed_on_the_way_is_refused_by_its_crc32_and_nothing_is_stored(
        seaweedfs, s3_bucket):
    # Parts go UNSIGNED-PAYLOAD (the box hashes each byte once, for the content address): only
    # x-amz-checksum-crc32 protects them, and the real store must refuse a part that changed.
    relay = FaultyRelay(seaweedfs.ports["s3"], flip_at=MiB)  # inside the first part's body
    data = os.urandom(20 * MiB)

    async def go():
        async with S3Client(seaweedfs.settings(s3_bucket, endpoint=relay.endpoint)) as c:
            with pytest.raises(S3BadDigest) as exc:
                await upload(c, "flipped", data)
            return exc.value, relay.faulted.is_set(), await c.head("flipped"), await uploads_under(c)

    try:
        err, flipped, stored, pending = asyncio.run(go())
    finally:
        relay.close()
    assert flipped and err.status == 400
    assert stored is None and pending == []  # the multipart upload was aborted


def test_parts_are_unsigned_and_carry_a_crc32_unless_the_store_ignores_checksums(s3_settings):
    data = os.urandom(9 * MiB)

    async def go(c: S3Client):
        sent: list[tuple[str, dict]] = []
        request = c._request

        def spy(method, key, **kw):
            if "partNumber" in (kw.get("query") or {}):
                sent.append((kw.get("payload_sha256"), dict(kw.get("headers") or {})))
            return request(method, key, **kw)

        c._request = spy
        crc = await upload(c, "crc", data)
        signed = await upload(c, "signed", data, part_checksum=SHA256)
        return sent, crc, signed, await c.get_bytes("crc"), await c.get_bytes("signed")

    sent, crc, signed, crc_back, signed_back = run(s3_settings, go)
    assert crc.parts == signed.parts == 2
    assert [p for p, _ in sent[:2]] == [UNSIGNED_PAYLOAD] * 2
    assert all("x-amz-checksum-crc32" in h for _, h in sent[:2])
    assert sorted(p for p, _ in sent[2:]) == sorted([sha(data[:8 * MiB]), sha(data[8 * MiB:])])
    assert crc_back == signed_back == data
    assert crc.sha256 == signed.sha256 == sha(data)


def test_streaming_upload_of_unknown_length_becomes_multipart(s3_settings):
    data = os.urandom(20 * MiB + 5)

    async def go(c: S3Client):
        written = await upload(c, "big", data, chunk=64 * 1024)
        small = await upload(c, "small", b"tiny")
        empty = await upload(c, "empty", b"")
        return written, small, empty, await c.get_bytes("big"), await c.get_bytes("empty")

    written, small, empty, back, empty_back = run(s3_settings, go)
    assert written.parts == 3  # 8 MiB parts
    assert written.size == len(data) and written.sha256 == sha(data)
    assert back == data
    assert small.parts == 0 and small.sha256 == sha(b"tiny")
    assert empty.size == 0 and empty_back == b""


@pytest.mark.parametrize("chunk", [3 * MiB + 7, 8 * MiB - 1, 20 * MiB])
def test_writes_of_any_size_are_cut_into_parts_exactly(s3_settings, chunk):
    # Chunks straddle part boundaries, or hold several parts: parts are filled into reused
    # buffers, so a byte out of place would show in the read-back or the hash.
    data = os.urandom(25 * MiB + 3)

    async def go(c: S3Client):
        written = await upload(c, "cut", data, chunk=chunk)
        return written, await c.get_bytes("cut")

    written, back = run(s3_settings, go)
    assert written.parts == 4 and written.size == len(data)
    assert back == data and written.sha256 == sha(data)


def test_the_byte_limit_is_enforced_mid_stream_and_leaves_nothing(s3_settings):
    data = os.urandom(20 * MiB)

    async def go(c: S3Client):
        with pytest.raises(LimitExceeded):
            await upload(c, "limited", data, limit=17 * MiB)
        return await c.head("limited"), await uploads_under(c)

    assert run(s3_settings, go) == (None, [])


def test_abort_drops_a_multipart_upload_in_progress(s3_settings):
    async def go(c: S3Client):
        writer = ObjectWriter(c, "aborted", 10**9)
        for _ in range(20):
            await writer.write(os.urandom(MiB))
        during = await uploads_under(c)
        await writer.abort()
        await writer.abort()  # twice is harmless
        return during, await uploads_under(c), await c.head("aborted")

    during, after, obj = run(s3_settings, go)
    assert during == ["aborted"]
    assert after == [] and obj is None


def test_listing_pages_through_every_key_under_a_prefix(s3_settings):
    async def go(c: S3Client):
        for i in range(7):
            await c.put_bytes(f"blobs/1/{i:02d}", b"x" * i)
        await c.put_bytes("other/1", b"y")
        return [o async for o in c.list_objects("blobs/", page_size=3)]

    listed = run(s3_settings, go)
    assert [o.key for o in listed] == [f"blobs/1/{i:02d}" for i in range(7)]
    assert [o.size for o in listed] == list(range(7))


def test_stale_incomplete_multipart_uploads_are_listed_and_aborted(s3_settings):
    async def go(c: S3Client):
        ids = [await c.run_blocking(c.create_multipart_sync, f"blobs/u{i}") for i in range(3)]
        await c.run_blocking(c.create_multipart_sync, "elsewhere/u")
        listed = [u async for u in c.list_multipart_uploads("blobs/", page_size=2)]
        kept = await c.abort_stale_multipart_uploads("blobs/", older_than=3600)
        aborted = await c.abort_stale_multipart_uploads("blobs/", older_than=3600,
                                                         now=time.time() + 7200)
        return ids, listed, kept, aborted, await uploads_under(c)

    ids, listed, kept, aborted, left = run(s3_settings, go)
    assert sorted(u.upload_id for u in listed) == sorted(ids)
    assert all(abs(u.initiated - time.time()) < 600 for u in listed)
    assert kept == 0            # younger than the grace: an upload may still be running
    assert aborted == 3
    assert left == ["elsewhere/u"]  # outside the prefix: not ours to abort


def test_a_download_cut_mid_body_resumes_where_it_stopped(seaweedfs, s3_bucket):
    data = os.urandom(10 * MiB)
    run(seaweedfs.settings(s3_bucket), lambda c: c.put_bytes("cut", data))
    relay = FaultyRelay(seaweedfs.ports["s3"], cut_after=3 * MiB)
    try:
        async def go(c: S3Client):
            reader = await c.open_read("cut")
            async with reader:
                got = b"".join([bytes(x) async for x in reader])
            return got, reader._resumes

        got, resumes = run(seaweedfs.settings(s3_bucket, endpoint=relay.endpoint), go)
    finally:
        relay.close()
    assert relay.faulted.is_set()
    assert got == data
    assert resumes == 1


def test_hashing_a_download_cut_mid_body_resumes_and_gives_the_whole_objects_digest(
        seaweedfs, s3_bucket):
    data = os.urandom(10 * MiB + 3)
    run(seaweedfs.settings(s3_bucket), lambda c: c.put_bytes("cut-hash", data))
    relay = FaultyRelay(seaweedfs.ports["s3"], cut_after=3 * MiB)
    try:
        async def go(c: S3Client):
            reader = await c.open_read("cut-hash")
            async with reader:
                return await reader.sha256(), reader._resumes

        digest, resumes = run(seaweedfs.settings(s3_bucket, endpoint=relay.endpoint), go)
    finally:
        relay.close()
    assert relay.faulted.is_set()
    assert digest == (sha(data), len(data))
    assert resumes == 1


def test_a_resumed_download_refuses_an_object_that_changed_meanwhile(seaweedfs, s3_bucket):
    direct = seaweedfs.settings(s3_bucket)
    run(direct, lambda c: c.put_bytes("moving", os.urandom(10 * MiB)))
    relay = FaultyRelay(seaweedfs.ports["s3"], cut_after=3 * MiB)
    try:
        async def go(c: S3Client):
            reader = await c.open_read("moving")
            async with reader:
                await reader.read()
                async with S3Client(direct) as d:
                    await d.put_bytes("moving", b"replaced")
                with pytest.raises(S3PreconditionFailed):
                    while await reader.read():
                        pass

        run(seaweedfs.settings(s3_bucket, endpoint=relay.endpoint), go)
    finally:
        relay.close()


def test_closing_the_client_ends_a_read_stuck_on_a_silent_store(seaweedfs, s3_bucket):
    run(seaweedfs.settings(s3_bucket), lambda c: c.put_bytes("stuck", os.urandom(4 * MiB)))
    relay = FaultyRelay(seaweedfs.ports["s3"], stall_after=MiB)
    try:
        async def go():
            client = S3Client(seaweedfs.settings(s3_bucket, endpoint=relay.endpoint))
            reader = await client.open_read("stuck")

            async def drain():
                while await reader.read():
                    pass

            task = asyncio.ensure_future(drain())
            await asyncio.get_running_loop().run_in_executor(None, relay.faulted.wait, 30)
            await client.aclose()
            with pytest.raises(S3Unavailable):
                await task

        asyncio.run(go())
    finally:
        relay.close()


def test_an_unreachable_store_is_reported_as_unavailable(seaweedfs, s3_bucket, tmp_path):
    closed_port = free_port()  # nobody listens there: this worker's own block (tests/helpers.py)
    settings = seaweedfs.settings(s3_bucket, endpoint=f"http://127.0.0.1:{closed_port}")
    with pytest.raises(S3Unavailable) as exc:
        run(settings, lambda c: c.head("x"), retries=0)
    assert "Connection refused" in exc.value.reason


def test_a_process_that_never_closes_its_client_still_exits_cleanly(s3_settings):
    # obstore's runtime aborted the interpreter at exit (SIGABRT, 134) unless released first;
    # this client holds only threads and sockets, so even a forgotten half-read download and
    # an unfinished upload let the process end normally.
    import dataclasses
    import json
    import subprocess
    import sys

    script = (
        "import asyncio, json, sys\n"
        "from artifacta_box.storage.s3 import ObjectWriter, S3Client, S3Settings\n"
        "async def main():\n"
        "    c = S3Client(S3Settings(**json.loads(sys.argv[1])))\n"
        "    await c.put_bytes('left', b'x' * (3 << 20))\n"
        "    r = await c.open_read('left')\n"
        "    await r.read()\n"
        "    w = ObjectWriter(c, 'unfinished', 10**9)\n"
        "    await w.write(b'y' * (9 << 20))\n"
        "asyncio.run(main())\n"
        "print('done')\n"
    )
    res = subprocess.run([sys.executable, "-c", script, json.dumps(dataclasses.asdict(s3_settings))],
                         capture_output=True, text=True, timeout=120)
    assert (res.returncode, res.stdout.strip()) == (0, "done"), res.stderr


def test_a_streaming_upload_holds_no_more_than_its_declared_writer_memory(s3_settings):
    # The in-flight upload budget (server.upload_memory) charges each S3 upload
    # writer_memory(limit): the part being filled and those uploading. Measured here with
    # tracemalloc over a 40 MiB upload, so a change that holds more parts fails.
    data = os.urandom(40 * MiB)
    limit = 5 * 10**9

    async def go(c: S3Client):
        tracemalloc.start()
        try:
            await upload(c, "measured", data, chunk=256 * 1024, limit=limit)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    peak = run(s3_settings, go)
    assert writer_memory(limit) == 3 * 8 * MiB
    assert 2 * 8 * MiB < peak <= writer_memory(limit) + 2 * MiB, peak
    assert writer_memory(5 * MiB) == 5 * MiB  # a body within one part holds that part only
