"""HMAC signing (itsdangerous) for the box's own URLs and cursors. One module signs and verifies.

Signed URLs bind the HTTP method, artifact id, tenant and expiry (and, for uploads, the reserved
size) — never the Host header — so a URL minted for one artifact, tenant or method cannot be
bent to another, and the box can sit behind any proxy. Verification is constant-time
(itsdangerous), and distinguishes a tampered URL (InvalidSignature) from an expired one
(UrlExpired): the signature is checked first, so a forged expiry is "tampered", not "expired".

Rotating the secret (security.secret_key, or deleting <data_dir>/secret.key) invalidates every
outstanding signed URL and cursor.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from itsdangerous import BadSignature, Signer, URLSafeSerializer

from artifacta_box import errors

_URL_SALT = "artifacta-box.url.v1"
_CURSOR_SALT = "artifacta-box.cursor.v1"


class UrlSigner:
    def __init__(self, secret: bytes) -> None:
        self._signer = Signer(secret, salt=_URL_SALT, digest_method=hashlib.sha256)

    @staticmethod
    def _payload(method: str, artifact_id: str, tenant_id: int, expires: int, extra: str) -> bytes:
        return f"{method.upper()}|{artifact_id}|{int(tenant_id)}|{int(expires)}|{extra}".encode()

    def sign(self, method: str, artifact_id: str, tenant_id: int, expires: int, extra: str = "") -> str:
        """The signature (URL-safe base64) for these bound values."""
        return self._signer.get_signature(
            self._payload(method, artifact_id, tenant_id, expires, extra)
        ).decode("ascii")

    def verify(
        self,
        method: str,
        artifact_id: str,
        tenant_id: int,
        expires: Any,
        signature: Any,
        now: float,
        extra: str = "",
    ) -> None:
        """Raise InvalidSignature if anything was altered, UrlExpired if past `expires`."""
        try:
            exp = int(expires)
        except (TypeError, ValueError):
            raise errors.InvalidSignature("The signed URL is malformed or has been altered.") from None
        if not isinstance(signature, str) or not signature or len(signature) > 200:
            raise errors.InvalidSignature("The signed URL is malformed or has been altered.")
        try:
            ok = self._signer.verify_signature(
                self._payload(method, artifact_id, tenant_id, exp, extra), signature.encode("ascii")
            )
        except (UnicodeEncodeError, BadSignature):
            ok = False
        if not ok:
            raise errors.InvalidSignature("The signed URL is invalid: it was altered or made for another resource.")
        if now >= exp:
            raise errors.UrlExpired("The signed URL has expired; request a new one.")


class CursorCodec:
    """Opaque, tamper-evident pagination cursors bound to a tenant and a query."""

    def __init__(self, secret: bytes) -> None:
        self._ser = URLSafeSerializer(secret, salt=_CURSOR_SALT)

    @staticmethod
    def scope_hash(tenant_id: int, scope: Any) -> str:
        raw = json.dumps([int(tenant_id), scope], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    def encode(self, tenant_id: int, scope: Any, position: list[Any]) -> str:
        return self._ser.dumps([self.scope_hash(tenant_id, scope), position])

    def decode(self, token: str, tenant_id: int, scope: Any) -> list[Any]:
        """The position encoded in `token`; InvalidRequest if forged, foreign or for another query."""
        if not isinstance(token, str) or len(token) > 2048:
            raise errors.InvalidRequest("The cursor is invalid: pass back next_cursor unchanged.")
        try:
            scope_hash, position = self._ser.loads(token)
        except (BadSignature, ValueError, TypeError):
            raise errors.InvalidRequest("The cursor is invalid: pass back next_cursor unchanged.") from None
        if scope_hash != self.scope_hash(tenant_id, scope) or not isinstance(position, list):
            raise errors.InvalidRequest(
                "The cursor belongs to a different query: repeat the same filters it was issued for."
            )
        return position
