"""Every place Artifacta Box relies on Sanic below its documented API, in one module.

pyproject.toml bounds Sanic to the release line these were read from and tested with (25.x,
25.12). Before moving the bound, read each item below against the new Sanic source and run
the tests named with it, which fail if it silently stopped working. (aiosqlite is no longer used: the database
runs its own threads on plain sqlite3, see db/database.py.)

Private attributes and methods:

1. `BaseHTTPResponse._sanitize_header_value` (sanic/response/types.py), replaced by
   `speed_up_header_sanitiser`: Sanic strips CR, LF and NUL from every header name and value
   of every response with `str.translate` (~0.8 us each, a tenth of the CPU of a 4 KiB signed
   download with our ~15 headers); the replacement answers the common case (clean text) with
   three substring tests and gives the same result. Tests: every response, and
   test_attacks::test_content_types_that_would_inject_headers_are_refused.
2. `HttpProtocol._time` (sanic/server/protocols): when the connection last made progress;
   Sanic's response timeout counts idleness from it. Bytes sent with os.sendfile go to the
   socket past Sanic, so `mark_progress` moves it on, or a long download would be cut
   after `response_timeout`. Tests:
   test_downloads::test_a_slow_but_steady_download_outlasts_the_response_timeout.
3. `Http.response_bytes_left` (sanic/http/http1.py): the body Sanic still expects under the
   response's Content-Length; `account_bytes_sent` subtracts what sendfile sent, so Sanic ends
   the response (and keeps the connection) correctly. Tests: test_downloads::
   test_keep_alive_connection_survives_streamed_and_ranged_responses.
4. `Http.request_bytes` / `Http.request_bytes_left`: request body bytes received so far and
   still to come (under Content-Length); read by `body_bytes_received` (metrics, access log)
   and `body_bytes_declared_left` (draining a refused upload). Tests: test_metrics::
   test_requests_latency_and_bytes_are_counted_by_route_pattern, test_upload::
   test_multipart_just_under_and_over_the_file_limit (the 413 is read, not a reset).
5. The request deadlines (http/deadlines.py decides them, `HttpProtocolWithDeadlines` asks):
   subclasses of `sanic.http.Http` (`init_for_request`, `http1_request_header`) and
   `HttpProtocol` (`check_timeouts`, `HTTP_CLASS`, `_http`, `_task`, `request_timeout`,
   `response_timeout`), reading `Http.stage`, `upgrade_websocket`, `perft0` (when the headers
   were complete), `request_body` (a body still arriving) and setting `Http.exception` before
   cancelling the connection's task, as Sanic's own timeouts do; the first tick runs before
   the first request's fields exist, and Sanic swallows an AttributeError there (which would
   silently end every later tick), so only what the current stage has set is read. Tests:
   test_attacks::test_trickled_requests_are_cut_off_and_leave_nothing, test_shutdown. With
   --workers the protocol class is pickled to each worker, so it is defined at module level
   (test_metrics::
   test_with_several_workers_every_scrape_counts_the_whole_server).
6. `WorkerManager._all_workers_ack()` and `WorkerManager.THRESHOLD` (sanic/worker/manager.py):
   whether every worker reported ready, and how long Sanic waits for that; `stopping.py` waits
   for it before stopping a multi-worker server, because Sanic's manager spins for ever when
   told to stop earlier. Tests: test_binary::
   test_two_workers_serve_and_stop_when_the_whole_group_is_signalled.
7. `sanic.mixins.startup.Manager`: the name Sanic calls to start its shared-state process
   (`multiprocessing.Manager`); `replace_shared_state_manager` swaps in a SyncManager started
   with an initializer, so that process exits with the main process (stopping.py). Tests:
   test_process_tree::test_kill_9_of_the_main_process_leaves_no_orphan_serving.

8. `Http.keep_alive` and `Http.request_body` (sanic/http/http1.py): after a handler answers,
   Sanic reads and discards whatever request body is left so the connection can be reused —
   and waits for it as long as the client keeps it coming or stalls. `abandon_request_body`
   clears both for an upload refused without reading its body, so the answer goes out with
   `Connection: close` and the connection (and the buffers Sanic holds for it) ends at once.
   Tests: test_stalled_bodies::test_in_flight_upload_memory_is_bounded_and_other_tenants_still_upload.

9. `Http.recv_buffer`, `Http.request_bytes_left`, `Http.request_body` and
   `Http.expecting_continue` (sanic/http/http1.py, `Http.read`): whether the next body read
   returns without waiting for the client (bytes already buffered, or none left to read under
   Content-Length); `body_read_is_ready` lets the upload body loop skip arming its idle
   deadline for such reads (a small upload arrives with its headers: its reads never wait).
   Tests: test_stalled_bodies (a stalled body is still cut off), tests/api/test_upload*.py.

10. `Http.http1_response_header` (sanic/http/http1.py), overridden in `_HeadersTimedHttp` for
   a `PreparedResponse` (a complete body, or none, with its headers as plain pairs): the
   status line, headers and body are formatted in one join and written in one
   `transport.write`, as Sanic's own non-streaming branch does, with its rules (Content-Length
   set to the body's size unless a HEAD already carries one, no body for HEAD, Connection from
   `Http.keep_alive`, Content-Type from `content_type` when absent, CR/LF/NUL stripped, names
   ASCII, values UTF-8 with surrogateescape, Alt-Svc as TouchUp leaves it: the override is
   registered for TouchUp like Sanic's). Sanic builds a `Header` multidict, walks it through
   a generator per header and concatenates bytes per header: 20 of a small download's ~250 us.
   Anything else (another response class, a body sent in parts, `100 Continue` pending, a
   body on a status that takes none, Sanic's own access log, a response whose `headers` some
   code read) goes through Sanic's method unchanged. Reads `Http.response`, `head_only`,
   `keep_alive`, `expecting_continue`, `protocol.access_log`, `_send`, and sets `stage`,
   `response_func`, `response_size` as Sanic's does. Tests: tests/unit/test_prepared_response.py
   (byte for byte against Sanic's own method), test_body_framing, test_downloads (HEAD,
   keep-alive).

Public but undocumented, also relied on: `WorkerManager.shutdown_signal` (stopping.py),
`Http.protocol` (reached through `request.stream`), `app.router.get(path, method, host)`
(http/errors.py: the methods a path supports, for 405's Allow header).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from sanic import Request
from sanic.compat import Header
from sanic.headers import format_http1_response
from sanic.helpers import has_message_body
from sanic.http import Http, Stage
from sanic.response import HTTPResponse
from sanic.response.types import BaseHTTPResponse
from sanic.server.protocols.http_protocol import HttpProtocol

# ------------------------------------------------------------------------------ 1. headers

_HEADER_STRIP = str.maketrans("", "", "\r\n\x00")


def _sanitize_header_value(value: str) -> str:
    """Sanic's header sanitiser (drop CR, LF and NUL: no header injection), with a fast path."""
    if "\r" in value or "\n" in value or "\x00" in value:
        return value.translate(_HEADER_STRIP)
    return value


