"""Presigned uploads: reserve with upload-url → PUT the bytes → complete (the three operations
are described in the OpenAPI document, GET /openapi.json).

- `reserve_upload` creates a `pending` artifact row (content_hash NULL, `upload_expires_at` =
  the end of the upload window). No session row and no metadata index rows yet: the artifact
  joins its session, its lists and the tenant's usage only at complete.
- `store_upload` records the bytes of a signed PUT: they are committed to the blob store at
  their content address and named by the row's `upload_sha256`/`upload_size` — there is no
  `blobs` row until complete, so lifecycle code must treat `upload_sha256` as a reference
  (see `uploads.blob_referenced`). A retried PUT replaces the earlier bytes (whose file is
  removed if nothing else points at them).
- `complete_upload` is the commit: sealed-session re-check (a seal after the reservation → 409),
  dedup, storage quota after dedup, blob reference and billing, state `active` — all in one
  transaction. Idempotent: completing an active artifact returns its record unchanged.

An artifact's `created_at` is the moment it became visible (complete), and its `expires_at`
keeps the TTL asked for at reservation, counted from then: a presigned upload lists and expires
like a direct upload made at completion time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from artifacta_box import errors
from artifacta_box.clock import iso, parse_iso
from artifacta_box.context import Box
from artifacta_box.db import fetchone
from artifacta_box.ids import new_artifact_id
from artifacta_box.services import usage
from artifacta_box.services.uploads import (
    ArtifactSpec,
    check_session_open,
    check_storage_quota,
    drop_blob_if_unreferenced,
    drop_received,
    insert_metadata_rows,
    record_session_use,
)
from artifacta_box.services.records import artifact_record, load_artifact
from artifacta_box.services.principal import Principal
from artifacta_box.services.validation import is_artifact_id, metadata_json
from artifacta_box.storage import BlobRef, Received

log = logging.getLogger("artifacta_box.presigned")


@dataclass(frozen=True)
class Reservation:
    record: dict[str, Any]
    expires: int            # Unix seconds: end of the upload window (signed into the URL)
    expires_in: int
    upload_expires_at: str
    upload_location: str | None   # where the client PUTs the bytes itself (S3), else None


@dataclass(frozen=True)
class UploadTarget:
    """What a signed PUT needs to know about its artifact before accepting bytes."""

    artifact_id: str
    tenant_id: int
    plan_name: str
    tenant_suspended: bool
    state: str
    size_bytes: int


async def reserve_upload(box: Box, principal: Principal, spec: ArtifactSpec,
                         size_bytes: int) -> Reservation:
    """Create the pending artifact. Checks: disk space, session not sealed, storage quota for
    `size_bytes` (the content is unknown yet, so before dedup; complete re-checks after it).

    With a store that takes presigned uploads itself (`box.blobs.direct_uploads`), the row
    names the fresh key the client will PUT to (`upload_location`) from its first instant, so
    the key is referenced before any byte exists and no sweep can take it."""
    box.blobs.check_space(size_bytes)
    location = box.blobs.new_upload_location(principal.tenant_id)
    await check_session_open(box, principal.tenant_id, spec.session_id)
    def reserve(conn: sqlite3.Connection) -> Reservation:
        now = box.clock.now()
        now_iso = iso(now)
        check_storage_quota(conn, principal, size_bytes, now_iso)
        expires_in = box.settings.upload_url_seconds
        expires = int(now.timestamp()) + expires_in
        upload_expires_at = iso(datetime.fromtimestamp(expires, UTC))
        expires_at = None if spec.ttl_seconds is None else iso(
            datetime.fromtimestamp(now.timestamp() + spec.ttl_seconds, UTC))
        artifact_id = new_artifact_id()
        conn.execute(
            "INSERT INTO artifacts (artifact_id, tenant_id, state, filename, content_type, "
            "size_bytes, content_hash, session_id, agent_id, metadata, created_at, expires_at, "
            "upload_expires_at, upload_location) "
            "VALUES (?, ?, 'pending', ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?)",
            (artifact_id, principal.tenant_id, spec.filename, spec.content_type, size_bytes,
             spec.session_id, spec.agent_id, metadata_json(spec.metadata), now_iso, expires_at,
             upload_expires_at, location),
        )
        row = fetchone(conn, "SELECT * FROM artifacts WHERE artifact_id = ?", (artifact_id,))
        return Reservation(artifact_record(row), expires, expires_in, upload_expires_at,
                           location)

    return await box.db.execute_write_fn(reserve)


async def load_upload_target(box: Box, artifact_id: str) -> UploadTarget | None:
    """The artifact a signed PUT names, with its tenant's plan; None if there is no such row."""
    if not is_artifact_id(artifact_id):
        return None
    row = await box.db.fetchone(
        "SELECT a.artifact_id, a.tenant_id, a.state, a.size_bytes, t.plan, t.suspended_at "
        "FROM artifacts a JOIN tenants t ON t.tenant_id = a.tenant_id WHERE a.artifact_id = ?",
        (artifact_id,),
    )
    if row is None:
        return None
    return UploadTarget(
        artifact_id=row["artifact_id"], tenant_id=int(row["tenant_id"]), plan_name=row["plan"],
        tenant_suspended=row["suspended_at"] is not None, state=row["state"],
        size_bytes=int(row["size_bytes"]),
    )


