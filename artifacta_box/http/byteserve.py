"""Serving stored bytes over HTTP, written once for signed download URLs and share links.

What a response carries (README, "Downloads and share links"): the artifact's `Content-Type`, `Content-Length`,
`Accept-Ranges: bytes`, a strong `ETag` (`"<sha256>"`), `Content-Disposition: attachment` with
an ASCII fallback and an RFC 5987 `filename*` that is safe for any stored filename, and headers
that stop a browser from ever rendering the bytes as part of an origin (`nosniff`, a sandbox
CSP), plus `Cache-Control: private`.

Conditional and partial requests (RFC 9110 §13, §14):
- `If-None-Match` (weak comparison, `*` matches) → 304, evaluated before any Range.
- `Range` is honoured for GET only (HEAD ignores it, as the RFC says). One range → 206 with
  `Content-Range`; the end is clamped to the last byte; `bytes=-N` is the last N bytes, `N-` runs
  to the end. A range starting at or past the end, or `bytes=-0`, → 416 with
  `Content-Range: bytes */<size>` and the error envelope. A syntactically invalid header or a
  unit other than `bytes` is ignored (200 with the whole body), as the RFC allows.
- Multiple ranges (`bytes=0-9,20-29`) → the whole representation, 200. This is the RFC's
  "a server MAY ignore the Range header" and what S3 does: always correct, no multipart
  encoding, and no way to make the box send overlapping ranges many times over.
- `If-Range` with an exact strong ETag match → the Range is honoured; anything else (a date, a
  weak or different tag) → the whole representation, 200.
- A zero-length artifact ignores Range (200 with an empty body): no byte range of it exists.

How bytes move: bodies up to SMALL_BODY are read with one `pread` (or come with the row,
inline) and sent as one PreparedResponse: head and body in one write (http.sanic_seams 10.).
Larger bodies stream: with `os.sendfile` straight from the page cache to the connection's
socket (zero-copy; measured at about half the CPU of read+write, see bench notes in the
report), in slices run in a worker thread so a cold disk never stalls the event loop, waiting
for the socket to become writable on the event loop in between so a slow client never holds a
thread. Where sendfile cannot be used (disabled by `server.sendfile = false`, TLS or a transport
without a socket, an unexpected HTTP implementation, or a sendfile error before the first byte)
the body is read in 1 MiB slices in a worker thread and written through Sanic with its
back-pressure. Either way memory per download stays bounded by one slice, whatever the size.
Sanic's own `file_stream` range handling is not used.
"""

from __future__ import annotations

import asyncio
import os
import re
import select
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from sanic import Request
from sanic.response import HTTPResponse

from artifacta_box import errors
from artifacta_box.http import sanic_seams
from artifacta_box.services.downloads import Representation
from artifacta_box.storage import BlobMissing, BlobStores

SMALL_BODY = 64 * 1024           # read in one go and sent as one response
READ_CHUNK = 1024 * 1024         # fallback path: bytes read per worker-thread call
SENDFILE_SLICE = 8 * 1024 * 1024  # sendfile path: most bytes one worker-thread call sends
SENDFILE_POLL_MS = 50  # a worker waits this long for a full socket to drain before handing back
MAX_RANGE_HEADER = 1024          # longer Range headers are ignored (full response)

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "private",
}

# RFC 8187 attr-char minus ALPHA/DIGIT (which `quote` always keeps).
_ATTR_SAFE = "!#$&+-.^_`|~"
_BYTES_UNIT_RE = re.compile(r"^\s*bytes\s*=\s*(.*)$", re.IGNORECASE | re.DOTALL)
_INT_RANGE_RE = re.compile(r"^([0-9]+)-([0-9]*)$")
_SUFFIX_RANGE_RE = re.compile(r"^-([0-9]+)$")


# ------------------------------------------------------------------------------ the bytes


