"""Share links end to end: creation (bodiless POST, expiry bounds, the active-link cap), serving
without auth with the same byte semantics as signed URLs, revocation, and links whose artifact
has gone."""

from __future__ import annotations

import json
import secrets

import httpx
import pytest

from tests.api.manage_helpers import audit_rows
from tests.helpers import PAST, assert_error, new_tenant, seconds_between, sql, upload
from tests.backends import both_blob_backends  # noqa: F401 - runs the module on both backends

CONTENT = secrets.token_bytes(100_000)


@pytest.fixture(scope="module")
def client(shared_server) -> httpx.Client:
    _, c = new_tenant(shared_server)
    yield c
    c.close()


@pytest.fixture(scope="module")
def other(shared_server) -> httpx.Client:
    _, c = new_tenant(shared_server)
    yield c
    c.close()


@pytest.fixture(scope="module")
def artifact(client) -> dict:
    return upload(client, CONTENT, "shared report.pdf", "application/pdf")


def make_link(client: httpx.Client, artifact_id: str, **body) -> dict:
    r = client.post(f"/v1/artifacts/{artifact_id}/links", json=body) if body else \
        client.post(f"/v1/artifacts/{artifact_id}/links")
    assert r.status_code == 201, r.text
    return r.json()


# ------------------------------------------------------------------------------ create


def test_a_bodiless_post_creates_a_seven_day_link(shared_server, client, artifact):
    # exactly what the official SDK and CLI send: no Content-Type, Content-Length: 0
    req = client.build_request("POST", f"/v1/artifacts/{artifact['artifact_id']}/links")
    assert "content-type" not in req.headers and req.headers.get("content-length", "0") == "0"
    r = client.send(req)
    assert r.status_code == 201, r.text
    link = r.json()
    assert set(link) == {"link_id", "url", "artifact_id", "expires_at", "created_at"}
    assert link["link_id"].startswith("lnk_") and len(link["link_id"]) == 24
    assert link["url"] == f"{shared_server.url}/l/{link['link_id']}"
    assert link["artifact_id"] == artifact["artifact_id"]
    assert seconds_between(link["created_at"], link["expires_at"]) == 604800
    assert link["created_at"].endswith("Z") and len(link["created_at"]) == 27


def test_expires_in_sets_the_expiry_and_each_call_makes_a_new_link(client, artifact):
    a = make_link(client, artifact["artifact_id"], expires_in=3600)
    b = make_link(client, artifact["artifact_id"], expires_in=3600)
    assert a["link_id"] != b["link_id"] and a["url"] != b["url"]
    assert seconds_between(a["created_at"], a["expires_at"]) == 3600
    # an explicit JSON null and an empty JSON object mean the default, like no body
    for raw in (b'{"expires_in": null}', b"{}"):
        r = client.post(f"/v1/artifacts/{artifact['artifact_id']}/links", content=raw,
                        headers={"Content-Type": "application/json"})
        assert r.status_code == 201
        assert seconds_between(r.json()["created_at"], r.json()["expires_at"]) == 604800


@pytest.mark.parametrize(
    "raw",
    [b'{"expires_in": 0}', b'{"expires_in": -5}', b'{"expires_in": "3600"}',
     b'{"expires_in": 3600.5}', b'{"expires_in": true}', b'{"expires_in": [3600]}',
     b'{"expires_in": 31536001}', b"not json", b"[3600]", b'"3600"'],
    ids=["zero", "negative", "string", "fraction", "bool", "list", "over-plan", "not-json",
         "array", "string-body"],
)
def test_a_bad_expiry_or_body_is_400_and_creates_nothing(shared_server, client, artifact, raw):
    before = sql(shared_server, "SELECT COUNT(*) FROM links WHERE artifact_id = ?",
                 (artifact["artifact_id"],))[0][0]
    r = client.post(f"/v1/artifacts/{artifact['artifact_id']}/links", content=raw,
                    headers={"Content-Type": "application/json"})
    assert_error(r, 400, "invalid_request")
    after = sql(shared_server, "SELECT COUNT(*) FROM links WHERE artifact_id = ?",
                (artifact["artifact_id"],))[0][0]
    assert after == before


