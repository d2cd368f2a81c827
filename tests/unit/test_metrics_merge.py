"""Metrics of several worker processes summed (serve --workers N): snapshot -> JSON -> merged."""

from __future__ import annotations

import json

from artifacta_box.metrics import Metrics, MetricsShare


def test_snapshots_of_two_workers_sum_to_one_exposition(tmp_path):
    a, b = Metrics(), Metrics()
    a.observe_request("GET", "/v1/whoami", 200, 0.002, 0, 300)
    b.observe_request("GET", "/v1/whoami", 200, 0.2, 0, 300)
    b.observe_request("POST", "/v1/artifacts", 201, 0.004, 4096, 355)
    b.observe_gc({"deleted_blobs": 3})
    a.rate_limited, b.rate_limited = 1, 2
    snaps = [json.loads(json.dumps(a.snapshot())), json.loads(json.dumps(b.snapshot()))]
    merged = Metrics.merged([*snaps, {"requests": "garbage"}])
    assert merged.rate_limited == 3
    assert merged.requests == {("GET", "/v1/whoami", 200): 2, ("POST", "/v1/artifacts", 201): 1}
    hist = merged.latency[("GET", "/v1/whoami", 200)]
    assert hist.n == 2 and sum(hist.counts) == 2 and abs(hist.total - 0.202) < 1e-9
    assert merged.bytes_in == {"/v1/artifacts": 4096}
    assert merged.bytes_out == {"/v1/whoami": 600, "/v1/artifacts": 355}
    assert merged.gc.deleted_blobs == 3 and merged.gc.runs == 1
    text = merged.render(store={})
    assert 'artifacta_box_http_requests_total{method="GET",route="/v1/whoami",status="200"} 2' in text


def test_a_share_reads_the_other_workers_files_not_its_own(tmp_path):
    MetricsShare.reset(tmp_path)
    mine = MetricsShare(tmp_path)
    mine.publish({"requests": [["GET", "/x", 200, 5]]})
    (tmp_path / "metrics.d" / "1.json").write_text('{"requests": [["GET", "/x", 200, 7]]}')
    (tmp_path / "metrics.d" / "2.json").write_text("{not json")
    assert mine.others() == [{"requests": [["GET", "/x", 200, 7]]}]
    MetricsShare.reset(tmp_path)  # a new serve starts from zero
    assert list((tmp_path / "metrics.d").iterdir()) == []
    (tmp_path / "metrics.d").rmdir()  # removed by hand while serving: the next publish recovers
    mine.publish({"requests": []})
    assert mine.own.is_file()


def test_every_per_run_gc_counter_is_a_field_of_the_gc_report():
    """/metrics adds a run's GcReport figures by name: a counter the report lacks stays 0 forever."""
    from dataclasses import fields

    from artifacta_box.metrics import GC_COUNTERS
    from artifacta_box.services.lifecycle import GcReport

    report = {f.name for f in fields(GcReport)}
    missing = [n for n in GC_COUNTERS if n not in ("runs", "failures") and n not in report]
    assert missing == []
    m = Metrics()
    m.observe_gc(GcReport(expired=2, reclaimed_bytes=10).as_dict())
    m.observe_gc(None)
    assert (m.gc.runs, m.gc.failures, m.gc.expired, m.gc.reclaimed_bytes) == (2, 1, 2, 10)
