"""URLs die with their key, and a revoked key (or suspended tenant) is refused from the very next
request although key lookups are cached: in the server, in every `--workers N` process, and when
the revocation comes from the admin CLI (another process) — the shared generation counter.
Share links belong to the tenant and survive the key that made them."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.helpers import assert_error, upload


def key_id_of(srv, key: str) -> str:
    keys = json.loads(srv.admin("keys", "list", "--tenant", "t", "--json").stdout)
    (match,) = [k for k in keys if key.endswith(k["last4"]) and not k["revoked"]]
    return match["key_id"]


@pytest.mark.parametrize("workers", [1, 2])
def test_revoking_a_key_kills_its_urls_at_once_and_share_links_survive(make_server, workers):
    srv = make_server(args=["--workers", str(workers)])
    srv.admin("tenants", "create", "t")
    doomed = srv.admin("keys", "create", "--tenant", "t").stdout.strip()
    doomed_id = key_id_of(srv, doomed)
    kept = srv.admin("keys", "create", "--tenant", "t").stdout.strip()
    a, b = srv.client(doomed), srv.client(kept)
    art = upload(a, b"bytes of the artifact")
    aid = art["artifact_id"]
    download = a.get(f"/v1/artifacts/{aid}/download-url").json()["download_url"]
    assert parse_qs(urlsplit(download).query)["k"] == [doomed_id]  # opaque to clients, but bound
    other_download = b.get(f"/v1/artifacts/{aid}/download-url").json()["download_url"]
    grant = a.post("/v1/artifacts/upload-url", json={"filename": "p.bin", "size_bytes": 4}).json()
    link = a.post(f"/v1/artifacts/{aid}/links", json={}).json()["url"]
    # Every path has looked the key up (and cached it) in whichever process answered.
    for _ in range(4 * workers):
        assert a.get("/v1/whoami").status_code == 200
        assert httpx.get(download).status_code == 200

    srv.admin("keys", "revoke", doomed_id)  # another process: only the shared counter tells

    for _ in range(4 * workers):  # at once, in every worker
        assert_error(a.get("/v1/whoami"), 401, "unauthorized")
        err = assert_error(httpx.get(download), 403, "invalid_signature")
        assert "revoked" in err["message"]
    err = assert_error(httpx.put(grant["upload_url"], content=b"data"), 403, "invalid_signature")
    assert "revoked" in err["message"]
    # The tenant's other key, its URLs and the tenant's share link are untouched.
    assert httpx.get(other_download).content == b"bytes of the artifact"
    assert httpx.get(link).content == b"bytes of the artifact"
    assert b.get("/v1/whoami").status_code == 200
    fresh = b.post("/v1/artifacts/upload-url", json={"filename": "q.bin", "size_bytes": 4}).json()
    assert httpx.put(fresh["upload_url"], content=b"data").status_code == 200


def test_suspend_and_resume_take_effect_from_the_next_request(make_server):
    srv = make_server(args=["--workers", "2"])
    key = srv.new_tenant("t")
    c = srv.client(key)
    art = upload(c, b"x")
    url = c.get(f"/v1/artifacts/{art['artifact_id']}/download-url").json()["download_url"]
    for _ in range(8):
        assert c.get("/v1/whoami").status_code == 200
    srv.admin("tenants", "suspend", "t")
    for _ in range(8):
        assert_error(c.get("/v1/whoami"), 401, "unauthorized")
        assert httpx.get(url).status_code in (401, 403)
    srv.admin("tenants", "resume", "t")
    for _ in range(8):
        assert c.get("/v1/whoami").status_code == 200
        assert httpx.get(url).status_code == 200
