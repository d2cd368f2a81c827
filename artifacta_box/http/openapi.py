"""`GET /openapi.json`: the OpenAPI 3.1 document of the whole API (SPEC §1–§3, §5).

The document is built here as plain Python data (no data file to ship or bundle). It is kept
honest by `tests/api/test_openapi.py`, which compares its paths and methods with the routes the
app really registers, and by the schemathesis run in `tests/fuzz/`, which checks every response
against it. When you add or change a route, change this document in the same commit.

Error responses are described per operation and status: each lists exactly the error codes that
operation can answer with at that status (the `code` enum), so a client — or the fuzzer — can
tell a documented error from an accident.
"""

from __future__ import annotations

import copy
from typing import Any

from sanic import Blueprint, Request

from artifacta_box import __version__, errors
from artifacta_box.errors import ERROR_CODES
from artifacta_box.http.common import base_url, ok

bp = Blueprint("openapi")

# ----------------------------------------------------------------------------- error codes

# Codes whose status differs from ERROR_CODES in one documented case.
HEADERS_TOO_LARGE = (errors.HeadersTooLarge.code, errors.HeadersTooLarge.status)

# Errors any route can answer: a request that never reached a handler (malformed request line,
# body over the route's limit, headers too large, timeout), a crash, or the box being unable to
# serve (database, storage, shutting down).
TRANSPORT_ERRORS: list[tuple[str, int]] = [
    ("invalid_request", 400),
    ("request_timeout", 408),
    ("file_too_large", 413),
    HEADERS_TOO_LARGE,
    ("internal_error", 500),
    ("unavailable", 503),
]
# Errors every authenticated /v1 route can answer before its handler runs (SPEC §1).
AUTH_ERRORS: list[str] = ["unauthorized", "quota_exceeded", "rate_limited"]

ARTIFACT_GONE = ["artifact_not_found", "artifact_expired", "artifact_already_deleted"]

TIMESTAMP_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$"
LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
LABEL_OR_EMPTY = r"^([A-Za-z0-9][A-Za-z0-9._-]{0,127})?$"  # in requests, empty means none
ARTIFACT_ID_PATTERN = r"^art_[A-Za-z0-9]{16}$"
LINK_ID_PATTERN = r"^lnk_[A-Za-z0-9]{20}$"
METADATA_KEY_PATTERN = r"^[a-zA-Z][a-zA-Z0-9_-]{0,63}$"
TTL_PATTERN = r"^([1-9][0-9]{0,9}[smhdw]|never)?$"
BASE64_PATTERN = r"^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _optional(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional request field: null is the same as leaving it out."""
    return {"anyOf": [schema, {"type": "null"}]}


def _timestamp(description: str, nullable: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": ["string", "null"] if nullable else "string",
        "pattern": TIMESTAMP_PATTERN,
        "description": description,
    }
    return schema


# ----------------------------------------------------------------------------- schemas

