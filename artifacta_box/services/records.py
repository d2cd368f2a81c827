"""The artifact record as the API returns it, and loading one artifact with the 404/410
precedence of `check_live`. Shared by every route that names an artifact."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from artifacta_box import errors
from artifacta_box.db import fetchone
from artifacta_box.services.validation import is_artifact_id


def artifact_record(row: Any) -> dict[str, Any]:
    """The public record (the `Artifact` schema of the OpenAPI document, GET /openapi.json).
    Never exposes tenant ids or paths."""
    return {
        "artifact_id": row["artifact_id"],
        "filename": row["filename"],
        "content_type": row["content_type"],
        "size_bytes": int(row["size_bytes"]),
        "content_hash": row["content_hash"] if row["state"] != "pending" else None,
        "session_id": row["session_id"],
        "agent_id": row["agent_id"],
        "metadata": metadata_of(row["metadata"]),
        "status": "pending" if row["state"] == "pending" else "active",
        "expires_at": row["expires_at"],
        "created_at": row["created_at"],
    }


def metadata_of(stored: str | None) -> dict[str, str]:
    """The metadata column as an object; most rows store none ('{}': no json.loads)."""
    return json.loads(stored) if stored and stored != "{}" else {}


def is_expired(row: Any, now_iso: str) -> bool:
    return row["state"] == "expired" or (
        row["state"] == "active" and row["expires_at"] is not None and row["expires_at"] <= now_iso
    )


def check_live(row: Any, artifact_id: str, now_iso: str, *, allow_pending: bool) -> Any:
    """Apply the 404/410 precedence to a fetched row (None = unknown/another tenant's)."""
    if row is None:
        raise errors.ArtifactNotFound(f"Artifact {artifact_id} was not found.")
    if row["state"] == "deleted":
        raise errors.ArtifactDeleted(f"Artifact {artifact_id} has been deleted.")
    if is_expired(row, now_iso):
        raise errors.ArtifactExpired(f"Artifact {artifact_id} has expired (at {row['expires_at']}).")
    if row["state"] == "pending" and not allow_pending:
        raise errors.UploadNotFound(
            f"Artifact {artifact_id} is a presigned upload that has not been completed yet."
        )
    return row


def load_artifact(
    conn: sqlite3.Connection, tenant_id: int, artifact_id: str, now_iso: str, *, allow_pending: bool = False
) -> Any:
    """The artifact row of this tenant, live; raises 404 (unknown or another tenant's), 410
    (deleted wins over expired), or 400 upload_not_found for a pending one unless allowed."""
    row = None
    if is_artifact_id(artifact_id):
        row = fetchone(
            conn, "SELECT * FROM artifacts WHERE artifact_id = ? AND tenant_id = ?",
            (artifact_id, tenant_id),
        )
    return check_live(row, artifact_id, now_iso, allow_pending=allow_pending)
