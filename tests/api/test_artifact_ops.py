"""GET, DELETE and extend-ttl of one artifact; expiry as seen by readers; usage on delete."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.api.manage_helpers import audit_rows
from tests.helpers import assert_error, db, expire_now, new_tenant, upload
from tests.backends import both_blob_backends  # noqa: F401 - runs the module on both backends


def parse_ts(value: str) -> datetime:
    assert value.endswith("Z") and len(value) == 27, value
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@pytest.fixture(scope="module")
def c(shared_server):
    """A tenant shared by the tests of this module that look only at their own artifacts."""
    _, client = new_tenant(shared_server)
    with client:
        yield client


def storage_used(client: httpx.Client) -> int:
    return client.get("/v1/whoami").json()["usage_storage_bytes"]


# ---------------------------------------------------------------------------- GET


def test_get_returns_the_record(c):
    art = upload(c, b"hello", filename="a.txt", session_id="s", agent_id="ag", metadata={"k": "v"})
    r = c.get(f"/v1/artifacts/{art['artifact_id']}")
    assert r.status_code == 200
    assert r.json() == art
    assert r.json()["size_bytes"] == 5 and r.json()["status"] == "active"


@pytest.mark.parametrize("artifact_id", [
    "art_AAAAAAAAAAAAAAAA", "art_short", "nonsense", "art_AAAAAAAAAAAAAAAA_", "lnk_AAAAAAAAAAAAAAAAAAAA",
])
def test_unknown_or_malformed_ids_are_404(shared_server, artifact_id):
    with shared_server.client() as c:
        for method in ("GET", "DELETE"):
            assert_error(c.request(method, f"/v1/artifacts/{artifact_id}"), 404, "artifact_not_found")
        assert_error(c.post(f"/v1/artifacts/{artifact_id}/extend-ttl", json={"ttl": "1d"}),
                     404, "artifact_not_found")


def test_another_tenants_artifact_is_404_for_every_operation(shared_server):
    _, owner = new_tenant(shared_server)
    _, other = new_tenant(shared_server)
    art = upload(owner)
    aid = art["artifact_id"]
    assert_error(other.get(f"/v1/artifacts/{aid}"), 404, "artifact_not_found")
    assert_error(other.delete(f"/v1/artifacts/{aid}"), 404, "artifact_not_found")
    assert_error(other.post(f"/v1/artifacts/{aid}/extend-ttl", json={"ttl": "1d"}), 404,
                 "artifact_not_found")
    assert owner.get(f"/v1/artifacts/{aid}").json() == art  # untouched


def test_expired_artifact_is_410_everywhere_and_stops_counting(shared_server):
    _, c = new_tenant(shared_server)
    art = upload(c, b"x" * 1000)
    assert storage_used(c) == 1000
    expire_now(shared_server, art["artifact_id"])
    aid = art["artifact_id"]
    assert_error(c.get(f"/v1/artifacts/{aid}"), 410, "artifact_expired")
    assert_error(c.post(f"/v1/artifacts/{aid}/extend-ttl", json={"ttl": "1d"}), 410, "artifact_expired")
    assert_error(c.delete(f"/v1/artifacts/{aid}"), 410, "artifact_expired")
    assert c.get("/v1/artifacts").json()["artifacts"] == []
    assert storage_used(c) == 0


def test_deleted_wins_over_expired(shared_server, c):
    art = upload(c)
    assert c.delete(f"/v1/artifacts/{art['artifact_id']}").status_code == 200
    expire_now(shared_server, art["artifact_id"])
    assert_error(c.get(f"/v1/artifacts/{art['artifact_id']}"), 410, "artifact_already_deleted")


# ---------------------------------------------------------------------------- DELETE


def test_delete_is_a_soft_delete_with_a_json_body(shared_server, c):
    art = upload(c, session_id="s-del")
    aid = art["artifact_id"]
    r = c.delete(f"/v1/artifacts/{aid}")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"artifact_id", "deleted", "deleted_at"}
    assert body["artifact_id"] == aid and body["deleted"] is True
    assert parse_ts(body["deleted_at"]) >= parse_ts(art["created_at"])
    assert_error(c.get(f"/v1/artifacts/{aid}"), 410, "artifact_already_deleted")
    assert_error(c.delete(f"/v1/artifacts/{aid}"), 410, "artifact_already_deleted")
    assert_error(c.post(f"/v1/artifacts/{aid}/extend-ttl", json={"ttl": "1d"}), 410,
                 "artifact_already_deleted")
    assert c.get("/v1/artifacts", params={"session_id": "s-del"}).json()["artifacts"] == []
    # The row stays (until retention) with its state; the audit log names key and tenant.
    conn = db(shared_server)
    row = conn.execute("SELECT state, deleted_at FROM artifacts WHERE artifact_id = ?", (aid,)).fetchone()
    conn.close()
    assert (row["state"], row["deleted_at"]) == ("deleted", body["deleted_at"])
    [audit] = audit_rows(shared_server, "artifact.delete", aid)
    assert audit["actor"].startswith("key:key_") and audit["at"] == body["deleted_at"]


def test_delete_frees_quota_at_once_counting_shared_blobs_once(shared_server):
    _, c = new_tenant(shared_server)
    a = upload(c, b"a" * 3000)
    twin = upload(c, b"a" * 3000)  # same bytes: one blob
    b = upload(c, b"b" * 500)
    assert storage_used(c) == 3500
    c.delete(f"/v1/artifacts/{a['artifact_id']}")
    assert storage_used(c) == 3500  # the twin still holds the blob
    c.delete(f"/v1/artifacts/{twin['artifact_id']}")
    assert storage_used(c) == 500
    c.delete(f"/v1/artifacts/{b['artifact_id']}")
    assert storage_used(c) == 0


def test_delete_decrements_the_session_count(shared_server):
    _, c = new_tenant(shared_server)
    arts = [upload(c, session_id="counted") for _ in range(3)]
    c.delete(f"/v1/artifacts/{arts[0]['artifact_id']}")
    [session] = c.get("/v1/sessions").json()["sessions"]
    assert session["artifact_count"] == 2


def test_concurrent_deletes_of_one_artifact_succeed_exactly_once(shared_server):
    _, c = new_tenant(shared_server)
    key = c.headers["authorization"].split()[1]
    art = upload(c, b"z" * 100)
    barrier = threading.Barrier(8)
    statuses: list[tuple[int, str]] = []

    def delete():
        with shared_server.client(key) as own:
            barrier.wait()
            r = own.delete(f"/v1/artifacts/{art['artifact_id']}")
            statuses.append((r.status_code, r.json().get("error", {}).get("code", "")))

    threads = [threading.Thread(target=delete) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [(200, "")] + [(410, "artifact_already_deleted")] * 7
    assert len(audit_rows(shared_server, "artifact.delete", art["artifact_id"])) == 1
    assert storage_used(c) == 0


# ---------------------------------------------------------------------------- extend-ttl


def test_extend_ttl_moves_expiry_to_now_plus_ttl(shared_server, c):
    art = upload(c, ttl="1h")
    r = c.post(f"/v1/artifacts/{art['artifact_id']}/extend-ttl", json={"ttl": "2d"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert {k: v for k, v in body.items() if k != "expires_at"} == {
        k: v for k, v in art.items() if k != "expires_at"}
    # "now" is the instant the server recorded the change at.
    [audit] = audit_rows(shared_server, "artifact.extend_ttl", art["artifact_id"])
    assert parse_ts(body["expires_at"]) == parse_ts(audit["at"]) + timedelta(days=2)
    assert parse_ts(audit["at"]) >= parse_ts(art["created_at"])
    assert c.get(f"/v1/artifacts/{art['artifact_id']}").json()["expires_at"] == body["expires_at"]


def test_extend_ttl_only_extends(shared_server, c):
    art = upload(c, ttl="7d")
    aid = art["artifact_id"]
    err = assert_error(c.post(f"/v1/artifacts/{aid}/extend-ttl", json={"ttl": "1d"}), 400, "invalid_request")
    assert "earlier" in err["message"]
    assert c.get(f"/v1/artifacts/{aid}").json()["expires_at"] == art["expires_at"]
    never = c.post(f"/v1/artifacts/{aid}/extend-ttl", json={"ttl": "never"})
    assert never.status_code == 200 and never.json()["expires_at"] is None
    assert_error(c.post(f"/v1/artifacts/{aid}/extend-ttl", json={"ttl": "3650d"}), 400, "invalid_request")
    again = c.post(f"/v1/artifacts/{aid}/extend-ttl", json={"ttl": "never"})
    assert again.status_code == 200 and again.json()["expires_at"] is None
    assert c.get(f"/v1/artifacts/{aid}").json()["expires_at"] is None
    assert len(audit_rows(shared_server, "artifact.extend_ttl", aid)) == 1


def test_extend_ttl_respects_the_plan(shared_server):
    _, free = new_tenant(shared_server, plan="free")  # max 90d, no never
    art = upload(free, ttl="1d")
    aid = art["artifact_id"]
    assert_error(free.post(f"/v1/artifacts/{aid}/extend-ttl", json={"ttl": "never"}), 400,
                 "ttl_exceeds_plan_limit")
    assert_error(free.post(f"/v1/artifacts/{aid}/extend-ttl", json={"ttl": "91d"}), 400,
                 "ttl_exceeds_plan_limit")
    assert free.post(f"/v1/artifacts/{aid}/extend-ttl", json={"ttl": "90d"}).status_code == 200
    assert free.get(f"/v1/artifacts/{aid}").json()["expires_at"] != art["expires_at"]


@pytest.mark.parametrize("body", [
    None, b"", b"not json", b"[]", b"{}", b'{"ttl": null}', b'{"ttl": 30}', b'{"ttl": "30x"}',
    b'{"ttl": "0d"}', b'{"ttl": "-1d"}', b'{"ttl": "1.5d"}', b'{"ttl": ""}',
])
def test_extend_ttl_rejects_malformed_bodies(c, body):
    art = upload(c)
    headers = {"Content-Type": "application/json"} if body else {}
    r = c.post(f"/v1/artifacts/{art['artifact_id']}/extend-ttl", content=body, headers=headers)
    assert_error(r, 400, "invalid_request")
    assert c.get(f"/v1/artifacts/{art['artifact_id']}").json()["expires_at"] == art["expires_at"]


def test_extend_ttl_revives_nothing_once_expired(shared_server, c):
    art = upload(c)
    expire_now(shared_server, art["artifact_id"])
    assert_error(c.post(f"/v1/artifacts/{art['artifact_id']}/extend-ttl", json={"ttl": "never"}),
                 410, "artifact_expired")


def test_routes_reject_wrong_methods_with_the_envelope(c):
    art = upload(c)
    assert_error(c.put(f"/v1/artifacts/{art['artifact_id']}"), 405, "method_not_allowed")
    assert_error(c.get(f"/v1/artifacts/{art['artifact_id']}/extend-ttl"), 405, "method_not_allowed")
    assert_error(c.delete("/v1/artifacts"), 405, "method_not_allowed")


# ---------------------------------------------------------------------------- pending reservations


def reserve(client, **fields):
    body = {"filename": "big.bin", "content_type": "application/octet-stream", "size_bytes": 4, **fields}
    r = client.post("/v1/artifacts/upload-url", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_upload_url_is_not_shadowed_by_the_artifact_id_routes(c):
    reserved = reserve(c)
    assert reserved["status"] == "pending" and reserved["artifact_id"].startswith("art_")
    for method in ("GET", "DELETE"):
        assert_error(c.request(method, "/v1/artifacts/upload-url"), 405, "method_not_allowed")


def test_a_pending_reservation_can_be_read_and_deleted_but_is_not_listed(shared_server):
    _, c = new_tenant(shared_server)
    reserved = reserve(c, session_id="pending-s", metadata={"k": "v"})
    aid = reserved["artifact_id"]
    got = c.get(f"/v1/artifacts/{aid}")
    assert got.status_code == 200
    record = got.json()
    assert record["status"] == "pending" and record["content_hash"] is None
    assert record["session_id"] == "pending-s" and record["metadata"] == {"k": "v"}
    assert c.get("/v1/artifacts").json()["artifacts"] == []
    assert c.get("/v1/artifacts", params={"metadata.k": "v"}).json()["artifacts"] == []
    assert_error(c.post(f"/v1/artifacts/{aid}/extend-ttl", json={"ttl": "2d"}), 400, "upload_not_found")
    r = c.delete(f"/v1/artifacts/{aid}")
    assert r.status_code == 200 and r.json()["deleted"] is True
    assert_error(c.get(f"/v1/artifacts/{aid}"), 410, "artifact_already_deleted")
    assert_error(c.delete(f"/v1/artifacts/{aid}"), 410, "artifact_already_deleted")
    # Its bytes can no longer arrive (a PUT straight to S3 is the store's to accept: gc
    # removes those bytes with the row), and it never counted toward usage.
    put = httpx.put(reserved["upload_url"], content=b"abcd", headers=reserved["upload_headers"])
    if reserved["upload_url"].startswith(shared_server.url):
        assert_error(put, 410, "artifact_already_deleted")
    else:
        assert put.status_code == 200
    assert_error(c.post(f"/v1/artifacts/{aid}/complete"), 410, "artifact_already_deleted")
    assert storage_used(c) == 0


def test_a_completed_presigned_upload_lists_in_order_under_every_filter(shared_server):
    _, c = new_tenant(shared_server)
    reserved = reserve(c, session_id="mixed", metadata={"k": "v"})
    direct = upload(c, session_id="mixed", metadata={"k": "v"})
    assert httpx.put(reserved["upload_url"], content=b"abcd",
                     headers=reserved["upload_headers"]).status_code == 200
    done = c.post(f"/v1/artifacts/{reserved['artifact_id']}/complete").json()
    assert done["created_at"] > direct["created_at"]  # visible since complete: the newest
    for params in ({}, {"session_id": "mixed"}, {"metadata.k": "v"}):
        listed = c.get("/v1/artifacts", params=params).json()["artifacts"]
        assert [a["artifact_id"] for a in listed] == [done["artifact_id"], direct["artifact_id"]]
    assert c.delete(f"/v1/artifacts/{done['artifact_id']}").status_code == 200
    [session] = c.get("/v1/sessions").json()["sessions"]
    assert session["artifact_count"] == 1
