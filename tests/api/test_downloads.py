"""Signed download URLs end to end against a real server: minting (single and batch), the bytes
with every header, ranges byte for byte, conditionals, HEAD, tampering and expiry, artifacts that
stop being live, rate charging, CORS, and the read fallback when sendfile is off."""

from __future__ import annotations

import email.message
import hashlib
import os
import re
import secrets
import socket
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from artifacta_box.services import tenants
from tests.api.download_helpers import (
    download_url,
    past_expiry,
    signed_url,
    tenant_id_of,
)
from tests.helpers import (
    INLINE_MAX,
    PAST,
    BoxServer,
    assert_error,
    delete_blob,
    new_tenant,
    sha,
    sql,
    upload,
    with_query,
)
from tests.backends import both_blob_backends  # noqa: F401 - runs the module on both backends

SMALL = secrets.token_bytes(5000)            # inline: kept in the database, served from memory
MEDIUM = secrets.token_bytes(INLINE_MAX + 5000)  # a file (or object) served with one read
LARGE = secrets.token_bytes(300 * 1024)      # streamed (over the 64 KiB inline limit)
HUGE = secrets.token_bytes(12 * 1024 * 1024 + 7)  # more than one 8 MiB sendfile slice


@pytest.fixture(scope="module")
def tenant(shared_server):
    name, client = new_tenant(shared_server)
    yield name, client
    client.close()


@pytest.fixture(scope="module")
def client(tenant) -> httpx.Client:
    return tenant[1]


@pytest.fixture(scope="module")
def other(shared_server) -> httpx.Client:
    """A second tenant, for the tenant-isolation checks."""
    _, c = new_tenant(shared_server)
    yield c
    c.close()


@pytest.fixture(scope="module")
def small(client):
    return upload(client, SMALL, "small.bin")


@pytest.fixture(scope="module")
def medium(client):
    return upload(client, MEDIUM, "medium.bin")


@pytest.fixture(scope="module")
def large(client):
    return upload(client, LARGE, "large.dat", "application/x-test")


# ------------------------------------------------------------------------------ minting and bytes


def test_download_url_is_absolute_signed_and_describes_the_artifact(shared_server, client, small):
    r = client.get(f"/v1/artifacts/{small['artifact_id']}/download-url")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"download_url", "expires_in", "filename", "content_type", "size_bytes"}
    assert body["expires_in"] == 3600
    assert (body["filename"], body["content_type"], body["size_bytes"]) == (
        "small.bin", "application/octet-stream", len(SMALL))
    url = body["download_url"]
    assert url.startswith(shared_server.url + f"/d/{small['artifact_id']}?")
    query = parse_qs(urlsplit(url).query)
    assert set(query) == {"e", "k", "s"}  # k: the minting key (the URL dies with it)
    assert time.time() + 3500 < int(query["e"][0]) <= time.time() + 3601


@pytest.mark.parametrize("which", ["small", "large"])
def test_the_url_serves_the_bytes_without_auth_with_every_header(request, shared_server, client, which):
    record = request.getfixturevalue(which)
    content = SMALL if which == "small" else LARGE
    r = httpx.get(download_url(client, record["artifact_id"]))  # no Authorization header
    assert r.status_code == 200
    assert r.content == content and sha(r.content) == record["content_hash"]
    h = r.headers
    assert h["content-length"] == str(len(content))
    assert h["content-type"] == record["content_type"]
    assert h["etag"] == f'"{record["content_hash"]}"'
    assert h["accept-ranges"] == "bytes"
    assert h["content-disposition"] == (
        f"attachment; filename=\"{record['filename']}\"; filename*=UTF-8''{record['filename']}")
    assert h["x-content-type-options"] == "nosniff"
    assert h["content-security-policy"] == "default-src 'none'; sandbox"
    assert h["cache-control"] == "private"
    assert int(h["x-ratelimit-limit"]) > 0 and "x-ratelimit-remaining" in h and "x-ratelimit-reset" in h
    assert h["x-request-id"].startswith("req_")


