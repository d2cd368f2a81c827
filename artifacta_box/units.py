"""Sizes and durations as people write them: one grammar each, parsed here and printed back here.

Durations are a whole number (1 to 10 digits, no leading zero) and one unit of
`DURATION_UNITS`: `45s`, `90m`, `12h`, `30d`, `2w`. The config file reads them
(`parse_duration`, which also takes plain seconds), the API's `ttl` is the same grammar plus
`never` (`services/validation.ttl_seconds`), and the OpenAPI `Ttl` pattern is built from
`DURATION_PATTERN`.

Sizes are bytes, or a number and a decimal (`kB`, `MB`, `GB`, `TB`) or binary (`KiB` … `TiB`)
unit, case-insensitive: `500MB`, `1GiB`.

`format_duration` and `format_size` are the inverses `config show` prints, so what it prints
reads back to the same number.
"""

from __future__ import annotations

import re
from typing import Any

DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Without anchors or groups, for embedding (the OpenAPI `Ttl` pattern).
DURATION_PATTERN = f"[1-9][0-9]{{0,9}}[{''.join(DURATION_UNITS)}]"
DURATION_RE = re.compile(f"^([1-9][0-9]{{0,9}})([{''.join(DURATION_UNITS)}])$")
DURATION_UNITS_TEXT = ", ".join(list(DURATION_UNITS)[:-1]) + f" or {list(DURATION_UNITS)[-1]}"

_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 10**3, "kb": 10**3, "kib": 2**10, "ki": 2**10,
    "m": 10**6, "mb": 10**6, "mib": 2**20, "mi": 2**20,
    "g": 10**9, "gb": 10**9, "gib": 2**30, "gi": 2**30,
    "t": 10**12, "tb": 10**12, "tib": 2**40, "ti": 2**40,
}
# What format_size prints, largest first; each reads back through _SIZE_UNITS.
_SIZE_NAMES = (
    ("TiB", 2**40), ("TB", 10**12), ("GiB", 2**30), ("GB", 10**9),
    ("MiB", 2**20), ("MB", 10**6), ("KiB", 2**10), ("kB", 10**3),
)


def parse_size(value: Any) -> int:
    """Bytes from an int or a string such as `500MB` (decimal) or `1GiB` (binary)."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 500MB")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("must not be negative")
        return value
    m = _SIZE_RE.fullmatch(str(value))
    if not m:
        raise ValueError(f"expected a size such as 500MB or 1GiB, got {value!r}")
    return int(m.group(1)) * _SIZE_UNITS[(m.group(2) or "").lower()]


def format_size(n: int) -> str | int:
    """`100MB`, `2GiB`: the largest unit that divides `n` exactly; plain bytes otherwise."""
    for name, size in _SIZE_NAMES:
        if n >= size and n % size == 0:
            return f"{n // size}{name}"
    return n


def parse_duration(value: Any) -> int:
    """Seconds from an int or a duration such as `30d`, `12h`, `90m`, `45s`, `2w`."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30d")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("must not be negative")
        return value
    m = DURATION_RE.fullmatch(str(value).strip())
    if not m:
        raise ValueError(f"expected a duration such as 30d, 12h or 3600s, got {value!r}")
    return duration_seconds(m)


def duration_seconds(match: re.Match[str]) -> int:
    """The seconds a DURATION_RE match names."""
    return int(match.group(1)) * DURATION_UNITS[match.group(2)]


def format_duration(seconds: int) -> str:
    """`30d`, `12h`, `90s`: the largest unit that divides `seconds` exactly."""
    for unit, size in sorted(DURATION_UNITS.items(), key=lambda item: -item[1]):
        if size > 1 and seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
