"""The data directory: what lives in it, and the rules for opening it.

Everything the box stores is under `storage.data_dir`:

    artifacta.db (+ -wal, -shm)   metadata (SQLite, WAL)            DB_FILE
    blobs/, tmp/                  the blob store (storage.blobstore)
    secret.key                    the signing secret (0600)         SECRET_FILE
    server.lock                   held by every serving process     LOCK_FILE
    gc.lock                       held by a lifecycle run           GC_LOCK_FILE
    ratelimit.table               `serve --workers N` token buckets  RATE_FILE
    metrics.d/                    `serve --workers N` counters       METRICS_DIR
    keys.generation               bumped on revoke/suspend/plan      KEYS_GENERATION_FILE
    reserve.ballast               free-space ballast (serve)         storage.reserve.BALLAST_FILE
                                  (every process's key cache)

`prepare_data_dir` opens it (and creates it for `serve`), `load_secret` reads or creates the
secret, `ServerLock` is the lock every serving process holds, `ensure_blob_layout` upgrades an
older blob layout under that lock, `make_private` takes away what other users could read.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import stat
import time
from collections.abc import Callable
from pathlib import Path

from artifacta_box.config import Settings
from artifacta_box.db import initialise
from artifacta_box.storage import LocalBlobStore

log = logging.getLogger("artifacta_box")

SECRET_FILE = "secret.key"
DB_FILE = "artifacta.db"
LOCK_FILE = "server.lock"
RATE_FILE = "ratelimit.table"  # tenants' token buckets shared by `serve --workers N` processes
GC_LOCK_FILE = "gc.lock"
METRICS_DIR = "metrics.d"
KEYS_GENERATION_FILE = "keys.generation"  # security.keycache.SharedGeneration

# Everything the box writes is readable by its own user only: the process runs with umask
# 077 (cli.main), and `make_private` fixes what an older version or a hand-made directory left.
UMASK = 0o077
PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


# Test hook, never set in production: the name of a file holding the number of free bytes the
# blob store should believe it has (re-read on every check), so an end-to-end test can make a
# real server subprocess "run out of disk" and recover without filling a real disk.
TEST_FREE_BYTES_ENV = "ARTIFACTA_BOX_TEST_FREE_BYTES_FILE"


def free_space_probe_from_env() -> Callable[[str], int] | None:
    path = os.environ.get(TEST_FREE_BYTES_ENV)
    if not path:
        return None
    log.warning("%s is set: free disk space is read from %s (a test hook)",
                TEST_FREE_BYTES_ENV, path)

    def probe(_root: str) -> int:
        return int(Path(path).read_text().strip())

    return probe


class DataDirError(Exception):
    """The data directory cannot be used (permissions, in use by another server, ...)."""


def prepare_data_dir(settings: Settings, *, create: bool) -> Path:
    """Open the data directory: its database migrated, its blob directories present.

    `create`: make a new data directory if there is none (only `serve` does). Otherwise a
    directory without a database is refused, so a mistyped `--data-dir` is an error instead
    of a new, empty box."""
    root = settings.data_path
    if not create and not (root / DB_FILE).is_file():
        raise DataDirError(
            f"storage.data_dir: {root} is not an Artifacta data directory (no {DB_FILE}); "
            "pass the --data-dir your server uses, or create one with `artifacta-box serve`"
        )
    try:
        root.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
        LocalBlobStore(root).prepare()
        initialise(root / DB_FILE)
    except PermissionError as exc:
        raise DataDirError(f"storage.data_dir: cannot write {root}: {exc.strerror}") from None
    except OSError as exc:
        raise DataDirError(f"storage.data_dir: cannot use {root}: {exc.strerror or exc}") from None
    return root


def make_private(root: Path) -> tuple[int, int, list[str]]:
    """Take group and other permissions away from the data directory and what it holds.

    The directory itself and every entry directly in it (database, WAL/SHM, secret, locks)
    are checked at every call; a subdirectory is walked only when it was not private, since
    everything the box creates is private (so after the first start on an older directory this
    costs a few stat calls, not one per blob). Symbolic links are left alone. Returns how many
    files and directories were made private, and the paths that could not be (chmod failed)."""
    changed = {"files": 0, "dirs": 0}
    failed: list[str] = []

    def fix(path: str, mode: int, private: int, kind: str) -> bool:
        """Whether the entry was not private; if so, make it private."""
        if not mode & 0o077:
            return False
        try:
            os.chmod(path, stat.S_IMODE(mode) & private)
            changed[kind] += 1
        except OSError:
            failed.append(path)
        return True

    def walk(directory: str, always_list: bool) -> None:
        try:
            was_open = fix(directory, os.stat(directory).st_mode, PRIVATE_DIR, "dirs")
            entries = list(os.scandir(directory)) if was_open or always_list else []
        except OSError:
            return
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    walk(entry.path, always_list=False)
                elif entry.is_file(follow_symlinks=False):
                    fix(entry.path, entry.stat(follow_symlinks=False).st_mode, PRIVATE_FILE,
                        "files")
            except OSError:  # removed meanwhile
                continue

    walk(str(root), always_list=True)
    return changed["files"], changed["dirs"], failed


def load_secret(settings: Settings) -> bytes:
    """The HMAC secret: from config, else `<data_dir>/secret.key`, created 0600 on first use."""
    if settings.secret_key:
        return settings.secret_key.encode("utf-8")
    path = settings.data_path / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        value = path.read_text("ascii").strip()
        if len(value) < 32:
            raise DataDirError(f"security.secret_key: {path} is shorter than 32 characters") from None
        return value.encode("ascii")
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(48) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(path, PRIVATE_FILE)
    return path.read_text("ascii").strip().encode("ascii")


class ServerLock:
    """The data-directory lock: `flock` on `server.lock`, one lock for a whole server.

    Exclusive (`acquire`) for whoever must be alone on the directory: `serve` while it
    prepares it (crash leftovers, layout upgrade, bootstrap), `restore`, a layout upgrade run
    by an admin command. Shared by every process that serves the directory: `serve --workers N`
    turns its exclusive lock into a shared one (`share`) before it starts the workers, and
    each worker takes its own (`hold_shared`) before it opens the database. So no second
    `serve`, no `restore` and no layout upgrade can start while any process of a server lives,
    whichever of them dies first (the kernel releases a process's lock when it exits, even on
    SIGKILL). Admin commands that run beside a server take no lock; `is_held_elsewhere` tells
    them whether one is running.
    """

    def __init__(self, root: Path) -> None:
        self.path = root / LOCK_FILE
        self._fh = None

    def _in_use(self) -> DataDirError:
        return DataDirError(
            f"storage.data_dir: {self.path.parent} is in use by another artifacta-box serve "
            "(or by worker processes of one that are still stopping)"
        )

    def acquire(self) -> None:
        """Take the lock exclusively, or raise DataDirError at once."""
        fh = open(self.path, "a+")  # noqa: SIM115 - held for the holder's lifetime
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise self._in_use() from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._fh = fh

    def share(self) -> None:
        """Turn the exclusive lock into a shared one (for `serve --workers N`).

        flock converts by releasing and re-taking, so another process may win the lock in
        between; then this raises DataDirError and exactly one of them goes on."""
        assert self._fh is not None, "share() needs the lock acquired"
        try:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            self._fh.close()
            self._fh = None
            raise self._in_use() from None

    def hold_shared(self) -> ServerLock:
        """Take the lock shared (a worker process of `serve`); raise DataDirError when a
        process holds it exclusively (a restore or upgrade has taken over the directory)."""
        fh = open(self.path, "a+")  # noqa: SIM115 - held until the process exits
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise DataDirError(
                f"storage.data_dir: {self.path.parent} is locked by a restore or an upgrade; "
                "this worker does not serve it"
            ) from None
        self._fh = fh
        return self

    def wait_alone(self, timeout: float) -> bool:
        """Wait (at most `timeout` s) until no other process holds the lock, then hold it
        exclusively; whether that happened. `serve --workers N` calls it after its workers
        were told to stop, so the command exits only when the whole process tree has let go
        of the directory (their last database close included): a `restore` or a second
        `serve` started right after it finds the directory free."""
        assert self._fh is not None, "wait_alone() needs the lock held"
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.02)  # no event to await: flock has no timed wait

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def is_held_elsewhere(self) -> bool:
        if not self.path.exists():
            return False
        with open(self.path, "a+") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            return False


def ensure_blob_layout(root: Path, held: ServerLock | None = None) -> int:
    """Move blobs written in the earlier layout into the current one (see storage.blobstore);
    returns how many moved. `held`: the server lock the caller already holds (serve). Without
    it the lock is taken for the move, so no server reads blobs while they move; when a server
    holds it, that server is of an older version and must be restarted with this one first."""
    store = LocalBlobStore(root)
    if store.layout_current():
        return 0
    if held is not None:
        return store.upgrade_layout()
    probe = ServerLock(root)
    try:
        probe.acquire()
    except DataDirError:
        raise DataDirError(
            f"storage.data_dir: {root} holds blobs in the earlier layout and a server is running "
            "on it; restart `artifacta-box serve` with this version (it moves them at start), "
            "then run this command again"
        ) from None
    try:
        return store.upgrade_layout()
    finally:
        probe.release()
