"""HTTP core: whoami, health, the error envelope everywhere, request ids, rate limits, quotas."""

import httpx
import pytest

from artifacta_box.http.errors import error_response
from tests.helpers import assert_error

WHOAMI_INT_FIELDS = [
    "usage_requests_month", "plan_requests_limit_month", "usage_storage_bytes",
    "plan_storage_limit_bytes", "active_links", "max_active_links", "active_pages", "max_pages",
    "rate_limit_sustained", "rate_limit_burst",
]


def test_whoami_has_its_fields_with_the_right_types(shared_server):
    key = shared_server.new_tenant("whoami-types", plan="free")
    with shared_server.client(key) as c:
        body = c.get("/v1/whoami").json()
    assert set(body) == {"tenant_name", "plan", "api_key_last_4", *WHOAMI_INT_FIELDS}
    for f in WHOAMI_INT_FIELDS:
        assert type(body[f]) is int, f
    assert body["tenant_name"] == "whoami-types"
    assert body["plan"] == "free"
    assert body["api_key_last_4"] == key[-4:]
    assert body["plan_storage_limit_bytes"] == 10**9
    assert body["plan_requests_limit_month"] == 10_000
    assert body["max_active_links"] == 50
    assert (body["active_pages"], body["max_pages"]) == (0, 10)
    assert (body["rate_limit_sustained"], body["rate_limit_burst"]) == (100, 200)


def test_requests_are_counted_for_the_month(shared_server):
    key = shared_server.new_tenant("counting")
    with shared_server.client(key) as c:
        first = c.get("/v1/whoami").json()["usage_requests_month"]
        c.get("/v1/whoami")
        third = c.get("/v1/whoami").json()["usage_requests_month"]
    assert third == first + 2


def test_health_is_unauthenticated(shared_server):
    r = httpx.get(shared_server.url + "/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert "X-RateLimit-Limit" not in r.headers


@pytest.mark.parametrize("path", ["/nope", "/v1/nope", "/v1/artifacts/art_x/unknown/deeper"])
def test_unknown_routes_are_404_envelopes_with_request_id(shared_server, path):
    with shared_server.client() as c:
        r = c.get(path)
    assert_error(r, 404, "not_found")
    assert r.headers["X-Request-Id"].startswith("req_")


@pytest.mark.parametrize("method, path", [("POST", "/health"), ("DELETE", "/v1/whoami"),
                                          ("PUT", "/v1/whoami")])
def test_wrong_method_is_405_envelope(shared_server, method, path):
    with shared_server.client() as c:
        assert_error(c.request(method, path), 405, "method_not_allowed")


def test_no_redirect_for_trailing_slash(shared_server):
    with shared_server.client() as c:
        r = c.get("/v1/whoami/")
    assert r.status_code == 200


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Basic dXNlcjpwYXNz", "Bearer ak_live_short",
     "Bearer ak_live_" + "A" * 32, "Bearer ak_test_" + "A" * 32],
)
def test_bad_credentials_are_401_envelopes(shared_server, header):
    headers = {"Authorization": header} if header else {}
    r = httpx.get(shared_server.url + "/v1/whoami", headers=headers)
    err = assert_error(r, 401, "unauthorized")
    assert "suspended" not in err["message"]
    assert r.headers.get("X-Request-Id")


def test_crash_renders_internal_error_without_traceback():
    resp = error_response(None, RuntimeError("secret detail /etc/passwd"))
    assert resp.status == 500
    body = resp.body.decode()
    assert '"code":"internal_error"' in body.replace(" ", "")
    assert "secret detail" not in body and "Traceback" not in body


@pytest.mark.serial  # a token bucket refilling while the requests run
def test_burst_then_429_with_retry_after(make_server):
    srv = make_server(config="[plans.selfhosted]\nrate_burst = 5\nrate_sustained = 0.5\n")
    with srv.client() as c:
        responses = [c.get("/v1/whoami") for _ in range(7)]
    ok = [r for r in responses if r.status_code == 200]
    limited = [r for r in responses if r.status_code == 429]
    assert len(ok) == 5 and len(limited) == 2
    remaining = [int(r.headers["X-RateLimit-Remaining"]) for r in ok]
    assert remaining == sorted(remaining, reverse=True) and remaining[-1] == 0
    for r in responses:
        assert r.headers["X-RateLimit-Limit"] == "0.5"
        assert int(r.headers["X-RateLimit-Reset"]) > 1_700_000_000
    err = assert_error(limited[0], 429, "rate_limited")
    retry = int(limited[0].headers["Retry-After"])
    assert retry >= 1
    assert err["retry_after_seconds"] == retry and err["retry_after"] == retry


