"""SQLite access: every transaction is a plain synchronous function of a `sqlite3.Connection`.

Writes (Datasette's `execute_write_fn` model): `await db.execute_write_fn(fn)` runs `fn(conn)`
in the box's one writer thread, on the one writer connection, and returns what `fn` returned
(or raises what it raised). Calls that arrive while a transaction is being written wait and
then share the next one: group commit. Each job runs in its own SAVEPOINT, so one job's
exception rolls back only its own changes and reaches only its own caller; every caller gets
its answer only after the group's COMMIT returned, and with synchronous=FULL a returned COMMIT
is on disk: nothing is acknowledged before it is durable. Under load this turns N WAL fsyncs
and 2N thread hops into one of each per group (at most GROUP_MAX jobs).

`own_transaction=True` runs `fn` alone in its own `BEGIN IMMEDIATE … COMMIT` (gc batches: their
bounded work, file deletions included, neither delays nor can fail a group of uploads), and
`rollback=True` undoes everything `fn` did once it returns, its result still returned (gc's dry
run: the real path, nothing changed). Jobs are written in the order they were asked for.

Reads: `await db.execute_fn(fn)` runs `fn(conn)` on a pooled reader connection in that reader's
thread (one thread hop for a whole sequence of statements); `fetchone`/`fetchall` for a single
statement; `fetchone_point` for the hot paths' indexed point reads, inline on the event loop.
Readers are in autocommit mode, so each statement sees the latest commit; WAL lets them run
while the writer writes. A rule that both reads and writes (load an artifact, count links) is
one sync function, called from a read or from inside a write transaction alike.

Across processes (the admin CLI beside the server, `serve --workers N`) the writers hand the
write lock over rather than poll for it: each transaction is written under an exclusive flock
on WRITE_LOCK_FILE beside the database, which a waiting writer thread blocks on and gets the
moment the holder's COMMIT returns. SQLite's own busy handler, which `BEGIN IMMEDIATE` would
otherwise use, sleeps 1-100 ms between tries (measured: p99 290-740 ms with two workers).
While one process writes, the others' jobs queue up and share their next transaction, so each
process's group commit still batches; the batch is taken only once the lock is held.
Between box processes there is no busy timeout any more: a writer waits as long as the holder's
transaction lasts, so a process stopped mid-transaction (SIGSTOP, a debugger) holds the others'
writes until it goes on or exits (the kernel drops its flock even on SIGKILL); before, they
failed with "database is locked" after BUSY_TIMEOUT_MS. Other SQLite writers (Litestream's
bookkeeping, a sqlite3 shell) still meet SQLite's own lock and busy timeout.

Checkpoints are off the writer path: the writer connection never checkpoints (no
autocheckpoint), a checkpoint thread with its own connection runs `wal_checkpoint(PASSIVE)`
at most every CHECKPOINT_INTERVAL seconds after commits. PASSIVE never waits for readers or
writers, so Litestream (which holds a read transaction while it copies the WAL) keeps working.

Durability: with `durability="full"` (synchronous=FULL) a returned COMMIT is on disk. With
"relaxed" (synchronous=NORMAL, `storage.durability`) the WAL is not fsynced at each commit: a
process crash loses nothing, a power loss may lose the last commits (never a row without its
bytes: inline bytes are in the same transaction as their row, blob files are fsynced before
their row is written, in both modes).

Every connection — writer, readers, the inline point-reader, migrations, offline tools — is
opened by `connect_sync`, the one pragma recipe.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from artifacta_box.db.migrations import migrate

BUSY_TIMEOUT_MS = 15000
INLINE_BUSY_TIMEOUT_MS = 50  # the point-reader falls back to the pool rather than wait
# fetchone_unchanged: the rows it keeps between commits, at most this many and about this many
# bytes (text and blob values counted), the oldest dropped first.
UNCHANGED_ROWS = 4096
UNCHANGED_BYTES = 16 * 1024 * 1024
GROUP_MAX = 128  # most jobs sharing one group-commit transaction
CHECKPOINT_INTERVAL = 0.5  # seconds between PASSIVE checkpoints while commits keep coming
WRITE_LOCK_FILE = "write.lock"  # beside the database: held around every write transaction
DURABILITY_SYNCHRONOUS = {"full": "FULL", "relaxed": "NORMAL"}  # storage.durability -> pragma
T = TypeVar("T")

log = logging.getLogger("artifacta_box")


def connect_sync(
    path: str | Path,
    *,
    read_only: bool = False,
    busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    check_same_thread: bool = True,
    durability: str = "full",
    autocheckpoint: bool = True,
) -> sqlite3.Connection:
    """A plain sqlite3 connection to a box database with the box's pragmas: the one recipe.

    Autocommit (`isolation_level=None`: transactions are explicit, `BEGIN IMMEDIATE`), rows as
    `sqlite3.Row`. `read_only` sets `query_only`, so a stray write on a reader fails loudly
    instead of taking the write lock. `durability` picks synchronous (DURABILITY_SYNCHRONOUS);
    `autocheckpoint=False` for the server's writer, whose checkpoints run elsewhere.
    """
    synchronous = DURABILITY_SYNCHRONOUS[durability]
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=busy_timeout_ms / 1000,
                           check_same_thread=check_same_thread)
    try:
        conn.row_factory = sqlite3.Row
        # busy_timeout first: switching to WAL itself needs the lock another process may hold.
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        _switch_to_wal(conn, busy_timeout_ms)
        # FULL: a commit is on disk when it returns, so an acknowledged upload survives power
        # loss. NORMAL (durability "relaxed"): it survives a crash of the process.
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        if not autocheckpoint:
            conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("PRAGMA cache_size = -32000")
        if read_only:
            conn.execute("PRAGMA query_only = 1")
    except BaseException:
        conn.close()
        raise
    return conn


def _switch_to_wal(conn: sqlite3.Connection, busy_timeout_ms: int) -> None:
    """`PRAGMA journal_mode = WAL`, retried: while several processes open a brand-new database
    at once, SQLite can answer "database is locked" at once, without calling the busy handler
    (measured: 28 of 300 four-way first starts failed before this retry)."""
    deadline = time.monotonic() + busy_timeout_ms / 1000
    delay = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def initialise(path: str | Path) -> int:
    """Create the database if needed and run pending migrations. Returns how many ran."""
    conn = connect_sync(path)
    try:
        return migrate(conn)
    finally:
        conn.close()


@dataclass(eq=False)
class _WriteJob(Generic[T]):
    fn: Callable[[sqlite3.Connection], T]
    future: asyncio.Future[T]
    own_transaction: bool
    rollback: bool


class Database:
    """The box's database: `execute_write_fn` for writes, `execute_fn` (and `fetchone`,
    `fetchall`, `fetchone_point`) for reads. Open with `await db.open()`."""

    def __init__(self, path: str | Path, readers: int = 4, *, durability: str = "full") -> None:
        if durability not in DURABILITY_SYNCHRONOUS:
            raise ValueError(f"durability must be one of {', '.join(DURABILITY_SYNCHRONOUS)}")
        self.path = str(path)
        self.durability = durability
        self.write_lock_path = Path(self.path).with_name(WRITE_LOCK_FILE)
        self._reader_count = readers
        self._writer_thread: ThreadPoolExecutor | None = None
        self._writer: sqlite3.Connection | None = None
        self._write_lock_fd: int | None = None  # opened by the writer thread on its first write
        self._checkpoint_thread: ThreadPoolExecutor | None = None
        self._checkpointer: sqlite3.Connection | None = None
        self._checkpointing: asyncio.Future[None] | None = None
        self._last_checkpoint = 0.0
        self._writing: list[_WriteJob[Any]] = []  # the batch in the writer thread's hands
        # Asked before each write transaction, and told when one failed for want of space
        # (storage.reserve.DiskReserve: it releases the ballast so the database can write).
        self.space_guard: SpaceGuard | None = None
        self._queue_lock = threading.Lock()  # the queue is filled on the loop, taken by the writer
        self._reader_threads: ThreadPoolExecutor | None = None
        self._reader_local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_conns_lock = threading.Lock()
        self._inline: sqlite3.Connection | None = None
        # fetchone_unchanged's rows, valid while data_version reads `_unchanged_version`
        self._unchanged: dict[tuple[str, tuple[Any, ...]], tuple[sqlite3.Row | None, int]] = {}
        self._unchanged_version: int | None = None
        self._unchanged_bytes = 0
        self._queue: list[_WriteJob[Any]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(initialise, self.path)
        self._writer_thread = ThreadPoolExecutor(1, thread_name_prefix="db-writer")
        # Opened in the writer's thread, the only thread that ever uses it.
        self._writer = await loop.run_in_executor(
            self._writer_thread,
            partial(connect_sync, self.path, durability=self.durability, autocheckpoint=False))
        self._checkpoint_thread = ThreadPoolExecutor(1, thread_name_prefix="db-checkpoint")
        self._reader_threads = ThreadPoolExecutor(self._reader_count,
                                                  thread_name_prefix="db-reader")

    async def close(self) -> None:
        """Close every connection once the jobs already running are done (idempotent)."""
        loop = asyncio.get_running_loop()
        if self._flusher is not None and not self._flusher.done():
            try:
                await self._flusher
            except BaseException:  # noqa: BLE001 - its callers got the error; closing goes on
                pass
        if self._checkpointing is not None:
            try:
                await self._checkpointing
            except BaseException:  # noqa: BLE001 - logged where it failed; closing goes on
                pass
        if self._checkpoint_thread is not None:
            checkpointer, self._checkpointer = self._checkpointer, None
            if checkpointer is not None:
                await loop.run_in_executor(self._checkpoint_thread, checkpointer.close)
            self._checkpoint_thread.shutdown(wait=False)
            self._checkpoint_thread = None
        if self._writer_thread is not None:
            writer, self._writer = self._writer, None
            if writer is not None:
                # Runs after whatever the writer thread is still doing: it is one thread.
                await loop.run_in_executor(self._writer_thread, writer.close)
            if self._write_lock_fd is not None:
                os.close(self._write_lock_fd)
                self._write_lock_fd = None
            self._writer_thread.shutdown(wait=False)
            self._writer_thread = None
        if self._reader_threads is not None:
            await asyncio.to_thread(self._reader_threads.shutdown, wait=True)
            self._reader_threads = None
        with self._reader_conns_lock:
            conns, self._reader_conns = self._reader_conns, []
        for conn in conns:
            conn.close()
        if self._inline is not None:
            self._inline.close()
            self._inline = None
        self._unchanged.clear()
        self._unchanged_version = None

    async def __aenter__(self) -> Database:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ writes

    async def execute_write_fn(
        self,
        fn: Callable[[sqlite3.Connection], T],
        *,
        own_transaction: bool = False,
        rollback: bool = False,
    ) -> T:
        """Run `fn(conn)` in the writer's thread inside a write transaction; its result (or
        exception) arrives only after that transaction has committed (see the module docstring).

        `fn` must not open or end transactions itself. By default it is one job of a group
        commit, in its own SAVEPOINT; `own_transaction` gives it a transaction of its own;
        `rollback` undoes its changes after it returned.
        """
        if self._writer is None:
            raise RuntimeError("database is not open")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        with self._queue_lock:
            self._queue.append(_WriteJob(fn, future, own_transaction, rollback))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    def _next_batch(self) -> list[_WriteJob[Any]]:
        """The jobs of the next transaction, in arrival order: one own-transaction job, or up to
        GROUP_MAX group jobs (stopping before an own-transaction job). Caller holds _queue_lock."""
        if self._queue[0].own_transaction:
            return [self._queue.pop(0)]
        n = 0
        while n < len(self._queue) and n < GROUP_MAX and not self._queue[n].own_transaction:
            n += 1
        batch = self._queue[:n]
        del self._queue[:n]
        return batch

    def _write_next_batch(self) -> tuple[list[_WriteJob[Any]], Any]:
        """In the writer's thread: take the write lock (blocking: the hand-off between
        processes), then the next batch, write it, let the lock go. Returns the batch and either
        its outcomes (a list) or the exception that failed BEGIN or COMMIT."""
        assert self._writer is not None
        if self._write_lock_fd is None:
            self._write_lock_fd = os.open(self.write_lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._write_lock_fd, fcntl.LOCK_EX)
        try:
            with self._queue_lock:
                batch: list[_WriteJob[Any]] = []
                while self._queue and not batch:
                    batch = [job for job in self._next_batch() if not job.future.cancelled()]
                self._writing = batch
            if not batch:
                return batch, []
            try:
                return batch, self._write_batch(batch)
            except BaseException as exc:  # noqa: BLE001 - BEGIN or COMMIT: the whole batch failed
                return batch, exc
        finally:
            fcntl.flock(self._write_lock_fd, fcntl.LOCK_UN)

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            try:
                batch, outcomes = await loop.run_in_executor(
                    self._writer_thread, self._write_next_batch)
            except asyncio.CancelledError:
                with self._queue_lock:
                    abandoned, self._queue = self._writing + self._queue, []
                for job in abandoned:
                    job.future.cancel()
                raise
            if isinstance(outcomes, BaseException):
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(outcomes)
                continue
            if batch:
                self._committed(loop)
            for job, (ok, value) in zip(batch, outcomes, strict=True):
                if job.future.done():
                    continue  # its caller stopped waiting (e.g. the client went away)
                if ok:
                    job.future.set_result(value)
                else:
                    job.future.set_exception(value)

    def _write_batch(self, batch: list[_WriteJob[Any]]) -> list[tuple[bool, Any]]:
        """One transaction for `batch` in the writer's thread, with the space guard asked
        first; a transaction that fails for want of space is tried once more if the guard
        could free some (every job of a failed transaction was rolled back)."""
        assert self._writer is not None
        guard = self.space_guard
        if guard is not None:
            guard.before_write()
        try:
            outcomes = _run_transaction(self._writer, batch)
        except sqlite3.OperationalError as exc:
            if guard is None or not is_disk_full(exc) or not guard.disk_full():
                raise
            return _run_transaction(self._writer, batch)
        if guard is not None and any(not ok and isinstance(v, sqlite3.OperationalError)
                                     and is_disk_full(v) for ok, v in outcomes):
            guard.disk_full()  # that job's caller gets its error; the next write has room
        return outcomes

    # ------------------------------------------------------------------ checkpoints

    def _committed(self, loop: asyncio.AbstractEventLoop) -> None:
        """After a commit: start a PASSIVE checkpoint in its own thread unless one is running
        or the last one was less than CHECKPOINT_INTERVAL ago."""
        if self._checkpointing is not None and not self._checkpointing.done():
            return
        now = time.monotonic()
        if now - self._last_checkpoint < CHECKPOINT_INTERVAL or self._checkpoint_thread is None:
            return
        self._last_checkpoint = now
        self._checkpointing = loop.run_in_executor(self._checkpoint_thread, self._checkpoint)

    async def checkpoint(self) -> tuple[int, int, int]:
        """Run a PASSIVE checkpoint now (after any running one); returns SQLite's
        (busy, wal frames, frames checkpointed)."""
        if self._checkpoint_thread is None:
            raise RuntimeError("database is not open")
        return await asyncio.get_running_loop().run_in_executor(
            self._checkpoint_thread, self._checkpoint)

    def _checkpoint(self) -> tuple[int, int, int]:
        """In the checkpoint thread: copy committed WAL frames into the database file without
        waiting for anyone (PASSIVE; never TRUNCATE or RESTART, tests/unit/test_litestream_compat)."""
        try:
            if self._checkpointer is None:
                self._checkpointer = connect_sync(self.path, durability=self.durability)
            row = self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            return (row[0], row[1], row[2])
        except sqlite3.Error as exc:  # retried after the next commits
            log.warning("WAL checkpoint failed (retried after the next commits): %s", exc)
            return (1, -1, -1)

    # ------------------------------------------------------------------ reads

    def _reader(self) -> sqlite3.Connection:
        """This reader thread's connection, opened on its first read."""
        conn = getattr(self._reader_local, "conn", None)
        if conn is None:
            # check_same_thread off only so that close() can close it from the loop's thread.
            conn = connect_sync(self.path, read_only=True, check_same_thread=False)
            self._reader_local.conn = conn
            with self._reader_conns_lock:
                self._reader_conns.append(conn)
        return conn

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._reader()
        try:
            return fn(conn)
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")

    async def execute_fn(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` on a reader connection in its own thread; returns its result."""
        if self._reader_threads is None:
            raise RuntimeError("database is not open")
        return await asyncio.get_running_loop().run_in_executor(
            self._reader_threads, self._read, fn)

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        args = tuple(params)
        return await self.execute_fn(lambda conn: fetchone(conn, sql, args))

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        args = tuple(params)
        return await self.execute_fn(lambda conn: fetchall(conn, sql, args))

    async def fetchone_point(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        """An indexed point read for a hot path (auth, signed downloads, share links): inline on
        the event loop (see fetchone_inline), through the pool if SQLite is busy."""
        try:
            return self.fetchone_inline(sql, params)
        except sqlite3.OperationalError:
            return await self.fetchone(sql, params)

    async def fetchone_unchanged(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Row | None:
        """`fetchone_point` for a read repeated with the same parameters (every signed download
        of an artifact reads its row, plan and inline bytes), answered from memory while no
        connection (this process's writer, another worker, an admin command) has committed
        since the row was read: SQLite's `PRAGMA data_version` on the inline connection
        changes with every such commit and costs a fraction of the read (a statement, no
        table). Any commit drops every kept row, so a delete, an expiry change, a suspension
        or a purge is seen by the very next request, as without the cache."""
        try:
            version = self._data_version()
        except sqlite3.OperationalError:
            return await self.fetchone(sql, params)
        kept = self._unchanged
        if version != self._unchanged_version:
            kept.clear()
            self._unchanged_bytes = 0
            self._unchanged_version = version
        key = (sql, params)
        hit = kept.get(key)
        if hit is not None:
            return hit[0]
        row = await self.fetchone_point(sql, params)
        # Read after `version` was: if a commit came in between, the next data_version
        # differs and this row is never served. Kept only while nothing committed meanwhile;
        # absent rows are not kept (unknown ids must not push the known ones out).
        if row is not None and self._unchanged_version == version:
            size = 64 + sum(len(v) for v in row if isinstance(v, str | bytes))
            while kept and (len(kept) >= UNCHANGED_ROWS
                            or self._unchanged_bytes + size > UNCHANGED_BYTES):
                self._unchanged_bytes -= kept.pop(next(iter(kept)))[1]
            if size <= UNCHANGED_BYTES:
                kept[key] = (row, size)
                self._unchanged_bytes += size
        return row

    def _data_version(self) -> int:
        conn = self._inline_conn()
        cur = conn.execute("PRAGMA data_version")
        try:
            return cur.fetchone()[0]
        finally:
            cur.close()

    def _inline_conn(self) -> sqlite3.Connection:
        conn = self._inline
        if conn is None:
            conn = self._inline = connect_sync(
                self.path, read_only=True, busy_timeout_ms=INLINE_BUSY_TIMEOUT_MS)
        return conn

    def fetchone_inline(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        """One indexed point read on the calling (event-loop) thread, for hot paths whose whole
        database cost is that read.

        A pooled read hops to a reader thread and back (several times the cost of the lookup
        itself); a WAL reader never waits for the writer, so reading inline does not stall the
        loop. The busy timeout is short: if it ever trips, sqlite3.OperationalError is raised
        and `fetchone_point` retries through the pool.
        """
        return fetchone(self._inline_conn(), sql, params)


class SpaceGuard(Protocol):
    def before_write(self) -> None: ...
    def disk_full(self) -> bool: ...


def is_disk_full(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or \
        "disk is full" in str(exc).lower()


def _run_transaction(conn: sqlite3.Connection, jobs: list[_WriteJob[Any]]
                     ) -> list[tuple[bool, Any]]:
    """One write transaction for `jobs`, each in its own SAVEPOINT. Runs in the writer's
    thread. Returns (ok, result-or-exception) per job; raises if BEGIN or COMMIT fails."""
    if len(jobs) == 1 and not jobs[0].rollback:
        return [_run_alone(conn, jobs[0])]
    outcomes: list[tuple[bool, Any]] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for job in jobs:
            conn.execute("SAVEPOINT job")
            try:
                result = job.fn(conn)
            except BaseException as exc:  # noqa: BLE001 - handed to that job's caller
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
                outcomes.append((False, exc))
                continue
            if job.rollback:
                conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            outcomes.append((True, result))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes


def _run_alone(conn: sqlite3.Connection, job: _WriteJob[Any]) -> tuple[bool, Any]:
    """A transaction of one job: the transaction is its savepoint (a failure rolls it back
    whole), two statements fewer than in a group. Raises if BEGIN or COMMIT fails."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        try:
            result = job.fn(conn)
        except BaseException as exc:  # noqa: BLE001 - handed to the job's caller
            if conn.in_transaction:  # (SQLite ends it itself after some errors)
                conn.execute("ROLLBACK")
            return (False, exc)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return (True, result)


# ---------------------------------------------------------------------- statements on a connection


def fetchone(conn: sqlite3.Connection, sql: str, params: Iterable[Any] = ()) -> Any:
    """The first row of `sql` (None if none), the cursor closed."""
    cur = conn.execute(sql, tuple(params))
    try:
        return cur.fetchone()
    finally:
        cur.close()


def fetchall(conn: sqlite3.Connection, sql: str, params: Iterable[Any] = ()) -> list[Any]:
    """Every row of `sql`, the cursor closed."""
    cur = conn.execute(sql, tuple(params))
    try:
        return cur.fetchall()
    finally:
        cur.close()


def execute(conn: sqlite3.Connection, sql: str, params: Iterable[Any] = ()) -> int:
    """Run one data-changing statement; returns the rows it changed."""
    cur = conn.execute(sql, tuple(params))
    try:
        return max(cur.rowcount, 0)
    finally:
        cur.close()
