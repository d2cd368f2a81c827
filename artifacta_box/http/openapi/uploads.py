"""The document of `http/uploads.py`: POST /v1/artifacts (multipart or JSON), the presigned
upload (upload-url, PUT /u/, complete)."""

from __future__ import annotations

from typing import Any

from artifacta_box.config import SETTING_OF
from artifacta_box.http.openapi.parts import (
    ARTIFACT_GONE,
    ARTIFACT_ID,
    BASE64_PATTERN,
    DEFAULT_PLAN,
    LABEL_OR_EMPTY,
    SHA256_PATTERN,
    SIGNED_QUERY,
    error_responses,
    json_body,
    json_ok,
    op,
    optional,
    ref,
    size_text,
    timestamp,
)
from artifacta_box.services.validation import (
    ARTIFACT_ID_PATTERN,
    IDEMPOTENCY_KEY_PATTERN,
    MAX_FILENAME,
    MAX_IDEMPOTENCY_KEY,
)

_JSON_LIMIT = size_text(DEFAULT_PLAN.max_json_bytes)
_MULTIPART_LIMIT = size_text(DEFAULT_PLAN.max_multipart_bytes)
_PRESIGNED_LIMIT = size_text(DEFAULT_PLAN.max_presigned_bytes)
_IDEMPOTENCY_HOURS = SETTING_OF["idempotency_seconds"].default / 3600

SCHEMAS: dict[str, Any] = {
    "JsonUpload": {
        "type": "object",
        "required": ["filename", "content"],
        "properties": {
            "filename": {"type": "string", "minLength": 1, "maxLength": MAX_FILENAME},
            "content": {
                "type": "string", "contentEncoding": "base64", "pattern": BASE64_PATTERN,
                "description": f"The bytes, base64-encoded; at most {_JSON_LIMIT} decoded (plan).",
            },
            "content_encoding": {
                "const": "base64", "description": "The only encoding; the default.",
            },
            "content_type": optional({"type": "string"}),
            "session_id": optional({"type": "string", "pattern": LABEL_OR_EMPTY}),
            "agent_id": optional({"type": "string", "pattern": LABEL_OR_EMPTY}),
            "metadata": optional(ref("Metadata")),
            "ttl": optional(ref("Ttl")),
        },
    },
    "MultipartUpload": {
        "type": "object",
        "required": ["file"],
        "description": "Text fields may come before or after the file part.",
        "properties": {
            "file": {
                "type": "string", "format": "binary",
                "description": "The bytes, with the part's filename and Content-Type.",
            },
            "filename": {"type": "string", "description": "Else the part's filename."},
            "content_type": {
                "type": "string",
                "description": "Else the part's Content-Type unless application/octet-stream, "
                               "else guessed from the filename.",
            },
            "session_id": {"type": "string", "pattern": LABEL_OR_EMPTY},
            "agent_id": {"type": "string", "pattern": LABEL_OR_EMPTY},
            "ttl": ref("Ttl"),
            "metadata": {
                "type": "string", "contentMediaType": "application/json",
                "description": "A JSON object, encoded as a string.",
            },
        },
    },
    "UploadUrlRequest": {
        "type": "object",
        "required": ["filename", "size_bytes"],
        "properties": {
            "filename": {"type": "string", "minLength": 1, "maxLength": MAX_FILENAME},
            "content_type": optional({"type": "string"}),
            "size_bytes": {
                "type": "integer", "minimum": 1,
                "description": f"Exact size of the bytes to come; at most {_PRESIGNED_LIMIT} "
                               "(plan).",
            },
            "session_id": optional({"type": "string", "pattern": LABEL_OR_EMPTY}),
            "agent_id": optional({"type": "string", "pattern": LABEL_OR_EMPTY}),
            "metadata": optional(ref("Metadata")),
            "ttl": optional(ref("Ttl")),
        },
    },
    "UploadUrl": {
        "type": "object",
        "required": [
            "artifact_id", "status", "upload_url", "upload_method", "upload_headers",
            "upload_expires_at", "expires_in",
        ],
        "properties": {
            "artifact_id": {"type": "string", "pattern": ARTIFACT_ID_PATTERN},
            "status": {"const": "pending"},
            "upload_url": {"type": "string", "pattern": "^https?://", "format": "uri"},
            "upload_method": {"const": "PUT"},
            "upload_headers": {
                "type": "object", "additionalProperties": {"type": "string"},
                "required": ["Content-Type"],
            },
            "upload_expires_at": timestamp("When upload_url stops working."),
            "expires_in": {"type": "integer", "minimum": 1},
        },
    },
    "UploadReceived": {
        "type": "object",
        "description": "The bytes arrived; call complete to make the artifact active.",
        "required": ["artifact_id", "status", "size_bytes", "sha256"],
        "properties": {
            "artifact_id": {"type": "string", "pattern": ARTIFACT_ID_PATTERN},
            "status": {"const": "pending"},
            "size_bytes": {"type": "integer", "minimum": 1},
            "sha256": {"type": "string", "pattern": SHA256_PATTERN},
        },
    },
}


