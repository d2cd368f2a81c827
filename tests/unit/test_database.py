"""The database's group commit: concurrent writers share a transaction, each in its own
savepoint; one writer's failure never undoes another's work; nothing is reported before COMMIT."""

import asyncio
import sqlite3

import pytest

from artifacta_box.db import Database, connect_sync


@pytest.fixture
def db_path(tmp_path):
    path = tmp_path / "t.db"
    conn = connect_sync(path)
    conn.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
    conn.close()
    return path


def rows(path):
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT k, v FROM kv").fetchall())
    finally:
        conn.close()


def test_concurrent_jobs_commit_and_failures_roll_back_alone(db_path):
    async def go():
        db = Database(db_path)
        await db.open()
        try:
            def insert(k, v, fail=False):
                def job(conn):
                    conn.execute("INSERT INTO kv VALUES (?, ?)", (k, v))
                    if fail:
                        raise ValueError(f"refused {k}")
                    return k
                return job

            jobs = [db.execute_write_fn(insert(f"k{i}", i, fail=(i % 3 == 0))) for i in range(30)]
            results = await asyncio.gather(*jobs, return_exceptions=True)
            # after every caller got its answer, the successes are durable in the file
            return results, rows(db_path)
        finally:
            await db.close()

    results, stored = asyncio.run(go())
    for i, r in enumerate(results):
        if i % 3 == 0:
            assert isinstance(r, ValueError) and str(r) == f"refused k{i}"
            assert f"k{i}" not in stored
        else:
            assert r == f"k{i}" and stored[f"k{i}"] == i


def test_jobs_in_one_group_see_each_others_writes(db_path):
    """Two uploads with one Idempotency-Key in the same group: the second sees the first."""
    async def go():
        db = Database(db_path)
        await db.open()
        try:
            def upsert(conn):
                row = conn.execute("SELECT v FROM kv WHERE k = 'x'").fetchone()
                if row is None:
                    conn.execute("INSERT INTO kv VALUES ('x', 1)")
                    return "created"
                return "replayed"

            return await asyncio.gather(*[db.execute_write_fn(upsert) for _ in range(10)])
        finally:
            await db.close()

    outcomes = asyncio.run(go())
    assert outcomes.count("created") == 1 and outcomes.count("replayed") == 9


def test_group_writes_interleave_safely_with_write_transactions(db_path):
    async def go():
        db = Database(db_path)
        await db.open()
        try:
            async def classic(i):
                await db.execute_write_fn(
                    lambda conn: conn.execute("INSERT INTO kv VALUES (?, ?)", (f"c{i}", i)),
                    own_transaction=True)

            def grouped(i):
                return lambda conn: conn.execute("INSERT INTO kv VALUES (?, ?)", (f"g{i}", i))

            await asyncio.gather(*[classic(i) for i in range(10)],
                                 *[db.execute_write_fn(grouped(i)) for i in range(10)])
        finally:
            await db.close()

    asyncio.run(go())
    assert len(rows(db_path)) == 20


def test_a_rolled_back_job_returns_its_result_and_changes_nothing(db_path):
    """gc's dry run: the real code path, every change undone, the others' kept."""
    async def go():
        async with Database(db_path) as db:
            def insert(k):
                def job(conn):
                    conn.execute("INSERT INTO kv VALUES (?, 1)", (k,))
                    return conn.execute("SELECT COUNT(*) FROM kv").fetchone()[0]
                return job

            return await asyncio.gather(
                db.execute_write_fn(insert("kept")),
                db.execute_write_fn(insert("dry"), rollback=True),
                db.execute_write_fn(insert("dry-alone"), own_transaction=True, rollback=True),
            )

    counts = asyncio.run(go())
    assert counts[1] >= 1 and counts[2] >= 1  # each job saw its own insert
    assert rows(db_path) == {"kept": 1}


def test_readers_see_commits_and_refuse_writes(db_path):
    async def go():
        async with Database(db_path) as db:
            await db.execute_write_fn(lambda conn: conn.execute("INSERT INTO kv VALUES ('a', 1)"))
            seen = await db.fetchall("SELECT k, v FROM kv")
            point = await db.fetchone_point("SELECT v FROM kv WHERE k = ?", ("a",))
            with pytest.raises(sqlite3.OperationalError, match="readonly"):
                await db.execute_fn(lambda conn: conn.execute("INSERT INTO kv VALUES ('b', 2)"))
            return [tuple(r) for r in seen], point[0]

    assert asyncio.run(go()) == ([("a", 1)], 1)
    assert rows(db_path) == {"a": 1}
