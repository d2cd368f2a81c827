"""The free-space reserve of the data directory (`storage.min_free_bytes`), read through a cached
probe.

Uploads (at their start and while their bytes stream), /health and /metrics all ask how much
space is free. A statvfs per question would be one syscall per upload and more per streamed
MiB, and on a network file system a round trip; so `DiskReserve` answers from its last probe
while that is fresh (`max_age` seconds) and fewer than `max_unprobed_bytes` have been written
through it since, and subtracts what was written since from the probed figure (the estimate
errs toward less free space). Close to the reserve (within `headroom` bytes of it) every
question probes: a cache must never be the reason an upload slips past the reserve, or a
refused one waits for space that has already come back. Space other programs take is seen at
the next probe: within `max_age` while far from the reserve, at once near it.

The ballast. Uploads stop at the reserve, but another program can still fill the disk to the
last byte, and then SQLite cannot grow its WAL: deletes, links, extend-ttl and gc — the very
things that free space — would fail. So the server keeps a small file of preallocated space in
the data directory (`BALLAST_FILE`, `storage.ballast_bytes`, 8 MiB by default; PostgreSQL
operators do the same by hand). Before each write transaction the database asks
`before_write`: when less than a quarter of the ballast is free (2 MiB by default: room for a
few transactions, not for a gc batch), the ballast is deleted and SQLite writes into the space
it held (`disk_full` does the same when a write failed anyway). The server puts
it back (`ensure_ballast`, every few seconds) once the disk has room for it above the reserve.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable

MiB = 1024 * 1024
BALLAST_FILE = "reserve.ballast"

log = logging.getLogger("artifacta_box")


def statvfs_free(path: str) -> int:
    """Bytes an unprivileged writer may still use on the file system holding `path`."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


class DiskReserve:
    """How much of the data directory's disk is free, and whether writing more keeps the reserve."""

    def __init__(self, path: str | os.PathLike[str], min_free_bytes: int,
                 probe: Callable[[str], int] | None = None, *, max_age: float = 0.25,
                 max_unprobed_bytes: int = 4 * MiB, headroom: int = 64 * MiB,
                 clock: Callable[[], float] = time.monotonic, ballast_bytes: int = 0) -> None:
        self.path = os.fspath(path)
        self.ballast_bytes = ballast_bytes
        self.ballast_path = os.path.join(self.path, BALLAST_FILE)
        self.min_free_bytes = min_free_bytes
        self._probe = probe or statvfs_free
        self._max_age = max_age
        self._max_unprobed = max_unprobed_bytes
        self._headroom = headroom
        self._clock = clock
        self._lock = threading.Lock()  # staging writes report from executor threads
        self._probed_free = 0
        self._probed_at: float | None = None
        self._written_since = 0
        self.probes = 0  # statvfs calls made (the benchmark and tests read it)

    def probe(self) -> int:
        """Probe now (OSError propagates) and return the free bytes."""
        free = self._probe(self.path)
        with self._lock:
            self._probed_free, self._probed_at, self._written_since = free, self._clock(), 0
            self.probes += 1
        return free

    def free_bytes(self) -> int:
        """Free bytes now: the cached figure while it may be trusted, else a fresh probe."""
        with self._lock:
            at = self._probed_at
            estimate = self._probed_free - self._written_since
            fresh = (at is not None and self._clock() - at < self._max_age
                     and self._written_since < self._max_unprobed
                     and estimate - self.min_free_bytes > self._headroom)
        return estimate if fresh else self.probe()

    def note_written(self, nbytes: int) -> None:
        """`nbytes` more are on disk (a staging write): the cached figure shrinks by as much."""
        with self._lock:
            self._written_since += nbytes

    def note_freed(self) -> None:
        """Space came back (a blob or staging file removed): the next question probes."""
        with self._lock:
            self._probed_at = None

    def shortfall(self, incoming_bytes: int = 0) -> int:
        """Bytes by which writing `incoming_bytes` more would dip into the reserve (0 = none)."""
        return max(0, self.min_free_bytes + incoming_bytes - self.free_bytes())

    # ------------------------------------------------------------------ the ballast

    def ensure_ballast(self) -> bool:
        """Put the ballast in place when it is missing and the disk has room for it above the
        reserve; True when this call made it. Safe from several processes at once."""
        if not self.ballast_bytes or os.path.exists(self.ballast_path):
            return False
        if self.probe() < max(self.min_free_bytes, self.ballast_bytes) + self.ballast_bytes:
            return False
        tmp = f"{self.ballast_path}.{secrets.token_hex(4)}.part"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.posix_fallocate(fd, 0, self.ballast_bytes)
            os.fsync(fd)
            os.link(tmp, self.ballast_path)  # fails if another process made it meanwhile
        except OSError:
            return False
        finally:
            os.close(fd)
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            self.note_freed()
        log.info("free-space ballast of %d bytes in place at %s", self.ballast_bytes,
                 self.ballast_path)
        return True

    def release_ballast(self, why: str) -> bool:
        """Delete the ballast (its space is free at once); True when there was one."""
        try:
            os.unlink(self.ballast_path)
        except FileNotFoundError:
            return False
        self.note_freed()
        log.warning("the disk holding %s is full (%s): released the %d-byte ballast so the "
                    "database can write; free space, and it is put back", self.path, why,
                    self.ballast_bytes)
        return True

    def before_write(self) -> None:
        """Called before each database write transaction (the writer thread)."""
        if not self.ballast_bytes:
            return
        try:
            free = self.free_bytes()
        except OSError:
            return
        if free < self.ballast_bytes // 4:
            self.release_ballast(f"{free} bytes free")

    def disk_full(self) -> bool:
        """A database write failed for want of space: release the ballast; True if it was there."""
        return self.release_ballast("a database write failed")