def test_links_only_for_live_artifacts_of_the_caller(client, other, artifact):
    assert_error(other.post(f"/v1/artifacts/{artifact['artifact_id']}/links"), 404,
                 "artifact_not_found")
    assert_error(client.post("/v1/artifacts/art_0000000000000000/links"), 404, "artifact_not_found")
    gone = upload(client, b"deleted before linking", "gone.txt", "text/plain")
    client.delete(f"/v1/artifacts/{gone['artifact_id']}")
    assert_error(client.post(f"/v1/artifacts/{gone['artifact_id']}/links"), 410,
                 "artifact_already_deleted")
    pending = client.post("/v1/artifacts/upload-url", json={
        "filename": "p.bin", "content_type": "application/octet-stream", "size_bytes": 3})
    assert pending.status_code == 200, pending.text
    assert_error(client.post(f"/v1/artifacts/{pending.json()['artifact_id']}/links"), 400,
                 "upload_not_found")


# ------------------------------------------------------------------------------ serve


def test_a_link_downloads_without_auth_like_a_signed_url(client, artifact):
    link = make_link(client, artifact["artifact_id"])
    r = httpx.get(link["url"])
    assert r.status_code == 200 and r.content == CONTENT
    h = r.headers
    assert h["content-type"] == "application/pdf"
    assert h["etag"] == f'"{artifact["content_hash"]}"'
    assert h["content-disposition"] == (
        "attachment; filename=\"shared report.pdf\"; filename*=UTF-8''shared%20report.pdf")
    assert h["x-content-type-options"] == "nosniff" and "sandbox" in h["content-security-policy"]
    assert "x-ratelimit-remaining" in h
    r = httpx.get(link["url"], headers={"Range": "bytes=-10"})
    assert r.status_code == 206 and r.content == CONTENT[-10:]
    assert r.headers["content-range"] == f"bytes {len(CONTENT) - 10}-{len(CONTENT) - 1}/{len(CONTENT)}"
    assert httpx.get(link["url"], headers={"Range": f"bytes={len(CONTENT)}-"}).status_code == 416
    head = httpx.head(link["url"])
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(CONTENT))
    assert httpx.get(link["url"], headers={"If-None-Match": h["etag"]}).status_code == 304
    for method in ("PUT", "POST", "DELETE"):
        assert_error(httpx.request(method, link["url"]), 405, "method_not_allowed")


def test_unknown_links_are_404(shared_server):
    for link_id in ("lnk_" + "A" * 20, "lnk_short", "anything"):
        assert_error(httpx.get(f"{shared_server.url}/l/{link_id}"), 404, "link_not_found")


def test_an_expired_link_is_410_link_expired(shared_server, client, artifact):
    link = make_link(client, artifact["artifact_id"], expires_in=60)
    sql(shared_server, "UPDATE links SET expires_at = ? WHERE link_id = ?", (PAST, link["link_id"]))
    assert_error(httpx.get(link["url"]), 410, "link_expired")
    assert httpx.head(link["url"]).status_code == 410


def test_links_stop_when_the_artifact_is_deleted_or_expires(shared_server, client):
    deleted = upload(client, b"delete me later", "d.txt", "text/plain")
    expired = upload(client, b"expire me later", "e.txt", "text/plain")
    to_deleted = make_link(client, deleted["artifact_id"])
    to_expired = make_link(client, expired["artifact_id"])
    assert httpx.get(to_deleted["url"]).content == b"delete me later"
    assert client.delete(f"/v1/artifacts/{deleted['artifact_id']}").status_code == 200
    assert_error(httpx.get(to_deleted["url"]), 410, "artifact_already_deleted")
    sql(shared_server, "UPDATE artifacts SET expires_at = ? WHERE artifact_id = ?",
        (PAST, expired["artifact_id"]))
    assert_error(httpx.get(to_expired["url"]), 410, "artifact_expired")


