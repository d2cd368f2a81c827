#!/usr/bin/env python3
"""The box on S3 against `curl` straight to the same SeaweedFS: 1 GiB up and down, interleaved
run by run, one store, the box as a real `artifacta-box serve` process.

    python bench/s3_box.py                  # 1 GiB, 3 runs of each
    python bench/s3_box.py --mib 256 --runs 5
    python bench/s3_box.py --rss-gb 5       # plus the RSS of a 5 GB presigned upload and download
    python bench/s3_box.py --layout separated   # only the store-on-its-own-CPU layout
    python bench/s3_box.py --base-src /tmp/base # plus base_upload / base_proxy_get rows: another
                                                # checkout's proxied box, in the same runs (A/B)

What runs (curl is the client every time, so client CPU is the same; the figures are the box's):

  curl_put        curl PUT of the body to a presigned S3 URL (the store's ceiling)
  box_upload      curl -F of the body to POST /v1/artifacts: the box streams it to S3 (proxy)
  box_presigned   upload-url, curl PUT straight to S3, complete (the box reads the object back
                  and hashes it): the time of all three
  curl_get        curl GET of a presigned S3 URL
  box_proxy_get   curl GET of the box's /d/ URL, streamed from S3 by the box
  box_redirect    curl -L of /d/ on a box with s3.downloads = "redirect": 302, then the store

Two layouts, interleaved run by run (`--layout cohosted,separated`, the default, measures both):

  cohosted    store, box and curl share every CPU of this machine (what a laptop does)
  separated   the store pinned to the last CPU, the box and curl to the others (every thread of
              each process, by sched_setaffinity; the pinning is read back from
              /proc/<pid>/status and printed): the deployment the S3 backend is for, a store on
              hosts of its own, approximated on one machine so neither starves the other

Per figure: median MB/s (min-max), the box's and the store's CPU-seconds per GiB (their process
trees, from /proc), the ratio to curl's own figure of the same run and layout. With --rss-gb: the box's peak RSS (VmHWM) before
and after a presigned upload of that size (complete streams it back) and a proxied download of
it. Never part of pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from artifacta_box.storage.s3 import S3Client  # noqa: E402
from tests.helpers import BoxServer  # noqa: E402
from tests.s3_server import ADMIN, REGION, SeaweedFS  # noqa: E402

MiB = 1024 * 1024
CONFIG = """
[plans.selfhosted]
max_multipart_size = "8GiB"
max_presigned_size = "8GiB"
storage_bytes = "100GiB"

