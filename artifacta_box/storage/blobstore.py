"""Content-addressed blob store on the local filesystem.

Layout under the data directory:

    blobs/<tenant_id>/<h[0:2]>/<h[2:4]>/<sha256>   committed blobs, one per tenant per content
    tmp/<random>.part                              staging files (same filesystem, so link is atomic)

Write order (durability, SPEC §8): stream to a staging file while hashing and counting, enforce
the byte limit mid-stream, fsync the file, hard-link it into place and fsync the directory; only
then does the caller commit the database row that makes it visible. A crash leaves at worst a
staging file (removed on the next start) or an unreferenced blob (removed by gc after a grace
period).

The interface (`staging`, `commit_staged`, `ensure_committed`, `path`, `exists`, `delete`,
`iter_blobs`) is what a second backend (S3-compatible object storage) would implement.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1024 * 1024  # staging buffer flushed to disk (and hashed) in 1 MiB slices


class StorageError(Exception):
    """Base class for blob store failures."""


class LimitExceeded(StorageError):
    """More bytes arrived than the caller allowed; the staging file has been removed."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} bytes")
        self.limit = limit


class StorageFull(StorageError):
    """The disk is full, or below the configured free-space reserve."""


class StorageUnwritable(StorageError):
    """The data directory cannot be written (permissions, read-only filesystem, I/O error)."""


def _classify_oserror(exc: OSError) -> StorageError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull("the disk holding the data directory is full")
    return StorageUnwritable(f"the data directory cannot be written: {exc.strerror or exc}")


