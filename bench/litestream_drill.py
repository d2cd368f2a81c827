#!/usr/bin/env python3
"""Recovery point and recovery time of the box under Litestream (packaging/litestream.yml,
sync-interval 1 s), against a real SeaweedFS. Never part of pytest.

    python bench/litestream_drill.py               # 5 drills of each kind
    python bench/litestream_drill.py --runs 3 --rows 1000000

Recovery point (RPO): one client uploads small artifacts back to back, noting when each was
acknowledged; after a few seconds either the box alone is killed -9 (a box crash: Litestream
stays alive, ships the WAL, exits) or Litestream and the box together (host loss). The replica
is restored with `litestream restore -o`, and every acknowledged artifact missing from it is a
loss; the RPO is the time from the oldest lost acknowledgement to the kill.

Recovery time (RTO): `litestream restore` of the drill database and of a database holding
--rows artifacts (written by bench/loader.py, replicated with `litestream replicate -once`), and
the whole recovery of a wiped host: `litestream replicate -restore-if-db-not-exists -exec
"artifacta-box serve"` to the first 200 from /health, next to a plain start on an existing
database.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402

from tests.litestream_box import LITESTREAM_CONFIG, LitestreamBox, litestream_binary  # noqa: E402
from tests.s3_server import SeaweedFS  # noqa: E402


class Uploader(threading.Thread):
    """Back-to-back small uploads; records (artifact_id, acknowledged at) until stopped."""

    def __init__(self, box: LitestreamBox) -> None:
        super().__init__(daemon=True)
        self.box = box
        self.acks: list[tuple[str, float]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        with self.box.client() as api:
            i = 0
            while not self.stopping.is_set():
                try:
                    r = api.post("/v1/artifacts", files={"file": (f"r{i}", os.urandom(512))})
                except httpx.HTTPError:
                    return  # the box was killed
                if r.status_code == 201:
                    self.acks.append((r.json()["artifact_id"], time.monotonic()))
                i += 1


def restored_ids(db: Path) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        return {r[0] for r in conn.execute("SELECT artifact_id FROM artifacts")}
    finally:
        conn.close()


def drill(weed: SeaweedFS, bucket: str, root: Path, host_loss: bool, seconds: float) -> dict:
    box = LitestreamBox(root, weed, bucket, replica_path=f"drill/{root.name}").start()
    uploader = Uploader(box)
    uploader.start()
    time.sleep(seconds)  # the load runs this long before the crash
    killed_at = time.monotonic()
    if host_loss:
        os.killpg(box.proc.pid, signal.SIGKILL)
    else:
        os.kill(box.box_pid(), signal.SIGKILL)
    box.proc.wait(60)
    uploader.stopping.set()
    uploader.join(30)
    restore_s = box.restore_to(root / "restored.db")
    present = restored_ids(root / "restored.db")
    lost = [(a, t) for a, t in uploader.acks if a not in present]
    box.kill()
    return {"acknowledged": len(uploader.acks), "lost": len(lost),
            "rpo_s": killed_at - min(t for _, t in lost) if lost else 0.0,
            "restore_s": restore_s, "db_bytes": (root / "restored.db").stat().st_size}


def recovery_time(weed: SeaweedFS, bucket: str, root: Path) -> dict:
    """A wiped host recovered by the unit's own command, vs a plain start."""
    box = LitestreamBox(root, weed, bucket, replica_path=f"rto/{root.name}").start()
    with box.client() as api:
        for i in range(200):
            api.post("/v1/artifacts", files={"file": (f"t{i}", os.urandom(256))})
    box.sync()
    box.stop()
    began = time.perf_counter()
    box.start()
    plain = time.perf_counter() - began
    box.lose_host()
    began = time.perf_counter()
    box.start()
    recovered = time.perf_counter() - began
    box.stop()
    return {"start_existing_db_s": plain, "restore_and_serve_s": recovered}


def big_restore(weed: SeaweedFS, bucket: str, root: Path, rows: int) -> dict:
    import loader  # bench/loader.py

    data = root / "data"
    subprocess.run([sys.executable, "-m", "artifacta_box", "tenants", "create", "default",
                    "--data-dir", str(data)], check=True, capture_output=True)
    began = time.perf_counter()
    loader.load(data, rows, progress=False)
    load_s = time.perf_counter() - began
    box = LitestreamBox(root, weed, bucket, replica_path=f"big/{root.name}")
    res = subprocess.run([litestream_binary(), "replicate", "-config", str(LITESTREAM_CONFIG),
                          "-once"], capture_output=True, text=True, env=box.env, timeout=1800)
    assert res.returncode == 0, res.stderr
    restore_s = box.restore_to(root / "restored.db")
    return {"rows": rows, "db_bytes": (data / "artifacta.db").stat().st_size, "load_s": load_s,
            "restore_s": restore_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=4.0, help="load before each crash")
    ap.add_argument("--rows", type=int, default=100_000, help="artifacts in the big restore")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="litestream-drill-"))
    weed = SeaweedFS(root / "weed").start()
    weed.create_bucket("drill")
    out: dict = {"box_crash": [], "host_loss": []}
    try:
        for run in range(args.runs):
            for kind in ("box_crash", "host_loss"):
                out[kind].append(drill(weed, "drill", root / f"{kind}-{run}",
                                       kind == "host_loss", args.seconds))
                print(kind, run, out[kind][-1], flush=True)
        out["recovery"] = recovery_time(weed, "drill", root / "rto")
        print("recovery", out["recovery"], flush=True)
        if args.rows:
            out["big_restore"] = big_restore(weed, "drill", root / "big", args.rows)
            print("big restore", out["big_restore"], flush=True)
    finally:
        weed.stop()
        shutil.rmtree(root, ignore_errors=True)
    for kind in ("box_crash", "host_loss"):
        runs = out[kind]
        print(f"{kind}: lost {[r['lost'] for r in runs]} of {[r['acknowledged'] for r in runs]} "
              f"acknowledged; RPO median {statistics.median(r['rpo_s'] for r in runs):.2f} s "
              f"(max {max(r['rpo_s'] for r in runs):.2f} s); restore "
              f"{statistics.median(r['restore_s'] for r in runs):.2f} s")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
