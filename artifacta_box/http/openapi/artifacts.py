"""The document of `http/artifacts.py`: list, get, delete and extend-ttl."""

from __future__ import annotations

from typing import Any

from artifacta_box.http.openapi.parts import (
    ARTIFACT_GONE,
    ARTIFACT_ID,
    CREATED_AFTER,
    CREATED_BEFORE,
    CURSOR,
    LIMIT,
    error_responses,
    json_body,
    json_ok,
    op,
    query,
    ref,
    timestamp,
)
from artifacta_box.services.validation import ARTIFACT_ID_PATTERN

SCHEMAS: dict[str, Any] = {
    "ArtifactList": {
        "type": "object",
        "required": ["artifacts", "next_cursor", "has_more"],
        "properties": {
            "artifacts": {"type": "array", "items": ref("Artifact")},
            "next_cursor": {"type": ["string", "null"], "minLength": 1},
            "has_more": {"type": "boolean"},
        },
    },
    "DeletedArtifact": {
        "type": "object",
        "required": ["artifact_id", "deleted", "deleted_at"],
        "properties": {
            "artifact_id": {"type": "string", "pattern": ARTIFACT_ID_PATTERN},
            "deleted": {"const": True},
            "deleted_at": timestamp("When it was deleted."),
        },
    },
    "ExtendTtlRequest": {
        "type": "object",
        "required": ["ttl"],
        "properties": {"ttl": ref("Ttl")},
    },
}

PATHS: dict[str, Any] = {
    "/v1/artifacts": {
        "get": op(
            "List artifacts", "listArtifacts",
            {"200": json_ok("ArtifactList", "A page, newest first "
                            "(`created_at DESC, artifact_id DESC`)."),
             **error_responses("invalid_request", "quota_exceeded")},
            tags=["artifacts"],
            description="Filters are exact matches, ANDed. `metadata.<key>=<value>` filters "
                        "on metadata (several allowed, up to the plan's limit; over → 403 "
                        "`quota_exceeded`; a bad key → 400). Only active, live artifacts "
                        "are listed.",
            parameters=[
                query("session_id", {"type": "string"}, "Exact session id."),
                query("agent_id", {"type": "string"}, "Exact agent id."),
                query("filename", {"type": "string"}, "Exact filename."),
                query("content_type", {"type": "string"}, "Exact content type."),
                CREATED_AFTER, CREATED_BEFORE, LIMIT, CURSOR,
            ],
        ),
    },
    "/v1/artifacts/{artifact_id}": {
        "get": op("Get an artifact (pending ones too)", "getArtifact",
                  {"200": json_ok("Artifact", "The artifact record."),
                   **error_responses(*ARTIFACT_GONE)},
                  tags=["artifacts"], parameters=[ARTIFACT_ID]),
        "delete": op(
            "Soft-delete an artifact", "deleteArtifact",
            {"200": json_ok("DeletedArtifact", "Deleted; gone from lists at once."),
             **error_responses(*ARTIFACT_GONE)},
            tags=["artifacts"], parameters=[ARTIFACT_ID],
            description="A second DELETE answers 410 `artifact_already_deleted`.",
        ),
    },
    "/v1/artifacts/{artifact_id}/extend-ttl": {
        "post": op(
            "Extend an artifact's TTL", "extendTtl",
            {"200": json_ok("Artifact", "The updated record."),
             **error_responses("invalid_request", "ttl_exceeds_plan_limit", "upload_not_found",
                               *ARTIFACT_GONE)},
            tags=["artifacts"], parameters=[ARTIFACT_ID],
            description="New expires_at = now + ttl; an earlier result than the current "
                        "one → 400. A presigned upload not completed yet → 400 "
                        "`upload_not_found`.",
            request_body=json_body("ExtendTtlRequest"),
        ),
    },
}
