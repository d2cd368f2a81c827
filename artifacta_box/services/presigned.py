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
    discard_staged,
    drop_blob_if_unreferenced,
    insert_metadata_rows,
    record_session_use,
)
from artifacta_box.services.records import artifact_record, load_artifact
from artifacta_box.services.principal import Principal
from artifacta_box.services.validation import is_artifact_id, metadata_json
from artifacta_box.storage import StagedBlob

log = logging.getLogger("artifacta_box.presigned")


@dataclass(frozen=True)
class Reservation:
    record: dict[str, Any]
    expires: int            # Unix seconds: end of the upload window (signed into the URL)
    expires_in: int
    upload_expires_at: str


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
    `size_bytes` (the content is unknown yet, so before dedup; complete re-checks after it)."""
    box.blobs.check_space(size_bytes)
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
            "upload_expires_at) VALUES (?, ?, 'pending', ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?)",
            (artifact_id, principal.tenant_id, spec.filename, spec.content_type, size_bytes,
             spec.session_id, spec.agent_id, metadata_json(spec.metadata), now_iso, expires_at,
             upload_expires_at),
        )
        row = fetchone(conn, "SELECT * FROM artifacts WHERE artifact_id = ?", (artifact_id,))
        return Reservation(artifact_record(row), expires, expires_in, upload_expires_at)

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


async def store_upload(box: Box, target: UploadTarget, staged: StagedBlob) -> None:
    """Commit the received bytes to the blob store and point the pending row at them.

    The staging file is discarded in every case. If the row stopped being pending meanwhile
    (completed → 409, deleted → 410), the bytes are dropped again.
    """
    tenant_id = target.tenant_id

    def point_at_bytes(conn: sqlite3.Connection) -> str | None:
        row = fetchone(
            conn, "SELECT id, state, upload_sha256 FROM artifacts WHERE artifact_id = ? "
            "AND tenant_id = ?", (target.artifact_id, tenant_id),
        )
        if row is None:
            raise errors.ArtifactNotFound(f"Artifact {target.artifact_id} was not found.")
        check_accepts_bytes(row["state"], target.artifact_id)
        box.blobs.ensure_committed(tenant_id, staged)
        conn.execute(
            "UPDATE artifacts SET upload_sha256 = ?, upload_size = ? WHERE id = ?",
            (staged.sha256, staged.size, row["id"]),
        )
        return row["upload_sha256"]

    created = stored = False
    previous: str | None = None
    try:
        created = await box.blobs.commit_staged(tenant_id, staged)
        previous = await box.db.execute_write_fn(point_at_bytes)
        stored = True
    finally:
        await discard_staged(staged)
        stale = None
        if created and not stored:
            stale = staged.sha256
        elif stored and previous and previous != staged.sha256:
            stale = previous  # a retried PUT replaced these bytes
        if stale is not None:
            try:
                await asyncio.shield(drop_blob_if_unreferenced(box, tenant_id, stale))
            except Exception:  # keep the original outcome; gc removes orphans later
                log.exception("could not remove an unreferenced presigned upload blob")


async def complete_upload(box: Box, principal: Principal, artifact_id: str) -> dict[str, Any]:
    """Make a pending upload an active artifact (see the module docstring). Idempotent."""
    tenant_id = principal.tenant_id

    def complete(conn: sqlite3.Connection) -> Any:
        now = box.clock.now()
        now_iso = iso(now)
        row = load_artifact(conn, tenant_id, artifact_id, now_iso, allow_pending=True)
        if row["state"] == "active":
            return row
        sha256, size = row["upload_sha256"], row["upload_size"]
        if sha256 is None or not box.blobs.exists(tenant_id, sha256):
            raise errors.UploadNotFound(
                f"The bytes of {artifact_id} have not arrived: PUT them to its upload_url, then "
                "call complete again."
            )
        record_session_use(conn, tenant_id, row["session_id"], now_iso)
        billable = usage.billable_bytes(conn, tenant_id, sha256, size)
        check_storage_quota(conn, principal, billable, now_iso)
        usage.add_reference(conn, tenant_id, sha256, size, now_iso)
        expires_at = row["expires_at"]
        if expires_at is not None:
            ttl = parse_iso(expires_at) - parse_iso(row["created_at"])
            expires_at = iso(now + ttl)
        conn.execute(
            "UPDATE artifacts SET state = 'active', content_hash = ?, size_bytes = ?, "
            "created_at = ?, expires_at = ?, upload_sha256 = NULL, upload_size = NULL, "
            "upload_expires_at = NULL WHERE id = ?",
            (sha256, size, now_iso, expires_at, row["id"]),
        )
        metadata = json.loads(row["metadata"]) if row["metadata"] else {}
        insert_metadata_rows(conn, tenant_id, artifact_id, now_iso, metadata)
        return fetchone(conn, "SELECT * FROM artifacts WHERE id = ?", (row["id"],))

    return artifact_record(await box.db.execute_write_fn(complete))
