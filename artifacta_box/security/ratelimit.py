"""Rate limiting: a token bucket per tenant, and a failed-authentication limit per address."""

from __future__ import annotations

import fcntl
import math
import mmap
import os
import struct
import time
from collections import OrderedDict, deque
from dataclasses import dataclass


@dataclass
class Decision:
    allowed: bool
    limit: float          # sustained rate, tokens per second
    remaining: int        # whole tokens left after this request
    reset_at: int         # Unix seconds when the bucket is full again
    retry_after: int      # whole seconds until one token is available (>= 1) when refused

    def headers(self) -> dict[str, str]:
        limit = int(self.limit) if float(self.limit).is_integer() else self.limit
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_at),
        }


class _Bucket:
    __slots__ = ("tokens", "stamp")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp


def _settle(tokens: float, stamp: float, now: float, wall: float, rate: float, burst: int,
            cost: float) -> tuple[float, Decision]:
    """Refill a bucket last seen at `stamp` to `now`, take `cost` if there is enough.
    Returns the tokens left and the decision."""
    full = float(burst)
    elapsed = now - stamp
    if elapsed > 0.0:
        tokens += elapsed * rate
    if tokens > full:
        tokens = full
    allowed = tokens >= cost
    if allowed:
        tokens -= cost
    reset_at = math.ceil(wall + (full - tokens) / rate)
    retry_after = 0 if allowed else max(1, math.ceil((cost - tokens) / rate))
    return tokens, Decision(allowed, rate, int(tokens), reset_at, retry_after)


# Bucket keys: a tenant's API bucket is its tenant id (>= 1); the other buckets take negative
# keys so that one table (`SharedTokenBuckets` under --workers) holds them all.
METRICS_BUCKET = -2  # every /metrics scrape of the server


def anonymous_bucket(tenant_id: int) -> int:
    """The bucket of a tenant's anonymous byte routes (/d/, /l/), apart from its API bucket, so
    a leaked link drains this one and the tenant's own API calls keep answering."""
    return -3 - int(tenant_id)


class TokenBuckets:
    """One bucket per key (tenant id). `rate` tokens/s refill a bucket of `burst`."""

    def __init__(self, clock=time.monotonic, wall=time.time, max_keys: int = 100_000) -> None:
        self._clock = clock
        self._wall = wall
        self._buckets: OrderedDict[object, _Bucket] = OrderedDict()
        self._max_keys = max_keys

    def take(self, key: object, rate: float, burst: int, cost: float = 1.0) -> Decision:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(float(burst), now)
            self._buckets[key] = bucket
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        bucket.tokens, decision = _settle(bucket.tokens, bucket.stamp, now, self._wall(), rate,
                                          burst, cost)
        bucket.stamp = now
        return decision


