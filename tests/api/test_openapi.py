"""`GET /openapi.json`: a valid OpenAPI 3.1 document that describes exactly the routes the app
serves, with every documented error code, served without auth by a real server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import jsonschema
import pytest
from schemathesis.specs.openapi.definitions import OPENAPI_31

from artifacta_box import errors
from artifacta_box.app import create_app
from artifacta_box.config import load_settings
from artifacta_box.errors import ERROR_CODES
from artifacta_box.http.openapi import build_document

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest.fixture(scope="module")
def document() -> dict:
    return build_document()


@pytest.fixture(scope="module")
def app_routes(tmp_path_factory) -> set[tuple[str, str]]:
    """(OpenAPI path template, lower-case method) for every route the app registers."""
    data = tmp_path_factory.mktemp("openapi") / "box"
    settings = load_settings(overrides={"data_dir": str(data)}, environ={})
    app = create_app(settings, name="openapi_route_check")
    out: set[tuple[str, str]] = set()
    for route in app.router.routes:
        # HTML for people, not the API: the web console and the artifact pages at /a/
        if route.name.split(".")[1] in ("console", "public_pages"):
            continue
        path = "/" + route.path.lstrip("/")
        path = re.sub(r"<([A-Za-z_][A-Za-z0-9_]*)(:[^>]*)?>", r"{\1}", path)
        for method in route.methods:
            out.add((path, method.lower()))
    return out


def documented(doc: dict) -> set[tuple[str, str]]:
    return {(path, method) for path, item in doc["paths"].items()
            for method in item if method in HTTP_METHODS}


def test_document_is_valid_openapi_31(document):
    assert document["openapi"].startswith("3.1.")
    jsonschema.Draft202012Validator(OPENAPI_31).validate(document)
    for schema in document["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)
    # every $ref resolves
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([A-Za-z0-9]+)"', json.dumps(document)))
    assert refs <= set(document["components"]["schemas"]), refs - set(document["components"]["schemas"])


def test_every_route_of_the_app_is_documented_and_nothing_else(document, app_routes):
    doc = documented(document)
    missing = sorted(app_routes - doc)
    extra = sorted(doc - app_routes)
    assert not missing, f"routes the app serves but the document omits: {missing}"
    assert not extra, f"documented operations the app does not serve: {extra}"


def test_path_parameters_match_the_templates(document):
    for path, item in document["paths"].items():
        names = set(re.findall(r"{([^}]+)}", path))
        for method, op in item.items():
            if method not in HTTP_METHODS:
                continue
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == names, (path, method, declared, names)
            assert op["operationId"]
            assert any(s.startswith("2") or s == "304" for s in op["responses"]), (path, method)


def test_error_codes_are_exactly_the_boxs(document):
    enum = set(document["components"]["schemas"]["ErrorBody"]["properties"]["code"]["enum"])
    from_classes = {cls.code: cls.status for cls in errors.ALL_ERRORS}
    assert from_classes[errors.RequestTimeout.code] == errors.RequestTimeout.status
    assert from_classes[errors.RangeNotSatisfiable.code] == errors.RangeNotSatisfiable.status
    assert enum == set(from_classes)
    assert from_classes == ERROR_CODES
    spec_codes = {
        "invalid_request", "ttl_exceeds_plan_limit", "upload_not_found", "unauthorized",
        "quota_exceeded", "artifact_not_found", "session_not_found", "link_not_found",
        "not_found", "method_not_allowed", "session_sealed", "artifact_expired",
        "artifact_already_deleted", "link_expired", "file_too_large", "rate_limited",
        "invalid_signature", "url_expired", "internal_error", "unavailable",
    }
    assert spec_codes <= enum


def test_every_error_response_is_the_envelope_with_codes_of_its_status(document):
    for path, item in document["paths"].items():
        for method, op in item.items():
            if method not in HTTP_METHODS:
                continue
            for status, resp in op["responses"].items():
                if int(status) < 400 or method == "head":  # HEAD answers carry no body
                    continue
                schema = resp["content"]["application/json"]["schema"]
                assert schema["allOf"] == [{"$ref": "#/components/schemas/ErrorEnvelope"}]
                err = schema["properties"]["error"]["properties"]
                assert err["status"] == {"const": int(status)}
                for code in err["code"]["enum"]:
                    assert ERROR_CODES[code] == int(status) or (code, int(status)) == (
                        "invalid_request", 431), (path, method, status, code)
                if status == "429":
                    assert resp["headers"]["Retry-After"]["required"] is True


def test_authenticated_routes_use_bearer_and_public_ones_say_so(document):
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer",
        "bearerFormat": "ak_live_<32 letters or digits>",
        "description": "An API key made by `artifacta-box keys create`.",
    }
    assert document["security"] == [{"bearerAuth": []}]
    for path, item in document["paths"].items():
        for method, op in item.items():
            if method not in HTTP_METHODS:
                continue
            if path.startswith("/v1/"):
                assert "security" not in op, (path, method)
                assert "401" in op["responses"] and "429" in op["responses"], (path, method)
            else:
                assert op["security"] == [], (path, method)


def test_served_without_auth_and_matches_the_module(shared_server):
    resp = httpx.get(shared_server.url + "/openapi.json", timeout=30)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/json")
    served = resp.json()
    assert served["servers"] == [{"url": shared_server.url}]
    expected = build_document(shared_server.url)
    assert served == expected


def test_served_document_uses_the_configured_public_url(make_server, tmp_path: Path):
    srv = make_server(args=["--public-url", "https://box.example.test/base"])
    served = httpx.get(srv.url + "/openapi.json", timeout=30).json()
    assert served["servers"] == [{"url": "https://box.example.test/base"}]
