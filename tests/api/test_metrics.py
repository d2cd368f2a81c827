"""GET /metrics (Prometheus text format, optional bearer token) and the access log line.

One server for the module, with a metrics token, JSON-lines logging and a plan whose rate limit
a test can exhaust quickly.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid

import httpx
import pytest

from tests.helpers import BoxServer, download, new_key, sql, upload
from tests.ops_helpers import DAY, admin_json, iso_ago

TOKEN = "metrics-secret-token-0123456789"
CONFIG = f"""
[metrics]
token = "{TOKEN}"
gauge_interval = "1s"
scrape_burst = 1000

[logging]
format = "json"

[plans.tiny]
rate_sustained = 0.001
rate_burst = 3
"""

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape(server: BoxServer) -> dict[tuple[str, frozenset], float]:
    r = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    out = {}
    for line in r.text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        labels = frozenset(LABEL.findall(m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    d = tmp_path_factory.mktemp("metrics") / "box"
    srv = BoxServer(d, config=CONFIG).start()
    yield srv
    srv.stop()


def test_metrics_need_the_configured_token(box):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        r = httpx.get(box.url + "/metrics", headers=headers)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "unauthorized"
    assert httpx.get(box.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_requests_latency_and_bytes_are_counted_by_route_pattern(box):
    api = box.client()
    before = scrape(box)
    content = b"m" * 12345
    art = upload(api, content)
    assert api.get(f"/v1/artifacts/{art['artifact_id']}").status_code == 200
    assert api.get("/v1/artifacts/art_DoesNotExist0000").status_code == 404
    assert download(api, art["artifact_id"]) == content
    httpx.get(box.url + "/no/such/route")
    after = scrape(box)

    route = "/v1/artifacts/<artifact_id>"
    name = "artifacta_box_http_requests_total"
    assert value(after, name, method="GET", route=route, status="200") - \
        value(before, name, method="GET", route=route, status="200") == 1
    assert value(after, name, method="GET", route=route, status="404") - \
        value(before, name, method="GET", route=route, status="404") == 1
    assert value(after, name, method="POST", route="/v1/artifacts", status="201") - \
        value(before, name, method="POST", route="/v1/artifacts", status="201") == 1
    assert value(after, name, method="GET", route="unmatched", status="404") >= 1
    # The raw id never becomes a label (bounded cardinality).
    assert not any(art["artifact_id"] in str(labels) for _, labels in after)

    hist = "artifacta_box_http_request_duration_seconds"
    labels = {"method": "GET", "route": route, "status": "200"}
    buckets = sorted(
        (float("inf") if dict(lbl)["le"] == "+Inf" else float(dict(lbl)["le"]), v)
        for (n, lbl), v in after.items()
        if n == hist + "_bucket" and {k: v for k, v in lbl if k != "le"} == labels
    )
    counts = [v for _, v in buckets]
    assert counts == sorted(counts) and buckets[-1][0] == float("inf")
    assert counts[-1] == value(after, hist + "_count", **labels) >= 1
    assert value(after, hist + "_sum", **labels) > 0

    grown_in = value(after, "artifacta_box_http_request_bytes_total", route="/v1/artifacts") - \
        value(before, "artifacta_box_http_request_bytes_total", route="/v1/artifacts")
    assert grown_in >= len(content)
    grown_out = sum(v for (n, _), v in after.items() if n == "artifacta_box_http_response_bytes_total") - \
        sum(v for (n, _), v in before.items() if n == "artifacta_box_http_response_bytes_total")
    assert grown_out >= len(content)


def fresh_scrape(server: BoxServer) -> dict[tuple[str, frozenset], float]:
    """A scrape whose store gauges were computed after this call began (they are recomputed
    in the background at most every gauge_interval, 1 s here, and a scrape starts that)."""
    since = time.time()
    deadline = since + 30
    while True:
        samples = scrape(server)
        if value(samples, "artifacta_box_store_gauges_timestamp_seconds") > since:
            return samples
        assert time.time() < deadline, "the store gauges were never recomputed"
        time.sleep(0.1)


def test_store_gauges_and_gc_results(box):
    api = box.client()
    before = fresh_scrape(box)
    arts = [upload(api, uuid.uuid4().bytes * 100) for _ in range(3)]
    api.delete(f"/v1/artifacts/{arts[0]['artifact_id']}")
    mid = fresh_scrape(box)
    assert value(mid, "artifacta_box_artifacts", state="active") - \
        value(before, "artifacta_box_artifacts", state="active") == 2
    assert value(mid, "artifacta_box_artifacts", state="deleted") - \
        value(before, "artifacta_box_artifacts", state="deleted") == 1
    assert value(mid, "artifacta_box_blobs") - value(before, "artifacta_box_blobs") == 3
    assert value(mid, "artifacta_box_blob_bytes") - value(before, "artifacta_box_blob_bytes") == 4800

    sql(box, "UPDATE artifacts SET deleted_at = ? WHERE artifact_id = ?",
        (iso_ago(31 * DAY), arts[0]["artifact_id"]))
    assert admin_json(box, "gc")["purged_artifacts"] == 1
    after = fresh_scrape(box)
    assert value(after, "artifacta_box_gc_last_run_purged_artifacts") == 1
    assert value(after, "artifacta_box_gc_last_run_timestamp_seconds") > time.time() - 3600
    assert value(after, "artifacta_box_artifacts", state="deleted") == \
        value(mid, "artifacta_box_artifacts", state="deleted") - 1


def test_rate_limited_requests_are_counted(box):
    key = new_key(box, "tiny", prefix="tiny")
    before = value(scrape(box), "artifacta_box_rate_limited_total")
    with box.client(key) as c:
        statuses = [c.get("/v1/whoami").status_code for _ in range(5)]
    assert statuses.count(429) == 2
    assert value(scrape(box), "artifacta_box_rate_limited_total") - before == 2


def test_every_request_gets_a_json_access_log_line(box):
    api = box.client()
    r = api.get("/v1/whoami")
    rid = r.headers["X-Request-Id"]
    deadline = time.monotonic() + 10
    line = None
    while line is None and time.monotonic() < deadline:
        for raw in box.log_path.read_text(errors="replace").splitlines():
            if rid in raw and raw.startswith("{"):
                line = json.loads(raw)
        if line is None:
            time.sleep(0.05)
    assert line is not None, "no access log line for the request"
    assert line["method"] == "GET" and line["route"] == "/v1/whoami" and line["status"] == 200
    assert line["tenant"] == "default" and line["request_id"] == rid
    assert line["bytes_out"] == len(r.content) and line["bytes_in"] == 0
    assert isinstance(line["duration_ms"], float | int)


def test_streamed_downloads_count_their_bytes_out(box):
    api = box.client()
    content = os.urandom(300_000)  # above the inline size: streamed with sendfile
    art = upload(api, content)
    url = api.get(f"/v1/artifacts/{art['artifact_id']}/download-url").json()["download_url"]
    route = "/d/<artifact_id>"
    before = value(scrape(box), "artifacta_box_http_response_bytes_total", route=route)
    assert httpx.get(url).content == content
    httpx.head(url)
    after = value(scrape(box), "artifacta_box_http_response_bytes_total", route=route)
    assert after - before == len(content)


@pytest.mark.serial  # worker processes publishing once a second
def test_with_several_workers_every_scrape_counts_the_whole_server(tmp_path):
    # Each worker process answers part of the requests and part of the scrapes; every scrape
    # must show the sum over all workers (not the counters of whichever worker answered).
    srv = BoxServer(tmp_path / "workers", config=CONFIG, args=["--workers", "2"]).start()
    try:
        n = 60
        for _ in range(n):  # a new connection each: the kernel spreads them over the workers
            r = httpx.get(srv.url + "/v1/whoami", headers={"Authorization": f"Bearer {srv.key}"})
            assert r.status_code == 200
        time.sleep(1.5)  # each worker publishes its counters once a second
        seen = set()
        for _ in range(8):
            samples = scrape(srv)
            seen.add(value(samples, "artifacta_box_http_requests_total", method="GET",
                           route="/v1/whoami", status="200"))
        assert seen == {float(n)}, seen
    finally:
        srv.stop()
    # After a stop the published files remain in the data dir; the next serve starts from zero.
    assert (srv.data_dir / "metrics.d").is_dir()


def test_scrapes_read_cached_gauges_are_throttled_and_show_the_disk(tmp_path):
    """A scrape never reads the store itself (at a million artifacts that took up to 1 s each,
    and 16 scrapers slowed the whole API), and a crowd of scrapers gets 429 while the API
    answers."""
    srv = BoxServer(tmp_path / "box", config="""
[metrics]
gauge_interval = "1h"
scrape_rate = 0.001
scrape_burst = 3
[storage]
min_free_bytes = "7MB"
""").start()
    try:
        api = srv.client()
        first = scrape(srv)
        computed = value(first, "artifacta_box_store_gauges_timestamp_seconds")
        assert computed > 0
        upload(api, b"not yet counted")
        second = scrape(srv)
        # The same figures, computed once: the upload shows at the next recomputation.
        assert value(second, "artifacta_box_store_gauges_timestamp_seconds") == computed
        assert value(second, "artifacta_box_artifacts", state="active") == \
            value(first, "artifacta_box_artifacts", state="active")
        assert value(second, "artifacta_box_disk_reserve_bytes") == 7_000_000
        assert 0 < value(second, "artifacta_box_disk_free_bytes") <= shutil.disk_usage(srv.data_dir).total
        third = httpx.get(srv.url + "/metrics")
        assert third.status_code == 200
        refused = httpx.get(srv.url + "/metrics")
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "rate_limited"
        assert int(refused.headers["Retry-After"]) >= 1
        assert api.get("/v1/whoami").status_code == 200  # the API is not the scrapers' bucket
    finally:
        srv.stop()
