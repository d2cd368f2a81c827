"""The database's group commit: concurrent writers share a transaction, each in its own
savepoint; one writer's failure never undoes another's work; nothing is reported before COMMIT."""

import asyncio
import fcntl
import os
import sqlite3
import sys
import time

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


def test_a_lone_job_that_fails_leaves_nothing_and_the_next_commits(db_path):
    """One job at a time (each its own transaction, no savepoint): a failure undoes all it
    wrote and reaches its caller; the writer goes on."""
    async def go():
        db = Database(db_path)
        await db.open()
        try:
            def failing(conn):
                conn.execute("INSERT INTO kv VALUES ('a', 1)")
                conn.execute("INSERT INTO kv VALUES ('b', 2)")
                raise ValueError("refused")

            with pytest.raises(ValueError, match="refused"):
                await db.execute_write_fn(failing)
            with pytest.raises(sqlite3.IntegrityError):  # a failing statement, not Python
                await db.execute_write_fn(lambda conn: conn.executemany(
                    "INSERT INTO kv VALUES (?, ?)", [("c", 3), ("c", 4)]))
            assert rows(db_path) == {}
            assert await db.execute_write_fn(
                lambda conn: conn.execute("INSERT INTO kv VALUES ('d', 5)").rowcount) == 1
            return rows(db_path)
        finally:
            await db.close()

    assert asyncio.run(go()) == {"d": 5}


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


def _blocked_on(path):
    """Whether some process waits for a flock on `path` (Linux /proc/locks: `-> FLOCK` lines)."""
    ino = os.stat(path).st_ino
    with open("/proc/locks") as f:
        return any(line.split()[1] == "->" and line.split()[6].endswith(f":{ino}") for line in f)


def test_a_writer_waits_for_the_write_lock_and_then_commits_everything_queued_at_once(db_path):
    """Between processes the write lock is handed over (a blocking flock beside the database),
    not polled for; the jobs that queued meanwhile share one transaction once it is free."""
    from artifacta_box.db.database import WRITE_LOCK_FILE

    lock_path = db_path.parent / WRITE_LOCK_FILE

    async def go():
        async with Database(db_path) as db:
            statements, ran = [], []
            await db.execute_write_fn(lambda conn: conn.set_trace_callback(statements.append))
            other = os.open(lock_path, os.O_RDWR)
            fcntl.flock(other, fcntl.LOCK_EX)  # another process is writing
            try:
                statements.clear()

                def insert(i):
                    def job(conn):
                        ran.append(i)
                        conn.execute("INSERT INTO kv VALUES (?, ?)", (f"k{i}", i))
                    return job

                jobs = [asyncio.ensure_future(db.execute_write_fn(insert(i))) for i in range(20)]
                deadline = time.monotonic() + 10
                while not _blocked_on(lock_path):  # the writer thread waits in flock
                    assert time.monotonic() < deadline, "the writer never waited for the lock"
                    await asyncio.sleep(0.01)
                ran_while_held, stored_while_held = list(ran), rows(db_path)
            finally:
                fcntl.flock(other, fcntl.LOCK_UN)
                os.close(other)
            await asyncio.gather(*jobs)
            return ran_while_held, stored_while_held, statements

    ran_while_held, stored_while_held, statements = asyncio.run(go())
    assert ran_while_held == [] and stored_while_held == {}
    assert len(rows(db_path)) == 20
    assert statements.count("COMMIT") == 1  # the batch is taken once the lock is held


def test_the_writer_never_checkpoints_and_a_passive_checkpoint_copies_the_wal(db_path):
    """Checkpoints are off the writer path: its connection has no autocheckpoint; the
    checkpoint thread's PASSIVE checkpoint moves every committed frame into the database file."""
    async def go():
        async with Database(db_path) as db:
            auto = await db.execute_write_fn(
                lambda conn: conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
            blob = "x" * 3000
            for i in range(50):  # separate transactions: > 50 pages of WAL
                await db.execute_write_fn(
                    lambda conn, i=i: conn.execute("INSERT INTO kv VALUES (?, ?)",
                                                   (f"{blob}{i}", i)))
            busy, frames, copied = await db.checkpoint()
            # the database file alone (the WAL ignored) now holds every row
            main_only = sqlite3.connect(f"file:{db_path}?immutable=1", uri=True)
            try:
                in_file = main_only.execute("SELECT COUNT(*) FROM kv").fetchone()[0]
            finally:
                main_only.close()
            return auto, busy, frames, copied, in_file

    auto, busy, frames, copied, in_file = asyncio.run(go())
    assert auto == 0
    assert busy == 0 and frames > 50 and copied == frames
    assert in_file == 50


@pytest.mark.parametrize(("durability", "synchronous"), [("full", 2), ("relaxed", 1)])
def test_durability_sets_the_writers_synchronous_mode(db_path, durability, synchronous):
    async def go():
        async with Database(db_path, durability=durability) as db:
            return await db.execute_write_fn(
                lambda conn: conn.execute("PRAGMA synchronous").fetchone()[0])

    assert asyncio.run(go()) == synchronous


def test_an_unchanged_read_is_kept_until_any_connection_commits(db_path):
    # fetchone_unchanged keeps a row between commits; a commit from this process's writer or
    # from another process (a second worker, an admin command) is seen by the very next read.
    sql = "SELECT k, v FROM kv WHERE k = ?"

    async def go():
        db = Database(db_path)
        await db.open()
        try:
            await db.execute_write_fn(lambda c: c.execute("INSERT INTO kv VALUES ('a', 1)"))
            assert (await db.fetchone_unchanged(sql, ("a",)))["v"] == 1
            assert await db.fetchone_unchanged(sql, ("b",)) is None
            first = await db.fetchone_unchanged(sql, ("a",))
            assert first is await db.fetchone_unchanged(sql, ("a",))  # from memory

            await db.execute_write_fn(lambda c: c.execute("UPDATE kv SET v = 2 WHERE k = 'a'"))
            assert (await db.fetchone_unchanged(sql, ("a",)))["v"] == 2  # this process's writer

            script = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
                      "c.execute(\"UPDATE kv SET v = 3 WHERE k = 'a'\"); "
                      "c.execute(\"INSERT INTO kv VALUES ('b', 4)\"); c.commit()")
            proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script, str(db_path))
            assert await proc.wait() == 0
            assert (await db.fetchone_unchanged(sql, ("a",)))["v"] == 3  # another process's
            assert (await db.fetchone_unchanged(sql, ("b",)))["v"] == 4  # absent was not kept
        finally:
            await db.close()

    asyncio.run(go())
