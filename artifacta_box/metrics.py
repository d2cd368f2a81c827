"""In-process metrics rendered in the Prometheus text exposition format (no external deps).

Per request the cost is a few dict look-ups, one `bisect` into fixed latency buckets and a
handful of integer additions; the store totals and last gc run are gauges recomputed in the
background (services.stats.StoreGauges), read by a scrape. Labels are bounded: the route is the route *pattern* (`/v1/artifacts/
<artifact_id>`), never the raw path, and unmatched paths share one label.
"""

from __future__ import annotations

import bisect
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path

from artifacta_box.datadir import METRICS_DIR

# Seconds. Upper bounds of the latency histogram buckets (+Inf is implicit).
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)

UNMATCHED_ROUTE = "unmatched"


@dataclass
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0
    n: int = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds
        self.n += 1


# The lifecycle counters /metrics exports (artifacta_box_gc_<name>_total), with their help:
# GcTotals is made from it (one field each), and `observe_gc` adds a run's report figures of the same names.
GC_COUNTERS: dict[str, str] = {
    "runs": "Lifecycle (gc) runs made by this server process.",
    "failures": "Lifecycle runs that failed (see the server log).",
    "expired": "Artifacts whose expiry the lifecycle runs processed.",
    "purged_artifacts": "Deleted/expired artifacts purged after retention.",
    "purged_pending": "Presigned uploads never completed, removed after their window.",
    "deleted_blobs": "Unreferenced blob files deleted.",
    "reclaimed_bytes": "Bytes of blob files deleted.",
    "dropped_links": "Share links dropped after expiry plus retention.",
    "temp_files": "Stale temporary upload files removed.",
}
_PER_RUN = [name for name in GC_COUNTERS if name not in ("runs", "failures")]


# Totals over the lifecycle runs this server process has made: one int field per GC_COUNTERS name.
GcTotals = make_dataclass("GcTotals", [(name, int, 0) for name in GC_COUNTERS])


