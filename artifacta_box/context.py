"""The running box: settings, clock, database, blob store, secret and in-memory limiters.

Both the HTTP server and the admin CLI open a `Box` on a data directory, so an admin command and
an API call share the same services and cannot disagree.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from artifacta_box.clock import Clock
from artifacta_box.config import Settings
from artifacta_box.db import Database, initialise
from artifacta_box.security.ratelimit import FailedAuthLimiter, SharedTokenBuckets, TokenBuckets
from artifacta_box.security.signing import CursorCodec, UrlSigner
from artifacta_box.storage import LocalBlobStore

log = logging.getLogger("artifacta_box")

SECRET_FILE = "secret.key"
DB_FILE = "artifacta.db"
LOCK_FILE = "server.lock"
RATE_FILE = "ratelimit.table"  # tenants' token buckets shared by `serve --workers N` processes


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


def prepare_data_dir(settings: Settings) -> Path:
    """Create the data directory, its database (migrated) and blob directories. Idempotent."""
    root = settings.data_path
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        LocalBlobStore(root).prepare()
        initialise(root / DB_FILE)
    except PermissionError as exc:
        raise DataDirError(f"storage.data_dir: cannot write {root}: {exc.strerror}") from None
    except OSError as exc:
        raise DataDirError(f"storage.data_dir: cannot use {root}: {exc.strerror or exc}") from None
    return root


def load_secret(settings: Settings) -> bytes:
    """The HMAC secret: from config, else `<data_dir>/secret.key`, created 0600 on first use."""
    if settings.secret_key:
        return settings.secret_key.encode("utf-8")
    path = settings.data_path / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        value = path.read_text("ascii").strip()
        if len(value) < 32:
            raise DataDirError(f"security.secret_key: {path} is shorter than 32 characters") from None
        return value.encode("ascii")
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(48) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(path, 0o600)
    return path.read_text("ascii").strip().encode("ascii")


class ServerLock:
    """An exclusive lock on the data directory held by `serve` (and checked by `restore`)."""

    def __init__(self, root: Path) -> None:
        self.path = root / LOCK_FILE
        self._fh = None

    def acquire(self) -> None:
        fh = open(self.path, "a+")  # noqa: SIM115 - held for the server's lifetime
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise DataDirError(
                f"storage.data_dir: {self.path.parent} is in use by another artifacta-box serve"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._fh = fh

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


@dataclass
class UsageMeter:
    """Counts API requests in memory and flushes them to the tenants table about once a second.

    A write per request would serialise every read on the writer; the cost is that a kill -9 can
    lose up to one interval of request counts (never artifacts).
    """

    pending_requests: dict[int, int] = field(default_factory=dict)
    key_last_used: dict[str, str] = field(default_factory=dict)

    def count_request(self, tenant_id: int, key_id: str, at: str) -> None:
        self.pending_requests[tenant_id] = self.pending_requests.get(tenant_id, 0) + 1
        self.key_last_used[key_id] = at

    def pending_for(self, tenant_id: int) -> int:
        return self.pending_requests.get(tenant_id, 0)

    async def flush(self, db: Database, month: str) -> None:
        if not self.pending_requests and not self.key_last_used:
            return
        requests, self.pending_requests = self.pending_requests, {}
        used, self.key_last_used = self.key_last_used, {}
        try:
            async with db.write() as conn:
                for tenant_id, n in requests.items():
                    await conn.execute(
                        "UPDATE tenants SET requests_count = CASE WHEN requests_month = ? "
                        "THEN requests_count + ? ELSE ? END, requests_month = ? WHERE tenant_id = ?",
                        (month, n, n, month, tenant_id),
                    )
                await conn.executemany(
                    "UPDATE api_keys SET last_used_at = ? WHERE key_id = ?",
                    [(at, key_id) for key_id, at in used.items()],
                )
        except BaseException:
            # Put the counts back so a transient failure (busy database) loses nothing.
            for tenant_id, n in requests.items():
                self.pending_requests[tenant_id] = self.pending_requests.get(tenant_id, 0) + n
            for key_id, at in used.items():
                self.key_last_used.setdefault(key_id, at)
            raise


class Box:
    """Everything a request or an admin command needs, opened on one data directory."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or Clock()
        self.root = settings.data_path
        self.db = Database(self.root / DB_FILE)
        self.blobs = LocalBlobStore(self.root, min_free_bytes=settings.min_free_bytes,
                                    free_space_probe=free_space_probe_from_env())
        self.secret: bytes = b""
        self.signer: UrlSigner | None = None
        self.cursors: CursorCodec | None = None
        # One process: buckets in memory. Several workers: one table they all update.
        self.rate: TokenBuckets | SharedTokenBuckets = (
            SharedTokenBuckets(settings.data_path / RATE_FILE) if settings.workers > 1
            else TokenBuckets()
        )
        self.auth_failures = FailedAuthLimiter(
            settings.failed_auth_limit, settings.failed_auth_window_seconds
        )
        self.meter = UsageMeter()
        self.shutting_down = False
        self._tasks: list[asyncio.Task] = []

    async def open(self) -> Box:
        root = await asyncio.to_thread(prepare_data_dir, self.settings)
        await asyncio.to_thread(ensure_blob_layout, root)
        self.secret = await asyncio.to_thread(load_secret, self.settings)
        self.signer = UrlSigner(self.secret)
        self.cursors = CursorCodec(self.secret)
        await self.db.open()
        return self

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        self._tasks = []
        try:
            await self.meter.flush(self.db, self.month())
        except Exception:  # noqa: BLE001 - the db may already be unusable at shutdown
            log.exception("could not flush request counters at shutdown")
        if isinstance(self.rate, SharedTokenBuckets):
            self.rate.close()
        await self.db.close()

    async def __aenter__(self) -> Box:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def month(self) -> str:
        return self.clock.now().strftime("%Y-%m")

    def start_background(self, coro) -> None:
        self._tasks.append(asyncio.create_task(coro))

    async def meter_loop(self, interval: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.meter.flush(self.db, self.month())
            except Exception:  # noqa: BLE001 - retried next tick
                log.exception("flushing request counters failed; will retry")
