"""The web console at `/console/`: a tenant signs in with an API key and sees, previews,
shares and manages its artifacts, sessions, keys and audit trail in a browser.

Every handler calls the same `services/` functions as the /v1 routes (never the API over
loopback), so the console and the API cannot disagree: `/console/?session_id=run-42` lists
exactly what `GET /v1/artifacts?session_id=run-42` returns, page by page, and a bad filter
shows the API's own message.

A signed-in request (`signed_in`) re-reads the key its cookie names, then is admitted like an
API request (`common.admit`: rate limit, monthly quota, request meter, tenant in the access
log); a POST also passes the CSRF checks of `console_session` first. Pages are rendered by
`web/templating.py` from `web/templates/console/`; previews by `web/previews.py`.

Routes (all HTML unless said otherwise):
- `GET /` redirects a browser (Accept: text/html) to `/console/`; an API client still gets the
  JSON 404 of an unknown route.
- `GET|POST /console/sign-in`, `POST /console/sign-out`
- `GET /console/` artifacts, with every /v1/artifacts filter under its own name, cursor paging,
  a sessions sidebar and a usage strip
- `GET /console/artifacts/<id>`: details, preview, download, signed URL, share links, TTL,
  delete, its public page (publish, unpublish); `GET .../raw` the preview bytes;
  `GET .../download` a fresh signed URL (303)
- `GET /console/sessions`, seal (confirmation page, then POST)
- `GET|POST /console/keys`, revoke (confirmation, then POST); `GET /console/audit`
- `GET /console/static/<file>`: the stylesheet, the script, the icon
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, html, redirect

from artifacta_box import errors
from artifacta_box.http.common import absolute_url, admit, authenticate_key, base_url, box_of, query_pairs
from artifacta_box.http.console_session import (
    CSRF_FIELD,
    ConsoleSession,
    CsrfRefused,
    check_csrf,
    clear_notice,
    clear_session,
    new_session,
    read_notice,
    read_session,
    set_notice,
    set_session_cookie,
)
from artifacta_box.http.errors import to_api_error
from artifacta_box.http.html import PAGE_HEADERS, serve_preview_bytes, text_preview
from artifacta_box.security.keys import KEY_FORMAT, KEY_RE
from artifacta_box.services import (
    artifacts,
    audit,
    downloads,
    links,
    listing,
    pages,
    sessions,
    tenants,
)
from artifacta_box.services import console as console_reads
from artifacta_box.services.principal import Principal
from artifacta_box.services.validation import is_artifact_id
from artifacta_box.web import previews
from artifacta_box.web.templating import render, static_files

log = logging.getLogger("artifacta_box.http")

bp = Blueprint("console")

PREFIX = "/console"
HOME = "/console/"
SIGN_IN = "/console/sign-in"

SIDEBAR_SESSIONS = 15
AUDIT_ROWS = 200
# Share-link lifetimes offered (each at most the plan's longest link, which is offered too).
LINK_CHOICES = (3600, 86400, 7 * 86400, 30 * 86400, 90 * 86400, 365 * 86400)
TTL_CHOICES = ("1d", "7d", "30d", "90d", "365d")
FILTER_FIELDS = ("session_id", "agent_id", "filename", "content_type", "created_after",
                 "created_before")
NEW_METADATA_FIELD = "m"       # the form's "add a metadata filter" box: key=value
FORM_MARKER = "filter"         # set by the filter form: normalise to the API's names, redirect

Handler = Callable[..., Awaitable[HTTPResponse]]


# ---------------------------------------------------------------------------- page plumbing


def page(request: Request, template: str, *, status: int = 200, principal: Principal | None = None,
         session: ConsoleSession | None = None, headers: dict[str, str] | None = None,
         **context: Any) -> HTTPResponse:
    """Render a console page with the context every page shares."""
    session = session or getattr(request.ctx, "console_session", None) or read_session(request)
    box = box_of(request)
    notice = read_notice(request)
    body = render(f"console/{template}", principal=principal, notice=notice,
                  csrf=session.csrf_token(box.secret), csrf_field=CSRF_FIELD,
                  section=context.pop("section", None), base_url=base_url(request), **context)
    response = html(body, status=status, headers={**PAGE_HEADERS, **(headers or {})})
    clear_notice(request, response)
    if session.fresh:
        set_session_cookie(request, response, session)
    return response


def go(request: Request, location: str, notice: tuple[str, str] | None = None) -> HTTPResponse:
    """303 See Other (after a POST, or to sign in), with an optional notice for the next page."""
    response = redirect(location, status=303, headers={"Cache-Control": "no-store"})
    if notice is not None:
        set_notice(request, response, *notice)
    return response


def error_page(request: Request, exc: BaseException, principal: Principal | None) -> HTTPResponse:
    """An error as a page: the API's own status and message (a crash: 500 with the request id)."""
    if isinstance(exc, CsrfRefused):
        return page(request, "error.html", status=exc.status, principal=principal,
                    title="Refused", message=str(exc))
    err = to_api_error(request, exc)
    if err.status >= 500 and not isinstance(exc, errors.ApiError):
        log.error("unhandled error (request id %s)", getattr(request.ctx, "request_id", None),
                  exc_info=exc)
    return page(request, "error.html", status=err.status, principal=principal,
                headers=err.headers, title=_error_title(err), message=err.message, code=err.code)


