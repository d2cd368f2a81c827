"""Downloads: minting signed download URLs and authorising the unauthenticated byte routes.

Minting (`describe_download`, `describe_downloads`) runs for an authenticated tenant and applies
the 404/410 precedence of `records.check_live`. The byte routes (`/d/<artifact_id>` and, via services.links,
`/l/<link_id>`) authorise with one indexed read and no write (for `/d/`, kept in memory between
commits: Database.fetchone_unchanged): the signature is checked against
the artifact row's tenant (which the URL never shows), then the route charges that tenant's
rate bucket, then `open_grant` applies the artifact's live/deleted/expired state at that instant.

A URL is `<base>/d/<artifact_id>?e=<unix expiry>&k=<key id>&s=<signature>`; the signature binds
method (HEAD verifies as GET), artifact id, tenant id, expiry and the id of the API key that
minted it (security.signing). A URL dies with its key, as an S3 presigned URL does with its
credentials: once the key is revoked the URL answers 403, from the very next request on (services.tenants.key_is_live). URLs minted before keys were bound carry
no `k` and are verified without one until they expire.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from artifacta_box import errors
from artifacta_box.clock import iso
from artifacta_box.config import Plan
from artifacta_box.context import Box
from artifacta_box.services.records import check_live, load_artifact
from artifacta_box.services.tenants import require_live_key
from artifacta_box.services.principal import Principal
from artifacta_box.services.validation import is_artifact_id
from artifacta_box.storage import INLINE, BlobRef, BlobStores

DOWNLOAD_URL_SECONDS = 3600
DOWNLOAD_PREFIX = "/d/"
MAX_BATCH = 20

# Where the bytes are: one more indexed point read (blobs' primary key). No blob row (a damage
# `check` reports) reads as NULL, the local content address, as before locations existed.
# An inline blob's bytes come with the row (one more point read, only for location 'inline'):
# a small download is then one statement and no file at all.
SERVE_BLOB_COLUMNS = "b.location AS blob_location, d.data AS blob_data"
SERVE_BLOB_JOIN = ("LEFT JOIN blobs b ON b.tenant_id = a.tenant_id "
                   "AND b.sha256 = a.content_hash "
                   "LEFT JOIN blob_data d ON b.location = 'inline' "
                   "AND d.tenant_id = a.tenant_id AND d.sha256 = a.content_hash")
# The columns the byte routes need, with the tenant's plan and suspension (for its rate bucket).
_SERVE_COLUMNS = (
    "a.artifact_id, a.tenant_id, a.state, a.filename, a.content_type, a.size_bytes, "
    "a.content_hash, a.expires_at, t.plan AS tenant_plan, t.suspended_at AS tenant_suspended_at, "
    f"{SERVE_BLOB_COLUMNS}"
)
_SIGNED_SQL = (
    f"SELECT {_SERVE_COLUMNS} FROM artifacts a JOIN tenants t ON t.tenant_id = a.tenant_id "
    f"{SERVE_BLOB_JOIN} WHERE a.artifact_id = ?"
)


@dataclass(frozen=True)
class Grant:
    """An authorised request for an artifact's bytes, before its state is checked."""

    tenant_id: int
    plan: Plan
    artifact_id: str
    row: Any  # the artifact columns of _SERVE_COLUMNS (state may be None: purged)
    not_after: float | None = None  # Unix seconds the grant ends (URL expiry, link expiry)


@dataclass(frozen=True)
class Representation:
    """One stored artifact as the byte routes serve it: what `open_grant` hands to
    http.byteserve (where its bytes are, their length and hash, and how to present them).

    `ref` names the blob in its store; `path` is its local file when it has one (served with
    pread/sendfile), `data` its bytes when they came with the row (inline); with neither,
    http.byteserve streams them through `box.blobs.open`."""

    ref: BlobRef
    path: str | None
    size: int
    sha256: str
    content_type: str
    filename: str
    data: bytes | None = None

    @property
    def etag(self) -> str:
        """The strong validator: the content hash, quoted."""
        return f'"{self.sha256}"'


