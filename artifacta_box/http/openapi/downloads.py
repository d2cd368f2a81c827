"""The document of `http/downloads.py`: signed download URLs (one, or a batch) and the bytes
they serve at /d/."""

from __future__ import annotations

from typing import Any

from artifacta_box.http.openapi.parts import (
    ARTIFACT_GONE,
    ARTIFACT_ID,
    SIGNED_QUERY,
    byte_params,
    byte_responses,
    error_responses,
    json_body,
    json_ok,
    op,
    preflight,
    ref,
    without_bodies,
)
from artifacta_box.services.downloads import DOWNLOAD_PREFIX, MAX_BATCH

SCHEMAS: dict[str, Any] = {
    "DownloadUrl": {
        "type": "object",
        "required": ["download_url", "expires_in", "filename", "content_type", "size_bytes"],
        "properties": {
            "download_url": {"type": "string", "pattern": "^https?://", "format": "uri"},
            "expires_in": {"type": "integer", "minimum": 1},
            "filename": {"type": "string"},
            "content_type": {"type": "string"},
            "size_bytes": {"type": "integer", "minimum": 0},
        },
    },
    "BatchDownloadUrlsRequest": {
        "type": "object",
        "required": ["artifact_ids"],
        "properties": {
            "artifact_ids": {
                "type": "array", "minItems": 1, "maxItems": MAX_BATCH,
                "items": {"type": "string"},
            },
        },
    },
    "BatchDownloadUrls": {
        "type": "object",
        "required": ["results"],
        "properties": {
            "results": {
                "type": "array",
                "description": "In request order; one failed id never fails the batch.",
                "items": {
                    "oneOf": [
                        {
                            "allOf": [ref("DownloadUrl")],
                            "required": ["artifact_id"],
                            "properties": {"artifact_id": {"type": "string"}},
                            "not": {"required": ["error"]},
                        },
                        {
                            "type": "object",
                            "required": ["artifact_id", "error"],
                            "properties": {
                                "artifact_id": {"type": "string"},
                                "error": ref("ErrorBody"),
                            },
                        },
                    ],
                },
            },
        },
    },
}

# /d/ answers for a signed URL: a bad or expired signature is 403, a purged artifact 404.
_SIGNED_BYTES = byte_responses(["artifact_not_found"], ARTIFACT_GONE[1:],
                               ["invalid_signature", "url_expired"])

PATHS: dict[str, Any] = {
    "/v1/artifacts/batch/download-urls": {
        "post": op(
            f"Download URLs for up to {MAX_BATCH} artifacts", "batchDownloadUrls",
            {"200": json_ok("BatchDownloadUrls", "One result per requested id, in order."),
             **error_responses("invalid_request")},
            tags=["downloads"],
            request_body=json_body("BatchDownloadUrlsRequest"),
        ),
    },
    "/v1/artifacts/{artifact_id}/download-url": {
        "get": op(
            "A signed download URL", "getDownloadUrl",
            {"200": json_ok("DownloadUrl", "An absolute URL, valid `expires_in` seconds, "
                            "that works without Authorization until it expires or the key "
                            "that minted it is revoked."),
             **error_responses("upload_not_found", *ARTIFACT_GONE)},
            tags=["downloads"], parameters=[ARTIFACT_ID],
        ),
    },
    f"{DOWNLOAD_PREFIX}{{artifact_id}}": {
        "get": op(
            "Download bytes by signed URL", "downloadSigned", _SIGNED_BYTES,
            tags=["downloads"], public=True,
            description="The `download_url` returned by download-url. 403 "
                        "`invalid_signature` once the key that minted it is revoked; share links "
                        "(`/l/`) survive their key.",
            parameters=[ARTIFACT_ID, *SIGNED_QUERY, *byte_params()],
        ),
        "head": op(
            "Headers of a signed download", "headSigned", without_bodies(_SIGNED_BYTES),
            tags=["downloads"], public=True,
            parameters=[ARTIFACT_ID, *SIGNED_QUERY, *byte_params()],
        ),
        "options": preflight("preflightSigned", ARTIFACT_ID, "downloads"),
    },
}
