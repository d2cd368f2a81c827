"""Identifiers drawn from a CSPRNG."""

import os
import string

ALNUM = string.ascii_letters + string.digits
_UNBIASED = 256 - 256 % len(ALNUM)  # 248: bytes at or above it would favour some characters


def random_alnum(n: int) -> str:
    """n characters of [A-Za-z0-9], uniformly, from os.urandom (rejection sampling: ~5x faster
    than n calls of secrets.choice, which showed up in per-request profiles)."""
    out: list[str] = []
    while len(out) < n:
        for b in os.urandom(n + 8):
            if b < _UNBIASED:
                out.append(ALNUM[b % 62])
                if len(out) == n:
                    break
    return "".join(out)


def new_artifact_id() -> str:
    return "art_" + random_alnum(16)


def new_link_id() -> str:
    return "lnk_" + random_alnum(20)


def new_key_id() -> str:
    return "key_" + random_alnum(16)


def new_request_id() -> str:
    return "req_" + random_alnum(20)
