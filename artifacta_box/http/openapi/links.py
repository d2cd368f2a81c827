"""The document of `http/links.py`: share links (create, revoke) and the bytes they serve
at /l/."""

from __future__ import annotations

from typing import Any

from artifacta_box.http.openapi.parts import (
    ARTIFACT_GONE,
    ARTIFACT_ID,
    LINK_ID,
    byte_params,
    byte_responses,
    error_responses,
    json_body,
    json_ok,
    op,
    preflight,
    timestamp,
    without_bodies,
)
from artifacta_box.services.links import DEFAULT_LINK_SECONDS, LINK_PREFIX
from artifacta_box.services.validation import ARTIFACT_ID_PATTERN, LINK_ID_PATTERN

_DEFAULT_DAYS = f"{DEFAULT_LINK_SECONDS / 86400:g}"

SCHEMAS: dict[str, Any] = {
    "LinkRequest": {
        "type": "object",
        "properties": {
            "expires_in": {
                "type": ["integer", "null"], "minimum": 1,
                "description": f"Seconds; default (also for null) {DEFAULT_LINK_SECONDS} "
                               f"({_DEFAULT_DAYS} days); at most the plan's maximum.",
            },
        },
    },
    "Link": {
        "type": "object",
        "required": ["link_id", "url", "artifact_id", "expires_at", "created_at"],
        "properties": {
            "link_id": {"type": "string", "pattern": LINK_ID_PATTERN},
            "url": {"type": "string", "pattern": f"^https?://.*{LINK_PREFIX}{LINK_ID_PATTERN[1:]}"},
            "artifact_id": {"type": "string", "pattern": ARTIFACT_ID_PATTERN},
            "expires_at": timestamp("When the link stops working."),
            "created_at": timestamp("When the link was made."),
        },
    },
    "RevokedLink": {
        "type": "object",
        "required": ["link_id", "revoked", "revoked_at"],
        "properties": {
            "link_id": {"type": "string", "pattern": LINK_ID_PATTERN},
            "revoked": {"const": True},
            "revoked_at": timestamp("When it was revoked."),
        },
    },
}

# /l/ answers for a share link: no signature to fail, but the link itself may be gone.
_LINK_BYTES = byte_responses(["link_not_found"],
                             ["link_expired", "artifact_expired", "artifact_already_deleted"], [])

PATHS: dict[str, Any] = {
    "/v1/artifacts/{artifact_id}/links": {
        "post": op(
            "Create a share link", "createLink",
            {"201": json_ok("Link", "A new link; `url` is absolute."),
             **error_responses("invalid_request", "quota_exceeded", "upload_not_found",
                               *ARTIFACT_GONE)},
            tags=["links"], parameters=[ARTIFACT_ID],
            description=f"The body is optional (a bodiless POST makes a {_DEFAULT_DAYS}-day link). "
                        "A link belongs to the tenant: it survives the key that made it.",
            request_body=json_body("LinkRequest", required=False),
            links={"RevokeLink": {"operationId": "revokeLink",
                                  "parameters": {"link_id": "$response.body#/link_id"}}},
        ),
    },
    "/v1/links/{link_id}": {
        "delete": op(
            "Revoke a share link", "revokeLink",
            {"200": json_ok("RevokedLink", "Revoked; the link then answers 410."),
             **error_responses("link_not_found")},
            tags=["links"], parameters=[LINK_ID],
        ),
    },
    f"{LINK_PREFIX}{{link_id}}": {
        "get": op(
            "Download bytes by share link", "downloadLink", _LINK_BYTES,
            tags=["links"], public=True,
            parameters=[LINK_ID, *byte_params()],
        ),
        "head": op(
            "Headers of a share-link download", "headLink", without_bodies(_LINK_BYTES),
            tags=["links"], public=True,
            parameters=[LINK_ID, *byte_params()],
        ),
        "options": preflight("preflightLink", LINK_ID, "links"),
    },
}
