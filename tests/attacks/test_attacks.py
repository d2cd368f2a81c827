"""The box as an attacker meets it: hostile names and paths, header injection, forged and
replayed signed URLs and cursors, other tenants' keys, key guessing, oversize and trickled
bodies, malformed multipart and JSON. Every attack must get the error envelope with the
right code and leave nothing behind (no row, no blob, no temp file, no usage change), and
oversize bodies must not grow the server's memory.

The endpoint suites already test each route's own validation; this file attacks across routes
and checks the end state after each attack.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from artifacta_box.security.signing import UrlSigner
from artifacta_box.services import tenants
from tests.helpers import (
    BoxServer,
    files_under,
    key_of,
    new_tenant,
    read_blob,
    sha,
    signer,
    sql,
    tenant_id,
    upload,
    with_query,
)

# Timing- and load-sensitive (trickled bodies against 2 s timeouts, the server's RSS under
# oversize bodies): one at a time, on one xdist worker.
pytestmark = pytest.mark.serial

MB = 1024 * 1024

# Limits big enough that buffering a body would show in the server's RSS, small enough to be
# cheap to exceed; short timeouts so trickled requests are cut off quickly.
ATTACK_CONFIG = """
[server]
request_timeout = 2
response_timeout = 4
keep_alive_timeout = 2

[tenants]
default_plan = "attack"

[plans.attack]
rate_sustained = 100000
rate_burst = 100000
max_multipart_size = "24MB"
max_json_size = "12MB"
max_presigned_size = "24MB"

[logging]
access_log = false
"""


@pytest.fixture(scope="module")
def box(tmp_path_factory) -> Iterator[BoxServer]:
    srv = BoxServer(tmp_path_factory.mktemp("attacks") / "box", config=ATTACK_CONFIG).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def tenant(box) -> Iterator[tuple[str, httpx.Client]]:
    """The attacker's own tenant (module-wide: the attacks compare the whole box's state)."""
    name, client = new_tenant(box, prefix="a")
    yield name, client
    client.close()


@pytest.fixture(scope="module")
def c(tenant) -> httpx.Client:
    return tenant[1]


# ---------------------------------------------------------------------------- helpers


def state(box: BoxServer) -> dict[str, Any]:
    """Everything a request could leave behind."""
    return {
        "tmp": sorted(files_under(box.data_dir / "tmp")),
        "blob_files": sorted(files_under(box.data_dir / "blobs")),
        "artifacts": sql(box, "SELECT artifact_id, state, expires_at FROM artifacts ORDER BY 1"),
        "blobs": sql(box, "SELECT tenant_id, sha256, refs, live_refs FROM blobs ORDER BY 1, 2"),
        "usage": sql(box, "SELECT tenant_id, storage_bytes FROM tenants ORDER BY 1"),
        "sessions": sql(box, "SELECT tenant_id, session_id, artifact_count, sealed_at FROM sessions "
                             "ORDER BY 1, 2"),
        "links": sql(box, "SELECT link_id, revoked_at FROM links ORDER BY 1"),
        "metadata": sql(box, "SELECT count(*) FROM artifact_metadata"),
        "idempotency": sql(box, "SELECT count(*) FROM idempotency_keys"),
    }


def settle(box: BoxServer, timeout: float = 15.0) -> None:
    """Wait until no staging file is left (a refused stream is cleaned up as it unwinds)."""
    deadline = time.monotonic() + timeout
    while files_under(box.data_dir / "tmp"):
        if time.monotonic() > deadline:
            raise AssertionError(f"temp files left behind: {files_under(box.data_dir / 'tmp')}")
        time.sleep(0.05)


def envelope(status: int, body: bytes | dict, code: str | set[str], expect: int | None = None) -> dict:
    data = json.loads(body) if isinstance(body, bytes | bytearray) else body
    assert isinstance(data, dict) and set(data) == {"error"}, data
    err = data["error"]
    codes = {code} if isinstance(code, str) else code
    assert err["code"] in codes, err
    assert err["status"] == status, (status, err)
    if expect is not None:
        assert status == expect, (status, err)
    assert isinstance(err["message"], str) and err["message"] and "Traceback" not in err["message"]
    return err


def check(resp: httpx.Response, status: int, code: str | set[str]) -> dict:
    assert resp.headers.get("content-type", "").startswith("application/json"), resp.headers
    return envelope(resp.status_code, resp.content, code, status)


def rss_kib(box: BoxServer) -> int:
    for line in Path(f"/proc/{box.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


class Raw:
    """A hand-written HTTP/1.1 exchange on a plain socket, for bodies httpx would not send."""

    def __init__(self, box: BoxServer, head: bytes, timeout: float = 30) -> None:
        self.sock = socket.create_connection(("127.0.0.1", box.port), timeout=timeout)
        self.sock.sendall(head)

    def send(self, data: bytes) -> bool:
        """False once the server has stopped reading (closed or reset the connection)."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def response(self) -> tuple[int, dict[str, str], bytes]:
        buf = b""
        try:
            while b"\r\n\r\n" not in buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
            head, _, body = buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            headers = {k.strip().lower(): v.strip() for k, v in
                       (line.split(":", 1) for line in lines[1:] if ":" in line)}
            length = int(headers.get("content-length", "0"))
            while len(body) < length:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                body += chunk
            return status, headers, body
        finally:
            self.sock.close()