def test_a_multi_slice_download_streams_every_byte(client):
    record = upload(client, HUGE, "huge.bin")
    url = download_url(client, record["artifact_id"])
    h = hashlib.sha256()
    n = 0
    with httpx.stream("GET", url) as r:
        assert r.status_code == 200
        assert r.headers["content-length"] == str(len(HUGE))
        for chunk in r.iter_bytes(65536):
            h.update(chunk)
            n += len(chunk)
    assert n == len(HUGE) and h.hexdigest() == record["content_hash"]
    # a range that starts in the first sendfile slice and ends in the second
    start, end = 8 * 1024 * 1024 - 100, 8 * 1024 * 1024 + 100
    r = httpx.get(url, headers={"Range": f"bytes={start}-{end}"})
    assert r.status_code == 206 and r.content == HUGE[start:end + 1]


def _process_tree(pid: int) -> list[int]:
    """The server's pid and its descendants (a frozen binary runs the server in a child)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in os.listdir(f"/proc/{p}/task"):
            try:
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
            except OSError:
                continue
    return out


def _open_blob_descriptors(server: BoxServer) -> int:
    n = 0
    for pid in _process_tree(server.proc.pid):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                n += "/blobs/" in os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
    return n


def test_abandoned_downloads_release_their_files_and_the_box_keeps_serving(shared_server, client):
    record = upload(client, HUGE, "abandoned.bin")
    url = download_url(client, record["artifact_id"])
    for _ in range(6):
        with httpx.stream("GET", url) as r:  # read a little, then hang up
            assert r.status_code == 200
            next(r.iter_raw(65536))
    assert httpx.get(url, headers={"Range": "bytes=0-9"}).content == HUGE[:10]
    deadline = time.monotonic() + 15  # abandoned slices finish on their own; poll, bounded
    while _open_blob_descriptors(shared_server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _open_blob_descriptors(shared_server) == 0
    log = shared_server.log()
    assert "never retrieved" not in log and "BrokenPipeError" not in log


# ------------------------------------------------------------------------------ ranges

RANGE_CASES = [
    # (Range header, expected status, slice of the content as (start, stop) or None for 416)
    ("bytes=0-0", 206, lambda n: (0, 1)),                       # first byte
    ("bytes={last}-{last}", 206, lambda n: (n - 1, n)),         # last byte
    ("bytes=-1", 206, lambda n: (n - 1, n)),                    # suffix
    ("bytes=-100", 206, lambda n: (n - 100, n)),
    ("bytes=-{over}", 206, lambda n: (0, n)),                   # suffix longer than the file
    ("bytes=100-", 206, lambda n: (100, n)),                    # open-ended
    ("bytes=10-4099", 206, lambda n: (10, 4100)),
    ("bytes={near}-{over}", 206, lambda n: (n - 10, n)),        # past EOF: clamped
    ("bytes={size}-", 416, None),                               # unsatisfiable
    ("bytes={over}-{over}", 416, None),
    ("bytes=-0", 416, None),
    ("bytes=0-0,10-19", 200, lambda n: (0, n)),                 # multi-range: whole body
    ("bytes=5-1", 200, lambda n: (0, n)),                       # invalid: ignored
    ("pages=1-2", 200, lambda n: (0, n)),                       # other unit: ignored
]


CONTENTS = {"small": SMALL, "medium": MEDIUM, "large": LARGE}


@pytest.mark.parametrize("which", CONTENTS)
@pytest.mark.parametrize(("template", "status", "span"), RANGE_CASES,
                         ids=[c[0] for c in RANGE_CASES])
def test_ranges_byte_for_byte(request, client, which, template, status, span):
    record = request.getfixturevalue(which)
    content = CONTENTS[which]
    n = len(content)
    header = template.format(last=n - 1, size=n, near=n - 10, over=n + 1000)
    r = httpx.get(download_url(client, record["artifact_id"]), headers={"Range": header})
    assert r.status_code == status, (header, r.status_code, r.text[:200])
    if status == 416:
        assert r.headers["content-range"] == f"bytes */{n}"
        assert_error(r, 416, "range_not_satisfiable")
        return
    start, stop = span(n)
    assert r.content == content[start:stop]
    assert r.headers["content-length"] == str(stop - start)
    if status == 206:
        assert r.headers["content-range"] == f"bytes {start}-{stop - 1}/{n}"
    else:
        assert "content-range" not in r.headers


@pytest.mark.parametrize("which", CONTENTS)
def test_head_has_the_get_headers_and_no_body(request, client, which):
    url = download_url(client, request.getfixturevalue(which)["artifact_id"])
    get = httpx.get(url)
    head = httpx.head(url)
    assert head.status_code == 200 and head.content == b""
    for name in ("content-length", "content-type", "etag", "accept-ranges", "content-disposition",
                 "x-content-type-options", "content-security-policy", "cache-control"):
        assert head.headers[name] == get.headers[name], name
    # Range applies to GET only (RFC 9110): a HEAD with Range describes the whole artifact
    ranged = httpx.head(url, headers={"Range": "bytes=0-9"})
    assert ranged.status_code == 200 and \
        ranged.headers["content-length"] == str(len(CONTENTS[which]))


@pytest.mark.parametrize("which", CONTENTS)
def test_conditional_requests(request, client, which):
    record, content = request.getfixturevalue(which), CONTENTS[which]
    url = download_url(client, record["artifact_id"])
    etag = f'"{record["content_hash"]}"'
    r = httpx.get(url, headers={"If-None-Match": etag})
    assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == etag
    assert httpx.get(url, headers={"If-None-Match": f'"x", W/{etag}'}).status_code == 304
    assert httpx.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
    assert httpx.head(url, headers={"If-None-Match": "*"}).status_code == 304
    # If-Range: the same ETag honours the Range, another gives the whole current body
    r = httpx.get(url, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert r.status_code == 206 and r.content == content[:10]
    r = httpx.get(url, headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
    assert r.status_code == 200 and r.content == content


def test_keep_alive_connection_survives_streamed_and_ranged_responses(client, large, small):
    """Several downloads on one connection: each response is framed exactly (no over-send)."""
    urls = [download_url(client, large["artifact_id"]), download_url(client, small["artifact_id"])]
    with httpx.Client() as c:
        for _ in range(3):
            assert c.get(urls[0]).content == LARGE
            assert c.get(urls[0], headers={"Range": "bytes=70000-"}).content == LARGE[70000:]
            assert c.get(urls[1], headers={"Range": "bytes=-3"}).content == SMALL[-3:]
            assert c.head(urls[0]).headers["content-length"] == str(len(LARGE))


# ------------------------------------------------------------------------------ signatures


def test_every_tampered_part_is_invalid_signature(shared_server, client, other, small, large):
    url = download_url(client, small["artifact_id"])
    q = parse_qs(urlsplit(url).query)
    e, s = q["e"][0], q["s"][0]
    flipped = s[:-1] + ("A" if s[-1] != "A" else "B")
    tampered = [
        with_query(url, e=str(int(e) + 1)),
        with_query(url, e=str(int(e) - 1)),
        with_query(url, e="0" + e),
        with_query(url, e=""),
        with_query(url, e=None),
        with_query(url, s=flipped),
        with_query(url, s=s[:-2]),
        with_query(url, s=""),
        with_query(url, s=None),
        url.replace(small["artifact_id"], large["artifact_id"]),            # another artifact
        url.replace(small["artifact_id"], small["artifact_id"].upper()),    # path case
        url.replace(small["artifact_id"], "art_" + "A" * 16),               # unknown id
        url.replace(small["artifact_id"], "not-an-id"),
    ]
    for bad in tampered:
        r = httpx.get(bad)
        assert_error(r, 403, "invalid_signature")
        assert "x-ratelimit-remaining" not in r.headers  # refused before any charge
    # a URL for one tenant's artifact cannot be pointed at another tenant's
    theirs = upload(other, b"their bytes", "theirs.txt")
    assert_error(httpx.get(url.replace(small["artifact_id"], theirs["artifact_id"])), 403,
                 "invalid_signature")
    forged = signed_url(shared_server, theirs["artifact_id"], int(e),
                        tenant_id=tenant_id_of(shared_server, small["artifact_id"]))
    assert_error(httpx.get(forged), 403, "invalid_signature")


def test_a_download_url_is_bound_to_get_and_head(shared_server, client, small):
    url = download_url(client, small["artifact_id"])
    assert httpx.head(url).status_code == 200
    for method in ("PUT", "POST", "DELETE", "PATCH"):
        assert_error(httpx.request(method, url, content=b"x"), 405, "method_not_allowed")
    # the same expiry and signature on the upload route (PUT) are not a valid upload URL
    q = urlsplit(url).query
    r = httpx.put(f"{shared_server.url}/u/{small['artifact_id']}?{q}", content=SMALL)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "invalid_signature"


def test_an_expired_url_is_url_expired(shared_server, client, small):
    url = signed_url(shared_server, small["artifact_id"], past_expiry())
    assert_error(httpx.get(url), 403, "url_expired")
    assert httpx.head(url).status_code == 403  # HEAD: same status, no body
    # moving the expiry of an expired URL forward is tampering
    e = int(parse_qs(urlsplit(url).query)["e"][0])
    assert_error(httpx.get(with_query(url, e=str(e + 7200))), 403, "invalid_signature")
    # a validly signed expiry beyond the box's cap (7 days) is refused too
    far = signed_url(shared_server, small["artifact_id"], past_expiry() + 30 * 86400)
    assert_error(httpx.get(far), 403, "url_expired")
    # a fresh one minted the same way works: the test's signer is the server's
    ok = signed_url(shared_server, small["artifact_id"], past_expiry() + 600)
    assert httpx.get(ok).content == SMALL


def test_the_host_header_is_not_part_of_the_signature(shared_server, client, small):
    r = client.get(f"/v1/artifacts/{small['artifact_id']}/download-url",
                   headers={"Host": "box.internal:9999"})
    url = r.json()["download_url"]
    assert url.startswith("http://box.internal:9999/d/")  # built on the request's host
    path = url.split("box.internal:9999", 1)[1]
    got = httpx.get(shared_server.url + path, headers={"Host": "other.example"})
    assert got.status_code == 200 and got.content == SMALL


# ------------------------------------------------------------------------------ artifact state


def test_deleted_artifact_stops_serving_at_once(client):
    record = upload(client, b"soon deleted", "gone.txt", "text/plain")
    url = download_url(client, record["artifact_id"])
    assert httpx.get(url).status_code == 200
    assert client.delete(f"/v1/artifacts/{record['artifact_id']}").status_code == 200
    assert_error(httpx.get(url), 410, "artifact_already_deleted")
    assert httpx.head(url).status_code == 410
    assert_error(client.get(f"/v1/artifacts/{record['artifact_id']}/download-url"), 410,
                 "artifact_already_deleted")


def test_expired_artifact_stops_serving_at_once(shared_server, client):
    record = upload(client, b"soon expired", "old.txt", "text/plain")
    url = download_url(client, record["artifact_id"])
    sql(shared_server, "UPDATE artifacts SET expires_at = ? WHERE artifact_id = ?",
        (PAST, record["artifact_id"]))
    assert_error(httpx.get(url), 410, "artifact_expired")
    assert_error(client.get(f"/v1/artifacts/{record['artifact_id']}/download-url"), 410,
                 "artifact_expired")


def test_pending_unknown_and_foreign_artifacts(shared_server, client, other, small):
    r = client.post("/v1/artifacts/upload-url", json={
        "filename": "later.bin", "content_type": "application/octet-stream", "size_bytes": 10})
    assert r.status_code == 200, r.text
    assert_error(client.get(f"/v1/artifacts/{r.json()['artifact_id']}/download-url"), 400,
                 "upload_not_found")
    assert_error(client.get("/v1/artifacts/art_0000000000000000/download-url"), 404,
                 "artifact_not_found")
    assert_error(client.get("/v1/artifacts/whatever/download-url"), 404, "artifact_not_found")
    assert_error(other.get(f"/v1/artifacts/{small['artifact_id']}/download-url"), 404,
                 "artifact_not_found")
    assert_error(httpx.get(f"{shared_server.url}/v1/artifacts/{small['artifact_id']}/download-url"),
                 401, "unauthorized")


def test_a_missing_blob_is_an_internal_error_not_a_crash(shared_server, client):
    c = client
    record = upload(c, b"bytes that will vanish", "lost.txt", "text/plain")
    url = download_url(c, record["artifact_id"])
    h = record["content_hash"]
    tid = tenant_id_of(shared_server, record["artifact_id"])
    delete_blob(shared_server, tid, h)
    r = httpx.get(url)
    err = assert_error(r, 500, "internal_error")
    assert r.headers["x-request-id"] in err["message"]
    assert "/" not in err["message"].replace(r.headers["x-request-id"], "")  # no paths leak
    # HEAD says the same: no 200 for bytes a GET cannot deliver (signed URL and share link).
    assert httpx.head(url).status_code == 500
    link = c.post(f"/v1/artifacts/{record['artifact_id']}/links", json={}).json()
    assert httpx.head(link["url"]).status_code == 500


def test_suspended_tenant_downloads_are_refused(shared_server):
    name, c = new_tenant(shared_server)
    record = upload(c, b"suspended bytes", "s.txt", "text/plain")
    url = download_url(c, record["artifact_id"])
    shared_server.in_box(lambda box: tenants.set_suspended(box, name, True))
    err = assert_error(httpx.get(url), 401, "unauthorized")
    assert "suspended" in err["message"]
    shared_server.in_box(lambda box: tenants.set_suspended(box, name, False))
    assert httpx.get(url).content == b"suspended bytes"
    c.close()


# ------------------------------------------------------------------------------ hostile filenames

HOSTILE_NAMES = [
    'quo"te "x".txt',
    "back\\slash.txt",
    "../../etc/passwd",
    "/abs/path/name.sh",
    "naïve café.txt",
    "日本語 ファイル.csv",
    "emoji 🎉.png",
    "percent %0d%0a%22.txt",
    "semi;colon; filename=evil.exe",
    "'single'.txt",
]


def test_hostile_filenames_give_safe_parseable_headers(client):
    for name in HOSTILE_NAMES:
        # the `filename` field carries the exact name (a part filename is HTML5-escaped)
        r = client.post("/v1/artifacts", data={"filename": name},
                        files={"file": ("x", name.encode(), "text/plain")})
        assert r.status_code == 201, r.text
        record = r.json()
        assert record["filename"] == name
        r = httpx.get(download_url(client, record["artifact_id"]))
        assert r.status_code == 200 and r.content == name.encode()
        for _name, value in r.headers.raw:
            assert b"\r" not in value and b"\n" not in value
        cd = r.headers["content-disposition"]
        assert re.fullmatch(r"[\x20-\x7e]+", cd), cd
        m = re.fullmatch(r"attachment; filename=\"([^\"\\]*)\"; filename\*=UTF-8''(\S+)", cd)
        assert m, cd
        msg = email.message.Message()
        msg["Content-Disposition"] = f"attachment; filename*=UTF-8''{m.group(2)}"
        offered = msg.get_filename()
        assert "/" not in offered and "\\" not in offered
        assert offered == name.replace("/", "_").replace("\\", "_")


# ------------------------------------------------------------------------------ batch


def test_batch_answers_each_id_in_request_order(client, other, small, large):
    deleted = upload(client, b"batch deleted", "bd.txt", "text/plain")
    client.delete(f"/v1/artifacts/{deleted['artifact_id']}")
    foreign = upload(other, b"foreign", "f.txt", "text/plain")
    ids = [large["artifact_id"], "art_0000000000000000", deleted["artifact_id"],
           foreign["artifact_id"], "batch", small["artifact_id"], large["artifact_id"]]
    r = client.post("/v1/artifacts/batch/download-urls", json={"artifact_ids": ids})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["artifact_id"] for x in results] == ids
    expected = [None, "artifact_not_found", "artifact_already_deleted", "artifact_not_found",
                "artifact_not_found", None, None]
    for item, code, aid in zip(results, expected, ids, strict=True):
        if code is None:
            assert set(item) == {"artifact_id", "download_url", "expires_in", "filename",
                                 "content_type", "size_bytes"}
            assert item["expires_in"] == 3600
            content = LARGE if aid == large["artifact_id"] else SMALL
            assert httpx.get(item["download_url"]).content == content
        else:
            assert set(item) == {"artifact_id", "error"}
            assert item["error"]["code"] == code
            assert item["error"]["status"] in (404, 410)
            assert item["error"]["message"]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'["art_0000000000000000"]',
        b"{}",
        b'{"artifact_ids": "art_0000000000000000"}',
        b'{"artifact_ids": []}',
        b'{"artifact_ids": [1]}',
        b'{"artifact_ids": [null]}',
        b'{"artifact_ids": [' + b",".join([b'"art_0000000000000000"'] * 21) + b"]}",
    ],
    ids=["empty", "not-json", "array", "array-of-ids", "no-key", "string", "zero-ids",
         "number", "null", "21-ids"],
)
def test_a_malformed_batch_body_is_400(client, body):
    r = client.post("/v1/artifacts/batch/download-urls", content=body,
                    headers={"Content-Type": "application/json"})
    assert_error(r, 400, "invalid_request")


def test_batch_is_never_taken_for_an_artifact_id(client):
    assert_error(client.get("/v1/artifacts/batch/download-urls"), 405, "method_not_allowed")
    assert_error(client.get("/v1/artifacts/batch"), 404, "artifact_not_found")
    assert_error(client.get("/v1/artifacts/batch/download-url"), 404, "artifact_not_found")
    ok = client.post("/v1/artifacts/batch/download-urls",
                     json={"artifact_ids": ["art_0000000000000000"] * 20})
    assert ok.status_code == 200 and len(ok.json()["results"]) == 20


# ------------------------------------------------------------------------------ 64-bit sizes


def test_ranges_past_4_gib_on_a_5_gib_artifact(shared_server, client):
    """A 5 GiB artifact (a sparse blob file, registered in the real database: uploading 5 GiB
    would take the suite minutes) serves correct headers and ranges beyond 32-bit offsets."""
    c = client
    seed = upload(c, b"seed", "seed.txt", "text/plain")
    tid = tenant_id_of(shared_server, seed["artifact_id"])
    size = 5 * 1024**3
    digest = secrets.token_hex(32)
    path = shared_server.data_dir / "blobs" / str(tid) / digest[:2] / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    tail = b"THE-END-OF-FIVE-GIB"
    with open(path, "wb") as fh:
        fh.truncate(size - len(tail))
        fh.seek(size - len(tail))
        fh.write(tail)
    aid = "art_" + secrets.token_hex(8)
    sql(shared_server,
        "INSERT INTO artifacts (artifact_id, tenant_id, state, filename, content_type, size_bytes, "
        "content_hash, metadata, created_at) SELECT ?, tenant_id, 'active', 'five.bin', "
        "'application/octet-stream', ?, ?, '{}', created_at FROM artifacts WHERE artifact_id = ?",
        (aid, size, digest, seed["artifact_id"]))
    try:
        url = download_url(c, aid)
        head = httpx.head(url)
        assert head.status_code == 200 and head.headers["content-length"] == str(size)
        r = httpx.get(url, headers={"Range": f"bytes=-{len(tail)}"})
        assert r.status_code == 206 and r.content == tail
        assert r.headers["content-range"] == f"bytes {size - len(tail)}-{size - 1}/{size}"
        start = 4 * 1024**3 + 5
        r = httpx.get(url, headers={"Range": f"bytes={start}-{start + 99999}"})
        assert r.status_code == 206 and r.content == bytes(100000)
        assert_error(httpx.get(url, headers={"Range": f"bytes={size}-"}), 416, "range_not_satisfiable")
    finally:
        sql(shared_server, "DELETE FROM artifacts WHERE artifact_id = ?", (aid,))
        path.unlink()


def test_a_slow_but_steady_download_outlasts_the_response_timeout(tmp_path):
    """The response timeout is an idle timeout while bytes flow, sendfile or not: a 12 MiB
    download read slowly (a 64 KiB receive buffer drained 64 KiB every 10 ms, several times
    longer than the 0.5 s timeout) arrives whole."""
    srv = BoxServer(tmp_path / "box", config="[server]\nresponse_timeout = 0.5\n").start()
    try:
        with srv.client() as c:
            record = upload(c, HUGE, "steady.bin")
            parts = urlsplit(download_url(c, record["artifact_id"]))
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.settimeout(30)
        sock.connect(("127.0.0.1", srv.port))
        sock.sendall(f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Connection: close\r\n\r\n".encode())
        data = bytearray()
        while chunk := sock.recv(64 * 1024):
            data += chunk
            time.sleep(0.01)  # the slow reader under test
        sock.close()
    finally:
        srv.stop()
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    assert len(body) == len(HUGE) and sha(body) == record["content_hash"]


# ------------------------------------------------------------------------------ a configured box

SPECIAL_CONFIG = """
[server]
cors_origins = ["https://app.example"]
sendfile = false