RATE_HEADERS = {
    "X-RateLimit-Limit": {
        "description": "The tenant's sustained rate, tokens per second.",
        "schema": {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"},
        "required": True,
    },
    "X-RateLimit-Remaining": {
        "description": "Whole tokens left in the tenant's bucket.",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
        "required": True,
    },
    "X-RateLimit-Reset": {
        "description": "Unix seconds when the bucket is full again.",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
        "required": True,
    },
}
REQUEST_ID_HEADER = {
    "X-Request-Id": {
        "description": "Identifies the request in the server log.",
        "schema": {"type": "string"},
    }
}


def _schemas() -> dict[str, Any]:
    artifact_record = {
        "type": "object",
        "description": "An artifact (SPEC §2). Content and metadata are immutable.",
        "additionalProperties": False,
        "required": [
            "artifact_id", "filename", "content_type", "size_bytes", "content_hash",
            "session_id", "agent_id", "metadata", "status", "expires_at", "created_at",
        ],
        "properties": {
            "artifact_id": {"type": "string", "pattern": ARTIFACT_ID_PATTERN},
            "filename": {
                "type": "string", "minLength": 1, "maxLength": 255,
                "description": "A label, never used as a path; no control characters.",
            },
            "content_type": {"type": "string", "minLength": 1},
            "size_bytes": {"type": "integer", "minimum": 0},
            "content_hash": {
                "type": ["string", "null"], "pattern": "^[0-9a-f]{64}$",
                "description": "SHA-256 of the bytes, lowercase hex; null while pending.",
            },
            "session_id": {"type": ["string", "null"], "pattern": LABEL_PATTERN},
            "agent_id": {"type": ["string", "null"], "pattern": LABEL_PATTERN},
            "metadata": _ref("Metadata"),
            "status": {"type": "string", "enum": ["active", "pending"]},
            "expires_at": _timestamp("When the artifact expires; null for ttl 'never'.", True),
            "created_at": _timestamp("When the artifact was created."),
        },
    }
    error_body = {
        "type": "object",
        "required": ["code", "message", "status"],
        "additionalProperties": False,
        "properties": {
            "code": {"type": "string", "enum": sorted(ERROR_CODES)},
            "message": {"type": "string", "minLength": 1, "description": "For humans."},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "retry_after_seconds": {
                "type": "integer", "minimum": 1, "description": "429 only: seconds to wait.",
            },
            "retry_after": {
                "type": "integer", "minimum": 1, "description": "429 only: same as retry_after_seconds.",
            },
            "upgrade_url": {
                "type": "string", "description": "quota_exceeded only, when the box configures one.",
            },
        },
    }
    return {
        "ErrorEnvelope": {
            "type": "object",
            "description": "Every error, on every route. `code` is the stable contract.",
            "required": ["error"],
            "additionalProperties": False,
            "properties": {"error": _ref("ErrorBody")},
        },
        "ErrorBody": error_body,
        "Metadata": {
            "type": "object",
            "description": "String keys (`^[a-zA-Z][a-zA-Z0-9_-]{0,63}$`) to strings of at most "
                           "1,024 characters; at most 8,192 bytes as compact UTF-8 JSON.",
            "propertyNames": {"pattern": METADATA_KEY_PATTERN},
            "additionalProperties": {"type": "string", "maxLength": 1024},
        },
        "Ttl": {
            "type": "string",
            "pattern": TTL_PATTERN,
            "description": "A positive integer and a unit s, m, h, d or w, or 'never'. "
                           "Absent or empty: the plan's default TTL (30d).",
        },
        "Artifact": artifact_record,
        "ArtifactList": {
            "type": "object",
            "required": ["artifacts", "next_cursor", "has_more"],
            "properties": {
                "artifacts": {"type": "array", "items": _ref("Artifact")},
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
                "deleted_at": _timestamp("When it was deleted."),
            },
        },
        "ExtendTtlRequest": {
            "type": "object",
            "required": ["ttl"],
            "properties": {"ttl": _ref("Ttl")},
        },
        "JsonUpload": {
            "type": "object",
            "required": ["filename", "content"],
            "properties": {
                "filename": {"type": "string", "minLength": 1, "maxLength": 255},
                "content": {
                    "type": "string", "contentEncoding": "base64", "pattern": BASE64_PATTERN,
                    "description": "The bytes, base64-encoded; at most 10 MB decoded (plan).",
                },
                "content_encoding": {
                    "const": "base64", "description": "The only encoding; the default.",
                },
                "content_type": _optional({"type": "string"}),
                "session_id": _optional({"type": "string", "pattern": LABEL_OR_EMPTY}),
                "agent_id": _optional({"type": "string", "pattern": LABEL_OR_EMPTY}),
                "metadata": _optional(_ref("Metadata")),
                "ttl": _optional(_ref("Ttl")),
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
                "ttl": _ref("Ttl"),
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
                "filename": {"type": "string", "minLength": 1, "maxLength": 255},
                "content_type": _optional({"type": "string"}),
                "size_bytes": {
                    "type": "integer", "minimum": 1,
                    "description": "Exact size of the bytes to come; at most 5 GB (plan).",
                },
                "session_id": _optional({"type": "string", "pattern": LABEL_OR_EMPTY}),
                "agent_id": _optional({"type": "string", "pattern": LABEL_OR_EMPTY}),
                "metadata": _optional(_ref("Metadata")),
                "ttl": _optional(_ref("Ttl")),
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
                "upload_expires_at": _timestamp("When upload_url stops working."),
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
                "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            },
        },
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
                    "type": "array", "minItems": 1, "maxItems": 20,
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
                                "allOf": [_ref("DownloadUrl")],
                                "required": ["artifact_id"],
                                "properties": {"artifact_id": {"type": "string"}},
                                "not": {"required": ["error"]},
                            },
                            {
                                "type": "object",
                                "required": ["artifact_id", "error"],
                                "properties": {
                                    "artifact_id": {"type": "string"},
                                    "error": _ref("ErrorBody"),
                                },
                            },
                        ],
                    },
                },
            },
        },
        "LinkRequest": {
            "type": "object",
            "properties": {
                "expires_in": {
                    "type": ["integer", "null"], "minimum": 1,
                    "description": "Seconds; default (also for null) 604800 (7 days); at most "
                                   "the plan's maximum.",
                },
            },
        },
        "Link": {
            "type": "object",
            "required": ["link_id", "url", "artifact_id", "expires_at", "created_at"],
            "properties": {
                "link_id": {"type": "string", "pattern": LINK_ID_PATTERN},
                "url": {"type": "string", "pattern": "^https?://.*/l/lnk_[A-Za-z0-9]{20}$"},
                "artifact_id": {"type": "string", "pattern": ARTIFACT_ID_PATTERN},
                "expires_at": _timestamp("When the link stops working."),
                "created_at": _timestamp("When the link was made."),
            },
        },
        "RevokedLink": {
            "type": "object",
            "required": ["link_id", "revoked", "revoked_at"],
            "properties": {
                "link_id": {"type": "string", "pattern": LINK_ID_PATTERN},
                "revoked": {"const": True},
                "revoked_at": _timestamp("When it was revoked."),
            },
        },
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
                "first_artifact_at": _timestamp("First upload into the session.", True),
                "last_artifact_at": _timestamp("Latest upload into the session.", True),
                "sealed_at": _timestamp("When it was sealed; null while open.", True),
            },
        },
        "SessionList": {
            "type": "object",
            "required": ["sessions", "next_cursor", "has_more"],
            "properties": {
                "sessions": {"type": "array", "items": _ref("Session")},
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
                "sealed_at": _timestamp("When it was first sealed."),
                "artifact_count": {"type": "integer", "minimum": 0},
            },
        },
        "Whoami": {
            "type": "object",
            "required": [
                "tenant_name", "plan", "api_key_last_4", "usage_requests_month",
                "plan_requests_limit_month", "usage_storage_bytes", "plan_storage_limit_bytes",
                "active_links", "max_active_links", "rate_limit_sustained", "rate_limit_burst",
            ],
            "properties": {
                "tenant_name": {"type": "string"},
                "plan": {"type": "string"},
                "api_key_last_4": {"type": "string", "pattern": "^[A-Za-z0-9]{4}$"},
                "usage_requests_month": {"type": "integer", "minimum": 0},
                "plan_requests_limit_month": {"type": "integer", "minimum": 0},
                "usage_storage_bytes": {"type": "integer", "minimum": 0},
                "plan_storage_limit_bytes": {"type": "integer", "minimum": 0},
                "active_links": {"type": "integer", "minimum": 0},
                "max_active_links": {"type": "integer", "minimum": 0},
                "rate_limit_sustained": {"type": "integer", "minimum": 0},
                "rate_limit_burst": {"type": "integer", "minimum": 0},
            },
            "not": {"anyOf": [{"required": ["tenant_id"]}, {"required": ["key_hash"]}]},
        },
        "Health": {
            "type": "object",
            "required": ["status", "version"],
            "properties": {
                "status": {"const": "ok"},
                "version": {"type": "string", "pattern": r"^[0-9]+\.[0-9]+\.[0-9]+"},
            },
        },
    }