def test_a_link_to_a_purged_artifact_is_404(shared_server, client):
    record = upload(client, b"purged after retention", "p.txt", "text/plain")
    link = make_link(client, record["artifact_id"])
    client.delete(f"/v1/artifacts/{record['artifact_id']}")
    # what the retention purge does to the row (not waiting 30 days)
    sql(shared_server, "DELETE FROM artifacts WHERE artifact_id = ?", (record["artifact_id"],))
    assert_error(httpx.get(link["url"]), 404, "artifact_not_found")


# ------------------------------------------------------------------------------ revoke


def test_revoke_stops_the_link_and_is_audited(shared_server, client, other, artifact):
    link = make_link(client, artifact["artifact_id"])
    assert httpx.get(link["url"]).status_code == 200
    # another tenant cannot see or revoke it
    assert_error(other.delete(f"/v1/links/{link['link_id']}"), 404, "link_not_found")
    assert httpx.get(link["url"]).status_code == 200
    r = client.delete(f"/v1/links/{link['link_id']}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"link_id", "revoked", "revoked_at"}
    assert body["link_id"] == link["link_id"] and body["revoked"] is True
    assert_error(httpx.get(link["url"]), 410, "link_expired")
    # a second revoke answers the same, and is not audited twice
    again = client.delete(f"/v1/links/{link['link_id']}")
    assert again.status_code == 200 and again.json() == body
    revokes = audit_rows(shared_server, "link.revoke", link["link_id"])
    assert len(revokes) == 1
    assert revokes[0]["actor"].startswith("key:")
    assert json.loads(revokes[0]["details"]) == {"artifact_id": artifact["artifact_id"]}
    assert len(audit_rows(shared_server, "link.create", link["link_id"])) == 1
    assert_error(client.delete("/v1/links/lnk_" + "Z" * 20), 404, "link_not_found")
    assert_error(client.delete("/v1/links/nonsense"), 404, "link_not_found")
    assert_error(httpx.delete(f"{shared_server.url}/v1/links/{link['link_id']}"), 401, "unauthorized")


# ------------------------------------------------------------------------------ the cap


def test_the_active_link_cap_counts_only_live_links(shared_server):
    """Plan `free` allows 50 active links and links of at most 30 days."""
    _, c = new_tenant(shared_server, "free")
    record = upload(c, b"capped", "cap.txt", "text/plain")
    aid = record["artifact_id"]
    assert_error(c.post(f"/v1/artifacts/{aid}/links", json={"expires_in": 30 * 86400 + 1}), 400,
                 "invalid_request")
    links = [make_link(c, aid, expires_in=30 * 86400) for _ in range(50)]
    who = c.get("/v1/whoami").json()
    assert (who["active_links"], who["max_active_links"]) == (50, 50)
    err = assert_error(c.post(f"/v1/artifacts/{aid}/links"), 403, "quota_exceeded")
    assert "50" in err["message"]
    # a revoked link and an expired link free their places
    c.delete(f"/v1/links/{links[0]['link_id']}")
    sql(shared_server, "UPDATE links SET expires_at = ? WHERE link_id = ?", (PAST, links[1]["link_id"]))
    assert c.get("/v1/whoami").json()["active_links"] == 48
    make_link(c, aid)
    make_link(c, aid)
    assert_error(c.post(f"/v1/artifacts/{aid}/links"), 403, "quota_exceeded")
    c.close()


def test_links_to_a_deleted_or_expired_artifact_free_their_places_at_once(shared_server):
    _, c = new_tenant(shared_server)
    gone = upload(c, b"soon deleted", "gone.txt", "text/plain")
    stale = upload(c, b"soon expired", "stale.txt", "text/plain")
    kept = upload(c, b"kept", "kept.txt", "text/plain")
    for record in (gone, stale, kept):
        make_link(c, record["artifact_id"])
    assert c.get("/v1/whoami").json()["active_links"] == 3
    assert c.delete(f"/v1/artifacts/{gone['artifact_id']}").status_code == 200
    sql(shared_server, "UPDATE artifacts SET expires_at = ? WHERE artifact_id = ?",
        (PAST, stale["artifact_id"]))
    assert c.get("/v1/whoami").json()["active_links"] == 1
    c.close()
