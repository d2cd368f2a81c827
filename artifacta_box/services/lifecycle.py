"""Lifecycle work (`artifacta-box gc`, and periodically inside `serve`); the operator's view of it
is README, "Operations" (Lifecycle).

One run, in this order, each step in bounded batches (one short write transaction per batch,
yielding the writer to API requests in between):

1. expiry sweep   active artifacts past `expires_at` become `expired` (usage released)
2. purge          deleted/expired rows older than the retention period leave the table with
                  their metadata rows and links (their id then answers 404); their blob
                  reference is dropped, which makes the blob collectable
3. stale pending  presigned reservations past `upload_expires_at` + grace lose their row,
                  and their uploaded bytes when nothing else holds them
4. blobs          blob rows unreferenced for longer than the orphan grace lose row and bytes
5. orphans        files in the local store with no blob row, older than the grace; inline
                  bytes (blob_data) no inline blob row names; objects in
                  an object store (S3) no row names, older than the grace; multipart uploads
                  left incomplete longer than the grace (aborted)
6. links          share links expired (or revoked) longer than the retention period ago
7. idempotency    Idempotency-Key records older than their window; old gc_runs rows
8. temp files     staging leftovers (all of them when no server runs, else only old ones)

Deleting a blob file is safe against uploads in flight because it happens only inside a write
transaction that has just re-checked, in that transaction, that no row references the content
and that the file has not been touched (uploads refresh the mtime on a dedup hit) for the grace
period; an upload re-checks the file inside its own write transaction (`ensure_placed`) and
re-links it from its staging file if it went missing, so the two can never interleave badly.

Bytes in a store that gives every upload its own key (S3, storage/s3/blobstore.py) cannot be
re-referenced by a later upload (that one writes a key of its own and finds the row by hash),
so they need no mtime protection: the write job removes the row, and the object is deleted
only once that job has committed (`delete_after_commit`), outside the writer. A crash in
between leaves an object no row names, which step 5 removes once it is older than the grace.

Inline blobs (storage/inline.py) need neither: their bytes are written in the transaction
that writes their row and deleted in the one that deletes it (`delete_in_transaction`).

`dry_run` runs the same selection and checks, but rolls back every batch and unlinks nothing
(`Database.execute_write_fn(..., rollback=True)`).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from artifacta_box.clock import iso, iso_in
from artifacta_box.context import Box
from artifacta_box.datadir import GC_LOCK_FILE, ServerLock
from artifacta_box.db import execute, fetchall, fetchone
from artifacta_box.services import usage
from artifacta_box.services.audit import record_audit
from artifacta_box.storage import INLINE, BlobRef, StoredBlob
from artifacta_box.storage.inline import ORPHANS_SQL

log = logging.getLogger("artifacta_box.lifecycle")

BATCH = 500               # rows (or files) per write transaction, at most ...
BATCH_SECONDS = 0.05      # ... and at most this much work while holding the writer
# Between two batches the writer is left free this long: in-process API writers are queued on
# the writer lock and get it at once, but another process (the server while `artifacta-box gc`
# runs, an admin command while the server's gc runs) waits in SQLite's busy handler, which
# polls at most every 100 ms; a longer gap guarantees it a turn.
PAUSE_SECONDS = 0.11
EXPIRE_BATCH = 200
GC_RUNS_KEEP_DAYS = 90    # history kept in gc_runs
T = TypeVar("T")


# The lifecycle's selections, each served by a partial index (tests check the query plans).
PURGE_SQL = {
    state: (
        f"SELECT id, artifact_id, tenant_id, content_hash, upload_sha256, upload_location, "
        f"{column} AS at "
        f"FROM artifacts WHERE state = '{state}' AND {column} <= ? AND ({column}, id) > (?, ?) "
        f"ORDER BY {column}, id LIMIT ?"
    )
    for state, column in (("deleted", "deleted_at"), ("expired", "expired_at"))
}
STALE_PENDING_SQL = (
    "SELECT id, artifact_id, tenant_id, upload_sha256, upload_location, "
    "upload_expires_at AS at "
    "FROM artifacts WHERE state = 'pending' AND upload_expires_at <= ? "
    "AND (upload_expires_at, id) > (?, ?) ORDER BY upload_expires_at, id LIMIT ?"
)
UNREFERENCED_SQL = (
    "SELECT tenant_id, sha256, size_bytes, location, unreferenced_at FROM blobs "
    "WHERE refs = 0 AND unreferenced_at <= ? "
    "AND (unreferenced_at, tenant_id, sha256) > (?, ?, ?) "
    "ORDER BY unreferenced_at, tenant_id, sha256 LIMIT ?"
)
# A pending upload's bytes at the local content address (upload_location NULL) hold that file.
PENDING_HOLDS_SQL = (
    "SELECT 1 FROM artifacts WHERE state = 'pending' AND tenant_id = ? AND upload_sha256 = ? "
    "AND upload_location IS NULL LIMIT 1"
)


@dataclass
class GcReport:
    dry_run: bool = False
    started_at: str = ""
    finished_at: str = ""
    expired: int = 0
    purged_artifacts: int = 0
    purged_pending: int = 0
    deleted_blobs: int = 0
    reclaimed_bytes: int = 0
    orphan_files: int = 0          # of deleted_blobs: files that had no blob row
    dropped_links: int = 0
    idempotency_keys: int = 0
    temp_files: int = 0
    temp_bytes: int = 0
    aborted_uploads: int = 0       # incomplete multipart uploads (and probe leftovers) removed
    disk_scanned: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def did_anything(self) -> bool:
        return any((self.expired, self.purged_artifacts, self.purged_pending, self.deleted_blobs,
                    self.dropped_links, self.idempotency_keys, self.temp_files,
                    self.aborted_uploads))


class GcBusy(Exception):
    """Another gc run (the server's, or another `artifacta-box gc`) holds the gc lock."""


@asynccontextmanager
async def gc_lock(box: Box, wait: bool) -> AsyncIterator[None]:
    """One gc at a time per data directory (concurrent runs would be safe, only wasteful).
    Waiting polls, so the event loop is never blocked on the lock."""
    path = box.root / GC_LOCK_FILE
    fh = open(path, "a+")  # noqa: SIM115, ASYNC230 - tiny local lock file, closed below
    try:
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait:
                    raise GcBusy("another gc run is in progress on this data directory") from None
                await asyncio.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    finally:
        fh.close()


class _Run:
    def __init__(self, box: Box, dry_run: bool, batch: int) -> None:
        self.box = box
        self.dry_run = dry_run
        self.batch = batch
        self.now = box.clock.now()
        self.now_iso = iso(self.now)
        self.now_ts = box.clock.time()
        s = box.settings
        self.retention_cutoff = iso_in(self.now, -s.deleted_retention_seconds)
        self.pending_cutoff = iso_in(self.now, -s.pending_grace_seconds)
        self.unreferenced_cutoff = iso_in(self.now, -s.orphan_grace_seconds)
        self.mtime_cutoff = self.now_ts - s.orphan_grace_seconds
        self.report = GcReport(dry_run=dry_run, started_at=self.now_iso)
        self.deferred: list[BlobRef] = []   # see `write`

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """One batch: `fn` in a write transaction of its own (a batch's bounded work, file
        deletions included, never delays or fails a group of API writes); a dry run rolls it
        back once `fn` returned. Bytes `fn` deferred (`delete_after_commit`) are deleted once
        the transaction that removed their last row has committed."""
        self.deferred = []
        try:
            result = await self.box.db.execute_write_fn(fn, own_transaction=True,
                                                        rollback=self.dry_run)
        except BaseException:
            self.deferred = []  # rolled back: their rows are still there
            raise
        deferred, self.deferred = self.deferred, []
        if not self.dry_run:
            for ref in deferred:
                try:
                    await self.box.blobs.delete(ref)
                except Exception:  # noqa: BLE001 - an orphan now: the next sweep removes it
                    log.exception("could not delete %s", self.box.blobs.describe(ref))
        return result

    async def pause(self) -> None:
        """Between two batches of a step that has more to do: leave the writer to others."""
        await asyncio.sleep(PAUSE_SECONDS)

    async def keyset_batches(self, sql: str, params: tuple, start: tuple,
                             key: Callable[[Any], tuple],
                             handle: Callable[[sqlite3.Connection, Any], None]) -> int:
        """Run `handle(conn, row)` over the rows of `sql` (which takes `params`, then the keyset
        position, then a LIMIT) in write transactions of at most BATCH rows and BATCH_SECONDS
        of work. Rows are visited once, in key order, whether handled rows leave the table or
        not (dry runs, skipped rows). Returns the number of rows handled."""
        last, handled = start, 0

        def batch(conn: sqlite3.Connection) -> tuple[tuple, int, bool]:
            """(keyset position reached, rows handled, whether more may follow)."""
            began = time.monotonic()
            position, n = last, 0
            rows = fetchall(conn, sql, (*params, *last, self.batch))
            for r in rows:
                handle(conn, r)
                n += 1
                position = key(r)
                if time.monotonic() - began > BATCH_SECONDS and r is not rows[-1]:
                    return position, n, True
            return position, n, len(rows) == self.batch

        while True:
            last, n, more = await self.write(batch)
            handled += n
            if not more:
                return handled
            await self.pause()

    # ------------------------------------------------------------------ file checks

    def _file_is_stale(self, tenant_id: int, sha256: str) -> bool | None:
        """True if the local blob file is older than the grace, False if recently touched,
        None if it does not exist."""
        return self.box.blobs.local.untouched_since(BlobRef(tenant_id, sha256, 0, None),
                                                   self.mtime_cutoff)

    def _unlink(self, tenant_id: int, sha256: str) -> int:
        """Delete a local blob file (inside a write transaction, so in the writer's thread:
        reads on the event loop go on while the filesystem works). A dry run only measures it."""
        ref = BlobRef(tenant_id, sha256, 0, None)
        if self.dry_run:
            st = self.box.blobs.local.stat_sync(ref)
            return 0 if st is None else st.size
        return self.box.blobs.local.delete_in_transaction(None, ref)

    def delete_after_commit(self, ref: BlobRef) -> None:
        """Bytes with their own copy (not content-addressed: no upload can come to share
        them) whose last row this transaction removes: deleted once it has committed (`write`),
        so an object is never gone while a row names it."""
        self.deferred.append(ref)

    def drop_pending_bytes(self, conn: sqlite3.Connection, r: Any) -> None:
        """A pending reservation leaves the table: the bytes it received go with it."""
        if r["upload_location"] is not None:
            self.delete_after_commit(BlobRef(r["tenant_id"], r["upload_sha256"], 0,
                                             r["upload_location"]))
        elif r["upload_sha256"] is not None:
            self.delete_unrowed_file(conn, r["tenant_id"], r["upload_sha256"])

    def _pending_holds(self, conn: sqlite3.Connection, tenant_id: int, sha256: str) -> bool:
        """Is a presigned upload still waiting to be completed with these bytes?"""
        return fetchone(conn, PENDING_HOLDS_SQL, (tenant_id, sha256)) is not None

    def delete_unrowed_file(self, conn: sqlite3.Connection, tenant_id: int, sha256: str) -> bool:
        """Delete a store file that has no blob row, if nothing can still want it. Must run
        inside a write transaction (see the module docstring)."""
        if fetchone(conn, "SELECT 1 FROM blobs WHERE tenant_id = ? AND sha256 = ? "
                    "AND location IS NULL", (tenant_id, sha256)):
            return False
        if self._file_is_stale(tenant_id, sha256) is not True:
            return False
        if self._pending_holds(conn, tenant_id, sha256):
            return False
        freed = self._unlink(tenant_id, sha256)
        self.report.deleted_blobs += 1
        self.report.orphan_files += 1
        self.report.reclaimed_bytes += freed
        return True

    # ------------------------------------------------------------------ steps

    async def expire(self) -> None:
        if self.dry_run:
            row = await self.box.db.fetchone(
                "SELECT COUNT(*) FROM artifacts WHERE state = 'active' AND expires_at IS NOT NULL "
                "AND expires_at <= ?", (self.now_iso,))
            self.report.expired = int(row[0])
            return
        while True:
            n = await self.write(
                lambda conn: usage.expire_due(conn, self.now_iso, limit=EXPIRE_BATCH))
            self.report.expired += n
            if n < EXPIRE_BATCH:
                return
            await self.pause()

    async def purge(self) -> None:
        """Deleted rows past retention (by deleted_at), then expired rows (by expired_at, the
        moment the box processed the expiry)."""
        for state in ("deleted", "expired"):
            self.report.purged_artifacts += await self.keyset_batches(
                PURGE_SQL[state], (self.retention_cutoff,), ("", 0),
                lambda r: (r["at"], r["id"]), self._purge_row,
            )

    def _purge_row(self, conn: sqlite3.Connection, r: Any) -> None:
        conn.execute("DELETE FROM artifact_metadata WHERE artifact_id = ?", (r["artifact_id"],))
        self.report.dropped_links += execute(
            conn, "DELETE FROM links WHERE artifact_id = ?", (r["artifact_id"],))
        # Its pages go with it: their URLs answer 404 from then on, as for any unknown page.
        conn.execute("DELETE FROM pages WHERE artifact_id = ?", (r["artifact_id"],))
        conn.execute("DELETE FROM artifacts WHERE id = ?", (r["id"],))
        if r["content_hash"] is not None:
            usage.drop_reference(conn, r["tenant_id"], r["content_hash"], self.now_iso)
        else:
            # A presigned reservation deleted before completion: its bytes never had a row.
            self.drop_pending_bytes(conn, r)

    async def stale_pending(self) -> None:
        def remove(conn: sqlite3.Connection, r: Any) -> None:
            conn.execute("DELETE FROM artifact_metadata WHERE artifact_id = ?",
                         (r["artifact_id"],))
            conn.execute("DELETE FROM links WHERE artifact_id = ?", (r["artifact_id"],))
            conn.execute("DELETE FROM artifacts WHERE id = ?", (r["id"],))
            self.drop_pending_bytes(conn, r)

        self.report.purged_pending += await self.keyset_batches(
            STALE_PENDING_SQL, (self.pending_cutoff,), ("", 0), lambda r: (r["at"], r["id"]),
            remove,
        )

    async def unreferenced_blobs(self) -> None:
        def collect(conn: sqlite3.Connection, r: Any) -> None:
            tenant_id, sha, location = r["tenant_id"], r["sha256"], r["location"]
            ref = BlobRef(tenant_id, sha, int(r["size_bytes"]), location)
            inline = location == INLINE  # bytes and row change only together: no grace needed
            shared = not inline and self.box.blobs.content_addressed_for(location)
            if shared:
                # One file per content: an upload of the same bytes may be about to reference
                # it (it touched the file on its dedup hit), or a pending upload holds it.
                if self._file_is_stale(tenant_id, sha) is False:
                    return
                if self._pending_holds(conn, tenant_id, sha):
                    return
            if not execute(conn, "DELETE FROM blobs WHERE tenant_id = ? AND sha256 = ? "
                           "AND refs = 0", (tenant_id, sha)):
                return  # referenced again since it was selected
            if inline:
                freed = self.box.blobs.delete_in_transaction(conn, ref) or 0
            elif shared:
                freed = self._unlink(tenant_id, sha)
            else:
                freed = ref.size
                self.delete_after_commit(ref)
            self.report.deleted_blobs += 1
            self.report.reclaimed_bytes += freed

        await self.keyset_batches(
            UNREFERENCED_SQL, (self.unreferenced_cutoff,), ("", -1, ""),
            lambda r: (r["unreferenced_at"], r["tenant_id"], r["sha256"]), collect,
        )

    async def orphan_files(self) -> None:
        """Files with no blob row (an upload that crashed between its bytes and its row, a
        rejected upload, a replaced presigned PUT), once older than the grace."""
        stale = await asyncio.to_thread(self._scan_stale_files)
        self.report.disk_scanned = True
        candidates = await rowless(self.box, stale)  # cheap reads first; the writer re-checks
        await self.delete_unrowed_files(candidates)

    async def delete_unrowed_files(self, files: list[tuple[int, str]]) -> None:
        """`delete_unrowed_file` over a list, in bounded write transactions."""
        def batch(conn: sqlite3.Connection, start: int) -> int:
            """Handle files[start:] for at most BATCH files or BATCH_SECONDS; returns where
            it stopped."""
            began = time.monotonic()
            i, end = start, min(start + self.batch, len(files))
            while i < end:
                tenant_id, sha = files[i]
                i += 1
                self.delete_unrowed_file(conn, tenant_id, sha)
                if time.monotonic() - began > BATCH_SECONDS:
                    break
            return i

        i = 0
        while i < len(files):
            i = await self.write(lambda conn, start=i: batch(conn, start))
            if i < len(files):
                await self.pause()

    async def orphan_inline(self) -> None:
        """Inline bytes whose blob row is gone or names another store (only damage or a hand
        edit leaves them: they are written and deleted with their row)."""
        def batch(conn: sqlite3.Connection) -> int:
            freed = conn.execute(
                "DELETE FROM blob_data WHERE (tenant_id, sha256) IN (SELECT tenant_id, sha256 "
                f"FROM ({ORPHANS_SQL}) LIMIT ?) RETURNING length(data)", (self.batch,)).fetchall()
            self.report.deleted_blobs += len(freed)
            self.report.orphan_files += len(freed)
            self.report.reclaimed_bytes += sum(int(f[0]) for f in freed)
            return len(freed)

        while await self.write(batch) == self.batch and not self.dry_run:
            await self.pause()

    async def orphan_objects(self) -> None:
        """Objects of a store that gives each upload its own key (S3) that no row names (a
        crash between an object's completion and its commit, or between a commit and the
        deletion of a duplicate), once older than the grace: a key is fresh per upload and
        committed moments after it is complete, so an old key without a row never gains one.
        A pending presigned upload's key is named by its row from the start."""
        for store in self.box.blobs.stores():
            if store.content_addressed:
                continue
            batch: list[StoredBlob] = []
            async for blob in store.listing():
                if blob.stray or blob.mtime > self.mtime_cutoff:
                    continue
                batch.append(blob)
                if len(batch) >= self.batch:
                    await self._drop_rowless_objects(batch)
                    batch = []
            if batch:
                await self._drop_rowless_objects(batch)

    async def _drop_rowless_objects(self, listed: list[StoredBlob]) -> None:
        for blob in await rowless_objects(self.box, listed):
            ref = BlobRef(blob.tenant_id or 0, None, blob.size, blob.location)
            if not self.dry_run:
                await self.box.blobs.delete(ref)
            self.report.deleted_blobs += 1
            self.report.orphan_files += 1
            self.report.reclaimed_bytes += blob.size

    async def incomplete_uploads(self) -> None:
        """Multipart uploads a crash left incomplete, older than the grace (not local staging
        files: `temp_files`)."""
        if self.dry_run:
            return
        for store in self.box.blobs.stores():
            if store is not self.box.blobs.local:
                n, _size = await store.remove_incomplete(float(self.box.settings.orphan_grace_seconds))
                self.report.aborted_uploads += n

    def _scan_stale_files(self) -> list[tuple[int, str]]:
        out = []
        for info in self.box.blobs.local.iter_blobs():
            if info.mtime <= self.mtime_cutoff and not info.stray and info.sha256 is not None \
                    and info.tenant_id is not None:
                out.append((info.tenant_id, info.sha256))
        return out

    async def links(self) -> None:
        if self.dry_run:
            row = await self.box.db.fetchone(
                "SELECT COUNT(*) FROM links WHERE expires_at <= ?", (self.retention_cutoff,))
            self.report.dropped_links += int(row[0])
            return
        while True:
            n = await self.write(lambda conn: execute(
                conn, "DELETE FROM links WHERE link_id IN (SELECT link_id FROM links "
                "WHERE expires_at <= ? LIMIT ?)", (self.retention_cutoff, self.batch)))
            self.report.dropped_links += n
            if n < self.batch:
                return
            await self.pause()

    async def idempotency_keys(self) -> None:
        cutoff = iso_in(self.now, -self.box.settings.idempotency_seconds)
        if self.dry_run:
            row = await self.box.db.fetchone(
                "SELECT COUNT(*) FROM idempotency_keys WHERE created_at <= ?", (cutoff,))
            self.report.idempotency_keys = int(row[0])
            return
        while True:
            n = await self.write(lambda conn: execute(
                conn, "DELETE FROM idempotency_keys WHERE (tenant_id, idem_key, request_hash) IN "
                "(SELECT tenant_id, idem_key, request_hash FROM idempotency_keys "
                "WHERE created_at <= ? LIMIT ?)", (cutoff, self.batch)))
            self.report.idempotency_keys += n
            if n < self.batch:
                break
            await self.pause()
        await self.write(lambda conn: execute(
            conn, "DELETE FROM gc_runs WHERE started_at <= ?",
            (iso_in(self.now, -GC_RUNS_KEEP_DAYS * 86400),)))

    async def temp_files(self, min_age: float) -> None:
        blobs = self.box.blobs.local
        if self.dry_run:
            cutoff = time.time() - min_age
            files = size = 0
            for entry in blobs.iter_temp_files():
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue
                if st.st_mtime <= cutoff:
                    files += 1
                    size += st.st_size
        else:
            files, size = await asyncio.to_thread(blobs.remove_temp_files, min_age)
        self.report.temp_files, self.report.temp_bytes = files, size


async def run_gc(
    box: Box,
    *,
    dry_run: bool = False,
    scan_disk: bool = True,
    temp_min_age: float | None = None,
    batch: int = BATCH,
    actor: str | None = None,
    wait_for_lock: bool = True,
) -> GcReport:
    """One lifecycle run.

    `temp_min_age`: remove only temp files at least that many seconds old (default: the orphan
    grace; 0 removes all of them, which is only safe when no server runs). `scan_disk`: walk the
    store for files without a row (step 5). `actor` (e.g. "cli") records the run in the audit
    log. Raises GcBusy when `wait_for_lock` is False and another run holds the lock.
    """
    if temp_min_age is None:
        temp_min_age = float(box.settings.orphan_grace_seconds)
    async with gc_lock(box, wait_for_lock):
        run = _Run(box, dry_run, batch)
        run_id = None
        if not dry_run:
            run_id = await box.db.execute_write_fn(lambda conn: conn.execute(
                "INSERT INTO gc_runs (started_at) VALUES (?)", (run.now_iso,)).lastrowid)
        await run.expire()
        await run.purge()
        await run.stale_pending()
        await run.unreferenced_blobs()
        if scan_disk:
            await run.orphan_files()
            await run.orphan_inline()
            await run.orphan_objects()
            await run.incomplete_uploads()
        await run.links()
        await run.idempotency_keys()
        await run.temp_files(temp_min_age)
        r = run.report
        r.finished_at = iso(box.clock.now())
        if not dry_run:
            def finish(conn: sqlite3.Connection) -> None:
                conn.execute(
                    "UPDATE gc_runs SET finished_at = ?, expired = ?, purged_artifacts = ?, "
                    "purged_pending = ?, deleted_blobs = ?, reclaimed_bytes = ?, dropped_links = ? "
                    "WHERE id = ?",
                    (r.finished_at, r.expired, r.purged_artifacts, r.purged_pending, r.deleted_blobs,
                     r.reclaimed_bytes, r.dropped_links, run_id),
                )
                if actor is not None and r.did_anything:
                    record_audit(conn, r.finished_at, actor, "gc.run", None, None, {
                        k: v for k, v in r.as_dict().items()
                        if isinstance(v, int) and not isinstance(v, bool) and v})

            await box.db.execute_write_fn(finish)
        if r.did_anything:
            log.info(
                "gc%s: expired %d, purged %d artifacts and %d stale uploads, deleted %d blobs "
                "(%d bytes), dropped %d links, %d temp files",
                " (dry run)" if dry_run else "", r.expired, r.purged_artifacts, r.purged_pending,
                r.deleted_blobs, r.reclaimed_bytes, r.dropped_links, r.temp_files,
                extra={"gc": r.as_dict()},
            )
        return r


async def rowless(box: Box, files: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """The (tenant_id, sha256) pairs among local `files` that have no local blob row, looked up in batches
    on a reader (one indexed IN query per 500 files), so a store of millions of files costs the
    writer nothing. A snapshot answer: whoever deletes must re-check under the writer."""
    by_tenant: dict[int, list[str]] = {}
    for tenant_id, sha in files:
        by_tenant.setdefault(tenant_id, []).append(sha)
    out: list[tuple[int, str]] = []
    for tenant_id, shas in by_tenant.items():
        for start in range(0, len(shas), BATCH):
            chunk = shas[start:start + BATCH]
            marks = ",".join("?" * len(chunk))
            rows = await box.db.fetchall(
                f"SELECT sha256 FROM blobs WHERE tenant_id = ? AND sha256 IN ({marks}) "
                "AND location IS NULL",
                (tenant_id, *chunk),
            )
            known = {r["sha256"] for r in rows}
            out.extend((tenant_id, sha) for sha in chunk if sha not in known)
    return out


def rowless_objects_sql(n: int) -> str:
    """The rows naming any of `n` listed object locations. A listed object is never 'inline'
    (a store lists its own keys); the term says so to the planner, as blobs_by_location holds
    no inline blob (migration 7)."""
    marks = ",".join("?" * n)
    return (f"SELECT location FROM blobs WHERE location IN ({marks}) AND location != 'inline' "
            f"UNION ALL SELECT upload_location FROM artifacts WHERE upload_location IN ({marks})")


async def rowless_objects(box: Box, listed: list[StoredBlob]) -> list[StoredBlob]:
    """The listed objects no row names (a blob row's `location`, or a pending upload's
    `upload_location`), looked up 500 at a time on a reader through the location indexes."""
    out: list[StoredBlob] = []
    for start in range(0, len(listed), BATCH):
        chunk = listed[start:start + BATCH]
        locations = [b.location for b in chunk]
        rows = await box.db.fetchall(rowless_objects_sql(len(locations)), (*locations, *locations))
        named = {r[0] for r in rows}
        out.extend(b for b in chunk if b.location not in named)
    return out


async def remove_orphan_objects(box: Box, listed: list[StoredBlob]) -> tuple[int, int]:
    """Delete these listed objects if still no row names them (`check --repair`)."""
    run = _Run(box, dry_run=False, batch=BATCH)
    await run._drop_rowless_objects(listed)
    return run.report.orphan_files, run.report.reclaimed_bytes


async def remove_orphan_files(box: Box, files: list[tuple[int, str]]) -> tuple[int, int]:
    """Delete these row-less store files where the lifecycle rules allow it (older than the
    grace, no blob row, no pending upload holding them), in bounded write transactions.
    Returns (files, bytes) deleted. Used by `check --repair`."""
    run = _Run(box, dry_run=False, batch=BATCH)
    await run.delete_unrowed_files(files)
    return run.report.orphan_files, run.report.reclaimed_bytes


async def remove_orphan_inline(box: Box) -> tuple[int, int]:
    """Delete inline bytes no inline blob row names (`check --repair`): (blobs, bytes)."""
    run = _Run(box, dry_run=False, batch=BATCH)
    await run.orphan_inline()
    return run.report.orphan_files, run.report.reclaimed_bytes


def server_is_running(box: Box) -> bool:
    """Does a `serve` process hold this data directory (so uploads may be in flight)?"""

    return ServerLock(box.root).is_held_elsewhere()
