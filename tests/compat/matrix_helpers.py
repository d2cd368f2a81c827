"""Shared pieces of the official-client matrices (test_sdk_matrix, test_cli_matrix, test_mcp):
one box per module with plans that make every error reachable, fresh tenants, and direct
SQLite access for what a test must not wait for (an artifact's expiry)."""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from datetime import UTC, datetime

from tests.conftest import BoxServer

# `matrix` is generous; `tiny` makes 413 cheap; `slow` makes 429 reachable in a few requests;
# `free` (built in) has one metadata filter and no ttl `never`.
MATRIX_CONFIG = """
[tenants]
default_plan = "matrix"

[plans.matrix]
rate_sustained = 100000
rate_burst = 100000

[plans.tiny]
rate_sustained = 100000
rate_burst = 100000
max_multipart_size = "1000"
max_json_size = "1000"
max_presigned_size = "1000"

[plans.slow]
rate_sustained = 0.01
rate_burst = 3

[logging]
access_log = false
"""

PAST = "2000-01-01T00:00:00.000000Z"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def new_key(server: BoxServer, plan: str | None = None, prefix: str = "m") -> str:
    return server.new_tenant(f"{prefix}-{uuid.uuid4().hex[:10]}", plan)


def sql(server: BoxServer, query: str, params: tuple = ()) -> list[tuple]:
    conn = sqlite3.connect(str(server.data_dir / "artifacta.db"), timeout=15, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout = 15000")
        return [tuple(r) for r in conn.execute(query, params).fetchall()]
    finally:
        conn.close()


def expire_now(server: BoxServer, artifact_id: str) -> None:
    """Move an artifact's expiry into the past (the box checks expiry at read time)."""
    sql(server, "UPDATE artifacts SET expires_at = ? WHERE artifact_id = ?", (PAST, artifact_id))


def ts(value: str) -> datetime:
    """An API timestamp (`...Z`, microseconds) as an aware datetime."""
    assert value.endswith("Z") and len(value) == 27, value
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def seconds_between(a: str, b: str) -> float:
    return (ts(b) - ts(a)).total_seconds()