class Metrics:
    """Counters of one server process."""

    def __init__(self) -> None:
        # (method, route, status) -> count / histogram
        self.requests: dict[tuple[str, str, int], int] = {}
        self.latency: dict[tuple[str, str, int], _Histogram] = {}
        self.bytes_in: dict[str, int] = {}
        self.bytes_out: dict[str, int] = {}
        self.gc = GcTotals()
        # requests refused 429 by the tenants' token buckets (http.common.charge_rate)
        self.rate_limited = 0

    def observe_request(self, method: str, route: str, status: int, seconds: float,
                        bytes_in: int, bytes_out: int) -> None:
        key = (method, route, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        hist = self.latency.get(key)
        if hist is None:
            hist = self.latency[key] = _Histogram()
        hist.observe(seconds)
        if bytes_in:
            self.bytes_in[route] = self.bytes_in.get(route, 0) + bytes_in
        if bytes_out:
            self.bytes_out[route] = self.bytes_out.get(route, 0) + bytes_out

    def observe_gc(self, report: Mapping[str, int] | None) -> None:
        """Add one lifecycle run's figures (None: the run failed)."""
        g = self.gc
        g.runs += 1
        if report is None:
            g.failures += 1
            return
        for name in _PER_RUN:
            setattr(g, name, getattr(g, name) + report.get(name, 0))

    # ------------------------------------------------------------------ several workers

    def snapshot(self) -> dict:
        """This process's counters as plain JSON data (see `merged`)."""
        return {
            "requests": [[m, r, st, n] for (m, r, st), n in self.requests.items()],
            "latency": [[m, r, st, h.counts, h.total, h.n]
                        for (m, r, st), h in self.latency.items()],
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "gc": vars(self.gc),
            "rate_limited": self.rate_limited,
        }

    @classmethod
    def merged(cls, snapshots: Iterable[Mapping]) -> Metrics:
        """Sum the snapshots of every worker process.
        A malformed snapshot is skipped (it is rewritten within a second)."""
        out = cls()
        for snap in snapshots:
            try:
                for m, r, st, n in snap["requests"]:
                    key = (m, r, int(st))
                    out.requests[key] = out.requests.get(key, 0) + int(n)
                for m, r, st, counts, total, n in snap["latency"]:
                    hist = out.latency.setdefault((m, r, int(st)), _Histogram())
                    if len(counts) == len(hist.counts):
                        hist.counts = [a + int(b) for a, b in zip(hist.counts, counts, strict=True)]
                    hist.total += float(total)
                    hist.n += int(n)
                for mine, theirs in ((out.bytes_in, snap["bytes_in"]),
                                     (out.bytes_out, snap["bytes_out"])):
                    for route, n in theirs.items():
                        mine[route] = mine.get(route, 0) + int(n)
                for attr, n in snap["gc"].items():
                    if hasattr(out.gc, attr):
                        setattr(out.gc, attr, getattr(out.gc, attr) + int(n))
                out.rate_limited += int(snap.get("rate_limited", 0))
            except (KeyError, TypeError, ValueError):
                continue
        return out

    # ------------------------------------------------------------------ exposition

    def render(self, store: Mapping[str, object]) -> str:
        """The whole exposition. `store` holds gauges read from the database at scrape time."""
        out = _Writer()
        out.family("artifacta_box_http_requests_total", "counter",
                   "HTTP requests answered, by method, route pattern and status.")
        for (method, route, status), n in sorted(self.requests.items()):
            out.sample("artifacta_box_http_requests_total",
                       {"method": method, "route": route, "status": str(status)}, n)

        name = "artifacta_box_http_request_duration_seconds"
        out.family(name, "histogram",
                   "Time from request start to response headers, by method, route and status.")
        for (method, route, status), hist in sorted(self.latency.items()):
            labels = {"method": method, "route": route, "status": str(status)}
            running = 0
            for bound, count in zip(LATENCY_BUCKETS, hist.counts, strict=False):
                running += count
                out.sample(name + "_bucket", {**labels, "le": _num(bound)}, running)
            out.sample(name + "_bucket", {**labels, "le": "+Inf"}, hist.n)
            out.sample(name + "_sum", labels, hist.total)
            out.sample(name + "_count", labels, hist.n)

        out.family("artifacta_box_http_request_bytes_total", "counter",
                   "Request body bytes received, by route pattern.")
        for route, n in sorted(self.bytes_in.items()):
            out.sample("artifacta_box_http_request_bytes_total", {"route": route}, n)
        out.family("artifacta_box_http_response_bytes_total", "counter",
                   "Response body bytes sent (Content-Length), by route pattern.")
        for route, n in sorted(self.bytes_out.items()):
            out.sample("artifacta_box_http_response_bytes_total", {"route": route}, n)

        out.family("artifacta_box_rate_limited_total", "counter",
                   "Requests refused with 429 rate_limited by the per-tenant token buckets.")
        out.sample("artifacta_box_rate_limited_total", {}, self.rate_limited)

        g = self.gc
        for attr, help_text in GC_COUNTERS.items():
            metric = f"artifacta_box_gc_{attr}_total"
            out.family(metric, "counter", help_text)
            out.sample(metric, {}, getattr(g, attr))

        for metric, kind, help_text, samples in _store_families(store):
            out.family(metric, kind, help_text)
            for labels, value in samples:
                out.sample(metric, labels, value)
        return out.text()


class MetricsShare:
    """`serve --workers N`: each worker publishes its counters about once a second to
    `<data_dir>/metrics.d/<pid>.json` (atomic replace), and a scrape — answered by whichever
    worker gets it — sums every file with its own live counters, so /metrics shows the whole
    server. A worker that died keeps its last file: counters never go backwards. `serve`
    empties the directory before the workers start."""

    def __init__(self, root: Path) -> None:
        self.dir = Path(root) / METRICS_DIR
        self.own = self.dir / f"{os.getpid()}.json"

    @staticmethod
    def reset(root: Path) -> None:
        shutil.rmtree(Path(root) / METRICS_DIR, ignore_errors=True)
        (Path(root) / METRICS_DIR).mkdir(mode=0o700)

    def publish(self, snapshot: Mapping) -> None:
        tmp = self.own.with_suffix(".tmp")
        text = json.dumps(snapshot, separators=(",", ":"))
        try:
            tmp.write_text(text)
        except FileNotFoundError:  # the directory was removed under us: make it again
            self.dir.mkdir(mode=0o700, exist_ok=True)
            tmp.write_text(text)
        os.replace(tmp, self.own)  # counters, not data: no fsync

    def others(self) -> list[dict]:
        out = []
        for f in self.dir.glob("*.json"):
            if f == self.own:
                continue
            try:
                out.append(json.loads(f.read_text()))
            except (OSError, ValueError):
                continue  # vanished or (never, given the atomic replace) half-written
        return out


def _store_families(store: Mapping[str, object]) -> Iterable[tuple[str, str, str, list]]:
    by_state = store.get("artifacts_by_state") or {}
    yield ("artifacta_box_artifacts", "gauge",
           "Artifact rows by state (active, pending, expired and deleted within retention).",
           [({"state": s}, n) for s, n in sorted(by_state.items())])  # type: ignore[union-attr]
    yield ("artifacta_box_blobs", "gauge", "Blob files recorded in the store.",
           [({}, store.get("blobs", 0))])
    yield ("artifacta_box_blob_bytes", "gauge", "Bytes of the blob files recorded in the store.",
           [({}, store.get("blob_bytes", 0))])
    yield ("artifacta_box_billed_storage_bytes", "gauge",
           "Sum of the tenants' storage usage (each distinct live blob counted once per tenant).",
           [({}, store.get("billed_bytes", 0))])
    yield ("artifacta_box_tenants", "gauge", "Tenants.", [({}, store.get("tenants", 0))])
    yield ("artifacta_box_store_gauges_timestamp_seconds", "gauge",
           "When the store gauges above were computed (metrics.gauge_interval).",
           [({}, store["computed_at"])] if "computed_at" in store else [])
    yield ("artifacta_box_upload_memory_bytes", "gauge",
           "Memory held by in-flight upload bodies in the process that answered (its budget: "
           "server.upload_memory).",
           [({}, store["upload_memory_bytes"])] if "upload_memory_bytes" in store else [])
    yield ("artifacta_box_upload_memory_limit_bytes", "gauge",
           "server.upload_memory: past it new uploads get 503 with Retry-After.",
           [({}, store["upload_memory_limit_bytes"])] if "upload_memory_limit_bytes" in store
           else [])
    yield ("artifacta_box_disk_free_bytes", "gauge",
           "Free bytes on the disk holding the data directory (as uploads see it).",
           [({}, store["disk_free_bytes"])] if "disk_free_bytes" in store else [])
    yield ("artifacta_box_disk_reserve_bytes", "gauge",
           "storage.min_free_bytes: uploads are refused rather than take free space below it.",
           [({}, store.get("disk_reserve_bytes", 0))])
    last = store.get("last_gc") or {}
    yield ("artifacta_box_gc_last_run_timestamp_seconds", "gauge",
           "When the last finished lifecycle run (server or `artifacta-box gc`) finished.",
           [({}, last.get("finished_at", 0))] if last else [])  # type: ignore[union-attr]
    for key in ("purged_artifacts", "purged_pending", "deleted_blobs", "reclaimed_bytes",
                "dropped_links", "expired"):
        yield (f"artifacta_box_gc_last_run_{key}", "gauge",
               f"{key.replace('_', ' ')} in the last finished lifecycle run.",
               [({}, last.get(key, 0))] if last else [])  # type: ignore[union-attr]


def _num(value: float) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, labels: Mapping[str, str], value: float) -> None:
        if labels:
            inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            self.lines.append(f"{name}{{{inner}}} {_num(value)}")
        else:
            self.lines.append(f"{name} {_num(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"
