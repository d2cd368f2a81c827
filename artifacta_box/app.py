"""create_app(settings) -> Sanic: listeners, middleware, blueprints and the error handler.

Where a request goes: `http/<resource>.py` holds the routes (one blueprint per resource), which
call `services/` for the domain and `storage/` for bytes. Every /v1 request first passes
`http.common.authenticate_request` (bearer key, failed-auth limit, rate limit, monthly quota).
"""

from __future__ import annotations

import logging
import time

from sanic import Request, Sanic
from sanic.response import HTTPResponse

from artifacta_box.clock import Clock
from artifacta_box.config import Settings
from artifacta_box.context import Box
from artifacta_box.http import account, artifacts_read, openapi, sessions, system
from artifacta_box.http.common import authenticate_request
from artifacta_box.http.errors import EnvelopeErrorHandler
from artifacta_box.ids import new_request_id

log = logging.getLogger("artifacta_box")

# Blueprints, in registration order. Each resource module exposes `bp`.
BLUEPRINTS = [system.bp, account.bp]
BLUEPRINTS += [artifacts_read.bp, sessions.bp]
BLUEPRINTS += [openapi.bp]

# Bodies of routes that do not stream (small JSON bodies) are buffered up to this size.
SMALL_BODY_LIMIT = 1024 * 1024


def create_app(settings: Settings, clock: Clock | None = None, name: str = "artifacta_box") -> Sanic:
    app = Sanic(name, error_handler=EnvelopeErrorHandler(), configure_logging=False)
    app.config.TOUCHUP = False  # TouchUp rewrites Sanic's source at start: breaks frozen binaries
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

    for bp in BLUEPRINTS:
        app.blueprint(bp)

    @app.before_server_start
    async def open_box(app: Sanic) -> None:
        box = Box(settings, clock)
        await box.open()
        app.ctx.box = box
        box.start_background(box.meter_loop())

    @app.before_server_stop
    async def mark_stopping(app: Sanic) -> None:
        box = getattr(app.ctx, "box", None)
        if box is not None:
            box.shutting_down = True

    @app.after_server_stop
    async def close_box(app: Sanic) -> None:
        box = getattr(app.ctx, "box", None)
        if box is not None:
            await box.close()

    @app.on_request(priority=100)
    async def start_request(request: Request) -> None:
        request.ctx.request_id = new_request_id()
        request.ctx.started = time.perf_counter()
        request.ctx.rate_headers = None
        if request.path.startswith("/v1/"):
            await authenticate_request(request)

    @app.on_response(priority=100)
    async def finish_response(request: Request, response: HTTPResponse) -> None:
        ctx = request.ctx
        rid = getattr(ctx, "request_id", None)
        if rid:
            response.headers["X-Request-Id"] = rid
        rate_headers = getattr(ctx, "rate_headers", None)
        if rate_headers:
            for k, v in rate_headers.items():
                response.headers.setdefault(k, v)
        if settings.access_log:
            _access_log(request, response)

    return app


access_log = logging.getLogger("artifacta_box.access")


def _access_log(request: Request, response: HTTPResponse) -> None:
    ctx = request.ctx
    started = getattr(ctx, "started", None)
    duration_ms = (time.perf_counter() - started) * 1000 if started else 0.0
    principal = getattr(ctx, "principal", None)
    route = request.route.path if request.route else "-"
    access_log.info(
        "%s %s %s %s %.1fms tenant=%s rid=%s",
        request.method,
        request.path,
        response.status,
        response.headers.get("content-length", "-"),
        duration_ms,
        principal.tenant_name if principal else "-",
        getattr(ctx, "request_id", "-"),
        extra={
            "method": request.method,
            "path": request.path,
            "route": "/" + route.lstrip("/") if route != "-" else "-",
            "status": response.status,
            "duration_ms": round(duration_ms, 2),
            "tenant": principal.tenant_name if principal else None,
            "request_id": getattr(ctx, "request_id", None),
        },
    )
