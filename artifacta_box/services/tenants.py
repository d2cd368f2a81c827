"""Tenants and API keys: creation, plans, suspension, authentication. No Sanic imports."""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from artifacta_box import errors
from artifacta_box.clock import iso
from artifacta_box.context import Box
from artifacta_box.db import fetchone
from artifacta_box.ids import new_key_id
from artifacta_box.security.keys import generate_key, hash_key
from artifacta_box.services.principal import Principal
from artifacta_box.services.audit import record_audit

TENANT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DEFAULT_TENANT = "default"


def _check_tenant_name(name: str) -> None:
    if not TENANT_NAME_RE.fullmatch(name or ""):
        raise errors.InvalidRequest(
            f"Tenant name {name!r} is invalid: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit."
        )


def _check_plan(box: Box, plan: str) -> None:
    if plan not in box.settings.plans:
        raise errors.InvalidRequest(
            f"No plan named {plan!r}; defined plans: {', '.join(sorted(box.settings.plans))}."
        )


def _tenant_row(conn: sqlite3.Connection, name: str) -> Any:
    row = fetchone(conn, "SELECT * FROM tenants WHERE name = ?", (name,))
    if row is None:
        raise errors.NotFound(f"No tenant named {name!r}.")
    return row


async def require_tenant(box: Box, name: str) -> int:
    """The id of tenant `name`; NotFound ("No tenant named ...") when there is none."""
    row = await box.db.execute_fn(lambda conn: _tenant_row(conn, name))
    return int(row["tenant_id"])


async def create_tenant(box: Box, name: str, plan: str | None = None, actor: str = "cli") -> dict:
    _check_tenant_name(name)
    plan = box.settings.default_plan if plan is None else plan  # "" is a mistake, not "default"
    _check_plan(box, plan)
    now = iso(box.clock.now())

    def create(conn: sqlite3.Connection) -> None:
        if fetchone(conn, "SELECT 1 FROM tenants WHERE name = ?", (name,)):
            raise errors.Conflict(f"A tenant named {name!r} already exists.")
        conn.execute(
            "INSERT INTO tenants (name, plan, created_at) VALUES (?, ?, ?)", (name, plan, now)
        )
        record_audit(conn, now, actor, "tenant.create", name, name, {"plan": plan})

    await box.db.execute_write_fn(create)
    return {"name": name, "plan": plan, "created_at": now, "suspended": False}


async def tenant_count(box: Box) -> int:
    row = await box.db.fetchone("SELECT COUNT(*) FROM tenants")
    return int(row[0])


async def list_tenants(box: Box) -> list[dict]:
    month = box.month()
    rows = await box.db.fetchall(
        """
        SELECT t.*,
               (SELECT COUNT(*) FROM api_keys k WHERE k.tenant_id = t.tenant_id
                  AND k.revoked_at IS NULL) AS active_keys,
               (SELECT COUNT(*) FROM artifacts a WHERE a.tenant_id = t.tenant_id
                  AND a.state = 'active') AS artifacts
        FROM tenants t ORDER BY t.name
        """
    )
    out = []
    for r in rows:
        out.append(
            {
                "name": r["name"],
                "plan": r["plan"],
                "created_at": r["created_at"],
                "suspended": r["suspended_at"] is not None,
                "suspended_at": r["suspended_at"],
                "storage_bytes": r["storage_bytes"],
                "requests_month": r["requests_count"] if r["requests_month"] == month else 0,
                "active_keys": r["active_keys"],
                "artifacts": r["artifacts"],
            }
        )
    return out


async def set_plan(box: Box, name: str, plan: str, actor: str = "cli") -> dict:
    _check_plan(box, plan)
    now = iso(box.clock.now())

    def change(conn: sqlite3.Connection) -> None:
        row = _tenant_row(conn, name)
        conn.execute("UPDATE tenants SET plan = ? WHERE tenant_id = ?", (plan, row["tenant_id"]))
        record_audit(conn, now, actor, "tenant.set_plan", name, name,
                     {"from": row["plan"], "to": plan})

    await box.db.execute_write_fn(change)
    box.keys.invalidate()  # the plan is part of what a cached key lookup holds
    return {"name": name, "plan": plan}