# ----------------------------------------------------------------------------- parameters

def _path_param(name: str, pattern: str, description: str) -> dict[str, Any]:
    return {
        "name": name, "in": "path", "required": True, "description": description,
        "schema": {"type": "string", "pattern": pattern},
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}


ARTIFACT_ID = _path_param("artifact_id", ARTIFACT_ID_PATTERN,
                          "`art_` and 16 letters or digits. Another tenant's id is 404.")
LINK_ID = _path_param("link_id", LINK_ID_PATTERN, "`lnk_` and 20 letters or digits.")
SESSION_ID = _path_param("session_id", LABEL_PATTERN, "A caller-chosen session label.")
LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
               "Page size, 1-200; outside → 400 invalid_request.")
CURSOR = _query("cursor", {"type": "string"},
                "`next_cursor` of the previous page, unchanged. Forged or foreign → 400; "
                "empty means the first page.")
_DATE_BOUND = {"type": "string", "anyOf": [{"format": "date-time"}, {"maxLength": 0}]}
CREATED_AFTER = _query("created_after", _DATE_BOUND,
                       "Exclusive lower bound, ISO 8601 with `Z` or an offset; empty means none.")
CREATED_BEFORE = _query("created_before", _DATE_BOUND,
                        "Exclusive upper bound, ISO 8601 with `Z` or an offset; empty means none.")

