"""The web console over plain HTTP (no browser): the redirect at `/`, the session cookie, CSRF
refusals, key re-checks, rate limits, request counting and access logs, the failed-sign-in
budget shared with the API, the preview byte route's headers, and the pages' own headers.
What a person sees and does in a real browser is tests/browser/."""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.console_helpers import Tenant, csrf_of, make_tenant
from tests.helpers import BoxServer, wait_for

PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
            "media-src 'self'; frame-src 'self'; connect-src 'self'; font-src 'self'; "
            "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")

CONFIG = """
[plans.slow]
rate_sustained = 0.01
rate_burst = 4

[plans.monthly]
requests_per_month = 3
"""


class Sample:
    def __init__(self, filename: str, content_type: str, data: bytes) -> None:
        self.filename, self.content_type, self.data = filename, content_type, data


@pytest.fixture(scope="module")
def box(tmp_path_factory) -> BoxServer:
    srv = BoxServer(tmp_path_factory.mktemp("console-http") / "box", config=CONFIG).start()
    yield srv
    srv.stop()


def browser(srv: BoxServer) -> httpx.Client:
    """A client that behaves like a same-origin browser tab (it sends the Origin header)."""
    return httpx.Client(base_url=srv.url, headers={"Origin": srv.url, "Accept": "text/html"},
                        timeout=30)


def signed_in(srv: BoxServer, tenant: Tenant) -> httpx.Client:
    client = browser(srv)
    page = client.get("/console/sign-in")
    resp = client.post("/console/sign-in", data={"csrf": csrf_of(page.text), "api_key": tenant.key,
                                                 "next": "/console/"})
    assert resp.status_code == 303 and resp.headers["location"] == "/console/", resp.text
    return client


def test_root_redirects_browsers_and_keeps_json_for_api_clients(box):
    to_console = httpx.get(box.url + "/", headers={"Accept": "text/html,application/xhtml+xml"})
    assert to_console.status_code == 302 and to_console.headers["location"] == "/console/"
    api = httpx.get(box.url + "/")
    assert api.status_code == 404
    assert api.json()["error"]["code"] == "not_found"
    assert httpx.get(box.url + "/console").headers["location"] == "/console/"


def test_console_can_be_turned_off(make_server):
    srv = make_server(config="[console]\nenabled = false\n")
    assert httpx.get(srv.url + "/", headers={"Accept": "text/html"}).status_code == 404
    off = httpx.get(srv.url + "/console/")
    assert off.status_code == 404 and off.json()["error"]["code"] == "not_found"


def test_sign_in_sets_a_signed_http_only_strict_cookie_naming_only_the_key_id(box):
    tenant = make_tenant(box)
    client = browser(box)
    page = client.get("/console/sign-in")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == PAGE_CSP
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
    assert 'for="api_key">API key</label>' in page.text
    resp = client.post("/console/sign-in", data={"csrf": csrf_of(page.text), "api_key": tenant.key})
    assert resp.status_code == 303
    cookie = next(v for k, v in resp.headers.multi_items()
                  if k == "set-cookie" and v.startswith("artifacta_console="))
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"path", "max-age", "samesite", "httponly"} <= attributes
    assert "Path=/console" in cookie and "Max-Age=43200" in cookie and "SameSite=Strict" in cookie
    assert tenant.key not in cookie and tenant.key[8:] not in cookie
    # A tampered cookie is no session at all.
    value = client.cookies.get("artifacta_console")
    assert client.get("/console/").status_code == 200
    tampered = value[:-2] + ("AA" if not value.endswith("AA") else "BB")
    resp = httpx.get(box.url + "/console/", headers={"Cookie": f"artifacta_console={tampered}"})
    assert resp.status_code == 303 and resp.headers["location"].startswith("/console/sign-in")


def test_wrong_keys_are_refused_with_the_apis_message(box):
    client = browser(box)
    token = csrf_of(client.get("/console/sign-in").text)
    for key, message in (("ak_live_" + "0" * 32, "The API key is invalid or has been revoked."),
                         ("not a key", "That is not an API key")):
        resp = client.post("/console/sign-in", data={"csrf": token, "api_key": key})
        assert resp.status_code == 401 and message in resp.text
        assert 'role="alert"' in resp.text


def test_sign_in_goes_back_only_to_a_console_page(box):
    tenant = make_tenant(box)
    client = browser(box)
    token = csrf_of(client.get("/console/sign-in").text)
    for nxt, where in (("/console/sessions?after=x", "/console/sessions?after=x"),
                       ("//evil.example/console/", "/console/"), ("https://evil.example/", "/console/")):
        client.cookies.clear()
        token = csrf_of(client.get("/console/sign-in").text)
        resp = client.post("/console/sign-in", data={"csrf": token, "api_key": tenant.key, "next": nxt})
        assert resp.headers["location"] == where


