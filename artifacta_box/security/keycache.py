"""The key cache, and the counter every process on one data directory shares to keep it honest.

API keys are looked up on every request; `services.tenants.KeyCache` keeps what it looked up,
and must still refuse a revoked key (or a suspended tenant's) from the very next request — in
this process, in the other `serve --workers N` processes and after an admin command run from
the shell. So every change that can take a key's right away (revoke, suspend, resume, plan
change) bumps this counter *after* its transaction commits, and the cache trusts an entry only
while the counter still reads what it read *before* its own lookup. Reading it is one load from
a shared mapping of an 8-byte file (`KEYS_GENERATION_FILE` in the data directory); bumping it
takes an exclusive flock, so two bumps never collapse into one.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

_COUNTER = struct.Struct("<Q")


class SharedGeneration:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._fd: int | None = None
        self._map: mmap.mmap | None = None

    def _attach(self) -> mmap.mmap:
        if self._map is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                if os.fstat(fd).st_size < _COUNTER.size:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                    try:
                        if os.fstat(fd).st_size < _COUNTER.size:
                            os.ftruncate(fd, _COUNTER.size)
                    finally:
                        fcntl.flock(fd, fcntl.LOCK_UN)
                self._map = mmap.mmap(fd, _COUNTER.size)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
        return self._map

    def read(self) -> int:
        return _COUNTER.unpack_from(self._attach(), 0)[0]

    def bump(self) -> int:
        """Move the counter on (after a change has committed); returns the new value."""
        table = self._attach()
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            value = _COUNTER.unpack_from(table, 0)[0] + 1
            _COUNTER.pack_into(table, 0, value)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        return value

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class KeyCache:
    """What key lookups found, trusted while the shared generation has not moved since and for
    at most `max_age` seconds (so figures other processes change, such as request counts, are
    read again soon). Unknown keys are not cached: a key created a moment ago works at once.

        generation = cache.generation()      # before the lookup
        row = ...look it up...
        cache.put(key, row, generation)
    """

    def __init__(self, generation: SharedGeneration, max_age: float = 2.0,
                 max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._generation = generation
        self._max_age = max_age
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[Any, int, float]] = OrderedDict()
        self._lock = threading.Lock()

    def generation(self) -> int:
        return self._generation.read()

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            entry = self._entries.get(key)
        if entry is None:
            return None
        value, generation, at = entry
        if generation != self._generation.read() or self._clock() - at >= self._max_age:
            with self._lock:
                self._entries.pop(key, None)
            return None
        return value

    def put(self, key: Hashable, value: Any, generation: int) -> None:
        with self._lock:
            self._entries[key] = (value, generation, self._clock())
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def invalidate(self) -> None:
        """A change that can take a key's right away has committed: every process drops what
        it cached, from its very next request on."""
        self._generation.bump()
        with self._lock:
            self._entries.clear()

    def close(self) -> None:
        self._generation.close()