[security]
max_signed_url_seconds = "10m"

[plans.tiny]
rate_sustained = 0.01
rate_burst = 4
anonymous_rate_sustained = 0.01
anonymous_rate_burst = 3
"""


@pytest.fixture(scope="module")
def special_server(tmp_path_factory):
    d = tmp_path_factory.mktemp("dlspecial") / "box"
    srv = BoxServer(d, config=SPECIAL_CONFIG).start()
    yield srv
    srv.stop()


def test_downloads_are_charged_to_the_artifacts_tenants_anonymous_bucket(special_server):
    """A leaked URL or link drains the tenant's anonymous bucket, never its API bucket."""
    key = special_server.new_tenant("tiny-tenant", "tiny")
    with special_server.client(key) as c:
        record = upload(c, b"rate me", "r.txt", "text/plain")                    # API 1
        url = download_url(c, record["artifact_id"])                             # API 2
        link = c.post(f"/v1/artifacts/{record['artifact_id']}/links", json={})   # API 3
        assert link.status_code == 201, link.text
        first = httpx.get(url)                                                    # anonymous 1
        assert first.status_code == 200 and first.headers["x-ratelimit-remaining"] == "2"
        assert first.headers["x-ratelimit-limit"] == "0.01"
        assert httpx.head(url).status_code == 200                                 # anonymous 2
        # a forged URL is refused before charging: 403, not 429
        assert_error(httpx.get(with_query(url, s="A" * 43)), 403, "invalid_signature")
        assert httpx.get(link.json()["url"]).status_code == 200                   # anonymous 3
        for drained in (httpx.get(url), httpx.get(link.json()["url"])):
            err = assert_error(drained, 429, "rate_limited")
            assert int(drained.headers["retry-after"]) >= 1
            assert err["retry_after_seconds"] == int(drained.headers["retry-after"])
            assert "Anonymous download" in err["message"]
        # the tenant's own API still answers, from its own bucket
        r = c.get("/v1/whoami")                                                   # API 4
        assert r.status_code == 200, r.text
        assert r.headers["x-ratelimit-remaining"] == "0"
        assert_error(c.get("/v1/whoami"), 429, "rate_limited")                   # API 5


