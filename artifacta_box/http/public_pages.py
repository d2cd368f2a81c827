"""Artifact pages, the public side: what anyone with a page's URL sees (no key, no console
cookie). Publishing is the API's (`http/pages.py`); the page rows and rules are
`services/pages.py`; previews are the console's renderers (`web/previews.py`, `preview.html`)
under the same safety rules and the same page CSP (`http/html.py`).

Routes (HTML unless said otherwise):
- `GET /a/` the gallery of `public` pages, newest first, `?cursor=` for the next ones
- `GET /a/<slug>` the page: title, filename, size, date, preview, download; a password form
  for `access: password` pages; `POST /a/<slug>` checks the password
- `GET|HEAD /a/<slug>/raw` the bytes for the preview (inline only for the allowlist);
  `GET|HEAD /a/<slug>/download` the bytes as an attachment
- `GET /a/static/<file>` the stylesheet and icon (the console's)

Every answer about a page costs the page's tenant what a share link's does
(`grants.charge_anonymous`): a page is one more way of sharing an artifact's bytes without a
key. `unlisted` pages (and every password form, error and byte answer) send
`X-Robots-Tag: noindex`; `public` pages may be indexed and are listed at /a/. A page that no longer shows answers an HTML 410 (taken
down, artifact deleted or expired) or 404 (no such page, artifact purged).

Password pages: a right password sets a cookie (`artifacta_page`, path `/a/<slug>`, HttpOnly,
SameSite=Lax, 12 h) signed with the box's secret, naming the page and its password hash's
fingerprint, so it opens that page only, and only until the page gets a new password. Wrong
passwords are throttled per address and page on the failed-auth budget (`failed_auth_limit`
per `failed_auth_window`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sanic import Blueprint, Request
from sanic.response import HTTPResponse, html, redirect

from artifacta_box import errors
from artifacta_box.clock import iso
from artifacta_box.http import byteserve
from artifacta_box.http.common import absolute_url, base_url, box_of, client_address
from artifacta_box.http.console_session import own_origin
from artifacta_box.http.grants import charge_anonymous
from artifacta_box.http.html import PAGE_HEADERS, serve_preview_bytes, text_preview
from artifacta_box.services import downloads, pages
from artifacta_box.web import previews
from artifacta_box.web.templating import render, static_files

bp = Blueprint("public_pages")

STATIC_PREFIX = "/a/static"
COOKIE = "artifacta_page"
COOKIE_SECONDS = 12 * 3600
_COOKIE_SALT = "artifacta-box.page.v1"
NOINDEX = {"X-Robots-Tag": "noindex"}
GONE_TEXT = {
    "unpublished": (410, "This page was taken down by its owner."),
    "deleted": (410, "The file behind this page was deleted."),
    "expired": (410, "The file behind this page has expired."),
    "purged": (404, "There is no page at this address."),
    "suspended": (403, "This page is not available at the moment."),
}


def _render(request: Request, template: str, *, status: int = 200,
            headers: dict[str, str] | None = None, **context: Any) -> HTTPResponse:
    body = render(f"pages/{template}", static_prefix=STATIC_PREFIX, **context)
    return html(body, status=status, headers={**PAGE_HEADERS, **(headers or {})})


def message_page(request: Request, status: int, title: str, text: str,
                 headers: dict[str, str] | None = None) -> HTTPResponse:
    return _render(request, "message.html", status=status, headers={**NOINDEX, **(headers or {})},
                   title=title, text=text)


def _not_found(request: Request) -> HTTPResponse:
    return message_page(request, 404, "Page not found", "There is no page at this address.")


class PageUnavailable(Exception):
    """A page that cannot be shown, with the answer to give instead."""

    def __init__(self, response: HTTPResponse) -> None:
        self.response = response


async def _live_page(request: Request, slug: str) -> Any:
    """The page row if it shows now, its tenant charged one rate token; else PageUnavailable."""
    box = box_of(request)
    row = await pages.find_page(box, slug)
    if row is None:
        raise PageUnavailable(_not_found(request))
    state = pages.page_state(row, iso(box.clock.now()))
    if state != "live":
        status, text = GONE_TEXT[state]
        title = {404: "Page not found", 410: "This page is gone"}.get(status, "Not available")
        raise PageUnavailable(message_page(request, status, title, text))
    try:
        charge_anonymous(request, pages.grant_of(box, row))
    except errors.RateLimited as exc:
        raise PageUnavailable(message_page(
            request, 429, "Too many requests",
            "This page is being opened too often right now; try again in a few seconds.",
            headers=exc.headers)) from None
    return row


def _robots(row: Any) -> dict[str, str]:
    return {} if row["visibility"] == "public" and row["access"] == "none" else dict(NOINDEX)


# ---------------------------------------------------------------------------- passwords


def _serializer(request: Request) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(box_of(request).secret, salt=_COOKIE_SALT)


def _unlocked(request: Request, row: Any) -> bool:
    """Whether this request may see the page: it needs no password, or carries its cookie."""
    if row["access"] != "password":
        return True
    raw = request.cookies.get(COOKIE)
    if not raw or not row["password_hash"]:
        return False
    try:
        data = _serializer(request).loads(raw, max_age=COOKIE_SECONDS)
    except BadSignature:
        return False
    return (isinstance(data, dict) and data.get("p") == row["page_id"]
            and data.get("f") == pages.password_fingerprint(row["password_hash"]))


def _password_form(request: Request, row: Any, *, status: int, error: str | None,
                   headers: dict[str, str] | None = None) -> HTTPResponse:
    return _render(request, "password.html", status=status, headers={**NOINDEX, **(headers or {})},
                   title=row["title"] or "Protected page", action=pages.page_path(row["slug"]),
                   error=error)


# ---------------------------------------------------------------------------- routes


@bp.get("/a/", strict_slashes=True)
async def gallery(request: Request):
    box = box_of(request)
    try:
        result = await pages.list_public(box, request.args.get("cursor") or None)
    except errors.InvalidRequest as exc:
        return message_page(request, 400, "That list link is not valid", exc.message)
    next_url = f"/a/?cursor={result.next_cursor}" if result.next_cursor else None
    return _render(request, "gallery.html", indexable=True, items=result.items, next_url=next_url,
                   first_url="/a/" if request.args.get("cursor") else None)


@bp.get("/a", strict_slashes=True)
async def gallery_root(request: Request):
    return redirect("/a/", status=302)


@bp.get(f"{STATIC_PREFIX}/<name:str>", unquote=True)
async def static(request: Request, name: str):
    item = static_files().get(name)
    if item is None:
        return _not_found(request)
    current = request.args.get("v") == item.version
    headers = {
        "Content-Type": item.content_type,
        "Cache-Control": "public, max-age=31536000, immutable" if current else "no-cache",
        "ETag": f'"{item.version}"',
        "X-Content-Type-Options": "nosniff",
    }
    if request.headers.get("if-none-match") == headers["ETag"]:
        return HTTPResponse(status=304, headers=headers)
    return HTTPResponse(body=item.body, headers=headers)


@bp.get("/a/<slug:str>", unquote=True)
async def show_page(request: Request, slug: str):
    try:
        row = await _live_page(request, slug)
    except PageUnavailable as exc:
        return exc.response
    if not _unlocked(request, row):
        return _password_form(request, row, status=401, error=None)
    box = box_of(request)
    rep = downloads.open_grant(box, pages.grant_of(box, row))
    kind = previews.preview_kind(rep.content_type, rep.filename)
    text = await text_preview(rep, box.blobs, kind, row["artifact_id"]) if kind.is_text else None
    path = pages.page_path(slug)
    return _render(
        request, "page.html", headers=_robots(row), row=row, kind=kind, text=text,
        title=row["title"] or row["filename"], raw_url=f"{path}/raw",
        download_url=f"{path}/download", page_url=absolute_url(request, path),
        indexable=not _robots(row),
    )


@bp.post("/a/<slug:str>", unquote=True)
async def unlock_page(request: Request, slug: str):
    try:
        row = await _live_page(request, slug)
    except PageUnavailable as exc:
        return exc.response
    origin = request.headers.get("origin")
    if origin is not None and origin.lower() != own_origin(request):
        return message_page(request, 403, "Refused",
                            "This form was sent from another site; open the page itself and try again.")
    if row["access"] != "password":
        return redirect(pages.page_path(slug), status=303)
    box = box_of(request)
    guess = (request.form.get("password") if request.form else None) or ""
    throttle_key = f"{client_address(request)} {row['page_id']}"
    limiter = box.page_password_failures
    # Over budget, a guess is not even evaluated (scrypt costs ~50 ms of CPU each).
    wait = limiter.blocked_for(throttle_key)
    if wait:
        return _password_form(
            request, row, status=429, headers={"Retry-After": str(wait)},
            error=f"Too many wrong passwords from your address; try again in {wait} seconds.")
    right = bool(guess) and await asyncio.to_thread(
        pages.verify_password, guess, row["password_hash"] or "")
    if not right:
        limiter.record_failure(throttle_key)
        return _password_form(request, row, status=401, error="That password is not right.")
    response = redirect(pages.page_path(slug), status=303, headers={"Cache-Control": "no-store"})
    value = _serializer(request).dumps(
        {"p": row["page_id"], "f": pages.password_fingerprint(row["password_hash"])})
    response.add_cookie(COOKIE, value, path=pages.page_path(slug), max_age=COOKIE_SECONDS,
                        httponly=True, samesite="Lax",
                        secure=base_url(request).startswith("https://"))
    return response


async def _page_bytes(request: Request, slug: str) -> tuple[Any, downloads.Representation] | HTTPResponse:
    try:
        row = await _live_page(request, slug)
    except PageUnavailable as exc:
        return exc.response
    if not _unlocked(request, row):
        return message_page(request, 401, "Password needed",
                            "Open the page and enter its password first.")
    box = box_of(request)
    return row, downloads.open_grant(box, pages.grant_of(box, row))


@bp.route("/a/<slug:str>/raw", methods=["GET", "HEAD"], unquote=True)
async def page_raw(request: Request, slug: str):
    got = await _page_bytes(request, slug)
    if isinstance(got, HTTPResponse):
        return got
    _row, rep = got
    box = box_of(request)
    return await serve_preview_bytes(request, rep, box.blobs, box.settings.sendfile, NOINDEX)


@bp.route("/a/<slug:str>/download", methods=["GET", "HEAD"], unquote=True)
async def page_download(request: Request, slug: str):
    got = await _page_bytes(request, slug)
    if isinstance(got, HTTPResponse):
        return got
    _row, rep = got
    box = box_of(request)
    return await byteserve.serve(request, rep, box.blobs, dict(NOINDEX),
                                 use_sendfile=box.settings.sendfile)
