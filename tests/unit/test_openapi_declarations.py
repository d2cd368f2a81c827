"""The OpenAPI document states the box's rules by reading their one declaration: change a
pattern or a limit in the code and the document follows (nothing is restated by hand)."""

from __future__ import annotations

import re

from artifacta_box import errors
from artifacta_box.config import BUILTIN_PLANS, SETTING_OF
from artifacta_box.http.openapi import build_document
from artifacta_box.security.keys import KEY_FORMAT
from artifacta_box.services import listing, validation
from artifacta_box.services.downloads import MAX_BATCH
from artifacta_box.services.links import DEFAULT_LINK_SECONDS

DOC = build_document()
SCHEMAS = DOC["components"]["schemas"]


def _params(path: str, method: str) -> dict[str, dict]:
    return {p["name"]: p for p in DOC["paths"][path][method].get("parameters", [])}


def test_patterns_are_the_validators_patterns():
    artifact = SCHEMAS["Artifact"]["properties"]
    assert artifact["artifact_id"]["pattern"] == validation.ARTIFACT_ID_PATTERN
    assert artifact["session_id"]["pattern"] == validation.LABEL_PATTERN
    assert artifact["filename"]["maxLength"] == validation.MAX_FILENAME
    assert SCHEMAS["Link"]["properties"]["link_id"]["pattern"] == validation.LINK_ID_PATTERN
    assert SCHEMAS["Metadata"]["propertyNames"]["pattern"] == validation.METADATA_KEY_PATTERN
    assert SCHEMAS["Metadata"]["additionalProperties"]["maxLength"] == validation.MAX_METADATA_VALUE
    assert f"{validation.MAX_METADATA_BYTES:,} bytes" in SCHEMAS["Metadata"]["description"]
    assert SCHEMAS["Ttl"]["pattern"] == validation.TTL_PATTERN
    for pattern in (validation.ARTIFACT_ID_PATTERN, validation.LABEL_PATTERN,
                    validation.METADATA_KEY_PATTERN, validation.TTL_PATTERN):
        re.compile(pattern)


def test_limits_are_the_services_limits():
    limit = _params("/v1/artifacts", "get")["limit"]["schema"]
    assert (limit["maximum"], limit["default"]) == (listing.MAX_LIMIT, listing.DEFAULT_LIMIT)
    batch = SCHEMAS["BatchDownloadUrlsRequest"]["properties"]["artifact_ids"]
    assert batch["maxItems"] == MAX_BATCH
    key = _params("/v1/artifacts", "post")["Idempotency-Key"]
    assert key["schema"]["maxLength"] == validation.MAX_IDEMPOTENCY_KEY
    assert key["schema"]["pattern"] == validation.IDEMPOTENCY_KEY_PATTERN
    hours = SETTING_OF["idempotency_seconds"].default // 3600
    assert f"kept {hours} h" in key["description"]
    link = SCHEMAS["LinkRequest"]["properties"]["expires_in"]["description"]
    assert str(DEFAULT_LINK_SECONDS) in link
    plan = BUILTIN_PLANS[SETTING_OF["default_plan"].default]
    assert f"{plan.max_json_bytes // 10**6} MB" in SCHEMAS["JsonUpload"]["properties"]["content"]["description"]
    assert DOC["components"]["securitySchemes"]["bearerAuth"]["bearerFormat"] == KEY_FORMAT


def test_error_codes_and_statuses_are_errors_py():
    assert set(SCHEMAS["ErrorBody"]["properties"]["code"]["enum"]) == set(errors.ERROR_CODES)
    health = DOC["paths"]["/health"]["get"]["responses"]
    assert health[str(errors.HeadersTooLarge.status)]["content"]["application/json"]["schema"][
        "properties"]["error"]["properties"]["code"]["enum"] == [errors.HeadersTooLarge.code]
