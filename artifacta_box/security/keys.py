"""API keys: `ak_live_` + 32 alphanumerics, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import re

from artifacta_box.ids import random_alnum

KEY_PREFIX = "ak_live_"
KEY_CHARS = 32
KEY_RE = re.compile(rf"^{KEY_PREFIX}[A-Za-z0-9]{{{KEY_CHARS}}}$")
KEY_FORMAT = f"{KEY_PREFIX}<{KEY_CHARS} letters or digits>"  # as error messages and docs say it


def generate_key() -> str:
    return KEY_PREFIX + random_alnum(KEY_CHARS)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def parse_bearer(header: str | None) -> str | None:
    """The key from an `Authorization: Bearer …` header, or None if absent or malformed."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    value = value.strip()
    return value if KEY_RE.fullmatch(value) else None