def test_with_sendfile_off_the_bytes_and_ranges_are_identical(special_server):
    with special_server.client() as c:
        for content in (LARGE, HUGE):
            record = upload(c, content, "plain-read.bin")
            url = download_url(c, record["artifact_id"])
            r = httpx.get(url)
            assert r.status_code == 200 and sha(r.content) == record["content_hash"]
            r = httpx.get(url, headers={"Range": "bytes=65536-200000"})
            assert r.status_code == 206 and r.content == content[65536:200001]


def test_cors_preflight_and_allow_origin(special_server):
    with special_server.client() as c:
        record = upload(c, b"cors bytes", "c.txt", "text/plain")
        url = download_url(c, record["artifact_id"])
    r = httpx.options(url, headers={"Origin": "https://app.example",
                                    "Access-Control-Request-Method": "GET",
                                    "Access-Control-Request-Headers": "range"})
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == "https://app.example"
    assert "GET" in r.headers["access-control-allow-methods"]
    assert "range" in r.headers["access-control-allow-headers"].lower()
    denied = httpx.options(url, headers={"Origin": "https://evil.example",
                                         "Access-Control-Request-Method": "GET"})
    assert denied.status_code == 204 and "access-control-allow-origin" not in denied.headers
    got = httpx.get(url, headers={"Origin": "https://app.example"})
    assert got.status_code == 200 and got.headers["access-control-allow-origin"] == "https://app.example"
    assert "content-range" in got.headers["access-control-expose-headers"].lower()
    assert "access-control-allow-origin" not in httpx.get(url, headers={"Origin": "https://evil.example"}).headers
    # errors are readable by the allowed origin too
    bad = httpx.get(with_query(url, s="A" * 43), headers={"Origin": "https://app.example"})
    assert bad.status_code == 403 and bad.headers["access-control-allow-origin"] == "https://app.example"


def test_download_urls_never_outlive_the_configured_cap(special_server):
    with special_server.client() as c:
        record = upload(c, b"capped url", "cap.txt", "text/plain")
        body = c.get(f"/v1/artifacts/{record['artifact_id']}/download-url").json()
        assert body["expires_in"] == 600
        e = int(parse_qs(urlsplit(body["download_url"]).query)["e"][0])
        assert time.time() + 500 < e <= time.time() + 601
        assert httpx.get(body["download_url"]).content == b"capped url"
        batch = c.post("/v1/artifacts/batch/download-urls",
                       json={"artifact_ids": [record["artifact_id"]]}).json()["results"][0]
        assert batch["expires_in"] == 600
