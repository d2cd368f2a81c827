"""`artifacta-box backup DEST` and `artifacta-box restore SRC`.

Backup, safe while the server runs and takes writes:
1. `VACUUM INTO` writes a consistent snapshot of the database (one read transaction; writers
   are not blocked under WAL);
2. every blob file the snapshot references (blob rows with refs > 0, and bytes a pending presigned
   upload holds) is copied while being hashed, so a corrupt source blob fails the backup
   instead of being copied silently. A referenced blob cannot vanish meanwhile: gc deletes a
   blob only after it has been unreferenced for the orphan grace (default 1 h). Inline blobs
   (storage/inline.py) are inside the snapshot: each is rehashed there and counted in the
   manifest (`blobs.inline`);
3. the secret key file, so signed URLs and cursors stay valid after a restore;
4. `manifest.json`, written last: a backup without it is incomplete and restore refuses it.

Layout of DEST: `manifest.json`, `artifacta.db`, `secret.key` (when the secret is not in the
config), `blobs/<tenant>/<aa>/<bb>/<sha256>` — the data directory's own layout.

Restore copies the blobs (verifying each hash), the secret and then the database into a data
directory no server is using — it holds the server lock while it works, so none can start —
and refuses a non-empty one unless told to replace it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from artifacta_box import __version__
from artifacta_box.clock import iso
from artifacta_box.config import Settings
from artifacta_box.context import Box
from artifacta_box.datadir import DB_FILE, PRIVATE_DIR, SECRET_FILE, DataDirError, ServerLock
from artifacta_box.db import connect_sync
from artifacta_box.db.migrations import SCHEMA_VERSION, current_version
from artifacta_box.services.audit import record_audit
from artifacta_box.services.progress import NoProgress, Progress
from artifacta_box.storage import (
    BlobMissing,
    BlobRef,
    LocalBlobStore,
    fsync_dir,
    hash_file,
    write_file_durably,
)

MANIFEST = "manifest.json"
OBJECTS = "objects.jsonl"
FORMAT = "artifacta-box-backup"
FORMAT_VERSION = 1


class BackupError(Exception):
    """The backup or restore cannot proceed; the message says why and what to do."""


# ---------------------------------------------------------------------------- helpers


def _copy_verified(src: Path, dest: Path, sha256: str, size: int | None) -> int:
    """Copy src to dest (via a temp name, fsynced, renamed) while hashing; the content must
    hash to `sha256` (and have `size` bytes). Returns the bytes copied."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    try:
        with open(tmp, "wb") as fout:
            digest, n = hash_file(src, copy_to=fout)
            fout.flush()
            os.fsync(fout.fileno())
        if digest != sha256 or (size is not None and n != size):
            raise BackupError(
                f"{src} is corrupt (SHA-256 {digest}, {n} bytes; expected {sha256}"
                f"{'' if size is None else f', {size} bytes'}); run `artifacta-box check`"
            )
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return n


def _referenced_blobs(conn: sqlite3.Connection) -> list[tuple[int, str, int | None]]:
    """(tenant_id, sha256, size) of every local blob file a database references (rows whose
    location is NULL: the local content address; a backup made before locations existed has
    only those)."""
    has_locations = any(r[1] == "location" for r in conn.execute("PRAGMA table_info(blobs)"))
    local, pending_local = ("AND location IS NULL", "AND upload_location IS NULL") \
        if has_locations else ("", "")
    rows = conn.execute(
        f"SELECT tenant_id, sha256, size_bytes FROM blobs WHERE refs > 0 {local} "
        "UNION SELECT tenant_id, upload_sha256, upload_size FROM artifacts "
        f"WHERE state = 'pending' AND upload_sha256 IS NOT NULL {pending_local} "
        "AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.tenant_id = artifacts.tenant_id "
        f"AND b.sha256 = artifacts.upload_sha256 AND b.refs > 0 {local.replace('AND ', 'AND b.')}) "
        "ORDER BY 1, 2"
    ).fetchall()
    return [(int(r[0]), r[1], None if r[2] is None else int(r[2])) for r in rows]