@dataclass(frozen=True)
class StagedBlob:
    path: str
    sha256: str
    size: int

    def discard(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


@dataclass(frozen=True)
class BlobInfo:
    tenant_id: int
    sha256: str
    path: str
    size: int
    mtime: float


def _fsync_dir(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StagingFile:
    """An upload in progress: `await write(chunk)` … `await finish()` (or `abort()`).

    Bytes are buffered up to 1 MiB, then written and hashed in a worker thread (both release
    the GIL), so the event loop keeps receiving while the previous slice hits the disk. Each
    byte is hashed once and written once; the whole body is never in memory.
    """

    def __init__(self, path: str, limit: int) -> None:
        self.path = path
        self.limit = limit
        self.size = 0
        self._hash = hashlib.sha256()
        self._buf = bytearray()
        self._pending: asyncio.Future[None] | None = None
        self._closed = False
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise _classify_oserror(exc) from exc

    def _flush_sync(self, data: bytes | bytearray) -> None:
        self._hash.update(data)
        view = memoryview(data)
        try:
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        except OSError as exc:
            raise _classify_oserror(exc) from exc

    async def _wait_pending(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            await pending

    async def write(self, chunk: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise StorageError("staging file already closed")
        n = len(chunk)
        if self.size + n > self.limit:
            await self.abort()
            raise LimitExceeded(self.limit)
        self.size += n
        self._buf += chunk
        if len(self._buf) >= CHUNK:
            # Hand the buffer itself to the worker (no copy); a fresh one takes the next bytes.
            data, self._buf = self._buf, bytearray()
            await self._wait_pending()
            loop = asyncio.get_running_loop()
            self._pending = loop.run_in_executor(None, self._flush_sync, data)
            # Surface errors (disk full) promptly rather than at finish().
            if self._pending.done():
                await self._wait_pending()

    def _finish_sync(self, data: bytes | bytearray) -> None:
        if data:
            self._flush_sync(data)
        try:
            os.fsync(self._fd)
        except OSError as exc:
            raise _classify_oserror(exc) from exc
        finally:
            os.close(self._fd)

    async def finish(self) -> StagedBlob:
        """Flush, fsync and close. The staging file stays until committed or discarded."""
        try:
            await self._wait_pending()
            data, self._buf = self._buf, bytearray()
            self._closed = True
            await asyncio.get_running_loop().run_in_executor(None, self._finish_sync, data)
        except BaseException:
            self._unlink()
            raise
        return StagedBlob(self.path, self._hash.hexdigest(), self.size)

    def _unlink(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    async def abort(self) -> None:
        """Drop everything written so far. Safe to call more than once."""
        if self._pending is not None:
            try:
                await self._wait_pending()
            except Exception:  # noqa: BLE001 - we are discarding anyway
                pass
        if not self._closed:
            self._closed = True
            try:
                os.close(self._fd)
            except OSError:
                pass
        self._buf = bytearray()
        # Unlinking a large file takes a while: keep it off the event loop.
        await asyncio.get_running_loop().run_in_executor(None, self._unlink)


class LocalBlobStore:
    def __init__(
        self,
        root: str | Path,
        min_free_bytes: int = 0,
        free_space_probe: Callable[[str], int] | None = None,
    ) -> None:
        self.root = Path(root)
        self.blob_root = self.root / "blobs"
        self.tmp_root = self.root / "tmp"
        self.min_free_bytes = min_free_bytes
        self._free_space_probe = free_space_probe or _statvfs_free

    # ------------------------------------------------------------------ setup

    def prepare(self) -> None:
        """Create the directories (idempotent)."""
        for d in (self.root, self.blob_root, self.tmp_root):
            d.mkdir(parents=True, exist_ok=True)

    def remove_temp_files(self, older_than_seconds: float | None = None) -> tuple[int, int]:
        """Delete staging leftovers; with `older_than_seconds`, only those at least that old.

        Returns (files, bytes) removed.
        """
        files = size = 0
        cutoff = None if older_than_seconds is None else time.time() - older_than_seconds
        for entry in self.iter_temp_files():
            if cutoff is not None and entry.stat().st_mtime > cutoff:
                continue
            try:
                st = entry.stat()
                entry.unlink()
            except FileNotFoundError:
                continue
            files += 1
            size += st.st_size
        return files, size

    def iter_temp_files(self) -> Iterator[Path]:
        if not self.tmp_root.is_dir():
            return
        for entry in self.tmp_root.iterdir():
            if entry.is_file():
                yield entry

    # ------------------------------------------------------------------ space

    def free_bytes(self) -> int:
        return self._free_space_probe(str(self.root))

    def check_space(self, incoming_bytes: int = 0) -> None:
        """Raise StorageFull when writing `incoming_bytes` would dip into the reserve."""
        try:
            free = self.free_bytes()
        except OSError as exc:
            raise _classify_oserror(exc) from exc
        if free - incoming_bytes < self.min_free_bytes:
            raise StorageFull(
                "not enough free disk space for this upload "
                f"({free} bytes free, {self.min_free_bytes} bytes kept in reserve)"
            )

    # ------------------------------------------------------------------ write path

    def staging(self, limit: int) -> StagingFile:
        """A new staging file that refuses more than `limit` bytes."""
        name = f"{int(time.time())}-{secrets.token_hex(8)}.part"
        return StagingFile(str(self.tmp_root / name), limit)

    def path(self, tenant_id: int, sha256: str) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError("not a sha256 hex digest")
        return self.blob_root / str(int(tenant_id)) / sha256[:2] / sha256[2:4] / sha256

    def exists(self, tenant_id: int, sha256: str) -> bool:
        return self.path(tenant_id, sha256).is_file()

    def _commit_sync(self, tenant_id: int, staged: StagedBlob) -> bool:
        target = self.path(tenant_id, staged.sha256)
        if target.exists():
            # Dedup hit: refresh mtime so orphan gc's grace period protects it until our row lands.
            os.utime(target)
            return False
        try:
            created = []
            d = target.parent
            while not d.exists():
                created.append(d)
                d = d.parent
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(staged.path, target)
            except FileExistsError:
                os.utime(target)
                return False
            _fsync_dir(target.parent)
            for d in created:  # new fan-out directories must be durable too
                _fsync_dir(d.parent)
        except OSError as exc:
            raise _classify_oserror(exc) from exc
        return True

    async def commit_staged(self, tenant_id: int, staged: StagedBlob) -> bool:
        """Make `staged` durable at its content address. Returns True if the blob is new.

        The staging file is kept (call `staged.discard()` after the row commits) so
        `ensure_committed` can restore the blob if gc removed it in between.
        """
        return await asyncio.get_running_loop().run_in_executor(
            None, self._commit_sync, tenant_id, staged
        )

    def ensure_committed(self, tenant_id: int, staged: StagedBlob) -> None:
        """Called inside the write transaction that references the blob: a stat, or a re-link
        if a concurrent gc (which deletes files only inside its own write transaction) removed it.
        """
        if not self.exists(tenant_id, staged.sha256):
            self._commit_sync(tenant_id, staged)

    # ------------------------------------------------------------------ read / delete

    def size(self, tenant_id: int, sha256: str) -> int:
        return self.path(tenant_id, sha256).stat().st_size

    def delete(self, tenant_id: int, sha256: str) -> int:
        """Remove a blob file; returns the bytes freed (0 if it was already gone)."""
        p = self.path(tenant_id, sha256)
        try:
            size = p.stat().st_size
            p.unlink()
        except FileNotFoundError:
            return 0
        for d in (p.parent, p.parent.parent):
            try:
                d.rmdir()  # prune empty fan-out directories
            except OSError:
                break
        return size

    def iter_blobs(self) -> Iterator[BlobInfo]:
        """Every blob file on disk (for check and gc)."""
        if not self.blob_root.is_dir():
            return
        for tenant_dir in self.blob_root.iterdir():
            if not tenant_dir.is_dir() or not tenant_dir.name.isdigit():
                continue
            for root, _dirs, files in os.walk(tenant_dir):
                for name in files:
                    p = Path(root) / name
                    try:
                        st = p.stat()
                    except FileNotFoundError:
                        continue
                    yield BlobInfo(int(tenant_dir.name), name, str(p), st.st_size, st.st_mtime)

    def usage_on_disk(self) -> int:
        return sum(b.size for b in self.iter_blobs())


def _statvfs_free(path: str) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def hash_file(path: str | Path) -> tuple[str, int]:
    """SHA-256 and size of a file, read in 1 MiB slices."""
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
            n += len(chunk)
    return h.hexdigest(), n