class SharedTokenBuckets:
    """Token buckets shared by every worker process of one server (`serve --workers N`).

    The buckets live in a small file in the data directory (`SHARED_FILE`), mapped into each
    worker; a bucket is read and updated under an exclusive flock of that file, so N workers
    enforce one limit, not N. `serve` creates (zeroes) the file before the workers start;
    `take` maps it on first use. The monotonic clock is system-wide, so stamps compare across
    processes. A table slot holds (key + 1, tokens, stamp); a key probes PROBE slots from its
    hash and, when all are taken by other keys, reuses the least recently used of them (that
    key's next request starts from a full bucket: only with more than SLOTS active tenants).

    The common case takes no lock: a worker that takes a token under the lock also takes a
    *lease* of up to LEASE_SECONDS of the bucket's refill (at most LEASE_MAX tokens, and only
    tokens the bucket holds), and spends it without the lock for up to LEASE_SECONDS. Leased
    tokens are taken from the shared bucket, so the workers together never admit more than the
    limit; what is unused goes back at the worker's next locked take of that key. The
    tolerance: another worker may be refused while this one holds a lease, i.e. up to
    LEASE_SECONDS of refill per worker is counted early (a bucket that refills fewer than 2
    tokens in LEASE_SECONDS is never leased: every take is exact), and a leased answer's
    X-RateLimit-Remaining is this worker's view (the bucket when leased, plus its own lease).
    """

    SLOTS = 8192
    PROBE = 16
    _SLOT = struct.Struct("<qdd")
    SIZE = SLOTS * _SLOT.size

    def __init__(self, path: str | os.PathLike[str], clock=time.monotonic, wall=time.time) -> None:
        self.path = os.fspath(path)
        self._clock = clock
        self._wall = wall
        self._fd: int | None = None
        self._map: mmap.mmap | None = None
        # key -> [tokens leased and unspent, bucket after the lease, lease stamp, rate, burst]
        self._leases: dict[int, list] = {}

    LEASE_SECONDS = 0.05
    LEASE_MAX = 64
    MAX_LEASES = 4096  # more held at once: all are dropped (their tokens count as spent)

    @classmethod
    def create(cls, path: str | os.PathLike[str]) -> None:
        """Make (or reset to empty) the shared table; called once by `serve` before workers."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.ftruncate(fd, 0)
            os.ftruncate(fd, cls.SIZE)
        finally:
            os.close(fd)

    def _attach(self) -> mmap.mmap:
        if self._map is None:
            fd = os.open(self.path, os.O_RDWR)
            if os.fstat(fd).st_size < self.SIZE:
                os.close(fd)
                raise RuntimeError(f"{self.path} is not a rate-limit table (restart serve)")
            self._fd = fd
            self._map = mmap.mmap(fd, self.SIZE)
        return self._map

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def take(self, key: int, rate: float, burst: int, cost: float = 1.0) -> Decision:
        lease = self._leases.get(key)
        if lease is not None:
            now = self._clock()
            left, bucket, stamp, lease_rate, lease_burst = lease
            if (left >= cost and now - stamp < self.LEASE_SECONDS and lease_rate == rate
                    and lease_burst == burst):
                left -= cost
                lease[0] = left
                tokens = bucket + left + (now - stamp) * rate
                if tokens > burst:
                    tokens = float(burst)
                return Decision(True, rate, int(tokens),
                                math.ceil(self._wall() + (burst - tokens) / rate), 0)
        return self._take_locked(key, rate, burst, cost, lease)

    def _take_locked(self, key: int, rate: float, burst: int, cost: float, lease: list | None
                     ) -> Decision:
        table = self._map if self._map is not None else self._attach()
        slot_key = int(key) + 1
        start = (slot_key * 0x9E3779B97F4A7C15 >> 17) % self.SLOTS
        slot = self._SLOT
        fd = self._fd
        lease_size = min(self.LEASE_MAX, int(rate * self.LEASE_SECONDS), burst // 8)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            now = self._clock()
            offset = start * slot.size
            k, tokens, stamp = slot.unpack_from(table, offset)
            if k != slot_key:  # not at its first slot (a new key, or a collision): probe on
                offset, tokens, stamp = self._probe(table, slot_key, start, float(burst), now)
            if lease is not None:
                tokens += lease[0]  # the unspent lease goes back (_settle caps it at burst)
            tokens, decision = _settle(tokens, stamp, now, self._wall(), rate, burst, cost)
            if decision.allowed and lease_size >= 2 and tokens >= lease_size:
                tokens -= lease_size
                if lease is None and len(self._leases) >= self.MAX_LEASES:
                    self._leases.clear()
                self._leases[key] = [float(lease_size), tokens, now, rate, burst]
            elif lease is not None:
                del self._leases[key]
            slot.pack_into(table, offset, slot_key, tokens, now)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
        return decision

    def _probe(self, table: mmap.mmap, slot_key: int, start: int, full: float, now: float
               ) -> tuple[int, float, float]:
        """(offset, tokens, stamp) of `slot_key`'s slot: the first of PROBE slots from `start`
        that holds it or is free (a full bucket), else the least recently used of them."""
        size = self._SLOT.size
        oldest, oldest_stamp = 0, math.inf
        for i in range(self.PROBE):
            offset = ((start + i) % self.SLOTS) * size
            k, tokens, stamp = self._SLOT.unpack_from(table, offset)
            if k == slot_key:
                return offset, tokens, stamp
            if k == 0:
                return offset, full, now
            if stamp < oldest_stamp:
                oldest, oldest_stamp = offset, stamp
        return oldest, full, now


class FailedAuthLimiter:
    """At most `limit` failed authentications per client address per sliding `window` seconds.

    A correct key is never refused because of failures from its address (everyone behind one
    NAT shares it): every well-formed key is looked up, and only a failure past the budget is
    answered 429 (with Retry-After) instead of 401. Guessing gains nothing from being evaluated
    (keys carry 190 random bits) and a lookup is one point query on a unique index, no dearer
    than any other request the address could send; what the limit buys is a slowed-down,
    visible attacker and well-behaved clients told to back off. Only the latest `limit` failure
    times of an address are kept (a sliding window in bounded memory), for at most
    `max_addresses` addresses (least recently failing forgotten first).
    """

    def __init__(self, limit: int, window: float, clock=time.monotonic,
                 max_addresses: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._max_addresses = max_addresses
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def blocked_for(self, address: str) -> int:
        """Seconds until a failure from `address` is answered 401 again; 0 = not over budget."""
        stamps = self._failures.get(address)
        if stamps is None or len(stamps) < self.limit:
            return 0
        wait = stamps[0] + self.window - self._clock()
        if wait <= 0:
            return 0
        return max(1, int(math.ceil(wait)))

    def record_failure(self, address: str) -> int:
        """Count one failure; returns the seconds the address is now over budget (0 = not)."""
        stamps = self._failures.get(address)
        over = self.blocked_for(address)
        if stamps is None:
            stamps = self._failures[address] = deque(maxlen=self.limit)
            while len(self._failures) > self._max_addresses:
                self._failures.popitem(last=False)
        else:
            self._failures.move_to_end(address)
        stamps.append(self._clock())
        return over


class MemoryBudget:
    """Memory held by in-flight upload bodies, bounded globally and per tenant (one process).

    Each upload holds what it may buffer at most (a streamed body: its staging slices and the
    readers' buffers; a body that must be parsed whole: its size) from the moment its body
    starts to be read until it is on disk. `hold` refuses a new upload when either bound would
    be passed, so a crowd of slow or stalled uploads cannot take the server's memory, and one
    tenant (or one leaked upload URL) cannot take all of the budget.
    """

    def __init__(self, limit: int, per_tenant: int) -> None:
        self.limit = limit
        self.per_tenant = per_tenant
        self.used = 0
        self._by_tenant: dict[int, int] = {}

    def try_hold(self, tenant_id: int, nbytes: int) -> str | None:
        """Take `nbytes` for `tenant_id`; None when taken, else which bound refused it."""
        mine = self._by_tenant.get(tenant_id, 0)
        if self.used + nbytes > self.limit:
            return "server"
        if mine + nbytes > self.per_tenant:
            return "tenant"
        self.used += nbytes
        self._by_tenant[tenant_id] = mine + nbytes
        return None

    def release(self, tenant_id: int, nbytes: int) -> None:
        self.used -= nbytes
        left = self._by_tenant.get(tenant_id, 0) - nbytes
        if left > 0:
            self._by_tenant[tenant_id] = left
        else:
            self._by_tenant.pop(tenant_id, None)
