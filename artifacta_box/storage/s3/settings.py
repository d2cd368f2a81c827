"""The `[s3]` settings of the S3 blob backend, validated once.

A plain frozen dataclass: `config.py` declares the settings table and builds this from it (the
`[s3]` section, `ARTIFACTA_BOX_S3_*` variables); `S3Settings.build` is the one place that checks
the values and falls back to the standard `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
`AWS_REGION` variables for what the box's own settings leave unset.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

DOWNLOAD_MODES = ("proxy", "redirect")
DEFAULT_REGION = "us-east-1"
DEFAULT_REDIRECT_MIN_BYTES = 1024 * 1024

# S3 bucket naming rules (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html),
# the subset every S3-compatible store accepts.
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9!_.*'()/-]*$")


class S3SettingsError(ValueError):
    """A `[s3]` value is missing or malformed; the message names the setting."""


@dataclass(frozen=True)
class S3Settings:
    endpoint: str                       # http(s)://host[:port] the box talks to
    bucket: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    region: str = DEFAULT_REGION
    prefix: str = ""                    # "" or "some/path/" (always ends with "/")
    public_endpoint: str | None = None  # what clients use in redirects and presigned URLs
    downloads: str = "proxy"            # "proxy" | "redirect"
    redirect_min_bytes: int = DEFAULT_REDIRECT_MIN_BYTES
    direct_uploads: bool = True         # presigned PUTs straight to the store, if the probe passes

    @property
    def client_endpoint(self) -> str:
        """The endpoint presigned URLs name (signatures bind the host, so it must be the one
        clients connect to)."""
        return self.public_endpoint or self.endpoint

    @classmethod
    def build(cls, values: Mapping[str, Any], environ: Mapping[str, str]) -> S3Settings:
        """Validated settings from `[s3]` values (None or absent = unset), with the AWS
        variables of `environ` as fallbacks. Raises S3SettingsError naming the setting."""

        def get(name: str) -> Any:
            value = values.get(name)
            return None if value is None or value == "" else value

        access_key = get("access_key_id") or environ.get("AWS_ACCESS_KEY_ID") or None
        secret = get("secret_access_key") or environ.get("AWS_SECRET_ACCESS_KEY") or None
        region = get("region") or environ.get("AWS_REGION") or DEFAULT_REGION
        if get("endpoint") is None:
            raise S3SettingsError(
                "s3.endpoint: required with storage.backend = \"s3\" (e.g. http://127.0.0.1:8333)")
        endpoint = _endpoint("s3.endpoint", get("endpoint"))
        public = get("public_endpoint")
        public = None if public is None else _endpoint("s3.public_endpoint", public)
        bucket = str(get("bucket") or "")
        if not _BUCKET_RE.fullmatch(bucket) or ".." in bucket:
            raise S3SettingsError(
                f"s3.bucket: {bucket!r} is not a valid bucket name (3-63 characters: lower-case "
                "letters, digits, '.' and '-', starting and ending with a letter or digit)"
                if bucket else "s3.bucket: required with storage.backend = \"s3\"")
        if not access_key or not secret:
            missing = "s3.access_key_id" if not access_key else "s3.secret_access_key"
            env = "AWS_ACCESS_KEY_ID" if not access_key else "AWS_SECRET_ACCESS_KEY"
            raise S3SettingsError(f"{missing}: required (or set {env} in the environment)")
        prefix = str(get("prefix") or "").strip("/")
        if prefix and (not _PREFIX_RE.fullmatch(prefix) or "//" in prefix):
            raise S3SettingsError(
                f"s3.prefix: {prefix!r} may hold only letters, digits, '/' and !_.*'()- "
                "(the characters S3 keys keep unencoded)")
        downloads = str(get("downloads") or "proxy").strip().lower()
        if downloads not in DOWNLOAD_MODES:
            raise S3SettingsError(
                f"s3.downloads: expected \"proxy\" or \"redirect\", got {values.get('downloads')!r}")
        min_bytes = values.get("redirect_min_bytes")
        min_bytes = DEFAULT_REDIRECT_MIN_BYTES if min_bytes is None else min_bytes
        if isinstance(min_bytes, bool) or not isinstance(min_bytes, int) or min_bytes < 0:
            raise S3SettingsError(
                f"s3.redirect_min_bytes: expected a size in bytes, got {min_bytes!r}")
        direct = values.get("direct_uploads")
        direct = True if direct is None else direct
        if not isinstance(direct, bool):
            raise S3SettingsError(f"s3.direct_uploads: expected true or false, got {direct!r}")
        return cls(
            endpoint=endpoint, bucket=bucket, access_key_id=str(access_key),
            secret_access_key=str(secret), region=str(region),
            prefix=f"{prefix}/" if prefix else "", public_endpoint=public,
            downloads=downloads, redirect_min_bytes=min_bytes, direct_uploads=direct,
        )


def _endpoint(name: str, value: Any) -> str:
    text = str(value).strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise S3SettingsError(f"{name}: expected http://host[:port] or https://host[:port], "
                              f"got {text!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise S3SettingsError(f"{name}: {text!r} must not carry credentials, a query or a fragment")
    try:
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise S3SettingsError(f"{name}: {text!r} has an invalid port") from None
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
