"""The document of `http/sessions.py`: list and seal sessions."""

from __future__ import annotations

from typing import Any

from artifacta_box.http.openapi.parts import (
    CREATED_AFTER,
    CREATED_BEFORE,
    LIMIT,
    SESSION_ID,
    error_responses,
    json_ok,
    op,
    query,
    ref,
    timestamp,
)
from artifacta_box.services.validation import LABEL_PATTERN

SCHEMAS: dict[str, Any] = {
    "Session": {
        "type": "object",
        "required": [
            "session_id", "artifact_count", "is_sealed", "first_artifact_at",
            "last_artifact_at", "sealed_at",
        ],
        "properties": {
            "session_id": {"type": "string", "pattern": LABEL_PATTERN},
            "artifact_count": {"type": "integer", "minimum": 0},
            "is_sealed": {"type": "boolean"},
            "first_artifact_at": timestamp("First upload into the session.", True),
            "last_artifact_at": timestamp("Latest upload into the session.", True),
            "sealed_at": timestamp("When it was sealed; null while open.", True),
        },
    },
    "SessionList": {
        "type": "object",
        "required": ["sessions", "next_cursor", "has_more"],
        "properties": {
            "sessions": {"type": "array", "items": ref("Session")},
            "next_cursor": {"type": ["string", "null"], "minLength": 1},
            "has_more": {"type": "boolean"},
        },
    },
    "SealedSession": {
        "type": "object",
        "required": ["session_id", "status", "sealed_at", "artifact_count"],
        "properties": {
            "session_id": {"type": "string", "pattern": LABEL_PATTERN},
            "status": {"const": "sealed"},
            "sealed_at": timestamp("When it was first sealed."),
            "artifact_count": {"type": "integer", "minimum": 0},
        },
    },
}

PATHS: dict[str, Any] = {
    "/v1/sessions": {
        "get": op(
            "List sessions", "listSessions",
            {"200": json_ok("SessionList", "A page, most recent activity first."),
             **error_responses("invalid_request")},
            tags=["sessions"],
            description="A `+` in an offset may arrive as a space (the official clients "
                        "do not URL-encode this query); it is read as `+`.",
            parameters=[
                CREATED_AFTER, CREATED_BEFORE, LIMIT,
                query("after", {"type": "string"},
                      "`next_cursor` of the previous page; empty means the first page."),
                query("cursor", {"type": "string"}, "Alias of `after`."),
            ],
        ),
    },
    "/v1/sessions/{session_id}/seal": {
        "post": op(
            "Seal a session", "sealSession",
            {"200": json_ok("SealedSession", "Sealed (sealing again returns the same "
                            "sealed_at)."),
             **error_responses("invalid_request", "session_not_found")},
            tags=["sessions"], parameters=[SESSION_ID],
            description="No body. Afterwards every upload into the session → 409.",
        ),
    },
}
