"""Rate limiting: a token bucket per tenant, and a failed-authentication limit per address."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
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
            bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.stamp) * rate)
            bucket.stamp = now
        allowed = bucket.tokens >= cost
        if allowed:
            bucket.tokens -= cost
        missing = float(burst) - bucket.tokens
        reset_at = int(math.ceil(self._wall() + missing / rate))
        retry_after = 0 if allowed else max(1, int(math.ceil((cost - bucket.tokens) / rate)))
        return Decision(allowed, rate, int(bucket.tokens), reset_at, retry_after)


class FailedAuthLimiter:
    """At most `limit` failed authentications per client address per `window` seconds.

    A key lookup awaits the database, so checking the limit before it and recording a failure
    after it would let a burst of parallel guesses all pass the check. Each lookup is therefore
    registered while in flight (`begin`/`end`), and the distinct keys still being looked up from
    an address count against its budget as if they had failed: at most `limit` guesses are ever
    evaluated. Requests carrying the same key count once, so a client firing many requests in
    parallel with its one valid key is never held back by its own traffic.
    """

    def __init__(self, limit: int, window: float, clock=time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._failures: OrderedDict[str, list[float]] = OrderedDict()
        self._in_flight: dict[str, dict[str, int]] = {}

    def _recent(self, address: str, now: float) -> list[float]:
        stamps = self._failures.get(address)
        if not stamps:
            return []
        cutoff = now - self.window
        while stamps and stamps[0] <= cutoff:
            stamps.pop(0)
        if not stamps:
            del self._failures[address]
        return stamps

    def blocked_for(self, address: str, attempt: str | None = None) -> int:
        """Seconds until `address` may try `attempt` (a key fingerprint); 0 = not blocked."""
        now = self._clock()
        stamps = self._recent(address, now)
        if len(stamps) >= self.limit:
            return max(1, int(math.ceil(stamps[0] + self.window - now)))
        pending = self._in_flight.get(address, {})
        others = len(pending) - (1 if attempt in pending else 0)
        if len(stamps) + others >= self.limit:
            return 1  # the budget is taken by lookups still in flight; they end within a second
        return 0

    def begin(self, address: str, attempt: str) -> None:
        """A lookup of `attempt` from `address` starts; pair with `end`."""
        pending = self._in_flight.setdefault(address, {})
        pending[attempt] = pending.get(attempt, 0) + 1

    def end(self, address: str, attempt: str) -> None:
        pending = self._in_flight.get(address)
        if not pending or attempt not in pending:
            return
        pending[attempt] -= 1
        if pending[attempt] <= 0:
            del pending[attempt]
        if not pending:
            del self._in_flight[address]

    def record_failure(self, address: str) -> None:
        now = self._clock()
        self._recent(address, now)
        self._failures.setdefault(address, []).append(now)
        self._failures.move_to_end(address)
        while len(self._failures) > 100_000:
            self._failures.popitem(last=False)
