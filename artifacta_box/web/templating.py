"""The Jinja2 environment of the box's HTML pages, and the static files they load.

Templates live in `web/templates/`, static files in `web/static/` (package data: in the wheel
and in the PyInstaller binary). Autoescaping is on for every template. Jinja2 is imported when
the first page is rendered, so a server that never shows a page never pays for it.

Static files are read once and served from memory under a URL that carries a hash of their
content (`/console/static/console.css?v=1a2b3c4d`), so browsers may cache them for long and
still see a new version at once.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

_STATIC_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    content_type: str
    version: str  # first hex digits of the SHA-256 of the body


@lru_cache(maxsize=1)
def static_files() -> dict[str, StaticFile]:
    """Every file of web/static, by name."""
    out: dict[str, StaticFile] = {}
    for path in sorted(STATIC.iterdir()):
        if not path.is_file():
            continue
        body = path.read_bytes()
        ctype = _STATIC_TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
        out[path.name] = StaticFile(body, ctype or "application/octet-stream",
                                    hashlib.sha256(body).hexdigest()[:12])
    return out


# ---------------------------------------------------------------------------- formatting

_DECIMAL_UNITS = ("bytes", "kB", "MB", "GB", "TB", "PB")


def format_size(n: int | None) -> str:
    """Bytes in decimal units, as the box's settings count them (`100MB` is 100,000,000 bytes)."""
    if n is None:
        return "–"
    n = int(n)
    if n < 1000:
        return f"{n} byte" if n == 1 else f"{n} bytes"
    value = float(n)
    for unit in _DECIMAL_UNITS[1:]:
        value /= 1000
        if value < 1000 or unit == _DECIMAL_UNITS[-1]:
            return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
    raise AssertionError("unreachable")


def format_count(n: int | None) -> str:
    return "–" if n is None else f"{int(n):,}"


def format_time(value: str | None) -> str:
    """`2026-11-28T15:54:40.123456Z` -> `2026-11-28 15:54:40 UTC`."""
    if not value:
        return "–"
    return value[:19].replace("T", " ") + " UTC"


def format_time_short(value: str | None) -> str:
    """`2026-11-28T15:54:40.123456Z` -> `2026-11-28 15:54` (tables say UTC in their headers)."""
    if not value:
        return "–"
    return value[:16].replace("T", " ")


def format_seconds(seconds: int) -> str:
    """3600 -> `1 hour`, 604800 -> `7 days`."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}" if n == 1 else f"{n} {unit}s"
    return f"{seconds} seconds"


def percent(used: int, limit: int) -> int:
    """Whole percent of `limit` used, 0-100 (for a <meter>-like bar and its text)."""
    if limit <= 0:
        return 100
    return max(0, min(100, round(100 * used / limit)))


# ---------------------------------------------------------------------------- environment


@lru_cache(maxsize=1)
def environment() -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(size=format_size, count=format_count, when=format_time,
                       when_short=format_time_short,
                       seconds=format_seconds)
    env.globals.update(percent=percent, static_url=static_url)
    return env


def static_url(name: str, prefix: str = "/console/static") -> str:
    """A static file's versioned URL; `prefix` is where a page's blueprint serves them (the
    console at /console/static, artifact pages at /a/static)."""
    return f"{prefix}/{name}?v={static_files()[name].version}"


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)