# Unauthenticated byte routes (SPEC §5): the query a signed URL carries.
SIGNED_QUERY = [
    {"name": "e", "in": "query", "required": True,
     "description": "Unix seconds when the URL stops working (bound by the signature).",
     "schema": {"type": "integer"}},
    {"name": "s", "in": "query", "required": True,
     "description": "HMAC signature binding method, artifact, tenant and expiry.",
     "schema": {"type": "string"}},
]


# ----------------------------------------------------------------------------- responses

def _error_response(status: int, codes: list[str], extra_headers: dict | None = None) -> dict:
    description = ", ".join(f"`{c}`" for c in codes)
    schema = {
        "allOf": [_ref("ErrorEnvelope")],
        "properties": {
            "error": {
                "properties": {"code": {"enum": codes}, "status": {"const": status}},
            },
        },
    }
    response: dict[str, Any] = {
        "description": f"Error: {description}.",
        "content": {"application/json": {"schema": schema}},
    }
    headers = dict(extra_headers or {})
    if status == 429:
        headers["Retry-After"] = {
            "description": "Whole seconds to wait, at least 1.",
            "schema": {"type": "string", "pattern": "^[1-9][0-9]*$"},
            "required": True,
        }
    if headers:
        response["headers"] = headers
    return response


def _errors(*codes: str, auth: bool = True) -> dict[str, Any]:
    """Error responses by status for an operation that can answer `codes` (plus the common
    transport errors and, for authenticated routes, the auth-gate errors)."""
    pairs: list[tuple[str, int]] = [(c, ERROR_CODES[c]) for c in codes]
    if auth:
        pairs += [(c, ERROR_CODES[c]) for c in AUTH_ERRORS]
    pairs += TRANSPORT_ERRORS
    by_status: dict[int, list[str]] = {}
    for code, status in pairs:
        if code not in by_status.setdefault(status, []):
            by_status[status].append(code)
    return {str(s): _error_response(s, sorted(c)) for s, c in sorted(by_status.items())}


def _json_ok(schema_name: str, description: str, rate_headers: bool = True,
             headers: dict | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ref(schema_name)}},
    }
    h = {**(copy.deepcopy(RATE_HEADERS) if rate_headers else {}), **(headers or {})}
    if h:
        out["headers"] = h
    return out


def _op(summary: str, operation_id: str, responses: dict[str, Any], *, tags: list[str],
        parameters: list[dict] | None = None, request_body: dict | None = None,
        description: str | None = None, public: bool = False,
        links: dict[str, dict] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "operationId": operation_id, "tags": tags}
    if description:
        op["description"] = description
    if parameters:
        op["parameters"] = parameters
    if request_body:
        op["requestBody"] = request_body
    op["responses"] = responses
    if public:
        op["security"] = []
    if links:
        first_ok = next(k for k in responses if k.startswith("2"))
        responses[first_ok]["links"] = links
    return op


