"""What every HTML page of the box shares (the web console, artifact pages): the security
headers of a page, and how a page's preview gets its bytes and its rendered text.

- A page may run scripts and load styles only from the box itself (no inline script or style,
  no eval, no plugins, nothing from elsewhere) and may not be framed.
- Preview bytes are served `inline` only for the allowlist of `web.previews.inline_type`, and
  keep byteserve's `nosniff` and `sandbox` CSP either way; everything else is `attachment`.
- Text previews read a bounded head of the blob (a local file in a worker thread, inline bytes
  as they are, another store's through `blobs.open`) and render it in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging

from sanic import Request

from artifacta_box.http import byteserve
from artifacta_box.services.downloads import Representation
from artifacta_box.storage import BlobStores, StorageError
from artifacta_box.web import previews

log = logging.getLogger("artifacta_box.http")

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "media-src 'self'; frame-src 'self'; connect-src 'self'; font-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def inline_headers(rep: Representation) -> dict[str, str]:
    """Headers that let a preview show `rep` inline, when its type is on the allowlist
    (else none: byteserve's `attachment` stands)."""
    inline = previews.inline_type(rep.content_type, rep.filename)
    if inline is None:
        return {}
    disposition = byteserve.content_disposition(rep.filename)
    return {"Content-Type": inline, "Content-Disposition": "inline" + disposition[len("attachment"):]}


async def serve_preview_bytes(request: Request, rep: Representation, blobs: BlobStores,
                              use_sendfile: bool, headers: dict[str, str] | None = None):
    """The bytes for a preview: inline when allowlisted, ranges and validators as on /d/."""
    return await byteserve.serve(request, rep, blobs, {**(headers or {}), **inline_headers(rep)},
                                 use_sendfile=use_sendfile)


async def _head(rep: Representation, blobs: BlobStores, limit: int) -> bytes:
    """The first `limit` bytes of a blob that has no local file."""
    if rep.data is not None:
        return bytes(rep.data[:limit])
    reader = await blobs.open(rep.ref, 0, limit)
    chunks: list[bytes] = []
    try:
        async for chunk in reader:
            chunks.append(bytes(chunk))
    finally:
        await reader.aclose()
    return b"".join(chunks)[:limit]


async def text_preview(rep: Representation, blobs: BlobStores, kind: previews.PreviewKind,
                       label: str) -> previews.TextPreview | None:
    """The rendered head of a text kind; None (logged) when its blob cannot be read."""
    try:
        if rep.path is not None:
            return await asyncio.to_thread(previews.render_file_preview, kind.name, rep.path,
                                           rep.size, rep.filename, rep.content_type)
        head = await _head(rep, blobs, min(rep.size, previews.TEXT_PREVIEW_BYTES))
        return await asyncio.to_thread(previews.render_preview, kind.name, head, rep.size,
                                       rep.filename, rep.content_type)
    except (OSError, StorageError):
        log.exception("preview of %s: its blob cannot be read", label)
        return None
