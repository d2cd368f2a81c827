"""What every HTML page of the box shares (the web console, artifact pages): the security
headers of a page, and how a page's preview gets its bytes and its rendered text.

- A page may run scripts and load styles only from the box itself (no inline script or style,
  no eval, no plugins, nothing from elsewhere) and may not be framed.
- Preview bytes are served `inline` only for the allowlist of `web.previews.inline_type`, and
  keep byteserve's `nosniff` and `sandbox` CSP either way; everything else is `attachment`.
- Text previews read a bounded head of the file in a worker thread (`web.previews`).
"""

from __future__ import annotations

import asyncio
import logging

from sanic import Request

from artifacta_box.http import byteserve
from artifacta_box.services.downloads import Representation
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


async def serve_preview_bytes(request: Request, rep: Representation, use_sendfile: bool,
                              headers: dict[str, str] | None = None):
    """The bytes for a preview: inline when allowlisted, ranges and validators as on /d/."""
    return await byteserve.serve(request, rep, {**(headers or {}), **inline_headers(rep)},
                                 use_sendfile=use_sendfile)


async def text_preview(rep: Representation, kind: previews.PreviewKind,
                       label: str) -> previews.TextPreview | None:
    """The rendered head of a text kind; None (logged) when its blob cannot be read."""
    try:
        return await asyncio.to_thread(previews.render_file_preview, kind.name, rep.path,
                                       rep.size, rep.filename, rep.content_type)
    except OSError:
        log.exception("preview of %s: its blob cannot be read", label)
        return None
