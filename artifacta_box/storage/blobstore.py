"""Content-addressed blob store on the local filesystem.

Layout under the data directory:

    blobs/<tenant_id>/<h[0:2]>/<sha256>   committed blobs, one per tenant per content
    blobs/LAYOUT                          layout version ("2"; version 1 had a second fan-out
                                          level <h[2:4]>/, moved up by `upgrade_layout`
                                          when serve starts)
    tmp/<random>.part                     staging files (same filesystem, so link is atomic)

One fan-out level (256 directories per tenant, like git's objects/): a second level meant up to
65,536 directories per tenant, so on a young store nearly every upload paid one or two mkdirs
(inode allocation and a journalled directory fsync each), and gc paid rmdirs.

Write order (durability: an acknowledged upload survives a crash, README "Operations"): stream
to a staging file while hashing and counting, enforce the byte limit mid-stream, fsync the file,
hard-link it into place and fsync the directory; only then does the caller commit the database
row that makes it visible. A body small enough to stay in the first buffer (`MEMORY_MAX`) skips
the staging file: it is hashed in memory and written once, straight to its content address (an
anonymous O_TMPFILE inode in the target directory, fsynced, then linked to its name), or not
written at all when those bytes are already stored.
A crash leaves at worst a staging file (removed on the next start) or an unreferenced blob
(removed by gc after a grace period).

`LocalBlobStore` implements the blob-store interface (storage/blobs.py: `writer`, `place`,
`ensure_placed`, `release`, `stat`, `open`, `verify`, `delete`, `listing`, ...) for rows whose
location is NULL. Being content-addressed, every upload of the same bytes by one tenant shares
one file, so a file is deleted only inside a write transaction (`delete_in_transaction`) that
has just re-checked no row references it, and an upload re-checks its file inside its own
(`ensure_placed`).
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from artifacta_box.storage.blobs import (
    LOCAL,
    BlobMissing,
    BlobRef,
    BlobStat,
    LimitExceeded,
    Received,
    StorageError,
    StorageFull,
    StorageUnwritable,
    StoredBlob,
)

from artifacta_box.storage.reserve import DiskReserve

CHUNK = 1024 * 1024  # staging buffer flushed to disk (and hashed) in 1 MiB slices
MEMORY_MAX = 256 * 1024  # bodies up to this size never touch a staging file (held in memory)
_INLINE_HASH_MAX = 64 * 1024  # hashed on the event loop below this (~40 us), else in a thread
LAYOUT_VERSION = "2"


def _classify_oserror(exc: OSError) -> StorageError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull("the disk holding the data directory is full")
    return StorageUnwritable(f"the data directory cannot be written: {exc.strerror or exc}")


def fsync_dir(path: str | Path) -> None:
    """Make a directory's entries (a new, renamed or linked name in it) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_durably(path: Path, text: str) -> None:
    """Replace `path` with `text`, atomically and durably: written under a temporary name,
    fsynced, renamed into place, the directory fsynced. A crash leaves the old file or the
    new one, never a part of either."""
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


