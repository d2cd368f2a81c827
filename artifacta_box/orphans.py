"""No orphans: every process of a server ends when the process that started it ends.

`serve --workers N` is a tree of processes: the main process (Sanic's worker manager), N
workers, Sanic's shared-state manager and multiprocessing's resource tracker; the single-file
binary adds its bootloader on top, which unpacks the program and runs it as a child. A
SIGKILL (or a crash) of a parent cannot be forwarded by the parent, and without this module
its children went on serving as orphans: no longer the server that holds the data-directory
lock, so a second `serve` or a `restore --force` could start beside them (issue 13: 26 uploads
that orphans acknowledged were gone after a restart).

- Workers and Sanic's manager are started by multiprocessing (spawn), which hands each child
  the read end of a pipe whose write end only the parent holds: `parent_process().join()`
  returns when the parent has exited, however it ended. `on_parent_exit` waits for that in a
  thread; a worker then stops gracefully (stopping.py), the manager exits at once.
- The binary's program process was started by the bootloader with a plain fork and exec, so
  there is no such pipe: `die_with_bootloader` asks the kernel for SIGTERM when its parent
  dies (prctl PR_SET_PDEATHSIG, Linux), which starts the same graceful stop as a SIGTERM the
  bootloader forwards.
- The resource tracker needs nothing: it exits when the last process holding its pipe has.

No Sanic here: Sanic's manager process imports this module to run `exit_with_parent`.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable

log = logging.getLogger("artifacta_box")

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def on_parent_exit(callback: Callable[[], None]) -> bool:
    """In a process started by multiprocessing: call `callback` (in a daemon thread) once the
    parent process has exited. Returns False, and does nothing, in any other process."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return False

    def wait() -> None:
        parent.join()
        callback()

    threading.Thread(target=wait, name="parent-exit", daemon=True).start()
    return True


def exit_with_parent() -> None:
    """Initializer of Sanic's shared-state manager process: exit when the main process has.

    The workers read and write that shared state only while starting and stopping, and a
    worker whose manager has gone still stops cleanly (Sanic ignores the broken pipe)."""
    on_parent_exit(lambda: os._exit(0))


def is_onefile_program() -> bool:
    """The program process of the single-file binary (its parent is the bootloader)."""
    meipass = getattr(sys, "_MEIPASS", None)
    return bool(getattr(sys, "frozen", False) and meipass
                and os.path.basename(meipass).startswith("_MEI")
                and multiprocessing.parent_process() is None)


def die_with_bootloader() -> None:
    """In the binary's program process: receive SIGTERM when the bootloader dies. No-op
    elsewhere (running from source the program has no bootloader; workers use the pipe)."""
    if not sys.platform.startswith("linux") or not is_onefile_program():
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed (%s): this process will outlive a SIGKILL "
                    "of its bootloader", os.strerror(ctypes.get_errno()))
        return
    # The bootloader may have died before the request was made: then the parent is no longer
    # the executable we were started from (the bootloader runs the same file).
    if not _same_executable(os.getppid()):
        os.kill(os.getpid(), signal.SIGTERM)


def _same_executable(pid: int) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/exe") == os.readlink("/proc/self/exe")
    except OSError:
        return False