def check_accepts_bytes(state: str, artifact_id: str, *, tenant_suspended: bool = False) -> None:
    """Only a pending artifact takes bytes: completed → 409, deleted → 410."""
    if tenant_suspended:
        raise errors.Unauthorized(
            f"The tenant owning {artifact_id} is suspended; uploads are refused."
        )
    if state == "pending":
        return
    if state == "deleted":
        raise errors.ArtifactDeleted(f"Artifact {artifact_id} has been deleted.")
    if state == "expired":
        raise errors.ArtifactExpired(f"Artifact {artifact_id} has expired.")
    raise errors.Conflict(
        f"Artifact {artifact_id} is already complete; its content cannot change. "
        "Reserve a new upload with POST /v1/artifacts/upload-url."
    )


async def store_upload(box: Box, target: UploadTarget, received: Received) -> None:
    """Commit the received bytes to the blob store and point the pending row at them.

    The store's commit steps run as for a direct upload (`uploads.commit_new_artifact`). If
    the row stopped being pending meanwhile (completed → 409, deleted → 410), the bytes are
    dropped again; a retried PUT's earlier bytes are dropped once the row names the new ones.
    """
    tenant_id = target.tenant_id

    def point_at_bytes(conn: sqlite3.Connection) -> tuple[str | None, str | None]:
        row = fetchone(
            conn, "SELECT id, state, upload_sha256, upload_location FROM artifacts "
            "WHERE artifact_id = ? AND tenant_id = ?", (target.artifact_id, tenant_id),
        )
        if row is None:
            raise errors.ArtifactNotFound(f"Artifact {target.artifact_id} was not found.")
        check_accepts_bytes(row["state"], target.artifact_id)
        box.blobs.ensure_placed(conn, received)
        conn.execute(
            "UPDATE artifacts SET upload_sha256 = ?, upload_size = ?, upload_location = ? "
            "WHERE id = ?",
            (received.sha256, received.size, received.location, row["id"]),
        )
        return row["upload_sha256"], row["upload_location"]

    placed = stored = False
    previous: tuple[str | None, str | None] = (None, None)
    try:
        placed = await box.blobs.place(received)
        previous = await box.db.execute_write_fn(point_at_bytes)
        stored = True
    finally:
        await box.blobs.release(received)
        if not stored:
            await drop_received(box, received, placed)
    prev_sha, prev_location = previous
    if (prev_sha is not None or prev_location is not None) and \
            (prev_sha, prev_location) != (received.sha256, received.location):
        # A retried PUT replaced these bytes (or bytes a client may have PUT to the reserved
        # key itself).
        await drop_upload_bytes(box, tenant_id, prev_sha, prev_location)


async def drop_upload_bytes(box: Box, tenant_id: int, sha256: str | None,
                            location: str | None) -> None:
    """Remove bytes a pending row no longer names (replaced, or never completed): a local file
    only if no row names its content, anything else (its own key) outright. Shielded; a
    failure is logged (gc removes orphans later)."""
    try:
        if box.blobs.content_addressed_for(location):
            if sha256 is not None:
                await asyncio.shield(drop_blob_if_unreferenced(box, tenant_id, sha256))
        else:
            await asyncio.shield(box.blobs.delete(BlobRef(tenant_id, sha256, 0, location)))
    except Exception:  # keep the original outcome
        log.exception("could not remove the bytes of a replaced presigned upload")


