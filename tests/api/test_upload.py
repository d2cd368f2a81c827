"""POST /v1/artifacts end to end: multipart (streamed, chunked, any field order) and JSON base64,
limits, validation, idempotency, sealed sessions — and that every refused upload leaves no row,
no blob, no temp file and no usage change behind."""

from __future__ import annotations

import base64
import json
import os
import threading
import uuid

import httpx
import pytest

from tests.api.upload_helpers import (
    LIMITS_CONFIG,
    MULTIPART,
    RawRequest,
    assert_nothing_left,
    form,
    part,
    post_form,
    snapshot,
)
from tests.backends import backend_env, both_blob_backends  # noqa: F401 - runs the module on both backends
from tests.helpers import (
    file_sized,
    BoxServer,
    assert_error,
    key_of,
    new_client,
    read_blob,
    sha,
    sql,
    temp_files,
    wait_for,
)


@pytest.fixture(scope="module")
def box(tmp_path_factory, request, blob_backend):
    """One server for the module, with small-limit plans (`tiny`, `nopresign`)."""
    srv = BoxServer(tmp_path_factory.mktemp("upload") / "box", config=LIMITS_CONFIG,
                    env=backend_env(request, blob_backend)).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def c(box):
    with new_client(box) as client:
        yield client


@pytest.fixture(scope="module")
def tenant_of_plan(box):
    """One tenant per plan for the module (each holds an artifact, so usage is not zero)."""
    clients: dict[str | None, httpx.Client] = {}

    def get(plan: str | None) -> httpx.Client:
        if plan not in clients:
            clients[plan] = new_client(box, plan)
            upload_bytes(clients[plan], b"an existing artifact " + uuid.uuid4().bytes)
        return clients[plan]

    yield get
    for client in clients.values():
        client.close()


def upload_bytes(client: httpx.Client, content: bytes, filename: str = "f.bin", **data: str):
    return client.post("/v1/artifacts", files={"file": (filename, content)}, data=data)


# ---------------------------------------------------------------------------- multipart


def test_multipart_upload_returns_201_with_the_record(c):
    content = os.urandom(3 * 1024 * 1024 + 17)  # several reads and staging slices
    r = c.post("/v1/artifacts", files={"file": ("model.bin", content, "application/x-model")},
               data={"session_id": "sess-1", "agent_id": "agent.7", "ttl": "2h",
                     "metadata": json.dumps({"run": "42", "stage": "train"})})
    assert r.status_code == 201, r.text
    rec = r.json()
    assert set(rec) == {"artifact_id", "filename", "content_type", "size_bytes", "content_hash",
                        "session_id", "agent_id", "metadata", "status", "expires_at", "created_at"}
    assert rec["artifact_id"].startswith("art_") and len(rec["artifact_id"]) == 20
    assert rec["filename"] == "model.bin"
    assert rec["content_type"] == "application/x-model"
    assert rec["size_bytes"] == len(content)
    assert rec["content_hash"] == sha(content)
    assert (rec["session_id"], rec["agent_id"]) == ("sess-1", "agent.7")
    assert rec["metadata"] == {"run": "42", "stage": "train"}
    assert rec["status"] == "active"
    assert rec["expires_at"] > rec["created_at"]
    # read-after-write
    assert c.get(f"/v1/artifacts/{rec['artifact_id']}").json() == rec
    listed = c.get("/v1/artifacts", params={"session_id": "sess-1"}).json()["artifacts"]
    assert [a["artifact_id"] for a in listed] == [rec["artifact_id"]]


