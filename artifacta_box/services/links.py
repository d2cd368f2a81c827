"""Share links: create (with the plan's expiry cap and active-link cap), revoke, and authorise
`GET /l/<link_id>` for the byte routes.

A link is a row (`links`): a random 20-character id that names one artifact of one tenant until
`expires_at`, unless revoked. "Active" means `revoked_at IS NULL AND expires_at > now`, the same
rule whoami's `active_links` counts, so the cap and the figure a user sees always agree.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from artifacta_box import errors
from artifacta_box.clock import iso, iso_in, parse_iso
from artifacta_box.context import Box
from artifacta_box.db import fetchone
from artifacta_box.ids import new_link_id
from artifacta_box.services.audit import record_audit
from artifacta_box.services.downloads import SERVE_BLOB_COLUMNS, SERVE_BLOB_JOIN, Grant
from artifacta_box.services.records import load_artifact
from artifacta_box.services.principal import Principal
from artifacta_box.services.validation import is_link_id
from artifacta_box.units import format_duration

DEFAULT_LINK_SECONDS = 7 * 86400
LINK_PREFIX = "/l/"

_LINK_SQL = (
    "SELECT l.link_id, l.tenant_id, l.expires_at AS link_expires_at, "
    "l.revoked_at AS link_revoked_at, l.artifact_id, "
    "a.state, a.filename, a.content_type, a.size_bytes, a.content_hash, a.expires_at, "
    "t.plan AS tenant_plan, t.suspended_at AS tenant_suspended_at, "
    f"{SERVE_BLOB_COLUMNS} "
    "FROM links l JOIN tenants t ON t.tenant_id = l.tenant_id "
    "LEFT JOIN artifacts a ON a.artifact_id = l.artifact_id AND a.tenant_id = l.tenant_id "
    f"{SERVE_BLOB_JOIN} WHERE l.link_id = ?"
)


def link_path(link_id: str) -> str:
    return f"{LINK_PREFIX}{link_id}"


def parse_expires_in(body: dict[str, Any], max_seconds: int) -> int:
    """`expires_in`: whole seconds, 1 … the plan's maximum; absent → 7 days (capped by the plan)."""
    value = body.get("expires_in")
    if value is None:
        return min(DEFAULT_LINK_SECONDS, max_seconds)
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.InvalidRequest(
            f"expires_in must be a whole number of seconds, 1-{max_seconds}; got {value!r}."
        )
    if not 1 <= value <= max_seconds:
        raise errors.InvalidRequest(
            f"expires_in must be between 1 and {max_seconds} seconds "
            f"({format_duration(max_seconds)}, this plan's longest link); got {value}."
        )
    return value


ACTIVE_LINKS_SQL = (
    "SELECT COUNT(*) FROM links l JOIN artifacts a ON a.artifact_id = l.artifact_id "
    "WHERE l.tenant_id = ? AND l.revoked_at IS NULL AND l.expires_at > ? "
    "AND a.state = 'active' AND (a.expires_at IS NULL OR a.expires_at > ?)"
)


def count_active_links(conn: sqlite3.Connection, tenant_id: int, now_iso: str) -> int:
    """Links that still serve bytes: not revoked, not expired, and to a live artifact (a link to
    a deleted or expired artifact frees its place in the plan's cap at once)."""
    return int(fetchone(conn, ACTIVE_LINKS_SQL, (tenant_id, now_iso, now_iso))[0])


async def create_link(box: Box, principal: Principal, artifact_id: str, body: dict[str, Any]) -> dict:
    """A new link to a live artifact of the caller. Returns the record with `path` (not yet absolute)."""
    plan = principal.plan
    seconds = parse_expires_in(body, plan.max_link_seconds)

    def create(conn: sqlite3.Connection) -> dict:
        now = box.clock.now()
        now_iso = iso(now)
        load_artifact(conn, principal.tenant_id, artifact_id, now_iso)
        active = count_active_links(conn, principal.tenant_id, now_iso)
        if active >= plan.max_active_links:
            raise errors.QuotaExceeded(
                f"This tenant already has {active} active share links, the most plan {plan.name!r} "
                "allows; revoke some (DELETE /v1/links/<link_id>) or wait for them to expire."
            )
        link_id = new_link_id()
        expires_at = iso_in(now, seconds)
        conn.execute(
            "INSERT INTO links (link_id, tenant_id, artifact_id, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (link_id, principal.tenant_id, artifact_id, now_iso, expires_at),
        )
        record_audit(conn, now_iso, principal.actor, "link.create", principal.tenant_name,
                     link_id, {"artifact_id": artifact_id, "expires_at": expires_at})
        return {
            "link_id": link_id,
            "path": link_path(link_id),
            "artifact_id": artifact_id,
            "expires_at": expires_at,
            "created_at": now_iso,
        }

    return await box.db.execute_write_fn(create)


async def revoke_link(box: Box, principal: Principal, link_id: str) -> dict:
    """Revoke one of the caller's links (idempotent: a second revoke returns the first time)."""
    def revoke(conn: sqlite3.Connection) -> str:
        row = None
        if is_link_id(link_id):
            row = fetchone(
                conn, "SELECT revoked_at, artifact_id FROM links WHERE link_id = ? AND tenant_id = ?",
                (link_id, principal.tenant_id),
            )
        if row is None:
            raise errors.LinkNotFound(f"Link {link_id} was not found.")
        revoked_at = row["revoked_at"]
        if revoked_at is None:
            revoked_at = iso(box.clock.now())
            conn.execute("UPDATE links SET revoked_at = ? WHERE link_id = ?", (revoked_at, link_id))
            record_audit(conn, revoked_at, principal.actor, "link.revoke",
                         principal.tenant_name, link_id, {"artifact_id": row["artifact_id"]})
        return revoked_at

    revoked_at = await box.db.execute_write_fn(revoke)
    return {"link_id": link_id, "revoked": True, "revoked_at": revoked_at}


async def authorize_link(box: Box, link_id: str) -> Grant:
    """`GET /l/<link_id>`: 404 link_not_found, 410 link_expired (past expiry or revoked)."""
    row = None
    if is_link_id(link_id):
        row = await box.db.fetchone_point(_LINK_SQL, (link_id,))
    if row is None:
        raise errors.LinkNotFound(f"Link {link_id} was not found.")
    if row["link_revoked_at"] is not None:
        raise errors.LinkExpired(f"Link {link_id} was revoked at {row['link_revoked_at']}.")
    if row["link_expires_at"] <= iso(box.clock.now()):
        raise errors.LinkExpired(f"Link {link_id} expired at {row['link_expires_at']}.")
    return Grant(row["tenant_id"], box.settings.plan(row["tenant_plan"]), row["artifact_id"], row,
                 not_after=parse_iso(row["link_expires_at"]).timestamp())
