#!/usr/bin/env python3
"""The box's S3 client (artifacta_box.storage.s3) against `curl` straight to the same SeaweedFS:
1 GiB up and down, interleaved run by run, same process, same store.

    python bench/s3_client.py                 # 1 GiB, 3 runs of each
    python bench/s3_client.py --mib 256 --runs 5
    python bench/s3_client.py --shapes 8x2,16x2,16x3   # uploads with other part MiB x in flight

Per figure: the median MB/s and client CPU-seconds per GiB (min-max over the runs), the
client/curl throughput ratio, and SeaweedFS's own CPU-seconds per GiB. Uploads: the client
streams 1 MiB writes through ObjectWriter (its default parts, 8 MiB with CRC32 checksums, 2 in
flight, plus the content hash; --shapes adds client_put_<MiB>x<in flight> rows), curl PUTs the file to a presigned URL. Downloads: ObjectReader in
1 MiB chunks, curl GET of a presigned URL to /dev/null. Never part of pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from artifacta_box.storage.s3 import ObjectWriter, S3Client  # noqa: E402
from tests.s3_server import SeaweedFS  # noqa: E402

MiB = 1024 * 1024


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def client_put(client: S3Client, key: str, block: bytes, mib: int,
                     shape: tuple[int, int] | None = None) -> None:
    options = {} if shape is None else {"part_size": shape[0] * MiB, "max_in_flight": shape[1]}
    writer = ObjectWriter(client, key, 5 * 10**9, **options)
    for _ in range(mib):
        await writer.write(block)
    await writer.finish()


async def client_get(client: S3Client, key: str) -> int:
    n = 0
    reader = await client.open_read(key)
    async with reader:
        async for chunk in reader:
            n += len(chunk)
    return n


def curl(args: list[str]) -> None:
    subprocess.run(["curl", "-sS", "-o", "/dev/null", "--fail", *args], check=True)


def measure(fn, weed_pid: int, nbytes: int, cpu=self_cpu) -> dict:
    c0, w0, t0 = cpu(), proc_cpu(weed_pid), time.perf_counter()
    fn()
    elapsed = time.perf_counter() - t0
    gib = nbytes / 2**30
    return {"mb_s": nbytes / elapsed / 1e6, "cpu_s_per_gib": (cpu() - c0) / gib,
            "store_cpu_s_per_gib": (proc_cpu(weed_pid) - w0) / gib}


def summary(runs: list[dict]) -> dict:
    out = {}
    for k in runs[0]:
        values = [r[k] for r in runs]
        out[k] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--shapes", default="", help="extra uploads: PART_MiBxIN_FLIGHT,...")
    args = ap.parse_args()
    shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes.split(",") if s]
    nbytes = args.mib * MiB
    root = Path(tempfile.mkdtemp(prefix="s3bench-"))
    weed = SeaweedFS(root / "weed").start()
    weed.create_bucket("bench")
    settings = weed.settings("bench")
    source = root / "body.bin"
    block = os.urandom(MiB)
    with open(source, "wb") as fh:
        for _ in range(args.mib):
            fh.write(block)
    results: dict[str, list[dict]] = {k: [] for k in ("client_put", "curl_put", "client_get", "curl_get")}
    for part, flight in shapes:
        results[f"client_put_{part}x{flight}"] = []
    loop = asyncio.new_event_loop()
    client = S3Client(settings)
    try:
        for run in range(args.runs):
            order = ["client", "curl", *shapes]
            if run % 2:
                order.reverse()
            for who in order:
                if isinstance(who, tuple):
                    key = f"shape-{run}"
                    results[f"client_put_{who[0]}x{who[1]}"].append(measure(
                        lambda k=key, w=who: loop.run_until_complete(
                            client_put(client, k, block, args.mib, w)), weed.proc.pid, nbytes))
                    loop.run_until_complete(client.delete(key))
                    continue
                key = f"{who}-{run}"
                if who == "client":
                    results["client_put"].append(measure(
                        lambda k=key: loop.run_until_complete(client_put(client, k, block, args.mib)),
                        weed.proc.pid, nbytes))
                    results["client_get"].append(measure(
                        lambda k=key: loop.run_until_complete(client_get(client, k)),
                        weed.proc.pid, nbytes))
                else:
                    put = client.presign_put(key, 600, content_length=nbytes)
                    results["curl_put"].append(measure(
                        lambda p=put: curl(["-T", str(source), *sum((["-H", f"{h}: {v}"] for h, v in p.headers.items()), []), p.url]),
                        weed.proc.pid, nbytes, children_cpu))
                    url = client.presign_get(key, 600)
                    results["curl_get"].append(measure(lambda u=url: curl([u]), weed.proc.pid,
                                                       nbytes, children_cpu))
                loop.run_until_complete(client.delete(key))
    finally:
        loop.run_until_complete(client.aclose())
        loop.close()
        weed.stop()
        shutil.rmtree(root, ignore_errors=True)  # the body, the store's volumes (GBs)
    table = {k: summary(v) for k, v in results.items()}
    print(f"S3 client vs curl, {args.mib} MiB, {args.runs} interleaved runs, SeaweedFS weed mini")
    print(f"{'':18} {'MB/s':>22} {'client CPU-s/GiB':>22} {'store CPU-s/GiB':>18}")
    for k, s in table.items():
        def fmt(x, p=0):
            return f"{x['median']:.{p}f} ({x['min']:.{p}f}-{x['max']:.{p}f})"
        print(f"{k:18} {fmt(s['mb_s']):>22} {fmt(s['cpu_s_per_gib'], 2):>22} "
              f"{fmt(s['store_cpu_s_per_gib'], 1):>18}")
    for op in ("put", "get"):
        ratio = table[f"client_{op}"]["mb_s"]["median"] / table[f"curl_{op}"]["mb_s"]["median"]
        print(f"{op}: client/curl throughput {ratio:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"mib": args.mib, "runs": args.runs, "results": results,
                                         "summary": table}, indent=2))


if __name__ == "__main__":
    main()
