"""Presigned uploads end to end: POST /v1/artifacts/upload-url → PUT <upload_url> (no auth) →
POST /v1/artifacts/<id>/complete, with the exact-length check, retried PUTs, signatures,
sealed sessions, dedup and quota at complete, and idempotent completion."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from artifacta_box.security.signing import UrlSigner
from tests.api.upload_helpers import LIMITS_CONFIG, RawRequest, assert_nothing_left, snapshot
from tests.helpers import (
    BoxServer,
    assert_error,
    blob_files,
    new_client,
    sha,
    sql,
    temp_files,
    wait_for,
)


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    srv = BoxServer(tmp_path_factory.mktemp("presigned") / "box", config=LIMITS_CONFIG).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def c(box):
    with new_client(box) as client:
        yield client


def reserve(client: httpx.Client, size: int, filename: str = "big.bin", **fields) -> dict:
    r = client.post("/v1/artifacts/upload-url", json={"filename": filename, "size_bytes": size, **fields})
    assert r.status_code == 200, r.text
    return r.json()


def put(url_data: dict, content, **kw) -> httpx.Response:
    """The PUT as the official clients do it: no Authorization, only upload_headers."""
    return httpx.request(url_data["upload_method"], url_data["upload_url"], content=content,
                         headers=url_data["upload_headers"], timeout=30, **kw)


def row(box: BoxServer, artifact_id: str) -> tuple:
    return sql(box, "SELECT state, content_hash, upload_sha256, upload_size, size_bytes "
                    "FROM artifacts WHERE artifact_id = ?", (artifact_id,))[0]


def test_reserve_put_complete(box, c):
    content = os.urandom(1_500_000)
    usage0 = c.get("/v1/whoami").json()["usage_storage_bytes"]
    res = reserve(c, len(content), "weights.safetensors", content_type="application/x-weights",
                  session_id="ps", agent_id="ag", metadata={"k": "v"}, ttl="1h")
    aid = res["artifact_id"]
    assert aid.startswith("art_") and len(aid) == 20
    assert res["status"] == "pending"
    assert res["upload_method"] == "PUT"
    assert res["upload_headers"] == {"Content-Type": "application/x-weights"}
    assert res["upload_url"].startswith(box.url + "/")
    assert res["expires_in"] == 3600
    assert res["upload_expires_at"].endswith("Z") and len(res["upload_expires_at"]) == 27
    assert "/v1/" not in urlsplit(res["upload_url"]).path

    pending = c.get(f"/v1/artifacts/{aid}")
    assert pending.status_code == 200
    rec = pending.json()
    assert rec["status"] == "pending" and rec["content_hash"] is None
    assert rec["size_bytes"] == len(content) and rec["filename"] == "weights.safetensors"
    assert aid not in [a["artifact_id"] for a in c.get("/v1/artifacts").json()["artifacts"]]

    assert_error(c.post(f"/v1/artifacts/{aid}/complete"), 400, "upload_not_found")

    r = put(res, content)
    assert r.status_code == 200, r.text
    assert r.json()["sha256"] == sha(content)
    assert "X-RateLimit-Remaining" in r.headers  # charged to the artifact's tenant
    assert row(box, aid)[:4] == ("pending", None, sha(content), len(content))

    done = c.post(f"/v1/artifacts/{aid}/complete")  # bodiless, like the clients
    assert done.status_code == 200, done.text
    art = done.json()
    assert art["status"] == "active"
    assert art["content_hash"] == sha(content) and art["size_bytes"] == len(content)
    assert (art["session_id"], art["agent_id"], art["metadata"]) == ("ps", "ag", {"k": "v"})
    assert art["content_type"] == "application/x-weights"
    created = datetime.strptime(art["created_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    expires = datetime.strptime(art["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert expires - created == timedelta(hours=1)  # the TTL counts from completion

    again = c.post(f"/v1/artifacts/{aid}/complete")
    assert again.status_code == 200 and again.json() == art  # idempotent
    assert c.get(f"/v1/artifacts/{aid}").json() == art
    listed = c.get("/v1/artifacts", params={"session_id": "ps"}).json()["artifacts"]
    assert [a["artifact_id"] for a in listed] == [aid]
    assert c.get("/v1/artifacts", params={"metadata.k": "v"}).json()["artifacts"][0]["artifact_id"] == aid
    assert c.get("/v1/whoami").json()["usage_storage_bytes"] == usage0 + len(content)

    assert_error(put(res, content), 409, "conflict", "complete")
    assert c.get(f"/v1/artifacts/{aid}").json() == art


def test_upload_url_is_not_shadowed_by_artifact_routes(c):
    r = c.post("/v1/artifacts/upload-url", json={"filename": "a", "size_bytes": 1})
    assert r.status_code == 200 and r.json()["status"] == "pending"
    assert_error(c.post("/v1/artifacts/upload-url/complete"), 404, "artifact_not_found")


@pytest.mark.parametrize("body,status,code,word", [
    ({"filename": "a"}, 400, "invalid_request", "size_bytes"),
    ({"filename": "a", "size_bytes": 0}, 400, "invalid_request", "size_bytes"),
    ({"filename": "a", "size_bytes": -5}, 400, "invalid_request", "size_bytes"),
    ({"filename": "a", "size_bytes": "10"}, 400, "invalid_request", "size_bytes"),
    ({"filename": "a", "size_bytes": True}, 400, "invalid_request", "size_bytes"),
    ({"filename": "a", "size_bytes": 1.5}, 400, "invalid_request", "size_bytes"),
    ({"size_bytes": 10}, 400, "invalid_request", "filename"),
    ({"filename": "a", "size_bytes": 10, "session_id": "no spaces"}, 400, "invalid_request", "session_id"),
    ({"filename": "a", "size_bytes": 10, "metadata": {"k": 1}}, 400, "invalid_request", "metadata"),
    ({"filename": "a", "size_bytes": 10, "ttl": "forever"}, 400, "invalid_request", "ttl"),
    ({"filename": "a", "size_bytes": 10, "content_type": "bad"}, 400, "invalid_request", "content_type"),
    ({"filename": "a", "size_bytes": 5 * 10**9 + 1}, 413, "file_too_large", "size_bytes"),
])
def test_upload_url_validation(box, c, body, status, code, word):
    before = snapshot(box)
    assert_error(c.post("/v1/artifacts/upload-url", json=body), status, code, word)
    assert_nothing_left(box, before)


def test_upload_url_plan_limits(box):
    with new_client(box, "tiny") as tiny:  # presigned max 200,000; storage 250,000
        assert_error(tiny.post("/v1/artifacts/upload-url", json={"filename": "a", "size_bytes": 200_001}),
                     413, "file_too_large")
        assert reserve(tiny, 200_000)["status"] == "pending"
        up = tiny.post("/v1/artifacts", files={"file": ("a", os.urandom(100_000))})
        assert up.status_code == 201
        assert_error(tiny.post("/v1/artifacts/upload-url", json={"filename": "a", "size_bytes": 160_000}),
                     403, "quota_exceeded")
    with new_client(box, "nopresign") as gated:
        assert_error(gated.post("/v1/artifacts/upload-url", json={"filename": "a", "size_bytes": 10}),
                     403, "quota_exceeded", "resigned")


@pytest.mark.parametrize("send", ["short", "long", "short-chunked", "long-chunked"])
def test_put_must_be_exactly_the_reserved_size(box, c, send):
    res = reserve(c, 100_000)
    before = snapshot(box)
    content = os.urandom(99_999 if send.startswith("short") else 100_001)
    if send.endswith("chunked"):
        r = put(res, (content[i:i + 8192] for i in range(0, len(content), 8192)))
    else:
        r = put(res, content)
    assert_error(r, 400, "invalid_request", "100,000")
    assert_nothing_left(box, before)
    assert_error(c.post(f"/v1/artifacts/{res['artifact_id']}/complete"), 400, "upload_not_found")
    ok = put(res, os.urandom(100_000))  # the reservation is still usable
    assert ok.status_code == 200


def test_put_cut_off_mid_body_keeps_nothing(box, c):
    res = reserve(c, 3_000_000)
    before = snapshot(box)
    parts = urlsplit(res["upload_url"])
    raw = RawRequest(box, "PUT", f"{parts.path}?{parts.query}", {"Content-Length": "3000000"})
    raw.send(os.urandom(1_500_000))
    wait_for(lambda: temp_files(box), what="the PUT to start staging")
    raw.abort()
    assert_nothing_left(box, before)


def test_retried_put_replaces_the_earlier_bytes(box, c):
    first, second = os.urandom(50_000), os.urandom(50_000)
    res = reserve(c, 50_000)
    aid = res["artifact_id"]
    assert put(res, first).status_code == 200
    tenant = sql(box, "SELECT tenant_id FROM artifacts WHERE artifact_id = ?", (aid,))[0][0]
    first_blob = f"{tenant}/{sha(first)[:2]}/{sha(first)}"
    assert first_blob in blob_files(box)  # kept while the pending row points at it
    assert put(res, second).status_code == 200
    assert first_blob not in blob_files(box)  # replaced, and nothing else referenced it
    assert row(box, aid)[2] == sha(second)
    art = c.post(f"/v1/artifacts/{aid}/complete").json()
    assert art["content_hash"] == sha(second)
    assert temp_files(box) == []


def test_signed_url_tampering_and_expiry(box, c):
    res = reserve(c, 10)
    aid = res["artifact_id"]
    url = res["upload_url"]
    q = parse_qs(urlsplit(url).query)
    expires, sig = q["e"][0], q["s"][0]
    other = reserve(c, 10)["artifact_id"]
    flipped = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    cases = [
        f"{box.url}/u/{aid}?e={expires}&s={flipped}",                 # signature altered
        f"{box.url}/u/{aid}?e={int(expires) + 3600}&s={sig}",          # expiry pushed out
        f"{box.url}/u/{other}?e={expires}&s={sig}",                    # another artifact
        f"{box.url}/u/{aid}?e={expires}",                              # no signature
        f"{box.url}/u/{aid}",
        f"{box.url}/u/art_AAAAAAAAAAAAAAAA?e={expires}&s={sig}",       # no such artifact
    ]
    before = snapshot(box)
    for bad in cases:
        assert_error(httpx.put(bad, content=b"0123456789"), 403, "invalid_signature")
    assert_nothing_left(box, before)
    # a validly signed URL whose expiry has passed
    secret = (box.data_dir / "secret.key").read_text().strip().encode()
    tenant = sql(box, "SELECT tenant_id FROM artifacts WHERE artifact_id = ?", (aid,))[0][0]
    past = int((datetime.now(UTC) - timedelta(minutes=1)).timestamp())
    expired = UrlSigner(secret).sign("PUT", aid, tenant, past, extra="10")
    assert_error(httpx.put(f"{box.url}/u/{aid}?e={past}&s={expired}", content=b"0123456789"),
                 403, "url_expired")
    # the same values signed for GET do not open a PUT
    wrong_method = UrlSigner(secret).sign("GET", aid, tenant, int(expires), extra="10")
    assert_error(httpx.put(f"{box.url}/u/{aid}?e={expires}&s={wrong_method}", content=b"0123456789"),
                 403, "invalid_signature")
    assert_nothing_left(box, before)
    assert put(res, b"0123456789").status_code == 200


def test_complete_after_the_session_was_sealed_is_409(box, c):
    assert c.post("/v1/artifacts", files={"file": ("a", b"open")},
                  data={"session_id": "seal-later"}).status_code == 201
    res = reserve(c, 20, session_id="seal-later")
    assert put(res, os.urandom(20)).status_code == 200
    assert c.post("/v1/sessions/seal-later/seal").status_code == 200
    usage = c.get("/v1/whoami").json()["usage_storage_bytes"]
    assert_error(c.post(f"/v1/artifacts/{res['artifact_id']}/complete"), 409, "session_sealed", "seal-later")
    assert c.get(f"/v1/artifacts/{res['artifact_id']}").json()["status"] == "pending"
    assert c.get("/v1/whoami").json()["usage_storage_bytes"] == usage
    count = [s for s in c.get("/v1/sessions").json()["sessions"] if s["session_id"] == "seal-later"]
    assert count[0]["artifact_count"] == 1
    # reserving into the sealed session is refused up front
    assert_error(c.post("/v1/artifacts/upload-url", json={"filename": "a", "size_bytes": 5,
                                                          "session_id": "seal-later"}),
                 409, "session_sealed")


def test_complete_dedups_against_existing_bytes(box):
    with new_client(box) as client:
        content = os.urandom(80_000)
        direct = client.post("/v1/artifacts", files={"file": ("d.bin", content)}).json()
        usage = client.get("/v1/whoami").json()["usage_storage_bytes"]
        res = reserve(client, len(content))
        assert put(res, content).status_code == 200
        art = client.post(f"/v1/artifacts/{res['artifact_id']}/complete").json()
        assert art["content_hash"] == direct["content_hash"]
        assert art["artifact_id"] != direct["artifact_id"]
        assert client.get("/v1/whoami").json()["usage_storage_bytes"] == usage
        tenant = sql(box, "SELECT tenant_id FROM artifacts WHERE artifact_id = ?", (art["artifact_id"],))[0][0]
        assert sql(box, "SELECT refs, live_refs FROM blobs WHERE tenant_id = ? AND sha256 = ?",
                   (tenant, art["content_hash"])) == [(2, 2)]


def test_storage_quota_is_rechecked_after_dedup_at_complete(box):
    with new_client(box, "tiny") as tiny:  # 250,000 bytes
        res = reserve(tiny, 60_000)                         # fits when reserved (0 + 60,000)
        assert put(res, os.urandom(60_000)).status_code == 200
        a = tiny.post("/v1/artifacts", files={"file": ("a", os.urandom(100_000))}).json()
        tiny.post("/v1/artifacts", files={"file": ("b", os.urandom(100_000))})
        before = snapshot(box)
        assert_error(tiny.post(f"/v1/artifacts/{res['artifact_id']}/complete"), 403, "quota_exceeded")
        assert snapshot(box) == before                       # still pending, nothing billed
        assert tiny.delete(f"/v1/artifacts/{a['artifact_id']}").status_code == 200
        done = tiny.post(f"/v1/artifacts/{res['artifact_id']}/complete")
        assert done.status_code == 200 and done.json()["status"] == "active"
        assert tiny.get("/v1/whoami").json()["usage_storage_bytes"] == 160_000


def test_concurrent_completes_activate_once(box):
    with new_client(box) as client:
        key = client.headers["authorization"].split(" ", 1)[1]
        res = reserve(client, 30_000)
        assert put(res, os.urandom(30_000)).status_code == 200
    results: list[httpx.Response] = []
    barrier = threading.Barrier(6)

    def worker():
        with box.client(key) as cl:
            barrier.wait()
            results.append(cl.post(f"/v1/artifacts/{res['artifact_id']}/complete"))

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert [r.status_code for r in results] == [200] * 6
    assert len({r.text for r in results}) == 1
    with box.client(key) as cl:
        assert cl.get("/v1/whoami").json()["usage_storage_bytes"] == 30_000


def test_deleted_reservation_refuses_bytes_and_completion(box, c):
    res = reserve(c, 10)
    aid = res["artifact_id"]
    assert c.delete(f"/v1/artifacts/{aid}").status_code == 200
    assert_error(put(res, b"0123456789"), 410, "artifact_already_deleted")
    assert_error(c.post(f"/v1/artifacts/{aid}/complete"), 410, "artifact_already_deleted")


def test_complete_of_unknown_or_foreign_artifacts_is_404(box, c):
    res = reserve(c, 10)
    assert put(res, b"0123456789").status_code == 200
    with new_client(box) as stranger:
        assert_error(stranger.post(f"/v1/artifacts/{res['artifact_id']}/complete"), 404,
                     "artifact_not_found")
    assert_error(c.post("/v1/artifacts/art_AAAAAAAAAAAAAAAA/complete"), 404, "artifact_not_found")
    assert c.get(f"/v1/artifacts/{res['artifact_id']}").json()["status"] == "pending"