def download_path(artifact_id: str, expires: int, key_id: str, signature: str) -> str:
    return f"{DOWNLOAD_PREFIX}{artifact_id}?e={expires}&k={key_id}&s={signature}"


def _mint(box: Box, principal: Principal, row: Any, url_for: Callable[[str], str]) -> dict[str, Any]:
    expires_in, expires, signature = box.signer.mint(
        "GET", row["artifact_id"], principal.tenant_id, box.clock.time(),
        DOWNLOAD_URL_SECONDS, box.settings.max_signed_url_seconds, extra=principal.key_id,
    )
    return {
        "download_url": url_for(download_path(row["artifact_id"], expires, principal.key_id,
                                              signature)),
        "expires_in": expires_in,
        "filename": row["filename"],
        "content_type": row["content_type"],
        "size_bytes": int(row["size_bytes"]),
    }


async def describe_download(
    box: Box, principal: Principal, artifact_id: str, url_for: Callable[[str], str]
) -> dict[str, Any]:
    """`GET /v1/artifacts/<id>/download-url` (README, "Downloads and share links"):
    `{download_url, expires_in, filename, content_type, size_bytes}`."""
    now_iso = iso(box.clock.now())
    row = await box.db.execute_fn(
        lambda conn: load_artifact(conn, principal.tenant_id, artifact_id, now_iso))
    return _mint(box, principal, row, url_for)


def parse_batch(body: dict[str, Any]) -> list[str]:
    """`{"artifact_ids": [...]}`: 1-MAX_BATCH strings, else 400 (a malformed body fails the batch)."""
    ids = body.get("artifact_ids")
    if not isinstance(ids, list):
        raise errors.InvalidRequest(
            f"artifact_ids is required: a list of 1-{MAX_BATCH} artifact ids, "
            'e.g. {"artifact_ids": ["art_..."]}.'
        )
    if not 1 <= len(ids) <= MAX_BATCH:
        raise errors.InvalidRequest(f"artifact_ids must hold 1-{MAX_BATCH} ids (got {len(ids)}).")
    for i, value in enumerate(ids):
        if not isinstance(value, str):
            raise errors.InvalidRequest(f"artifact_ids[{i}] must be a string artifact id.")
    return ids


async def describe_downloads(
    box: Box, principal: Principal, artifact_ids: list[str], url_for: Callable[[str], str]
) -> list[dict[str, Any]]:
    """One result per id, in request order; a bad id is an error entry, never a failed batch."""
    now_iso = iso(box.clock.now())

    def load_each(conn: sqlite3.Connection) -> list[Any]:
        """Each id's row, or the ApiError that loading it raised."""
        out: list[Any] = []
        for artifact_id in artifact_ids:
            try:
                out.append(load_artifact(conn, principal.tenant_id, artifact_id, now_iso))
            except errors.ApiError as exc:
                out.append(exc)
        return out

    results: list[dict[str, Any]] = []
    for artifact_id, loaded in zip(artifact_ids, await box.db.execute_fn(load_each), strict=True):
        if isinstance(loaded, errors.ApiError):
            results.append({"artifact_id": artifact_id, **loaded.body()})
        else:
            results.append({"artifact_id": artifact_id,
                            **_mint(box, principal, loaded, url_for)})
    return results


# ------------------------------------------------------------------------------ byte routes


async def authorize_signed(
    box: Box, method: str, artifact_id: str, expires: str | None, signature: str | None,
    key_id: str | None = None,
) -> Grant:
    """Check a signed URL: 403 invalid_signature (tampered, foreign, unknown id, its key
    revoked) or url_expired."""
    row = None
    if is_artifact_id(artifact_id):
        row = await box.db.fetchone_unchanged(_SIGNED_SQL, (artifact_id,))
    if row is None:
        # Without the row there is no tenant to verify against; say no more than "not valid",
        # so the route is no oracle for which artifact ids exist.
        raise errors.InvalidSignature(
            "The signed URL is invalid: it was altered, or its artifact no longer exists."
        )
    box.signer.verify(
        method, artifact_id, row["tenant_id"], expires, signature, box.clock.time(),
        extra=key_id or "", max_lifetime=box.settings.max_signed_url_seconds,
    )
    if key_id is not None:
        await require_live_key(box, key_id, row["tenant_id"])
    return Grant(row["tenant_id"], box.settings.plan(row["tenant_plan"]), artifact_id, row,
                 not_after=float(expires or 0))


