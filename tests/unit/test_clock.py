"""The rendered times every row and response carries: `iso` (fixed width, UTC, `Z`) and the
calendar month the request quota counts in (`Clock.month`, cached between month boundaries)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta, timezone

from artifacta_box.clock import ISO_PATTERN, Clock, iso


def test_iso_is_fixed_width_utc_with_microseconds():
    assert iso(datetime(2026, 3, 4, 5, 6, 7, 0, tzinfo=UTC)) == "2026-03-04T05:06:07.000000Z"
    assert iso(datetime(2026, 3, 4, 5, 6, 7, 89, tzinfo=UTC)) == "2026-03-04T05:06:07.000089Z"
    east = datetime(2026, 1, 1, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    assert iso(east) == "2025-12-31T23:30:00.000000Z"
    assert re.match(ISO_PATTERN, iso(datetime.now(UTC)))


def clock_at(when: datetime) -> Clock:
    return Clock(offset_seconds=when.timestamp() - time.time())


def test_month_turns_at_the_utc_boundary_and_follows_a_shifted_clock():
    clock = clock_at(datetime(2026, 12, 31, 23, 59, 50, tzinfo=UTC))
    assert clock.month() == "2026-12"
    clock.offset_seconds += 20
    assert clock.month() == "2027-01"
    clock.offset_seconds -= 40 * 86400  # back into November
    assert clock.month() == "2026-11"
    assert clock.month() == clock.now().strftime("%Y-%m")


class FixedClock(Clock):
    def __init__(self) -> None:
        super().__init__()
        self.at = 0.0

    def time(self) -> float:
        return self.at


def test_iso_now_is_iso_of_now_at_every_instant():
    # the rendered second is cached: across second boundaries, half-microseconds (rounded as
    # datetime rounds them), a jump back (a shifted clock) and the carry into the next second
    clock = FixedClock()
    instants = [1_800_000_000 + k / 7 for k in range(200)] + [
        1_800_000_000.9999996, 1_800_000_000.0000005, 1_799_999_999.5, 1_700_000_000.25,
        1_800_000_059.999999, 0.0, 1e-7]
    for at in instants:
        clock.at = at
        assert clock.iso_now() == iso(datetime.fromtimestamp(at, UTC)), at
    assert re.match(ISO_PATTERN, Clock().iso_now())
