"""Schema migrations keyed on PRAGMA user_version: run on start, safe to run twice."""

import sqlite3
import threading

from artifacta_box.db import connect_sync, initialise
from artifacta_box.db.migrations import SCHEMA_VERSION


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


def test_blob_locations_leave_an_existing_store_as_it_was(tmp_path):
    """Migration 3 (blob locations): rows written before it read as local files (NULL), and
    the listed-keys lookups of check and gc use its indexes."""
    from artifacta_box.db.migrations import MIGRATIONS, _split

    path = tmp_path / "a.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for version, script in enumerate(MIGRATIONS[:2], start=1):
        for statement in _split(script):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {version}")
    conn.execute("INSERT INTO blobs (tenant_id, sha256, size_bytes, refs, live_refs, created_at) "
                 "VALUES (1, 'ab', 5, 1, 1, 'x')")
    conn.close()
    assert initialise(path) == SCHEMA_VERSION - 2
    conn = connect_sync(path)
    assert [tuple(r) for r in conn.execute("SELECT location FROM blobs")] == [(None,)]
    plan = " ".join(str(r[3]) for r in conn.execute(
        "EXPLAIN QUERY PLAN SELECT location FROM blobs WHERE location IN ('s3:a', 's3:b')"))
    assert "blobs_by_location" in plan
    plan = " ".join(str(r[3]) for r in conn.execute(
        "EXPLAIN QUERY PLAN SELECT upload_location FROM artifacts WHERE upload_location IN "
        "('s3:a')"))
    assert "artifacts_by_upload_location" in plan
