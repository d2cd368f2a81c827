"""Token buckets: in memory for one process, and the table `serve --workers N` shares."""

from __future__ import annotations

import multiprocessing

from artifacta_box.security.ratelimit import (
    METRICS_BUCKET,
    SharedTokenBuckets,
    TokenBuckets,
    anonymous_bucket,
)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_in_memory_bucket_refills_at_the_sustained_rate():
    clock = FakeClock()
    b = TokenBuckets(clock=clock, wall=lambda: 0.0)
    assert [b.take(1, rate=2, burst=3).allowed for _ in range(4)] == [True, True, True, False]
    refused = b.take(1, rate=2, burst=3)
    assert refused.retry_after == 1 and refused.remaining == 0
    clock.t += 1.0  # two tokens back
    assert [b.take(1, rate=2, burst=3).allowed for _ in range(3)] == [True, True, False]
    assert b.take(2, rate=2, burst=3).allowed  # another tenant has its own bucket


def test_two_handles_on_one_table_share_each_bucket(tmp_path):
    path = tmp_path / "ratelimit.table"
    SharedTokenBuckets.create(path)
    clock = FakeClock()
    a = SharedTokenBuckets(path, clock=clock, wall=lambda: 0.0)
    b = SharedTokenBuckets(path, clock=clock, wall=lambda: 0.0)  # as another worker would
    took = [(a if i % 2 else b).take(7, rate=1, burst=5).allowed for i in range(8)]
    assert took == [True] * 5 + [False] * 3
    assert a.take(8, rate=1, burst=5).remaining == 4  # tenants stay apart
    clock.t += 2.0
    assert b.take(7, rate=1, burst=5).remaining == 1
    SharedTokenBuckets.create(path)  # a new serve starts from full buckets
    assert a.take(7, rate=1, burst=5).remaining == 4
    a.close()
    b.close()


def test_a_tenants_anonymous_bucket_and_the_scrape_bucket_are_apart_from_its_api_bucket(tmp_path):
    """--workers N: every worker takes the anonymous downloads of a tenant from one bucket, and
    emptying it leaves the tenant's API bucket (and the /metrics bucket) full."""
    path = tmp_path / "ratelimit.table"
    SharedTokenBuckets.create(path)
    clock = FakeClock()
    a = SharedTokenBuckets(path, clock=clock, wall=lambda: 0.0)
    b = SharedTokenBuckets(path, clock=clock, wall=lambda: 0.0)
    keys = {1, 2, METRICS_BUCKET, anonymous_bucket(1), anonymous_bucket(2)}
    assert len(keys) == 5 and -1 not in keys  # -1 would be the table's empty slot
    took = [(a if i % 2 else b).take(anonymous_bucket(1), rate=0.001, burst=3).allowed
            for i in range(5)]
    assert took == [True, True, True, False, False]
    for key in (1, 2, METRICS_BUCKET, anonymous_bucket(2)):
        assert a.take(key, rate=0.001, burst=3).remaining == 2
    a.close()
    b.close()


def test_a_full_probe_window_reuses_the_least_recently_used_slot(tmp_path):
    path = tmp_path / "ratelimit.table"
    SharedTokenBuckets.create(path)
    clock = FakeClock()
    t = SharedTokenBuckets(path, clock=clock, wall=lambda: 0.0)
    t.SLOTS = 16  # a tiny table (the file is bigger: only its first slots are used)
    for key in range(16):
        clock.t += 1
        assert t.take(key, rate=0.001, burst=2).remaining == 1
    clock.t += 1
    assert t.take(99, rate=0.001, burst=2).remaining == 1  # evicts the oldest (key 0)
    assert t.take(5, rate=0.001, burst=2).remaining == 0   # key 5 kept its bucket
    t.close()


def _drain(path: str, n: int, out) -> None:
    t = SharedTokenBuckets(path)
    out.put(sum(t.take(3, rate=0.001, burst=50).allowed for _ in range(n)))


def test_processes_taking_at_once_hand_out_each_token_once(tmp_path):
    path = str(tmp_path / "ratelimit.table")
    SharedTokenBuckets.create(path)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_drain, args=(path, 40, out)) for _ in range(4)]
    for p in procs:
        p.start()
    allowed = sum(out.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(60)
    assert allowed == 50  # one bucket of 50 for 160 attempts from 4 processes


def test_leased_tokens_are_taken_from_the_shared_bucket_at_once(tmp_path):
    """A fast bucket is leased to the worker that takes from it (no lock per take): the lease
    leaves the shared bucket at once, so two workers together admit exactly the burst, and
    another worker is refused early by at most one lease."""
    path = tmp_path / "ratelimit.table"
    SharedTokenBuckets.create(path)
    clock = FakeClock()  # frozen: no refill, no lease expiry
    a = SharedTokenBuckets(path, clock=clock, wall=lambda: 0.0)
    b = SharedTokenBuckets(path, clock=clock, wall=lambda: 0.0)
    lease = min(SharedTokenBuckets.LEASE_MAX, int(1000 * SharedTokenBuckets.LEASE_SECONDS), 100 // 8)
    assert lease >= 2
    assert a.take(7, rate=1000, burst=100).remaining == 99
    taken_by_b = 0
    while b.take(7, rate=1000, burst=100).allowed:
        taken_by_b += 1
    assert taken_by_b == 99 - lease  # a's lease was not b's to take
    refused = b.take(7, rate=1000, burst=100)
    assert not refused.allowed and refused.retry_after == 1
    taken_by_a = 0
    while a.take(7, rate=1000, burst=100).allowed:
        taken_by_a += 1
    assert taken_by_a == lease
    assert 1 + taken_by_b + taken_by_a == 100
    clock.t += 0.0025  # 2.5 tokens refill: whoever asks first gets them, leases or not
    assert [b.take(7, rate=1000, burst=100).allowed for _ in range(3)] == [True, True, False]
    a.close()
    b.close()


def test_an_unspent_lease_goes_back_to_the_bucket(tmp_path):
    path = tmp_path / "ratelimit.table"
    SharedTokenBuckets.create(path)
    clock = FakeClock()
    a = SharedTokenBuckets(path, clock=clock, wall=lambda: 0.0)
    b = SharedTokenBuckets(path, clock=clock, wall=lambda: 0.0)
    a.take(7, rate=1000, burst=100)  # leases 12 tokens
    while b.take(7, rate=1000, burst=100).allowed:
        pass
    # a's lease expires unspent; a's next take returns it first (and 60 tokens have refilled)
    clock.t += 1.5 * SharedTokenBuckets.LEASE_SECONDS
    refill = int(1000 * 1.5 * SharedTokenBuckets.LEASE_SECONDS)
    assert a.take(7, rate=1000, burst=100).remaining == 12 + refill - 1
    a.close()
    b.close()


def _frozen_clock() -> float:
    return 1000.0


def _drain_leased(path: str, n: int, out) -> None:
    t = SharedTokenBuckets(path, clock=_frozen_clock)
    out.put(sum(t.take(3, rate=1000, burst=100).allowed for _ in range(n)))


def test_processes_taking_leases_at_once_never_admit_past_the_burst(tmp_path):
    path = str(tmp_path / "ratelimit.table")
    SharedTokenBuckets.create(path)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_drain_leased, args=(path, 60, out)) for _ in range(4)]
    for p in procs:
        p.start()
    allowed = sum(out.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(60)
    lease = 100 // 8  # each process may stop holding one lease unspent
    assert 100 - 4 * lease <= allowed <= 100, allowed
