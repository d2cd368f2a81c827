"""Benchmark plumbing: processes we start (and stop, by pid), HTTP on loopback, timing,
statistics, RSS sampling, and the external load tools (curl, wrk, py-spy).

Everything here talks only to 127.0.0.1 and bounds every wait with a timeout.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
MiB = 1024 * 1024
GiB = 1024 * MiB


class BenchError(Exception):
    """A benchmark could not run (a tool is missing, a server did not start, a request failed)."""


# --------------------------------------------------------------------------- processes


def tool_path(name: str) -> str | None:
    """An executable beside this Python (a venv's bin/, where pip puts pocketbase and py-spy),
    else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A server process we started, in its own session; stopped by its pid only."""

    registry: ClassVar[list[Proc]] = []

    def __init__(self, name: str, cmd: list[str], log_path: Path, env: dict[str, str] | None = None,
                 cwd: str | None = None, capture_stdout: bool = False) -> None:
        self.name = name
        self.cmd = cmd
        self.log_path = log_path
        self.stdout_lines: list[str] = []
        self.started_at = time.perf_counter()
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE if capture_stdout else self._log, stderr=self._log,
            stdin=subprocess.DEVNULL, env=env, cwd=cwd, start_new_session=True,
            text=capture_stdout or None,
        )
        if capture_stdout:
            threading.Thread(target=self._read_stdout, daemon=True).start()
        Proc.registry.append(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.stdout_lines.append(line)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM our process; if it has not exited within `timeout`, SIGKILL the process
        group it leads (created by us with start_new_session, so only its own children)."""
        if self.alive():
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(10)
        if self in Proc.registry:
            Proc.registry.remove(self)
        self._log.close()

    @classmethod
    def stop_all(cls) -> None:
        for p in list(reversed(cls.registry)):
            try:
                p.stop(timeout=10)
            except Exception as exc:  # noqa: BLE001 - best effort at exit, keep stopping others
                print(f"could not stop {p.name} (pid {p.pid}): {exc}", flush=True)


def wait_http(port: int, path: str = "/health", timeout: float = 60.0, proc: Proc | None = None,
              interval: float = 0.005) -> float:
    """Poll `GET path` on loopback until it answers 200. Returns the seconds since `proc` was
    spawned (or since the call, without `proc`)."""
    start = time.perf_counter()
    deadline = start + timeout
    while time.perf_counter() < deadline:
        if proc is not None and not proc.alive():
            raise BenchError(f"{proc.name} exited with {proc.proc.returncode}:\n{proc.log_tail()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return time.perf_counter() - (proc.started_at if proc else start)
        except OSError:
            pass
        time.sleep(interval)
    name = proc.name if proc else f"port {port}"
    raise BenchError(f"{name} did not answer {path} within {timeout:.0f}s"
                     + (f":\n{proc.log_tail()}" if proc else ""))


# --------------------------------------------------------------------------- HTTP


class Http:
    """A keep-alive HTTP/1.1 connection to one loopback port (cheap enough to time requests)."""

    def __init__(self, port: int, headers: dict[str, str] | None = None, timeout: float = 120) -> None:
        self.port = port
        self.headers = headers or {}
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        hdrs = {**self.headers, **(headers or {})}
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=body, headers=hdrs)
                resp = self.conn.getresponse()
                data = resp.read()
                return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
            except (http.client.HTTPException, ConnectionError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, payload: Any = None, expect: tuple[int, ...] = (200, 201),
             headers: dict[str, str] | None = None, body: bytes | None = None) -> Any:
        hdrs = dict(headers or {})
        if payload is not None:
            body = json.dumps(payload).encode()
            hdrs.setdefault("Content-Type", "application/json")
        status, _, data = self.request(method, path, body, hdrs)
        if status not in expect:
            raise BenchError(f"{method} {path} -> {status}: {data[:500]!r}")
        return json.loads(data) if data else None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def multipart_body(fields: dict[str, str], file_field: str, filename: str, content: bytes,
                   content_type: str = "application/octet-stream") -> tuple[bytes, str]:
    boundary = "benchboundary" + hashlib.sha1(content[:64] + os.urandom(8)).hexdigest()[:16]
    parts = [multipart_field(boundary, k, v) for k, v in fields.items()]
    head, tail = multipart_file_envelope(boundary, file_field, filename, content_type)
    return b"".join(parts) + head + content + tail, f"multipart/form-data; boundary={boundary}"


def multipart_field(boundary: str, name: str, value: str) -> bytes:
    return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
            f"{value}\r\n").encode()


