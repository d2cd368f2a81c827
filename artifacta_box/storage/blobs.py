"""The blob-store interface: what the rest of the box knows about where bytes live.

Services never see a filesystem path or an S3 key; they hold a `BlobRef` (a blob as its row
records it) and ask `box.blobs` (a `BlobStores` router) to write, read, verify, list or delete
it. Two backends implement `BlobStore`: `LocalBlobStore` (storage/blobstore.py, files at their
content address) and `S3BlobStore` (storage/s3/blobstore.py, one fresh object key per upload).

Where a blob lives is recorded in its row, never derived from the backend setting:
`blobs.location` (and `artifacts.upload_location` for a pending presigned upload's bytes):

    NULL           a local file at the content address blobs/<tenant>/<aa>/<sha256>; every row
                   written before locations existed is NULL, so an existing store keeps working
    "s3:<key>"     an S3 object, key relative to `s3.prefix` (blobs/<tenant>/<rr>/<32 hex>)
    "inline"       the bytes are in SQLite itself, table blob_data: bodies of at most
                   `storage.inline_max_bytes` (storage/inline.py)

The router serves each row from the store its location names and sends new uploads to the
configured `storage.backend`, so a box switched from local to S3 keeps serving its old blobs
from disk while new ones go to the bucket. Small bodies go to neither: `writer` holds a body in
memory up to `storage.inline_max_bytes` and spills it to the backend's writer the moment it
passes that, so a small upload becomes an "inline" blob (written by its own commit job) on
either backend, and only larger ones pay a file's fsyncs or an object's round trip.

Dedup and reference counts stay in SQLite, keyed on (tenant_id, sha256) (services/usage.py).
A content-addressed store (local) shares one file between every upload of the same bytes; a
store that is not (S3: the hash is only known after the last byte, and a server-side copy is a
real copy) gives each upload its own key, and the upload whose commit finds the content already
stored deletes its own object after the commit (services/uploads.py).

The commit of an upload has three steps, so that a store may do its part where it must:
`place` before the write transaction (local: link the staging file to its content address),
`ensure_placed` inside it, once the blob row is referenced (sync, given the transaction's
connection: local re-links a file a concurrent gc removed; an inline store writes its bytes
row there, in the same transaction as the blob row, unless that row names another store), `release` after it in every case (local: unlink the staging file). Deleting is
split the same way: `delete_in_transaction` inside gc's write job for stores whose bytes a
concurrent upload could re-reference by content (local; inline), else `delete` after the job
committed (S3: an object is deleted only once no row names it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from artifacta_box.storage.blobstore import LocalBlobStore
    from artifacta_box.storage.inline import InlineBlobStore


INLINE = "inline"       # blobs.location of bytes kept in SQLite (issue 17)
S3_SCHEME = "s3:"       # blobs.location of an S3 object: "s3:" + key (relative to s3.prefix)
LOCAL = "local"
S3 = "s3"


class StorageError(Exception):
    """Base class for blob store failures."""


class LimitExceeded(StorageError):
    """More bytes arrived than the caller allowed; what was written has been removed."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} bytes")
        self.limit = limit


class StorageFull(StorageError):
    """The disk is full, or below the configured free-space reserve."""


class StorageUnwritable(StorageError):
    """The data directory cannot be written (permissions, read-only filesystem, I/O error)."""


class BlobMissing(StorageError):
    """The store does not hold the blob a row names (or holds fewer bytes than recorded)."""


@dataclass(frozen=True)
class BlobRef:
    """One blob as a row records it: whose, which content, how long, and where."""

    tenant_id: int
    sha256: str | None   # None only for a direct upload's bytes not hashed yet
    size: int
    location: str | None

    @property
    def backend(self) -> str:
        return backend_of(self.location)


@dataclass(frozen=True, eq=False)
class Received:
    """Bytes an upload delivered: hashed, counted, durable or held, and referenced by no row yet.

    `location` is where the row will say they are: None (local: at the content address once
    `place` ran), "s3:<key>" (already durable at that key), INLINE. `data` holds a small body in
    memory (local: written at its content address by `place`; inline: by the commit job);
    `staging_path` is a local staging file, kept until `release` (after the commit)."""

    tenant_id: int
    sha256: str
    size: int
    location: str | None = None
    data: bytes | bytearray | None = None
    staging_path: str | None = None

    @property
    def ref(self) -> BlobRef:
        return BlobRef(self.tenant_id, self.sha256, self.size, self.location)


@dataclass(frozen=True)
class BlobStat:
    size: int
    mtime: float          # file mtime / S3 LastModified (Unix seconds)
    etag: str | None = None


