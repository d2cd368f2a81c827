"""The upload commit's blob reference and storage charge (`usage.add_reference_within_quota`),
on the real schema: dedup billing, the quota boundary, an artifact that has just expired counted out, and a refusal that changes nothing once its savepoint is rolled back."""

from __future__ import annotations

import dataclasses
import sqlite3

import pytest

from artifacta_box import errors
from artifacta_box.config import BUILTIN_PLANS
from artifacta_box.db.migrations import migrate
from artifacta_box.services import usage

PLAN = dataclasses.replace(BUILTIN_PLANS["selfhosted"], storage_bytes=1000)
NOW = "2026-06-01T00:00:00.000000Z"
PAST = "2026-05-31T00:00:00.000000Z"


@pytest.fixture
def conn() -> sqlite3.Connection:
    c = sqlite3.connect(":memory:", isolation_level=None)
    c.row_factory = sqlite3.Row
    migrate(c)
    c.execute("INSERT INTO tenants (tenant_id, name, plan, created_at) VALUES (1, 't', 'p', ?)",
              (NOW,))
    return c


def add(conn: sqlite3.Connection, sha: str, size: int, location: str | None = "inline") -> bool:
    """One job as the writer runs it: in a savepoint, rolled back if it raises."""
    conn.execute("SAVEPOINT job")
    try:
        kept = usage.add_reference_within_quota(conn, 1, PLAN, sha, size, NOW, location,
                                                "this upload")
    except BaseException:
        conn.execute("ROLLBACK TO job")
        raise
    finally:
        conn.execute("RELEASE job")
    return kept


def artifact(conn: sqlite3.Connection, aid: str, sha: str, size: int, expires_at: str | None):
    conn.execute(
        "INSERT INTO artifacts (artifact_id, tenant_id, state, filename, content_type, "
        "size_bytes, content_hash, metadata, created_at, expires_at) "
        "VALUES (?, 1, 'active', 'f', 'text/plain', ?, ?, '{}', ?, ?)",
        (aid, size, sha, PAST, expires_at))


def used(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT storage_bytes FROM tenants WHERE tenant_id = 1").fetchone()[0]


def blob(conn: sqlite3.Connection, sha: str) -> tuple[int, int, str | None]:
    row = conn.execute("SELECT refs, live_refs, location FROM blobs WHERE sha256 = ?",
                       (sha,)).fetchone()
    return tuple(row) if row else None


def test_new_bytes_are_billed_once_and_a_duplicate_keeps_the_rows_location(conn):
    assert add(conn, "a", 600) is True
    assert used(conn) == 600 and blob(conn, "a") == (1, 1, "inline")
    assert add(conn, "a", 600, location=None) is False  # stored inline already: not these bytes
    assert used(conn) == 600 and blob(conn, "a") == (2, 2, "inline")


def test_the_plan_is_filled_exactly_and_one_byte_more_is_refused_leaving_nothing(conn):
    add(conn, "a", 600)
    add(conn, "b", 400)
    assert used(conn) == 1000
    with pytest.raises(errors.QuotaExceeded) as err:
        add(conn, "c", 1)
    assert "1,000 of 1,000 bytes used and this upload adds 1" in str(err.value)
    assert used(conn) == 1000 and blob(conn, "c") is None


def test_bytes_no_live_artifact_holds_are_billed_again(conn):
    add(conn, "a", 600)
    conn.execute("UPDATE blobs SET live_refs = 0 WHERE sha256 = 'a'")  # its artifact deleted
    conn.execute("UPDATE tenants SET storage_bytes = 0")
    add(conn, "a", 600)
    assert used(conn) == 600 and blob(conn, "a") == (2, 1, "inline")


def test_an_artifact_that_expired_a_moment_ago_no_longer_counts(conn):
    add(conn, "old", 700)
    artifact(conn, "art_old", "old", 700, expires_at=PAST)
    add(conn, "new", 600)  # fits only once the expiry is processed
    assert used(conn) == 600
    state = conn.execute("SELECT state FROM artifacts WHERE artifact_id = 'art_old'").fetchone()
    assert state[0] == "expired" and blob(conn, "old") == (1, 0, "inline")