def multipart_file_envelope(boundary: str, field_name: str, filename: str,
                            content_type: str) -> tuple[bytes, bytes]:
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field_name}\"; "
            f"filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n").encode()
    return head, f"\r\n--{boundary}--\r\n".encode()


def stream_upload(port: int, method: str, path: str, total: int, seed: int,
                  headers: dict[str, str] | None = None, multipart_field_name: str | None = None,
                  timeout: float = 1800) -> tuple[int, bytes]:
    """Send `total` generated bytes (unique per `seed`, never held whole in memory) with a
    Content-Length, raw or as the file part of a multipart body. Returns (status, body)."""
    hdrs = dict(headers or {})
    head = tail = b""
    if multipart_field_name:
        boundary = f"benchstream{seed:x}"
        head, tail = multipart_file_envelope(boundary, multipart_field_name, f"stream-{seed}.bin",
                                             "application/octet-stream")
        hdrs["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    hdrs["Content-Length"] = str(len(head) + total + len(tail))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in hdrs.items():
            conn.putheader(k, v)
        conn.endheaders()
        conn.send(head)
        for chunk in generated_chunks(total, seed):
            conn.send(chunk)
        conn.send(tail)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


_PATTERN = None


def generated_chunks(total: int, seed: int, chunk: int = MiB) -> Iterator[bytes]:
    """Incompressible-looking bytes, unique per (seed, chunk index), cheap to produce."""
    global _PATTERN
    if _PATTERN is None:
        _PATTERN = os.urandom(chunk)
    sent = 0
    i = 0
    while sent < total:
        n = min(chunk, total - sent)
        tag = f"{seed:016x}{i:016x}".encode()
        yield tag[:n] + _PATTERN[len(tag):n] if n > len(tag) else tag[:n]
        sent += n
        i += 1


# --------------------------------------------------------------------------- files


def make_source_file(path: Path, size: int) -> Path:
    """A file of random-looking bytes (written once, then reused from the page cache)."""
    if path.exists() and path.stat().st_size == size:
        return path
    with open(path, "wb") as f:
        f.writelines(generated_chunks(size, seed=0xB0B))
    return path


def stamp_file(path: Path, nonce: str) -> None:
    """Make the file's content unique for this run (first 32 bytes) so no store can dedup it."""
    tag = nonce.encode()[:32].ljust(32, b"#")
    with open(path, "r+b") as f:
        f.write(tag)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------- curl


@dataclass
class CurlResult:
    status: int
    seconds: float          # wall clock around the transfer
    bytes_up: int
    bytes_down: int
    body: bytes


def curl(args: list[str], timeout: float = 1800, body_to: Path | None = None) -> CurlResult:
    """Run curl for one transfer (the cheap C client, so the client doesn't eat the server's
    CPU). `args` holds the URL and transfer options."""
    out = body_to or Path(os.devnull)
    cmd = ["curl", "-sS", "--noproxy", "*", "-H", "Expect:", "-o", str(out), "-w",
           "%{http_code} %{size_upload} %{size_download}", *args]
    start = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, timeout=timeout, text=True, check=False)
    seconds = time.perf_counter() - start
    if res.returncode != 0:
        raise BenchError(f"curl failed ({res.returncode}): {res.stderr.strip()[:300]}")
    status, up, down = res.stdout.split()
    body = body_to.read_bytes() if body_to and body_to.exists() and body_to.stat().st_size < MiB else b""
    return CurlResult(int(status), seconds, int(float(up)), int(float(down)), body)


