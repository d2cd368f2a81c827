"""The vocabulary every resource's document is written in: references, timestamps, parameters,
error responses, byte responses, and the schemas more than one resource returns.

Nothing here restates a rule of the code: patterns, limits and error statuses are read from
their one declaration (`errors.py`, `services/validation.py`, `services/listing.py`,
`config.py`, `clock.py`, `ids.py`, `security/keys.py`).
"""

from __future__ import annotations

import copy
from typing import Any

from artifacta_box import errors
from artifacta_box.clock import ISO_PATTERN
from artifacta_box.config import BUILTIN_PLANS, SETTING_OF
from artifacta_box.ids import ARTIFACT_ID_CHARS, ARTIFACT_ID_PREFIX, LINK_ID_CHARS, LINK_ID_PREFIX
from artifacta_box.services.listing import DEFAULT_LIMIT, MAX_LIMIT
from artifacta_box.services.validation import (
    ARTIFACT_ID_PATTERN,
    LABEL_PATTERN,
    LINK_ID_PATTERN,
    MAX_FILENAME,
    MAX_METADATA_BYTES,
    MAX_METADATA_VALUE,
    METADATA_KEY_PATTERN,
    TTL_NEVER,
    TTL_PATTERN,
)
from artifacta_box.units import DURATION_UNITS_TEXT, format_duration

# ----------------------------------------------------------------------------- facts of the box

# The plan a fresh box gives its tenants: the figures the descriptions quote as "(plan)".
DEFAULT_PLAN = BUILTIN_PLANS[SETTING_OF["default_plan"].default]

# The one code answered at a second status (errors.STATUS_VARIANTS, kept explicit: a new
# variant must be placed in the tables below by hand), as (code, status).
HEADERS_TOO_LARGE = (errors.HeadersTooLarge.code, errors.HeadersTooLarge.status)

# Errors any route can answer: a request that never reached a handler (malformed request line,
# body over the route's limit, headers too large, timeout), a crash, or the box being unable to
# serve (database, storage, shutting down).
TRANSPORT_ERRORS: list[tuple[str, int]] = [
    (code, errors.ERROR_CODES[code])
    for code in ("invalid_request", "request_timeout", "file_too_large")
] + [HEADERS_TOO_LARGE] + [
    (code, errors.ERROR_CODES[code]) for code in ("internal_error", "unavailable")
]
# Errors every authenticated /v1 route can answer before its handler runs (http/common.py).
AUTH_ERRORS: list[str] = ["unauthorized", "quota_exceeded", "rate_limited"]

ARTIFACT_GONE = ["artifact_not_found", "artifact_expired", "artifact_already_deleted"]

LABEL_OR_EMPTY = f"^({LABEL_PATTERN[1:-1]})?$"  # in requests, empty means none
SHA256_PATTERN = "^[0-9a-f]{64}$"
BASE64_PATTERN = r"^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


def size_text(n: int) -> str:
    """`10 MB`, `5 GB`: a decimal size for prose."""
    for unit, size in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} bytes"