@dataclass(frozen=True)
class ByteRange:
    """Inclusive byte positions, already clamped to the representation."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class _Unsatisfiable:
    def __repr__(self) -> str:
        return "UNSATISFIABLE"


UNSATISFIABLE = _Unsatisfiable()


# ------------------------------------------------------------------------------ parsing


def parse_range(header: str | None, size: int) -> ByteRange | _Unsatisfiable | None:
    """The single byte range a `Range` header asks for.

    None means "ignore the header and send everything" (absent, malformed, another unit,
    several ranges, or an empty representation); UNSATISFIABLE means 416.
    """
    if not header or len(header) > MAX_RANGE_HEADER or size <= 0:
        return None
    m = _BYTES_UNIT_RE.fullmatch(header)
    if not m:
        return None
    specs = [part.strip() for part in m.group(1).split(",")]
    specs = [s for s in specs if s]  # RFC list syntax tolerates empty elements
    if len(specs) != 1:
        return None
    spec = specs[0]
    if (im := _INT_RANGE_RE.fullmatch(spec)) is not None:
        first = int(im.group(1))
        last = int(im.group(2)) if im.group(2) else None
        if last is not None and last < first:
            return None  # invalid range-spec: ignored like any malformed header
        if first >= size:
            return UNSATISFIABLE
        end = size - 1 if last is None else min(last, size - 1)
        return ByteRange(first, end)
    if (sm := _SUFFIX_RANGE_RE.fullmatch(spec)) is not None:
        suffix = int(sm.group(1))
        if suffix == 0:
            return UNSATISFIABLE
        return ByteRange(max(0, size - suffix), size - 1)
    return None


def _entity_tags(header: str) -> list[str]:
    """Opaque tags of an If-None-Match / If-Range list, weakness markers removed."""
    tags = []
    for part in header.split(","):
        tag = part.strip()
        if tag.startswith(("W/", "w/")):
            tag = tag[2:].lstrip()
        if tag:
            tags.append(tag)
    return tags


def if_none_match_hits(header: str | None, etag: str) -> bool:
    """RFC 9110 §13.1.2: true when the client's cached copy is current (weak comparison)."""
    if header is None:
        return False
    if header.strip() == "*":
        return True
    return etag in _entity_tags(header)


def if_range_allows(header: str | None, etag: str) -> bool:
    """RFC 9110 §13.1.5: the Range applies only if If-Range is absent or the same strong ETag."""
    if header is None:
        return True
    return header.strip() == etag  # strong comparison: a W/ tag or a date never matches


# ------------------------------------------------------------------------------ headers


def ascii_fallback(filename: str) -> str:
    """A plain-ASCII stand-in for `filename` that is safe inside a quoted-string.

    Accents are folded (é → e); anything else outside printable ASCII, and the characters a
    user agent might treat specially (quote, backslash, percent, path separators), become `_`.
    """
    folded = unicodedata.normalize("NFKD", filename)
    out = []
    for ch in folded:
        if unicodedata.combining(ch):
            continue
        code = ord(ch)
        if 0x20 <= code < 0x7F and ch not in '"\\%/':
            out.append(ch)
        else:
            out.append("_")
    text = "".join(out).strip().strip(".")
    return text or "download"


def safe_filename(filename: str) -> str:
    """The filename as offered to the client: never a path, never control characters."""
    cleaned = "".join(
        "_" if ch in "/\\" or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") else ch
        for ch in filename
    ).strip()
    if cleaned.strip(".") == "":
        return "download"
    return cleaned


@lru_cache(maxsize=4096)
def content_disposition(filename: str) -> str:
    """`attachment; filename="<ascii>"; filename*=UTF-8''<pct-encoded>` (RFC 6266 / 8187).

    Only ASCII letters, digits and attr-chars appear unencoded in `filename*`, so the header is
    plain ASCII whatever the stored name holds (quotes, CR/LF, `../`, emoji...).
    """
    name = safe_filename(filename)
    encoded = quote(name, safe=_ATTR_SAFE, encoding="utf-8", errors="replace")
    return f"attachment; filename=\"{ascii_fallback(name)}\"; filename*=UTF-8''{encoded}"