_OWNED_SQL = _SIGNED_SQL + " AND a.tenant_id = ?"


async def authorize_owner(box: Box, principal: Principal, artifact_id: str) -> Grant:
    """The caller's own artifact for a byte route behind a sign-in instead of a signature (the
    web console's previews): 404 artifact_not_found when unknown or another tenant's."""
    row = None
    if is_artifact_id(artifact_id):
        row = await box.db.fetchone_point(_OWNED_SQL, (artifact_id, principal.tenant_id))
    if row is None:
        raise errors.ArtifactNotFound(f"Artifact {artifact_id} was not found.")
    return Grant(principal.tenant_id, principal.plan, artifact_id, row)


@lru_cache(maxsize=8192)
def _local_path(blobs: BlobStores, ref: BlobRef) -> str | None:
    # pathlib costs ~20 us a call; a hot artifact's path is computed once (the layout stays
    # the store's).
    return blobs.local_path(ref)


def open_grant(box: Box, grant: Grant) -> Representation:
    """The bytes of a granted artifact, if it is live now: 410 deleted/expired, 404 purged,
    401 when its tenant is suspended (a suspended tenant shares nothing)."""
    row = grant.row
    if row["tenant_suspended_at"] is not None:
        raise errors.Unauthorized(
            "The tenant that owns this artifact is suspended; its downloads are disabled."
        )
    check_live(row if row["state"] is not None else None, grant.artifact_id,
               box.clock.iso_now(), allow_pending=False)
    location = row["blob_location"]
    ref = BlobRef(grant.tenant_id, row["content_hash"], int(row["size_bytes"]), location)
    inline = location == INLINE
    return Representation(
        ref=ref,
        path=None if inline else _local_path(box.blobs, ref),
        size=ref.size,
        sha256=row["content_hash"],
        content_type=row["content_type"],
        filename=row["filename"],
        # None when its data row is missing: byteserve then asks the store (BlobMissing: 500)
        data=row["blob_data"] if inline else None,
    )


# Lifetime of the presigned store URL a redirect hands out: long enough to be followed at
# once from anywhere (60 s), never longer than 5 minutes, and never past the grant itself
# unless that is under a minute away. A URL handed out before a delete keeps working for at
# most this long (README, "Scaling out").
REDIRECT_MIN_SECONDS = 60
REDIRECT_MAX_SECONDS = 300


def redirect_target(box: Box, grant: Grant, rep: Representation, method: str,
                    content_disposition: str) -> str | None:
    """With `s3.downloads = "redirect"`: the presigned store URL (GET, or HEAD for a HEAD)
    that serves `rep` with the box's Content-Disposition and Content-Type, for a body of at
    least `s3.redirect_min_bytes` held by a store that can presign; else None (proxied).
    Called after the grant was authorised, its rate token charged and its state checked."""
    s3 = box.settings.s3
    if s3 is None or s3.downloads != "redirect" or rep.path is not None or rep.data is not None:
        return None
    if rep.size < s3.redirect_min_bytes:
        return None
    left = REDIRECT_MAX_SECONDS if grant.not_after is None else grant.not_after - box.clock.time()
    lifetime = int(min(REDIRECT_MAX_SECONDS, max(REDIRECT_MIN_SECONDS, left)))
    return box.blobs.presign_get(rep.ref, lifetime, method="HEAD" if method == "HEAD" else "GET",
                                 content_disposition=content_disposition,
                                 content_type=rep.content_type)
