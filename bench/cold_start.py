"""Cold start of two (or more) built binaries, interleaved, so a loaded machine slows them alike.

    python bench/cold_start.py OLD_BINARY NEW_BINARY [--runs 8]

Each run starts `serve` on a free loopback port with a fresh data directory and TMPDIR, polls
`/health` every 10 ms until it answers 200, then sends SIGTERM and waits. Reported per binary:
the median wall time to the first 200, and the median CPU time (user + system) of the whole
process tree from start to exit, which a busy machine inflates far less than the wall time.
packaging/measure.py measures one binary as build.sh prints it; this compares.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.error
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_run(binary: str, timeout: float = 60.0) -> tuple[float, float]:
    """(seconds to the first /health 200, CPU seconds of the run)."""
    with tempfile.TemporaryDirectory(prefix="artifacta-box-cold-") as work:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("ARTIFACTA_BOX_")}
        env.update(TMPDIR=work, NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        proc = subprocess.Popen([binary, "serve", "--port", str(port), "--data-dir", f"{work}/data"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        try:
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                        break
                except (urllib.error.URLError, OSError):
                    if proc.poll() is not None or time.perf_counter() - started > timeout:
                        raise SystemExit(f"{binary} did not answer /health") from None
                    time.sleep(0.01)
            wall = time.perf_counter() - started
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binaries", nargs="+")
    parser.add_argument("--runs", type=int, default=8)
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float]]] = {b: [] for b in args.binaries}
    for _ in range(args.runs):
        for binary in args.binaries:
            results[binary].append(one_run(binary))
    for binary, runs in results.items():
        size = os.path.getsize(binary)
        print(f"{binary}: {size:,} bytes; to first /health 200: median "
              f"{statistics.median(w for w, _ in runs):.2f} s wall, "
              f"{statistics.median(c for _, c in runs):.2f} s CPU (start to exit), {len(runs)} runs")


if __name__ == "__main__":
    main()