def _artifact_links() -> dict[str, dict]:
    """What a client can do next with the artifact an upload returns."""
    ref_id = {"artifact_id": "$response.body#/artifact_id"}
    return {
        "GetArtifact": {"operationId": "getArtifact", "parameters": ref_id},
        "DeleteArtifact": {"operationId": "deleteArtifact", "parameters": ref_id},
        "GetDownloadUrl": {"operationId": "getDownloadUrl", "parameters": ref_id},
        "CreateLink": {"operationId": "createLink", "parameters": ref_id},
        "ExtendTtl": {"operationId": "extendTtl", "parameters": ref_id},
    }


_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": f"Up to {MAX_IDEMPOTENCY_KEY} printable ASCII characters, per tenant, kept "
                   f"{_IDEMPOTENCY_HOURS:g} h. The same key with the same request replays the "
                   "original.",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY,
               "pattern": IDEMPOTENCY_KEY_PATTERN},
}

PATHS: dict[str, Any] = {
    "/v1/artifacts": {
        "post": op(
            "Upload an artifact", "uploadArtifact",
            {
                "201": json_ok("Artifact", "Created (`status: active`).", headers=None),
                "200": json_ok(
                    "Artifact", "An idempotent replay: the original artifact.",
                    headers={"Idempotent-Replayed": {
                        "schema": {"const": "true"}, "required": True,
                        "description": "The response replays the original upload."}}),
                **error_responses("invalid_request", "ttl_exceeds_plan_limit", "quota_exceeded",
                                  "session_sealed", "file_too_large"),
            },
            tags=["artifacts"],
            parameters=[_IDEMPOTENCY_KEY],
            request_body={
                "required": True,
                "description": f"multipart/form-data (≤ {_MULTIPART_LIMIT}, may be chunked) or a "
                               f"JSON body with base64 content (≤ {_JSON_LIMIT} decoded).",
                "content": {
                    "multipart/form-data": {"schema": ref("MultipartUpload")},
                    "application/json": {"schema": ref("JsonUpload")},
                },
            },
            links=_artifact_links(),
        ),
    },
    "/v1/artifacts/upload-url": {
        "post": op(
            "Reserve a presigned upload", "requestUploadUrl",
            {"200": json_ok("UploadUrl", "A pending artifact and the URL to PUT its bytes "
                            "to (no Authorization needed)."),
             **error_responses("invalid_request", "ttl_exceeds_plan_limit", "quota_exceeded",
                               "session_sealed", "file_too_large")},
            tags=["uploads"],
            request_body=json_body("UploadUrlRequest"),
            links={
                "CompleteUpload": {"operationId": "completeUpload",
                                   "parameters": {"artifact_id": "$response.body#/artifact_id"}},
                "GetPendingArtifact": {"operationId": "getArtifact",
                                       "parameters": {"artifact_id": "$response.body#/artifact_id"}},
            },
        ),
    },
    "/v1/artifacts/{artifact_id}/complete": {
        "post": op(
            "Complete a presigned upload", "completeUpload",
            {"200": json_ok("Artifact", "The now active artifact (idempotent)."),
             **error_responses("upload_not_found", "session_sealed", "quota_exceeded",
                               *ARTIFACT_GONE)},
            tags=["uploads"], parameters=[ARTIFACT_ID],
            description="No body. Bytes not arrived → 400 `upload_not_found`.",
        ),
    },
    "/u/{artifact_id}": {
        "put": op(
            "Upload the bytes of a presigned upload", "putUploadBytes",
            {"200": json_ok("UploadReceived", "Stored; call complete next.",
                            headers={"ETag": {"schema": {"type": "string"},
                                              "description": "The SHA-256, quoted.",
                                              "required": True}}),
             **error_responses("invalid_request", "invalid_signature", "url_expired", "conflict",
                               "rate_limited", "artifact_not_found", "session_sealed",
                               "file_too_large", auth=False)},
            tags=["uploads"], public=True,
            description="The `upload_url` returned by upload-url. The body length must equal "
                        "the reserved size_bytes. A retried PUT replaces an earlier one "
                        "until complete; after complete → 409 `conflict`. 403 "
                        "`invalid_signature` once the key that minted the URL is revoked.",
            parameters=[ARTIFACT_ID, *SIGNED_QUERY],
            request_body={"required": True, "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                "*/*": {"schema": {"type": "string", "format": "binary"}}}},
        ),
    },
}