def test_bytes_land_in_the_configured_store(box, c, blob_backend):
    content = file_sized(b"stored bytes ")  # smaller bodies stay inline: tests/api/test_inline_blobs.py
    rec = upload_bytes(c, content).json()
    tenant_id = sql(box, "SELECT tenant_id FROM artifacts WHERE artifact_id = ?", (rec["artifact_id"],))[0][0]
    h = rec["content_hash"]
    location = sql(box, "SELECT location FROM blobs WHERE tenant_id = ? AND sha256 = ?",
                   (tenant_id, h))[0][0]
    if blob_backend == "local":  # at its content address, which the row need not name
        assert location is None
        assert (box.data_dir / "blobs" / str(tenant_id) / h[:2] / h).read_bytes() == content
    else:  # at a fresh key of its own, named by the row
        assert location.startswith(f"s3:blobs/{tenant_id}/")
    assert read_blob(box, tenant_id, h) == content
    assert temp_files(box) == []


@pytest.mark.parametrize("chunked", [False, True])
def test_text_fields_after_the_file_part_and_chunked_bodies(c, chunked):
    content = b"\r\n--not-the-boundary\r\n" * 500
    body = form(
        part("agent_id", "late-agent"),
        part("file", content, filename="part-name.log", content_type="text/x-log"),
        part("filename", "field-name.txt"),
        part("metadata", '{"late": "yes"}'),
        part("session_id", "late-session"),
        part("ttl", "1d"),
    )
    r = post_form(c, body, chunked=chunked, piece=777)
    assert r.status_code == 201, r.text
    rec = r.json()
    assert rec["filename"] == "field-name.txt"          # the filename field wins
    assert rec["content_type"] == "text/x-log"          # the part's Content-Type
    assert (rec["session_id"], rec["agent_id"]) == ("late-session", "late-agent")
    assert rec["metadata"] == {"late": "yes"}
    assert rec["size_bytes"] == len(content)


def test_chunked_upload_without_content_length_from_a_generator(c):
    content = os.urandom(700_000)
    req = httpx.Request("POST", "http://x/v1/artifacts", files={"file": ("g.bin", content)},
                        data={"filename": "gen.bin"})
    body = req.read()
    r = c.post("/v1/artifacts", content=(body[i:i + 10000] for i in range(0, len(body), 10000)),
               headers={"Content-Type": req.headers["content-type"]})
    assert r.status_code == 201, r.text
    assert r.json()["size_bytes"] == len(content) and r.json()["filename"] == "gen.bin"
    assert "content-length" not in {k.lower() for k in r.request.headers}


@pytest.mark.parametrize("part_type,field_type,filename,expected", [
    ("text/csv", None, "a.bin", "text/csv"),                     # part type as given
    ("application/octet-stream", None, "report.pdf", "application/pdf"),  # generic: guessed
    (None, None, "notes.md", "text/markdown"),                   # no part type: guessed
    (None, None, "blob.zzunknown", "application/octet-stream"),  # nothing to guess from
    ("text/csv", "application/json", "a.csv", "application/json"),  # the field wins
    ("text/plain; charset=utf-8", None, "a.txt", "text/plain; charset=utf-8"),
])
def test_content_type_resolution(c, part_type, field_type, filename, expected):
    parts = [part("file", b"x", filename=filename, content_type=part_type)]
    if field_type:
        parts.append(part("content_type", field_type))
    r = post_form(c, form(*parts))
    assert r.status_code == 201, r.text
    assert r.json()["content_type"] == expected


def test_filename_from_rfc5987_and_httpx_quote_escaping(c):
    body = form(part("file", b"x", filename="fallback.txt",
                     extra_disposition="; filename*=UTF-8''%E2%82%AC%20rates.txt"))
    assert post_form(c, body).json()["filename"] == "\u20ac rates.txt"
    r = c.post("/v1/artifacts", files={"file": ('quote "me" \u00e9.txt', b"x")})
    assert r.json()["filename"] == 'quote "me" \u00e9.txt'


def test_empty_file_is_an_artifact(c):
    r = upload_bytes(c, b"", "empty.txt")
    assert r.status_code == 201
    assert r.json()["size_bytes"] == 0
    assert r.json()["content_hash"] == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


# ---------------------------------------------------------------------------- JSON base64