def test_posts_need_the_consoles_origin_and_this_sessions_token(box):
    tenant = make_tenant(box)
    record = tenant.upload(Sample("keep.txt", "text/plain", b"keep"))
    client = signed_in(box, tenant)
    target = f"/console/artifacts/{record['artifact_id']}/delete"
    token = csrf_of(client.get(target).text)
    refusals = [
        ({}, {"Origin": box.url}),                                   # no token
        ({"csrf": "0" * 40}, {"Origin": box.url}),                   # a wrong token
        ({"csrf": token}, {"Origin": "http://evil.example"}),        # a foreign origin
        ({"csrf": token}, {"Origin": "null"}),
        ({"csrf": token}, {"Origin": "", "Referer": "http://evil.example/x"}),
    ]
    for form, headers in refusals:
        if headers.get("Origin") == "":
            resp = httpx.post(box.url + target, data=form, cookies=client.cookies,
                              headers={"Referer": headers["Referer"]})
        else:
            resp = client.post(target, data=form, headers=headers)
        assert resp.status_code == 403, (form, headers, resp.status_code)
        assert "Refused" in resp.text
    with tenant.api() as api:
        assert api.get(f"/v1/artifacts/{record['artifact_id']}").status_code == 200
    # The same form from the console itself (Referer only, as some browsers send) works.
    resp = httpx.post(box.url + target, data={"csrf": token}, cookies=client.cookies,
                      headers={"Referer": box.url + target})
    assert resp.status_code == 303
    with tenant.api() as api:
        assert api.get(f"/v1/artifacts/{record['artifact_id']}").status_code == 410


def test_a_token_from_before_sign_in_is_useless_after_it(box):
    tenant = make_tenant(box)
    client = browser(box)
    before = csrf_of(client.get("/console/sign-in").text)
    client.post("/console/sign-in", data={"csrf": before, "api_key": tenant.key})
    resp = client.post("/console/keys", data={"csrf": before, "name": "x"})
    assert resp.status_code == 403


def test_every_request_rechecks_the_key(box):
    tenant = make_tenant(box)
    client = signed_in(box, tenant)
    assert client.get("/console/keys").status_code == 200
    box.admin("keys", "revoke", tenant.key_id)
    resp = client.get("/console/keys")
    assert resp.status_code == 303 and resp.headers["location"] == "/console/sign-in"
    assert any(v.startswith("artifacta_console=") and "Max-Age=0" in v
               for k, v in resp.headers.multi_items() if k == "set-cookie")


def test_console_requests_are_counted_and_access_logged_with_the_tenant(box):
    tenant = make_tenant(box)
    client = signed_in(box, tenant)  # the sign-in counts as one request
    for path in ("/console/", "/console/sessions", "/console/keys", "/console/audit"):
        assert client.get(path).status_code == 200
    deadline = time.monotonic() + 10
    while True:  # the meter flushes about once a second; whoami adds what is pending
        with tenant.api() as api:
            used = api.get("/v1/whoami").json()["usage_requests_month"]
        if used >= 6 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert used == 6  # sign-in + 4 pages + this whoami
    line = rf"GET /console/sessions 200 .*route=/console/sessions tenant={tenant.name} "
    # The server writes its log lines in batches (every 0.2 s): wait for the batch.
    wait_for(lambda: re.search(line, box.log()), what="the access-log line of /console/sessions")