@dataclass(frozen=True)
class StoredBlob:
    """One entry of a store's listing (check, gc)."""

    location: str | None          # what a row would record for it
    tenant_id: int | None         # from the path or key; None for a stray name
    sha256: str | None            # local only (the file's name); S3 keys are random
    size: int
    mtime: float
    name: str                     # for messages: the file's path, or s3://bucket/key
    stray: bool = False           # not a name the store writes (report it, never delete it)


@dataclass(frozen=True)
class PresignedUpload:
    """A URL the client PUTs its bytes to, with the headers it must send exactly."""

    url: str
    headers: dict[str, str]


class BlobReader(Protocol):
    """An open read of a byte range: `async for chunk in reader` (<= 1 MiB each), then
    `await reader.aclose()` (always, also when the client left mid-way)."""

    def __aiter__(self) -> AsyncIterator[bytes | bytearray]: ...

    async def aclose(self) -> None: ...


class BlobWriter(Protocol):
    """One upload in progress. `write` hashes, counts and refuses more than the limit mid-stream
    (LimitExceeded, everything already aborted); `finish` makes the bytes durable (or holds a
    small body) and returns what was received; `abort` drops it all (idempotent)."""

    size: int

    async def write(self, chunk: bytes | bytearray | memoryview) -> None: ...

    async def finish(self) -> Received: ...

    async def abort(self) -> None: ...


class BlobStore(Protocol):
    """One backend. See the module docstring for the commit and delete steps."""

    backend: str                 # LOCAL | S3
    content_addressed: bool      # one copy per (tenant, sha256), shared by every upload of it
    direct_uploads: bool         # presigned uploads may go to the store itself

    def check_space(self, incoming_bytes: int = 0) -> None: ...

    def writer(self, tenant_id: int, limit: int, content_type: str | None = None) -> BlobWriter: ...

    def writer_memory(self, limit: int) -> int: ...  # most bytes its writer of `limit` holds

    async def place(self, received: Received) -> bool: ...

    def ensure_placed(self, conn: Any, received: Received) -> None: ...

    async def release(self, received: Received) -> None: ...

    async def stat(self, ref: BlobRef) -> BlobStat | None: ...

    def local_path(self, ref: BlobRef) -> str | None: ...

    async def open(self, ref: BlobRef, start: int, length: int) -> BlobReader: ...

    async def verify(self, ref: BlobRef) -> tuple[str, int]: ...

    async def delete(self, ref: BlobRef) -> int: ...

    def untouched_since(self, ref: BlobRef, cutoff: float) -> bool | None: ...

    def delete_in_transaction(self, conn: Any, ref: BlobRef) -> int | None: ...

    def listing(self) -> AsyncIterator[StoredBlob]: ...

    async def remove_incomplete(self, older_than: float) -> tuple[int, int]: ...

    def describe(self, ref: BlobRef) -> str: ...

    def new_upload_location(self, tenant_id: int) -> str | None: ...

    def presign_put(self, location: str, expires_in: int, *, size: int,
                    content_type: str | None) -> PresignedUpload | None: ...

    def presign_get(self, ref: BlobRef, expires_in: int, *, method: str = "GET",
                    content_disposition: str | None = None,
                    content_type: str | None = None) -> str | None: ...

    async def aclose(self) -> None: ...


def backend_of(location: str | None) -> str:
    """The backend a row's location names."""
    if location is None:
        return LOCAL
    if location.startswith(S3_SCHEME):
        return S3
    if location == INLINE:
        return INLINE
    raise ValueError(f"unknown blob location {location!r}")