async def set_suspended(box: Box, name: str, suspended: bool, actor: str = "cli") -> dict:
    """Suspend or resume; `changed` is False (and nothing is written or audited) when the
    tenant already was in that state."""
    now = iso(box.clock.now())

    def change(conn: sqlite3.Connection) -> bool:
        row = _tenant_row(conn, name)
        if (row["suspended_at"] is not None) == suspended:
            return False
        conn.execute(
            "UPDATE tenants SET suspended_at = ? WHERE tenant_id = ?",
            (now if suspended else None, row["tenant_id"]),
        )
        record_audit(conn, now, actor, "tenant.suspend" if suspended else "tenant.resume",
                     name, name, {})
        return True

    changed = await box.db.execute_write_fn(change)
    if changed:
        box.keys.invalidate()  # refused (or let in again) from the very next request
    return {"name": name, "suspended": suspended, "changed": changed}


async def create_key(box: Box, tenant: str, name: str | None = None, actor: str = "cli") -> dict:
    """Create a key; the full key is in the result and nowhere else, ever."""
    if name is not None and (len(name) > 128 or any(ord(c) < 32 for c in name)):
        raise errors.InvalidRequest("Key name must be at most 128 printable characters.")
    key = generate_key()
    key_id = new_key_id()
    now = iso(box.clock.now())

    def create(conn: sqlite3.Connection) -> None:
        row = _tenant_row(conn, tenant)
        plan = box.settings.plan(row["plan"])
        active = fetchone(
            conn, "SELECT COUNT(*) FROM api_keys WHERE tenant_id = ? AND revoked_at IS NULL",
            (row["tenant_id"],),
        )[0]
        if active >= plan.max_active_keys:
            raise errors.QuotaExceeded(
                f"Tenant {tenant!r} already has {active} active keys, the most its plan "
                f"{plan.name!r} allows; revoke one first or change the plan."
            )
        conn.execute(
            "INSERT INTO api_keys (key_id, tenant_id, key_hash, name, last4, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (key_id, row["tenant_id"], hash_key(key), name, key[-4:], now),
        )
        record_audit(conn, now, actor, "key.create", tenant, key_id, {"name": name})

    await box.db.execute_write_fn(create)
    return {"key_id": key_id, "key": key, "tenant": tenant, "name": name, "last4": key[-4:],
            "created_at": now}


async def list_keys(box: Box, tenant: str | None = None) -> list[dict]:
    sql = (
        "SELECT k.*, t.name AS tenant FROM api_keys k JOIN tenants t USING (tenant_id)"
    )
    params: tuple = ()
    if tenant is not None:
        await require_tenant(box, tenant)
        sql += " WHERE t.name = ?"
        params = (tenant,)
    sql += " ORDER BY t.name, k.created_at"
    rows = await box.db.fetchall(sql, params)
    return [
        {
            "key_id": r["key_id"],
            "tenant": r["tenant"],
            "name": r["name"],
            "last4": r["last4"],
            "created_at": r["created_at"],
            "last_used_at": r["last_used_at"],
            "revoked": r["revoked_at"] is not None,
            "revoked_at": r["revoked_at"],
        }
        for r in rows
    ]


async def revoke_key(box: Box, key_id: str, actor: str = "cli") -> dict:
    now = iso(box.clock.now())

    def revoke(conn: sqlite3.Connection) -> tuple[str, str]:
        row = fetchone(
            conn,
            "SELECT k.*, t.name AS tenant FROM api_keys k JOIN tenants t USING (tenant_id) "
            "WHERE k.key_id = ?",
            (key_id,),
        )
        if row is None:
            raise errors.NotFound(f"No key with id {key_id!r}.")
        revoked_at = row["revoked_at"]
        if revoked_at is None:
            revoked_at = now
            conn.execute("UPDATE api_keys SET revoked_at = ? WHERE key_id = ?", (now, key_id))
            record_audit(conn, now, actor, "key.revoke", row["tenant"], key_id, {})
        return row["tenant"], revoked_at

    tenant, revoked_at = await box.db.execute_write_fn(revoke)
    box.keys.invalidate()  # refused from the very next request, in every process
    return {"key_id": key_id, "tenant": tenant, "revoked": True, "revoked_at": revoked_at}


