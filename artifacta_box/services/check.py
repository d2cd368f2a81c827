"""`artifacta-box check`: verify the store, and with `repair` fix what can be fixed safely.

What it verifies:
- every blob a row references (blob rows with refs > 0, and bytes a pending presigned upload
  is waiting to complete with) exists, with the recorded size and SHA-256;
- every committed artifact has its blob row;
- the counters: blobs.refs / blobs.live_refs against the artifact rows, and each tenant's
  storage_bytes against its distinct live content;
- no orphans: store files (and S3 objects) no row names (once older than the orphan grace;
  younger ones may belong to an upload in flight and are only counted), no stale temp files.
- no artifact page names an artifact that is gone (gc deletes pages with their artifact).

Local and inline blobs (an inline blob is present iff its blob_data row is) are always
rehashed; S3 objects are compared by size (one HEAD each) unless
`verify`, which streams every object back through SHA-256 (reading the whole bucket).

Repairs (`repair=True`) touch counters, rows and orphans only — a referenced blob is never
deleted: counters are recomputed inside a write transaction, a missing blob row is recreated
from its verified file, a pending upload whose bytes vanished goes back to "bytes not
arrived", orphans and stale temp files are removed by the lifecycle rules, dangling pages
deleted. Missing or corrupt
referenced blobs cannot be repaired here (restore them from a backup); they stay reported.

Safe beside a running server: work is paged, each comparison is one statement (one snapshot),
and a suspicious finding is re-read before it is reported.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from artifacta_box.clock import iso
from artifacta_box.context import Box
from artifacta_box.db import execute, fetchone
from artifacta_box.services import lifecycle
from artifacta_box.services.audit import record_audit
from artifacta_box.services.progress import NoProgress, Progress
from artifacta_box.storage import INLINE, BlobMissing, BlobRef, StoredBlob
from artifacta_box.storage.inline import ORPHANS_SQL

PAGE = 500

# Pages whose artifact row of the same tenant is gone (gc removes pages with their artifact).
DANGLING_PAGES_SQL = (
    "SELECT p.page_id, p.tenant_id, p.artifact_id FROM pages p "
    "WHERE NOT EXISTS (SELECT 1 FROM artifacts a WHERE a.artifact_id = p.artifact_id "
    "AND a.tenant_id = p.tenant_id) ORDER BY p.page_id"
)


@dataclass
class Problem:
    kind: str
    detail: str
    repaired: bool = False


@dataclass
class CheckReport:
    repair: bool = False
    blobs_verified: int = 0
    bytes_verified: int = 0
    blob_rows: int = 0
    tenants: int = 0
    files_on_disk: int = 0
    recent_orphans: int = 0       # row-less files younger than the grace (uploads in flight)
    recent_temp_files: int = 0    # temp files that may belong to uploads in flight
    problems: list[Problem] = field(default_factory=list)

    @property
    def unrepaired(self) -> list[Problem]:
        return [p for p in self.problems if not p.repaired]

    @property
    def ok(self) -> bool:
        return not self.unrepaired

    def add(self, kind: str, detail: str, repaired: bool = False) -> None:
        self.problems.append(Problem(kind, detail, repaired))

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        out["problem_count"] = len(self.problems)
        out["unrepaired_count"] = len(self.unrepaired)
        return out


class _Check:
    def __init__(self, box: Box, repair: bool, progress: Progress, verify: bool = False) -> None:
        self.box = box
        self.repair = repair
        self.verify = verify
        self.progress = progress
        self.report = CheckReport(repair=repair)
        self.mtime_cutoff = box.clock.time() - box.settings.orphan_grace_seconds

    # ------------------------------------------------------------------ referenced blobs

    async def blobs(self) -> None:
        """Verify every blob row's file and counters, page by page."""
        total = await self.box.db.fetchone(
            "SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM blobs WHERE refs > 0")
        self.progress.start(int(total[1]), "verifying blobs")
        try:
            last: tuple[int, str] = (-1, "")
            while True:
                rows = await self.box.db.fetchall(
                    """
                    SELECT b.tenant_id, b.sha256, b.size_bytes, b.refs, b.live_refs,
                           b.unreferenced_at, b.location,
                           (SELECT COUNT(*) FROM artifacts a WHERE a.tenant_id = b.tenant_id
                              AND a.content_hash = b.sha256 AND a.state != 'pending') AS want_refs,
                           (SELECT COUNT(*) FROM artifacts a WHERE a.tenant_id = b.tenant_id
                              AND a.content_hash = b.sha256 AND a.state = 'active') AS want_live
                    FROM blobs b WHERE (b.tenant_id, b.sha256) > (?, ?)
                    ORDER BY b.tenant_id, b.sha256 LIMIT ?
                    """,
                    (last[0], last[1], PAGE),
                )
                for r in rows:
                    self.report.blob_rows += 1
                    await self._counters(r)
                    if r["refs"] > 0 or r["want_refs"] > 0:
                        await self._verify_blob(BlobRef(r["tenant_id"], r["sha256"],
                                                        int(r["size_bytes"]), r["location"]))
                if len(rows) < PAGE:
                    break
                last = (rows[-1]["tenant_id"], rows[-1]["sha256"])
        finally:
            self.progress.finish()

    async def _counters(self, r: Any) -> None:
        refs_ok = r["refs"] == r["want_refs"] and r["live_refs"] == r["want_live"]
        time_ok = r["want_refs"] > 0 or r["unreferenced_at"] is not None
        if refs_ok and time_ok:
            return
        label = f"blob {r['sha256'][:16]}… of tenant {r['tenant_id']}"
        detail = (f"{label}: refs {r['refs']} (should be {r['want_refs']}), live_refs "
                  f"{r['live_refs']} (should be {r['want_live']})")
        if refs_ok:
            detail = f"{label}: unreferenced but without an unreferenced_at time (gc would keep it)"
        repaired = False
        if self.repair:
            repaired = await self._fix_blob_counters(r["tenant_id"], r["sha256"])
        self.report.add("blob_counters", detail, repaired)

    async def _fix_blob_counters(self, tenant_id: int, sha256: str) -> bool:
        now_iso = iso(self.box.clock.now())

        def fix(conn: sqlite3.Connection) -> None:
            row = fetchone(
                conn,
                "SELECT (SELECT COUNT(*) FROM artifacts a WHERE a.tenant_id = ? AND "
                "a.content_hash = ? AND a.state != 'pending') AS want_refs, "
                "(SELECT COUNT(*) FROM artifacts a WHERE a.tenant_id = ? AND a.content_hash = ? "
                "AND a.state = 'active') AS want_live",
                (tenant_id, sha256, tenant_id, sha256),
            )
            conn.execute(
                "UPDATE blobs SET refs = ?, live_refs = ?, unreferenced_at = CASE WHEN ? > 0 "
                "THEN NULL ELSE COALESCE(unreferenced_at, ?) END WHERE tenant_id = ? AND sha256 = ?",
                (row["want_refs"], row["want_live"], row["want_refs"], now_iso, tenant_id, sha256),
            )

        await self.box.db.execute_write_fn(fix)
        return True

    async def _verify_blob(self, ref: BlobRef) -> None:
        """Read a referenced blob back from its store and hash it. An object store's blobs
        are only compared by size unless `verify` (rehashing a bucket reads all of it)."""
        tenant_id, sha256, size = ref.tenant_id, ref.sha256, ref.size
        path = self.box.blobs.describe(ref)
        try:
            if self.verify or self.box.blobs.content_addressed_for(ref.location):
                digest, actual = await self.box.blobs.verify(ref)
            else:
                st = await self.box.blobs.stat(ref)
                if st is None:
                    raise BlobMissing(path)
                digest, actual = sha256, st.size
        except BlobMissing:
            if await self._still_referenced(tenant_id, sha256):
                self.report.add("missing_blob",
                                f"blob {sha256} of tenant {tenant_id} is referenced but {path} "
                                "does not exist; restore it from a backup")
            self.progress.advance(size)
            return
        self.progress.advance(size)
        self.report.blobs_verified += 1
        self.report.bytes_verified += actual
        if actual == size and digest == sha256:
            return
        if not await self._still_referenced(tenant_id, sha256):
            return
        if actual != size:
            self.report.add("size_mismatch", f"blob {path} has {actual} bytes, the database "
                            f"says {size}; restore it from a backup")
        else:
            self.report.add("hash_mismatch", f"blob {path} is corrupt: its SHA-256 is {digest}; "
                            "restore it from a backup")

    async def _still_referenced(self, tenant_id: int, sha256: str) -> bool:
        """Re-read before reporting: gc may have collected the blob since the page was read."""
        row = await self.box.db.fetchone(
            "SELECT refs FROM blobs WHERE tenant_id = ? AND sha256 = ?", (tenant_id, sha256))
        return row is not None and row["refs"] > 0

    # ------------------------------------------------------------------ rows without blob rows

    async def artifacts_without_blob_rows(self) -> None:
        rows = await self.box.db.fetchall(
            """
            SELECT a.tenant_id, a.content_hash, COUNT(*) AS n, MAX(a.size_bytes) AS size
            FROM artifacts a
            WHERE a.content_hash IS NOT NULL AND a.state != 'pending' AND NOT EXISTS
                (SELECT 1 FROM blobs b WHERE b.tenant_id = a.tenant_id AND b.sha256 = a.content_hash)
            GROUP BY a.tenant_id, a.content_hash
            """
        )
        for r in rows:
            tenant_id, sha, size = r["tenant_id"], r["content_hash"], int(r["size"])
            detail = f"{r['n']} artifact(s) of tenant {tenant_id} reference blob {sha} which has no row"
            repaired = False
            if self.repair:
                repaired = await self._recreate_blob_row(tenant_id, sha, size)
                if not repaired:
                    detail += " and whose file is missing or corrupt; restore it from a backup"
            self.report.add("missing_blob_row", detail, repaired)

    async def _recreate_blob_row(self, tenant_id: int, sha256: str, size: int) -> bool:
        """From the verified local file at the content address, or else from an object of a
        store with a key per upload that no row names, has the right size and hashes to the
        content (a key cannot be derived from the hash, so the candidates are rehashed)."""
        location = await self._find_unrowed_copy(tenant_id, sha256, size)
        if location is False:
            return False
        now_iso = iso(self.box.clock.now())
        await self.box.db.execute_write_fn(lambda conn: execute(
            conn, "INSERT OR IGNORE INTO blobs (tenant_id, sha256, size_bytes, refs, live_refs, "
            "created_at, location) VALUES (?, ?, ?, 0, 0, ?, ?)",
            (tenant_id, sha256, size, now_iso, location)))
        # Counters (and the tenant's usage, below) are recomputed from the artifact rows.
        return await self._fix_blob_counters(tenant_id, sha256)

    async def _find_unrowed_copy(self, tenant_id: int, sha256: str,
                                 size: int) -> str | None | bool:
        """The location of intact bytes of this content that no row names; False if none."""
        try:
            if await self.box.blobs.local.verify(BlobRef(tenant_id, sha256, size, None)) == (
                    sha256, size):
                return None
        except BlobMissing:
            pass
        inline = self.box.blobs.inline
        if inline is not None:
            try:
                if await inline.verify(BlobRef(tenant_id, sha256, size, INLINE)) == (sha256, size):
                    return INLINE
            except BlobMissing:
                pass
        for store in self.box.blobs.stores():
            if store.content_addressed:
                continue
            candidates = [b async for b in store.listing()
                          if b.tenant_id == tenant_id and b.size == size]
            for blob in await lifecycle.rowless_objects(self.box, candidates):
                ref = BlobRef(tenant_id, None, size, blob.location)
                try:
                    if await store.verify(ref) == (sha256, size):
                        return blob.location
                except BlobMissing:
                    continue
        return False

    # ------------------------------------------------------------------ pending upload bytes

    async def pending_uploads(self) -> None:
        rows = await self.box.db.fetchall(
            "SELECT artifact_id, tenant_id, upload_sha256, upload_size, upload_location "
            "FROM artifacts WHERE state = 'pending' AND upload_sha256 IS NOT NULL"
        )
        for r in rows:
            tenant_id, sha = r["tenant_id"], r["upload_sha256"]
            ref = BlobRef(tenant_id, sha, r["upload_size"] or 0, r["upload_location"])
            path = self.box.blobs.describe(ref)
            try:
                digest, actual = await self.box.blobs.verify(ref)
            except BlobMissing:
                digest, actual = None, -1
            if digest == sha and (r["upload_size"] is None or actual == r["upload_size"]):
                continue
            still = await self.box.db.fetchone(
                "SELECT 1 FROM artifacts WHERE artifact_id = ? AND state = 'pending' "
                "AND upload_sha256 = ?", (r["artifact_id"], sha))
            if still is None:
                continue  # completed or removed meanwhile
            detail = (f"pending upload {r['artifact_id']} has no intact bytes at {path}; "
                      "its PUT must be repeated")
            repaired = False
            if self.repair:
                repaired = await self.box.db.execute_write_fn(lambda conn, r=r, sha=sha: execute(
                    conn, "UPDATE artifacts SET upload_sha256 = NULL, upload_size = NULL "
                    "WHERE artifact_id = ? AND state = 'pending' AND upload_sha256 = ?",
                    (r["artifact_id"], sha)) > 0)
                if repaired:
                    detail += " (reset: complete now answers upload_not_found until it is)"
            self.report.add("missing_upload_bytes", detail, repaired)

    # ------------------------------------------------------------------ tenants' usage

    async def tenant_usage(self) -> None:
        tenants = await self.box.db.fetchall("SELECT tenant_id, name FROM tenants ORDER BY tenant_id")
        self.report.tenants = len(tenants)
        for t in tenants:
            row = await self.box.db.fetchone(_TENANT_USAGE_SQL, (t["tenant_id"], t["tenant_id"]))
            if row is None or row["stored"] == row["want"]:
                continue
            detail = (f"tenant {t['name']}: storage_bytes is {row['stored']:,}, its live content "
                      f"adds up to {row['want']:,}")
            repaired = False
            if self.repair:
                await self.box.db.execute_write_fn(
                    lambda conn, tenant_id=t["tenant_id"]: _fix_tenant_usage(conn, tenant_id))
                repaired = True
            self.report.add("tenant_storage", detail, repaired)

    # ------------------------------------------------------------------ orphans and temp files

    async def orphans(self) -> None:
        local = self.box.blobs.local
        files = await asyncio.to_thread(lambda: list(local.iter_blobs()))
        self.report.files_on_disk = len(files)
        pending = {
            (r["tenant_id"], r["upload_sha256"])
            for r in await self.box.db.fetchall(
                "SELECT tenant_id, upload_sha256 FROM artifacts WHERE state = 'pending' "
                "AND upload_sha256 IS NOT NULL AND upload_location IS NULL")
        }
        sizes: dict[tuple[int, str], tuple[int, float]] = {}
        for info in files:
            if info.stray or info.sha256 is None or info.tenant_id is None:
                self.report.add("stray_file", f"{info.name} is not a blob (its name is not a "
                                "SHA-256); move it out of the data directory")
                continue
            sizes[(info.tenant_id, info.sha256)] = (info.size, info.mtime)
        stale: list[tuple[int, str, int]] = []
        for tenant_id, sha in await lifecycle.rowless(self.box, list(sizes)):
            if (tenant_id, sha) in pending:
                continue
            size, mtime = sizes[(tenant_id, sha)]
            if mtime > self.mtime_cutoff:
                self.report.recent_orphans += 1
            else:
                stale.append((tenant_id, sha, size))
        if not stale:
            return
        removed = set()
        if self.repair:
            await lifecycle.remove_orphan_files(self.box, [(t, s) for t, s, _ in stale])
            removed = {(t, s) for t, s, _ in stale if not local.exists(t, s)}
        for tenant_id, sha, size in stale:
            self.report.add(
                "orphan_file",
                f"{local.path(tenant_id, sha)} ({size:,} bytes) has no blob row and no "
                "upload holds it",
                (tenant_id, sha) in removed,
            )

    async def orphan_inline(self) -> None:
        """Inline bytes (blob_data rows) that no inline blob row names: nothing serves them
        (written and deleted with their row, so only damage or a hand edit leaves them)."""
        rows = await self.box.db.fetchall(ORPHANS_SQL)
        if not rows:
            return
        removed = 0
        if self.repair:
            removed = (await lifecycle.remove_orphan_inline(self.box))[0]
        for r in rows:
            self.report.add("orphan_inline", f"inline bytes {r['sha256']} of tenant "
                            f"{r['tenant_id']} ({r['size']:,} bytes, table blob_data) have no "
                            "inline blob row", removed > 0)

    async def dangling_pages(self) -> None:
        """Artifact pages whose artifact row (of the same tenant) is gone: gc deletes an
        artifact's pages with it, so only damage or a hand edit leaves them; their URLs answer
        404 like any unknown page, but the rows would hold a slug forever."""
        rows = await self.box.db.fetchall(DANGLING_PAGES_SQL)
        if not rows:
            return
        removed = 0
        if self.repair:
            ids = [r["page_id"] for r in rows]

            def drop(conn: sqlite3.Connection) -> int:
                return sum(conn.execute("DELETE FROM pages WHERE page_id = ?", (i,)).rowcount
                           for i in ids)

            removed = await self.box.db.execute_write_fn(drop)
        for r in rows:
            self.report.add("dangling_page", f"page {r['page_id']} of tenant {r['tenant_id']} "
                            f"names artifact {r['artifact_id']}, which no longer exists",
                            removed > 0)

    async def orphan_objects(self) -> None:
        """Objects of stores with a key per upload (S3) that no row names."""
        for store in self.box.blobs.stores():
            if store.content_addressed:
                continue
            listed: list[StoredBlob] = []
            async for blob in store.listing():
                self.report.files_on_disk += 1
                if blob.stray:
                    self.report.add("stray_file", f"{blob.name} is not a blob the box wrote; "
                                    "move it out of the bucket's blobs/ prefix")
                    continue
                listed.append(blob)
            stale = []
            for blob in await lifecycle.rowless_objects(self.box, listed):
                if blob.mtime > self.mtime_cutoff:
                    self.report.recent_orphans += 1
                else:
                    stale.append(blob)
            removed = 0
            if self.repair and stale:
                removed, _ = await lifecycle.remove_orphan_objects(self.box, stale)
            for blob in stale:
                self.report.add("orphan_file", f"{blob.name} ({blob.size:,} bytes) has no blob "
                                "row and no upload holds it", removed > 0)

    async def temp_files(self) -> None:
        running = lifecycle.server_is_running(self.box)
        min_age = float(self.box.settings.orphan_grace_seconds) if running else 0.0
        cutoff = time.time() - min_age
        stale = []
        for entry in self.box.blobs.local.iter_temp_files():
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue
            if st.st_mtime <= cutoff:
                stale.append((entry, st.st_size))
            else:
                self.report.recent_temp_files += 1
        for entry, size in stale:
            repaired = False
            if self.repair:
                try:
                    entry.unlink()
                except FileNotFoundError:
                    pass
                repaired = True
            self.report.add("temp_leftover", f"temporary file {entry} ({size:,} bytes) is a "
                            "leftover of an interrupted upload", repaired)