def auth_head(method: str, path: str, key: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {key}",
             *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# ---------------------------------------------------------------------------- names and paths

TRAVERSAL_NAMES = [
    "../../../../etc/passwd",
    "..\\..\\..\\windows\\system32\\config\\sam",
    "/etc/shadow",
    "a/../../../secret.key",
    "../artifacta.db",
    "~/.ssh/id_rsa",
    "%2e%2e%2f%2e%2e%2fsecret.key",
    "blobs/1/aa/bb/" + "a" * 64,
    "CON",
    ".hidden",
    "x" * 255,
    "\U0001f642" * 60,
    "\u202egpj.exe",  # right-to-left override: a label, shown as is
    'quote"semi;colon=eq.txt',
]


@pytest.mark.parametrize("name", TRAVERSAL_NAMES, ids=range(len(TRAVERSAL_NAMES)))
def test_filenames_are_labels_never_paths(box, c, name):
    before_outside = files_under(box.data_dir.parent) - {
        str(Path(box.data_dir.name) / p) for p in files_under(box.data_dir)}
    before_inside = {p for p in files_under(box.data_dir) if not p.startswith(("blobs/", "tmp/"))}
    content = secrets.token_bytes(200)
    grant = c.post("/v1/artifacts/upload-url", json={
        "filename": name, "content_type": "application/octet-stream", "size_bytes": 200}).json()
    assert httpx.put(grant["upload_url"], content=content,
                     headers=grant["upload_headers"]).status_code == 200
    records = [
        c.post("/v1/artifacts", data={"filename": name}, files={"file": ("x", content)}).json(),
        c.post("/v1/artifacts", json={"filename": name, "content": base64.b64encode(content).decode()}).json(),
        c.post(f"/v1/artifacts/{grant['artifact_id']}/complete").json(),
    ]
    for record in records:
        assert record["filename"] == name, record
        assert record["content_hash"] == sha(content)
        got = httpx.get(c.get(f"/v1/artifacts/{record['artifact_id']}/download-url").json()["download_url"])
        assert got.status_code == 200 and got.content == content
        assert got.headers["content-disposition"].startswith("attachment")
        listed = c.get("/v1/artifacts", params={"filename": name}).json()["artifacts"]
        assert record["artifact_id"] in {a["artifact_id"] for a in listed}
    # the bytes exist once and nowhere else: inside the database (a small body), the presigned
    # PUT's file dropped as a duplicate when its complete found them there
    tid = sql(box, "SELECT tenant_id FROM artifacts WHERE artifact_id = ?",
              (records[0]["artifact_id"],))[0][0]
    sh = sha(content)
    assert sql(box, "SELECT location, refs FROM blobs WHERE sha256 = ?", (sh,)) == [("inline", 3)]
    assert read_blob(box, tid, sh) == content
    assert not (box.data_dir / "blobs" / str(tid) / sh[:2] / sh).exists()
    after_outside = files_under(box.data_dir.parent) - {
        str(Path(box.data_dir.name) / p) for p in files_under(box.data_dir)}
    assert after_outside == before_outside, after_outside - before_outside
    after_inside = {p for p in files_under(box.data_dir) if not p.startswith(("blobs/", "tmp/"))}
    assert after_inside <= before_inside | {"artifacta.db-wal", "artifacta.db-shm"}, \
        after_inside - before_inside


@pytest.mark.parametrize("name", ["", ".", "..", " ", "x" * 256, "a\x00b", "a\r\nb", "a\nb",
                                  "tab\there", "del\x7f", "nel\x85", "ls\u2028", "ps\u2029"])
def test_absurd_filenames_are_refused_on_every_upload_path(box, c, name):
    before = state(box)
    content = b"abc"
    for resp in (
        c.post("/v1/artifacts", data={"filename": name}, files={"file": (name, content)}),
        c.post("/v1/artifacts", json={"filename": name, "content": base64.b64encode(content).decode()}),
        c.post("/v1/artifacts/upload-url", json={"filename": name, "size_bytes": 3}),
    ):
        err = check(resp, 400, "invalid_request")
        assert "filename" in err["message"], err
    settle(box)
    assert state(box) == before


TRAVERSAL_URLS = [
    "/v1/artifacts/..%2F..%2Fsecret.key",
    "/v1/artifacts/%2e%2e/%2e%2e/secret.key",
    "/v1/artifacts/../../secret.key",
    "/d/..%2F..%2Fsecret.key?e=9999999999&s=x",
    "/d/../secret.key",
    "/l/..%2Fartifacta.db",
    "/u/..%2F..%2Fartifacta.db?e=9999999999&s=x",
    "/secret.key",
    "/artifacta.db",
    "/blobs/",
    "/tmp/",
    "/../../../../etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "//etc/passwd",
    "/v1//whoami",
    "/v1/artifacts/art_AAAAAAAAAAAAAAAA%00",
    "/v1/artifacts/art_AAAAAAAAAAAAAAAA;.json",
]


@pytest.mark.parametrize("path", TRAVERSAL_URLS)
def test_url_paths_never_reach_the_data_directory(box, c, path):
    secret = (box.data_dir / "secret.key").read_bytes().strip()
    for method in ("GET", "PUT", "DELETE"):
        raw = Raw(box, auth_head(method, path, key_of(c), {"Content-Length": "0"}))
        status, headers, body = raw.response()
        assert 400 <= status < 500, (method, path, status, body)
        assert headers.get("content-type", "").startswith("application/json"), headers
        envelope(status, body, {"not_found", "method_not_allowed", "invalid_request",
                                "artifact_not_found", "link_not_found", "invalid_signature"})
        assert secret not in body and b"SQLite format" not in body
        assert status < 300 or status >= 400 and "location" not in headers  # never a redirect


# ---------------------------------------------------------------------------- header injection

INJECTED_TYPES = [
    "text/html\r\nSet-Cookie: stolen=1",
    "text/plain\nX-Injected: 1",
    "text/plain\r\n\r\n<script>alert(1)</script>",
    "text/plain; charset=utf-8\x00",
    "text/plain; charset=\"a\r\nb\"",
    "text/plain\u2028X-Injected: 1",
    "a" * 300 + "/b",
]


@pytest.mark.parametrize("ctype", INJECTED_TYPES, ids=range(len(INJECTED_TYPES)))
def test_content_types_that_would_inject_headers_are_refused(box, c, ctype):
    before = state(box)
    for resp in (
        c.post("/v1/artifacts", data={"content_type": ctype}, files={"file": ("x.txt", b"abc")}),
        c.post("/v1/artifacts", json={"filename": "x.txt", "content": "YWJj", "content_type": ctype}),
        c.post("/v1/artifacts/upload-url", json={"filename": "x.txt", "size_bytes": 3,
                                                 "content_type": ctype}),
    ):
        err = check(resp, 400, "invalid_request")
        assert "content_type" in err["message"]
    settle(box)
    assert state(box) == before


def test_a_part_header_cannot_smuggle_a_content_type(box, c):
    """A multipart part's own Content-Type line with junk after the type is refused or ignored,
    never echoed into a response header."""
    boundary = "injB0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.html\"\r\n"
            f"Content-Type: text/html; x=\"\r\n X-Injected: 1\"\r\n\r\nhello\r\n--{boundary}--\r\n").encode()
    r = c.post("/v1/artifacts", content=body,
               headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    if r.status_code == 201:
        dl = httpx.get(c.get(f"/v1/artifacts/{r.json()['artifact_id']}/download-url").json()["download_url"])
        assert "x-injected" not in dl.headers
        for _, value in dl.headers.raw:
            assert b"\r" not in value and b"\n" not in value
    else:
        check(r, 400, "invalid_request")


def test_active_content_is_served_as_an_inert_attachment(box, c):
    html = b"<html><script>document.cookie</script></html>"
    rec = upload(c, html, "page.html", "text/html")
    assert rec["content_type"] == "text/html"
    for url in (c.get(f"/v1/artifacts/{rec['artifact_id']}/download-url").json()["download_url"],
                c.post(f"/v1/artifacts/{rec['artifact_id']}/links").json()["url"]):
        r = httpx.get(url)
        assert r.status_code == 200 and r.content == html
        assert r.headers["content-disposition"].startswith("attachment")
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "set-cookie" not in r.headers


# ---------------------------------------------------------------------------- signed URLs


@pytest.fixture(scope="module")
def victim(box) -> Iterator[tuple[str, httpx.Client, dict]]:
    name, vc = new_tenant(box, prefix="v")
    rec = upload(vc, secrets.token_bytes(1000), "victim.bin")
    yield name, vc, rec
    vc.close()


def test_forged_truncated_and_cross_bound_download_urls_are_refused(box, c, victim):
    vname, vc, rec = victim
    vid = tenant_id(box, vname)
    mine = upload(c, b"mine", "mine.bin")
    url = vc.get(f"/v1/artifacts/{rec['artifact_id']}/download-url").json()["download_url"]
    sig = parse_qs(urlsplit(url).query)["s"][0]
    exp = parse_qs(urlsplit(url).query)["e"][0]
    my_url = c.get(f"/v1/artifacts/{mine['artifact_id']}/download-url").json()["download_url"]
    s = signer(box)
    far = int(time.time()) + 3600
    forged = [
        with_query(url, s=secrets.token_urlsafe(32)),                     # random signature
        with_query(url, s=sig[:-1]),                                      # truncated
        with_query(url, s=sig[: len(sig) // 2]),
        with_query(url, s=""),
        with_query(url, s=None),                                          # missing
        with_query(url, e=None),
        with_query(url, e=str(int(exp) + 1)),                             # extended expiry
        with_query(url, e="9" * 30),
        with_query(url, e="-1"),
        with_query(url, e="1e10"),
        url.replace(rec["artifact_id"], mine["artifact_id"]),             # victim's signature
        my_url.replace(mine["artifact_id"], rec["artifact_id"]),          # my signature
        # made with the real secret but bound to another tenant or method
        f"{box.url}/d/{rec['artifact_id']}?e={far}&s={s.sign('GET', rec['artifact_id'], vid + 1, far)}",
        f"{box.url}/d/{rec['artifact_id']}?e={far}&s={s.sign('PUT', rec['artifact_id'], vid, far)}",
        f"{box.url}/d/{rec['artifact_id']}?e={far}&s={s.sign('DELETE', rec['artifact_id'], vid, far)}",
        # made with another secret
        (f"{box.url}/d/{rec['artifact_id']}?e={far}&s="
        f"{UrlSigner(b'x' * 48).sign('GET', rec['artifact_id'], vid, far)}"),
    ]
    for bad in forged:
        r = httpx.get(bad)
        check(r, 403, "invalid_signature")
        assert r.content != b"" and rec["content_hash"] not in r.text
    # replayed after expiry: a genuine signature whose time has passed
    past = int(time.time()) - 5
    r = httpx.get(f"{box.url}/d/{rec['artifact_id']}?e={past}&s={s.sign('GET', rec['artifact_id'], vid, past)}")
    check(r, 403, "url_expired")
    assert httpx.get(url).status_code == 200  # the genuine URL still works


def test_forged_and_replayed_upload_urls_store_nothing(box, tenant):
    name, c = tenant
    tid = tenant_id(box, name)
    grant = c.post("/v1/artifacts/upload-url", json={"filename": "u.bin", "size_bytes": 10}).json()
    aid = grant["artifact_id"]
    s = signer(box)
    far = int(time.time()) + 3600
    past = int(time.time()) - 5
    download = c.get(f"/v1/artifacts/{upload(c, b'other')['artifact_id']}/download-url").json()
    before = state(box)
    attempts = [
        (with_query(grant["upload_url"], s=secrets.token_urlsafe(32)), 403, "invalid_signature"),
        (with_query(grant["upload_url"], s=parse_qs(urlsplit(grant["upload_url"]).query)["s"][0][:-2]),
         403, "invalid_signature"),
        (f"{box.url}/u/{aid}?e={far}&s={s.sign('PUT', aid, tid, far, extra='11')}", 403,
         "invalid_signature"),                                     # bound to another size
        (f"{box.url}/u/{aid}?e={far}&s={s.sign('GET', aid, tid, far, extra='10')}", 403,
         "invalid_signature"),                                     # a download signature
        (download["download_url"].replace("/d/", "/u/"), 403, "invalid_signature"),
        (f"{box.url}/u/{aid}?e={past}&s={s.sign('PUT', aid, tid, past, extra='10')}", 403,
         "url_expired"),                                           # replayed after expiry
    ]
    for url, status, code in attempts:
        check(httpx.put(url, content=b"0123456789"), status, code)
    settle(box)
    assert state(box) == before
    # the genuine URL works once; after complete it is a conflict, and nothing changes
    assert httpx.put(grant["upload_url"], content=b"0123456789").status_code == 200
    assert c.post(f"/v1/artifacts/{aid}/complete").json()["status"] == "active"
    after_complete = state(box)
    check(httpx.put(grant["upload_url"], content=b"9876543210"), 409, "conflict")
    settle(box)
    assert state(box) == after_complete


def test_forged_truncated_and_foreign_cursors_are_400(box):
    _, c = new_tenant(box, prefix="cur")
    _, vc = new_tenant(box, prefix="vcur")
    for i in range(5):
        upload(c, f"{i}".encode(), f"{i}.txt", session_id=f"s{i}")
        upload(vc, f"{i}".encode(), f"{i}.txt", session_id=f"s{i}")
    art_cursor = c.get("/v1/artifacts", params={"limit": 2}).json()["next_cursor"]
    ses_cursor = c.get("/v1/sessions", params={"limit": 2}).json()["next_cursor"]
    filt_cursor = c.get("/v1/artifacts", params={"limit": 1, "session_id": "s1"}).json()
    victim_cursor = vc.get("/v1/artifacts", params={"limit": 2}).json()["next_cursor"]
    assert art_cursor and ses_cursor and victim_cursor
    bad_artifact_cursors = [
        secrets.token_urlsafe(40), art_cursor[:-1], art_cursor[: len(art_cursor) // 2],
        art_cursor + "x", art_cursor[::-1], ses_cursor, victim_cursor, "é" * 10, "x" * 5000,
        base64.urlsafe_b64encode(b'[["0", ["9999", "art_x"]]]').decode(),
    ]
    for cur in bad_artifact_cursors:
        check(c.get("/v1/artifacts", params={"cursor": cur}), 400, "invalid_request")
    # a cursor is bound to its query: another filter cannot continue it
    if filt_cursor["next_cursor"]:
        check(c.get("/v1/artifacts", params={"session_id": "s2", "cursor": filt_cursor["next_cursor"]}),
              400, "invalid_request")
    for cur in (secrets.token_urlsafe(40), ses_cursor[:-1], art_cursor, "x" * 5000):
        check(c.get("/v1/sessions", params={"after": cur}), 400, "invalid_request")
    # the victim's own cursor works for the victim only
    assert vc.get("/v1/artifacts", params={"cursor": victim_cursor}).status_code == 200
    c.close()
    vc.close()


# ---------------------------------------------------------------------------- other tenants


def test_a_key_of_another_tenant_touches_nothing(box, victim):
    _, c = new_tenant(box, prefix="x")
    _, vc, rec = victim
    aid = rec["artifact_id"]
    upload(vc, b"in session", "s.txt", session_id="victim-session")
    link = vc.post(f"/v1/artifacts/{aid}/links").json()
    pending = vc.post("/v1/artifacts/upload-url", json={"filename": "p", "size_bytes": 3}).json()
    before = state(box)
    check(c.get(f"/v1/artifacts/{aid}"), 404, "artifact_not_found")
    check(c.delete(f"/v1/artifacts/{aid}"), 404, "artifact_not_found")
    check(c.post(f"/v1/artifacts/{aid}/extend-ttl", json={"ttl": "300d"}), 404, "artifact_not_found")
    check(c.get(f"/v1/artifacts/{aid}/download-url"), 404, "artifact_not_found")
    check(c.post(f"/v1/artifacts/{aid}/links"), 404, "artifact_not_found")
    check(c.post(f"/v1/artifacts/{pending['artifact_id']}/complete"), 404, "artifact_not_found")
    check(c.delete(f"/v1/links/{link['link_id']}"), 404, "link_not_found")
    check(c.post("/v1/sessions/victim-session/seal"), 404, "session_not_found")
    batch = c.post("/v1/artifacts/batch/download-urls", json={"artifact_ids": [aid]}).json()
    assert batch["results"][0]["error"]["code"] == "artifact_not_found"
    assert "download_url" not in batch["results"][0]
    assert c.get("/v1/artifacts", params={"session_id": "victim-session"}).json()["artifacts"] == []
    assert c.get("/v1/sessions").json()["sessions"] == []
    assert state(box) == before
    # the victim's things all still work
    assert httpx.get(link["url"]).status_code == 200
    assert vc.get(f"/v1/artifacts/{aid}").json()["expires_at"] == rec["expires_at"]
    assert upload(vc, b"still open", "o.txt", session_id="victim-session")["session_id"] == "victim-session"
    c.close()


def test_guessing_keys_in_parallel_hits_the_failed_auth_limit(make_server):
    srv = make_server(config="[security]\nfailed_auth_limit = 10\nfailed_auth_window = '1h'\n")
    guesses = ["ak_live_" + "".join(secrets.choice("abcdefghijklmnopqrstuvwxyzABCDEF0123456789")
                                    for _ in range(32)) for _ in range(60)]

    async def main() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=srv.url, timeout=60, limits=limits) as client:
            return await asyncio.gather(*(
                client.get("/v1/whoami", headers={"Authorization": f"Bearer {g}"}) for g in guesses))

    results = asyncio.run(main())
    statuses = sorted(r.status_code for r in results)
    # no more failures are answered 401 than the limit allows, however many arrive at once
    assert statuses.count(401) == 10, statuses
    assert statuses.count(429) == 50, statuses
    for r in results:
        check(r, r.status_code, "unauthorized" if r.status_code == 401 else "rate_limited")
    # the address is now over budget for wrong and malformed keys; the right key still passes
    for auth in ("Bearer nope", "Basic Zm9vOmJhcg==", "Bearer ak_live_" + "Z" * 32):
        r = httpx.get(srv.url + "/v1/whoami", headers={"Authorization": auth})
        check(r, 429, "rate_limited")
        assert int(r.headers["Retry-After"]) >= 1
    assert httpx.get(srv.url + "/v1/whoami", headers={"Authorization": f"Bearer {srv.key}"}).status_code == 200


def test_a_revoked_key_fails_and_counts_as_a_failed_attempt(make_server):
    srv = make_server(config="[security]\nfailed_auth_limit = 3\nfailed_auth_window = '1h'\n")
    key = srv.new_tenant("t")
    [key_id] = [k["key_id"] for k in srv.in_box(lambda box: tenants.list_keys(box, "t"))]
    assert httpx.get(srv.url + "/v1/whoami", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    srv.in_box(lambda box: tenants.revoke_key(box, key_id))
    codes = [httpx.get(srv.url + "/v1/whoami", headers={"Authorization": f"Bearer {key}"}).status_code
             for _ in range(4)]
    assert codes == [401, 401, 401, 429]


# ---------------------------------------------------------------------------- oversize bodies


def _stream_until_refused(box: BoxServer, head: bytes, total: int, piece: int = 256 * 1024,
                          chunked: bool = False, filler: bytes | None = None
                          ) -> tuple[int, dict[str, str], bytes, int]:
    """Send `head` then up to `total` body bytes (random, or `filler` repeated); stop when the
    server stops reading."""
    raw = Raw(box, head, timeout=60)
    sent = 0
    block = (filler * (piece // len(filler) + 1))[:piece] if filler else os.urandom(piece)
    while sent < total:
        data = block[: min(piece, total - sent)]
        frame = b"%x\r\n%s\r\n" % (len(data), data) if chunked else data
        if not raw.send(frame):
            break
        sent += len(data)
    if chunked and sent >= total:
        raw.send(b"0\r\n\r\n")
    status, headers, body = raw.response()
    return status, headers, body, sent


def test_oversize_bodies_of_every_kind_are_refused_without_memory_growth(box, c):
    key = key_of(c)
    grant = c.post("/v1/artifacts/upload-url", json={"filename": "big.bin", "size_bytes": 1000}).json()
    put_path = urlsplit(grant["upload_url"])
    put_target = f"{put_path.path}?{put_path.query}"
    aid = upload(c, b"x")["artifact_id"]
    mp = "multipart/form-data; boundary=B0undary"
    mp_start = (b'--B0undary\r\nContent-Disposition: form-data; name="file"; filename="big"\r\n'
                b"Content-Type: application/octet-stream\r\n\r\n")
    # warm the code paths first, so the baseline includes their imports and buffers
    upload(c, os.urandom(MB), "warm.bin")
    c.post("/v1/artifacts", json={"filename": "w", "content": base64.b64encode(os.urandom(MB)).decode()})
    settle(box)
    before = state(box)
    rss_before = rss_kib(box)

    cases = [
        # (what, method, target, content type, framing, bytes to offer, status, code).
        # "declared": Content-Length is the full size and the body follows (an upload route reads
        # and discards what it refused, so the client gets to read the answer); "head": a
        # Content-Length the server refuses from the headers alone; "chunked": no length at all.
        ("multipart, declared", "POST", "/v1/artifacts", mp, "declared", 40 * MB, 413,
         "file_too_large"),
        ("multipart, chunked", "POST", "/v1/artifacts", mp, "chunked", 40 * MB, 413,
         "file_too_large"),
        ("json upload, declared", "POST", "/v1/artifacts", "application/json", "declared", 40 * MB,
         413, "file_too_large"),
        ("json upload, chunked", "POST", "/v1/artifacts", "application/json", "chunked", 40 * MB,
         413, "file_too_large"),
        ("presigned PUT, declared", "PUT", put_target, "application/octet-stream", "declared",
         40 * MB, 400, "invalid_request"),
        ("presigned PUT, chunked", "PUT", put_target, "application/octet-stream", "chunked",
         40 * MB, 400, "invalid_request"),
        ("upload-url body, declared", "POST", "/v1/artifacts/upload-url", "application/json",
         "head", 50 * MB, 413, "file_too_large"),
        ("upload-url body, chunked", "POST", "/v1/artifacts/upload-url", "application/json",
         "chunked", 40 * MB, 413, "file_too_large"),
        ("extend-ttl body, chunked", "POST", f"/v1/artifacts/{aid}/extend-ttl", "application/json",
         "chunked", 40 * MB, 413, "file_too_large"),
        ("links body, declared", "POST", f"/v1/artifacts/{aid}/links", "application/json",
         "head", 50 * MB, 413, "file_too_large"),
        ("batch body, chunked", "POST", "/v1/artifacts/batch/download-urls", "application/json",
         "chunked", 40 * MB, 413, "file_too_large"),
        ("seal body, declared", "POST", "/v1/sessions/s/seal", "application/json", "head",
         50 * MB, 413, "file_too_large"),
    ]
    offered = 0
    for what, method, target, ctype, framing, total, status, code in cases:
        headers = {"Content-Type": ctype}
        first = mp_start if ctype == mp else b'{"filename": "a", "content": "' if "json" in ctype else b""
        if framing == "chunked":
            headers["Transfer-Encoding"] = "chunked"
            first = b"%x\r\n%s\r\n" % (len(first), first) if first else b""
        else:
            headers["Content-Length"] = str(total + len(first))
        head = auth_head(method, target, key, headers)
        if framing == "head":
            got, _, body = Raw(box, head).response()
        else:
            # A JSON upload is parsed as it streams: its filler must be base64 to be refused
            # for its size rather than as bad JSON.
            got, _, body, sent = _stream_until_refused(
                box, head + first, total, chunked=framing == "chunked",
                filler=b"A" if what.startswith("json upload") else None)
            offered += sent
        assert got == status, (what, got, body[:300])
        envelope(got, body, code)
    settle(box)
    assert state(box) == before
    grown = rss_kib(box) - rss_before
    print(f"oversize bodies: {offered / MB:.0f} MiB offered, server RSS {rss_before} -> "
          f"{rss_before + grown} KiB")
    # Buffering any one of these bodies would add tens of MiB; streaming adds little.
    assert grown < 16 * 1024, f"server RSS grew by {grown} KiB after {offered / MB:.0f} MiB offered"


def test_headers_and_urls_too_large_are_refused_with_the_envelope(box, c):
    for head in (
        auth_head("GET", "/v1/whoami", key_of(c), {"X-Big": "a" * 200_000}),
        auth_head("GET", "/v1/whoami", key_of(c), {f"X-{i}": "b" * 100 for i in range(2000)}),
        auth_head("GET", "/v1/artifacts?filename=" + "a" * 200_000, key_of(c), {}),
    ):
        status, headers, body = Raw(box, head).response()
        assert status == 431, (status, body[:200])  # not 413: no body was sent
        assert headers.get("content-type", "").startswith("application/json")
        err = envelope(status, body, "invalid_request")
        assert "headers" in err["message"]
    assert httpx.get(box.url + "/health").status_code == 200


# ---------------------------------------------------------------------------- slowloris


def _trickle(box: BoxServer, head: bytes, piece: bytes, every: float = 0.25,
             give_up: float = 60) -> tuple[bytes, bool]:
    """Send `head`, then `piece` every `every` seconds until the server answers or hangs up.
    Returns what it answered and whether it ended the exchange (False: we gave up waiting)."""
    sock = socket.create_connection(("127.0.0.1", box.port), timeout=every)
    sock.sendall(head)
    started = time.monotonic()
    received = b""
    try:
        while time.monotonic() - started < give_up:
            try:
                sock.sendall(piece)
            except OSError:
                return received, True
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return received, True
            if not data:
                return received, True
            received += data
            if b"\r\n\r\n" in received:
                return received, True
    finally:
        sock.close()
    return received, False


def test_trickled_requests_are_cut_off_and_leave_nothing(box, c):
    """Slowloris: one byte at a time, fast enough that no idle timer ever fires. Each exchange
    must be ended by the server (request_timeout for headers, response_timeout for bodies),
    with a 408 envelope, and leave no staging file."""
    key = key_of(c)
    grant = c.post("/v1/artifacts/upload-url", json={"filename": "t.bin", "size_bytes": 10_000}).json()
    put = urlsplit(grant["upload_url"])
    settle(box)
    before = state(box)
    file_part = b'--B\r\nContent-Disposition: form-data; name="file"; filename="s"\r\n\r\n'
    trickles = {
        "headers": (b"GET /v1/whoami HTTP/1.1\r\nHost: x\r\n", b"X-Slow: 1\r\n"),
        "multipart body": (auth_head("POST", "/v1/artifacts", key, {
            "Content-Type": "multipart/form-data; boundary=B", "Content-Length": "100000"})
            + file_part, b"x"),
        "json body": (auth_head("POST", "/v1/artifacts", key, {
            "Content-Type": "application/json", "Content-Length": "100000"})
            + b'{"filename": "s", "content": "', b"A"),
        "presigned body": (auth_head("PUT", f"{put.path}?{put.query}", key,
                                     {"Content-Length": "10000"}), b"y"),
        "chunked body": (auth_head("POST", "/v1/artifacts", key, {
            "Content-Type": "multipart/form-data; boundary=B", "Transfer-Encoding": "chunked"})
            + b"%x\r\n%s\r\n" % (len(file_part), file_part), b"1\r\nz\r\n"),
        "small json body": (auth_head("POST", "/v1/artifacts/upload-url", key, {
            "Content-Type": "application/json", "Content-Length": "5000"}), b" "),
    }
    with ThreadPoolExecutor(len(trickles)) as pool:
        results = dict(zip(trickles, pool.map(lambda t: _trickle(box, *t), trickles.values()),
                           strict=True))
    for what, (received, ended) in results.items():
        # the server ended the exchange by itself: a 408 envelope (or, at worst, a closed socket)
        assert ended, f"{what}: the server never ended the trickled exchange"
        if received:
            head_part, _, body = received.partition(b"\r\n\r\n")
            assert int(head_part.split(b" ", 2)[1]) == 408, (what, received[:300])
            envelope(408, body, "request_timeout")
    settle(box)
    assert state(box) == before
    assert httpx.get(box.url + "/health").status_code == 200


# ---------------------------------------------------------------------------- malformed multipart


def test_malformed_multipart_followed_by_a_flood_is_refused_early(box, c):
    """A malformed part is refused as soon as it is seen: the server does not read (or keep)
    the tens of MiB that follow it."""
    key = key_of(c)
    settle(box)
    before = state(box)
    rss_before = rss_kib(box)
    duplicate = (b'--B\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nfirst\r\n'
                 b'--B\r\nContent-Disposition: form-data; name="file"; filename="b"\r\n\r\n')
    no_disposition = b"--B\r\nContent-Type: text/plain\r\n\r\n"
    huge_part_header = b'--B\r\nContent-Disposition: form-data; name="file"; filename="' + b"a" * 200_000
    junk_after_boundary = b"--Bjunk\r\n"
    for ctype, start, code in (
        ("multipart/form-data; boundary=B", duplicate, "invalid_request"),
        ("multipart/form-data; boundary=B", no_disposition, "invalid_request"),
        ("multipart/form-data; boundary=B", huge_part_header, "invalid_request"),
        ("multipart/form-data; boundary=B", junk_after_boundary, "invalid_request"),
        ("multipart/form-data", b"--B\r\n", "invalid_request"),                 # no boundary
        ("multipart/form-data; boundary=" + "x" * 100, b"--x\r\n", "invalid_request"),
        ("multipart/mixed; boundary=B", b"--B\r\n", "invalid_request"),
    ):
        head = auth_head("POST", "/v1/artifacts", key, {"Content-Type": ctype,
                                                         "Transfer-Encoding": "chunked"})
        frame = b"%x\r\n%s\r\n" % (len(start), start)
        status, _, body, _ = _stream_until_refused(box, head + frame, 60 * MB, chunked=True)
        assert status in (400, 413), (ctype, start[:60], status, body[:200])
        envelope(status, body, {code, "file_too_large"})
    settle(box)
    assert state(box) == before
    assert rss_kib(box) - rss_before < 16 * 1024


def test_a_multipart_body_cut_off_mid_part_leaves_nothing(box, c):
    key = key_of(c)
    settle(box)
    before = state(box)
    head = auth_head("POST", "/v1/artifacts", key, {
        "Content-Type": "multipart/form-data; boundary=B", "Content-Length": "5000000"})
    raw = Raw(box, head + b'--B\r\nContent-Disposition: form-data; name="file"; filename="c"\r\n\r\n')
    raw.send(os.urandom(2_000_000))
    raw.sock.close()  # the client vanishes mid-part
    settle(box)
    assert state(box) == before


# ---------------------------------------------------------------------------- hostile JSON


def _deep(n: int) -> bytes:
    return b'{"a": ' * n + b"1" + b"}" * n


# Whole bodies no endpoint can take.
HOSTILE_BODIES: list[bytes] = [
    b"null", b"[]", b'"x"', b"1", b"true", b"[{}]", b" \r\n\t", b"\r",
    b"[" * 100_000 + b"]" * 100_000, _deep(50_000), b"[" * 5000,
    b"\xef\xbb\xbf{}", '{"a": "\u00e9"}'.encode("utf-16"), b'{"a": 1}\x00', b"{" + b" " * 10 + b"}}",
]
# Hostile JSON values, placed in each endpoint's own field.
HOSTILE_VALUES: list[bytes] = [
    b"9" * 20_000, b"1e999999", b"-1e999999", b"NaN", b"Infinity", b"-Infinity",
    b'"\\ud800"', b'"\xff\xfe"', b"[" * 100_000 + b"]" * 100_000, _deep(20_000),
    b"18446744073709551617", b"-0", b"1.0000000000000000001",
]
# endpoint -> (field the hostile values go into, the other fields of a valid body)
FIELD_OF: dict[str, tuple[str, bytes]] = {
    "upload": ("filename", b'"content": "YQ==", '),
    "upload-url": ("size_bytes", b'"filename": "a", '),
    "extend-ttl": ("ttl", b""),
    "links": ("expires_in", b""),
    "batch": ("artifact_ids", b""),
}

# endpoint -> bodies of the wrong types for its fields
WRONG_TYPES: dict[str, list[dict]] = {
    "upload": [
        {"filename": 1, "content": "YQ=="}, {"filename": ["a"], "content": "YQ=="},
        {"filename": "a", "content": 12}, {"filename": "a", "content": ["YQ=="]},
        {"filename": "a", "content": "YQ==", "metadata": "x"},
        {"filename": "a", "content": "YQ==", "metadata": {"k": 1}},
        {"filename": "a", "content": "YQ==", "metadata": {"k": {"n": "v"}}},
        {"filename": "a", "content": "YQ==", "metadata": [["k", "v"]]},
        {"filename": "a", "content": "YQ==", "ttl": 30}, {"filename": "a", "content": "YQ==", "ttl": "1e9d"},
        {"filename": "a", "content": "YQ==", "ttl": "99999999999d"},
        {"filename": "a", "content": "YQ==", "session_id": 5},
        {"filename": "a", "content": "YQ==", "content_encoding": None},
        {"filename": "a", "content": "YQ==", "content_type": 7},
    ],
    "upload-url": [
        {"filename": "a", "size_bytes": "10"}, {"filename": "a", "size_bytes": 1.5},
        {"filename": "a", "size_bytes": -1}, {"filename": "a", "size_bytes": 0},
        {"filename": "a", "size_bytes": True}, {"filename": "a", "size_bytes": None},
        {"filename": "a", "size_bytes": [10]}, {"filename": {}, "size_bytes": 10},
        {"filename": "a", "size_bytes": 10, "metadata": []},
        {"filename": "a", "size_bytes": 10, "ttl": ["1d"]},
    ],
    "extend-ttl": [{"ttl": 7}, {"ttl": []}, {"ttl": {}}, {"ttl": None}, {"ttl": "1e9d"},
                   {"ttl": "99999999999d"}, {"ttl": "-1d"}, {"ttl": "0d"}, {}],
    "links": [{"expires_in": "60"}, {"expires_in": 1.5}, {"expires_in": True},
              {"expires_in": -5}, {"expires_in": 0}, {"expires_in": 10**30},
              {"expires_in": [60]}],
    "batch": [{"artifact_ids": "art_x"}, {"artifact_ids": [1, 2]}, {"artifact_ids": []},
              {"artifact_ids": [f"art_{i:016d}" for i in range(21)]}, {"artifact_ids": [["a"]]},
              {"artifact_ids": {"a": 1}}, {"artifact_ids": None}, {}],
}


def _json_target(c: httpx.Client, endpoint: str, aid: str) -> str:
    return {
        "upload": "/v1/artifacts",
        "upload-url": "/v1/artifacts/upload-url",
        "extend-ttl": f"/v1/artifacts/{aid}/extend-ttl",
        "links": f"/v1/artifacts/{aid}/links",
        "batch": "/v1/artifacts/batch/download-urls",
    }[endpoint]


@pytest.mark.parametrize("endpoint", list(WRONG_TYPES))
def test_hostile_json_is_400_everywhere_and_changes_nothing(box, c, endpoint):
    aid = upload(c, b"target")["artifact_id"]
    target = _json_target(c, endpoint, aid)
    settle(box)
    before = state(box)
    field, rest = FIELD_OF[endpoint]
    bodies = [json.dumps(b).encode() for b in WRONG_TYPES[endpoint]] + HOSTILE_BODIES
    bodies += [b"{" + rest + b'"' + field.encode() + b'": ' + value + b"}" for value in HOSTILE_VALUES]
    for raw in bodies:
        r = c.post(target, content=raw, headers={"Content-Type": "application/json"})
        if endpoint == "upload-url" and r.status_code == 413:  # a number too large to reserve
            check(r, 413, "file_too_large")
            continue
        assert r.status_code == 400, (raw[:80], r.status_code, r.text[:300])
        check(r, 400, {"invalid_request", "ttl_exceeds_plan_limit"})
    settle(box)
    assert state(box) == before
    assert httpx.get(box.url + "/health").status_code == 200


def test_huge_size_bytes_are_refused_not_overflowed(box, c):
    before = state(box)
    for size in (10**30, 2**63, 2**64 + 1, 5 * 10**9 + 1):
        r = c.post("/v1/artifacts/upload-url", json={"filename": "h", "size_bytes": size})
        check(r, 413, "file_too_large")
    assert state(box) == before


def test_malformed_framing_headers_get_the_envelope(box, c):
    key = key_of(c)
    for extra in (
        {"Content-Length": "-1"},
        {"Content-Length": "0x10"},
        {"Content-Length": "4, 5"},
        {"Content-Length": "99999999999999999999999999"},
        {"Transfer-Encoding": "gzip"},
    ):
        head = auth_head("POST", "/v1/artifacts/upload-url", key,
                         {"Content-Type": "application/json", **extra})
        status, headers, body = Raw(box, head + b"{}").response()
        assert 400 <= status < 500, (extra, status, body[:200])
        assert headers.get("content-type", "").startswith("application/json"), (extra, headers)
        envelope(status, body, {"invalid_request", "file_too_large"})


def test_the_server_stays_healthy_after_every_attack(box):
    assert httpx.get(box.url + "/health").status_code == 200
    log = box.log_path.read_text(errors="replace")
    assert "Traceback" not in log and "unhandled error" not in log, log[-4000:]
    res = box.admin("check", "--json", check=False)
    assert res.returncode == 0, res.stdout + res.stderr



def test_whitespace_is_not_an_absent_value(box, c):
    """Only an empty value means "no filter"; whitespace is a malformed date (found by fuzzing)."""
    for path, param in (("/v1/sessions", "created_before"), ("/v1/sessions", "created_after"),
                        ("/v1/artifacts", "created_after"), ("/v1/artifacts", "created_before")):
        for value in ("\r", " ", "\t\n"):
            check(c.get(path, params={param: value}), 400, "invalid_request")
        assert c.get(path, params={param: ""}).status_code == 200
