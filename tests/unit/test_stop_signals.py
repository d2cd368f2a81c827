"""SIGTERM/SIGINT handling (stopping.py): the stop runs outside the signal handler.

A Python signal handler runs on the main thread between two of its bytecodes, possibly while
that thread holds a non-reentrant lock — the buffered log handler's queue lock, taken by every
log call. A stop that logged from inside the handler then waited forever for a lock its own
thread held: a worker manager stopped by `kill -- -PGID` while it was logging hung for good
(seen in CI with the binary and --workers 2).
"""

from __future__ import annotations

import io
import logging
import os
import signal
import threading

from artifacta_box import stopping
from artifacta_box.logs import BufferedStreamHandler


def test_a_stop_signal_is_handled_while_the_main_thread_holds_the_log_lock():
    stream = io.StringIO()
    handler = BufferedStreamHandler(stream)
    log = logging.getLogger("test-stop-signals")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)
    stopped = threading.Event()
    ran_on: list[threading.Thread] = []

    def stop(reason: str) -> None:
        ran_on.append(threading.current_thread())
        log.info("%s: stopping", reason)  # takes the handler's queue lock
        stopped.set()

    previous = {sig: signal.getsignal(sig) for sig in stopping.STOP_SIGNALS}
    try:
        stopping._on_stop_signals(stop)
        with handler._wake:  # the main thread is inside a log call when the signal comes
            os.kill(os.getpid(), signal.SIGTERM)
            assert not stopped.wait(0.2)  # the stop waits for the lock, on its own thread
        assert stopped.wait(10), "the stop never ran"
        assert ran_on and ran_on[0] is not threading.main_thread()
        handler.flush()
        assert "received SIGTERM: stopping" in stream.getvalue()
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        log.removeHandler(handler)
        handler.close()