def _verify_inline(conn: sqlite3.Connection, where: str) -> tuple[int, int]:
    """(count, bytes) of the inline blobs a database holds (storage/inline.py), each rehashed
    against its name and its row's size: they travel inside the database file, and a corrupt
    one fails the backup (or the restore) like a corrupt file. A database from before inline
    blobs has none."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'blob_data'").fetchone() is None:
        return 0, 0
    count = total = 0
    for tenant_id, sha, size, data in conn.execute(
            "SELECT d.tenant_id, d.sha256, b.size_bytes, d.data FROM blob_data d "
            "LEFT JOIN blobs b ON b.tenant_id = d.tenant_id AND b.sha256 = d.sha256 "
            "ORDER BY d.tenant_id, d.sha256"):
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha or (size is not None and len(data) != size):
            raise BackupError(
                f"inline blob {sha} of tenant {tenant_id} in {where} is corrupt (SHA-256 "
                f"{digest}, {len(data)} bytes; expected {size} bytes); run `artifacta-box check`")
        count += 1
        total += len(data)
    missing = conn.execute(
        "SELECT b.tenant_id, b.sha256 FROM blobs b WHERE b.location = 'inline' AND b.refs > 0 "
        "AND NOT EXISTS (SELECT 1 FROM blob_data d WHERE d.tenant_id = b.tenant_id "
        "AND d.sha256 = b.sha256) LIMIT 1").fetchone()
    if missing is not None:
        raise BackupError(f"inline blob {missing[1]} of tenant {missing[0]} in {where} has no "
                          "bytes (table blob_data); run `artifacta-box check`")
    return count, total


def _object_refs(conn: sqlite3.Connection) -> list[BlobRef]:
    """Every referenced blob a database names in an object store (location 's3:...')."""
    if not any(r[1] == "location" for r in conn.execute("PRAGMA table_info(blobs)")):
        return []
    rows = conn.execute(
        "SELECT tenant_id, sha256, size_bytes, location FROM blobs WHERE refs > 0 "
        "AND location LIKE 's3:%' ORDER BY tenant_id, sha256").fetchall()
    return [BlobRef(int(r[0]), r[1], int(r[2]), r[3]) for r in rows]


async def _copy_object(box: Box, ref: BlobRef, dest: Path) -> int:
    """Stream an object into `dest` (a temp name, fsynced, renamed) through SHA-256."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    h, n = hashlib.sha256(), 0
    try:
        reader = await box.blobs.open(ref, 0, ref.size)
        try:
            with open(tmp, "wb") as fout:  # noqa: ASYNC230 - one write per 1 MiB chunk
                async for chunk in reader:
                    h.update(chunk)
                    fout.write(chunk)
                    n += len(chunk)
                fout.flush()
                os.fsync(fout.fileno())
        finally:
            await reader.aclose()
        if h.hexdigest() != ref.sha256 or n != ref.size:
            raise BackupError(f"{box.blobs.describe(ref)} is corrupt (SHA-256 {h.hexdigest()}, "
                              f"{n} bytes; expected {ref.sha256}, {ref.size} bytes); run "
                              "`artifacta-box check --verify`")
        os.replace(tmp, dest)
    except BlobMissing:
        raise BackupError(f"{box.blobs.describe(ref)} is missing (gc deleted it, or the bucket "
                          "lost it); run `artifacta-box check`") from None
    finally:
        tmp.unlink(missing_ok=True)
    return n


def _counts(conn: sqlite3.Connection) -> dict[str, int]:
    out = {"tenants": conn.execute("SELECT COUNT(*) FROM tenants").fetchone()[0]}
    for state in ("active", "pending", "expired", "deleted"):
        out[f"artifacts_{state}"] = conn.execute(
            "SELECT COUNT(*) FROM artifacts WHERE state = ?", (state,)).fetchone()[0]
    return out