_TENANT_USAGE_SQL = """
SELECT (SELECT storage_bytes FROM tenants WHERE tenant_id = ?) AS stored,
       (SELECT COALESCE(SUM(sz), 0) FROM
           (SELECT MAX(size_bytes) AS sz FROM artifacts
            WHERE tenant_id = ? AND state = 'active' AND content_hash IS NOT NULL
            GROUP BY content_hash)) AS want
"""


def _fix_tenant_usage(conn: sqlite3.Connection, tenant_id: int) -> None:
    """storage_bytes := the distinct live content, as the write transaction sees it."""
    fixed = fetchone(conn, _TENANT_USAGE_SQL, (tenant_id, tenant_id))
    conn.execute("UPDATE tenants SET storage_bytes = ? WHERE tenant_id = ?",
                 (fixed["want"], tenant_id))


async def check_store(box: Box, repair: bool = False, progress: Progress | None = None,
                      verify: bool = False) -> CheckReport:
    """Run every verification; with `repair`, fix counters, rows, orphans and temp files;
    with `verify`, rehash the blobs of an object store too (local files always are)."""
    c = _Check(box, repair, progress or NoProgress(), verify)
    await c.blobs()
    await c.artifacts_without_blob_rows()
    await c.pending_uploads()
    await c.tenant_usage()
    await c.orphans()
    await c.orphan_inline()
    await c.dangling_pages()
    await c.orphan_objects()
    await c.temp_files()
    fixed = [p for p in c.report.problems if p.repaired]
    if fixed:
        kinds: dict[str, int] = {}
        for p in fixed:
            kinds[p.kind] = kinds.get(p.kind, 0) + 1
        at = iso(box.clock.now())
        await box.db.execute_write_fn(
            lambda conn: record_audit(conn, at, "cli", "check.repair", None, None, kinds))
    return c.report
