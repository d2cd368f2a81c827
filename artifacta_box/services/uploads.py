"""Artifacts: the commit of a new artifact (shared by every upload path).

`commit_new_artifact` is the one transaction that makes uploaded bytes visible: idempotency
replay, sealed-session check, storage quota after dedup, blob reference and usage, the artifact
row, its metadata index rows, the session row. Everything before it (streaming, hashing, limits)
happens outside the writer; everything in it is checked and written atomically, so a rejected
upload leaves no row and no usage change, and a sealed session can never gain an artifact.
A blob file that the rejected upload itself added to the store is removed again (unless another
row has come to reference the same bytes meanwhile), so it leaves no blob either.

`check_fields` / `spec_from_fields` turn the fields of any upload path (multipart text fields,
the JSON body, the upload-url body) into a validated `ArtifactSpec`, in one place.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from artifacta_box import errors
from artifacta_box.clock import iso, iso_in
from artifacta_box.config import Plan
from artifacta_box.context import Box
from artifacta_box.db import fetchone
from artifacta_box.ids import new_artifact_id
from artifacta_box.services import usage, validation
from artifacta_box.services.records import artifact_record, is_expired
from artifacta_box.services.principal import Principal
from artifacta_box.services.validation import metadata_json
from artifacta_box.storage import BlobRef, Received

log = logging.getLogger("artifacta_box.artifacts")


@dataclass(frozen=True)
class ArtifactSpec:
    """Validated fields of a new artifact (see services.validation)."""

    filename: str
    content_type: str
    session_id: str | None
    agent_id: str | None
    metadata: dict[str, str]
    ttl_seconds: int | None      # None = never
    ttl_raw: str | None          # as sent, for idempotency comparison

    def request_hash(self, content_hash: str) -> str:
        """Identity of an upload request for Idempotency-Key replay (the `Idempotency-Key`
        header of `POST /v1/artifacts` in the OpenAPI document)."""
        raw = json.dumps(
            [content_hash, self.filename, self.content_type, self.session_id, self.agent_id,
             sorted(self.metadata.items()), self.ttl_raw],
            separators=(",", ":"), ensure_ascii=False,
        )
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def check_fields(plan: Plan, fields: Mapping[str, Any]) -> None:
    """Validate the upload fields present so far (each failure a 400 naming the field), so a
    doomed upload is refused before its bytes are streamed. `filename` may still arrive later."""
    if fields.get("filename") not in (None, ""):
        validation.filename(fields["filename"])
    if fields.get("content_type") not in (None, ""):
        validation.content_type(fields["content_type"])
    validation.label("session_id", fields.get("session_id"))
    validation.label("agent_id", fields.get("agent_id"))
    if fields.get("ttl") not in (None, ""):
        validation.ttl_seconds(fields["ttl"], plan)
    validation.metadata(fields.get("metadata"))


def spec_from_fields(
    plan: Plan,
    fields: Mapping[str, Any],
    *,
    fallback_filename: str | None = None,
    fallback_content_type: str | None = None,
) -> ArtifactSpec:
    """The validated spec of a new artifact from its upload fields.

    `filename` falls back to `fallback_filename` (a multipart part's filename); `content_type`
    falls back to `fallback_content_type` (the part's Content-Type) unless that is the generic
    application/octet-stream, then to a guess from the filename.
    """
    name = fields.get("filename")
    if name in (None, "") and fallback_filename not in (None, ""):
        name = fallback_filename
    if name in (None, ""):
        raise errors.InvalidRequest(
            "filename is required: send a filename field (or a filename in the file part)."
        )
    filename = validation.filename(name)
    ctype = fields.get("content_type")
    if ctype in (None, ""):
        ctype = None
        fallback = (fallback_content_type or "").strip()
        if fallback and fallback.split(";", 1)[0].strip().lower() != validation.DEFAULT_CONTENT_TYPE:
            try:
                ctype = validation.content_type(fallback)
            except errors.InvalidRequest:
                raise errors.InvalidRequest(
                    f"content_type: the file part's Content-Type {fallback[:80]!r} is not a valid "
                    "media type; send a content_type field such as text/plain."
                ) from None
    content_type = validation.content_type(ctype, filename)
    ttl = fields.get("ttl")
    ttl_seconds = validation.ttl_seconds(ttl, plan)
    return ArtifactSpec(
        filename=filename,
        content_type=content_type,
        session_id=validation.label("session_id", fields.get("session_id")),
        agent_id=validation.label("agent_id", fields.get("agent_id")),
        metadata=validation.metadata(fields.get("metadata")),
        ttl_seconds=ttl_seconds,
        ttl_raw=ttl if isinstance(ttl, str) and ttl else None,
    )


async def check_session_open(box: Box, tenant_id: int, session_id: str | None) -> None:
    """Early, read-only check so a doomed upload is refused before its bytes are streamed.
    The authoritative check is repeated inside the commit transaction."""
    if session_id is None:
        return
    row = await box.db.fetchone(
        "SELECT sealed_at FROM sessions WHERE tenant_id = ? AND session_id = ?", (tenant_id, session_id)
    )
    if row is not None and row["sealed_at"] is not None:
        raise sealed_error(session_id)


def sealed_error(session_id: str) -> errors.SessionSealed:
    return errors.SessionSealed(
        f"Session {session_id} is sealed; start a new session to upload more artifacts."
    )


def find_idempotent_replay(
    conn: sqlite3.Connection, box: Box, tenant_id: int, idem_key: str, request_hash: str,
    now_iso: str,
) -> Any:
    """The original artifact row for a repeated (key, request), if still remembered and live."""
    cutoff = iso_in(box.clock.now(), -box.settings.idempotency_seconds)
    row = fetchone(
        conn,
        "SELECT a.* FROM idempotency_keys i JOIN artifacts a ON a.artifact_id = i.artifact_id "
        "WHERE i.tenant_id = ? AND i.idem_key = ? AND i.request_hash = ? AND i.created_at > ?",
        (tenant_id, idem_key, request_hash, cutoff),
    )
    if row is None or row["state"] != "active" or is_expired(row, now_iso):
        return None
    return row


def record_session_use(conn: sqlite3.Connection, tenant_id: int, session_id: str | None,
                       now_iso: str, count: int = 1) -> None:
    """Create the session on first use, bump its activity. Raises SessionSealed if sealed."""
    if session_id is None:
        return
    row = fetchone(
        conn, "SELECT sealed_at FROM sessions WHERE tenant_id = ? AND session_id = ?",
        (tenant_id, session_id),
    )
    if row is not None and row["sealed_at"] is not None:
        raise sealed_error(session_id)
    if row is None:
        conn.execute(
            "INSERT INTO sessions (tenant_id, session_id, artifact_count, created_at, "
            "first_artifact_at, last_artifact_at) VALUES (?, ?, ?, ?, ?, ?)",
            (tenant_id, session_id, count, now_iso, now_iso, now_iso),
        )
    else:
        conn.execute(
            "UPDATE sessions SET artifact_count = artifact_count + ?, last_artifact_at = ?, "
            "first_artifact_at = COALESCE(first_artifact_at, ?) WHERE tenant_id = ? AND session_id = ?",
            (count, now_iso, now_iso, tenant_id, session_id),
        )


def insert_metadata_rows(conn: sqlite3.Connection, tenant_id: int, artifact_id: str,
                         created_at: str, metadata: dict[str, str]) -> None:
    if metadata:
        conn.executemany(
            "INSERT OR IGNORE INTO artifact_metadata (tenant_id, key, value, created_at, artifact_id) "
            "VALUES (?, ?, ?, ?, ?)",
            [(tenant_id, k, v, created_at, artifact_id) for k, v in metadata.items()],
        )


def check_storage_quota(conn: sqlite3.Connection, principal: Principal, billable: int,
                        now_iso: str) -> None:
    """403 when `billable` new bytes would exceed the plan's storage (checked after dedup).
    Due expiries are processed first, so an artifact that expired a moment ago no longer counts."""
    usage.check_storage(conn, principal.tenant_id, principal.plan, billable, now_iso, "this upload")


def blob_referenced(conn: sqlite3.Connection, tenant_id: int, sha256: str) -> bool:
    """Whether any row points at the local file of these bytes (its content address): a
    `blobs` row at the local location (a committed artifact, in any state until purge) or an
    artifact row holding them as a received presigned upload."""
    if fetchone(conn, "SELECT 1 FROM blobs WHERE tenant_id = ? AND sha256 = ? "
                "AND location IS NULL", (tenant_id, sha256)) is not None:
        return True
    return fetchone(
        conn, "SELECT 1 FROM artifacts WHERE tenant_id = ? AND upload_sha256 = ? "
        "AND upload_location IS NULL LIMIT 1",
        (tenant_id, sha256),
    ) is not None


async def drop_blob_if_unreferenced(box: Box, tenant_id: int, sha256: str) -> bool:
    """Remove a local blob file no row references (one a failed or replaced upload added).

    Runs in a write transaction, so it cannot interleave with a commit that references the same
    bytes; such a commit re-links the file from its own staging copy (`ensure_placed`) if it
    finds it gone. Returns True if the file was removed.
    """
    ref = BlobRef(tenant_id, sha256, 0, None)

    def drop(conn: sqlite3.Connection) -> bool:
        if blob_referenced(conn, tenant_id, sha256):
            return False
        box.blobs.delete_in_transaction(conn, ref)  # in the writer's thread, off the event loop
        return True

    return await box.db.execute_write_fn(drop)


async def drop_received(box: Box, received: Received, placed: bool) -> None:
    """After a commit that did not keep `received` (refused, replayed, or a duplicate of bytes
    stored elsewhere): remove what this upload added. A content-addressed store may share the
    file with another row, so it is removed only if `place` created it and no row names it; any
    other store gave this upload its own copy, deleted outright. Shielded: a client disconnect
    (task cancellation) must not skip it; a failure is logged (gc removes orphans later)."""
    try:
        if box.blobs.content_addressed_for(received.location):
            if placed:
                await asyncio.shield(drop_blob_if_unreferenced(box, received.tenant_id,
                                                               received.sha256))
        else:
            await asyncio.shield(box.blobs.delete(received.ref))
    except Exception:  # keep the original outcome
        log.exception("could not remove the unreferenced bytes of an upload")


async def commit_new_artifact(
    box: Box,
    principal: Principal,
    received: Received,
    spec: ArtifactSpec,
    idem_key: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """Make uploaded bytes a visible artifact. Returns (record, replayed).

    The store's three commit steps (storage/blobs.py): `place` before the write job, then
    `ensure_placed` inside it (in the same transaction as the blob row), `release` after it in
    every case. Bytes the commit did not keep are removed again (`drop_received`).
    """
    tenant_id = principal.tenant_id
    request_hash = spec.request_hash(received.sha256) if idem_key else None
    placed = kept = False

    def transaction(conn: sqlite3.Connection) -> tuple[Any, bool, bool]:
        # Runs in the writer's thread as one job of a group commit (Database.execute_write_fn).
        now = box.clock.now()
        now_iso = iso(now)
        if idem_key:
            original = find_idempotent_replay(conn, box, tenant_id, idem_key, request_hash,
                                                   now_iso)
            if original is not None:
                return original, True, False
        record_session_use(conn, tenant_id, spec.session_id, now_iso)
        # The blob reference with its quota check first (one statement each): the bytes'
        # placement below may depend on what the blob row says (storage/inline.py).
        kept = usage.add_reference_within_quota(
            conn, tenant_id, principal.plan, received.sha256, received.size, now_iso,
            received.location, "this upload")
        box.blobs.ensure_placed(conn, received)
        artifact_id = new_artifact_id()
        expires_at = None if spec.ttl_seconds is None else iso_in(now, spec.ttl_seconds)
        row = fetchone(
            conn,
            "INSERT INTO artifacts (artifact_id, tenant_id, state, filename, content_type, "
            "size_bytes, content_hash, session_id, agent_id, metadata, created_at, expires_at) "
            "VALUES (?, ?, 'active', ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
            (artifact_id, tenant_id, spec.filename, spec.content_type, received.size,
             received.sha256, spec.session_id, spec.agent_id, metadata_json(spec.metadata),
             now_iso, expires_at),
        )
        insert_metadata_rows(conn, tenant_id, artifact_id, now_iso, spec.metadata)
        if idem_key:
            conn.execute(
                "INSERT OR REPLACE INTO idempotency_keys (tenant_id, idem_key, request_hash, "
                "artifact_id, created_at) VALUES (?, ?, ?, ?, ?)",
                (tenant_id, idem_key, request_hash, artifact_id, now_iso),
            )
        return row, False, kept

    try:
        placed = await box.blobs.place(received)
        row, replayed, kept = await box.db.execute_write_fn(transaction)
        return artifact_record(row), replayed
    finally:
        await box.blobs.release(received)
        if not kept:
            await drop_received(box, received, placed)
