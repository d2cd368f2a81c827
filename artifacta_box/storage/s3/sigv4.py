"""AWS Signature Version 4 for S3, standard library only.

Two forms of the same signature (https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-authenticating-requests.html):

- `presign_url`: query-string authentication, for URLs handed to clients (redirect downloads,
  presigned uploads). Unlike obstore's signer it can sign extra query parameters
  (`response-content-disposition`, `response-content-type`, ...), which S3 then applies to the
  response, and extra headers the client must send verbatim (`content-length`,
  `if-none-match`): a header listed in `X-Amz-SignedHeaders` that is missing or different
  makes S3 answer 403.
- `sign_request`: an `Authorization` header, for the box's own control-plane requests that
  obstore does not offer (listing and aborting multipart uploads, the start-up probe's
  deliberately wrong checksum).

Path-style addressing (`<endpoint>/<bucket>/<key>`) throughout: it works on every
S3-compatible store (SeaweedFS, MinIO, Garage, Ceph) and on AWS, and needs no wildcard DNS or
certificate. Payloads are `UNSIGNED-PAYLOAD` in presigned URLs (the signer never sees the
body); `sign_request` signs the body's SHA-256 (given, or computed), which the store checks.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # S3's limit for X-Amz-Expires
_UNRESERVED = "-_.~"  # with ALPHA / DIGIT, which `quote` always keeps


def uri_encode(value: str, *, keep_slash: bool = False) -> str:
    """S3's URI encoding: every byte but A-Z a-z 0-9 - _ . ~ percent-encoded (upper-case hex),
    space as %20; `/` kept only in the path."""
    return quote(value, safe=_UNRESERVED + ("/" if keep_slash else ""), encoding="utf-8")


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def __repr__(self) -> str:  # never print the secret
        return f"Credentials(access_key_id={self.access_key_id!r}, secret_access_key=***)"


@dataclass(frozen=True)
class Signer:
    """Signs requests for one S3 endpoint and region with one set of credentials."""

    credentials: Credentials
    region: str
    service: str = "s3"

    def _signing_key(self, day: str) -> bytes:
        key = _hmac(("AWS4" + self.credentials.secret_access_key).encode("utf-8"), day)
        key = _hmac(key, self.region)
        key = _hmac(key, self.service)
        return _hmac(key, "aws4_request")

    def _scope(self, day: str) -> str:
        return f"{day}/{self.region}/{self.service}/aws4_request"

    def _signature(self, day: str, amz_date: str, canonical_request: str) -> str:
        to_sign = "\n".join((
            ALGORITHM, amz_date, self._scope(day),
            hashlib.sha256(canonical_request.encode("utf-8")).hexdigest(),
        ))
        return hmac.new(self._signing_key(day), to_sign.encode("utf-8"), hashlib.sha256).hexdigest()

    def presign_url(
        self,
        method: str,
        endpoint: str,
        path: str,
        expires_in: int,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        now: datetime | None = None,
    ) -> str:
        """A URL for `path` (unencoded, e.g. `/bucket/key`) on `endpoint` (`scheme://host[:port]`)
        with SigV4 query authentication, valid for `expires_in` seconds.

        `query` parameters are signed into the URL (e.g. `response-content-disposition`);
        `headers` are signed and must be sent exactly so by whoever uses the URL. The Host
        header is always signed: the URL is valid only for the host it names.
        """
        if not 1 <= expires_in <= MAX_PRESIGN_SECONDS:
            raise ValueError(f"expires_in must be 1..{MAX_PRESIGN_SECONDS} seconds")
        base = urlsplit(endpoint)
        now = now or datetime.now(UTC)
        day, amz_date = now.strftime("%Y%m%d"), now.strftime("%Y%m%dT%H%M%SZ")
        signed = _canonical_headers({"host": base.netloc, **(headers or {})})
        params = dict(query or {})
        params.update({
            "X-Amz-Algorithm": ALGORITHM,
            "X-Amz-Credential": f"{self.credentials.access_key_id}/{self._scope(day)}",
            "X-Amz-Date": amz_date,
            "X-Amz-Expires": str(int(expires_in)),
            "X-Amz-SignedHeaders": ";".join(signed),
        })
        if self.credentials.session_token:
            params["X-Amz-Security-Token"] = self.credentials.session_token
        canonical_path = _canonical_path(base.path.rstrip("/") + path)
        canonical_query = _canonical_query(params)
        canonical_request = "\n".join((
            method.upper(), canonical_path, canonical_query,
            "".join(f"{k}:{v}\n" for k, v in signed.items()), ";".join(signed), UNSIGNED_PAYLOAD,
        ))
        signature = self._signature(day, amz_date, canonical_request)
        return (f"{base.scheme}://{base.netloc}{canonical_path}?{canonical_query}"
                f"&X-Amz-Signature={signature}")

    def sign_request(
        self,
        method: str,
        endpoint: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | bytearray | memoryview = b"",
        payload_sha256: str | None = None,
        now: datetime | None = None,
    ) -> tuple[str, dict[str, str]]:
        """(url, headers) to send `body` to `path` on `endpoint` with header authentication:
        `headers` plus Host, X-Amz-Date, X-Amz-Content-Sha256 (and the session token) and
        Authorization. `payload_sha256` (hex) saves hashing a body whose digest is known."""
        base = urlsplit(endpoint)
        now = now or datetime.now(UTC)
        day, amz_date = now.strftime("%Y%m%d"), now.strftime("%Y%m%dT%H%M%SZ")
        payload_hash = payload_sha256 or hashlib.sha256(body).hexdigest()
        out = {**(headers or {}), "host": base.netloc, "x-amz-date": amz_date,
               "x-amz-content-sha256": payload_hash}
        if self.credentials.session_token:
            out["x-amz-security-token"] = self.credentials.session_token
        signed = _canonical_headers(out)
        canonical_path = _canonical_path(base.path.rstrip("/") + path)
        canonical_query = _canonical_query(query or {})
        canonical_request = "\n".join((
            method.upper(), canonical_path, canonical_query,
            "".join(f"{k}:{v}\n" for k, v in signed.items()), ";".join(signed), payload_hash,
        ))
        signature = self._signature(day, amz_date, canonical_request)
        out["authorization"] = (
            f"{ALGORITHM} Credential={self.credentials.access_key_id}/{self._scope(day)}, "
            f"SignedHeaders={';'.join(signed)}, Signature={signature}"
        )
        url = f"{base.scheme}://{base.netloc}{canonical_path}"
        if canonical_query:
            url += "?" + canonical_query
        return url, out


def _canonical_path(path: str) -> str:
    # S3 signs the path encoded once (no double encoding, unlike other AWS services); the
    # caller passes it decoded.
    return uri_encode(path or "/", keep_slash=True)


def _canonical_query(params: Mapping[str, str]) -> str:
    pairs = sorted((uri_encode(k), uri_encode(v)) for k, v in params.items())
    return "&".join(f"{k}={v}" for k, v in pairs)


def _canonical_headers(headers: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers.items():
        key = name.strip().lower()
        if key in out:
            raise ValueError(f"header {name!r} given twice")
        out[key] = " ".join(str(value).split())
    return dict(sorted(out.items()))
