"""Schema migrations keyed on PRAGMA user_version: run on start, safe to run twice."""

import sqlite3
import threading

from artifacta_box.db import connect_sync, initialise
from artifacta_box.db.migrations import SCHEMA_VERSION
from artifacta_box.services.lifecycle import rowless_objects_sql


def test_fresh_database_reaches_current_version_in_wal(tmp_path):
    path = tmp_path / "a.db"
    assert initialise(path) == SCHEMA_VERSION
    conn = connect_sync(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"tenants", "api_keys", "artifacts", "blobs", "sessions", "links",
            "idempotency_keys", "artifact_metadata", "audit_log"} <= tables


def test_running_twice_changes_nothing(tmp_path):
    path = tmp_path / "a.db"
    initialise(path)
    conn = connect_sync(path)
    conn.execute("INSERT INTO tenants (name, plan, created_at) VALUES ('t', 'free', 'x')")
    conn.close()
    assert initialise(path) == 0
    conn = connect_sync(path)
    assert conn.execute("SELECT name FROM tenants").fetchall()[0][0] == "t"


def test_concurrent_first_starts_migrate_once(tmp_path):
    path = tmp_path / "a.db"
    results, errors = [], []

    def run():
        try:
            results.append(initialise(path))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    # every migration ran exactly once, whichever start applied it
    assert sum(results) == SCHEMA_VERSION
    conn = connect_sync(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_newer_database_is_refused(tmp_path):
    path = tmp_path / "a.db"
    initialise(path)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    try:
        initialise(path)
    except RuntimeError as exc:
        assert "newer" in str(exc)
    else:
        raise AssertionError("a newer schema must be refused")


def _store_at_version(path, version: int) -> sqlite3.Connection:
    """A database as a release at schema `version` left it (migrations 1..version applied)."""
    from artifacta_box.db.migrations import MIGRATIONS, _split

    conn = sqlite3.connect(path, isolation_level=None)
    for v, script in enumerate(MIGRATIONS[:version], start=1):
        for statement in _split(script):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {v}")
    return conn


def test_blob_locations_leave_an_existing_store_as_it_was(tmp_path):
    """Migration 3 (blob locations): rows written before it read as local files (NULL), and
    the listed-keys lookups of check and gc use its indexes."""
    path = tmp_path / "a.db"
    conn = _store_at_version(path, 2)
    conn.execute("INSERT INTO blobs (tenant_id, sha256, size_bytes, refs, live_refs, created_at) "
                 "VALUES (1, 'ab', 5, 1, 1, 'x')")
    conn.close()
    assert initialise(path) == SCHEMA_VERSION - 2
    conn = connect_sync(path)
    assert [tuple(r) for r in conn.execute("SELECT location FROM blobs")] == [(None,)]
    plan = " ".join(str(r[3]) for r in conn.execute(
        "EXPLAIN QUERY PLAN " + rowless_objects_sql(2), ("s3:a", "s3:b", "s3:a", "s3:b")))
    assert "blobs_by_location" in plan and "artifacts_by_upload_location" in plan, plan


def test_the_location_index_leaves_inline_blobs_out_after_upgrade(tmp_path):
    """Migration 7: a store written before it keeps finding its listed store objects' rows
    through blobs_by_location, which no longer holds an entry per inline blob."""
    path = tmp_path / "a.db"
    conn = _store_at_version(path, 6)
    for sha, location in [("aa", "inline"), ("bb", "s3:t/bb"), ("cc", None), ("dd", "inline")]:
        conn.execute("INSERT INTO blobs (tenant_id, sha256, size_bytes, refs, live_refs, "
                     "created_at, location) VALUES (1, ?, 5, 1, 1, 'x', ?)", (sha, location))
    conn.close()
    assert initialise(path) == SCHEMA_VERSION - 6
    conn = connect_sync(path)
    indexed = conn.execute("SELECT location FROM blobs INDEXED BY blobs_by_location "
                           "WHERE location IN ('s3:t/bb', 's3:t/zz') AND location != 'inline'")
    assert [r[0] for r in indexed] == ["s3:t/bb"]
    listed = ("s3:t/bb", "s3:t/zz")
    assert [r[0] for r in conn.execute(rowless_objects_sql(2), listed + listed)] == ["s3:t/bb"]
    definition = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'blobs_by_location'")
    assert "location != 'inline'" in definition.fetchone()[0]  # no entry per inline blob


def test_session_and_agent_indexes_hold_only_labelled_rows_after_upgrade(tmp_path):
    """Migration 6: a store written before it keeps its session and agent lists, now served by
    indexes that leave out rows without a session or an agent."""
    path = tmp_path / "a.db"
    conn = _store_at_version(path, 5)
    for i, (session, agent) in enumerate([("s1", None), (None, "a1"), (None, None)]):
        conn.execute(
            "INSERT INTO artifacts (artifact_id, tenant_id, state, filename, content_type, "
            "size_bytes, content_hash, session_id, agent_id, created_at) "
            "VALUES (?, 1, 'active', 'f', 'text/plain', 1, 'ab', ?, ?, ?)",
            (f"art_{i}", session, agent, f"2026-01-0{i + 1}T00:00:00.000000Z"))
    conn.close()
    assert initialise(path) == SCHEMA_VERSION - 5
    conn = connect_sync(path)
    for index, column, value, expected in [("artifacts_by_session", "session_id", "s1", "art_0"),
                                           ("artifacts_by_agent", "agent_id", "a1", "art_1")]:
        sql = (f"SELECT artifact_id FROM artifacts INDEXED BY {index} WHERE tenant_id = 1 "
               f"AND state = 'active' AND {column} = ? ORDER BY created_at DESC, artifact_id DESC")
        assert [r[0] for r in conn.execute(sql, (value,))] == [expected]
        # the index holds the labelled rows only (a NULL label is no entry of it)
        definition = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?",
                                  (index,)).fetchone()[0]
        assert f"{column} IS NOT NULL" in definition