class BlobStores:
    """`box.blobs`: every configured store behind the one interface. Rows are served by the
    store their location names; new uploads (`writer`, `check_space`, `new_upload_location`,
    `direct_uploads`) go to the configured backend (`primary`)."""

    def __init__(self, local: LocalBlobStore, s3: BlobStore | None = None,
                 backend: str = LOCAL, inline: InlineBlobStore | None = None) -> None:
        self.local = local          # always there (its directories, rows written before S3)
        self.s3 = s3
        # bytes in SQLite (storage/inline.py): attached once the database is open (`attach_inline`)
        self.inline = inline
        if backend == S3 and s3 is None:
            raise ValueError("storage.backend = 's3' needs an S3 store")
        self.primary: BlobStore = s3 if backend == S3 and s3 is not None else local
        self.backend = self.primary.backend

    # ------------------------------------------------------------------ dispatch

    def attach_inline(self, inline: InlineBlobStore) -> None:
        self.inline = inline

    def stores(self) -> list[BlobStore]:
        return [s for s in (self.local, self.s3, self.inline) if s is not None]

    def store_for(self, location: str | None) -> BlobStore:
        """The store holding a row's bytes. A row naming a backend this box is not configured
        for is a configuration error the operator must hear about (StorageError: 503)."""
        backend = backend_of(location)
        if backend == LOCAL:
            return self.local
        if backend == S3:
            if self.s3 is None:
                raise StorageError(
                    "a blob is stored in S3 but this box has no [s3] store configured; set "
                    "storage.backend = \"s3\" and the [s3] section it was written with")
            return self.s3
        if backend == INLINE and self.inline is not None:
            return self.inline
        raise StorageError(f"blobs at location {location!r} are not supported by this box")

    @property
    def direct_uploads(self) -> bool:
        return self.primary.direct_uploads

    def content_addressed_for(self, location: str | None) -> bool:
        return self.store_for(location).content_addressed

    # ------------------------------------------------------------------ writing

    def check_space(self, incoming_bytes: int = 0) -> None:
        self.primary.check_space(incoming_bytes)

    def writer(self, tenant_id: int, limit: int, content_type: str | None = None, *,
               inline: bool = True) -> BlobWriter:
        """A writer for a new upload of at most `limit` bytes: held in memory and stored inline
        while it stays within `storage.inline_max_bytes` (unless `inline=False`), else the
        configured backend's."""
        if inline and self.inline is not None and self.inline.max_bytes > 0:
            return self.inline.holding_writer(
                tenant_id, limit, lambda: self.primary.writer(tenant_id, limit, content_type))
        return self.primary.writer(tenant_id, limit, content_type)

    def writer_memory(self, limit: int) -> int:
        """The most bytes a new upload's writer of at most `limit` bytes holds in memory (the
        configured backend's; an inline body is smaller than either), for the in-flight upload
        budget (server.upload_memory)."""
        return self.primary.writer_memory(limit)

    async def place(self, received: Received) -> bool:
        return await self.store_for(received.location).place(received)

    def ensure_placed(self, conn: Any, received: Received) -> None:
        self.store_for(received.location).ensure_placed(conn, received)

    async def release(self, received: Received) -> None:
        await self.store_for(received.location).release(received)

    async def discard(self, received: Received) -> None:
        """Drop bytes refused before any commit was attempted (a bad field, a short body):
        `release`, and in a store that gave them their own copy, that copy."""
        store = self.store_for(received.location)
        await store.release(received)
        if not store.content_addressed:
            await asyncio.shield(store.delete(received.ref))

    def new_upload_location(self, tenant_id: int) -> str | None:
        return self.primary.new_upload_location(tenant_id) if self.direct_uploads else None

    def presign_put(self, location: str, expires_in: int, *, size: int,
                    content_type: str | None) -> PresignedUpload | None:
        return self.store_for(location).presign_put(location, expires_in, size=size,
                                                    content_type=content_type)

    # ------------------------------------------------------------------ reading

    async def stat(self, ref: BlobRef) -> BlobStat | None:
        return await self.store_for(ref.location).stat(ref)

    def local_path(self, ref: BlobRef) -> str | None:
        return self.store_for(ref.location).local_path(ref)

    async def open(self, ref: BlobRef, start: int, length: int) -> BlobReader:
        return await self.store_for(ref.location).open(ref, start, length)

    async def verify(self, ref: BlobRef) -> tuple[str, int]:
        return await self.store_for(ref.location).verify(ref)

    def presign_get(self, ref: BlobRef, expires_in: int, *, method: str = "GET",
                    content_disposition: str | None = None,
                    content_type: str | None = None) -> str | None:
        return self.store_for(ref.location).presign_get(
            ref, expires_in, method=method, content_disposition=content_disposition,
            content_type=content_type)

    def describe(self, ref: BlobRef) -> str:
        return self.store_for(ref.location).describe(ref)

    # ------------------------------------------------------------------ lifecycle

    async def delete(self, ref: BlobRef) -> int:
        return await self.store_for(ref.location).delete(ref)

    def untouched_since(self, ref: BlobRef, cutoff: float) -> bool | None:
        return self.store_for(ref.location).untouched_since(ref, cutoff)

    def delete_in_transaction(self, conn: Any, ref: BlobRef) -> int | None:
        return self.store_for(ref.location).delete_in_transaction(conn, ref)

    async def listing(self) -> AsyncIterator[StoredBlob]:
        for store in self.stores():
            async for blob in store.listing():
                yield blob

    async def remove_incomplete(self, older_than: float) -> tuple[int, int]:
        """Every store's leftovers of interrupted uploads older than `older_than` s."""
        total = (0, 0)
        for store in self.stores():
            n, size = await store.remove_incomplete(older_than)
            total = (total[0] + n, total[1] + size)
        return total

    async def aclose(self) -> None:
        for store in self.stores():
            await store.aclose()
