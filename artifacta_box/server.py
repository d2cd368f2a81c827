"""Running the server process: listening socket, data directory, lock, crash leftovers,
bootstrap, Sanic.

The order is what an operator sees: the socket is bound first, so a busy port or an unknown
host is one line and exit 2 before anything is created or printed; then the data directory
(created if new), its lock, the repairs a start makes (layout, file modes, temp leftovers),
the bootstrap key of a new box, and one "listening" line with the address actually bound.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import multiprocessing
import socket
from functools import partial

import click
from sanic import Sanic
from sanic.server.socket import bind_socket
from sanic.worker.loader import AppLoader

from artifacta_box.app import create_app
from artifacta_box.client_env import api_url, export_lines
from artifacta_box.config import Settings
from artifacta_box.context import Box
from artifacta_box.datadir import (
    RATE_FILE,
    ServerLock,
    ensure_blob_layout,
    make_private,
    prepare_data_dir,
)
from artifacta_box.http.deadlines import DeadlineHttpProtocol
from artifacta_box.logs import configure
from artifacta_box.metrics import MetricsShare
from artifacta_box.security.ratelimit import SharedTokenBuckets
from artifacta_box.services import tenants
from artifacta_box.stopping import install_stop_once, shield_helpers_from_sigterm, tie_helpers_to_main
from artifacta_box.storage import LocalBlobStore

log = logging.getLogger("artifacta_box")

BACKLOG = 100  # Sanic's default


class ListenError(Exception):
    """The server cannot listen where it was told to (port in use, unknown host, ...)."""


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listen(settings: Settings) -> socket.socket:
    """Bind and listen on server.host:server.port (Sanic's own socket recipe), or raise
    ListenError with the reason in words."""
    try:
        return bind_socket(settings.host, settings.port, backlog=BACKLOG)
    except OSError as exc:  # socket.gaierror included: an unknown host
        reason = exc.strerror or str(exc)
        reason = reason[:1].lower() + reason[1:]
        raise ListenError(
            f"cannot listen on {host_port(settings.host, settings.port)}: {reason}"
        ) from None


def metrics_exposed(bound_host: str, settings: Settings) -> bool:
    """Is /metrics open to other hosts: listening beyond loopback (a wildcard address
    included) with no [metrics] token?"""
    try:
        loopback = ipaddress.ip_address(bound_host).is_loopback
    except ValueError:
        loopback = False
    return not loopback and not settings.metrics_token


async def _open_once(settings: Settings, bootstrap: bool) -> dict | None:
    """Open the box once before serving: an S3 store that fails its probe stops `serve` here,
    in one line (context.BlobStoreUnusable), before the port is announced; then bootstrap."""
    async with Box.opened(settings) as box:
        return await tenants.bootstrap(box) if bootstrap else None


STOP_WAIT_SECONDS = 15  # how long `serve` waits at exit for its workers to let go of the directory


def serve(settings: Settings, bootstrap: bool = True) -> int:
    """Serve until SIGTERM/SIGINT. Returns the process exit code."""
    configure(settings)
    sock = listen(settings)
    lock: ServerLock | None = None
    try:
        root = prepare_data_dir(settings, create=True)
        lock = ServerLock(root)
        lock.acquire()
        moved = ensure_blob_layout(root, held=lock)
        if moved:
            log.info("moved %d blobs to the current blob layout (blobs/<tenant>/<aa>/<sha256>)",
                     moved)
        files, dirs, failed = make_private(root)
        if files or dirs:
            log.warning("made %d files and %d directories in %s private (0600/0700): other "
                        "users of this host could read them", files, dirs, root)
        if failed:
            log.warning("could not make %d entries private (not owned by this user?), e.g. %s",
                        len(failed), failed[0])
        files, size = LocalBlobStore(root).remove_temp_files()
        if files:
            log.info("removed %d leftover temporary files (%d bytes) from an earlier run", files, size)
        created = asyncio.run(_open_once(settings, bootstrap))
        if created:
            click.echo("Created tenant 'default' and its first API key (shown only this once):")
            click.echo("\n".join("  " + line for line in
                                 export_lines(created["key"], api_url(settings)).splitlines()))
        bound_host, bound_port = sock.getsockname()[:2]
        bound = host_port(bound_host, bound_port)
        click.echo(f"artifacta-box listening on http://{bound} (data: {root})", err=True)
        if metrics_exposed(bound_host, settings):
            log.warning("listening on %s, beyond loopback, and /metrics needs no token: anyone "
                        "who can reach the port can read it; set [metrics] token "
                        "(ARTIFACTA_BOX_METRICS_TOKEN) or keep the port behind a firewall",
                        bound)
        flush_output()
        factory = partial(serving_app, settings)
        if settings.workers == 1:
            app = factory()
            app.run(sock=sock, single_process=True, access_log=False, motd=False,
                    protocol=DeadlineHttpProtocol)
        else:
            # The workers share one rate-limit table (security.ratelimit.SharedTokenBuckets)
            # and sum their request counters on /metrics (metrics.MetricsShare). Each holds
            # the data-directory lock shared, as this process does from here on (datadir).
            SharedTokenBuckets.create(root / RATE_FILE)
            MetricsShare.reset(root)
            lock.share()
            loader = AppLoader(factory=factory)
            app = loader.load()
            app.prepare(sock=sock, workers=settings.workers, access_log=False, motd=False,
                        protocol=DeadlineHttpProtocol)
            shield_helpers_from_sigterm()
            tie_helpers_to_main()
            Sanic.serve(primary=app, app_loader=loader)
            if not lock.wait_alone(timeout=STOP_WAIT_SECONDS):
                log.warning("worker processes still hold %s after %d s; exiting without them "
                            "(they stop when this process has exited)", root, STOP_WAIT_SECONDS)
    finally:
        if lock is not None:
            lock.release()
        sock.close()
    return 0


def serving_app(settings: Settings) -> Sanic:
    """The app as served: logging, `create_app`, one graceful stop per process (stopping.py).

    Module-level so that worker processes (workers > 1, spawned: they start with Python's
    default logging) load it too. A worker holds the data-directory lock (shared) for as long
    as it lives, and stops when the main process has exited (orphans.py)."""
    configure(settings)
    app = create_app(settings)
    if multiprocessing.parent_process() is not None:  # a worker of `serve --workers N`
        app.ctx.data_dir_lock = ServerLock(settings.data_path).hold_shared()
    install_stop_once(app)
    return app


def flush_output() -> None:
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
