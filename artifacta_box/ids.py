"""Identifiers drawn from a CSPRNG."""

import secrets
import string

ALNUM = string.ascii_letters + string.digits


def random_alnum(n: int) -> str:
    return "".join(secrets.choice(ALNUM) for _ in range(n))


def new_artifact_id() -> str:
    return "art_" + random_alnum(16)


def new_link_id() -> str:
    return "lnk_" + random_alnum(20)


def new_key_id() -> str:
    return "key_" + random_alnum(16)


def new_request_id() -> str:
    return "req_" + random_alnum(20)
