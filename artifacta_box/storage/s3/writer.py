"""Streaming upload of a body of unknown length to one S3 key, in bounded memory.

`ObjectWriter`: `await write(chunk)` … `await finish()` (or `await abort()`), like the local
store's StagingFile. It hashes every byte once (SHA-256 of the whole body, for the content
address), counts them and refuses more than `limit` mid-stream (LimitExceeded, everything
already sent is aborted).

- A body that ends within the first part goes up in one PUT carrying `x-amz-checksum-sha256`
  = the body's SHA-256 (the hash the box computed anyway): the store stores exactly the bytes
  the box hashed, or refuses them.
- A larger body becomes a multipart upload: parts of `part_size` bytes (at least 8 MiB, more
  when `limit` needs it to stay within S3's 10,000 parts), each protected by its own
  `x-amz-checksum-crc32` (UNSIGNED-PAYLOAD: no second SHA-256 of the bytes; `part_checksum` =
  SHA256 signs each part's SHA-256 instead, for a store that ignores checksums),
  at most `max_in_flight` uploading at once while the next one fills; the whole-body SHA-256
  of a part runs in a worker thread beside its upload (in part order), never holding up the
  body. Memory per upload is therefore bounded by (max_in_flight + 1) parts, whatever the
  size.
- `abort()` (after an error, a refused size or a client that left) waits for parts in flight
  and aborts the multipart upload, so the store keeps nothing. If the box dies first, the
  incomplete upload stays invisible in the bucket until gc aborts it
  (`S3Client.abort_stale_multipart_uploads`).

With `create_only`, the object is written only if the key does not exist yet (`If-None-Match:
*` on the PUT or on the completion), else S3PreconditionFailed.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from dataclasses import dataclass

from artifacta_box.storage.blobs import LimitExceeded, StorageError
from artifacta_box.storage.s3.client import CRC32, S3Client

MIN_PART = 8 * 1024 * 1024      # S3's minimum is 5 MiB; 8 MiB halves the request count
MAX_PARTS = 10_000
MAX_IN_FLIGHT = 2               # parts uploading at once per writer
_HASH_ON_LOOP_MAX = 64 * 1024   # smaller bodies are hashed on the event loop (~40 us)


def part_size_for(limit: int) -> int:
    """The part size that fits `limit` bytes into S3's 10,000 parts (at least MIN_PART)."""
    return max(MIN_PART, -(-limit // (MAX_PARTS - 1)))


def writer_memory(limit: int, max_in_flight: int = MAX_IN_FLIGHT) -> int:
    """The most bytes an ObjectWriter for a body of at most `limit` bytes holds: the part
    being filled and `max_in_flight` uploading (a body within one part: that part only)."""
    part = part_size_for(limit)
    return limit if limit <= part else (max_in_flight + 1) * part


@dataclass(frozen=True)
class _Part:
    buf: bytearray
    upload: asyncio.Future[tuple[int, str, str]]
    hashed: asyncio.Future[None]


@dataclass(frozen=True)
class WrittenObject:
    key: str
    size: int
    sha256: str   # hex, of the whole body
    etag: str
    parts: int    # 0: one PUT


class ObjectWriter:
    def __init__(self, client: S3Client, key: str, limit: int, *, content_type: str | None = None,
                 create_only: bool = False, part_size: int | None = None,
                 max_in_flight: int = MAX_IN_FLIGHT, part_checksum: str = CRC32) -> None:
        self.client = client
        self.key = key
        self.limit = limit
        self.content_type = content_type
        self.create_only = create_only
        self.part_size = part_size or part_size_for(limit)
        self.max_in_flight = max_in_flight
        self.part_checksum = part_checksum
        self.size = 0
        self._hash = hashlib.sha256()
        # The first part grows with the body (a small body stays small); once the body is known
        # to be multipart, parts are filled into buffers of exactly part_size that are reused
        # when their upload is done: no reallocation, no fresh pages to fault in and zero.
        self._buf = bytearray()
        self._fill = 0            # bytes of _buf in use (== len(_buf) for the first part)
        self._spare: list[bytearray] = []
        self._hashed: asyncio.Future[None] | None = None   # the last hash update queued
        self._upload_id: str | None = None
        self._parts: list[tuple[int, str, str]] = []
        self._in_flight: deque[_Part] = deque()
        self._closed = False

    async def write(self, chunk: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise StorageError("the upload is already finished or aborted")
        n = len(chunk)
        if self.size + n > self.limit:
            await self.abort()
            raise LimitExceeded(self.limit)
        self.size += n
        if self._upload_id is None and not self._in_flight and self._fill + n < self.part_size:
            self._buf += chunk   # still within the first part
            self._fill += n
            return
        view = memoryview(chunk).cast("B")
        while view:
            if len(self._buf) < self.part_size:   # the first part, or a new one
                if self._fill == 0:
                    self._buf = self._spare.pop() if self._spare else bytearray(self.part_size)
                else:
                    self._buf.extend(bytes(self.part_size - len(self._buf)))
            take = min(len(view), self.part_size - self._fill)
            self._buf[self._fill:self._fill + take] = view[:take]
            self._fill += take
            view = view[take:]
            if self._fill == self.part_size:
                part, self._buf, self._fill = self._buf, bytearray(), 0
                try:
                    await self._ship(part, self.part_size)
                except BaseException:
                    await asyncio.shield(self.abort())
                    raise

    async def _ship(self, buf: bytearray, length: int) -> None:
        """Hash the part (in order, after the previous ones) and upload it, both in worker
        threads while the body keeps arriving; at most max_in_flight parts at once."""
        run = self.client.run_blocking
        if self._upload_id is None:
            self._upload_id = await run(lambda: self.client.create_multipart_sync(
                self.key, self.content_type, checksum=self.part_checksum))
        while len(self._in_flight) >= self.max_in_flight:
            await self._settle(self._in_flight[0])
        number = len(self._parts) + len(self._in_flight) + 1
        data = memoryview(buf)[:length]
        self._hashed = asyncio.ensure_future(self._hash_after(self._hashed, data))
        upload = asyncio.ensure_future(run(self._upload_part, number, data))
        self._in_flight.append(_Part(buf, upload, self._hashed))

    async def _hash_after(self, previous: asyncio.Future[None] | None, data: memoryview) -> None:
        if previous is not None:
            await previous
        # hashlib releases the GIL for large buffers: this runs beside the uploads.
        await self.client.run_blocking(self._hash.update, data)

    async def _settle(self, part: _Part) -> None:
        """Wait for the oldest part in flight; its buffer becomes a spare."""
        try:
            self._parts.append(await part.upload)
            await part.hashed
        finally:
            self._in_flight.remove(part)
        self._spare.append(part.buf)

    def _upload_part(self, number: int, data: memoryview) -> tuple[int, str, str]:
        etag, checksum = self.client.upload_part_sync(self.key, self._upload_id or "", number, data,
                                                      checksum=self.part_checksum)
        return number, etag, checksum

    async def finish(self) -> WrittenObject:
        """Send what is left and make the object visible. On any failure the upload is
        aborted before the error is raised."""
        if self._closed:
            raise StorageError("the upload is already finished or aborted")
        try:
            if self._upload_id is None:
                result = await self._put_whole()
            else:
                result = await self._complete()
        except BaseException:
            await asyncio.shield(self.abort())
            raise
        self._closed = True
        self._upload_id = None  # completed: nothing left to abort
        return result

    async def _put_whole(self) -> WrittenObject:
        data, self._buf, self._fill = self._buf, bytearray(), 0
        if len(data) <= _HASH_ON_LOOP_MAX:
            self._hash.update(data)
        else:
            await self.client.run_blocking(self._hash.update, data)
        digest = self._hash.hexdigest()
        etag = await self.client.put_bytes(self.key, data, sha256_hex=digest,
                                           content_type=self.content_type,
                                           if_none_match=self.create_only)
        return WrittenObject(self.key, self.size, digest, etag, 0)

    async def _complete(self) -> WrittenObject:
        if self._fill:  # the last part may be smaller than the minimum
            part, length, self._buf, self._fill = self._buf, self._fill, bytearray(), 0
            await self._ship(part, length)
        while self._in_flight:
            await self._settle(self._in_flight[0])
        parts = sorted(self._parts)
        etag = await self.client.run_blocking(
            lambda: self.client.complete_multipart_sync(
                self.key, self._upload_id or "", parts, checksum=self.part_checksum,
                if_none_match=self.create_only))
        return WrittenObject(self.key, self.size, self._hash.hexdigest(), etag, len(parts))

    async def abort(self) -> None:
        """Drop everything sent so far (safe to call more than once)."""
        self._closed = True
        self._buf, self._fill, self._spare = bytearray(), 0, []
        while self._in_flight:
            part = self._in_flight.popleft()
            for step in (part.upload, part.hashed):
                try:
                    await step
                except Exception:  # noqa: BLE001 - discarding anyway
                    pass
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is not None:
            try:
                await self.client.abort_multipart(self.key, upload_id)
            except StorageError:
                pass  # gc aborts incomplete uploads older than the grace
