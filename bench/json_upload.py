#!/usr/bin/env python3
"""JSON base64 uploads (`POST /v1/artifacts`, `{"content": "<base64>"}`): this tree against
another source tree of the box (e.g. main, where the body was read whole and then parsed).

    python bench/json_upload.py --peer /path/to/other/checkout [--mib 9] [--uploads 10] [--runs 3]

Each run starts one real server per tree (same machine, same Python, its own data directory),
alternating box and peer, and posts `--uploads` uploads of `--mib` MiB (decoded) one after the
other with Content-Length. Reported per tree, median over runs: MB/s of decoded content, server
CPU seconds per GiB, and the server's peak RSS growth from before its first upload (VmHWM),
with ratios box/peer. Never part of the pytest run.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.helpers import BoxServer  # noqa: E402

CONFIG = """
[plans.selfhosted]
max_json_size = "64MB"
rate_burst = 10000
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def one_run(tree: Path, body: bytes, decoded: int, uploads: int) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tree)  # `python -m artifacta_box` imports from the working directory first
        srv = BoxServer(Path(tmp) / "box", config=CONFIG, env={"PYTHONPATH": str(tree)}).start()
        try:
            pid = srv.proc.pid
            with srv.client() as c:
                # Peak RSS from before the first upload: memory freed after one upload stays in
                # the allocator's free lists, so a baseline taken after one would hide it.
                before = status_kib(pid, "VmRSS")
                Path(f"/proc/{pid}/clear_refs").write_text("5")
                warm = c.post("/v1/artifacts", content=body, headers={"Content-Type": "application/json"})
                assert warm.status_code == 201, warm.text
                cpu0, t0 = cpu_seconds(pid), time.perf_counter()
                for _ in range(uploads):
                    r = c.post("/v1/artifacts", content=body,
                               headers={"Content-Type": "application/json"})
                    assert r.status_code in (200, 201), r.text
                wall, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
                peak = status_kib(pid, "VmHWM") - before
        finally:
            srv.stop()
    total = decoded * uploads
    return total / wall / 1e6, cpu / (total / 2**30), peak / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peer", type=Path, required=True, help="another checkout of the box")
    ap.add_argument("--mib", type=int, default=9)
    ap.add_argument("--uploads", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    here = Path(__file__).resolve().parent.parent
    decoded = args.mib * 2**20
    # Distinct content per run is not needed: dedup does not skip hashing or writing.
    body = json.dumps({"filename": "bench.bin",
                       "content": base64.b64encode(os.urandom(decoded)).decode()}).encode()
    results: dict[str, list[tuple[float, float, float]]] = {"box": [], "peer": []}
    for _ in range(args.runs):
        for name, tree in (("box", here), ("peer", args.peer.resolve())):
            results[name].append(one_run(tree, body, decoded, args.uploads))
    med = {name: [statistics.median(r[i] for r in rows) for i in range(3)]
           for name, rows in results.items()}
    print(f"load: {os.getloadavg()[0]:.2f}  ({args.runs} runs x {args.uploads} uploads of "
          f"{args.mib} MiB decoded, medians)")
    print(f"{'':6} {'MB/s':>8} {'CPU-s/GiB':>10} {'peak RSS +MB':>13}")
    for name in ("box", "peer"):
        mbs, cpu, peak = med[name]
        print(f"{name:6} {mbs:8.1f} {cpu:10.2f} {peak:13.1f}")
    b, p = med["box"], med["peer"]
    print(f"{'ratio':6} {b[0] / p[0]:8.2f} {b[1] / p[1]:10.2f} {b[2] / max(p[2], 0.1):13.2f}")


if __name__ == "__main__":
    main()