def test_json_base64_upload(c):
    content = os.urandom(100_000)
    r = c.post("/v1/artifacts", json={
        "filename": "data.bin", "content": base64.b64encode(content).decode(),
        "content_encoding": "base64", "session_id": "json-s", "metadata": {"via": "json"},
        "ttl": "3d",
    })
    assert r.status_code == 201, r.text
    rec = r.json()
    assert rec["content_hash"] == sha(content)
    assert rec["size_bytes"] == len(content)
    assert (rec["filename"], rec["session_id"], rec["metadata"]) == ("data.bin", "json-s", {"via": "json"})
    assert rec["content_type"] == "application/octet-stream"
    r = c.post("/v1/artifacts", json={"filename": "x.json", "content": base64.b64encode(b"{}").decode()})
    assert r.status_code == 201 and r.json()["content_type"] == "application/json"


def test_json_upload_streams_content_first_or_last_with_escapes_and_chunks(c, box):
    """The JSON body is decoded as it streams: content may come before the other fields,
    JSON escapes in it (`\\/`, `\\u0041`) are what json.loads would make of them, and a chunked
    body arrives in pieces; the same bytes are stored either way."""
    content = os.urandom(300_000)
    text = base64.b64encode(content).decode().replace("/", "\\/").replace("A", "\\u0041", 50)
    body = ('{"content": "' + text + '", "filename": "first.bin", "metadata": {"at": "start"}}'
            ).encode()

    def pieces():
        for i in range(0, len(body), 7001):
            yield body[i:i + 7001]

    r = c.post("/v1/artifacts", content=pieces(), headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    rec = r.json()
    assert (rec["content_hash"], rec["size_bytes"], rec["metadata"]) == (
        sha(content), len(content), {"at": "start"})
    before = snapshot(box)
    twice = c.post("/v1/artifacts", content=b'{"filename": "a", "content": "QUJD", "content": "QUJE"}',
                   headers={"Content-Type": "application/json"})
    assert_error(twice, 400, "invalid_request")
    assert "content" in twice.json()["error"]["message"]
    for bad in (b'{"filename": "a", "content": "QUJD"} trailing', b'{"content": "QUJD", "filena',
                b'{"content": "QU\xff"}', b'{"content": "QU\nJD", "filename": "a"}'):
        assert_error(c.post("/v1/artifacts", content=bad,
                            headers={"Content-Type": "application/json"}), 400, "invalid_request")
    assert_nothing_left(box, before)


def test_json_upload_at_the_decoded_cap(box, tenant_of_plan):
    tiny = tenant_of_plan("tiny")
    ok = tiny.post("/v1/artifacts", json={"filename": "cap.bin",
                                          "content": base64.b64encode(b"z" * 10000).decode()})
    assert ok.status_code == 201 and ok.json()["size_bytes"] == 10000
    before = snapshot(box)
    over = tiny.post("/v1/artifacts", json={"filename": "cap.bin",
                                            "content": base64.b64encode(b"z" * 10001).decode()})
    assert_error(over, 413, "file_too_large")
    assert_nothing_left(box, before)


# ---------------------------------------------------------------------------- refusals leave nothing


def _too_big_chunked(tiny: httpx.Client):
    body = form(part("file", os.urandom(300_000), filename="big.bin"))
    return post_form(tiny, body, chunked=True, piece=65536)


REFUSALS = [
    # (name, plan, request, status, code, words in the message)
    ("missing file part", None,
     lambda c: post_form(c, form(part("filename", "x.txt"))), 400, "invalid_request", ["file"]),
    ("two file parts", None,
     lambda c: post_form(c, form(part("file", b"1", "a"), part("file", b"2", "b"))), 400,
     "invalid_request", ["file"]),
    ("no boundary", None,
     lambda c: c.post("/v1/artifacts", content=b"x", headers={"Content-Type": "multipart/form-data"}),
     400, "invalid_request", ["boundary"]),
    ("unterminated body", None,
     lambda c: post_form(c, form(part("file", b"abc" * 1000, "a"), close=False)), 400,
     "invalid_request", ["closing boundary"]),
    ("unterminated chunked body", None,
     lambda c: post_form(c, form(part("file", b"abc" * 1000, "a"))[:-30], chunked=True), 400,
     "invalid_request", []),
    ("unsupported encoding", None,
     lambda c: c.post("/v1/artifacts", content=b"raw", headers={"Content-Type": "text/plain"}),
     400, "invalid_request", ["multipart/form-data", "application/json", "base64"]),
    ("no filename anywhere", None,
     lambda c: post_form(c, form(part("file", b"abc"))), 400, "invalid_request", ["filename"]),
    ("bad session_id", None,
     lambda c: upload_bytes(c, b"abc", session_id="-bad"), 400, "invalid_request", ["session_id"]),
    ("bad agent_id after the file", None,
     lambda c: post_form(c, form(part("file", b"abc", "a"), part("agent_id", "a b"))), 400,
     "invalid_request", ["agent_id"]),
    ("metadata not JSON", None,
     lambda c: upload_bytes(c, b"abc", metadata="{nope"), 400, "invalid_request", ["metadata"]),
    ("metadata bad key", None,
     lambda c: upload_bytes(c, b"abc", metadata='{"1bad": "v"}'), 400, "invalid_request", ["1bad"]),
    ("metadata non-string value", None,
     lambda c: upload_bytes(c, b"abc", metadata='{"k": 1}'), 400, "invalid_request", ["k"]),
    ("bad ttl", None,
     lambda c: upload_bytes(c, b"abc", ttl="10 days"), 400, "invalid_request", ["ttl"]),
    ("ttl over the plan", "free",
     lambda c: upload_bytes(c, b"abc", ttl="91d"), 400, "ttl_exceeds_plan_limit", ["ttl"]),
    ("never not allowed", "free",
     lambda c: upload_bytes(c, b"abc", ttl="never"), 400, "ttl_exceeds_plan_limit", ["never"]),
    ("bad content_type field", None,
     lambda c: upload_bytes(c, b"abc", content_type="not a type"), 400, "invalid_request",
     ["content_type"]),
    ("control character in filename", None,
     lambda c: post_form(c, form(part("filename", "a\x01b"), part("file", b"abc", "a"))), 400,
     "invalid_request", ["filename"]),
    ("text field too large", None,
     lambda c: upload_bytes(c, b"abc", metadata="x" * 70_000), 400, "invalid_request", ["metadata"]),
    ("bad Idempotency-Key", None,
     lambda c: c.post("/v1/artifacts", files={"file": ("a", b"abc")},
                      headers={"Idempotency-Key": "k" * 257}), 400, "invalid_request",
     ["Idempotency-Key"]),
    ("file over the multipart limit, chunked", "tiny", _too_big_chunked, 413, "file_too_large", []),
    ("json bad base64", None,
     lambda c: c.post("/v1/artifacts", json={"filename": "a", "content": "!!!!"}), 400,
     "invalid_request", ["base64"]),
    ("json padding inside", None,
     lambda c: c.post("/v1/artifacts", json={"filename": "a", "content": "AA==AAAA"}), 400,
     "invalid_request", ["base64"]),
    ("json bad length", None,
     lambda c: c.post("/v1/artifacts", json={"filename": "a", "content": "AAAAA"}), 400,
     "invalid_request", ["base64"]),
    ("json other encoding", None,
     lambda c: c.post("/v1/artifacts", json={"filename": "a", "content": "00",
                                             "content_encoding": "hex"}), 400, "invalid_request",
     ["content_encoding"]),
    ("json missing content", None,
     lambda c: c.post("/v1/artifacts", json={"filename": "a"}), 400, "invalid_request", ["content"]),
    ("json missing filename", None,
     lambda c: c.post("/v1/artifacts", json={"content": "AAAA"}), 400, "invalid_request",
     ["filename"]),
    ("json not an object", None,
     lambda c: c.post("/v1/artifacts", content=b"[1]", headers={"Content-Type": "application/json"}),
     400, "invalid_request", []),
    ("json not json", None,
     lambda c: c.post("/v1/artifacts", content=b"{", headers={"Content-Type": "application/json"}),
     400, "invalid_request", []),
    ("json body over the bound", "tiny",
     lambda c: c.post("/v1/artifacts", content=b'{"filename": "a", "content": "' + b"A" * 300_000
                      + b'"}', headers={"Content-Type": "application/json"}), 413,
     "file_too_large", []),
]


@pytest.mark.parametrize("name,plan,request_fn,status,code,words", REFUSALS,
                         ids=[r[0] for r in REFUSALS])
def test_refused_uploads_leave_nothing_behind(box, tenant_of_plan, name, plan, request_fn, status,
                                             code, words):
    client = tenant_of_plan(plan)
    before = snapshot(box)
    assert_error(request_fn(client), status, code, *words)
    assert_nothing_left(box, before)


def test_declared_content_length_over_the_limit_is_refused_before_the_body(box, tenant_of_plan):
    key = key_of(tenant_of_plan("tiny"))
    before = snapshot(box)
    raw = RawRequest(box, "POST", "/v1/artifacts", {
        "Authorization": f"Bearer {key}", "Content-Type": MULTIPART,
        "Content-Length": str(600 * 10**6)})
    raw.send(part("file", b"", filename="big.bin")[:-2])  # a few bytes; the rest never comes
    status, body = raw.response()
    assert status == 413 and body["error"]["code"] == "file_too_large"
    assert_nothing_left(box, before)
    raw = RawRequest(box, "POST", "/v1/artifacts", {
        "Authorization": f"Bearer {key}", "Content-Type": "application/json",
        "Content-Length": str(10**9)})
    status, body = raw.response()
    assert status == 413 and body["error"]["code"] == "file_too_large"


def test_multipart_just_under_and_over_the_file_limit(box, tenant_of_plan):
    tiny = tenant_of_plan("tiny")
    r = upload_bytes(tiny, os.urandom(100_000))
    assert r.status_code == 201
    before = snapshot(box)
    assert_error(upload_bytes(tiny, os.urandom(100_001)), 413, "file_too_large")
    assert_nothing_left(box, before)
    assert tiny.delete(f"/v1/artifacts/{r.json()['artifact_id']}").status_code == 200


def test_storage_quota_is_checked_after_dedup_and_refusal_leaves_nothing(box):
    with new_client(box, "tiny") as tiny:  # 250,000 bytes of storage
        a, b = os.urandom(90_000), os.urandom(90_000)
        assert upload_bytes(tiny, a).status_code == 201
        assert upload_bytes(tiny, b).status_code == 201
        used = tiny.get("/v1/whoami").json()["usage_storage_bytes"]
        assert used == 180_000
        before = snapshot(box)
        err = assert_error(upload_bytes(tiny, os.urandom(90_000)), 403, "quota_exceeded")
        assert "quota" in err["message"].lower()
        assert_nothing_left(box, before)
        # the same bytes again cost nothing, so they fit
        again = upload_bytes(tiny, a, "copy.bin")
        assert again.status_code == 201
        assert tiny.get("/v1/whoami").json()["usage_storage_bytes"] == 180_000


def test_upload_into_a_sealed_session_is_refused_before_streaming(box):
    with new_client(box) as client:
        key = key_of(client)
        assert upload_bytes(client, b"first", session_id="sealme").status_code == 201
        r = client.post("/v1/sessions/sealme/seal")
        assert r.status_code == 200, r.text
        before = snapshot(box)
        assert_error(upload_bytes(client, b"late", session_id="sealme"), 409, "session_sealed", "sealme")
        assert_error(client.post("/v1/artifacts", json={"filename": "a", "content": "AAAA",
                                                        "session_id": "sealme"}),
                     409, "session_sealed")
        assert_nothing_left(box, before)
        # refused as soon as the file part starts: the server does not wait for 50 MB of bytes
        raw = RawRequest(box, "POST", "/v1/artifacts", {
            "Authorization": f"Bearer {key}", "Content-Type": MULTIPART,
            "Content-Length": str(50 * 10**6)})
        raw.send(part("session_id", "sealme") + part("file", b"", filename="x.bin")[:-2] + b"x" * 1000)
        status, body = raw.response()
        assert status == 409 and body["error"]["code"] == "session_sealed"
        assert_nothing_left(box, before)


@pytest.mark.parametrize("chunked", [False, True])
def test_client_disconnect_mid_upload_leaves_nothing(box, tenant_of_plan, chunked):
    key = key_of(tenant_of_plan(None))
    before = snapshot(box)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": MULTIPART}
    if chunked:
        headers["Transfer-Encoding"] = "chunked"
    else:
        headers["Content-Length"] = str(30 * 10**6)
    raw = RawRequest(box, "POST", "/v1/artifacts", headers)
    # Past the first 8 MiB part on S3 (a multipart upload in progress), on disk locally.
    data = part("ttl", "1d") + part("file", b"", filename="cut.bin")[:-2] + os.urandom(10_000_000)
    if chunked:
        data = f"{len(data):x}\r\n".encode() + data + b"\r\n"
    raw.send(data)
    wait_for(lambda: temp_files(box), what="the upload to start staging")
    raw.abort()
    assert_nothing_left(box, before)
    log = box.log()
    assert "Traceback" not in log
    # Recorded as the client's doing (nginx's 499 "client closed request"), not a server error.
    wait_for(lambda: " 499 " in box.log(), what="the access log line of the abandoned upload")
    assert "POST /v1/artifacts 500" not in box.log()


# ---------------------------------------------------------------------------- idempotency


def test_idempotency_key_replays_the_same_request(box):
    with new_client(box) as client:
        headers = {"Idempotency-Key": "push-123"}
        first = client.post("/v1/artifacts", files={"file": ("a.txt", b"same")},
                            data={"metadata": '{"k": "v"}'}, headers=headers)
        assert first.status_code == 201 and "idempotent-replayed" not in first.headers
        usage = client.get("/v1/whoami").json()["usage_storage_bytes"]
        before = snapshot(box)
        again = client.post("/v1/artifacts", files={"file": ("a.txt", b"same")},
                            data={"metadata": '{"k": "v"}'}, headers=headers)
        assert again.status_code == 200
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
        assert_nothing_left(box, before)  # no new row, nothing billed
        assert client.get("/v1/whoami").json()["usage_storage_bytes"] == usage
        # same key, different request (metadata differs, as the CLI's key ignores it): new artifact
        other = client.post("/v1/artifacts", files={"file": ("a.txt", b"same")},
                            data={"metadata": '{"k": "other"}'}, headers=headers)
        assert other.status_code == 201
        assert other.json()["artifact_id"] != first.json()["artifact_id"]
        assert other.json()["metadata"] == {"k": "other"}
        # ... and the first request still replays the first artifact
        third = client.post("/v1/artifacts", files={"file": ("a.txt", b"same")},
                            data={"metadata": '{"k": "v"}'}, headers=headers)
        assert third.status_code == 200 and third.json()["artifact_id"] == first.json()["artifact_id"]
        # keys are per tenant
        with new_client(box) as stranger:
            s = stranger.post("/v1/artifacts", files={"file": ("a.txt", b"same")},
                              data={"metadata": '{"k": "v"}'}, headers=headers)
            assert s.status_code == 201 and s.json()["artifact_id"] != first.json()["artifact_id"]


def test_idempotency_replay_of_a_deleted_artifact_is_a_new_upload(box):
    with new_client(box) as client:
        headers = {"Idempotency-Key": "del-1"}
        first = client.post("/v1/artifacts", files={"file": ("a", b"x")}, headers=headers).json()
        assert client.delete(f"/v1/artifacts/{first['artifact_id']}").status_code == 200
        again = client.post("/v1/artifacts", files={"file": ("a", b"x")}, headers=headers)
        assert again.status_code == 201
        assert again.json()["artifact_id"] != first["artifact_id"]


def test_concurrent_identical_requests_with_one_key_create_one_artifact(box):
    with new_client(box) as client:
        key = key_of(client)
    content = os.urandom(400_000)
    n = 8
    barrier = threading.Barrier(n)
    results: list[httpx.Response] = []
    lock = threading.Lock()

    def worker():
        with box.client(key) as cl:
            barrier.wait()
            r = cl.post("/v1/artifacts", files={"file": ("race.bin", content)},
                        data={"session_id": "idem"}, headers={"Idempotency-Key": "race-key"})
        with lock:
            results.append(r)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == n
    assert sorted(r.status_code for r in results) == [200] * (n - 1) + [201]
    assert len({r.json()["artifact_id"] for r in results}) == 1
    aid = results[0].json()["artifact_id"]
    tenant = sql(box, "SELECT tenant_id FROM artifacts WHERE artifact_id = ?", (aid,))[0][0]
    assert sql(box, "SELECT count(*) FROM artifacts WHERE tenant_id = ?", (tenant,)) == [(1,)]
    assert sql(box, "SELECT artifact_count FROM sessions WHERE tenant_id = ?", (tenant,)) == [(1,)]
    assert sql(box, "SELECT storage_bytes FROM tenants WHERE tenant_id = ?", (tenant,)) == [(400_000,)]
    wait_for(lambda: not temp_files(box), what="staging files to be gone")


# ---------------------------------------------------------------------------- racing a seal


def test_uploads_racing_a_seal_are_either_committed_before_it_or_refused(box):
    with new_client(box) as client:
        key = key_of(client)
        opening = upload_bytes(client, b"opening", session_id="race").json()["artifact_id"]
    n = 12
    statuses: list[tuple[int, dict]] = []
    lock = threading.Lock()
    start = threading.Barrier(n + 1)

    def worker(i: int):
        with box.client(key) as cl:
            start.wait()
            if i % 2:  # half multipart, half JSON
                r = cl.post("/v1/artifacts", files={"file": (f"{i}.bin", os.urandom(50_000))},
                            data={"session_id": "race"})
            else:
                r = cl.post("/v1/artifacts", json={
                    "filename": f"{i}.bin", "session_id": "race",
                    "content": base64.b64encode(os.urandom(50_000)).decode()})
        with lock:
            statuses.append((r.status_code, r.json()))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    with box.client(key) as cl:
        start.wait()
        seal = cl.post("/v1/sessions/race/seal")
        assert seal.status_code == 200, seal.text
        sealed_at = seal.json()["sealed_at"]
        for t in threads:
            t.join(60)
        late = cl.post("/v1/artifacts", files={"file": ("late", b"late")}, data={"session_id": "race"})
        assert_error(late, 409, "session_sealed")
        committed = [body for status, body in statuses if status == 201]
        refused = [body for status, body in statuses if status != 201]
        assert len(statuses) == n
        assert all(body["error"]["code"] == "session_sealed" for body in refused), refused
        assert all(body["created_at"] <= sealed_at for body in committed)
        listed = cl.get("/v1/artifacts", params={"session_id": "race", "limit": 200}).json()["artifacts"]
        assert sorted(a["artifact_id"] for a in listed) == sorted(
            [b["artifact_id"] for b in committed] + [opening])
        sessions = cl.get("/v1/sessions").json()["sessions"]
        race = next(s for s in sessions if s["session_id"] == "race")
        assert race["artifact_count"] == len(committed) + 1
        assert race["is_sealed"] is True
    wait_for(lambda: not temp_files(box), what="staging files to be gone")
