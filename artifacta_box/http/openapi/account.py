"""The document of `http/account.py`: GET /v1/whoami."""

from __future__ import annotations

from typing import Any

from artifacta_box.http.openapi.parts import error_responses, json_ok, op

SCHEMAS: dict[str, Any] = {
    "Whoami": {
        "type": "object",
        "required": [
            "tenant_name", "plan", "api_key_last_4", "usage_requests_month",
            "plan_requests_limit_month", "usage_storage_bytes", "plan_storage_limit_bytes",
            "active_links", "max_active_links", "active_pages", "max_pages",
            "rate_limit_sustained", "rate_limit_burst",
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
            "active_pages": {"type": "integer", "minimum": 0,
                             "description": "Published artifact pages of live artifacts."},
            "max_pages": {"type": "integer", "minimum": 0,
                          "description": "The plan's cap on active pages."},
            "rate_limit_sustained": {"type": "integer", "minimum": 0},
            "rate_limit_burst": {"type": "integer", "minimum": 0},
        },
        "not": {"anyOf": [{"required": ["tenant_id"]}, {"required": ["key_hash"]}]},
    },
}

PATHS: dict[str, Any] = {
    "/v1/whoami": {
        "get": op("The calling key's tenant, plan and usage", "whoami",
                  {"200": json_ok("Whoami", "Tenant, plan, usage and limits; all numbers "
                                  "are integers."), **error_responses()},
                  tags=["account"]),
    },
}