[logging]
access_log = false
"""


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """pid and every descendant (the box's worker processes, if any)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def tree_cpu(pid: int) -> float:
    total = 0.0
    for p in tree(pid):
        try:
            total += proc_cpu(p)
        except OSError:  # exited meanwhile
            pass
    return total


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of pid and of its descendants onto cpus (threads made later inherit it)."""
    for p in tree(pid):
        for task in Path(f"/proc/{p}/task").iterdir():
            try:
                os.sched_setaffinity(int(task.name), cpus)
            except (ProcessLookupError, OSError):
                pass


def cpus_allowed(pid: int) -> str:
    """Cpus_allowed_list of every thread of pid and its descendants, as "<list> (<n> threads)";
    threads that disagree are all listed, so a pinning that missed one shows."""
    seen: dict[str, int] = {}
    for p in tree(pid):
        for task in Path(f"/proc/{p}/task").iterdir():
            try:
                status = (task / "status").read_text()
            except OSError:  # exited meanwhile
                continue
            for line in status.splitlines():
                if line.startswith("Cpus_allowed_list:"):
                    cpus = line.split(":", 1)[1].strip()
                    seen[cpus] = seen.get(cpus, 0) + 1
    if not seen:
        raise RuntimeError(f"no Cpus_allowed_list for {pid}")
    return " + ".join(f"{cpus} ({n} threads)" for cpus, n in sorted(seen.items()))


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def curl(*args: str) -> None:
    subprocess.run(["curl", "-sS", "-o", "/dev/null", "--fail", *args], check=True)


def box_env(weed: SeaweedFS, bucket: str, **extra: str) -> dict[str, str]:
    env = {"ARTIFACTA_BOX_STORAGE_BACKEND": "s3", "ARTIFACTA_BOX_S3_ENDPOINT": weed.endpoint,
           "ARTIFACTA_BOX_S3_BUCKET": bucket, "ARTIFACTA_BOX_S3_REGION": REGION,
           "ARTIFACTA_BOX_S3_ACCESS_KEY_ID": ADMIN[0],
           "ARTIFACTA_BOX_S3_SECRET_ACCESS_KEY": ADMIN[1]}
    env.update({f"ARTIFACTA_BOX_S3_{k.upper()}": v for k, v in extra.items()})
    return env


def measure(fn, pid: int, store_pid: int, nbytes: int) -> dict:
    c0, s0, t0 = tree_cpu(pid), tree_cpu(store_pid), time.perf_counter()
    fn()
    elapsed = time.perf_counter() - t0
    gib = nbytes / 2**30
    return {"mb_s": nbytes / elapsed / 1e6, "box_cpu_s_per_gib": (tree_cpu(pid) - c0) / gib,
            "store_cpu_s_per_gib": (tree_cpu(store_pid) - s0) / gib}


class Bench:
    def __init__(self, box: BoxServer, redirect: BoxServer, client: S3Client, source: Path,
                 nbytes: int) -> None:
        self.box, self.redirect, self.client = box, redirect, client
        self.source, self.nbytes = source, nbytes
        self.api = httpx.Client(base_url=box.url, timeout=3600,
                                headers={"Authorization": f"Bearer {box.key}"})
        self.rapi = httpx.Client(base_url=redirect.url, timeout=3600,
                                 headers={"Authorization": f"Bearer {redirect.key}"})

    def curl_put(self, key: str) -> None:
        put = self.client.presign_put(key, 3600, content_length=self.nbytes)
        curl("-T", str(self.source), *sum((["-H", f"{h}: {v}"] for h, v in put.headers.items()),
                                          []), put.url)

    def curl_get(self, key: str) -> None:
        curl(self.client.presign_get(key, 3600))

    def box_upload(self, box: BoxServer | None = None) -> str:
        box = box or self.box
        out = subprocess.run(["curl", "-sS", "--fail", "-H", f"Authorization: Bearer {box.key}",
                              "-F", f"file=@{self.source}", f"{box.url}/v1/artifacts"],
                             check=True, capture_output=True, text=True)
        return json.loads(out.stdout)["artifact_id"]

    def box_presigned(self, api: httpx.Client) -> str:
        res = api.post("/v1/artifacts/upload-url",
                       json={"filename": "big.bin", "size_bytes": self.nbytes}).json()
        curl("-T", str(self.source), *sum((["-H", f"{h}: {v}"] for h, v in res["upload_headers"].items()), []),
             res["upload_url"])
        done = api.post(f"/v1/artifacts/{res['artifact_id']}/complete")
        assert done.status_code == 200, done.text
        return res["artifact_id"]

    def download_url(self, api: httpx.Client, artifact_id: str) -> str:
        return api.get(f"/v1/artifacts/{artifact_id}/download-url").json()["download_url"]

    def delete(self, api: httpx.Client, artifact_id: str) -> None:
        assert api.delete(f"/v1/artifacts/{artifact_id}").status_code == 200


def summary(runs: list[dict]) -> dict:
    return {k: {"median": statistics.median(r[k] for r in runs), "min": min(r[k] for r in runs),
                "max": max(r[k] for r in runs)} for k in runs[0]}


LAYOUTS = ("cohosted", "separated")
WORK = ("curl_put", "box_upload", "box_presigned", "curl_get", "box_proxy_get", "box_redirect")
UPLOADS = ("curl_put", "box_upload", "box_presigned", "base_upload")
BASE = ("base_upload", "base_proxy_get")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--layout", default=",".join(LAYOUTS),
                    help="comma-separated: cohosted, separated (default both, interleaved)")
    ap.add_argument("--base-src", type=Path,
                    help="another checkout (e.g. `git archive <commit> | tar -x -C DIR`): its "
                         "proxied box is measured in the same runs as base_upload/base_proxy_get")
    ap.add_argument("--rss-gb", type=float, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    layouts = [x.strip() for x in args.layout.split(",") if x.strip()]
    if not layouts or any(x not in LAYOUTS for x in layouts):
        ap.error(f"--layout: one or more of {', '.join(LAYOUTS)}")
    every_cpu = os.sched_getaffinity(0)
    if "separated" in layouts and len(every_cpu) < 2:
        ap.error("--layout separated needs at least 2 CPUs")
    store_cpus = {max(every_cpu)}
    box_cpus = every_cpu - store_cpus
    root = Path(tempfile.mkdtemp(prefix="s3boxbench-"))
    weed = SeaweedFS(root / "weed").start()
    for bucket in ("bench", "bench-redirect"):
        weed.create_bucket(bucket)
    box = BoxServer(root / "box", config=CONFIG, env=box_env(weed, "bench"))
    redirect = BoxServer(root / "redirect", config=CONFIG,
                         env=box_env(weed, "bench-redirect", downloads="redirect"))
    base = None
    if args.base_src:
        # PYTHONSAFEPATH: `python -m` would put the current directory (this checkout) first on
        # the path, ahead of PYTHONPATH, and the base box would silently run this code.
        base = BoxServer(root / "base", config=CONFIG,
                         env={**box_env(weed, "bench"), "PYTHONPATH": str(args.base_src.resolve()),
                              "PYTHONSAFEPATH": "1"})
    client = S3Client(weed.settings("bench"))
    work = WORK + (BASE if base else ())
    results: dict[str, dict[str, list[dict]]] = {lay: {k: [] for k in work} for lay in layouts}
    pinning: dict[str, dict[str, str]] = {}
    rss: dict[str, float] = {}
    loop = asyncio.new_event_loop()
    try:
        box.start()
        redirect.start()
        if base:
            base.start()
        def body(path: Path, mib: int) -> None:
            block = os.urandom(MiB)
            with open(path, "wb") as fh:
                for _ in range(mib):
                    fh.write(block)

        source = root / "body.bin"
        nbytes = args.mib * MiB
        body(source, args.mib)
        b = Bench(box, redirect, client, source, nbytes)
        if base:
            b.base_api = httpx.Client(base_url=base.url, timeout=3600,
                                      headers={"Authorization": f"Bearer {base.key}"})
        pid, rpid, spid = box.proc.pid, redirect.proc.pid, weed.proc.pid
        bpid = base.proc.pid if base else None

        def place(layout: str) -> None:
            """curl (a child of this process) inherits this thread's affinity."""
            store, boxes = (store_cpus, box_cpus) if layout == "separated" else (every_cpu, every_cpu)
            pin(spid, store)
            pin(pid, boxes)
            pin(rpid, boxes)
            if bpid:
                pin(bpid, boxes)
            os.sched_setaffinity(0, boxes)

        def read_back(layout: str) -> None:
            """After the layout's runs: threads started meanwhile inherit it, which this shows."""
            pinning[layout] = {"store": cpus_allowed(spid), "box": cpus_allowed(pid),
                               "box_redirect": cpus_allowed(rpid),
                               **({"base": cpus_allowed(bpid)} if bpid else {}),
                               "curl": ",".join(map(str, sorted(os.sched_getaffinity(0))))}

        for run in range(args.runs):
            order = layouts[run % len(layouts):] + layouts[:run % len(layouts)]
            for layout in order:
                place(layout)
                res = results[layout]
                key = f"curl-{run}-{layout}"
                steps = [
                    ("curl_put", lambda k=key: b.curl_put(k), pid),
                    ("box_upload", None, pid),
                    ("box_presigned", None, rpid),
                    ("curl_get", lambda k=key: b.curl_get(k), pid),
                    ("box_proxy_get", None, pid),
                    ("box_redirect", None, rpid),
                ]
                if base:
                    steps[2:2] = [("base_upload", None, bpid)]
                    steps.append(("base_proxy_get", None, bpid))
                if run % 2:  # interleaved: every other run in the reverse order
                    half = len(steps) // 2
                    steps = list(reversed(steps[:half])) + list(reversed(steps[half:]))
                ids: dict[str, str] = {}
                # uploads before the downloads that need them, interleaved order within each half
                for name, fn, p in [s for s in steps if s[0] in UPLOADS]:
                    if name == "box_upload":
                        holder: dict[str, str] = {}
                        res[name].append(measure(lambda h=holder: h.update(a=b.box_upload()), p, spid, nbytes))
                        ids["proxy"] = holder["a"]
                    elif name == "box_presigned":
                        holder = {}
                        res[name].append(measure(lambda h=holder: h.update(a=b.box_presigned(b.rapi)), p, spid, nbytes))
                        ids["redirect"] = holder["a"]
                    elif name == "base_upload":
                        holder = {}
                        res[name].append(measure(lambda h=holder: h.update(a=b.box_upload(base)), p, spid, nbytes))
                        ids["base"] = holder["a"]
                    else:
                        res[name].append(measure(fn, p, spid, nbytes))
                for name, fn, p in [s for s in steps if s[0] not in UPLOADS]:
                    if name == "box_proxy_get":
                        url = b.download_url(b.api, ids["proxy"])
                        res[name].append(measure(lambda u=url: curl(u), p, spid, nbytes))
                    elif name == "box_redirect":
                        url = b.download_url(b.rapi, ids["redirect"])
                        res[name].append(measure(lambda u=url: curl("-L", u), p, spid, nbytes))
                    elif name == "base_proxy_get":
                        url = b.download_url(b.base_api, ids["base"])
                        res[name].append(measure(lambda u=url: curl(u), p, spid, nbytes))
                    else:
                        res[name].append(measure(fn, p, spid, nbytes))
                b.delete(b.api, ids["proxy"])
                b.delete(b.rapi, ids["redirect"])
                if base:
                    b.delete(b.base_api, ids["base"])
                loop.run_until_complete(client.delete(key))
                read_back(layout)
        place("cohosted")
        if args.rss_gb:
            big = root / "big.bin"
            big_mib = int(args.rss_gb * 1e9 / MiB)
            body(big, big_mib)
            source.unlink()
            b.source, b.nbytes = big, big_mib * MiB
            rss["baseline_mb"] = peak_rss_mb(pid)
            aid = b.box_presigned(b.api)
            rss["after_presigned_mb"] = peak_rss_mb(pid)
            curl(b.download_url(b.api, aid))
            rss["after_download_mb"] = peak_rss_mb(pid)
            rss["gb"] = args.rss_gb
    finally:
        os.sched_setaffinity(0, every_cpu)
        loop.run_until_complete(client.aclose())
        loop.close()
        box.stop()
        redirect.stop()
        if base:
            base.stop()
        weed.stop()
        shutil.rmtree(root, ignore_errors=True)
    tables = {lay: {k: summary(v) for k, v in res.items()} for lay, res in results.items()}
    print(f"box on S3 vs curl to S3, {args.mib} MiB, {args.runs} interleaved runs per layout, "
          f"SeaweedFS weed mini, {len(every_cpu)} CPUs")

    def fmt(x, p=0):
        return f"{x['median']:.{p}f} ({x['min']:.{p}f}-{x['max']:.{p}f})"

    for layout, table in tables.items():
        pins = pinning[layout]
        print(f"\n{layout}: Cpus_allowed_list read back after the runs: store {pins['store']}, "
              f"box {pins['box']}, redirect box {pins['box_redirect']}, curl {pins['curl']}"
              + (f", base box {pins['base']}" if "base" in pins else ""))
        print(f"{'':14} {'MB/s':>22} {'box CPU-s/GiB':>20} {'store CPU-s/GiB':>20} {'vs curl':>8}")
        for k, s in table.items():
            base = table["curl_put" if k in UPLOADS else "curl_get"]
            ratio = s["mb_s"]["median"] / base["mb_s"]["median"]
            print(f"{k:14} {fmt(s['mb_s']):>22} {fmt(s['box_cpu_s_per_gib'], 2):>20} "
                  f"{fmt(s['store_cpu_s_per_gib'], 2):>20} {ratio:>7.2f}x")
        for new, old in (("box_upload", "base_upload"), ("box_proxy_get", "base_proxy_get")):
            if old in table:
                n, o = table[new], table[old]
                print(f"{new} vs {old}: MB/s {n['mb_s']['median'] / o['mb_s']['median']:.2f}x, "
                      f"box CPU-s/GiB {n['box_cpu_s_per_gib']['median']:.2f} vs "
                      f"{o['box_cpu_s_per_gib']['median']:.2f} "
                      f"({n['box_cpu_s_per_gib']['median'] / o['box_cpu_s_per_gib']['median'] - 1:+.0%})")
    if rss:
        print(f"\nbox peak RSS, {rss['gb']} GB: baseline {rss['baseline_mb']:.0f} MB, after a "
              f"presigned upload (complete hashes it) {rss['after_presigned_mb']:.0f} MB, after "
              f"a proxied download {rss['after_download_mb']:.0f} MB")
    if args.json:
        args.json.write_text(json.dumps({"mib": args.mib, "runs": args.runs, "results": results,
                                         "summary": tables, "pinning": pinning, "rss": rss},
                                        indent=2))


if __name__ == "__main__":
    main()