# ---------------------------------------------------------------------------- backup


async def backup(box: Box, dest: Path, progress: Progress | None = None,
                 copy_objects: bool = False) -> dict[str, Any]:
    """Write a complete backup of the box into `dest` (a new or empty directory).

    Blobs in an object store (S3) are named in `objects.jsonl` (tenant, sha256, size,
    location); with `copy_objects` each is also streamed into the backup's blob layout
    (verified by its hash), so the backup holds every byte."""
    progress = progress or NoProgress()
    dest = dest.expanduser().resolve()
    root = box.root.resolve()
    if dest == root or root in dest.parents:
        raise BackupError(f"the backup destination {dest} is inside the data directory {root}; "
                          "choose a directory elsewhere (ideally on another disk)")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupError(f"the backup destination {dest} exists and is not an empty directory")
    dest.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    os.chmod(dest, PRIVATE_DIR)  # an empty directory made beforehand: the backup is private too

    created_at = iso(box.clock.now())
    db_copy = dest / DB_FILE
    await asyncio.to_thread(_snapshot, Path(box.db.path), db_copy)

    def inspect() -> tuple[Any, ...]:
        conn = connect_sync(db_copy)
        try:
            return (_referenced_blobs(conn), _object_refs(conn),
                    _verify_inline(conn, "the snapshot"), _counts(conn), current_version(conn))
        finally:
            conn.close()

    # In a thread: rehashing the inline blobs reads them all.
    blobs, objects, inline, counts, schema_version = await asyncio.to_thread(inspect)

    total = sum(size or 0 for _, _, size in blobs)
    progress.start(total, "copying blobs")
    copied_bytes = 0
    dest_store = LocalBlobStore(dest)
    try:
        for tenant_id, sha, size in blobs:
            src = box.blobs.local.path(tenant_id, sha)
            try:
                copied_bytes += await asyncio.to_thread(
                    _copy_verified, src, dest_store.path(tenant_id, sha), sha, size)
            except FileNotFoundError:
                raise BackupError(
                    f"blob {src} disappeared while the backup was running (gc deleted it: the "
                    "backup took longer than [retention] orphan_grace); run the backup again"
                ) from None
            progress.advance(size or 0)
    finally:
        progress.finish()
    objects_manifest = await _back_up_objects(box, dest, dest_store, objects, copy_objects,
                                              progress)

    secret_src = box.root / SECRET_FILE
    secret_included = secret_src.is_file()
    if secret_included:
        await asyncio.to_thread(shutil.copy2, secret_src, dest / SECRET_FILE)
        os.chmod(dest / SECRET_FILE, 0o600)

    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "artifacta_box_version": __version__,
        "schema_version": schema_version,
        "created_at": created_at,
        "source_data_dir": str(root),
        "database": {"file": DB_FILE, "size": db_copy.stat().st_size,
                     "sha256": (await asyncio.to_thread(hash_file, db_copy))[0]},
        "blobs": {"count": len(blobs), "bytes": copied_bytes,
                  "inline": {"count": inline[0], "bytes": inline[1]},
                  **({"objects": objects_manifest} if objects_manifest else {})},
        "secret_key_included": secret_included,
        **counts,
    }
    await asyncio.to_thread(_write_manifest, dest, manifest)
    at = iso(box.clock.now())
    await box.db.execute_write_fn(lambda conn: record_audit(
        conn, at, "cli", "box.backup", None, str(dest),
        {"blobs": len(blobs), "bytes": copied_bytes, "artifacts_active": counts["artifacts_active"]}))
    return {"destination": str(dest), **manifest}


