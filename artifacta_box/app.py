"""create_app(settings) -> Sanic: listeners, middleware, blueprints and the error handler.

Where a request goes: `http/<resource>.py` holds the routes (one blueprint per resource), which
call `services/` for the domain and `storage/` for bytes. Every /v1 request first passes
`http.common.authenticate_request` (bearer key, failed-auth limit, rate limit, monthly quota).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time

from sanic import Request, Sanic
from sanic.response import HTTPResponse

from artifacta_box.clock import Clock
from artifacta_box.config import Settings
from artifacta_box.context import Box
from artifacta_box.http import (
    account,
    artifacts,
    console,
    downloads,
    links,
    metrics,
    openapi,
    pages,
    public_pages,
    sessions,
    system,
    uploads,
)
from artifacta_box.http.common import authenticate_request
from artifacta_box.http.errors import EnvelopeErrorHandler
from artifacta_box.http.sanic_seams import (
    body_bytes_received,
    default_header,
    header_of,
    set_header,
    speed_up_header_sanitiser,
)
from artifacta_box.ids import new_request_id
from artifacta_box.jobs import ballast_loop, lifecycle_loop
from artifacta_box.logs import access_line
from artifacta_box.metrics import UNMATCHED_ROUTE, Metrics, MetricsShare
from artifacta_box.services.stats import StoreGauges

log = logging.getLogger("artifacta_box")

# Blueprints, in registration order. Each resource module exposes `bp`.
BLUEPRINTS = [
    system.bp, account.bp, artifacts.bp, sessions.bp, downloads.bp, links.bp, pages.bp,
    uploads.bp, uploads.signed_bp, metrics.bp, openapi.bp,
    public_pages.bp,  # artifact pages at /a/ (HTML for anyone with a page's URL)
]

# Bodies of routes that do not stream (small JSON bodies) are buffered up to this size.
SMALL_BODY_LIMIT = 1024 * 1024

speed_up_header_sanitiser()  # same result, a fraction of the CPU (see http.sanic_seams)


def _touchup_source_readable() -> bool:
    """Whether TouchUp can read the source of the methods it rewrites: Sanic's Http and our
    override of it (a binary built without the sources, or a bytecode-only install, cannot)."""
    import inspect

    import sanic.http.http1

    from artifacta_box.http import sanic_seams

    try:
        inspect.getsource(sanic.http.http1)
        inspect.getsource(sanic_seams)
    except (OSError, TypeError):
        return False
    return True


def create_app(settings: Settings, clock: Clock | None = None, name: str = "artifacta_box") -> Sanic:
    app = Sanic(name, error_handler=EnvelopeErrorHandler(), configure_logging=False)
    # TouchUp recompiles Sanic's request path without unused signal dispatches (measured ~2x less
    # CPU per small request) from Sanic's source files (the binary carries them: see
    # packaging/artifacta-box.spec); without them Sanic's methods run as they are.
    app.config.TOUCHUP = _touchup_source_readable()
    app.config.REQUEST_MAX_SIZE = SMALL_BODY_LIMIT  # streaming routes enforce their own limits
    app.config.REQUEST_TIMEOUT = settings.request_timeout
    app.config.RESPONSE_TIMEOUT = settings.response_timeout
    app.config.KEEP_ALIVE_TIMEOUT = settings.keep_alive_timeout
    app.config.GRACEFUL_SHUTDOWN_TIMEOUT = settings.shutdown_timeout
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.config.MOTD = False
    app.config.ACCESS_LOG = False  # our own access log line, below
    app.config.NOISY_EXCEPTIONS = False
    app.ctx.settings = settings
    app.ctx.metrics = Metrics()
    app.ctx.box = None  # opened before the server starts serving (open_box)
    # serve --workers N: /metrics sums every worker's counters (metrics.MetricsShare)
    app.ctx.metrics_share = MetricsShare(settings.data_path) if settings.workers > 1 else None

    for bp in BLUEPRINTS:
        app.blueprint(bp)
    if settings.console_enabled:  # HTML pages for people (http/console.py); not part of the API
        app.blueprint(console.bp)

    @app.before_server_start
    async def open_box(app: Sanic) -> None:
        # `serve` logged the S3 probe's findings once before listening (server._open_once)
        box = await Box.open(settings, clock, announce=False)
        app.ctx.box = box
        app.ctx.store_gauges = StoreGauges(box, settings.metrics_gauge_interval_seconds)
        app.ctx.store_gauges.start()
        box.start_background(box.meter_loop())
        box.start_background(lifecycle_loop(box, app.ctx.metrics.observe_gc))
        await asyncio.to_thread(box.reserve.ensure_ballast)  # before the first request
        box.start_background(ballast_loop(box))
        if app.ctx.metrics_share is not None:
            box.start_background(_publish_metrics(app.ctx.metrics, app.ctx.metrics_share))

    @app.before_server_stop
    async def mark_stopping(app: Sanic) -> None:
        if app.ctx.box is not None:
            app.ctx.box.shutting_down = True

    @app.after_server_stop
    async def close_box(app: Sanic) -> None:
        box = app.ctx.box
        if box is not None:
            await app.ctx.store_gauges.stop()
            if app.ctx.metrics_share is not None:  # the final counts of this worker
                _publish_once(app.ctx.metrics, app.ctx.metrics_share)
            await box.close()

    @app.on_request(priority=100)
    async def start_request(request: Request) -> None:
        request.ctx.request_id = new_request_id()
        request.ctx.started = time.perf_counter()
        request.ctx.rate_headers = None
        # Sanic answers a request it could not parse (bad Content-Length, bad framing) through a
        # placeholder request with method NONE and no headers: that is a 400 to report, not a
        # missing key (and not a failed authentication to count against the address).
        if request.path.startswith("/v1/") and request.method != "NONE":
            await authenticate_request(request)

    @app.on_response(priority=100)
    def finish_response(request: Request, response: HTTPResponse) -> None:
        # A plain function: Sanic awaits a middleware only if it returns an awaitable, and this
        # one never waits (a coroutine per response saved).
        ctx = request.ctx
        rid = getattr(ctx, "request_id", None)
        # set_header/default_header: a PreparedResponse stays prepared (http.sanic_seams 10.)
        if rid:
            set_header(response, "X-Request-Id", rid)
        rate_headers = getattr(ctx, "rate_headers", None)
        if rate_headers:
            for k, v in rate_headers.items():
                default_header(response, k, v)
        _observe(request, response, app.ctx.metrics, settings.access_log)

    return app


_ROUTE_LABELS: dict[str, str] = {}
_PARAM_TYPE = re.compile(r"<(\w+):[^>]*>")


def route_label(request: Request) -> str:
    """The route pattern (`/v1/artifacts/<artifact_id>`), never the raw path: bounded labels."""
    route = request.route
    if route is None:
        return UNMATCHED_ROUTE
    label = _ROUTE_LABELS.get(route.path)
    if label is None:
        label = _ROUTE_LABELS[route.path] = "/" + _PARAM_TYPE.sub(r"<\1>", route.path).lstrip("/")
    return label


def _bytes_in(request: Request) -> int:
    """Body bytes received: what the stream counted (streamed uploads too), else the body."""
    received = body_bytes_received(request)
    return received if received is not None else len(request.body or b"")


def _bytes_out(request: Request, response: HTTPResponse) -> int:
    """Body bytes sent. A streamed download (sendfile) is observed when its headers go out, so
    its Content-Length is what it sends."""
    if request.method == "HEAD" or response.status == 304:
        return 0
    body = getattr(response, "body", None)
    if body:
        return len(body)
    try:
        return int(header_of(response, "content-length", 0))
    except ValueError:
        return 0


def _publish_once(counters: Metrics, share: MetricsShare) -> None:
    try:
        share.publish(counters.snapshot())
    except OSError:
        log.exception("could not publish this worker's metrics for /metrics")


async def _publish_metrics(counters: Metrics, share: MetricsShare, interval: float = 1.0) -> None:
    while True:
        await asyncio.to_thread(_publish_once, counters, share)
        await asyncio.sleep(interval)


def _observe(request: Request, response: HTTPResponse, counters: Metrics, log_line: bool) -> None:
    """Metrics for every response, and the access log line when enabled."""
    ctx = request.ctx
    started = getattr(ctx, "started", None)
    seconds = time.perf_counter() - started if started else 0.0
    route = route_label(request)
    bytes_in, bytes_out = _bytes_in(request), _bytes_out(request, response)
    counters.observe_request(request.method, route, response.status, seconds, bytes_in, bytes_out)
    if log_line:
        _access_log(request, response, route, seconds * 1000, bytes_in, bytes_out)


def _access_log(request: Request, response: HTTPResponse, route: str, duration_ms: float,
                bytes_in: int, bytes_out: int) -> None:
    ctx = request.ctx
    principal = getattr(ctx, "principal", None)
    access_line(request.method, request.path, response.status, bytes_in, bytes_out, duration_ms,
                route, principal.tenant_name if principal else None,
                getattr(ctx, "request_id", None))