def _artifact_links() -> dict[str, dict]:
    ref = {"artifact_id": "$response.body#/artifact_id"}
    return {
        "GetArtifact": {"operationId": "getArtifact", "parameters": ref},
        "DeleteArtifact": {"operationId": "deleteArtifact", "parameters": ref},
        "GetDownloadUrl": {"operationId": "getDownloadUrl", "parameters": ref},
        "CreateLink": {"operationId": "createLink", "parameters": ref},
        "ExtendTtl": {"operationId": "extendTtl", "parameters": ref},
    }


def _byte_responses(not_found: list[str], gone: list[str], forbidden: list[str]) -> dict:
    binary = {"*/*": {"schema": {"type": "string", "format": "binary"}}}
    common_headers = {
        "ETag": {"description": "The content hash, quoted.", "schema": {"type": "string"},
                 "required": True},
        "Accept-Ranges": {"schema": {"const": "bytes"}, "required": True},
    }
    out = {
        "200": {
            "description": "The bytes. `Content-Disposition: attachment` with the filename "
                           "(RFC 6266 `filename*`).",
            "headers": {
                **common_headers,
                "Content-Disposition": {"schema": {"type": "string", "pattern": "^attachment"},
                                        "required": True},
            },
            "content": binary,
        },
        "206": {"description": "The requested byte range (`Range` header).",
                "headers": common_headers, "content": binary},
        "304": {"description": "Not modified (`If-None-Match` matched the ETag)."},
    }
    codes = ["invalid_request", "rate_limited", "range_not_satisfiable",
             *not_found, *gone, *forbidden]
    out.update(_errors(*codes, auth=False))
    return out


def _byte_params() -> list[dict]:
    return [
        {"name": "Range", "in": "header", "required": False,
         "description": "One byte range, e.g. `bytes=0-99`; unsatisfiable → 416.",
         "schema": {"type": "string"}},
        {"name": "If-None-Match", "in": "header", "required": False,
         "description": "An ETag; a match answers 304.", "schema": {"type": "string"}},
    ]


def _preflight(operation_id: str, param: dict[str, Any], tag: str) -> dict[str, Any]:
    return _op(
        "CORS preflight", operation_id,
        {"204": {"description": "Allowed methods; CORS headers when the Origin is one of "
                                "`server.cors_origins`.",
                 "headers": {"Allow": {"schema": {"const": "GET, HEAD, OPTIONS"},
                                       "required": True}}},
         **_errors(auth=False)},
        tags=[tag], public=True,
        # a preflight answers the same whatever the id: the real request will say if it exists
        parameters=[{**param, "schema": {"type": "string"}}],
    )


