"""The web console's browser session: its cookie, its CSRF defence and its one-time notices.

The cookie (`artifacta_console`, path `/console`, HttpOnly, SameSite=Strict, Secure over
HTTPS, 12 h) holds a signed `{"k": key id or null, "n": nonce}`: the id of the API key that
signed in, never the key itself, and a random nonce from which the CSRF token is derived. It
is signed with the box's secret (itsdangerous, its own salt) and time-stamped, so a cookie
older than 12 h, altered, or made under another secret is no session at all. The cookie only
names a key: every request looks that key up again (`tenants.authenticate_key_id`), so a key
revoked from the CLI or a suspended tenant ends the browser session at its next click.

CSRF: every POST must come from the box's own origin (its `Origin` header, or `Referer` when a
browser sends no Origin; neither → refused) and carry the form field `csrf`, an HMAC of the
cookie's nonce under the box's secret. Either check failing answers 403 before anything runs.
The nonce changes at sign-in, so a token seen before sign-in is useless after it.

Notices after a redirect ("Share link created …") travel in a second signed cookie that lives
for a minute and is read once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sanic import Request
from sanic.response import HTTPResponse

from artifacta_box.http.common import base_url, box_of

COOKIE = "artifacta_console"
NOTICE_COOKIE = "artifacta_console_notice"
COOKIE_PATH = "/console"
SESSION_SECONDS = 12 * 3600
NOTICE_SECONDS = 60
CSRF_FIELD = "csrf"
_SESSION_SALT = "artifacta-box.console.session.v1"
_NOTICE_SALT = "artifacta-box.console.notice.v1"
_CSRF_SALT = b"artifacta-box.console.csrf.v1"


class CsrfRefused(Exception):
    """A console POST from another origin or without this session's token: a 403 page. Not an
    API error code (no API route can raise it)."""

    status = 403


@dataclass(frozen=True)
class ConsoleSession:
    key_id: str | None  # None: not signed in
    nonce: str
    fresh: bool = False  # made for this request: the response must set the cookie

    def csrf_token(self, secret: bytes) -> str:
        key = hmac.new(secret, _CSRF_SALT, hashlib.sha256).digest()
        return hmac.new(key, self.nonce.encode(), hashlib.sha256).hexdigest()[:40]


def _serializer(request: Request, salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(box_of(request).secret, salt=salt)


def read_session(request: Request) -> ConsoleSession:
    """The session the request's cookie carries, or a new anonymous one."""
    raw = request.cookies.get(COOKIE)
    if raw:
        try:
            data = _serializer(request, _SESSION_SALT).loads(raw, max_age=SESSION_SECONDS)
        except BadSignature:
            data = None
        if (isinstance(data, dict) and isinstance(data.get("n"), str)
                and (data.get("k") is None or isinstance(data.get("k"), str))):
            return ConsoleSession(data.get("k"), data["n"])
    return ConsoleSession(None, secrets.token_urlsafe(18), fresh=True)


def new_session(key_id: str | None) -> ConsoleSession:
    """A session with a new nonce (at sign-in and sign-out: old CSRF tokens stop working)."""
    return ConsoleSession(key_id, secrets.token_urlsafe(18), fresh=True)


def _secure(request: Request) -> bool:
    return base_url(request).startswith("https://")


def set_session_cookie(request: Request, response: HTTPResponse, session: ConsoleSession) -> None:
    value = _serializer(request, _SESSION_SALT).dumps({"k": session.key_id, "n": session.nonce})
    response.add_cookie(COOKIE, value, path=COOKIE_PATH, max_age=SESSION_SECONDS, httponly=True,
                        samesite="Strict", secure=_secure(request))


def set_notice(request: Request, response: HTTPResponse, kind: str, text: str) -> None:
    """A notice for the next page ("ok" or "error")."""
    value = _serializer(request, _NOTICE_SALT).dumps({"kind": kind, "text": text[:2000]})
    response.add_cookie(NOTICE_COOKIE, value, path=COOKIE_PATH, max_age=NOTICE_SECONDS,
                        httponly=True, samesite="Strict", secure=_secure(request))


def read_notice(request: Request) -> dict[str, str] | None:
    """The pending notice, if any (the page that shows it calls `clear_notice`)."""
    raw = request.cookies.get(NOTICE_COOKIE)
    if not raw:
        return None
    try:
        data = _serializer(request, _NOTICE_SALT).loads(raw, max_age=NOTICE_SECONDS)
    except BadSignature:
        return None
    if isinstance(data, dict) and data.get("kind") in ("ok", "error") and isinstance(data.get("text"), str):
        return {"kind": data["kind"], "text": data["text"]}
    return None


def clear_notice(request: Request, response: HTTPResponse) -> None:
    if request.cookies.get(NOTICE_COOKIE):
        response.delete_cookie(NOTICE_COOKIE, path=COOKIE_PATH)


def clear_session(response: HTTPResponse) -> None:
    response.delete_cookie(COOKIE, path=COOKIE_PATH)


def own_origin(request: Request) -> str:
    parts = urlsplit(base_url(request))
    return f"{parts.scheme}://{parts.netloc}".lower()


def check_csrf(request: Request, session: ConsoleSession) -> None:
    """403 unless a POST comes from the box's own origin with this session's CSRF token."""
    origin = request.headers.get("origin")
    if origin is None:
        referer = request.headers.get("referer")
        if referer:
            parts = urlsplit(referer)
            origin = f"{parts.scheme}://{parts.netloc}"
    if origin is None:
        raise CsrfRefused("Refused: this form was sent without an Origin header; "
                          "send it from the console page itself.")
    if origin.lower() != own_origin(request):
        raise CsrfRefused(f"Refused: this form was sent from {origin[:100]}, not from the "
                          "console's own origin.")
    token = request.form.get(CSRF_FIELD) if request.form else None
    expected = session.csrf_token(box_of(request).secret)
    if session.fresh or not token or not hmac.compare_digest(token.encode(), expected.encode()):
        raise CsrfRefused("Refused: the form's security token is missing or out of date; "
                          "reload the page and try again.")
