"""BENCH-ONLY bulk loader: many artifacts in one tenant, written straight into a box's SQLite file.

Uploading a million artifacts through HTTP would take hours on a 2-core machine, so the list
benchmark fills the database directly, with the rows the service itself writes for an upload
(`services.artifacts.commit_new_artifact`): an `artifacts` row (state active), one
`artifact_metadata` row per metadata key (same created_at as the artifact), the `sessions` row
(artifact_count, first/last activity), and `blobs` rows whose refs/live_refs count the
artifacts pointing at them, with `tenants.storage_bytes` the sum of the distinct live blobs.
The bytes are a handful of real blobs committed through the box's own `LocalBlobStore`, so
downloads and `artifacta-box check` see a consistent store.

Never use this on a real box: it bypasses validation, quotas and the server's writer, and it
must only run while no server has the data directory open (it refuses otherwise).

    python bench/loader.py --data-dir DIR --count 1000000 [--tenant default]

Loading is incremental and deterministic: `--count N` adds rows until the tenant's loader rows
number N, continuing the same sequence (row i is created 0.25 s after row i-1; the newest row
of a full 1M load lies a minute before the first load started).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import string
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from artifacta_box.clock import iso
from artifacta_box.datadir import DB_FILE, ServerLock
from artifacta_box.db.database import connect_sync
from artifacta_box.services.validation import metadata_json
from artifacta_box.storage import LocalBlobStore

ALNUM = string.ascii_letters + string.digits
MAX_ROWS = 1_000_000            # the time axis is laid out for this many rows
STEP_US = 250_000               # 0.25 s between consecutive artifacts
SESSION_SIZE = 100              # consecutive artifacts share a session
AGENTS = 20                     # uniform agents, plus one rare agent (1 row in 10,000)
RARE_AGENT = "agent-rare"
RARE_EVERY = 10_000
FILENAMES = 20                  # x 4 extensions: 80 distinct names, >= 50 rows each from 10k up
STAGES = 5                      # metadata key `stage`: s0..s4, uniform
RUN_SIZE = 1000                 # metadata key `run`: consecutive blocks of 1000
BLOB_SIZES = (1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)
CONTENT_TYPES = (("application/json", "json"), ("text/plain", "txt"), ("text/csv", "csv"),
                 ("image/png", "png"))
BATCH = 50_000
MARK_FILE = "bench-loader.json"  # remembers the time origin so incremental loads continue it


def session_of(i: int) -> str:
    return f"sess-{i // SESSION_SIZE:06d}"


def filename_of(k: int, ext: str) -> str:
    return f"file-{k:04d}.{ext}"


def agent_of(i: int, rng: random.Random) -> str:
    return RARE_AGENT if i % RARE_EVERY == RARE_EVERY // 2 else f"agent-{rng.randrange(AGENTS):02d}"


def created_at(origin_us: int, i: int) -> str:
    return iso(datetime.fromtimestamp(0, UTC) + timedelta(microseconds=origin_us + i * STEP_US))


async def _make_blobs(root: Path, tenant_id: int, seed: int) -> list[tuple[str, int]]:
    """A few real blobs through the box's own blob store (staging, fsync, link)."""
    store = LocalBlobStore(root)
    store.prepare()
    rng = random.Random(seed)
    out = []
    for size in BLOB_SIZES:
        staging = store.writer(tenant_id, size)
        await staging.write(rng.randbytes(size))
        staged = await staging.finish()
        await store.place(staged)
        await store.release(staged)
        out.append((staged.sha256, staged.size))
    return out