async def complete_upload(box: Box, principal: Principal, artifact_id: str) -> dict[str, Any]:
    """Make a pending upload an active artifact (see the module docstring). Idempotent.

    The received bytes are looked up in their store before the write job (no store I/O holds
    the writer); the job then re-reads the row and commits only if it still names the same
    bytes (a PUT retried meanwhile: looked up again). A pending row keeps its bytes
    referenced, so gc cannot take them in between. Bytes a client PUT straight to the store
    (`upload_location` set, no `upload_sha256` yet) are checked for their size and streamed
    back through SHA-256 first: the signed `If-None-Match: *` keeps them from changing after."""
    tenant_id = principal.tenant_id
    while True:
        now_iso = iso(box.clock.now())
        pending = await box.db.execute_fn(
            lambda conn, now_iso=now_iso: load_artifact(conn, tenant_id, artifact_id, now_iso,
                                                        allow_pending=True))
        if pending["state"] == "active":
            return artifact_record(pending)
        names = (pending["upload_sha256"], pending["upload_size"], pending["upload_location"])
        sha256, size, location = names
        not_arrived = errors.UploadNotFound(
            f"The bytes of {artifact_id} have not arrived: PUT them to its upload_url, then "
            "call complete again.")
        if sha256 is None and location is None:
            raise not_arrived
        ref = BlobRef(tenant_id, sha256, size or int(pending["size_bytes"]), location)
        stat = await box.blobs.stat(ref)
        if stat is None:
            raise not_arrived
        if sha256 is None:  # PUT straight to the store: hash what it holds
            sha256, size = await _hash_direct_upload(box, pending, ref, stat.size)
        committed = await box.db.execute_write_fn(
            lambda conn, names=names, sha256=sha256, size=size: _complete(
                conn, box, principal, artifact_id, names, sha256, size))
        if committed is not None:
            row, kept = committed
            if not kept:  # a duplicate of bytes the tenant already stores elsewhere
                await drop_upload_bytes(box, tenant_id, sha256, location)
            return artifact_record(row)


async def _hash_direct_upload(box: Box, pending: Any, ref: BlobRef, stored: int) -> tuple[str, int]:
    """(sha256, size) of bytes a client PUT to the store itself. A size other than the
    reserved one (a store that ignored the signed length) is refused and the object deleted,
    so the client can PUT again."""
    want = int(pending["size_bytes"])
    if stored == want:
        sha256, size = await box.blobs.verify(ref)
        if size == want:
            return sha256, size
        stored = size
    await drop_upload_bytes(box, ref.tenant_id, None, ref.location)
    raise errors.InvalidRequest(
        f"The upload of {pending['artifact_id']} holds {stored:,} bytes, not the {want:,} "
        "reserved (size_bytes); they were discarded: PUT exactly size_bytes bytes to the "
        "upload_url, then call complete again.")


def _complete(conn: sqlite3.Connection, box: Box, principal: Principal, artifact_id: str,
              names: tuple[str | None, int | None, str | None], sha256: str,
              size: int) -> tuple[Any, bool] | None:
    """The commit of `complete_upload`: (row, whether the blob row names these bytes), or None
    if the row no longer names the bytes looked up (look again)."""
    tenant_id = principal.tenant_id
    location = names[2]
    now = box.clock.now()
    now_iso = iso(now)
    row = load_artifact(conn, tenant_id, artifact_id, now_iso, allow_pending=True)
    if row["state"] == "active":
        return row, True
    if (row["upload_sha256"], row["upload_size"], row["upload_location"]) != names:
        return None
    record_session_use(conn, tenant_id, row["session_id"], now_iso)
    kept = usage.add_reference_within_quota(conn, tenant_id, principal.plan, sha256, size,
                                            now_iso, location, "this upload")
    expires_at = row["expires_at"]
    if expires_at is not None:
        ttl = parse_iso(expires_at) - parse_iso(row["created_at"])
        expires_at = iso(now + ttl)
    conn.execute(
        "UPDATE artifacts SET state = 'active', content_hash = ?, size_bytes = ?, "
        "created_at = ?, expires_at = ?, upload_sha256 = NULL, upload_size = NULL, "
        "upload_location = NULL, upload_expires_at = NULL WHERE id = ?",
        (sha256, size, now_iso, expires_at, row["id"]),
    )
    metadata = json.loads(row["metadata"]) if row["metadata"] else {}
    insert_metadata_rows(conn, tenant_id, artifact_id, now_iso, metadata)
    return fetchone(conn, "SELECT * FROM artifacts WHERE id = ?", (row["id"],)), kept
