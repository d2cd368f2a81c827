"""SIGTERM/SIGINT: one graceful stop per process, however many of them arrive.

Several signals for one stop are normal, not a mistake: Ctrl-C reaches every process of the
terminal's process group, the single-file binary's bootloader forwards the signal it received
to the server process it started (which may have received one itself), systemd's default
KillMode=control-group signals every process, and operators press Ctrl-C twice.

Sanic calls `app.stop()` for every one of them. A second stop during the drain stops the event
loop under Sanic's shutdown code, which then raises, skips the after-stop listeners (the
database is never closed) and leaves the process hanging on the database thread. In a
multi-worker server a second signal to the main process SIGKILLs the whole process group,
bootloader included, which then cannot remove its extraction directory.

So in every serving process the first SIGTERM/SIGINT starts the graceful stop and the
following ones are only logged. The drain stays bounded by `server.shutdown_timeout`; SIGKILL
remains the way to end it sooner.

A worker also stops, the same way, when the main process has exited without stopping it
(SIGKILL, a crash): see orphans.py. Sanic's shared-state manager process exits then too.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import queue
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.managers import SyncManager
from types import FrameType
from typing import Any

from sanic import Sanic

from artifacta_box import orphans
from artifacta_box.http import sanic_seams

log = logging.getLogger("artifacta_box")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def stop_once(action: Callable[[], Any]) -> Callable[[str], None]:
    """`stop(reason)`: runs `action` the first time and only logs the later calls."""
    stopping = False

    def stop(reason: str) -> None:
        nonlocal stopping
        if stopping:
            log.info("%s while already stopping; still draining", reason)
            return
        stopping = True
        log.info("%s: stopping (in-flight requests may finish)", reason)
        action()

    return stop


def _on_stop_signals(stop: Callable[[str], None]) -> None:
    """Call `stop(reason)` for each SIGTERM/SIGINT, from a thread of its own, never inside the
    signal handler: a handler runs on the main thread between two of its bytecodes, possibly
    while that thread holds a lock that `stop` needs (the log handler's queue lock: a manager
    stopped by `kill -- -PGID` while logging hung for good on it). The handler only puts the
    reason on a SimpleQueue, whose put() is safe to call from a signal handler."""
    reasons: queue.SimpleQueue[str] = queue.SimpleQueue()

    def relay() -> None:
        while True:
            stop(reasons.get())

    threading.Thread(target=relay, name="stop-signals", daemon=True).start()

    def handler(signum: int, frame: FrameType | None) -> None:
        reasons.put(f"received {signal.Signals(signum).name}")

    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)


def install_stop_once(app: Sanic) -> None:
    """Make SIGTERM/SIGINT stop `app` once, in the serving process and in a worker manager;
    and make a worker stop when its main process has exited.

    Handlers are set with `signal.signal`, not `loop.add_signal_handler`: Sanic removes the
    loop's handlers when the drain begins, which would restore the default (fatal) action.
    """

    async def serving_process(app: Sanic) -> None:
        loop = asyncio.get_running_loop()
        stop = stop_once(lambda: app.stop(terminate=False))

        def stop_soon(reason: str) -> None:  # from another thread
            try:
                loop.call_soon_threadsafe(stop, reason)
            except RuntimeError:  # the loop has closed: the server has stopped already
                pass

        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
        _on_stop_signals(stop_soon)
        orphans.on_parent_exit(lambda: stop_soon("the main process has exited"))

    def manager_process(app: Sanic) -> None:
        # Only with workers > 1: the main process supervises the workers and, on its first
        # signal, asks each to stop (they then drain like a single server).
        manager = app.manager

        def stop() -> None:
            # Sanic's manager spins forever when told to stop before it has seen every worker
            # report ready: it keeps re-queueing the stop message while waiting for acks that
            # stopped workers never send. This handler runs inside that wait, so it cannot
            # wait itself: a thread lets the workers finish starting (for as long as Sanic
            # would wait for them), gives the wait a moment to notice, then stops them.
            def when_started() -> None:
                deadline = time.monotonic() + sanic_seams.worker_start_timeout(manager)
                while not sanic_seams.all_workers_ready(manager) and time.monotonic() < deadline:
                    time.sleep(0.05)
                time.sleep(0.3)  # > the 0.1 s poll interval of Sanic's wait for acks
                sanic_seams.stop_workers(manager, signal.SIGTERM)

            threading.Thread(target=when_started, name="stop-workers", daemon=True).start()

        _on_stop_signals(stop_once(stop))

    app.register_listener(serving_process, "after_server_start")
    app.register_listener(manager_process, "main_process_ready")


def tie_helpers_to_main() -> None:
    """Call right before `Sanic.serve` with workers > 1: Sanic's shared-state manager process
    (multiprocessing's SyncManager) then exits when the main process does, however it ends.

    Sanic starts it with `multiprocessing.Manager()`, which takes no initializer; this starts
    the same SyncManager with one (orphans.exit_with_parent). Without it the manager, which
    ignores SIGTERM (below), outlived a SIGKILLed main process forever.
    """

    def manager_that_exits_with_main() -> SyncManager:
        manager = SyncManager(ctx=multiprocessing.get_context())
        manager.start(initializer=orphans.exit_with_parent)
        return manager

    sanic_seams.replace_shared_state_manager(manager_that_exits_with_main)


def shield_helpers_from_sigterm() -> None:
    """Call right before `Sanic.serve` with workers > 1.

    Sanic keeps the workers' shared state in a multiprocessing manager process. When SIGTERM
    reaches the whole process group (`kill -- -PGID`, `docker stop` on a shell wrapper,
    systemd's KillMode=control-group) that process died at once and the main process failed
    with a traceback while stopping the workers. An ignored signal stays ignored across
    exec, so the helper processes started from here on ignore SIGTERM (the manager is shut
    down by a message); Sanic's worker manager and every worker install their own handlers.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

