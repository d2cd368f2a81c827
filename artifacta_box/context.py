"""The running box: settings, clock, database, blob store, secret and in-memory limiters.

Both the HTTP server and the admin CLI open a `Box` on a data directory, so an admin command and
an API call share the same services and cannot disagree. A Box is only ever handed out open:

    async with Box.opened(settings) as box: ...      # the CLI, tests
    box = await Box.open(settings); ...; await box.close()   # the server's listeners
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from artifacta_box.clock import Clock
from artifacta_box.config import ConfigError, Settings
from artifacta_box.datadir import (
    DB_FILE,
    KEYS_GENERATION_FILE,
    RATE_FILE,
    ensure_blob_layout,
    free_space_probe_from_env,
    load_secret,
    prepare_data_dir,
)
from artifacta_box.db import Database
from artifacta_box.security.keycache import KeyCache, SharedGeneration
from artifacta_box.security.ratelimit import (
    FailedAuthLimiter,
    MemoryBudget,
    SharedTokenBuckets,
    TokenBuckets,
)
from artifacta_box.security.signing import CursorCodec, UrlSigner
from artifacta_box.services.metering import UsageMeter
from artifacta_box.storage import BlobStores, InlineBlobStore, LocalBlobStore
from artifacta_box.storage.reserve import DiskReserve
from artifacta_box.storage.s3 import ProbeFailed, S3Client, probe
from artifacta_box.storage.s3.blobstore import S3BlobStore

log = logging.getLogger("artifacta_box")


class BlobStoreUnusable(ConfigError):
    """The configured S3 store failed the start-up probe: the box does not start (one line,
    like a configuration error)."""


async def open_blob_stores(settings: Settings, reserve: DiskReserve, *,
                           announce: bool = True) -> BlobStores:
    """The local store, and with storage.backend = "s3" the S3 store after its start-up probe
    (storage/s3/probe.py): a store that cannot hold blobs stops the box (BlobStoreUnusable);
    one that passes without conditional writes, checksums or signed lengths is used with
    presigned uploads proxied by the box (each shortcoming logged, one line each, when
    `announce`: `serve` announces them before listening, its workers probe again quietly)."""
    local = LocalBlobStore(settings.data_path, reserve=reserve)
    if settings.storage_backend != "s3" or settings.s3 is None:
        return BlobStores(local)
    client = S3Client(settings.s3)
    try:
        report = await probe(client)
    except ProbeFailed as exc:
        await client.aclose()
        raise BlobStoreUnusable(str(exc)) from None
    except BaseException:
        await client.aclose()
        raise
    for warning in report.warnings if announce else ():
        log.warning("%s", warning)
    return BlobStores(local, S3BlobStore(client, report), backend="s3")


class Box:
    """Everything a request or an admin command needs, opened on one data directory."""

    def __init__(self, settings: Settings, clock: Clock, db: Database, secret: bytes,
                 blobs: BlobStores, reserve: DiskReserve) -> None:
        """Use `Box.open` / `Box.opened`: they open the data directory, `db` and `blobs`."""
        self.settings = settings
        self.clock = clock
        self.root = settings.data_path
        self.db = db
        # The free-space reserve of the data directory (uploads, /health, /metrics, and the
        # ballast the database writer releases when the disk is full): storage/reserve.py.
        self.reserve = reserve
        db.space_guard = self.reserve
        # Every row is served by the store its location names (storage/blobs.py).
        self.blobs = blobs
        self.secret = secret
        self.signer = UrlSigner(secret)
        self.cursors = CursorCodec(secret)
        # One process: buckets in memory. Several workers: one table they all update.
        self.rate: TokenBuckets | SharedTokenBuckets = (
            SharedTokenBuckets(settings.data_path / RATE_FILE) if settings.workers > 1
            else TokenBuckets()
        )
        self.auth_failures = FailedAuthLimiter(
            settings.failed_auth_limit, settings.failed_auth_window_seconds
        )
        # Wrong passwords of artifact pages, per address and page, on the same budget.
        self.page_password_failures = FailedAuthLimiter(
            settings.failed_auth_limit, settings.failed_auth_window_seconds
        )
        self.meter = UsageMeter()
        # memory held by in-flight upload bodies (http/uploads.py holds and releases it)
        self.upload_memory = MemoryBudget(settings.upload_memory_bytes,
                                          settings.upload_memory_per_tenant_bytes)
        # key lookups, shared-generation checked (services.tenants.authenticate)
        self.keys = KeyCache(SharedGeneration(self.root / KEYS_GENERATION_FILE))
        self.keys.generation()  # the file exists from the start, not from the first request
        self.shutting_down = False
        self._tasks: list[asyncio.Task] = []

    @classmethod
    async def open(cls, settings: Settings, clock: Clock | None = None, *,
                   announce: bool = True) -> Box:
        """Open the box on an existing data directory (migrated if needed). Only `serve` creates
        one (datadir.prepare_data_dir); a directory without a database is refused here."""
        root = await asyncio.to_thread(prepare_data_dir, settings, create=False)
        await asyncio.to_thread(ensure_blob_layout, root)
        secret = await asyncio.to_thread(load_secret, settings)
        reserve = DiskReserve(root, settings.min_free_bytes, free_space_probe_from_env(),
                              ballast_bytes=settings.ballast_bytes)
        blobs = await open_blob_stores(settings, reserve, announce=announce)
        db = Database(root / DB_FILE, durability=settings.durability)
        try:
            await db.open()
        except BaseException:
            await blobs.aclose()
            raise
        # Always there, so inline blobs stay readable with storage.inline_max_bytes = 0.
        blobs.attach_inline(InlineBlobStore(db, settings.inline_max_bytes))
        return cls(settings, clock or Clock(), db, secret, blobs, reserve)

    @classmethod
    @asynccontextmanager
    async def opened(cls, settings: Settings, clock: Clock | None = None) -> AsyncIterator[Box]:
        box = await cls.open(settings, clock)
        try:
            yield box
        finally:
            await box.close()

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
        self.keys.close()
        await self.blobs.aclose()  # an S3 client's threads and sockets end before the loop
        await self.db.close()

    def month(self) -> str:
        return self.clock.month()

    def start_background(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._tasks.append(asyncio.create_task(coro))

    async def meter_loop(self, interval: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.meter.flush(self.db, self.month())
            except Exception:  # noqa: BLE001 - retried next tick
                log.exception("flushing request counters failed; will retry")
