"""A/B runs of small requests: several box configurations (and PocketBase) side by side, in
the same run, interleaved, each figure with its CPU cost per request.

    python bench/compare.py --box new --box old:src=/tmp/old-checkout --pocketbase \\
        --work upload -c 16 -c 64 --rounds 3
    python bench/compare.py --box w1:workers=1 --box w2:workers=2 \\
        --box relaxed:workers=2,durability=relaxed --pocketbase --work upload,download,list

A target is `LABEL[:key=value,...]`: `workers=N` (default 1), `durability=full|relaxed`,
`src=PATH` (run another checkout of the box: its directory comes first on the path),
`bin=PATH` (run a built single-file binary, e.g. dist/artifacta-box),
`set=section.key=value` (any further setting; repeat with `;` between them).
Works: `upload` (4 KiB multipart, unique content, bench/wrk/upload.lua), `download` (4 KiB
signed URLs / PocketBase file URLs, bench/wrk/get.lua), `list` (GET of 50-item pages with the
key, PocketBase's records list with perPage=50).

Every round runs every (work, concurrency) on every target, in a rotated order, each one
started once all servers are idle and dirty pages are flushed (run.settle). Reported per
target: requests/s, p50 and p99 latency, CPU milliseconds per request (user + system of the
server's whole process tree over the wrk run, from /proc), each the median over the rounds
(min-max), and the ratio to the first target (or to `--ref`): the ratio of the medians, and
`paired`, the median of each round's own ratio (its runs are back to back, so a neighbour's load
that slows a whole round cancels out; on a shared machine it is the steadier figure), with the
same for CPU per request. Bench-only, never part of pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import BENCH_DIR, BenchError, Proc, cpu_seconds, run_wrk  # noqa: E402
from run import rotated, settle, unique_4k  # noqa: E402
from targets import BoxServer, PocketBase, path_of  # noqa: E402

WORKS = ("upload", "download", "list")
PREPARED = 256  # artifacts uploaded before the runs: download URLs, list pages


@dataclass
class Target:
    label: str
    server: Any
    is_box: bool
    durability: str
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.server.proc.pid

    def wrk(self, work: str, stamp: str) -> tuple[str, list[str], str]:
        """(url, script args, script) for one work."""
        srv = self.server
        up, get = BENCH_DIR / "wrk" / "upload.lua", BENCH_DIR / "wrk" / "get.lua"
        if work == "upload":
            path = "/v1/artifacts" if self.is_box else "/api/collections/files/records"
            auth = srv.auth if self.is_box else srv.token
            return srv.url("/"), [path, auth, "file", "4096", f"{stamp}-{self.label}"], str(up)
        if work == "download":
            return srv.url("/"), [str(self.paths["download"])], str(get)
        auth = srv.auth if self.is_box else srv.token
        return srv.url("/"), [str(self.paths["list"]), auth], str(get)


def parse_target(spec: str, work: Path) -> Target:
    label, _, opts = spec.partition(":")
    kw: dict[str, str] = {}
    for item in filter(None, opts.split(",")):
        k, sep, v = item.partition("=")
        if not sep:
            raise SystemExit(f"--box {spec}: expected key=value, got {item!r}")
        kw[k.strip()] = v.strip()
    unknown = set(kw) - {"workers", "durability", "src", "bin", "set"}
    if unknown:
        raise SystemExit(f"--box {spec}: unknown option(s) {', '.join(sorted(unknown))}")
    durability = kw.get("durability", "full")
    extra = ""
    if durability != "full":
        extra += f'\n[storage]\ndurability = "{durability}"\n'
    for assignment in filter(None, kw.get("set", "").split(";")):
        name, _, value = assignment.partition("=")
        section, _, key = name.strip().partition(".")
        extra += f"\n[{section}]\n{key} = {value.strip()}\n"
    server = BoxServer(work, label=f"box-{label}", workers=int(kw.get("workers", "1")),
                       extra_config=extra, source=Path(kw["src"]).resolve() if "src" in kw
                       else None, binary=str(Path(kw["bin"]).resolve()) if "bin" in kw else None)
    return Target(label, server, True, durability)


def prepare(t: Target, work: Path, works: list[str]) -> None:
    srv = t.server
    downloads, lists = [], []
    for i in range(PREPARED if ("download" in works or "list" in works) else 1):
        rec = srv.upload_small(unique_4k(f"{t.label}-prep-{i}"), f"small-{i}.bin")
        if t.is_box:
            downloads.append(path_of(srv.download_url(rec["artifact_id"])))
        else:
            downloads.append(srv.file_path(rec))
    lists.append("/v1/artifacts?limit=50" if t.is_box
                 else "/api/collections/files/records?perPage=50")
    for name, lines in (("download", downloads), ("list", lists)):
        p = work / f"{t.label}-{name}.txt"
        p.write_text("\n".join(lines) + "\n")
        t.paths[name] = p


def summary(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--box", action="append", default=[], metavar="LABEL[:k=v,...]")
    ap.add_argument("--pocketbase", action="store_true", help="PocketBase as a target too")
    ap.add_argument("--work", default="upload", help=f"comma-separated: {', '.join(WORKS)}")
    ap.add_argument("-c", "--concurrency", type=int, action="append")
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ref", help="label the ratios are to (default: the first target)")
    ap.add_argument("--workdir", help="where data directories go (default: the temp dir)")
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args(argv)
    works = [w.strip() for w in args.work.split(",") if w.strip()]
    if bad := set(works) - set(WORKS):
        ap.error(f"unknown work {', '.join(sorted(bad))}")
    conc = args.concurrency or [16, 64]
    work = Path(tempfile.mkdtemp(prefix="artifacta-compare-", dir=args.workdir))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    targets = [parse_target(s, work) for s in args.box]
    if args.pocketbase:
        (work / "pb").mkdir()
        targets.append(Target("pocketbase", PocketBase(work / "pb"), False, "none"))
    if not targets:
        ap.error("no targets: give --box and/or --pocketbase")
    ref = args.ref or targets[0].label
    results: dict[tuple[str, str, int], list[dict[str, float]]] = {}
    load = [os.getloadavg()[0]]
    failed = False
    try:
        for t in targets:
            t.server.start()
            prepare(t, work, works)
        servers = [t.server for t in targets]
        for t in targets:  # warm-up: connections, caches, SQLite pages
            for w in works:
                url, wargs, script = t.wrk(w, f"{stamp}-warm")
                run_wrk(url, Path(script), wargs, 16, 1)
        for rnd in range(args.rounds):
            for w in works:
                for c in conc:
                    for t in rotated(targets, rnd):
                        settle(*servers)
                        url, wargs, script = t.wrk(w, f"{stamp}-{rnd}-{c}")
                        before = cpu_seconds(t.pid)
                        r = run_wrk(url, Path(script), wargs, c, args.seconds)
                        cpu = cpu_seconds(t.pid) - before
                        if r.errors:
                            print(f"  {t.label} {w} c{c}: {r.errors} errors, statuses "
                                  f"{r.raw.get('statuses')} {r.raw.get('first_error', '')[:200]}",
                                  flush=True)
                        ok = max(1, r.requests - r.raw["status_errors"])
                        results.setdefault((w, t.label, c), []).append(
                            {"rps": r.rps, "p50": r.p50_ms, "p99": r.p99_ms,
                             "cpu_ms": 1000 * cpu / ok})
                        print(f"  round {rnd + 1} {w:8} c{c:<3} {t.label:12} {r.rps:8,.0f} req/s "
                              f"p50 {r.p50_ms:6.1f} p99 {r.p99_ms:7.1f} ms  "
                              f"cpu {1000 * cpu / ok:.3f} ms/req", flush=True)
            load.append(os.getloadavg()[0])
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        failed = True
    finally:
        for t in targets:
            try:
                t.server.stop()
            except Exception as exc:  # noqa: BLE001 - keep stopping the others
                print(f"could not stop {t.label}: {exc}", file=sys.stderr)
        Proc.stop_all()
    if failed:
        shutil.rmtree(work, ignore_errors=True)
        return 1
    try:
        report(args, works, conc, targets, ref, results, load, stamp)
    finally:
        # after the report: removing tens of thousands of small blobs takes minutes when the
        # disk is busy
        shutil.rmtree(work, ignore_errors=True)
    return 0


def report(args: argparse.Namespace, works: list[str], conc: list[int], targets: list[Target],
           ref: str, results: dict[tuple[str, str, int], list[dict[str, float]]],
           load: list[float], stamp: str) -> None:

    print(f"\n{args.rounds} rounds x {args.seconds:g} s, load avg {min(load):.1f}-{max(load):.1f}, "
          f"ratios to {ref}; medians (min-max)")
    rows = []
    for w in works:
        for c in conc:
            base = results.get((w, ref, c))
            base_rps = statistics.median(r["rps"] for r in base) if base else None
            for t in targets:
                runs = results.get((w, t.label, c), [])
                if not runs:
                    continue
                rps, lo, hi = summary([r["rps"] for r in runs])
                paired = paired_cpu = None
                if base and len(base) == len(runs):
                    paired = statistics.median(r["rps"] / b["rps"] for r, b in zip(runs, base, strict=True))
                    paired_cpu = statistics.median(r["cpu_ms"] / b["cpu_ms"]
                                                   for r, b in zip(runs, base, strict=True))
                row = {"work": w, "c": c, "target": t.label, "durability": t.durability,
                       "rps": rps, "rps_min": lo, "rps_max": hi,
                       "p50_ms": statistics.median(r["p50"] for r in runs),
                       "p99_ms": statistics.median(r["p99"] for r in runs),
                       "cpu_ms": statistics.median(r["cpu_ms"] for r in runs),
                       "ratio": rps / base_rps if base_rps else None,
                       "paired_ratio": paired, "paired_cpu_ratio": paired_cpu, "runs": runs}
                rows.append(row)
                ratio = f"{row['ratio']:.2f}x" if row["ratio"] is not None else "-"
                pair = (f"paired {paired:.2f}x cpu {paired_cpu:.2f}x" if paired is not None
                        else "")
                print(f"{w:8} c{c:<3} {t.label:12} {t.durability:8} {rps:8,.0f} "
                      f"({lo:,.0f}-{hi:,.0f}) req/s {ratio:>6}  p50 {row['p50_ms']:6.1f} "
                      f"p99 {row['p99_ms']:7.1f} ms  cpu {row['cpu_ms']:.3f} ms/req  {pair}")
    if args.json:
        Path(args.json).write_text(json.dumps({"at": stamp, "load": load, "rows": rows},
                                              indent=2))


if __name__ == "__main__":
    t0 = time.perf_counter()
    code = main()
    print(f"({time.perf_counter() - t0:.0f} s)")
    sys.exit(code)
