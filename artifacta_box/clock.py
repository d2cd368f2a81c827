"""Time in one place: UTC timestamps as the API renders them, and an injectable clock."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta


class Clock:
    """Wall-clock source. Tests may shift it with `offset_seconds` instead of sleeping."""

    def __init__(self, offset_seconds: float = 0.0) -> None:
        self.offset_seconds = offset_seconds
        self._month = ("", 0.0, 0.0)  # (YYYY-MM, its first instant, the next month's)
        self._second = (-1, "")  # (a whole Unix second, its `YYYY-MM-DDTHH:MM:SS`)

    def time(self) -> float:
        return time.time() + self.offset_seconds

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def iso_now(self) -> str:
        """`iso(self.now())`, its date and time of day rendered once per second: asked by
        every signed download (the artifact's expiry), 0.6 us instead of 3 us."""
        now = self.time()
        second = int(now // 1)
        micros = round((now - second) * 1e6)  # datetime.fromtimestamp's rounding (half even)
        if micros >= 1_000_000:  # rounds up into the next second
            return iso(self.now())
        whole, text = self._second
        if whole != second:
            text = datetime.fromtimestamp(second, UTC).isoformat()[:-6]
            self._second = (second, text)
        return f"{text}.{micros:06d}Z"

    def month(self) -> str:
        """The UTC calendar month, `2026-11`: asked by every /v1 request (its request quota),
        so rendered once per month rather than per call (4 us)."""
        now = self.time()
        name, start, end = self._month
        if not start <= now < end:
            first = datetime.fromtimestamp(now, UTC).replace(
                day=1, hour=0, minute=0, second=0, microsecond=0)
            following = (first + timedelta(days=32)).replace(day=1)
            name, start, end = first.strftime("%Y-%m"), first.timestamp(), following.timestamp()
            self._month = (name, start, end)
        return name


# What iso() renders, as a regular expression (the OpenAPI document's timestamp pattern).
ISO_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$"


def iso(dt: datetime) -> str:
    """`2026-11-28T15:54:40.123456Z`: fixed width, so strings sort like the instants they name."""
    if dt.tzinfo is not UTC:
        dt = dt.astimezone(UTC)
    # isoformat ends in "+00:00" here; it renders in a third of strftime's time
    return dt.isoformat(timespec="microseconds")[:-6] + "Z"


def iso_in(dt: datetime, seconds: float) -> str:
    return iso(dt + timedelta(seconds=seconds))


def parse_iso(value: str) -> datetime:
    """Parse an ISO 8601 date-time from a query string.

    Accepts `Z`, `+00:00`, any offset, and an offset whose `+` arrived as a space (the official
    clients send `/v1/sessions` queries unencoded). A value without a zone is taken as UTC.
    Raises ValueError on anything else.
    """
    text = value.strip()
    if len(text) > 64:
        raise ValueError("too long")
    # "2026-01-01T00:00:00 00:00": the '+' of the offset was decoded as a space.
    if len(text) > 19 and " " in text[19:]:
        head, _, tail = text.rpartition(" ")
        if tail and tail[0].isdigit():
            text = f"{head}+{tail}"
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)