# --------------------------------------------------------------------------- wrk


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    errors: int            # socket errors + non-2xx/3xx + timeouts
    p50_ms: float
    p99_ms: float
    raw: dict[str, Any]


def run_wrk(url: str, script: Path, script_args: list[str], connections: int, seconds: float,
            threads: int = 1, timeout_s: float = 10) -> WrkResult:
    threads = max(1, min(threads, connections))
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
           f"--timeout={int(timeout_s)}s", "-s", str(script), url, "--", *script_args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60,
                         check=False)
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if res.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({res.returncode}): {res.stdout[-800:]} {res.stderr[-800:]}")
    raw = json.loads(line[len("WRKJSON "):])
    secs = raw["duration_us"] / 1e6
    errors = (raw["connect_errors"] + raw["read_errors"] + raw["write_errors"]
              + raw["status_errors"] + raw["timeouts"])
    ok = raw["requests"] - raw["status_errors"]
    return WrkResult(raw["requests"], secs, ok / secs if secs else 0.0, errors,
                     raw["p50_us"] / 1000, raw["p99_us"] / 1000, raw)


# --------------------------------------------------------------------------- RSS


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (via /proc/<pid>/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return out


def rss_bytes(pid: int) -> int:
    """Summed VmRSS of the process and its descendants (workers), in bytes."""
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process tree so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
        except (OSError, IndexError, ValueError):
            continue
    return total / ticks


def quiesce(pids: list[int], idle_share: float = 0.05, window: float = 0.25,
            timeout: float = 15.0, probe_dir: Path | None = None) -> float:
    """Flush dirty pages, then wait until the servers' processes are idle (below `idle_share`
    of a core over `window` s), so work one target does after answering (deleting temp files,
    garbage collection, write-back) is not charged to the next one. Returns seconds waited."""
    start = time.perf_counter()
    os.sync()
    deadline = start + timeout
    while time.perf_counter() < deadline:
        before = sum(cpu_seconds(p) for p in pids)
        time.sleep(window)
        if sum(cpu_seconds(p) for p in pids) - before < idle_share * window:
            break
    os.sync()
    if probe_dir is not None:
        _disk_probe(probe_dir)
    return time.perf_counter() - start


def _disk_probe(directory: Path, size: int = 64 * MiB, rounds: int = 2) -> None:
    """Write, fsync and delete a file: absorbs file-system work left pending by the previous
    target (journal commits, discards of deleted files) that `sync` alone does not wait for,
    so it is not charged to the next target's first fsync."""
    path = directory / ".bench-disk-probe"
    block = b"\0" * MiB
    for _ in range(rounds):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for _ in range(size // MiB):
                os.write(fd, block)
            os.fsync(fd)
        finally:
            os.close(fd)
        path.unlink()
        os.sync()


class RssSampler:
    """Samples a process tree's RSS every `interval` seconds in a thread; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(rss_bytes(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    @property
    def peak(self) -> int:
        return max(self.samples, default=0)


# --------------------------------------------------------------------------- statistics


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


@dataclass
class Figure:
    """One measured figure: samples from ≥ 3 runs, summarised by median and min–max."""

    section: str
    name: str
    unit: str
    samples: list[float]
    higher_is_better: bool = True
    ref: str | None = None          # name of the reference figure (same section) for the ratio
    target: str | None = None       # human-readable target, e.g. ">= 0.9 x bare Sanic"
    target_ratio: float | None = None
    target_value: float | None = None   # absolute bound (for lower-is-better figures: maximum)
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    ratio: float | None = None
    ok: bool | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")

    @property
    def low(self) -> float:
        return min(self.samples) if self.samples else float("nan")

    @property
    def high(self) -> float:
        return max(self.samples) if self.samples else float("nan")

    def as_json(self) -> dict[str, Any]:
        return {
            "section": self.section, "name": self.name, "unit": self.unit,
            "median": self.median, "min": self.low, "max": self.high, "samples": self.samples,
            "reference": self.ref, "ratio": self.ratio, "target": self.target, "ok": self.ok,
            "notes": self.notes, **({"extra": self.extra} if self.extra else {}),
        }


def resolve_ratios(figures: list[Figure]) -> None:
    """Fill ratio (vs the named reference's median) and ok (vs the target)."""
    by_name = {f.name: f for f in figures}
    for f in figures:
        if f.ref and f.ref in by_name and by_name[f.ref].samples and f.samples:
            ref = by_name[f.ref].median
            if ref:
                f.ratio = f.median / ref if f.higher_is_better else ref / f.median
        if f.target_ratio is not None and f.ratio is not None:
            f.ok = f.ratio >= f.target_ratio
        elif f.target_value is not None and f.samples:
            f.ok = (f.median >= f.target_value) if f.higher_is_better else (f.median < f.target_value)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


# --------------------------------------------------------------------------- py-spy


class Profiler:
    """`py-spy record` attached to a pid while a block runs. Writes a flame graph of all threads
    (`.svg`, wall-clock: waits included), raw collapsed stacks of the samples that held the
    GIL (`.gil.txt`: CPU spent in Python or in C called with the GIL) and of all threads by
    thread (`.wall.txt`: where each thread spends its time, blocking calls included), from
    which `top_functions` ranks where the time goes."""

    def __init__(self, pid: int, out_prefix: Path, rate: int = 100, seconds: int = 600) -> None:
        self.pid = pid
        self.svg = out_prefix.with_suffix(".svg")
        self.collapsed = out_prefix.with_suffix(".gil.txt")
        self.wall = out_prefix.with_suffix(".wall.txt")
        self.rate = rate
        self.seconds = seconds
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> Self:
        base = [tool_path("py-spy") or "py-spy", "record", "--pid", str(self.pid), "--rate",
                str(self.rate), "--duration", str(self.seconds), "--nonblocking"]
        for extra, out in ((["--format", "flamegraph"], self.svg),
                           (["--format", "raw", "--gil"], self.collapsed),
                           (["--format", "raw", "--threads"], self.wall)):
            self.procs.append(subprocess.Popen(
                [*base, *extra, "-o", str(out)], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True))
        time.sleep(1.0)  # let py-spy attach before the load starts
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


def top_functions(collapsed: Path, n: int = 15) -> dict[str, Any]:
    """From py-spy raw output: the top `n` frames by self time, and the top `n` of the box's
    own functions (artifacta_box/) by inclusive time, each as % of all samples."""
    self_t: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    try:
        lines = collapsed.read_text().splitlines()
    except OSError:
        return {"self": [], "inclusive": [], "samples": 0}
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        c = int(count)
        total += c
        frames = stack.split(";")
        leaf = frames[-1]
        self_t[leaf] = self_t.get(leaf, 0) + c
        # Inclusive per function (line numbers dropped), only the box's own code.
        for fn in {_function_of(fr) for fr in frames if "artifacta_box/" in fr}:
            incl[fn] = incl.get(fn, 0) + c
    if not total:
        return {"self": [], "inclusive": [], "samples": 0}

    def top(d: dict[str, int]) -> list[tuple[str, float]]:
        return [(k, 100.0 * v / total) for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:n]]

    return {"self": top(self_t), "inclusive": top(incl), "samples": total}


def _function_of(frame: str) -> str:
    """`name (path/file.py:123)` -> `name (path/file.py)`."""
    head, sep, tail = frame.rpartition(":")
    return f"{head})" if sep and tail.rstrip(")").isdigit() else frame