async def _back_up_objects(box: Box, dest: Path, dest_store: LocalBlobStore,
                           objects: list[BlobRef], copy: bool,
                           progress: Progress) -> dict[str, Any] | None:
    """objects.jsonl (written before the manifest), and with `copy` the objects themselves."""
    if not objects:
        return None
    lines = "".join(json.dumps({"tenant_id": r.tenant_id, "sha256": r.sha256, "size": r.size,
                                "location": r.location}) + "\n" for r in objects)
    await asyncio.to_thread(write_file_durably, dest / OBJECTS, lines)
    total = sum(r.size for r in objects)
    copied = 0
    if copy:
        progress.start(total, "copying objects")
        try:
            for ref in objects:
                copied += await _copy_object(box, ref, dest_store.path(ref.tenant_id, ref.sha256))
                progress.advance(ref.size)
        finally:
            progress.finish()
    store = box.settings.s3
    return {"backend": "s3", "file": OBJECTS, "count": len(objects), "bytes": total,
            "copied": copy, "endpoint": store.endpoint if store else None,
            "bucket": store.bucket if store else None, "prefix": store.prefix if store else None}


def _snapshot(src: Path, dest: Path) -> None:
    conn = connect_sync(src)
    try:
        conn.execute("VACUUM INTO ?", (str(dest),))
    finally:
        conn.close()
    # The copy needs only what it references: blob rows that no row uses any more would point
    # at files the backup does not carry.
    copy = connect_sync(dest)
    try:
        copy.execute("DELETE FROM blobs WHERE refs = 0")
        if copy.execute("SELECT 1 FROM sqlite_master WHERE name = 'blob_data'").fetchone():
            # ... and inline bytes go with their row
            copy.execute("DELETE FROM blob_data WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE "
                         "b.tenant_id = blob_data.tenant_id AND b.sha256 = blob_data.sha256 "
                         "AND b.location = 'inline')")
        # Litestream's own state must not travel into another box (its replica is the box's).
        for table in ("_litestream_seq", "_litestream_lock"):
            copy.execute(f"DROP TABLE IF EXISTS {table}")
    finally:
        copy.close()
    with open(dest, "rb+") as fh:
        os.fsync(fh.fileno())


def _write_manifest(dest: Path, manifest: dict[str, Any]) -> None:
    write_file_durably(dest / MANIFEST, json.dumps(manifest, indent=2) + "\n")


# ---------------------------------------------------------------------------- restore


def read_manifest(src: Path) -> dict[str, Any]:
    path = src / MANIFEST
    if not src.is_dir():
        raise BackupError(f"{src} is not a directory made by `artifacta-box backup`")
    if not path.is_file():
        raise BackupError(f"{src} has no {MANIFEST}: it is not a backup, or the backup did not "
                          "finish; make a new one")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"{path} cannot be read: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{path} is not an artifacta-box backup manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(f"{path} has backup format {manifest.get('format_version')!r}; this "
                          f"artifacta-box reads format {FORMAT_VERSION}")
    if int(manifest.get("schema_version", 0)) > SCHEMA_VERSION:
        raise BackupError(f"the backup's database schema ({manifest.get('schema_version')}) is "
                          f"newer than this artifacta-box understands ({SCHEMA_VERSION}); "
                          "restore it with a newer artifacta-box")
    return manifest


def _holds_a_box(root: Path) -> bool:
    if (root / DB_FILE).exists():
        return True
    blobs = root / "blobs"
    return blobs.is_dir() and any(p.is_file() for p in blobs.rglob("*"))


