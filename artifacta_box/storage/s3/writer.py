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
  at most `max_in_flight` uploading at once while the next one fills. Memory per upload is
  therefore bounded by (max_in_flight + 1) parts, whatever the size.
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
        self._buf = bytearray()
        self._upload_id: str | None = None
        self._parts: list[tuple[int, str, str]] = []
        self._in_flight: deque[asyncio.Future[tuple[int, str, str]]] = deque()
        self._closed = False

    async def write(self, chunk: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise StorageError("the upload is already finished or aborted")
        n = len(chunk)
        if self.size + n > self.limit:
            await self.abort()
            raise LimitExceeded(self.limit)
        self.size += n
        self._buf += chunk
        if len(self._buf) >= self.part_size:
            # The whole buffer becomes the part (parts need not be equal): no copy.
            part, self._buf = self._buf, bytearray()
            try:
                await self._ship(part)
            except BaseException:
                await asyncio.shield(self.abort())
                raise

    async def _ship(self, part: bytearray) -> None:
        run = self.client.run_blocking
        # Hashed in order, off the loop (hashlib releases the GIL for large buffers).
        await run(self._hash.update, part)
        if self._upload_id is None:
            self._upload_id = await run(lambda: self.client.create_multipart_sync(
                self.key, self.content_type, checksum=self.part_checksum))
        while len(self._in_flight) >= self.max_in_flight:
            self._parts.append(await self._in_flight.popleft())
        number = len(self._parts) + len(self._in_flight) + 1
        self._in_flight.append(asyncio.ensure_future(run(self._upload_part, number, part)))

    def _upload_part(self, number: int, part: bytearray) -> tuple[int, str, str]:
        etag, checksum = self.client.upload_part_sync(self.key, self._upload_id or "", number, part,
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
        data, self._buf = self._buf, bytearray()
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
        if self._buf:  # the last part may be smaller than the minimum
            part, self._buf = self._buf, bytearray()
            await self._ship(part)
        while self._in_flight:
            self._parts.append(await self._in_flight.popleft())
        parts = sorted(self._parts)
        etag = await self.client.run_blocking(
            lambda: self.client.complete_multipart_sync(
                self.key, self._upload_id or "", parts, checksum=self.part_checksum,
                if_none_match=self.create_only))
        return WrittenObject(self.key, self.size, self._hash.hexdigest(), etag, len(parts))

    async def abort(self) -> None:
        """Drop everything sent so far (safe to call more than once)."""
        self._closed = True
        self._buf = bytearray()
        while self._in_flight:
            try:
                await self._in_flight.popleft()
            except Exception:  # noqa: BLE001 - discarding anyway
                pass
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is not None:
            try:
                await self.client.abort_multipart(self.key, upload_id)
            except StorageError:
                pass  # gc aborts incomplete uploads older than the grace