# ----------------------------------------------------------------------------- small builders


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def optional(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional request field: null is the same as leaving it out."""
    return {"anyOf": [schema, {"type": "null"}]}


def timestamp(description: str, nullable: bool = False) -> dict[str, Any]:
    return {
        "type": ["string", "null"] if nullable else "string",
        "pattern": ISO_PATTERN,
        "description": description,
    }


def path_param(name: str, pattern: str, description: str) -> dict[str, Any]:
    return {
        "name": name, "in": "path", "required": True, "description": description,
        "schema": {"type": "string", "pattern": pattern},
    }


def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}


# ----------------------------------------------------------------------------- parameters

ARTIFACT_ID = path_param(
    "artifact_id", ARTIFACT_ID_PATTERN,
    f"`{ARTIFACT_ID_PREFIX}` and {ARTIFACT_ID_CHARS} letters or digits. Another tenant's id is 404.")
LINK_ID = path_param("link_id", LINK_ID_PATTERN,
                     f"`{LINK_ID_PREFIX}` and {LINK_ID_CHARS} letters or digits.")
SESSION_ID = path_param("session_id", LABEL_PATTERN, "A caller-chosen session label.")
LIMIT = query("limit",
              {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
              f"Page size, 1-{MAX_LIMIT}; outside → 400 invalid_request.")
CURSOR = query("cursor", {"type": "string"},
               "`next_cursor` of the previous page, unchanged. Forged or foreign → 400; "
               "empty means the first page.")
_DATE_BOUND = {"type": "string", "anyOf": [{"format": "date-time"}, {"maxLength": 0}]}
CREATED_AFTER = query("created_after", _DATE_BOUND,
                      "Exclusive lower bound, ISO 8601 with `Z` or an offset; empty means none.")
CREATED_BEFORE = query("created_before", _DATE_BOUND,
                       "Exclusive upper bound, ISO 8601 with `Z` or an offset; empty means none.")

# Unauthenticated byte routes: the query a signed URL carries (security/signing.py).
SIGNED_QUERY = [
    {"name": "e", "in": "query", "required": True,
     "description": "Unix seconds when the URL stops working (bound by the signature).",
     "schema": {"type": "integer"}},
    {"name": "k", "in": "query", "required": False,
     "description": "Id of the API key that minted the URL (bound by the signature): the URL "
                    "answers 403 `invalid_signature` once that key is revoked. Absent only from "
                    "URLs minted by releases before it.",
     "schema": {"type": "string"}},
    {"name": "s", "in": "query", "required": True,
     "description": "HMAC signature binding method, artifact, tenant, expiry and key.",
     "schema": {"type": "string"}},
]

# ----------------------------------------------------------------------------- responses

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


def _error_response(status: int, codes: list[str]) -> dict:
    description = ", ".join(f"`{c}`" for c in codes)
    schema = {
        "allOf": [ref("ErrorEnvelope")],
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
    if status == errors.RateLimited.status:
        response["headers"] = {"Retry-After": {
            "description": "Whole seconds to wait, at least 1.",
            "schema": {"type": "string", "pattern": "^[1-9][0-9]*$"},
            "required": True,
        }}
    return response


def error_responses(*codes: str, auth: bool = True) -> dict[str, Any]:
    """Error responses by status for an operation that can answer `codes` (plus the common
    transport errors and, for authenticated routes, the auth-gate errors). Each status lists
    exactly its codes, so a client — or the fuzzer — can tell a documented error from an
    accident."""
    pairs: list[tuple[str, int]] = [(c, errors.ERROR_CODES[c]) for c in codes]
    if auth:
        pairs += [(c, errors.ERROR_CODES[c]) for c in AUTH_ERRORS]
    pairs += TRANSPORT_ERRORS
    by_status: dict[int, list[str]] = {}
    for code, status in pairs:
        if code not in by_status.setdefault(status, []):
            by_status[status].append(code)
    return {str(s): _error_response(s, sorted(c)) for s, c in sorted(by_status.items())}


def json_ok(schema_name: str, description: str, rate_headers: bool = True,
            headers: dict | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": ref(schema_name)}},
    }
    h = {**(copy.deepcopy(RATE_HEADERS) if rate_headers else {}), **(headers or {})}
    if h:
        out["headers"] = h
    return out


def json_body(schema_name: str, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": ref(schema_name)}}}


def op(summary: str, operation_id: str, responses: dict[str, Any], *, tags: list[str],
       parameters: list[dict] | None = None, request_body: dict | None = None,
       description: str | None = None, public: bool = False,
       links: dict[str, dict] | None = None) -> dict[str, Any]:
    """One operation. `public` ones need no key (`security: []`); `links` attach to the first
    2xx response."""
    out: dict[str, Any] = {"summary": summary, "operationId": operation_id, "tags": tags}
    if description:
        out["description"] = description
    if parameters:
        out["parameters"] = parameters
    if request_body:
        out["requestBody"] = request_body
    out["responses"] = responses
    if public:
        out["security"] = []
    if links:
        first_ok = next(k for k in responses if k.startswith("2"))
        responses[first_ok]["links"] = links
    return out


# ----------------------------------------------------------------------------- byte routes

def byte_responses(not_found: list[str], gone: list[str], forbidden: list[str]) -> dict:
    """GET of `/d/` and `/l/` (http/grants.py, http/byteserve.py)."""
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
    out.update(error_responses(*codes, auth=False))
    return out


def without_bodies(responses: dict[str, Any]) -> dict[str, Any]:
    """The responses of a GET as its HEAD answers them: the same, with no content."""
    return {status: {k: v for k, v in response.items() if k != "content"}
            for status, response in responses.items()}


def byte_params() -> list[dict]:
    return [
        {"name": "Range", "in": "header", "required": False,
         "description": "One byte range, e.g. `bytes=0-99`; unsatisfiable → 416.",
         "schema": {"type": "string"}},
        {"name": "If-None-Match", "in": "header", "required": False,
         "description": "An ETag; a match answers 304.", "schema": {"type": "string"}},
    ]


def preflight(operation_id: str, param: dict[str, Any], tag: str) -> dict[str, Any]:
    return op(
        "CORS preflight", operation_id,
        {"204": {"description": "Allowed methods; CORS headers when the Origin is one of "
                                "`server.cors_origins`.",
                 "headers": {"Allow": {"schema": {"const": "GET, HEAD, OPTIONS"},
                                       "required": True}}},
         **error_responses(auth=False)},
        tags=[tag], public=True,
        # a preflight answers the same whatever the id: the real request will say if it exists
        parameters=[{**param, "schema": {"type": "string"}}],
    )


# ----------------------------------------------------------------------------- shared schemas


def shared_schemas() -> dict[str, Any]:
    """The envelope and the records more than one resource returns or accepts."""
    return {
        "ErrorEnvelope": {
            "type": "object",
            "description": "Every error, on every route. `code` is the stable contract.",
            "required": ["error"],
            "additionalProperties": False,
            "properties": {"error": ref("ErrorBody")},
        },
        "ErrorBody": {
            "type": "object",
            "required": ["code", "message", "status"],
            "additionalProperties": False,
            "properties": {
                "code": {"type": "string", "enum": sorted(errors.ERROR_CODES)},
                "message": {"type": "string", "minLength": 1, "description": "For humans."},
                "status": {"type": "integer", "minimum": 400, "maximum": 599},
                "retry_after_seconds": {
                    "type": "integer", "minimum": 1, "description": "429 only: seconds to wait.",
                },
                "retry_after": {
                    "type": "integer", "minimum": 1,
                    "description": "429 only: same as retry_after_seconds.",
                },
                "upgrade_url": {
                    "type": "string",
                    "description": "quota_exceeded only, when the box configures one.",
                },
            },
        },
        "Metadata": {
            "type": "object",
            "description": f"String keys (`{METADATA_KEY_PATTERN}`) to strings of at most "
                           f"{MAX_METADATA_VALUE:,} characters; at most {MAX_METADATA_BYTES:,} "
                           "bytes as compact UTF-8 JSON.",
            "propertyNames": {"pattern": METADATA_KEY_PATTERN},
            "additionalProperties": {"type": "string", "maxLength": MAX_METADATA_VALUE},
        },
        "Ttl": {
            "type": "string",
            "pattern": TTL_PATTERN,
            "description": f"A positive integer and a unit {DURATION_UNITS_TEXT}, or "
                           f"'{TTL_NEVER}'. Absent or empty: the plan's default TTL "
                           f"({format_duration(DEFAULT_PLAN.default_ttl_seconds)}).",
        },
        "Artifact": {
            "type": "object",
            "description": "An artifact. Content and metadata are immutable.",
            "additionalProperties": False,
            "required": [
                "artifact_id", "filename", "content_type", "size_bytes", "content_hash",
                "session_id", "agent_id", "metadata", "status", "expires_at", "created_at",
            ],
            "properties": {
                "artifact_id": {"type": "string", "pattern": ARTIFACT_ID_PATTERN},
                "filename": {
                    "type": "string", "minLength": 1, "maxLength": MAX_FILENAME,
                    "description": "A label, never used as a path; no control characters.",
                },
                "content_type": {"type": "string", "minLength": 1},
                "size_bytes": {"type": "integer", "minimum": 0},
                "content_hash": {
                    "type": ["string", "null"], "pattern": SHA256_PATTERN,
                    "description": "SHA-256 of the bytes, lowercase hex; null while pending.",
                },
                "session_id": {"type": ["string", "null"], "pattern": LABEL_PATTERN},
                "agent_id": {"type": ["string", "null"], "pattern": LABEL_PATTERN},
                "metadata": ref("Metadata"),
                "status": {"type": "string", "enum": ["active", "pending"]},
                "expires_at": timestamp("When the artifact expires; null for ttl 'never'.", True),
                "created_at": timestamp("When the artifact was created."),
            },
        },
    }
