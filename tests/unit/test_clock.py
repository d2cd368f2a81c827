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
