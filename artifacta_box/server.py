"""Running the server process: data directory, lock, crash leftovers, bootstrap, Sanic."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from functools import partial

import click
from sanic import Sanic
from sanic.worker.loader import AppLoader

from artifacta_box.app import create_app
from artifacta_box.config import Settings
from artifacta_box.context import Box
from artifacta_box.datadir import (
    RATE_FILE,
    ServerLock,
    ensure_blob_layout,
    make_private,
    prepare_data_dir,
)
from artifacta_box.metrics import MetricsShare
from artifacta_box.security.ratelimit import SharedTokenBuckets
from artifacta_box.http.deadlines import DeadlineHttpProtocol
from artifacta_box.logs import configure
from artifacta_box.services import tenants
from artifacta_box.stopping import install_stop_once, shield_helpers_from_sigterm, tie_helpers_to_main
from artifacta_box.storage import LocalBlobStore

log = logging.getLogger("artifacta_box")


def announce_url(settings: Settings) -> str:
    if settings.public_url:
        return settings.public_url
    host = settings.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


async def _bootstrap(settings: Settings) -> dict | None:
    async with Box.opened(settings) as box:
        return await tenants.bootstrap(box)


def serve(settings: Settings, bootstrap: bool = True) -> int:
    """Serve until SIGTERM/SIGINT. Returns the process exit code."""
    configure(settings)
    root = prepare_data_dir(settings)
    lock = ServerLock(root)
    lock.acquire()
    try:
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
        url = announce_url(settings)
        if bootstrap:
            created = asyncio.run(_bootstrap(settings))
            if created:
                click.echo(
                    "Created tenant 'default' and its first API key (shown only this once):\n"
                    f"  export ARTIFACTA_API_KEY={created['key']}\n"
                    f"  export ARTIFACTA_API_URL={url}",
                )
        click.echo(f"artifacta-box listening on {url} (data: {root})", err=True)
        sys_stdout_flush()
        factory = partial(serving_app, settings)
        if settings.workers == 1:
            app = factory()
            app.run(host=settings.host, port=settings.port, single_process=True,
                    access_log=False, motd=False, protocol=DeadlineHttpProtocol)
        else:
            # The workers share one rate-limit table (security.ratelimit.SharedTokenBuckets)
            # and sum their request counters on /metrics (metrics.MetricsShare). Each holds
            # the data-directory lock shared, as this process does from here on (datadir).
            SharedTokenBuckets.create(root / RATE_FILE)
            MetricsShare.reset(root)
            lock.share()
            loader = AppLoader(factory=factory)
            app = loader.load()
            app.prepare(host=settings.host, port=settings.port, workers=settings.workers,
                        access_log=False, motd=False, protocol=DeadlineHttpProtocol)
            shield_helpers_from_sigterm()
            tie_helpers_to_main()
            Sanic.serve(primary=app, app_loader=loader)
    finally:
        lock.release()
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


def sys_stdout_flush() -> None:
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