def representation_headers(rep: Representation) -> dict[str, str]:
    """Headers every 200/206/304/HEAD answer for `rep` carries."""
    return {
        "Content-Type": rep.content_type,
        "Accept-Ranges": "bytes",
        "ETag": rep.etag,
        "Content-Disposition": content_disposition(rep.filename),
        **SECURITY_HEADERS,
    }


# ------------------------------------------------------------------------------ decision


@dataclass(frozen=True)
class Decision:
    """What to send: status, headers and which bytes (`length` 0 = no body)."""

    status: int
    headers: dict[str, str]
    start: int = 0
    length: int = 0
    body: bool = True


def decide(method: str, request_headers: Mapping[str, str], rep: Representation) -> Decision:
    """Evaluate conditionals and Range for a GET or HEAD of `rep` (pure; no I/O).

    Raises RangeNotSatisfiable (416) with `Content-Range: bytes */<size>`.
    """
    headers = representation_headers(rep)
    is_get = method.upper() == "GET"
    if if_none_match_hits(request_headers.get("if-none-match"), rep.etag):
        headers.pop("Content-Type")
        return Decision(304, headers, body=False)
    wanted = None
    if is_get and if_range_allows(request_headers.get("if-range"), rep.etag):
        wanted = parse_range(request_headers.get("range"), rep.size)
    if wanted is UNSATISFIABLE:
        raise errors.RangeNotSatisfiable(
            f"The requested range is outside the {rep.size}-byte artifact; valid byte positions "
            f"are 0-{max(rep.size - 1, 0)}.",
            headers={"Content-Range": f"bytes */{rep.size}", **SECURITY_HEADERS},
        )
    if isinstance(wanted, ByteRange):
        headers["Content-Range"] = f"bytes {wanted.start}-{wanted.end}/{rep.size}"
        headers["Content-Length"] = str(wanted.length)
        return Decision(206, headers, wanted.start, wanted.length, body=is_get)
    headers["Content-Length"] = str(rep.size)
    return Decision(200, headers, 0, rep.size, body=is_get)


# ------------------------------------------------------------------------------ CORS


def cors_headers(origin: str | None, allowed: tuple[str, ...]) -> dict[str, str]:
    """`Access-Control-Allow-Origin` (+ Vary) for an allowed Origin; empty otherwise."""
    if not allowed:
        return {}
    if origin and (origin in allowed or "*" in allowed):
        value = "*" if "*" in allowed else origin
        return {
            "Access-Control-Allow-Origin": value,
            "Access-Control-Expose-Headers": (
                "Content-Length, Content-Range, Content-Disposition, ETag, Accept-Ranges, "
                "X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, X-Request-Id"
            ),
            "Vary": "Origin",
        }
    return {"Vary": "Origin"}


def preflight(request: Request, allowed: tuple[str, ...]) -> HTTPResponse:
    """Answer a CORS preflight for a byte route (GET/HEAD with Range and validators)."""
    headers = {"Allow": "GET, HEAD, OPTIONS"}
    origin = request.headers.get("origin")
    cors = cors_headers(origin, allowed)
    if "Access-Control-Allow-Origin" in cors:
        headers.update(cors)
        headers["Access-Control-Allow-Methods"] = "GET, HEAD, OPTIONS"
        headers["Access-Control-Allow-Headers"] = "Range, If-None-Match, If-Range"
        headers["Access-Control-Max-Age"] = "600"
    elif cors:
        headers.update(cors)
    return HTTPResponse(status=204, headers=headers)


# ------------------------------------------------------------------------------ sending