def _paths() -> dict[str, Any]:
    record = "The artifact record."
    artifact_errors = ARTIFACT_GONE
    signed_download = "/d/{artifact_id}"
    signed_upload = "/u/{artifact_id}"
    return {
        "/health": {
            "get": _op(
                "Liveness and readiness", "health",
                {"200": _json_ok("Health", "The database answers and storage is writable.",
                                 rate_headers=False),
                 **_errors(auth=False)},
                tags=["system"], public=True,
                description="No auth, no rate limit. 503 `unavailable` names what failed.",
            ),
        },
        "/openapi.json": {
            "get": _op(
                "This document", "openapi",
                {"200": {"description": "The OpenAPI 3.1 document.",
                         "content": {"application/json": {"schema": {"type": "object"}}}},
                 **_errors(auth=False)},
                tags=["system"], public=True,
            ),
        },
        "/metrics": {
            "get": _op(
                "Prometheus metrics", "metrics",
                {"200": {"description": "Prometheus text exposition format.",
                         "content": {"text/plain": {"schema": {"type": "string"}}}},
                 **_errors("unauthorized", auth=False)},
                tags=["system"], public=True,
                description="Open, unless `[metrics] token` is set: then it needs "
                            "`Authorization: Bearer <token>` (401 otherwise).",
            ),
        },
        "/v1/whoami": {
            "get": _op("The calling key's tenant, plan and usage", "whoami",
                       {"200": _json_ok("Whoami", "Tenant, plan, usage and limits; all numbers "
                                        "are integers."), **_errors()},
                       tags=["account"]),
        },
        "/v1/artifacts": {
            "post": _op(
                "Upload an artifact", "uploadArtifact",
                {
                    "201": _json_ok("Artifact", "Created (`status: active`).",
                                    headers=None),
                    "200": _json_ok(
                        "Artifact", "An idempotent replay: the original artifact.",
                        headers={"Idempotent-Replayed": {
                            "schema": {"const": "true"}, "required": True,
                            "description": "The response replays the original upload."}}),
                    **_errors("invalid_request", "ttl_exceeds_plan_limit", "quota_exceeded",
                              "session_sealed", "file_too_large"),
                },
                tags=["artifacts"],
                parameters=[{
                    "name": "Idempotency-Key", "in": "header", "required": False,
                    "description": "Up to 256 printable ASCII characters, per tenant, kept 24 h. "
                                   "The same key with the same request replays the original.",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 256,
                               "pattern": "^[!-~]+$"},
                }],
                request_body={
                    "required": True,
                    "description": "multipart/form-data (≤ 500 MB, may be chunked) or a JSON "
                                   "body with base64 content (≤ 10 MB decoded).",
                    "content": {
                        "multipart/form-data": {"schema": _ref("MultipartUpload")},
                        "application/json": {"schema": _ref("JsonUpload")},
                    },
                },
                links=_artifact_links(),
            ),
            "get": _op(
                "List artifacts", "listArtifacts",
                {"200": _json_ok("ArtifactList", "A page, newest first "
                                 "(`created_at DESC, artifact_id DESC`)."),
                 **_errors("invalid_request", "quota_exceeded")},
                tags=["artifacts"],
                description="Filters are exact matches, ANDed. `metadata.<key>=<value>` filters "
                            "on metadata (several allowed, up to the plan's limit; over → 403 "
                            "`quota_exceeded`; a bad key → 400). Only active, live artifacts "
                            "are listed.",
                parameters=[
                    _query("session_id", {"type": "string"}, "Exact session id."),
                    _query("agent_id", {"type": "string"}, "Exact agent id."),
                    _query("filename", {"type": "string"}, "Exact filename."),
                    _query("content_type", {"type": "string"}, "Exact content type."),
                    CREATED_AFTER, CREATED_BEFORE, LIMIT, CURSOR,
                ],
            ),
        },
        "/v1/artifacts/upload-url": {
            "post": _op(
                "Reserve a presigned upload", "requestUploadUrl",
                {"200": _json_ok("UploadUrl", "A pending artifact and the URL to PUT its bytes "
                                 "to (no Authorization needed)."),
                 **_errors("invalid_request", "ttl_exceeds_plan_limit", "quota_exceeded",
                           "session_sealed", "file_too_large")},
                tags=["uploads"],
                request_body={"required": True, "content": {
                    "application/json": {"schema": _ref("UploadUrlRequest")}}},
                links={
                    "CompleteUpload": {"operationId": "completeUpload",
                                       "parameters": {"artifact_id": "$response.body#/artifact_id"}},
                    "GetPendingArtifact": {"operationId": "getArtifact",
                                           "parameters": {"artifact_id": "$response.body#/artifact_id"}},
                },
            ),
        },
        "/v1/artifacts/batch/download-urls": {
            "post": _op(
                "Download URLs for up to 20 artifacts", "batchDownloadUrls",
                {"200": _json_ok("BatchDownloadUrls", "One result per requested id, in order."),
                 **_errors("invalid_request")},
                tags=["downloads"],
                request_body={"required": True, "content": {
                    "application/json": {"schema": _ref("BatchDownloadUrlsRequest")}}},
            ),
        },
        "/v1/artifacts/{artifact_id}": {
            "get": _op("Get an artifact (pending ones too)", "getArtifact",
                       {"200": _json_ok("Artifact", record), **_errors(*artifact_errors)},
                       tags=["artifacts"], parameters=[ARTIFACT_ID]),
            "delete": _op(
                "Soft-delete an artifact", "deleteArtifact",
                {"200": _json_ok("DeletedArtifact", "Deleted; gone from lists at once."),
                 **_errors(*artifact_errors)},
                tags=["artifacts"], parameters=[ARTIFACT_ID],
                description="A second DELETE answers 410 `artifact_already_deleted`.",
            ),
        },
        "/v1/artifacts/{artifact_id}/extend-ttl": {
            "post": _op(
                "Extend an artifact's TTL", "extendTtl",
                {"200": _json_ok("Artifact", "The updated record."),
                 **_errors("invalid_request", "ttl_exceeds_plan_limit", "upload_not_found",
                           *artifact_errors)},
                tags=["artifacts"], parameters=[ARTIFACT_ID],
                description="New expires_at = now + ttl; an earlier result than the current "
                            "one → 400. A presigned upload not completed yet → 400 "
                            "`upload_not_found`.",
                request_body={"required": True, "content": {
                    "application/json": {"schema": _ref("ExtendTtlRequest")}}},
            ),
        },
        "/v1/artifacts/{artifact_id}/complete": {
            "post": _op(
                "Complete a presigned upload", "completeUpload",
                {"200": _json_ok("Artifact", "The now active artifact (idempotent)."),
                 **_errors("upload_not_found", "session_sealed", "quota_exceeded",
                           *artifact_errors)},
                tags=["uploads"], parameters=[ARTIFACT_ID],
                description="No body. Bytes not arrived → 400 `upload_not_found`.",
            ),
        },
        "/v1/artifacts/{artifact_id}/download-url": {
            "get": _op(
                "A signed download URL", "getDownloadUrl",
                {"200": _json_ok("DownloadUrl", "An absolute URL, valid `expires_in` seconds, "
                                 "that works without Authorization."),
                 **_errors("upload_not_found", *artifact_errors)},
                tags=["downloads"], parameters=[ARTIFACT_ID],
            ),
        },
        "/v1/artifacts/{artifact_id}/links": {
            "post": _op(
                "Create a share link", "createLink",
                {"201": _json_ok("Link", "A new link; `url` is absolute."),
                 **_errors("invalid_request", "quota_exceeded", "upload_not_found",
                           *artifact_errors)},
                tags=["links"], parameters=[ARTIFACT_ID],
                description="The body is optional (a bodiless POST makes a 7-day link).",
                request_body={"required": False, "content": {
                    "application/json": {"schema": _ref("LinkRequest")}}},
                links={"RevokeLink": {"operationId": "revokeLink",
                                      "parameters": {"link_id": "$response.body#/link_id"}}},
            ),
        },
        "/v1/links/{link_id}": {
            "delete": _op(
                "Revoke a share link", "revokeLink",
                {"200": _json_ok("RevokedLink", "Revoked; the link then answers 410."),
                 **_errors("link_not_found")},
                tags=["links"], parameters=[LINK_ID],
            ),
        },
        "/v1/sessions": {
            "get": _op(
                "List sessions", "listSessions",
                {"200": _json_ok("SessionList", "A page, most recent activity first."),
                 **_errors("invalid_request")},
                tags=["sessions"],
                description="A `+` in an offset may arrive as a space (the official clients "
                            "do not URL-encode this query); it is read as `+`.",
                parameters=[
                    CREATED_AFTER, CREATED_BEFORE, LIMIT,
                    _query("after", {"type": "string"},
                           "`next_cursor` of the previous page; empty means the first page."),
                    _query("cursor", {"type": "string"}, "Alias of `after`."),
                ],
            ),
        },
        "/v1/sessions/{session_id}/seal": {
            "post": _op(
                "Seal a session", "sealSession",
                {"200": _json_ok("SealedSession", "Sealed (sealing again returns the same "
                                 "sealed_at)."),
                 **_errors("invalid_request", "session_not_found")},
                tags=["sessions"], parameters=[SESSION_ID],
                description="No body. Afterwards every upload into the session → 409.",
            ),
        },
        signed_upload: {
            "put": _op(
                "Upload the bytes of a presigned upload", "putUploadBytes",
                {"200": _json_ok("UploadReceived", "Stored; call complete next.",
                                 headers={"ETag": {"schema": {"type": "string"},
                                                   "description": "The SHA-256, quoted.",
                                                   "required": True}}),
                 **_errors("invalid_request", "invalid_signature", "url_expired", "conflict",
                           "rate_limited", "artifact_not_found", "session_sealed", "file_too_large",
                           auth=False)},
                tags=["uploads"], public=True,
                description="The `upload_url` returned by upload-url. The body length must equal "
                            "the reserved size_bytes. A retried PUT replaces an earlier one "
                            "until complete; after complete → 409 `conflict`.",
                parameters=[ARTIFACT_ID, *SIGNED_QUERY],
                request_body={"required": True, "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                    "*/*": {"schema": {"type": "string", "format": "binary"}}}},
            ),
        },
        signed_download: {
            "get": _op(
                "Download bytes by signed URL", "downloadSigned",
                _byte_responses(["artifact_not_found"], ARTIFACT_GONE[1:],
                                ["invalid_signature", "url_expired"]),
                tags=["downloads"], public=True,
                description="The `download_url` returned by download-url.",
                parameters=[ARTIFACT_ID, *SIGNED_QUERY, *_byte_params()],
            ),
            "head": _op(
                "Headers of a signed download", "headSigned",
                {k: {kk: vv for kk, vv in v.items() if kk != "content"}
                 for k, v in _byte_responses(["artifact_not_found"], ARTIFACT_GONE[1:],
                                             ["invalid_signature", "url_expired"]).items()},
                tags=["downloads"], public=True,
                parameters=[ARTIFACT_ID, *SIGNED_QUERY, *_byte_params()],
            ),
            "options": _preflight("preflightSigned", ARTIFACT_ID, "downloads"),
        },
        "/l/{link_id}": {
            "get": _op(
                "Download bytes by share link", "downloadLink",
                _byte_responses(["link_not_found"],
                                ["link_expired", "artifact_expired", "artifact_already_deleted"],
                                []),
                tags=["links"], public=True,
                parameters=[LINK_ID, *_byte_params()],
            ),
            "head": _op(
                "Headers of a share-link download", "headLink",
                {k: {kk: vv for kk, vv in v.items() if kk != "content"}
                 for k, v in _byte_responses(
                     ["link_not_found"],
                     ["link_expired", "artifact_expired", "artifact_already_deleted"],
                     []).items()},
                tags=["links"], public=True,
                parameters=[LINK_ID, *_byte_params()],
            ),
            "options": _preflight("preflightLink", LINK_ID, "links"),
        },
    }


def build_document(server_url: str | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document; `server_url` becomes its one server when given."""
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Artifacta Box API",
            "version": __version__,
            "summary": "The Artifacta v1 artifact-store API, self-hosted.",
            "description": (
                "Upload files with metadata, group them by session, list and filter them, hand "
                "out expiring signed download URLs and share links, expire them by TTL.\n\n"
                "Every error has the shape `{\"error\": {\"code\", \"message\", \"status\"}}`; "
                "`code` is the stable contract. Every authenticated or signed request takes one "
                "token from the tenant's rate-limit bucket and its response carries "
                "`X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`."
            ),
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": server_url or "/"}],
        "security": [{"bearerAuth": []}],
        "tags": [{"name": t} for t in
                 ("system", "account", "artifacts", "uploads", "downloads", "links", "sessions")],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http", "scheme": "bearer",
                    "bearerFormat": "ak_live_<32 letters or digits>",
                    "description": "An API key made by `artifacta-box keys create`.",
                },
            },
            "schemas": _schemas(),
        },
    }
    return doc


_DOCUMENT = build_document()


@bp.get("/openapi.json")
async def openapi_document(request: Request):
    doc = dict(_DOCUMENT)
    doc["servers"] = [{"url": base_url(request)}]
    return ok(doc)
