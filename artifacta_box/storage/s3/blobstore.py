"""`S3BlobStore`: the blob-store interface (storage/blobs.py) over one S3 bucket and prefix.

Each upload writes its own fresh key, `blobs/<tenant_id>/<rr>/<32 hex>` (128 random bits; `rr`
its first two hex digits, so listings and the store's own sharding spread), recorded in the
blob row as `s3:<key>` (relative to `s3.prefix`). The hash is known only after the last byte,
and a server-side copy on SeaweedFS is a real copy (3.6-5.1 s/GiB), so nothing is ever renamed
to a content address: dedup stays in SQLite, and an upload whose commit finds the content
already stored deletes its own key after the commit (services/uploads.py). Because no upload
can come to share an existing key, an object is deleted only after the transaction that
removed its last row committed, outside the writer (services/lifecycle.py).

Every object is checked by the store as it arrives (single PUT: `x-amz-checksum-sha256` = the
content hash itself; each part of a multipart upload: its own `x-amz-checksum-crc32`, or its
signed SHA-256 when the probe found the store ignores that); keys are written with
`If-None-Match: *`, so an object once written never changes. `direct_uploads` says whether
the start-up probe found the store honours conditional writes, checksums and signed lengths,
the guarantees a presigned PUT straight to the store rests on.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from artifacta_box.storage.blobs import (
    S3,
    S3_SCHEME,
    BlobMissing,
    BlobRef,
    BlobStat,
    PresignedUpload,
    Received,
    StoredBlob,
)
from artifacta_box.storage.s3.client import (
    CRC32,
    ObjectReader,
    S3Client,
    S3Error,
    S3NotFound,
)
from artifacta_box.storage.s3.probe import PROBE_PREFIX, ProbeReport
from artifacta_box.storage.s3.writer import ObjectWriter, writer_memory

BLOB_PREFIX = "blobs/"
PROBE_LEFTOVER_SECONDS = 86400   # probe objects a crashed start-up left behind
_KEY_RE = re.compile(r"^blobs/([0-9]+)/([0-9a-f]{2})/([0-9a-f]{32})$")


def new_key(tenant_id: int) -> str:
    token = secrets.token_hex(16)
    return f"{BLOB_PREFIX}{int(tenant_id)}/{token[:2]}/{token}"


def key_of(location: str | None) -> str:
    if location is None or not location.startswith(S3_SCHEME):
        raise ValueError(f"not an S3 blob location: {location!r}")
    return location[len(S3_SCHEME):]


def tenant_of_key(key: str) -> int | None:
    """The tenant a key the store writes belongs to; None for any other name."""
    m = _KEY_RE.match(key)
    return int(m.group(1)) if m and m.group(2) == m.group(3)[:2] else None


class S3Writer:
    """One upload into a fresh key (`BlobWriter`): ObjectWriter, create-only."""

    def __init__(self, client: S3Client, tenant_id: int, limit: int,
                 content_type: str | None, part_checksum: str) -> None:
        self.tenant_id = tenant_id
        self._object = ObjectWriter(client, new_key(tenant_id), limit,
                                    content_type=content_type, create_only=True,
                                    part_checksum=part_checksum)

    @property
    def size(self) -> int:
        return self._object.size

    async def write(self, chunk: bytes | bytearray | memoryview) -> None:
        await self._object.write(chunk)

    async def finish(self) -> Received:
        written = await self._object.finish()
        return Received(self.tenant_id, written.sha256, written.size,
                        location=S3_SCHEME + written.key)

    async def abort(self) -> None:
        await self._object.abort()


class _EmptyReader:
    def __aiter__(self) -> _EmptyReader:
        return self

    async def __anext__(self) -> bytes:
        raise StopAsyncIteration

    async def aclose(self) -> None:
        return None


class S3BlobStore:
    backend = S3
    content_addressed = False

    def __init__(self, client: S3Client, report: ProbeReport | None = None) -> None:
        self.client = client
        self.report = report
        self.direct_uploads = report is not None and report.direct_uploads
        self.part_checksum = CRC32 if report is None else report.part_checksum

    def describe(self, ref: BlobRef) -> str:
        s = self.client.settings
        return f"s3://{s.bucket}/{s.prefix}{key_of(ref.location)}"

    # ------------------------------------------------------------------ writing

    def check_space(self, incoming_bytes: int = 0) -> None:
        return None  # the store's capacity is the operator's (README, "Scaling out")

    def writer(self, tenant_id: int, limit: int, content_type: str | None = None) -> S3Writer:
        return S3Writer(self.client, tenant_id, limit, content_type, self.part_checksum)

    def writer_memory(self, limit: int) -> int:
        return writer_memory(limit)

    async def place(self, received: Received) -> bool:
        return True  # durable at its own key since `finish`

    def ensure_placed(self, conn: Any, received: Received) -> None:
        return None  # nobody else deletes a key no row names yet but the orphan sweep, past
        # the grace, and an upload commits long before that

    async def release(self, received: Received) -> None:
        return None

    def new_upload_location(self, tenant_id: int) -> str | None:
        return S3_SCHEME + new_key(tenant_id) if self.direct_uploads else None

    def presign_put(self, location: str, expires_in: int, *, size: int,
                    content_type: str | None) -> PresignedUpload:
        signed = self.client.presign_put(key_of(location), expires_in, content_length=size,
                                         content_type=content_type, if_none_match=True)
        return PresignedUpload(signed.url, dict(signed.headers))

    # ------------------------------------------------------------------ reading

    async def stat(self, ref: BlobRef) -> BlobStat | None:
        info = await self.client.head(key_of(ref.location))
        return None if info is None else BlobStat(info.size, info.last_modified, info.etag)

    def local_path(self, ref: BlobRef) -> None:
        return None

    async def open(self, ref: BlobRef, start: int, length: int) -> ObjectReader | _EmptyReader:
        """`length` bytes from `start`; BlobMissing if the object is absent or shorter."""
        if length <= 0:
            if await self.stat(ref) is None:
                raise BlobMissing(f"{self.describe(ref)} does not exist")
            return _EmptyReader()
        try:
            reader = await self.client.open_read(key_of(ref.location), start, start + length - 1)
        except S3NotFound:
            raise BlobMissing(f"{self.describe(ref)} does not exist") from None
        except S3Error as exc:
            if exc.status == 416:  # the range starts past the stored bytes
                raise BlobMissing(f"{self.describe(ref)} is shorter than its row says") from None
            raise
        if reader.length != length:
            await reader.aclose()
            raise BlobMissing(f"{self.describe(ref)} is shorter than its row says")
        return reader

    async def verify(self, ref: BlobRef) -> tuple[str, int]:
        """Stream the object back through SHA-256 (read and hashed in the client's threads)."""
        try:
            reader = await self.client.open_read(key_of(ref.location))
        except S3NotFound:
            raise BlobMissing(f"{self.describe(ref)} does not exist") from None
        try:
            return await reader.sha256()
        finally:
            await asyncio.shield(reader.aclose())

    def presign_get(self, ref: BlobRef, expires_in: int, *, method: str = "GET",
                    content_disposition: str | None = None,
                    content_type: str | None = None) -> str:
        return self.client.presign_get(key_of(ref.location), expires_in, method=method,
                                       content_disposition=content_disposition,
                                       content_type=content_type)

    # ------------------------------------------------------------------ lifecycle

    async def delete(self, ref: BlobRef) -> int:
        """Delete the object; the bytes freed (0 if it was already gone)."""
        key = key_of(ref.location)
        info = await self.client.head(key)
        if info is None:
            return 0
        await self.client.delete(key)
        return info.size

    def untouched_since(self, ref: BlobRef, cutoff: float) -> bool:
        return True  # no upload ever re-uses a key: nothing to protect by age

    def delete_in_transaction(self, conn: Any, ref: BlobRef) -> None:
        return None  # deleted after the commit instead (module docstring)

    async def listing(self) -> AsyncIterator[StoredBlob]:
        s = self.client.settings
        async for info in self.client.list_objects(BLOB_PREFIX):
            tenant_id = tenant_of_key(info.key)
            yield StoredBlob(S3_SCHEME + info.key, tenant_id, None, info.size,
                             info.last_modified, f"s3://{s.bucket}/{s.prefix}{info.key}",
                             stray=tenant_id is None)

    async def remove_incomplete(self, older_than: float) -> tuple[int, int]:
        """Abort multipart uploads under blobs/ started more than `older_than` s ago (an upload
        cut short by a crash), and delete probe objects and uploads a crashed start-up left
        (older than a day). Returns (how many, 0): the store does not say how many bytes they
        held."""
        aborted = await self.client.abort_stale_multipart_uploads(BLOB_PREFIX, older_than)
        aborted += await self.client.abort_stale_multipart_uploads(PROBE_PREFIX,
                                                                   PROBE_LEFTOVER_SECONDS)
        cutoff = time.time() - PROBE_LEFTOVER_SECONDS
        stale = [i.key async for i in self.client.list_objects(PROBE_PREFIX)
                 if i.last_modified <= cutoff]
        for key in stale:
            await self.client.delete(key)
        return aborted + len(stale), 0

    async def aclose(self) -> None:
        await self.client.aclose()

