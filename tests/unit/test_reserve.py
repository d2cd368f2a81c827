"""The cached free-space probe: one statvfs per interval or per few MiB written while far from
the reserve, one per question close to it (a cache never lets an upload slip past the reserve)."""

from __future__ import annotations

from artifacta_box.storage.reserve import MiB, DiskReserve


class FakeDisk:
    def __init__(self, free: int) -> None:
        self.free = free
        self.now = 0.0

    def probe(self, _path: str) -> int:
        return self.free


def reserve_on(disk: FakeDisk, min_free: int = 100 * MiB) -> DiskReserve:
    return DiskReserve("/unused", min_free, disk.probe, max_age=0.25, max_unprobed_bytes=4 * MiB,
                       headroom=64 * MiB, clock=lambda: disk.now)


def test_far_from_the_reserve_one_probe_serves_many_questions_and_counts_writes():
    disk = FakeDisk(10_000 * MiB)
    r = reserve_on(disk)
    assert [r.free_bytes() for _ in range(1000)] == [10_000 * MiB] * 1000
    assert r.probes == 1
    r.note_written(MiB)
    assert r.free_bytes() == 9_999 * MiB  # writes since the probe are subtracted
    r.note_written(3 * MiB)  # 4 MiB written since the probe: the next question probes
    disk.free = 9_000 * MiB
    assert r.free_bytes() == 9_000 * MiB and r.probes == 2
    disk.now += 0.3  # stale by age
    disk.free = 8_000 * MiB
    assert r.free_bytes() == 8_000 * MiB and r.probes == 3


def test_near_the_reserve_every_question_probes():
    disk = FakeDisk(150 * MiB)  # 50 MiB above a 100 MiB reserve: inside the headroom
    r = reserve_on(disk)
    for _ in range(5):
        assert r.shortfall() == 0
    assert r.probes == 5
    disk.free = 90 * MiB
    assert r.shortfall() == 10 * MiB
    assert r.shortfall(5 * MiB) == 15 * MiB


def test_freed_space_is_seen_at_the_next_question():
    disk = FakeDisk(10_000 * MiB)
    r = reserve_on(disk)
    r.free_bytes()
    disk.free = 20_000 * MiB
    r.note_freed()
    assert r.free_bytes() == 20_000 * MiB and r.probes == 2