def _error_title(err: errors.ApiError) -> str:
    return {400: "That request is not valid", 401: "Not signed in", 403: "Not allowed",
            404: "Not found", 410: "Gone", 429: "Too many requests"}.get(err.status, "Error")


def _safe_next(value: str | None) -> str:
    """Where to go after signing in: a console path only (never another site)."""
    if value and value.startswith(HOME) and "\\" not in value:
        return value
    return HOME


def signed_in(handler: Handler) -> Handler:
    """A page for a signed-in tenant: re-check the cookie's key, refuse a foreign or tokenless
    POST, admit the request like an API request, then run `handler(request, principal, ...)`."""

    @wraps(handler)
    async def wrapper(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
        session = read_session(request)
        request.ctx.console_session = session
        if session.key_id is None:
            target = request.path + (f"?{request.query_string}" if request.query_string else "")
            nxt = target if request.method == "GET" else HOME
            return go(request, f"{SIGN_IN}?{urlencode({'next': nxt})}")
        box = box_of(request)
        try:
            principal = await tenants.authenticate_key_id(box, session.key_id)
        except errors.Unauthorized as exc:
            response = go(request, SIGN_IN, ("error", f"Your session ended: {exc.message}"))
            clear_session(response)
            return response
        try:
            if request.method == "POST":
                check_csrf(request, session)
            admit(request, principal)
            return await handler(request, principal, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - a person gets a page (a crash: the log its traceback)
            return error_page(request, exc, principal)

    return wrapper


def form_value(request: Request, name: str) -> str:
    value = request.form.get(name) if request.form else None
    return value.strip() if isinstance(value, str) else ""


# ---------------------------------------------------------------------------- entry points


@bp.get("/", strict_slashes=True)
async def root(request: Request):
    """Browsers are sent to the console; API clients keep the JSON 404 of an unknown route."""
    if "text/html" in request.headers.get("accept", ""):
        return redirect(HOME, status=302)
    raise errors.NotFound("No such route: GET /. See the API reference for /v1 paths.")


@bp.get(PREFIX, strict_slashes=True)
async def console_root(request: Request):
    return redirect(HOME, status=302)


@bp.get("/console/static/<name:str>", unquote=True)
async def static(request: Request, name: str):
    item = static_files().get(name)
    if item is None:
        return error_page(request, errors.NotFound(f"No console file named {name[:100]!r}."), None)
    current = request.args.get("v") == item.version
    etag = f'"{item.version}"'
    headers = {
        "Content-Type": item.content_type,
        "Cache-Control": "public, max-age=31536000, immutable" if current else "no-cache",
        "ETag": etag,
        "X-Content-Type-Options": "nosniff",
    }
    if request.headers.get("if-none-match") == etag:
        return HTTPResponse(status=304, headers=headers)
    return HTTPResponse(body=item.body, headers=headers)


@bp.get(SIGN_IN)
async def sign_in_form(request: Request):
    session = read_session(request)
    nxt = _safe_next(request.args.get("next"))
    if session.key_id is not None:
        try:
            await tenants.authenticate_key_id(box_of(request), session.key_id)
            return go(request, nxt)
        except errors.Unauthorized:
            session = new_session(None)  # the old key is gone: start over
    return page(request, "sign_in.html", session=session, next=nxt, error=None)


@bp.post(SIGN_IN)
async def sign_in(request: Request):
    session = read_session(request)
    nxt = _safe_next(form_value(request, "next"))
    try:
        check_csrf(request, session)
    except CsrfRefused as exc:
        return error_page(request, exc, None)
    raw = form_value(request, "api_key")
    key = raw if KEY_RE.match(raw) else None
    try:
        principal = await authenticate_key(
            request, key,
            f"That is not an API key: a key looks like {KEY_FORMAT}.")
        admit(request, principal)
    except errors.ApiError as exc:
        return page(request, "sign_in.html", session=session, status=exc.status,
                    headers=exc.headers, next=nxt, error=exc.message)
    response = go(request, nxt)
    set_session_cookie(request, response, new_session(principal.key_id))
    return response


@bp.post("/console/sign-out")
async def sign_out(request: Request):
    session = read_session(request)
    try:
        check_csrf(request, session)
    except CsrfRefused as exc:
        return error_page(request, exc, None)
    response = go(request, SIGN_IN, ("ok", "You are signed out."))
    set_session_cookie(request, response, new_session(None))
    return response


# ---------------------------------------------------------------------------- artifacts


def _filter_redirect(pairs: list[tuple[str, str]]) -> tuple[str | None, str | None]:
    """The filter form's fields under the API's own names (blank fields dropped, `m=k=v` →
    `metadata.k=v`, back to the first page): (location, None), or (None, a message)."""
    out: list[tuple[str, str]] = []
    for name, value in pairs:
        value = value.strip()
        if name in (FORM_MARKER, "cursor") or not value:
            continue
        if name == NEW_METADATA_FIELD:
            key, sep, wanted = value.partition("=")
            if not sep or not key.strip():
                return None, (f"A metadata filter is written key=value (e.g. stage=eval); "
                              f"got {value[:80]!r}.")
            out.append((listing.METADATA_PREFIX + key.strip(), wanted.strip()))
            continue
        out.append((name, value))
    return HOME + (f"?{urlencode(out)}" if out else ""), None


def _form_state(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """What the filter form shows: the last value of each field, the metadata pairs."""
    fields = {name: "" for name in FILTER_FIELDS}
    metadata: list[tuple[str, str]] = []
    limit = ""
    for name, value in pairs:
        if name in fields:
            fields[name] = value
        elif name.startswith(listing.METADATA_PREFIX):
            metadata.append((name[len(listing.METADATA_PREFIX):], value))
        elif name == "limit":
            limit = value
    filtered = any(fields.values()) or bool(metadata)
    return {"fields": fields, "metadata": metadata, "limit": limit, "filtered": filtered}


def _with_cursor(pairs: list[tuple[str, str]], cursor: str | None) -> str:
    kept = [(k, v) for k, v in pairs if k != "cursor"]
    if cursor:
        kept.append(("cursor", cursor))
    return HOME + (f"?{urlencode(kept)}" if kept else "")


@bp.get(HOME, strict_slashes=True)
@signed_in
async def artifacts_page(request: Request, principal: Principal):
    box = box_of(request)
    pairs = query_pairs(request)
    if any(name == FORM_MARKER for name, _ in pairs):
        location, problem = _filter_redirect(pairs)
        if problem is not None:  # keep the other filters, say what is wrong with the new one
            location, _ = _filter_redirect([p for p in pairs if p[0] != NEW_METADATA_FIELD])
            return go(request, location or HOME, ("error", problem))
        return go(request, location or HOME)
    state = _form_state(pairs)
    result = error = None
    status = 200
    try:
        query = listing.parse_artifact_query(pairs, principal.plan)
        result = await listing.list_artifacts(box, principal.tenant_id, query)
    except errors.ApiError as exc:  # the API's own answer to this query, shown as a page
        error, status = exc, exc.status
    sidebar = await sessions.list_sessions(
        box, principal.tenant_id,
        sessions.parse_session_query([("limit", str(SIDEBAR_SESSIONS))], principal.plan))
    usage = await console_reads.usage_summary(box, principal)
    paged = any(name == "cursor" for name, _ in pairs)
    return page(
        request, "artifacts.html", status=status, principal=principal, section="artifacts",
        result=result, error=error, state=state, sidebar=sidebar.items,
        more_sessions=sidebar.has_more, usage=usage, current_session=state["fields"]["session_id"],
        next_url=_with_cursor(pairs, result.next_cursor) if result and result.next_cursor else None,
        first_url=_with_cursor(pairs, None) if paged else None,
    )


def _link_choices(max_seconds: int) -> tuple[list[int], int]:
    """The lifetimes offered for a new share link, and the one preselected (the API's default)."""
    choices = [s for s in LINK_CHOICES if s <= max_seconds]
    if max_seconds not in choices:
        choices.append(max_seconds)
    return choices, min(links.DEFAULT_LINK_SECONDS, max_seconds)


async def _text_preview(request: Request, principal: Principal, artifact_id: str,
                        kind: previews.PreviewKind) -> previews.TextPreview | None:
    box = box_of(request)
    grant = await downloads.authorize_owner(box, principal, artifact_id)
    return await text_preview(downloads.open_grant(box, grant), box.blobs, kind, artifact_id)


@bp.get("/console/artifacts/<artifact_id:str>", unquote=True)
@signed_in
async def artifact_page(request: Request, principal: Principal, artifact_id: str):
    box = box_of(request)
    record = await artifacts.get_artifact(box, principal, artifact_id)
    live = record["status"] == "active"
    kind = previews.preview_kind(record["content_type"], record["filename"])
    preview = None
    signed = None
    if live:
        if kind.is_text:
            preview = await _text_preview(request, principal, artifact_id, kind)
        signed = await downloads.describe_download(
            box, principal, artifact_id, lambda path: absolute_url(request, path))
    active_links = [
        {**link, "url": absolute_url(request, link["path"])}
        for link in await console_reads.artifact_links(box, principal, artifact_id)
    ]
    published = await pages.live_page_of(box, principal, artifact_id) if live else None
    if published is not None:
        published = {**published, "url": absolute_url(request, published["path"])}
    choices, default_choice = _link_choices(principal.plan.max_link_seconds)
    ttl_choices = list(TTL_CHOICES) + (["never"] if principal.plan.allow_never_ttl else [])
    return page(
        request, "artifact.html", principal=principal, section="artifacts", artifact=record,
        live=live, kind=kind, preview=preview, signed=signed, links=active_links,
        link_choices=choices, link_default=default_choice, ttl_choices=ttl_choices,
        raw_url=f"/console/artifacts/{artifact_id}/raw", published=published,
        visibilities=pages.VISIBILITIES, access_modes=pages.ACCESS_MODES,
        max_title=pages.MAX_TITLE_CHARS,
    )


@bp.route("/console/artifacts/<artifact_id:str>/raw", methods=["GET", "HEAD"], unquote=True)
@signed_in
async def artifact_bytes(request: Request, principal: Principal, artifact_id: str):
    """The bytes for a preview: `inline` only for the allowlisted types of `previews`, with the
    box's nosniff and sandbox CSP either way; ranges and validators as on /d/."""
    box = box_of(request)
    grant = await downloads.authorize_owner(box, principal, artifact_id)
    return await serve_preview_bytes(request, downloads.open_grant(box, grant), box.blobs,
                                     box.settings.sendfile)


@bp.get("/console/artifacts/<artifact_id:str>/download", unquote=True)
@signed_in
async def artifact_download(request: Request, principal: Principal, artifact_id: str):
    """A freshly signed /d/ URL (so a page left open for hours still downloads)."""
    signed = await downloads.describe_download(
        box_of(request), principal, artifact_id, lambda path: absolute_url(request, path))
    return redirect(signed["download_url"], status=303, headers={"Cache-Control": "no-store"})


def _artifact_url(artifact_id: str, anchor: str = "") -> str:
    return f"/console/artifacts/{artifact_id}" + (f"#{anchor}" if anchor else "")


@bp.post("/console/artifacts/<artifact_id:str>/links", unquote=True)
@signed_in
async def create_link(request: Request, principal: Principal, artifact_id: str):
    raw = form_value(request, "expires_in")
    expires_in: Any = int(raw) if raw.isdigit() else (raw or None)
    try:
        link = await links.create_link(box_of(request), principal, artifact_id,
                                       {"expires_in": expires_in})
    except errors.ApiError as exc:
        return go(request, _artifact_url(artifact_id, "share"), ("error", exc.message))
    url = absolute_url(request, link["path"])
    return go(request, _artifact_url(artifact_id, "share"),
              ("ok", f"Share link created: {url} (expires {link['expires_at'][:19]}Z)."))


@bp.post("/console/links/<link_id:str>/revoke", unquote=True)
@signed_in
async def revoke_link(request: Request, principal: Principal, link_id: str):
    artifact_id = form_value(request, "artifact_id")
    back = _artifact_url(artifact_id, "share") if is_artifact_id(artifact_id) else HOME
    try:
        await links.revoke_link(box_of(request), principal, link_id)
    except errors.ApiError as exc:
        return go(request, back, ("error", exc.message))
    return go(request, back, ("ok", f"Share link {link_id} revoked; it now answers 410."))


@bp.post("/console/artifacts/<artifact_id:str>/publish", unquote=True)
@signed_in
async def publish_page(request: Request, principal: Principal, artifact_id: str):
    """Publish or re-publish as an artifact page, with the API's rules and messages."""
    access = form_value(request, "access") or None
    body: dict[str, Any] = {"visibility": form_value(request, "visibility") or None,
                            "access": access, "title": form_value(request, "title") or None}
    if access == "password":
        body["password"] = (request.form.get("password") if request.form else None) or None
    try:
        page, created = await pages.publish(box_of(request), principal, artifact_id, body)
    except errors.ApiError as exc:
        return go(request, _artifact_url(artifact_id, "page"), ("error", exc.message))
    url = absolute_url(request, page["path"])
    text = "Published" if created else "Page updated"
    return go(request, _artifact_url(artifact_id, "page"), ("ok", f"{text}: {url}"))


@bp.post("/console/artifacts/<artifact_id:str>/unpublish", unquote=True)
@signed_in
async def unpublish_page(request: Request, principal: Principal, artifact_id: str):
    try:
        await pages.unpublish(box_of(request), principal, artifact_id)
    except errors.ApiError as exc:
        return go(request, _artifact_url(artifact_id, "page"), ("error", exc.message))
    return go(request, _artifact_url(artifact_id, "page"),
              ("ok", "Page taken down: its URL now answers 410."))


@bp.post("/console/artifacts/<artifact_id:str>/extend-ttl", unquote=True)
@signed_in
async def extend_ttl(request: Request, principal: Principal, artifact_id: str):
    try:
        record = await artifacts.extend_ttl(box_of(request), principal, artifact_id,
                                            {"ttl": form_value(request, "ttl")})
    except errors.ApiError as exc:
        return go(request, _artifact_url(artifact_id, "expiry"), ("error", exc.message))
    expires = record["expires_at"]
    text = f"It now expires {expires[:19]}Z." if expires else "It now never expires."
    return go(request, _artifact_url(artifact_id, "expiry"), ("ok", f"TTL extended. {text}"))


@bp.get("/console/artifacts/<artifact_id:str>/delete", unquote=True)
@signed_in
async def confirm_delete(request: Request, principal: Principal, artifact_id: str):
    record = await artifacts.get_artifact(box_of(request), principal, artifact_id)
    return page(request, "confirm.html", principal=principal, section="artifacts",
                title=f"Delete {record['filename']}?",
                message=(f"Delete {record['filename']} ({record['artifact_id']}, "
                         f"{record['size_bytes']:,} bytes)? Its download URLs and share links "
                         "stop working at once, and it stops counting toward storage."),
                action=f"/console/artifacts/{artifact_id}/delete", confirm_label="Delete artifact",
                cancel_url=_artifact_url(artifact_id), fields={}, danger=True)


@bp.post("/console/artifacts/<artifact_id:str>/delete", unquote=True)
@signed_in
async def delete_artifact(request: Request, principal: Principal, artifact_id: str):
    box = box_of(request)
    try:
        record = await artifacts.get_artifact(box, principal, artifact_id)
        await artifacts.delete_artifact(box, principal, artifact_id)
    except errors.ApiError as exc:
        return go(request, _artifact_url(artifact_id), ("error", exc.message))
    return go(request, HOME, ("ok", f"Deleted {record['filename']} ({artifact_id})."))


# ---------------------------------------------------------------------------- sessions


@bp.get("/console/sessions")
@signed_in
async def sessions_page(request: Request, principal: Principal):
    pairs = query_pairs(request)
    result = error = None
    status = 200
    try:
        query = sessions.parse_session_query(pairs, principal.plan)
        result = await sessions.list_sessions(box_of(request), principal.tenant_id, query)
    except errors.ApiError as exc:
        error, status = exc, exc.status
    kept = [(k, v) for k, v in pairs if k not in ("after", "cursor")]
    next_url = None
    if result and result.next_cursor:
        next_url = "/console/sessions?" + urlencode(kept + [("after", result.next_cursor)])
    paged = any(k in ("after", "cursor") for k, _ in pairs)
    return page(request, "sessions.html", status=status, principal=principal, section="sessions",
                result=result, error=error, next_url=next_url,
                first_url=("/console/sessions" + (f"?{urlencode(kept)}" if kept else "")) if paged else None)


@bp.get("/console/sessions/seal")
@signed_in
async def confirm_seal(request: Request, principal: Principal):
    session_id = request.args.get("session_id", "")
    return page(request, "confirm.html", principal=principal, section="sessions",
                title=f"Seal session {session_id}?",
                message=(f"Seal session {session_id}? No artifact can be added to it afterwards. "
                         "Sealing cannot be undone."),
                action="/console/sessions/seal", confirm_label="Seal session",
                cancel_url="/console/sessions", fields={"session_id": session_id}, danger=False)


@bp.post("/console/sessions/seal")
@signed_in
async def seal_session(request: Request, principal: Principal):
    session_id = form_value(request, "session_id")
    try:
        sealed = await sessions.seal_session(box_of(request), principal, session_id)
    except errors.ApiError as exc:
        return go(request, "/console/sessions", ("error", exc.message))
    return go(request, "/console/sessions",
              ("ok", f"Session {session_id} is sealed (since {sealed['sealed_at'][:19]}Z)."))


# ---------------------------------------------------------------------------- keys


async def _own_keys(request: Request, principal: Principal) -> list[dict[str, Any]]:
    keys = await tenants.list_keys(box_of(request), principal.tenant_name)
    return sorted(keys, key=lambda k: (k["revoked"], k["created_at"]), reverse=False)


@bp.get("/console/keys")
@signed_in
async def keys_page(request: Request, principal: Principal):
    return page(request, "keys.html", principal=principal, section="keys",
                keys=await _own_keys(request, principal), new_key=None)


@bp.post("/console/keys")
@signed_in
async def create_key(request: Request, principal: Principal):
    name = form_value(request, "name") or None
    try:
        created = await tenants.create_key(box_of(request), principal.tenant_name, name,
                                           actor=principal.actor)
    except errors.ApiError as exc:
        return go(request, "/console/keys", ("error", exc.message))
    # Shown on this answer only: the box keeps just its hash. (The page's script replaces the
    # history entry, so reloading shows the list, not the key, and creates nothing.)
    return page(request, "keys.html", principal=principal, section="keys",
                keys=await _own_keys(request, principal), new_key=created)


async def _own_key(request: Request, principal: Principal, key_id: str) -> dict[str, Any]:
    for key in await tenants.list_keys(box_of(request), principal.tenant_name):
        if key["key_id"] == key_id:
            return key
    raise errors.NotFound(f"No key with id {key_id[:64]!r} belongs to this tenant.")


@bp.get("/console/keys/<key_id:str>/revoke", unquote=True)
@signed_in
async def confirm_revoke_key(request: Request, principal: Principal, key_id: str):
    key = await _own_key(request, principal, key_id)
    own = key_id == principal.key_id
    label = f"{key['name'] or 'unnamed key'} (…{key['last4']})"
    return page(request, "confirm.html", principal=principal, section="keys",
                title=f"Revoke {label}?",
                message=(f"Revoke {label}? Every client using it is refused from its next request."
                         + (" This is the key you signed in with: you will be signed out."
                            if own else "")),
                action=f"/console/keys/{key_id}/revoke", confirm_label="Revoke key",
                cancel_url="/console/keys", fields={}, danger=True)


@bp.post("/console/keys/<key_id:str>/revoke", unquote=True)
@signed_in
async def revoke_key(request: Request, principal: Principal, key_id: str):
    try:
        await _own_key(request, principal, key_id)
        await tenants.revoke_key(box_of(request), key_id, actor=principal.actor)
    except errors.ApiError as exc:
        return go(request, "/console/keys", ("error", exc.message))
    if key_id == principal.key_id:
        response = go(request, SIGN_IN,
                      ("ok", "You revoked the key you signed in with, so you are signed out."))
        set_session_cookie(request, response, new_session(None))
        return response
    return go(request, "/console/keys", ("ok", f"Key {key_id} revoked."))


# ---------------------------------------------------------------------------- audit


@bp.get("/console/audit")
@signed_in
async def audit_page(request: Request, principal: Principal):
    action = request.args.get("action", "").strip()
    since = request.args.get("since", "").strip()
    entries: list[dict[str, Any]] = []
    error = None
    status = 200
    try:
        entries = await audit.query_audit(box_of(request), tenant=principal.tenant_name,
                                          action=action or None, since=since or None,
                                          limit=AUDIT_ROWS)
    except errors.ApiError as exc:
        error, status = exc, exc.status
    return page(request, "audit.html", status=status, principal=principal, section="audit",
                entries=entries, error=error, action=action, since=since, limit=AUDIT_ROWS)


# ---------------------------------------------------------------------------- the rest


@bp.route("/console/<rest:path>", methods=["GET", "HEAD"], unquote=True)
async def not_found(request: Request, rest: str):
    return error_page(request, errors.NotFound(f"There is no console page at {request.path[:200]}."),
                      None)