def speed_up_header_sanitiser() -> None:
    """Install the fast path for every response of this process (idempotent)."""
    BaseHTTPResponse._sanitize_header_value = staticmethod(_sanitize_header_value)


# ------------------------------------------------------------------------------ 10. prepared responses

_HEADERS_SLOT = BaseHTTPResponse.headers  # the slot PreparedResponse.headers keeps Sanic's Header in


class PreparedResponse(HTTPResponse):
    """An HTTPResponse with its whole body (or none) whose headers stay plain (name, value) pairs
    until some code reads `headers`: `_HeadersTimedHttp` then writes it without Sanic's
    per-header work (10.). Reading `headers` turns it into an ordinary HTTPResponse (a `Header`
    of the same pairs, in order) that Sanic sends itself, so any use Sanic supports still works.

    The pairs are keyed by lower-case name, as `Header` (a case-insensitive multidict) looks
    them up: setting a name again keeps its place and takes the new spelling and value."""

    __slots__ = ("_pairs",)

    def __init__(self, body: bytes = b"", status: int = 200,
                 headers: dict[str, str] | None = None, content_type: str | None = None) -> None:
        self.asgi = False
        self.body = body
        self.content_type = content_type
        self.stream = None
        self.status = status
        self._cookies = None
        pairs = {k.lower(): (k, v) for k, v in headers.items()} if headers else {}
        if headers and len(pairs) != len(headers):  # one name twice: Header keeps both
            _HEADERS_SLOT.__set__(self, Header(headers))
            self._pairs = None
        else:
            self._pairs = pairs

    @property
    def headers(self) -> Header:  # type: ignore[override]
        pairs = self._pairs
        if pairs is not None:
            _HEADERS_SLOT.__set__(self, Header(list(pairs.values())))
            self._pairs = None
        return _HEADERS_SLOT.__get__(self)

    @headers.setter
    def headers(self, value: Header) -> None:
        self._pairs = None
        _HEADERS_SLOT.__set__(self, value)


def set_header(response: BaseHTTPResponse, name: str, value: str) -> None:
    """`response.headers[name] = value`, without turning a PreparedResponse into a Header."""
    pairs = getattr(response, "_pairs", None)
    if pairs is not None:
        pairs[name.lower()] = (name, value)
    else:
        response.headers[name] = value


