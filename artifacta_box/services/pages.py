"""Artifact pages: an artifact published as a public web page at `/a/<slug>`.

API (for the tenant): `publish` (first time 201, again 200: same page, same URL, new settings)
and `unpublish` (idempotent). Site (for anyone with the URL): `find_page` reads a page by its
slug with its artifact and tenant, `page_state` says whether it still shows, `list_public` is
the gallery at `/a/`.

A page is a row of `pages`, one per publication. The slug is the page's only secret for
`unlisted` pages: PAGE_SLUG_CHARS characters from the CSPRNG (131 bits), never derived from
the artifact. Unpublishing stamps `unpublished_at` and keeps the row, so the URL answers 410
from then on; publishing the artifact again makes a new page under a new URL (an old URL, once
taken down, never comes back to life).

"Active" (the plan's `max_pages` cap, whoami's `active_pages`): not unpublished, and its
artifact live (active, not past its expiry), the rule links use for `max_active_links`.

Password pages store a scrypt hash (`scrypt$n$r$p$salt$hash`, base64); `password_fingerprint`
names the hash in the page's cookie, so publishing with a new password ends every visitor's
access granted under the old one.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import sqlite3
from dataclasses import dataclass
from typing import Any

from artifacta_box import errors
from artifacta_box.clock import iso
from artifacta_box.context import Box
from artifacta_box.db import fetchone
from artifacta_box.ids import new_page_id, new_page_slug
from artifacta_box.services.audit import record_audit
from artifacta_box.services.downloads import SERVE_BLOB_COLUMNS, SERVE_BLOB_JOIN, Grant
from artifacta_box.services.principal import Principal
from artifacta_box.services.records import is_expired, load_artifact
from artifacta_box.services.validation import is_page_slug

PAGE_PREFIX = "/a/"
VISIBILITIES = ("unlisted", "public")
ACCESS_MODES = ("none", "password")
DEFAULT_VISIBILITY, DEFAULT_ACCESS = "unlisted", "none"
MAX_TITLE_CHARS = 255
MAX_PASSWORD_CHARS = 1024
GALLERY_PAGE_SIZE = 24
_GALLERY_SCOPE = "gallery"
_GALLERY_TENANT = 0  # the gallery's cursors belong to no tenant

# scrypt's cost: 16 MiB and ~50 ms of one core per hash (RFC 7914's interactive setting).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_SCRYPT_MAXMEM = 64 * 1024 * 1024


def page_path(slug: str) -> str:
    return f"{PAGE_PREFIX}{slug}"


# ---------------------------------------------------------------------------- passwords


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                            maxmem=_SCRYPT_MAXMEM, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches a `hash_password` result (its own cost parameters)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        want = _unb64(digest)
        got = hashlib.scrypt(password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p),
                             maxmem=_SCRYPT_MAXMEM, dklen=len(want))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


def password_fingerprint(stored: str) -> str:
    """A short name of one password hash (for the page cookie; reveals nothing of the hash)."""
    return hashlib.sha256(stored.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------- publishing


@dataclass(frozen=True)
class PublishRequest:
    visibility: str
    access: str
    password: str | None
    title: str | None


def _choice(body: dict[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = body.get(name)
    if value is None:
        return default
    if value not in allowed:
        options = " or ".join(repr(a) for a in allowed)
        raise errors.InvalidRequest(f"{name} must be {options} (default {default!r}); got {value!r}.")
    return value


def parse_publish(body: dict[str, Any]) -> PublishRequest:
    """The publish body: every field optional; each publish states the whole page (a field left
    out takes its default, so a title sent before and not now is dropped). Other fields are
    ignored, as on every route of the API."""
    visibility = _choice(body, "visibility", VISIBILITIES, DEFAULT_VISIBILITY)
    access = _choice(body, "access", ACCESS_MODES, DEFAULT_ACCESS)
    title = body.get("title")
    if title is not None:
        if not isinstance(title, str):
            raise errors.InvalidRequest(f"title must be a string of at most {MAX_TITLE_CHARS} "
                                        f"characters; got {type(title).__name__}.")
        title = title.strip()
        if len(title) > MAX_TITLE_CHARS:
            raise errors.InvalidRequest(
                f"title must be at most {MAX_TITLE_CHARS} characters; got {len(title)}.")
        if any(ord(c) < 32 or ord(c) == 127 for c in title):
            raise errors.InvalidRequest("title must not contain control characters (newlines, tabs).")
        title = title or None
    password = body.get("password")
    if access == "password":
        if not isinstance(password, str) or not password:
            raise errors.InvalidRequest(
                'access "password" needs a password: send "password": "<at least 1 character>".')
        if len(password) > MAX_PASSWORD_CHARS:
            raise errors.InvalidRequest(
                f"password must be at most {MAX_PASSWORD_CHARS} characters; got {len(password)}.")
    elif password is not None:
        raise errors.InvalidRequest(
            'password is only used with access "password"; leave it out or set access to "password".')
    return PublishRequest(visibility, access, password, title)


def _record(row: Any) -> dict[str, Any]:
    """A page as the API returns it (`path` not yet absolute)."""
    return {
        "page_id": row["page_id"],
        "path": page_path(row["slug"]),
        "visibility": row["visibility"],
        "access": row["access"],
        "title": row["title"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


_LIVE_PAGE_SQL = "SELECT * FROM pages WHERE artifact_id = ? AND tenant_id = ? AND unpublished_at IS NULL"

ACTIVE_PAGES_SQL = (
    "SELECT COUNT(*) FROM pages p JOIN artifacts a ON a.artifact_id = p.artifact_id "
    "WHERE p.tenant_id = ? AND p.unpublished_at IS NULL "
    "AND a.state = 'active' AND (a.expires_at IS NULL OR a.expires_at > ?)"
)


def count_active_pages(conn: sqlite3.Connection, tenant_id: int, now_iso: str) -> int:
    """Pages that still show: published and of a live artifact (a page of a deleted or
    expired artifact frees its place in the plan's cap at once)."""
    return int(fetchone(conn, ACTIVE_PAGES_SQL, (tenant_id, now_iso))[0])


async def publish(box: Box, principal: Principal, artifact_id: str,
                  body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Publish (or re-publish) one of the caller's live artifacts: (the page, created?)."""
    req = parse_publish(body)
    password_hash = None
    if req.password is not None:  # ~50 ms of CPU: off the event loop, before the write
        password_hash = await asyncio.to_thread(hash_password, req.password)
    plan = principal.plan

    def write(conn: sqlite3.Connection) -> tuple[dict[str, Any], bool]:
        now_iso = iso(box.clock.now())
        load_artifact(conn, principal.tenant_id, artifact_id, now_iso)
        row = fetchone(conn, _LIVE_PAGE_SQL, (artifact_id, principal.tenant_id))
        created = row is None
        if created:
            active = count_active_pages(conn, principal.tenant_id, now_iso)
            if active >= plan.max_pages:
                raise errors.QuotaExceeded(
                    f"This tenant already has {active} published pages, the most plan "
                    f"{plan.name!r} allows; unpublish one (DELETE /v1/artifacts/<id>/publish) first.")
            page_id = new_page_id()
            conn.execute(
                "INSERT INTO pages (page_id, slug, tenant_id, artifact_id, visibility, access, "
                "password_hash, title, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (page_id, new_page_slug(), principal.tenant_id, artifact_id, req.visibility,
                 req.access, password_hash, req.title, now_iso, now_iso))
        else:
            page_id = row["page_id"]
            conn.execute(
                "UPDATE pages SET visibility = ?, access = ?, password_hash = ?, title = ?, "
                "updated_at = ? WHERE page_id = ?",
                (req.visibility, req.access, password_hash, req.title, now_iso, page_id))
        record_audit(conn, now_iso, principal.actor, "page.publish", principal.tenant_name, page_id,
                     {"artifact_id": artifact_id, "visibility": req.visibility,
                      "access": req.access, "first": created})
        saved = fetchone(conn, "SELECT * FROM pages WHERE page_id = ?", (page_id,))
        return _record(saved), created

    return await box.db.execute_write_fn(write)


async def unpublish(box: Box, principal: Principal, artifact_id: str) -> dict[str, Any]:
    """Take the artifact's page down (idempotent: a second call reports the first)."""
    def write(conn: sqlite3.Connection) -> dict[str, Any]:
        now_iso = iso(box.clock.now())
        load_artifact(conn, principal.tenant_id, artifact_id, now_iso)
        live = fetchone(conn, _LIVE_PAGE_SQL, (artifact_id, principal.tenant_id))
        if live is not None:
            conn.execute("UPDATE pages SET unpublished_at = ? WHERE page_id = ?",
                         (now_iso, live["page_id"]))
            record_audit(conn, now_iso, principal.actor, "page.unpublish", principal.tenant_name,
                         live["page_id"], {"artifact_id": artifact_id})
        last = fetchone(
            conn, "SELECT page_id, unpublished_at FROM pages WHERE artifact_id = ? AND tenant_id = ? "
            "ORDER BY created_at DESC LIMIT 1", (artifact_id, principal.tenant_id))
        return {"artifact_id": artifact_id, "published": False,
                "page_id": last["page_id"] if last else None,
                "unpublished_at": last["unpublished_at"] if last else None}

    return await box.db.execute_write_fn(write)


async def live_page_of(box: Box, principal: Principal, artifact_id: str) -> dict[str, Any] | None:
    """The caller's published page of one artifact, or None (the console shows it)."""
    row = await box.db.fetchone(_LIVE_PAGE_SQL, (artifact_id, principal.tenant_id))
    return _record(row) if row is not None else None


# ---------------------------------------------------------------------------- the site

_SITE_SQL = (
    "SELECT p.page_id, p.slug, p.visibility, p.access, p.password_hash, p.title, "
    "p.created_at AS page_created_at, p.updated_at AS page_updated_at, p.unpublished_at, "
    "p.tenant_id, p.artifact_id, a.state, a.filename, a.content_type, a.size_bytes, "
    "a.content_hash, a.expires_at, a.created_at, t.plan AS tenant_plan, "
    "t.suspended_at AS tenant_suspended_at, "
    f"{SERVE_BLOB_COLUMNS} "
    "FROM pages p JOIN tenants t ON t.tenant_id = p.tenant_id "
    "LEFT JOIN artifacts a ON a.artifact_id = p.artifact_id AND a.tenant_id = p.tenant_id "
    f"{SERVE_BLOB_JOIN} WHERE p.slug = ?"
)


async def find_page(box: Box, slug: str) -> Any | None:
    """A page by its slug, with its artifact's serving columns (services.downloads) and its
    tenant's plan: one indexed read. None when no page has this slug."""
    if not is_page_slug(slug):
        return None
    return await box.db.fetchone_point(_SITE_SQL, (slug,))


def page_state(row: Any, now_iso: str) -> str:
    """`live`, or why the page no longer shows: `unpublished`, `deleted`, `expired`, `purged`
    (its artifact's row is gone) or `suspended` (its tenant shares nothing)."""
    if row["unpublished_at"] is not None:
        return "unpublished"
    if row["state"] is None:
        return "purged"
    if row["state"] == "deleted":
        return "deleted"
    if is_expired(row, now_iso):
        return "expired"
    if row["tenant_suspended_at"] is not None:
        return "suspended"
    return "live"


def grant_of(box: Box, row: Any) -> Grant:
    """The page's artifact as a byte grant (served and charged like a share link's)."""
    return Grant(row["tenant_id"], box.settings.plan(row["tenant_plan"]), row["artifact_id"], row)


_GALLERY_SQL = (
    "SELECT p.page_id, p.slug, p.title, p.access, p.created_at, a.filename, a.content_type, "
    "a.size_bytes FROM pages p "
    "JOIN artifacts a ON a.artifact_id = p.artifact_id AND a.tenant_id = p.tenant_id "
    "JOIN tenants t ON t.tenant_id = p.tenant_id "
    "WHERE p.visibility = 'public' AND p.unpublished_at IS NULL "
    "AND a.state = 'active' AND (a.expires_at IS NULL OR a.expires_at > ?) "
    "AND t.suspended_at IS NULL AND (p.created_at, p.page_id) < (?, ?) "
    "ORDER BY p.created_at DESC, p.page_id DESC LIMIT ?"
)


@dataclass(frozen=True)
class Gallery:
    items: list[dict[str, Any]]
    next_cursor: str | None


async def list_public(box: Box, cursor: str | None, limit: int = GALLERY_PAGE_SIZE) -> Gallery:
    """Public pages that show, newest first, `limit` at a time (400 for a bad cursor)."""
    position: list[Any] = ["\uffff", ""]
    if cursor:
        position = box.cursors.decode(cursor, _GALLERY_TENANT, _GALLERY_SCOPE)
        if len(position) != 2 or not all(isinstance(v, str) for v in position):
            raise errors.InvalidRequest("The cursor is invalid: pass back next_cursor unchanged.")
    rows = await box.db.fetchall(
        _GALLERY_SQL, (iso(box.clock.now()), position[0], position[1], limit + 1))
    items = [{"path": page_path(r["slug"]), "title": r["title"] or r["filename"],
              "filename": r["filename"], "content_type": r["content_type"],
              "size_bytes": int(r["size_bytes"]), "created_at": r["created_at"],
              "access": r["access"], "page_id": r["page_id"]} for r in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = box.cursors.encode(_GALLERY_TENANT, _GALLERY_SCOPE,
                                         [last["created_at"], last["page_id"]])
    return Gallery(items, next_cursor)