def load(data_dir: Path, count: int, tenant: str = "default", seed: int = 1,
         progress: bool = True) -> dict:
    """Add loader rows to `tenant` until it has `count` of them. Returns a summary (including
    the values the list benchmark queries with)."""
    if count > MAX_ROWS:
        raise SystemExit(f"--count is at most {MAX_ROWS}")
    if ServerLock(data_dir).is_held_elsewhere():
        raise SystemExit(f"{data_dir} is in use by a running artifacta-box serve; stop it first")
    db = connect_sync(data_dir / DB_FILE)
    try:
        row = db.execute("SELECT tenant_id FROM tenants WHERE name = ?", (tenant,)).fetchone()
        if row is None:
            raise SystemExit(f"tenant {tenant!r} does not exist in {data_dir}")
        tenant_id = row["tenant_id"]
        mark_path = data_dir / MARK_FILE
        if mark_path.exists():
            mark = json.loads(mark_path.read_text())
        else:
            start_us = int(time.time() * 1e6) - 60_000_000 - MAX_ROWS * STEP_US
            blobs = asyncio.run(_make_blobs(data_dir, tenant_id, seed))
            mark = {"tenant_id": tenant_id, "origin_us": start_us, "loaded": 0, "seed": seed,
                    "blobs": blobs}
        blobs = [tuple(b) for b in mark["blobs"]]
        origin_us = mark["origin_us"]
        loaded = mark["loaded"]
        if count <= loaded:
            return summary(mark, count)
        # Bench-only speed-ups for the bulk insert; the box sets its own pragmas on open.
        db.execute("PRAGMA synchronous = OFF")
        db.execute("PRAGMA cache_size = -1000000")
        far_future = iso(datetime.now(UTC) + timedelta(days=3650))
        started = time.perf_counter()
        i = loaded
        while i < count:
            end = min(count, i + BATCH)
            rng = random.Random(f"{seed}:{i}")
            arts, metas = [], []
            sessions: dict[str, list] = {}
            refs: Counter[int] = Counter()
            for j in range(i, end):
                created = created_at(origin_us, j)
                aid = "art_" + "".join(rng.choices(ALNUM, k=16))
                ctype, ext = CONTENT_TYPES[rng.randrange(len(CONTENT_TYPES))]
                fname = filename_of(rng.randrange(FILENAMES), ext)
                agent = agent_of(j, rng)
                sess = session_of(j)
                meta = {"stage": f"s{rng.randrange(STAGES)}", "run": f"r{j // RUN_SIZE:05d}"}
                b = rng.randrange(len(blobs))
                refs[b] += 1
                sha, size = blobs[b]
                expires = None if rng.random() < 0.5 else far_future
                arts.append((aid, tenant_id, fname, ctype, size, sha, sess, agent,
                             metadata_json(meta), created, expires))
                metas.extend((tenant_id, k, v, created, aid) for k, v in meta.items())
                s = sessions.setdefault(sess, [0, created, created])
                s[0] += 1
                s[2] = created
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(
                    "INSERT INTO artifacts (artifact_id, tenant_id, state, filename, content_type, "
                    "size_bytes, content_hash, session_id, agent_id, metadata, created_at, "
                    "expires_at) VALUES (?, ?, 'active', ?, ?, ?, ?, ?, ?, ?, ?, ?)", arts)
                db.executemany(
                    "INSERT INTO artifact_metadata (tenant_id, key, value, created_at, artifact_id) "
                    "VALUES (?, ?, ?, ?, ?)", metas)
                db.executemany(
                    "INSERT INTO sessions (tenant_id, session_id, artifact_count, created_at, "
                    "first_artifact_at, last_artifact_at) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (tenant_id, session_id) DO UPDATE SET "
                    "artifact_count = artifact_count + excluded.artifact_count, "
                    "last_artifact_at = excluded.last_artifact_at",
                    [(tenant_id, sid, c, first, first, last)
                     for sid, (c, first, last) in sessions.items()])
                now_iso = iso(datetime.now(UTC))
                for b, c in refs.items():
                    sha, size = blobs[b]
                    live = db.execute(
                        "SELECT live_refs FROM blobs WHERE tenant_id = ? AND sha256 = ?",
                        (tenant_id, sha)).fetchone()
                    if live is None:
                        db.execute(
                            "INSERT INTO blobs (tenant_id, sha256, size_bytes, refs, live_refs, "
                            "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                            (tenant_id, sha, size, c, c, now_iso))
                    else:
                        db.execute(
                            "UPDATE blobs SET refs = refs + ?, live_refs = live_refs + ?, "
                            "unreferenced_at = NULL WHERE tenant_id = ? AND sha256 = ?",
                            (c, c, tenant_id, sha))
                    if live is None or live["live_refs"] == 0:
                        db.execute("UPDATE tenants SET storage_bytes = storage_bytes + ? "
                                   "WHERE tenant_id = ?", (size, tenant_id))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            i = end
            mark["loaded"] = i
            mark_path.write_text(json.dumps(mark))
            if progress:
                rate = (i - loaded) / (time.perf_counter() - started)
                print(f"  loader: {i:,} artifacts ({rate:,.0f}/s)", file=sys.stderr, flush=True)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return summary(mark, count)
    finally:
        db.close()


def summary(mark: dict, count: int) -> dict:
    """What was loaded, and query values that exercise each filter at this size."""
    origin_us = mark["origin_us"]
    middle = count // 2
    return {
        "tenant_id": mark["tenant_id"],
        "count": count,
        "newest_created_at": created_at(origin_us, count - 1),
        "queries": {
            "session_id": session_of(middle),
            "agent_id": "agent-07",
            "filename": filename_of(17, "csv"),
            "content_type": "text/csv",
            "metadata": ("stage", "s2"),
            "created_after": created_at(origin_us, middle),
            "created_before": created_at(origin_us, middle),
            "rare_agent": RARE_AGENT,
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description="Bench-only bulk loader (see module docstring).")
    ap.add_argument("--data-dir", required=True, type=Path)
    ap.add_argument("--count", required=True, type=int)
    ap.add_argument("--tenant", default="default")
    args = ap.parse_args()
    print(json.dumps(load(args.data_dir, args.count, args.tenant), indent=2))


if __name__ == "__main__":
    main()
