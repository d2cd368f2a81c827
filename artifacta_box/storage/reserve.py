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
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

MiB = 1024 * 1024


def statvfs_free(path: str) -> int:
    """Bytes an unprivileged writer may still use on the file system holding `path`."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


class DiskReserve:
    """How much of the data directory's disk is free, and whether writing more keeps the reserve."""

    def __init__(self, path: str | os.PathLike[str], min_free_bytes: int,
                 probe: Callable[[str], int] | None = None, *, max_age: float = 0.25,
                 max_unprobed_bytes: int = 4 * MiB, headroom: int = 64 * MiB,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = os.fspath(path)
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
