"""What the web console reads that no API route returns: a tenant's usage against its plan in
one call (whoami's figures plus its keys) and the live share links of one artifact.

Everything else the console shows comes from the same service functions the API calls
(listing, sessions, artifacts, links, downloads, tenants, audit), so the two cannot disagree.
"""

from __future__ import annotations

from typing import Any

from artifacta_box.clock import iso
from artifacta_box.context import Box
from artifacta_box.services import account
from artifacta_box.services.links import link_path
from artifacta_box.services.principal import Principal

# A link is active while it is neither revoked nor expired: the rule services.links states for
# the plan's cap and whoami's `active_links`. Newest first, bounded (the plan caps links).
_ARTIFACT_LINKS_SQL = (
    "SELECT link_id, created_at, expires_at FROM links "
    "WHERE artifact_id = ? AND tenant_id = ? AND revoked_at IS NULL AND expires_at > ? "
    "ORDER BY created_at DESC, link_id DESC LIMIT ?"
)
MAX_LISTED_LINKS = 200

_ACTIVE_KEYS_SQL = "SELECT COUNT(*) FROM api_keys WHERE tenant_id = ? AND revoked_at IS NULL"


async def usage_summary(box: Box, principal: Principal) -> dict[str, Any]:
    """Storage, requests this month, active links, published pages and active keys, each with
    the plan's limit, in the units whoami reports (bytes, requests, links, pages, keys)."""
    usage = await account.tenant_usage(box, principal.tenant_id)
    keys = await box.db.fetchone(_ACTIVE_KEYS_SQL, (principal.tenant_id,))
    plan = principal.plan
    return {
        "plan": plan.name,
        "storage_bytes": int(usage["storage_bytes"]),
        "storage_limit_bytes": int(plan.storage_bytes),
        "requests_month": int(account.requests_this_month(box, principal)),
        "requests_limit_month": int(plan.requests_per_month),
        "active_links": int(usage["active_links"]),
        "max_active_links": int(plan.max_active_links),
        "active_pages": int(usage["active_pages"]),
        "max_pages": int(plan.max_pages),
        "active_keys": int(keys[0]) if keys else 0,
        "max_active_keys": int(plan.max_active_keys),
    }


async def artifact_links(box: Box, principal: Principal, artifact_id: str) -> list[dict[str, Any]]:
    """The caller's active share links to one artifact, newest first (`path` not yet absolute)."""
    rows = await box.db.fetchall(
        _ARTIFACT_LINKS_SQL,
        (artifact_id, principal.tenant_id, iso(box.clock.now()), MAX_LISTED_LINKS),
    )
    return [
        {"link_id": r["link_id"], "path": link_path(r["link_id"]), "created_at": r["created_at"],
         "expires_at": r["expires_at"]}
        for r in rows
    ]
