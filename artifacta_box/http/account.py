"""GET /v1/whoami."""

from __future__ import annotations

from sanic import Blueprint, Request

from artifacta_box.http.common import box_of, ok, principal_of
from artifacta_box.services import account

bp = Blueprint("account", url_prefix="/v1")


@bp.get("/whoami")
async def whoami(request: Request):
    box = box_of(request)
    p = principal_of(request)
    usage = await account.tenant_usage(box, p.tenant_id)
    return ok(
        {
            "tenant_name": p.tenant_name,
            "plan": p.plan.name,
            "api_key_last_4": p.key_last4,
            "usage_requests_month": int(account.requests_this_month(box, p)),
            "plan_requests_limit_month": int(p.plan.requests_per_month),
            "usage_storage_bytes": int(usage["storage_bytes"]),
            "plan_storage_limit_bytes": int(p.plan.storage_bytes),
            "active_links": int(usage["active_links"]),
            "max_active_links": int(p.plan.max_active_links),
            "active_pages": int(usage["active_pages"]),
            "max_pages": int(p.plan.max_pages),
            "rate_limit_sustained": int(p.plan.rate_sustained),
            "rate_limit_burst": int(p.plan.rate_burst),
        }
    )
