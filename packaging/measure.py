"""Print a built binary's size and its cold-start time to the first `GET /health` answer.

    python packaging/measure.py dist/artifacta-box [--runs 3]

Each run starts `artifacta-box serve` on a free loopback port with a fresh data directory
(so start-up includes creating the database, the secret and the bootstrap tenant) and its
own TMPDIR, polls /health every 10 ms until it answers 200, then sends SIGTERM. A run fails
(exit 1) when the server does not exit 0, or leaves its onefile extraction directory or a
temporary file behind. Standard library only: runs with any Python 3.11+, outside the
project's virtualenvs.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def one_run(binary: Path, timeout: float) -> float:
    with tempfile.TemporaryDirectory(prefix="artifacta-box-measure-") as work:
        tmpdir = Path(work) / "tmp"
        tmpdir.mkdir()
        data = Path(work) / "data"
        port = free_port()
        url = f"http://127.0.0.1:{port}/health"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ARTIFACTA_BOX_")}
        env["TMPDIR"] = str(tmpdir)
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1"
        log = open(Path(work) / "server.log", "wb")  # noqa: SIM115 - closed below
        started = time.perf_counter()
        proc = subprocess.Popen([str(binary), "serve", "--port", str(port), "--data-dir", str(data)],
                                stdout=log, stderr=log, env=env, start_new_session=True)
        try:
            while not health_ok(url):
                if proc.poll() is not None:
                    raise SystemExit(f"server exited with {proc.returncode} before answering:\n"
                                     + (Path(work) / "server.log").read_text(errors="replace"))
                if time.perf_counter() - started > timeout:
                    raise SystemExit(f"no /health answer within {timeout:.0f} s")
                time.sleep(0.01)
            elapsed = time.perf_counter() - started
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log.close()
        if code != 0:
            raise SystemExit(f"server exited with {code} after SIGTERM:\n"
                             + (Path(work) / "server.log").read_text(errors="replace"))
        leftovers = sorted(p.name for p in tmpdir.iterdir()) + sorted(
            p.name for p in (data / "tmp").iterdir())
        if leftovers:
            raise SystemExit(f"left behind after SIGTERM: {leftovers}")
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binary", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    binary = args.binary.resolve()
    size = binary.stat().st_size
    times = [one_run(binary, args.timeout) for _ in range(args.runs)]
    print(f"binary: {args.binary} {size:,} bytes ({size / 2**20:.1f} MiB)")
    print(f"cold start to first /health 200 (fresh data dir, median of {args.runs}): "
          f"{statistics.median(times):.2f} s  [runs: {', '.join(f'{t:.2f}' for t in times)}]")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