async def restore(settings: Settings, src: Path, force: bool = False,
                  progress: Progress | None = None) -> dict[str, Any]:
    """Restore the backup in `src` into settings' data directory."""
    progress = progress or NoProgress()
    src = src.expanduser().resolve()
    manifest = read_manifest(src)
    root = settings.data_path
    db_src = src / manifest["database"]["file"]
    if not db_src.is_file() or (await asyncio.to_thread(hash_file, db_src))[0] != \
            manifest["database"]["sha256"]:
        raise BackupError(f"{db_src} is missing or does not match the manifest; the backup is "
                          "damaged")
    if (root / LITESTREAM_STATE).exists():
        raise BackupError(
            f"{root / DB_FILE} is replicated by Litestream ({root / LITESTREAM_STATE} exists): "
            "stop the service, remove that directory, restore, then start the service again "
            "(Litestream replicates the restored database from a new snapshot); to recover "
            "from the replica instead, use `litestream restore` (README, \"Scaling out\")")
    objects = (manifest.get("blobs") or {}).get("objects")
    copied_objects: list[tuple[int, str, int | None]] = []
    if objects:
        listed = await asyncio.to_thread(_read_objects, src / objects["file"])
        if objects.get("copied"):
            copied_objects = [(r.tenant_id, r.sha256 or "", r.size) for r in listed]
        else:
            await _check_objects_exist(settings, objects, listed)
    made = _first_missing(root)  # removed again if the restore fails: nothing half-made stays
    try:
        root.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    except OSError as exc:
        raise DataDirError(f"storage.data_dir: cannot create {root}: {exc.strerror}") from None
    lock = ServerLock(root)
    lock_was_there = lock.path.exists()
    try:
        lock.acquire()
    except DataDirError:
        raise BackupError(f"{root} is live: a server is running on it; stop it before "
                          "restoring into it") from None
    try:
        try:
            blobs, restored_bytes = await asyncio.to_thread(
                _restore_files, root, src, db_src, manifest, force, progress, copied_objects)
        except BaseException:
            if made is not None:
                shutil.rmtree(made, ignore_errors=True)
            elif not lock_was_there:
                lock.path.unlink(missing_ok=True)
            raise
        # Opening the box migrates an older backup's schema and puts the database in WAL mode.
        async with Box.opened(settings) as box:
            at = iso(box.clock.now())
            await box.db.execute_write_fn(lambda conn: record_audit(
                conn, at, "cli", "box.restore", None, str(src),
                {"backup_created_at": manifest.get("created_at"), "blobs": blobs,
                 "bytes": restored_bytes}))
    finally:
        lock.release()
    return {"source": str(src), "data_dir": str(root), "blobs": blobs, "bytes": restored_bytes,
            "backup_created_at": manifest.get("created_at"),
            **{k: v for k, v in manifest.items() if k.startswith("artifacts_") or k == "tenants"}}


STAGING = "restore.partial"
LITESTREAM_STATE = f".{DB_FILE}-litestream"  # Litestream's state directory beside the database