async def serve(
    request: Request,
    rep: Representation,
    blobs: BlobStores,
    extra_headers: dict[str, str] | None = None,
    use_sendfile: bool = True,
) -> HTTPResponse | None:
    """Answer a GET or HEAD for `rep`. Returns a response, or None once a stream has been sent.

    A local file (`rep.path`) is served with pread/sendfile; bytes that came with the row
    (`rep.data`) from memory; any other store's through `blobs.open`, chunk by chunk."""
    decision = decide(request.method, request.headers, rep)
    headers = {**decision.headers, **(extra_headers or {})}
    if rep.path is None:
        return await _serve_stored(request, rep, blobs, decision, headers)
    if not decision.body:
        if decision.status == 200:  # HEAD: promise only bytes that a GET could deliver
            os.close(_open_blob(rep))
        return sanic_seams.PreparedResponse(b"", decision.status, headers)
    fd = _open_blob(rep)
    owner = _FdOwner(fd)
    try:
        if decision.length <= SMALL_BODY:
            # One pread from the page cache costs less than a thread hop; like nginx, small
            # reads happen on the event loop.
            data = os.pread(fd, decision.length, decision.start)
            if len(data) != decision.length:
                raise _corrupt(rep)
            return sanic_seams.PreparedResponse(data, decision.status, headers)
        await _stream(request, owner, rep, decision, headers, use_sendfile)
        return None
    finally:
        owner.release()


async def _serve_stored(request: Request, rep: Representation, blobs: BlobStores,
                        decision: Decision, headers: dict[str, str]) -> HTTPResponse | None:
    """`rep` without a local file: its bytes from memory (`rep.data`) or streamed from its
    store: spliced in the kernel when the reader and the connection allow it (an S3 object
    over plain HTTP to a plain-TCP client, `_splice_stored`), else one chunk (<= 1 MiB) at a
    time with Sanic's back-pressure: memory stays bounded by a chunk whatever the size. The
    reader is closed in every case, also when the client leaves mid-way (a half-read remote
    response is dropped, never reused)."""
    if rep.data is not None:
        if len(rep.data) != rep.size:
            raise _corrupt(rep)
        body = rep.data[decision.start:decision.start + decision.length] if decision.body else b""
        return sanic_seams.PreparedResponse(body, decision.status, headers)
    if not decision.body:
        if decision.status == 200:  # HEAD: promise only bytes that a GET could deliver
            st = await blobs.stat(rep.ref)
            if st is None or st.size != rep.size:
                raise _corrupt(rep)
        return sanic_seams.PreparedResponse(b"", decision.status, headers)
    try:
        reader = await blobs.open(rep.ref, decision.start, decision.length)
    except BlobMissing:
        raise _corrupt(rep) from None
    try:
        if decision.length <= SMALL_BODY:
            data = b"".join([bytes(c) async for c in reader])
            if len(data) != decision.length:
                raise _corrupt(rep)
            return sanic_seams.PreparedResponse(data, decision.status, headers)
        response = await request.respond(status=decision.status, headers=headers)
        await response.send(b"")  # the status line and headers
        sent = 0
        if _splice_possible(request, reader):
            sent = await _splice_stored(request, reader)
        if sent == decision.length:
            await response.send(b"", end_stream=True)
            return None
        chunks = reader.__aiter__()
        # One chunk read ahead while the previous one is sent: the store and the client
        # connection work at once (memory: two chunks).
        ahead = asyncio.ensure_future(chunks.__anext__())
        try:
            while True:
                try:
                    chunk = await ahead
                except StopAsyncIteration:
                    break
                ahead = asyncio.ensure_future(chunks.__anext__())
                sent += len(chunk)
                if sent > decision.length:
                    raise _corrupt(rep)
                await response.send(chunk)
        finally:
            # A read still running (the client left mid-way) finishes before the reader is
            # closed under it; its result, or error, is of no use any more.
            await asyncio.wait([ahead])
            if not ahead.cancelled():
                ahead.exception()
        if sent != decision.length:
            raise _corrupt(rep)  # the store held fewer bytes: abort the connection
        await response.send(b"", end_stream=True)
        return None
    except BlobMissing:
        raise _corrupt(rep) from None
    finally:
        await asyncio.shield(reader.aclose())


