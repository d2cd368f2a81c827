"""`GET /openapi.json`: the OpenAPI 3.1 document of the whole API.

The document is plain Python data (no data file to ship or bundle), written per resource beside
the blueprints: `openapi/<resource>.py` holds the `PATHS` and `SCHEMAS` of `http/<resource>.py`,
in the vocabulary of `openapi/parts.py`. Every pattern, limit and error status in it is read
from its one declaration in the code (errors.py, services/validation.py, config.py, …), so
those facts cannot drift from what the box enforces.

It is kept honest by `tests/api/test_openapi.py`, which compares its paths and methods with the
routes the app really registers, and by the schemathesis run in `tests/fuzz/`, which checks
every response against it. When you add or change a route, change its resource's module in the
same commit.

Error responses are described per operation and status: each lists exactly the error codes that
operation can answer with at that status (the `code` enum), so a client — or the fuzzer — can
tell a documented error from an accident.
"""

from __future__ import annotations

import copy
from types import ModuleType
from typing import Any

from sanic import Blueprint, Request

from artifacta_box import __version__
from artifacta_box.http.common import base_url, ok
from artifacta_box.http.openapi import (
    account,
    artifacts,
    downloads,
    links,
    pages,
    sessions,
    system,
    uploads,
)
from artifacta_box.http.openapi.parts import HEADERS_TOO_LARGE, shared_schemas
from artifacta_box.security.keys import KEY_FORMAT

__all__ = ["HEADERS_TOO_LARGE", "bp", "build_document"]

bp = Blueprint("openapi")

# In the order the document lists them (its tags follow the same order).
RESOURCES: tuple[ModuleType, ...] = (
    system, account, artifacts, uploads, downloads, links, pages, sessions,
)
TAGS = ("system", "account", "artifacts", "uploads", "downloads", "links", "pages", "sessions")


def _collect() -> tuple[dict[str, Any], dict[str, Any]]:
    """Every resource's paths and schemas, merged; a method or schema declared twice is an
    error (two resources may share a path, e.g. GET and POST /v1/artifacts)."""
    paths: dict[str, Any] = {}
    schemas = shared_schemas()
    for resource in RESOURCES:
        for path, item in resource.PATHS.items():
            merged = paths.setdefault(path, {})
            if twice := set(merged) & set(item):
                raise ValueError(f"{path} {sorted(twice)} documented twice ({resource.__name__})")
            merged.update(item)
        if twice := set(schemas) & set(resource.SCHEMAS):
            raise ValueError(f"schemas {sorted(twice)} declared twice ({resource.__name__})")
        schemas.update(resource.SCHEMAS)
    return paths, schemas


def build_document(server_url: str | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document; `server_url` becomes its one server when given."""
    paths, schemas = _collect()
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
        "tags": [{"name": t} for t in TAGS],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http", "scheme": "bearer",
                    "bearerFormat": KEY_FORMAT,
                    "description": "An API key made by `artifacta-box keys create`.",
                },
            },
            "schemas": schemas,
        },
    }
    # The resource modules' dicts are shared (module constants): hand out a private copy.
    return copy.deepcopy(doc)


_DOCUMENT = build_document()


@bp.get("/openapi.json")
async def openapi_document(request: Request):
    doc = dict(_DOCUMENT)
    doc["servers"] = [{"url": base_url(request)}]
    return ok(doc)
