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
            "status": {"enum": ["ok", "degraded"],
                       "description": "`degraded`: alive and serving, but part of the API is "
                                      "refused; `reason` says what and why."},
            "reason": {"type": "string",
                       "description": "Only when `status` is `degraded`, e.g. free disk space "
                                      "below `storage.min_free_bytes` (uploads refused)."},
            "version": {"type": "string", "pattern": r"^[0-9]+\.[0-9]+\.[0-9]+"},
            "sqlite_version": {"type": "string"},
        },
    },
}

PATHS: dict[str, Any] = {
    "/health": {
        "get": op(
            "Liveness and readiness", "health",
            {"200": json_ok("Health", "Alive: the database answers and storage is writable "
                                      "(`status` says whether all of the API is served).",
                            rate_headers=False),
             **error_responses(auth=False)},
            tags=["system"], public=True,
            description="No auth, no rate limit. 503 `unavailable` names what failed; 200 with "
                        "`status: degraded` and a `reason` while the box serves only part of "
                        "its API (below the free-space reserve: uploads refused).",
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
             **error_responses("unauthorized", "rate_limited", auth=False)},
            tags=["system"], public=True,
            description="Open, unless `[metrics] token` is set: then it needs "
                        "`Authorization: Bearer <token>` (401 otherwise). Store gauges are "
                        "recomputed in the background at most every `metrics.gauge_interval`; "
                        "scrapes past `metrics.scrape_rate` (whole server) get 429 with "
                        "Retry-After.",
        ),
    },
}