def _splice_possible(request: Request, reader: object) -> bool:
    """Whether an S3 body can go store socket -> pipe -> client socket in the kernel: the
    reader can splice (Linux, plain HTTP to the store) and the client connection is one whose
    bytes may be written past Sanic (plain TCP, nothing queued, framing accountable)."""
    can_splice = getattr(reader, "can_splice", None)
    return can_splice is not None and can_splice() and _sendfile_possible(request)


async def _splice_stored(request: Request, reader: Any) -> int:
    """Send `reader`'s body with `reader.splice_to` (storage/s3/client.py) straight onto the
    connection's socket; returns the bytes sent (all of them unless the kernel refused, then
    the caller reads the rest). Sanic's framing and its idle response timeout are told of
    every step, as for sendfile; a client that stops reading is waited for on the event loop,
    so Sanic's response timeout still ends it."""
    loop = asyncio.get_running_loop()

    def sent(n: int) -> None:
        sanic_seams.account_bytes_sent(request, n)
        sanic_seams.mark_progress(request)

    sock = request.transport.get_extra_info("socket")
    return await reader.splice_to(sock.fileno(), lambda fd: _writable(loop, fd), sent)


def _open_blob(rep: Representation) -> int:
    try:
        fd = os.open(rep.path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise _corrupt(rep) from None
    try:
        if os.fstat(fd).st_size != rep.size:
            raise _corrupt(rep)
    except BaseException:
        os.close(fd)
        raise
    return fd


class BlobDamaged(RuntimeError):
    """The blob file is missing or not the size its row records. Not an ApiError on purpose:
    the error handler logs it with a traceback and answers 500 internal_error with the request
    id, so the administrator finds it (and `artifacta-box check` repairs or reports it)."""


def _corrupt(rep: Representation) -> BlobDamaged:
    return BlobDamaged(f"blob {rep.path or rep.ref.location} of tenant {rep.ref.tenant_id} is "
                       f"missing or not {rep.size} bytes long")


class _FdOwner:
    """Closes file descriptors only when no worker thread still uses them.

    A cancelled download (client gone) abandons the await, not the thread: the thread's slice
    finishes on its own and the descriptors are closed when it does, so a descriptor number is
    never reused under a running sendfile/pread.
    """

    def __init__(self, *fds: int) -> None:
        self.fds = list(fds)
        self.inflight: asyncio.Future[Any] | None = None

    def adopt(self, fd: int) -> None:
        self.fds.append(fd)

    async def run(self, fn, *args) -> Any:
        loop = asyncio.get_running_loop()
        self.inflight = loop.run_in_executor(None, fn, *args)
        result = await asyncio.shield(self.inflight)
        self.inflight = None
        return result

    def _close_all(self, _future: object = None) -> None:
        fds, self.fds = self.fds, []
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass

    def _after_abandoned(self, future: asyncio.Future[Any]) -> None:
        if not future.cancelled():
            future.exception()  # expected (the client left mid-slice); mark it as seen
        self._close_all()

    def release(self) -> None:
        if self.inflight is not None and not self.inflight.done():
            self.inflight.add_done_callback(self._after_abandoned)
        else:
            self._close_all()


async def _stream(
    request: Request,
    owner: _FdOwner,
    rep: Representation,
    decision: Decision,
    headers: dict[str, str],
    use_sendfile: bool,
) -> None:
    fd = owner.fds[0]
    try:
        os.posix_fadvise(fd, decision.start, decision.length, os.POSIX_FADV_SEQUENTIAL)
    except (AttributeError, OSError):
        pass
    response = await request.respond(status=decision.status, headers=headers)
    await response.send(b"")  # the status line and headers
    sent = 0
    if use_sendfile and _sendfile_possible(request):
        try:
            sent = await _send_with_sendfile(request, owner, decision.start, decision.length)
        except EOFError:
            raise _corrupt(rep) from None  # the file shrank under us: abort the connection
        sanic_seams.account_bytes_sent(request, sent)  # tell Sanic's framing what went past it
    offset, remaining = decision.start + sent, decision.length - sent
    while remaining > 0:
        data = await owner.run(os.pread, fd, min(READ_CHUNK, remaining), offset)
        if not data:
            raise _corrupt(rep)  # the file shrank under us: abort the connection
        await response.send(data)
        offset += len(data)
        remaining -= len(data)
    await response.send(b"", end_stream=True)


def _sendfile_possible(request: Request) -> bool:
    """Zero-copy is only correct on a plain TCP socket whose Sanic framing we can account for."""
    if not hasattr(os, "sendfile"):
        return False
    transport = request.transport
    if transport is None or not sanic_seams.can_account_bytes_sent(request):
        return False
    if transport.get_extra_info("sslcontext") is not None or transport.get_extra_info("ssl_object"):
        return False
    sock = transport.get_extra_info("socket")
    if sock is None or sock.fileno() < 0:
        return False
    try:
        # Headers (or an earlier response on this connection) still queued in the transport
        # would be overtaken by bytes written straight to the socket.
        return transport.get_write_buffer_size() == 0
    except (AttributeError, NotImplementedError):
        return False


def _sendfile_slice(out_fd: int, in_fd: int, offset: int, count: int) -> tuple[int, bool]:
    """Send up to `count` bytes. Runs in a worker thread.

    When the socket buffer is full the worker waits (poll, SENDFILE_POLL_MS) for a reader that
    keeps up, like a blocking sendfile would, instead of a round trip through the event loop per
    buffer refill; a slower reader gets the slice back early and the loop waits for it, so a
    slow client never holds a worker thread.
    Returns (bytes sent, whether the socket would block).
    """
    sent = 0
    poller: select.poll | None = None
    while sent < count:
        try:
            n = os.sendfile(out_fd, in_fd, offset + sent, count - sent)
        except BlockingIOError:
            if poller is None:
                poller = select.poll()
                poller.register(out_fd, select.POLLOUT)
            if not poller.poll(SENDFILE_POLL_MS):
                return sent, True
            continue
        except InterruptedError:
            continue
        if n == 0:
            raise EOFError("the blob ended early")
        sent += n
    return sent, False


async def _send_with_sendfile(request: Request, owner: _FdOwner, start: int, length: int) -> int:
    """Zero-copy as many bytes as possible; returns how many were sent.

    Returns early (0 bytes) when sendfile refuses the descriptors before the first byte, so the
    caller falls back to reads. After the first byte any error aborts the connection.
    """
    loop = asyncio.get_running_loop()
    transport = request.transport
    # A private duplicate of the socket descriptor: if the client vanishes and the event loop
    # closes its own descriptor, ours still names the same socket (never a reused number).
    out_fd = os.dup(transport.get_extra_info("socket").fileno())
    owner.adopt(out_fd)
    in_fd = owner.fds[0]
    sent = 0
    while sent < length:
        try:
            n, blocked = await owner.run(
                _sendfile_slice, out_fd, in_fd, start + sent, min(SENDFILE_SLICE, length - sent)
            )
        except OSError as exc:
            if sent == 0 and not isinstance(exc, BrokenPipeError | ConnectionError):
                return 0  # e.g. EINVAL/ENOSYS on this filesystem: use reads instead
            raise
        sent += n
        sanic_seams.mark_progress(request)  # keeps Sanic's response timeout idle-based
        if blocked:
            await _writable(loop, out_fd)
    return sent


async def _writable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    waiter = loop.create_future()

    def ready() -> None:
        if not waiter.done():
            waiter.set_result(None)

    loop.add_writer(fd, ready)
    try:
        await waiter
    finally:
        loop.remove_writer(fd)
