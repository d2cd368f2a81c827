"""The document of `http/pages.py`: publishing an artifact as a page (`/a/<slug>`) and taking
it down. The pages themselves are HTML for people (`http/public_pages.py`), not API."""

from __future__ import annotations

from typing import Any

from artifacta_box.http.openapi.parts import (
    ARTIFACT_GONE,
    ARTIFACT_ID,
    error_responses,
    json_body,
    json_ok,
    op,
    timestamp,
)
from artifacta_box.services.pages import (
    ACCESS_MODES,
    DEFAULT_ACCESS,
    DEFAULT_VISIBILITY,
    MAX_PASSWORD_CHARS,
    MAX_TITLE_CHARS,
    PAGE_PREFIX,
    VISIBILITIES,
)
from artifacta_box.services.validation import ARTIFACT_ID_PATTERN, PAGE_ID_PATTERN, PAGE_SLUG_PATTERN

SCHEMAS: dict[str, Any] = {
    "PublishRequest": {
        "type": "object",
        "description": "Every field is optional; null is the same as absent.",
        "properties": {
            "visibility": {
                "enum": [*VISIBILITIES, None], "default": DEFAULT_VISIBILITY,
                "description": "unlisted: anyone with the URL, and the page asks not to be "
                               "indexed (X-Robots-Tag: noindex); public: also listed at /a/.",
            },
            "access": {
                "enum": [*ACCESS_MODES, None], "default": DEFAULT_ACCESS,
                "description": "password: visitors must enter `password` first.",
            },
            "password": {
                "type": ["string", "null"], "minLength": 1, "maxLength": MAX_PASSWORD_CHARS,
                "description": "Required with access `password`, refused without it; stored as "
                               "a scrypt hash. Send it again on every re-publish.",
            },
            "title": {
                "type": ["string", "null"], "maxLength": MAX_TITLE_CHARS,
                "description": "Shown as the page's heading; absent or null: the filename.",
            },
        },
    },
    "Page": {
        "type": "object",
        "required": ["page_id", "public_url", "visibility", "access", "title", "created_at",
                     "updated_at"],
        "properties": {
            "page_id": {"type": "string", "pattern": PAGE_ID_PATTERN},
            "public_url": {"type": "string",
                           "pattern": f"^https?://.*{PAGE_PREFIX}{PAGE_SLUG_PATTERN[1:]}"},
            "visibility": {"enum": list(VISIBILITIES)},
            "access": {"enum": list(ACCESS_MODES)},
            "title": {"type": ["string", "null"]},
            "created_at": timestamp("When the page was first published."),
            "updated_at": timestamp("When it was last published."),
        },
    },
    "UnpublishedPage": {
        "type": "object",
        "required": ["artifact_id", "published", "page_id", "unpublished_at"],
        "properties": {
            "artifact_id": {"type": "string", "pattern": ARTIFACT_ID_PATTERN},
            "published": {"const": False},
            "page_id": {"type": ["string", "null"], "pattern": PAGE_ID_PATTERN,
                        "description": "The artifact's last page; null if it never had one."},
            "unpublished_at": timestamp("When that page was taken down.", nullable=True),
        },
    },
}

PATHS: dict[str, Any] = {
    "/v1/artifacts/{artifact_id}/publish": {
        "post": op(
            "Publish an artifact as a page", "publishArtifact",
            {"201": json_ok("Page", "Published; `public_url` is absolute."),
             "200": json_ok("Page", "Already published: the page now has these settings, "
                                    "under the same URL."),
             **error_responses("invalid_request", "quota_exceeded", "upload_not_found",
                               *ARTIFACT_GONE)},
            tags=["pages"], parameters=[ARTIFACT_ID],
            description=(
                "The page at `public_url` shows the artifact's title, filename, size, date, a "
                "preview and a download button to anyone with the URL (no key). Each publish "
                "states the whole page: a field left out takes its default. Over the plan's "
                "`max_pages` → 403 `quota_exceeded`. A page stops showing (HTML 410) when it is "
                "taken down or its artifact is deleted or expires."),
            request_body=json_body("PublishRequest", required=False),
        ),
        "delete": op(
            "Take an artifact's page down", "unpublishArtifact",
            {"200": json_ok("UnpublishedPage", "Taken down (or there was nothing to take "
                                               "down); its URL answers 410 from now on.")
             , **error_responses("upload_not_found", *ARTIFACT_GONE)},
            tags=["pages"], parameters=[ARTIFACT_ID],
            description="Idempotent. Publishing the artifact again makes a new page under a "
                        "new URL.",
        ),
    },
}