def default_header(response: BaseHTTPResponse, name: str, value: str) -> None:
    """`response.headers.setdefault(name, value)`, likewise."""
    pairs = getattr(response, "_pairs", None)
    if pairs is not None:
        pairs.setdefault(name.lower(), (name, value))
    else:
        response.headers.setdefault(name, value)


def header_of(response: BaseHTTPResponse, name: str, default: str | None = None) -> Any:
    """`response.headers.get(name, default)`, likewise."""
    pairs = getattr(response, "_pairs", None)
    if pairs is not None:
        pair = pairs.get(name.lower())
        return pair[1] if pair is not None else default
    return response.headers.get(name, default)


_STATUS_LINES: dict[int, bytes] = {}


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        line = _STATUS_LINES[status] = format_http1_response(status, ())[:-2]
    return line


def _header_block(pairs: dict[str, tuple[str, Any]]) -> bytes | None:
    """`name: value\r\n` for every pair, as Sanic encodes them (CR, LF and NUL stripped, the
    name ASCII, the value UTF-8 with surrogateescape); None for a name that is not ASCII (Sanic
    raises, so it answers)."""
    names = "".join([k for k, _ in pairs.values()])
    if not names.isascii():
        return None
    text = "".join([f"{k}: {v}\r\n" for k, v in pairs.values()])
    n = len(pairs)
    if text.count("\r") != n or text.count("\n") != n or "\x00" in text:
        text = "".join([f"{_sanitize_header_value(k)}: {_sanitize_header_value(f'{v}')}\r\n"
                        for k, v in pairs.values()])
    return text.encode(errors="surrogateescape")


# ------------------------------------------------------------------------------ 2, 3. sendfile


def can_account_bytes_sent(request: Request) -> bool:
    """Whether bytes written to the socket past Sanic can be accounted for (HTTP/1.1)."""
    return request.stream is not None and hasattr(request.stream, "response_bytes_left")


def account_bytes_sent(request: Request, n: int) -> None:
    """Tell Sanic's framing that `n` body bytes went to the socket without it."""
    request.stream.response_bytes_left -= n


def mark_progress(request: Request) -> None:
    """The connection just made progress: Sanic's response timeout restarts from now."""
    protocol = getattr(request.stream, "protocol", None)
    if protocol is not None:
        protocol._time = time.monotonic()


# ------------------------------------------------------------------------------ 4. request body


def body_bytes_received(request: Request) -> int | None:
    """Request body bytes received so far (streamed uploads too); None if Sanic counted none."""
    stream = request.stream
    total = getattr(stream, "request_bytes", None) if stream is not None else None
    if not total:
        return None
    left = getattr(stream, "request_bytes_left", 0) or 0
    return max(int(total) - int(left), 0)


def body_read_is_ready(request: Request) -> bool:
    """Whether the next `request.stream.read()` returns without waiting for the client (9.):
    a Content-Length body whose next bytes are already buffered, or that has none left. A
    chunked body or a pending `100 Continue` counts as not ready (its read may wait)."""
    http = request.stream
    return (isinstance(http, Http) and not http.expecting_continue
            and http.request_body != "chunked"
            and (bool(http.recv_buffer) or not http.request_bytes_left))


def body_bytes_declared_left(request: Request) -> int | None:
    """Body bytes still to come under Content-Length (None when unknown, e.g. chunked)."""
    left = getattr(request.stream, "request_bytes_left", None)
    return left if isinstance(left, int) else None


def abandon_request_body(request: Request) -> None:
    """Do not read the rest of this request's body: answer, then close the connection (8.)."""
    http = request.stream
    if isinstance(http, Http):
        http.keep_alive = False
        http.request_body = None


# ------------------------------------------------------------------------------ 5. deadlines


@dataclass(frozen=True)
class RequestProgress:
    """Where a connection's current request is, in plain terms (what a deadline policy needs)."""

    reading_headers: bool          # the request line and headers are arriving
    headers_for: float | None      # seconds since their first byte arrived
    in_handler: bool               # a handler runs (not a websocket)
    handler_for: float | None      # seconds since the headers were complete
    body_arriving: bool            # the handler is still receiving the request body


DeadlinePolicy = Callable[[RequestProgress, float, float], BaseException | None]