@pytest.mark.serial  # a token bucket or failure window running while the requests run
def test_console_requests_are_rate_limited_like_api_requests(box):
    tenant = make_tenant(box, plan="slow")  # a bucket of 4, refilled once in 100 s
    client = signed_in(box, tenant)
    statuses = [client.get("/console/keys").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    resp = client.get("/console/")
    assert resp.status_code == 429 and int(resp.headers["retry-after"]) >= 1
    assert "Rate limit of" in resp.text
    with tenant.api() as api:  # the same bucket as the API
        assert api.get("/v1/whoami").status_code == 429


def test_the_monthly_quota_applies_to_console_requests(box):
    tenant = make_tenant(box, plan="monthly")
    client = signed_in(box, tenant)
    statuses = [client.get("/console/keys").status_code for _ in range(3)]
    assert statuses[-1] == 403
    assert "Monthly request quota of 3 reached" in client.get("/console/keys").text


@pytest.mark.serial  # a token bucket or failure window running while the requests run
def test_failed_sign_ins_spend_the_failed_auth_budget_of_the_api(make_server):
    srv = make_server(config="[security]\nfailed_auth_limit = 3\nfailed_auth_window = \"10m\"\n")
    tenant = make_tenant(srv)
    client = browser(srv)
    token = csrf_of(client.get("/console/sign-in").text)
    for _ in range(2):
        wrong = client.post("/console/sign-in", data={"csrf": token, "api_key": "ak_live_" + "1" * 32})
        assert wrong.status_code == 401
    assert httpx.get(srv.url + "/v1/whoami", headers={"Authorization": "Bearer ak_live_" + "2" * 32}).status_code == 401
    # Three failures from this address (two sign-ins, one API call): the next wrong key, at
    # either door, is told to back off; a right key is never refused for others' failures.
    blocked = client.post("/console/sign-in", data={"csrf": token, "api_key": "ak_live_" + "3" * 32})
    assert blocked.status_code == 429 and "Too many failed authentication attempts" in blocked.text
    assert int(blocked.headers["retry-after"]) >= 1
    assert httpx.get(srv.url + "/v1/whoami",
                     headers={"Authorization": "Bearer ak_live_" + "4" * 32}).status_code == 429
    assert httpx.get(srv.url + "/v1/whoami", headers={"Authorization": f"Bearer {tenant.key}"}).status_code == 200
    right = client.post("/console/sign-in", data={"csrf": token, "api_key": tenant.key})
    assert right.status_code == 303


def test_preview_bytes_are_inline_only_for_the_allowlist_and_keep_the_sandbox(box):
    tenant = make_tenant(box)
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    cases = [
        (Sample("a.png", "image/png", png), "inline", "image/png"),
        (Sample("b.png", "application/octet-stream", png), "inline", "image/png"),  # by name
        (Sample("c.svg", "image/svg+xml", b"<svg xmlns='http://www.w3.org/2000/svg'/>"), "inline", "image/svg+xml"),
        (Sample("d.html", "text/html", b"<script>alert(1)</script>"), "inline", "text/html"),
        (Sample("e.txt", "text/plain", b"text"), "attachment", "text/plain"),
        (Sample("f.js", "application/javascript", b"alert(1)"), "attachment", "application/javascript"),
        (Sample("g.bin", "application/x-msdownload", b"MZ"), "attachment", "application/x-msdownload"),
        (Sample("h.html", "application/octet-stream", b"<b>x</b>"), "inline", "text/html"),
    ]
    client = signed_in(box, tenant)
    for sample, disposition, ctype in cases:
        record = tenant.upload(sample)
        resp = client.get(f"/console/artifacts/{record['artifact_id']}/raw")
        assert resp.status_code == 200 and resp.content == sample.data, sample.filename
        assert resp.headers["content-disposition"].split(";")[0] == disposition, sample.filename
        assert resp.headers["content-type"] == ctype, sample.filename
        assert resp.headers["x-content-type-options"] == "nosniff"
        assert resp.headers["content-security-policy"] == "default-src 'none'; sandbox"
    ranged = client.get(f"/console/artifacts/{tenant.uploaded[0]['artifact_id']}/raw",
                        headers={"Range": "bytes=0-7"})
    assert ranged.status_code == 206 and ranged.content == png[:8]


def test_another_tenants_artifact_is_not_found_anywhere_in_the_console(box):
    mine, theirs = make_tenant(box), make_tenant(box)
    record = theirs.upload(Sample("secret.txt", "text/plain", b"secret"))
    client = signed_in(box, mine)
    for path in ("", "/raw", "/download", "/delete"):
        resp = client.get(f"/console/artifacts/{record['artifact_id']}{path}")
        assert resp.status_code == 404, path
        assert f"Artifact {record['artifact_id']} was not found." in resp.text
    token = csrf_of(client.get("/console/keys").text)
    resp = client.post(f"/console/keys/{theirs.key_id}/revoke", data={"csrf": token})
    assert resp.status_code == 303
    with theirs.api() as api:
        assert api.get("/v1/whoami").status_code == 200  # their key still works


def test_download_redirects_to_a_fresh_signed_url(box):
    tenant = make_tenant(box)
    record = tenant.upload(Sample("data.csv", "text/csv", b"a,b\n1,2\n"))
    client = signed_in(box, tenant)
    resp = client.get(f"/console/artifacts/{record['artifact_id']}/download")
    assert resp.status_code == 303
    url = resp.headers["location"]
    assert urlsplit(url).path == f"/d/{record['artifact_id']}" and "s" in parse_qs(urlsplit(url).query)
    got = httpx.get(url)
    assert got.content == b"a,b\n1,2\n" and got.headers["content-disposition"].startswith("attachment")


def test_static_files_are_versioned_and_unknown_pages_are_html_404s(box):
    page = httpx.get(box.url + "/console/sign-in").text
    css = re.search(r'href="(/console/static/console\.css\?v=[0-9a-f]+)"', page).group(1)
    resp = httpx.get(box.url + css)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/css")
    assert "immutable" in resp.headers["cache-control"]
    assert httpx.get(box.url + css, headers={"If-None-Match": resp.headers["etag"]}).status_code == 304
    stale = httpx.get(box.url + "/console/static/console.css?v=old")
    assert stale.headers["cache-control"] == "no-cache"
    for path in ("/console/static/nope.js", "/console/no/such/page"):
        missing = httpx.get(box.url + path)
        assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