_KEY_SQL = (
    "SELECT k.key_id, k.last4, k.revoked_at, t.tenant_id, t.name, t.plan, t.suspended_at, "
    "t.requests_month, t.requests_count "
    "FROM api_keys k JOIN tenants t USING (tenant_id) WHERE "
)


async def authenticate(box: Box, key: str) -> Principal:
    """Look the key up by hash. Raises Unauthorized for unknown/revoked keys or suspended tenants.

    Answers from `box.keys` (security.keycache) while no revoke, suspend or plan change has
    committed anywhere on this data directory since the lookup, and for at most two seconds."""
    key_hash = hash_key(key)
    principal = box.keys.get(key_hash)
    if principal is None:
        generation = box.keys.generation()
        row = await box.db.fetchone_point(_KEY_SQL + "k.key_hash = ?", (key_hash,))
        principal = _principal(box, row)
        box.keys.put(key_hash, principal, generation)
    return principal


async def key_is_live(box: Box, key_id: str, tenant_id: int) -> bool:
    """Whether `key_id` of `tenant_id` exists and is not revoked: the URLs a key minted die
    with it. Cached like `authenticate`."""
    cache_key = ("key_id", key_id)
    live = box.keys.get(cache_key)
    if live is None:
        generation = box.keys.generation()
        row = await box.db.fetchone_point(_KEY_SQL + "k.key_id = ?", (key_id,))
        # A suspended tenant is refused by the byte routes themselves (401, until resumed).
        live = row is not None and row["tenant_id"] == tenant_id and row["revoked_at"] is None
        box.keys.put(cache_key, live, generation)
    return live


async def require_live_key(box: Box, key_id: str, tenant_id: int) -> None:
    """403 unless the key that minted a (verified) URL is still live: URLs die with their key."""
    if not await key_is_live(box, key_id, tenant_id):
        raise errors.InvalidSignature(
            "The signed URL was made with an API key that has since been revoked; ask for a new "
            "URL with a live key."
        )


def _principal(box: Box, row: Any) -> Principal:
    """The caller behind a key row; Unauthorized for an unknown/revoked key or suspended tenant."""
    if row is None or row["revoked_at"] is not None:
        raise errors.Unauthorized("The API key is invalid or has been revoked.")
    if row["suspended_at"] is not None:
        raise errors.Unauthorized(
            f"Tenant {row['name']!r} is suspended; ask the box administrator to resume it."
        )
    return Principal(
        tenant_id=row["tenant_id"],
        tenant_name=row["name"],
        plan=box.settings.plan(row["plan"]),
        key_id=row["key_id"],
        key_last4=row["last4"],
        requests_month=row["requests_month"],
        requests_count=row["requests_count"],
        requests_flushed_then=box.meter.flushed_for(row["tenant_id"]),
    )


async def authenticate_key_id(box: Box, key_id: str) -> Principal:
    """The caller behind a key id the box itself issued earlier (the web console's signed cookie
    names the key id, never the key): the same checks as `authenticate`, read from the database
    on every request (never from the key cache), so revoking the key or suspending the tenant
    ends a browser session at its next request."""
    row = await box.db.fetchone_point(_KEY_SQL + "k.key_id = ?", (key_id,))
    return _principal(box, row)


async def bootstrap(box: Box) -> dict | None:
    """On a box with no tenant: create tenant `default` and one key. Returns the key or None."""
    if await tenant_count(box) > 0:
        return None
    try:
        await create_tenant(box, DEFAULT_TENANT, actor="bootstrap")
    except errors.Conflict:
        return None
    return await create_key(box, DEFAULT_TENANT, name="bootstrap", actor="bootstrap")