class _HeadersTimedHttp(Http):
    """Http/1.1 that remembers when the current request's headers began to arrive."""

    __slots__ = ("headers_started",)
    # TouchUp rewrites this override as it does Sanic's own (the Alt-Svc line below).
    __touchup__ = ("http1_response_header",)

    def init_for_request(self) -> None:
        super().init_for_request()
        self.headers_started: float | None = None

    async def http1_request_header(self) -> None:
        # Called once the first bytes of a request are in (after the keep-alive wait).
        self.headers_started = time.monotonic()
        await super().http1_request_header()

    async def http1_response_header(self, data: bytes, end_stream: bool) -> None:
        """A PreparedResponse in one write, with Sanic's framing rules (10.); anything else
        through Sanic's own method. (No zero-argument super(): TouchUp recompiles this.)"""
        res = self.response
        pairs = getattr(res, "_pairs", None)
        status = res.status if pairs is not None else None
        if (status is None or data or not end_stream or self.expecting_continue
                or self.protocol.access_log or type(status) is not int or status < 200):
            return await Http.http1_response_header(self, data, end_stream)
        body = res.body or b""
        if has_message_body(status):
            if not (self.head_only and "content-length" in pairs):
                pairs["content-length"] = ("content-length", len(body))
            self.response_func = self.head_response_ignored if self.head_only else None
            if self.head_only:
                body = b""
        elif body or "content-length" in pairs or "transfer-encoding" in pairs:
            return await Http.http1_response_header(self, data, end_stream)  # Sanic warns
        else:
            self.response_func = self.head_response_ignored if self.head_only else None
        self.response_size = len(res.body or b"")
        pairs["connection"] = ("connection", "keep-alive" if self.keep_alive else "close")
        # Sanic's own line, which TouchUp removes (HTTP/1 only) or fills in (HTTP/3 too)
        trailer: dict[str, str] = {}
        trailer["alt-svc"] = ""
        for name, value in trailer.items():
            pairs[name] = (name, value)
        if has_message_body(status):
            pairs.setdefault("content-type", ("content-type", res.content_type))
        block = _header_block(pairs)
        if block is None:
            return await Http.http1_response_header(self, data, end_stream)
        await self._send(_status_line(status) + block + b"\r\n" + body)
        self.stage = Stage.IDLE

    # TouchUp in test mode keeps each method's original as `_<name>` and takes it from there
    # when present: declared here, so Http's own (inherited) is never taken for this override.
    _http1_response_header = http1_response_header


def _progress(http: Any) -> RequestProgress:
    """Read only what the current stage has set: Sanic calls the timeout tick before the first
    request's fields exist (and swallows an AttributeError there, which would end every tick)."""
    stage = getattr(http, "stage", None)
    reading = stage is Stage.REQUEST
    in_handler = stage is Stage.HANDLER and not http.upgrade_websocket
    started = getattr(http, "headers_started", None) if reading else None
    handler_started = http.perft0 if in_handler else None
    return RequestProgress(
        reading_headers=reading,
        headers_for=time.monotonic() - started if started is not None else None,
        in_handler=in_handler,
        handler_for=time.perf_counter() - handler_started if handler_started else None,
        body_arriving=bool(http.request_body) if in_handler else False,
    )


class HttpProtocolWithDeadlines(HttpProtocol):
    """Sanic's HTTP protocol whose timeout tick first asks the subclass's `overdue(progress,
    request_timeout, response_timeout)`: an exception it returns ends the request as Sanic's
    own timeouts do (the handler is cancelled and the exception answered); None leaves the
    request to Sanic's idle timeouts. Subclasses live at module level (workers unpickle them)."""

    HTTP_CLASS = _HeadersTimedHttp
    overdue: ClassVar[DeadlinePolicy]

    def check_timeouts(self) -> None:
        http = getattr(self, "_http", None)
        if self._task and http is not None:
            exception = type(self).overdue(_progress(http), self.request_timeout,
                                           self.response_timeout)
            if exception is not None:
                http.exception = exception
                if sys.version_info < (3, 14):
                    self._task.cancel("request deadline passed")
                else:
                    self._task.cancel()
                return
        super().check_timeouts()


# ------------------------------------------------------------------------------ 6. workers


def all_workers_ready(manager: Any) -> bool:
    """Whether every worker process has reported that it serves."""
    return manager._all_workers_ack()


def worker_start_timeout(manager: Any) -> float:
    """How long Sanic's manager waits for the workers to report ready, in seconds."""
    return manager.THRESHOLD / 10


def stop_workers(manager: Any, signum: int) -> None:
    """Ask every worker to stop, as the manager's own signal handler does."""
    manager.shutdown_signal(signum, None)


def replace_shared_state_manager(factory: Callable[[], Any]) -> None:
    """Make Sanic start its shared-state process (the multiprocessing SyncManager behind
    `app.shared_ctx`) with `factory` instead of `multiprocessing.Manager()`, which takes no
    initializer (stopping.tie_helpers_to_main gives it one so it exits with the main
    process). `sanic.mixins.startup.Manager` is the name Sanic 25.12 calls. Tests:
    test_process_tree (the helper process lingers after kill -9 if this stops working)."""
    import sanic.mixins.startup as sanic_startup

    sanic_startup.Manager = factory