def _make_objects_local(db: Path) -> None:
    """The restored rows of copied objects name their local files (NULL location); a pending
    upload whose bytes stayed in the bucket must be PUT again."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN")
        conn.execute("UPDATE blobs SET location = NULL WHERE location LIKE 's3:%'")
        conn.execute("UPDATE artifacts SET upload_location = NULL, upload_sha256 = NULL, "
                     "upload_size = NULL WHERE upload_location LIKE 's3:%'")
        conn.execute("COMMIT")
    finally:
        conn.close()


def _first_missing(path: Path) -> Path | None:
    """The outermost directory that `path.mkdir(parents=True)` would create (None: it exists)."""
    missing = None
    for candidate in (path, *path.parents):
        if candidate.exists():
            break
        missing = candidate
    return missing


def _read_objects(path: Path) -> list[BlobRef]:
    try:
        return [BlobRef(int(d["tenant_id"]), d["sha256"], int(d["size"]), d["location"])
                for d in map(json.loads, path.read_text().splitlines()) if d]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"{path} cannot be read ({exc}); the backup is damaged") from None


async def _check_objects_exist(settings: Settings, objects: dict[str, Any],
                               listed: list[BlobRef]) -> None:
    """A backup whose objects were not copied restores a database that names them in the
    bucket it was made from: refuse unless this box is configured with it and holds them all."""
    where = f"s3://{objects.get('bucket')}/{objects.get('prefix') or ''}"
    if settings.s3 is None:
        raise BackupError(
            f"the backup's {len(listed):,} blobs in {where} were not copied into it: restore "
            "with storage.backend = \"s3\" and the [s3] settings of that bucket, or make the "
            "backup with --copy-objects")
    from artifacta_box.storage.s3 import S3Client
    from artifacta_box.storage.s3.blobstore import BLOB_PREFIX

    async with S3Client(settings.s3) as client:
        present = {"s3:" + i.key async for i in client.list_objects(BLOB_PREFIX)}
    missing = [r for r in listed if r.location not in present]
    if missing:
        raise BackupError(
            f"{len(missing):,} of the backup's {len(listed):,} objects are missing from "
            f"{client.describe()} (e.g. {missing[0].location}); restore into a box configured "
            f"with the bucket the backup was made from ({where}), or from a backup made with "
            "--copy-objects")


def _restore_files(root: Path, src: Path, db_src: Path, manifest: dict[str, Any], force: bool,
                   progress: Progress,
                   copied_objects: list[tuple[int, str, int | None]] | None = None
                   ) -> tuple[int, int]:
    """Everything is first copied and verified into `<root>/restore.partial/`; only then is an
    existing box (with --force) removed and the new one moved into place, so a damaged backup
    leaves the data directory as it was. Objects the backup copied become local files, and
    their rows say so."""
    if _holds_a_box(root) and not force:
        raise BackupError(f"{root} already holds a box; restoring replaces everything in it: "
                          "pass --force to do that, or choose an empty data directory")
    staging = root / STAGING
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=0o700)
    try:
        staged_store = LocalBlobStore(staging)
        staged_store.prepare()
        # Not connect_sync: the backup is only read, so its file (whose hash the manifest
        # holds) is opened read-only and none of the recipe's pragmas may touch it.
        conn = sqlite3.connect(f"file:{db_src}?mode=ro", uri=True)
        try:
            blobs = _referenced_blobs(conn) + list(copied_objects or [])
            inline_count, inline_bytes = _verify_inline(conn, "the backup")
        finally:
            conn.close()
        progress.start(sum(size or 0 for _, _, size in blobs), "restoring blobs")
        backup_store = LocalBlobStore(src)
        restored_bytes = 0
        try:
            for tenant_id, sha, size in blobs:
                source = backup_store.find(tenant_id, sha)  # either blob layout
                if source is None:
                    raise BackupError(f"the backup lacks blob {backup_store.path(tenant_id, sha)}; "
                                      "it is damaged")
                restored_bytes += _copy_verified(source, staged_store.path(tenant_id, sha), sha, size)
                progress.advance(size or 0)
        finally:
            progress.finish()
        staged_db = staging / DB_FILE
        shutil.copyfile(db_src, staged_db)
        if copied_objects:
            _make_objects_local(staged_db)
        with open(staged_db, "rb+") as fh:
            os.fsync(fh.fileno())
        secret = None
        if manifest.get("secret_key_included") and (src / SECRET_FILE).is_file():
            secret = staging / SECRET_FILE
            shutil.copyfile(src / SECRET_FILE, secret)
            os.chmod(secret, 0o600)

        # Verified: replace the old box (if any). The database goes last: until it is in
        # place the directory holds no box.
        for name in (DB_FILE, DB_FILE + "-wal", DB_FILE + "-shm"):
            (root / name).unlink(missing_ok=True)
        for sub in ("blobs", "tmp"):
            shutil.rmtree(root / sub, ignore_errors=True)
        os.replace(staging / "blobs", root / "blobs")
        LocalBlobStore(root).prepare()
        if secret is not None:
            os.replace(secret, root / SECRET_FILE)
        os.replace(staged_db, root / DB_FILE)
        fsync_dir(root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return len(blobs) + inline_count, restored_bytes + inline_bytes