@pytest.mark.serial  # a token bucket refilling while the requests run
def test_rate_limits_are_per_tenant(make_server):
    srv = make_server(config="[plans.selfhosted]\nrate_burst = 2\nrate_sustained = 0.1\n")
    other = srv.new_tenant("other")
    with srv.client() as c:
        assert [c.get("/v1/whoami").status_code for _ in range(3)] == [200, 200, 429]
    with srv.client(other) as c:
        assert c.get("/v1/whoami").status_code == 200


@pytest.mark.serial  # a token bucket refilling while the requests run
def test_failed_authentication_is_limited_per_address(make_server):
    srv = make_server(config="[security]\nfailed_auth_limit = 3\nfailed_auth_window = '1h'\n")
    bad = {"Authorization": "Bearer ak_live_" + "B" * 32}
    codes = [httpx.get(srv.url + "/v1/whoami", headers=bad).status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    r = httpx.get(srv.url + "/v1/whoami", headers=bad)
    err = assert_error(r, 429, "rate_limited")
    assert int(r.headers["Retry-After"]) >= 1 and "authentication" in err["message"]
    # a missing key is a failure too, and so is answered 429 now
    assert_error(httpx.get(srv.url + "/v1/whoami"), 429, "rate_limited")


def test_a_valid_key_passes_however_many_others_failed_from_its_address(make_server):
    """Everyone behind one NAT shares an address: a stranger's bad keys must not lock them out."""
    srv = make_server(config="[security]\nfailed_auth_limit = 5\nfailed_auth_window = '1h'\n")
    with httpx.Client(base_url=srv.url) as anon:
        codes = [anon.get("/v1/whoami", headers={"Authorization": f"Bearer ak_live_{i:032d}"}).status_code
                 for i in range(25)]
        assert codes == [401] * 5 + [429] * 20
        for _ in range(3):  # at once, and every time, interleaved with more failures
            r = anon.get("/v1/whoami", headers={"Authorization": f"Bearer {srv.key}"})
            assert r.status_code == 200, r.text
            assert r.json()["tenant_name"] == "default"
            assert_error(anon.get("/v1/whoami", headers={"Authorization": "Bearer ak_live_" + "C" * 32}),
                            429, "rate_limited")


def test_monthly_request_quota(make_server):
    srv = make_server(config="[plans.selfhosted]\nrequests_per_month = 3\n")
    with srv.client() as c:
        codes = [c.get("/v1/whoami").status_code for _ in range(4)]
        r = c.get("/v1/whoami")
    assert codes == [200, 200, 200, 403]
    assert_error(r, 403, "quota_exceeded")


def test_upgrade_url_is_added_to_quota_errors_when_configured(make_server):
    srv = make_server(config="[plans.selfhosted]\nrequests_per_month = 1\n"
                             "[tenants]\nupgrade_url = 'https://example.com/up'\n")
    with srv.client() as c:
        c.get("/v1/whoami")
        err = assert_error(c.get("/v1/whoami"), 403, "quota_exceeded")
    assert err["upgrade_url"] == "https://example.com/up"


def test_every_kind_of_quota_error_carries_the_upgrade_url(make_server):
    """Storage, link cap, metadata-filter cap, plan-gated presigned uploads: one rule."""
    srv = make_server(config="[plans.selfhosted]\nstorage_bytes = 10\nmax_active_links = 0\n"
                             "max_metadata_filters = 1\npresigned_uploads = false\n"
                             "[tenants]\nupgrade_url = 'https://example.com/up'\n")
    with srv.client() as c:
        answers = [
            c.post("/v1/artifacts", files={"file": ("a.txt", b"more than ten bytes")}),
            c.get("/v1/artifacts", params={"metadata.a": "1", "metadata.b": "2"}),
            c.post("/v1/artifacts/upload-url", json={"filename": "a.txt", "size_bytes": 1}),
        ]
        small = c.post("/v1/artifacts", files={"file": ("b.txt", b"tiny")})
        assert small.status_code == 201, small.text
        answers.append(c.post(f"/v1/artifacts/{small.json()['artifact_id']}/links", json={}))
    for r in answers:
        assert assert_error(r, 403, "quota_exceeded")["upgrade_url"] == "https://example.com/up"


def test_a_locked_database_is_503_unavailable_not_a_crash():
    import sqlite3

    resp = error_response(None, sqlite3.OperationalError("database is locked"))
    assert resp.status == 503
    assert '"code":"unavailable"' in resp.body.decode().replace(" ", "")