class StagingFile:
    """An upload in progress: `await write(chunk)` … `await finish()` (or `abort()`).

    Bytes are buffered up to 1 MiB, then written and hashed in a worker thread (both release
    the GIL), so the event loop keeps receiving while the previous slice hits the disk. Each
    byte is hashed once and written once; the whole body is never in memory.
    """

    def __init__(self, path: str, limit: int, tenant_id: int,
                 reserve: DiskReserve | None = None) -> None:
        self.path = path
        self.limit = limit
        self.tenant_id = tenant_id
        # The free-space reserve holds while bytes stream: each slice is refused (StorageFull)
        # before it is written if writing it would dip into the reserve.
        self._reserve = reserve
        self.size = 0
        self._hash = hashlib.sha256()
        self._buf = bytearray()
        self._pending: asyncio.Future[None] | None = None
        self._closed = False
        # Opened on first flush, in the worker thread: creating a file is a journalled metadata
        # operation that can wait behind another request's fsync, so never on the event loop.
        self._fd: int | None = None

    def _open_sync(self) -> int:
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except OSError as exc:
                raise _classify_oserror(exc) from exc
        return self._fd

    def _flush_sync(self, data: bytes | bytearray) -> None:
        self._hash.update(data)
        view = memoryview(data)
        fd = self._open_sync()
        try:
            while view:
                n = os.write(fd, view)
                view = view[n:]
                if self._reserve is not None:
                    self._reserve.note_written(n)
        except OSError as exc:
            raise _classify_oserror(exc) from exc

    def _keep_reserve(self, incoming: int) -> None:
        """StorageFull if writing `incoming` more bytes would dip into the reserve."""
        if self._reserve is None or not incoming:
            return
        try:
            short = self._reserve.shortfall(incoming)
        except OSError as exc:
            raise _classify_oserror(exc) from exc
        if short:
            raise StorageFull(
                f"not enough free disk space to go on with this upload after {self.size - incoming} "
                f"bytes ({self._reserve.min_free_bytes} bytes are kept in reserve)"
            )

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
            try:
                self._keep_reserve(len(data))
            except StorageFull:
                await self.abort()
                raise
            loop = asyncio.get_running_loop()
            self._pending = loop.run_in_executor(None, self._flush_sync, data)
            # Surface errors (disk full) promptly rather than at finish().
            if self._pending.done():
                await self._wait_pending()

    def _finish_sync(self, data: bytes | bytearray) -> None:
        if data:
            self._flush_sync(data)
        fd = self._open_sync()  # an empty body still gets its (empty) file
        self._fd = None
        try:
            os.fsync(fd)
        except OSError as exc:
            raise _classify_oserror(exc) from exc
        finally:
            os.close(fd)

    async def finish(self) -> Received:
        """Flush, fsync and close. The staging file stays until committed or discarded.

        A body that never left the first buffer and is at most MEMORY_MAX comes back in memory
        (no staging file at all); `place` writes it once, at its content address.
        """
        if self._fd is None and self._pending is None and self.size <= MEMORY_MAX \
                and not self._closed:
            data, self._buf = self._buf, bytearray()  # handed over, not copied
            self._closed = True
            if len(data) <= _INLINE_HASH_MAX:
                self._hash.update(data)
            else:
                await asyncio.get_running_loop().run_in_executor(None, self._hash.update, data)
            return Received(self.tenant_id, self._hash.hexdigest(), self.size, data=data)
        loop = asyncio.get_running_loop()
        work: asyncio.Future[None] | None = None
        try:
            await self._wait_pending()
            data, self._buf = self._buf, bytearray()
            self._closed = True
            self._keep_reserve(len(data))
            work = loop.run_in_executor(None, self._finish_sync, data)
            await work
        except BaseException:
            # Shielded: a cancelled request must still remove the file, and only after the
            # worker thread (which may be creating it right now) is done with it.
            await asyncio.shield(self._discard_after(work))
            raise
        return Received(self.tenant_id, self._hash.hexdigest(), self.size,
                        staging_path=self.path)

    async def _discard_after(self, work: asyncio.Future[None] | None) -> None:
        if work is not None:
            try:
                await work
            except BaseException:  # noqa: BLE001 - the caller raises the original error
                pass
        await self.abort()

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
        self._closed = True
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.close(fd)
            except OSError:
                pass
        self._buf = bytearray()
        # Unlinking a large file takes a while: keep it off the event loop.
        await asyncio.get_running_loop().run_in_executor(None, self._unlink)
        if self._reserve is not None:
            self._reserve.note_freed()


