"""The document of `http/system.py` (/health), `http/metrics.py` (/metrics) and of itself
(/openapi.json): the routes that need no key."""

from __future__ import annotations

from typing import Any

from artifacta_box.http.openapi.parts import error_responses, json_ok, op

SCHEMAS: dict[str, Any] = {
    "Health": {
        "type": "object",
        "required": ["status", "version"],
        "properties": {
            "status": {"const": "ok"},
            "version": {"type": "string", "pattern": r"^[0-9]+\.[0-9]+\.[0-9]+"},
        },
    },
}

PATHS: dict[str, Any] = {
    "/health": {
        "get": op(
            "Liveness and readiness", "health",
            {"200": json_ok("Health", "The database answers and storage is writable.",
                            rate_headers=False),
             **error_responses(auth=False)},
            tags=["system"], public=True,
            description="No auth, no rate limit. 503 `unavailable` names what failed.",
        ),
    },
    "/openapi.json": {
        "get": op(
            "This document", "openapi",
            {"200": {"description": "The OpenAPI 3.1 document.",
                     "content": {"application/json": {"schema": {"type": "object"}}}},
             **error_responses(auth=False)},
            tags=["system"], public=True,
        ),
    },
    "/metrics": {
        "get": op(
            "Prometheus metrics", "metrics",
            {"200": {"description": "Prometheus text exposition format.",
                     "content": {"text/plain": {"schema": {"type": "string"}}}},
             **error_responses("unauthorized", auth=False)},
            tags=["system"], public=True,
            description="Open, unless `[metrics] token` is set: then it needs "
                        "`Authorization: Bearer <token>` (401 otherwise).",
        ),
    },
}