class LocalBlobStore:
    def __init__(
        self,
        root: str | Path,
        min_free_bytes: int = 0,
        free_space_probe: Callable[[str], int] | None = None,
        reserve: DiskReserve | None = None,
        ballast_bytes: int = 0,
    ) -> None:
        self.root = Path(root)
        self.blob_root = self.root / "blobs"
        self.tmp_root = self.root / "tmp"
        self.reserve = reserve or DiskReserve(self.root, min_free_bytes, free_space_probe,
                                              ballast_bytes=ballast_bytes)

    @property
    def min_free_bytes(self) -> int:
        return self.reserve.min_free_bytes

    # ------------------------------------------------------------------ setup

    def prepare(self) -> None:
        """Create the directories (idempotent). A new or empty store is marked with the current
        layout; a store written in the earlier layout is left as it is until `upgrade_layout`
        (which needs the server lock: nothing may be reading the blobs while they move)."""
        for d in (self.root, self.blob_root, self.tmp_root):
            d.mkdir(parents=True, exist_ok=True)
        if not self.layout_current() and not self._has_layout_1_dirs():
            self._write_layout_marker()

    def layout_current(self) -> bool:
        try:
            return (self.blob_root / "LAYOUT").read_text().strip() == LAYOUT_VERSION
        except FileNotFoundError:
            return False

    def upgrade_layout(self) -> int:
        """Move blobs of the earlier layout into the current one; returns how many moved.
        Call only while holding the server lock (no server is reading the blobs)."""
        if self.layout_current():
            return 0
        moved = self._flatten_layout()
        self._write_layout_marker()
        return moved

    def _write_layout_marker(self) -> None:
        write_file_durably(self.blob_root / "LAYOUT", LAYOUT_VERSION + "\n")

    def _has_layout_1_dirs(self) -> bool:
        for tenant_dir in self.blob_root.iterdir():
            if tenant_dir.is_dir() and tenant_dir.name.isdigit():
                for top in tenant_dir.iterdir():
                    if top.is_dir() and any(sub.is_dir() for sub in top.iterdir()):
                        return True
        return False

    def _flatten_layout(self) -> int:
        """Layout 1 -> 2: move blobs/<t>/<aa>/<bb>/<sha> up to blobs/<t>/<aa>/<sha>.

        Each move is one atomic rename within a directory tree, so an interrupted run simply
        continues on the next start (the marker is written only at the end).
        """
        count = 0
        for tenant_dir in self.blob_root.iterdir():
            if not tenant_dir.is_dir() or not tenant_dir.name.isdigit():
                continue
            for top in tenant_dir.iterdir():
                if not top.is_dir():
                    continue
                moved = False
                for sub in top.iterdir():
                    if not sub.is_dir():
                        continue
                    for f in sub.iterdir():
                        if f.is_file() and is_sha256(f.name):
                            os.replace(f, top / f.name)
                            moved = True
                            count += 1
                    try:
                        sub.rmdir()
                    except OSError:
                        pass  # something else in there: leave it for `check` to report
                if moved:
                    fsync_dir(top)
        return count

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
        """Free bytes on the data directory's disk (the reserve's cached probe)."""
        return self.reserve.free_bytes()

    def writer_memory(self, limit: int) -> int:
        return min(limit, 2 * CHUNK)  # the slice being filled and the one being written

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

    def writer(self, tenant_id: int, limit: int, content_type: str | None = None) -> StagingFile:
        """A new staging file that refuses more than `limit` bytes (`content_type` is not
        stored: the row holds it)."""
        name = f"{int(time.time())}-{secrets.token_hex(8)}.part"
        return StagingFile(str(self.tmp_root / name), limit, tenant_id, self.reserve)

    def path(self, tenant_id: int, sha256: str) -> Path:
        if not is_sha256(sha256):
            raise ValueError("not a sha256 hex digest")
        return self.blob_root / str(int(tenant_id)) / sha256[:2] / sha256

    def find(self, tenant_id: int, sha256: str) -> Path | None:
        """Where a blob's file is, in this layout or (an un-migrated copy, e.g. an old backup)
        the previous one; None if neither exists."""
        p = self.path(tenant_id, sha256)
        if p.is_file():
            return p
        old = p.parent / sha256[2:4] / sha256
        return old if old.is_file() else None

    def exists(self, tenant_id: int, sha256: str) -> bool:
        return self.path(tenant_id, sha256).is_file()

    def _commit_sync(self, received: Received) -> bool:
        target = self.path(received.tenant_id, received.sha256)
        if target.exists():
            # Dedup hit: refresh mtime so orphan gc's grace period protects it until our row lands.
            os.utime(target)
            return False
        d = target.parent
        try:
            created = not d.is_dir()
            if created:  # (made durable below even if a concurrent commit beat us to it)
                d.mkdir(parents=True, exist_ok=True)
            dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
            try:
                if received.staging_path is not None:
                    try:
                        os.link(received.staging_path, target)
                    except FileExistsError:
                        os.utime(target)
                        return False
                elif not self._write_at(dfd, target, received.data or b""):
                    return False
                os.fsync(dfd)
            finally:
                os.close(dfd)
            if created:  # a new fan-out directory must be durable too
                fsync_dir(d.parent)
                fsync_dir(d.parent.parent)
        except OSError as exc:
            raise _classify_oserror(exc) from exc
        return True

    def _write_at(self, dfd: int, target: Path, data: bytes | bytearray) -> bool:
        """Write bytes held in memory once, at their content address: an anonymous file in the
        target's directory (O_TMPFILE: no name until it is complete and fsynced, nothing left
        behind by a crash), then linked to its name. Falls back to a named staging file where
        the filesystem lacks O_TMPFILE. Returns False if the name appeared meanwhile."""
        global _tmpfile_ok
        if _tmpfile_ok:
            try:
                fd = os.open(".", os.O_TMPFILE | os.O_WRONLY, 0o600, dir_fd=dfd)
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                    raise
                _tmpfile_ok = False
            else:
                try:
                    _write_all(fd, data)
                    os.fsync(fd)
                    try:
                        # dst_dir_fd makes CPython use linkat(AT_SYMLINK_FOLLOW), which links
                        # the anonymous inode itself rather than the /proc symlink.
                        os.link(f"/proc/self/fd/{fd}", target.name, dst_dir_fd=dfd)
                        return True
                    except FileExistsError:
                        os.utime(target)
                        return False
                    except FileNotFoundError:
                        if not os.path.isdir("/proc/self/fd"):  # no /proc: name it the old way
                            _tmpfile_ok = False
                        else:
                            raise
                finally:
                    os.close(fd)
        name = self.tmp_root / f"{int(time.time())}-{secrets.token_hex(8)}.part"
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(name, target)
                return True
            except FileExistsError:
                os.utime(target)
                return False
        finally:
            os.unlink(name)

    async def place(self, received: Received) -> bool:
        """Make `received` durable at its content address. Returns True if the blob is new.

        The staging file is kept (`release` removes it after the row commits) so
        `ensure_placed` can restore the blob if gc removed it in between.
        """
        return await asyncio.get_running_loop().run_in_executor(
            None, self._commit_sync, received)

    def ensure_placed(self, conn: Any, received: Received) -> None:
        """Called inside the write transaction that references the blob: a stat, or a re-link
        if a concurrent gc (which deletes files only inside its own write transaction) removed it.
        """
        if not self.exists(received.tenant_id, received.sha256):
            self._commit_sync(received)

    async def release(self, received: Received) -> None:
        """Remove the staging file in a worker thread: unlinking a large file whose blocks are
        not shared with a committed blob takes long enough (~0.2 s per GiB) to stall every
        request if done on the event loop. Shielded, so a request cancelled meanwhile still
        removes it."""
        if received.staging_path is None:
            return  # a small body held in memory: nothing to remove
        await asyncio.shield(asyncio.get_running_loop().run_in_executor(
            None, _unlink_quietly, received.staging_path))

    # ------------------------------------------------------------------ the interface

    backend = LOCAL
    content_addressed = True
    direct_uploads = False

    def local_path(self, ref: BlobRef) -> str:
        return str(self.path(ref.tenant_id, _sha(ref)))

    def describe(self, ref: BlobRef) -> str:
        return self.local_path(ref)

    def stat_sync(self, ref: BlobRef) -> BlobStat | None:
        try:
            st = self.path(ref.tenant_id, _sha(ref)).stat()
        except FileNotFoundError:
            return None
        return BlobStat(st.st_size, st.st_mtime)

    async def stat(self, ref: BlobRef) -> BlobStat | None:
        return self.stat_sync(ref)  # one stat: cheaper than a thread hop

    async def open(self, ref: BlobRef, start: int, length: int) -> FileReader:
        """Read `length` bytes from `start`, in 1 MiB slices in a worker thread. Raises
        BlobMissing if the file is absent or shorter. (Downloads use the file itself through
        `local_path`, with sendfile; this is for everything else.)"""
        path = self.local_path(ref)
        try:
            fd = await asyncio.to_thread(os.open, path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise BlobMissing(f"blob {path} does not exist") from None
        return FileReader(fd, path, start, length)

    async def verify(self, ref: BlobRef) -> tuple[str, int]:
        """SHA-256 and size of the stored bytes, read once (BlobMissing if absent)."""
        path = self.local_path(ref)
        try:
            return await asyncio.to_thread(hash_file, path)
        except FileNotFoundError:
            raise BlobMissing(f"blob {path} does not exist") from None

    def delete_sync(self, tenant_id: int, sha256: str) -> int:
        """Remove a blob file; returns the bytes freed (0 if it was already gone)."""
        p = self.path(tenant_id, sha256)
        try:
            size = p.stat().st_size
            p.unlink()
        except FileNotFoundError:
            return 0
        # The 256 fan-out directories stay (pruning them cost a journalled rmdir per blob and
        # raced with uploads re-creating them).
        return size

    async def delete(self, ref: BlobRef) -> int:
        return await asyncio.to_thread(self.delete_sync, ref.tenant_id, _sha(ref))

    def untouched_since(self, ref: BlobRef, cutoff: float) -> bool | None:
        """True if the file is older than `cutoff` (Unix seconds), False if touched since (an
        upload of the same bytes refreshed it on its dedup hit), None if it does not exist."""
        st = self.stat_sync(ref)
        return None if st is None else st.mtime <= cutoff

    def delete_in_transaction(self, conn: Any, ref: BlobRef) -> int:
        """Inside the write transaction that removed the last row naming these bytes, in the
        writer's thread: so no commit of the same content can interleave (module docstring)."""
        return self.delete_sync(ref.tenant_id, _sha(ref))

    def iter_blobs(self) -> Iterator[StoredBlob]:
        """Every file in the blob directories (sync; `listing` runs it in a thread)."""
        if not self.blob_root.is_dir():
            return
        for tenant_dir in self.blob_root.iterdir():
            if not tenant_dir.is_dir() or not tenant_dir.name.isdigit():
                continue
            tenant_id = int(tenant_dir.name)
            for root, _dirs, files in os.walk(tenant_dir):
                for name in files:
                    p = Path(root) / name
                    try:
                        st = p.stat()
                    except FileNotFoundError:
                        continue
                    ok = is_sha256(name) and p.parent.parent == tenant_dir \
                        and p.parent.name == name[:2]
                    yield StoredBlob(None, tenant_id, name if ok else None, st.st_size,
                                     st.st_mtime, str(p), stray=not ok)

    async def listing(self) -> AsyncIterator[StoredBlob]:
        """Every blob file, walked in a worker thread 1,000 at a time."""
        walk = self.iter_blobs()

        def page() -> list[StoredBlob]:
            return [b for _, b in zip(range(1000), walk, strict=False)]

        while batch := await asyncio.to_thread(page):
            for blob in batch:
                yield blob

    async def remove_incomplete(self, older_than: float) -> tuple[int, int]:
        """Staging leftovers older than `older_than` seconds (files, bytes)."""
        return await asyncio.to_thread(self.remove_temp_files, older_than)

    def new_upload_location(self, tenant_id: int) -> None:
        return None  # presigned uploads come through the box (PUT /u/)

    def presign_put(self, location: str, expires_in: int, *, size: int,
                    content_type: str | None) -> None:
        return None

    def presign_get(self, ref: BlobRef, expires_in: int, *, method: str = "GET",
                    content_disposition: str | None = None,
                    content_type: str | None = None) -> None:
        return None  # served by the box (sendfile)

    async def aclose(self) -> None:
        return None


class FileReader:
    """`LocalBlobStore.open`: a byte range of a blob file in 1 MiB slices (pread in a thread).
    The descriptor is closed only once no worker thread still reads it (a reader abandoned by
    a cancelled task must never pread a reused descriptor number)."""

    def __init__(self, fd: int, path: str, start: int, length: int) -> None:
        self._fd: int | None = fd
        self.path = path
        self._pos = start
        self._left = length
        self._inflight: asyncio.Future[bytes] | None = None

    def __aiter__(self) -> FileReader:
        return self

    async def __anext__(self) -> bytes:
        if self._left <= 0 or self._fd is None:
            raise StopAsyncIteration
        loop = asyncio.get_running_loop()
        self._inflight = loop.run_in_executor(None, os.pread, self._fd,
                                              min(CHUNK, self._left), self._pos)
        data = await asyncio.shield(self._inflight)
        self._inflight = None
        if not data:
            raise BlobMissing(f"blob {self.path} is shorter than its row says")
        self._pos += len(data)
        self._left -= len(data)
        return data

    async def aclose(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        inflight = self._inflight
        if inflight is not None and not inflight.done():
            inflight.add_done_callback(lambda _f: os.close(fd))
        else:
            os.close(fd)


def _sha(ref: BlobRef) -> str:
    if ref.sha256 is None:
        raise ValueError("a local blob is named by its SHA-256")
    return ref.sha256


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


_tmpfile_ok = hasattr(os, "O_TMPFILE")  # cleared at the first filesystem that refuses it


_HEX = frozenset("0123456789abcdef")


def is_sha256(name: str) -> bool:
    """A SHA-256 hex digest as the store names blobs: 64 lower-case hex digits."""
    return len(name) == 64 and all(c in _HEX for c in name)


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def hash_file(path: str | Path, copy_to: BinaryIO | None = None) -> tuple[str, int]:
    """SHA-256 and size of a file, read once in 1 MiB slices; with `copy_to`, each slice is
    also written there (a copy verified by the same read that makes it)."""
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
            if copy_to is not None:
                copy_to.write(chunk)
            n += len(chunk)
    return h.hexdigest(), n
