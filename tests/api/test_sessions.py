"""GET /v1/sessions and POST /v1/sessions/<id>/seal."""

from __future__ import annotations

import pytest

from tests.api.manage_helpers import audit_rows
from tests.helpers import assert_error, new_tenant, upload

SESSION_FIELDS = {"session_id", "artifact_count", "is_sealed", "first_artifact_at", "last_artifact_at",
                  "sealed_at"}


def sessions_of(client, query: str = "") -> dict:
    """GET /v1/sessions with a raw query string, sent as the official clients send it (unencoded)."""
    r = client.get("/v1/sessions" + (f"?{query}" if query else ""))
    assert r.status_code == 200, r.text
    return r.json()


def test_sessions_are_listed_by_most_recent_activity(shared_server):
    _, c = new_tenant(shared_server)
    a1 = upload(c, session_id="alpha")
    upload(c, session_id="beta")
    upload(c, session_id="gamma")
    a2 = upload(c, session_id="alpha")  # alpha is now the most recently active
    upload(c)  # no session: not a session
    body = sessions_of(c)
    assert set(body) == {"sessions", "next_cursor", "has_more"}
    assert body["has_more"] is False and body["next_cursor"] is None
    assert [s["session_id"] for s in body["sessions"]] == ["alpha", "gamma", "beta"]
    alpha = body["sessions"][0]
    assert set(alpha) == SESSION_FIELDS
    assert alpha == {
        "session_id": "alpha", "artifact_count": 2, "is_sealed": False,
        "first_artifact_at": a1["created_at"], "last_artifact_at": a2["created_at"], "sealed_at": None,
    }


def test_sessions_page_with_after_and_its_alias_cursor(shared_server):
    _, c = new_tenant(shared_server)
    for i in range(5):
        upload(c, session_id=f"s{i}")
    expected = [f"s{i}" for i in reversed(range(5))]
    for param in ("after", "cursor"):
        seen, query = [], "limit=2"
        while True:
            body = sessions_of(c, query)
            assert len(body["sessions"]) <= 2
            seen += [s["session_id"] for s in body["sessions"]]
            if not body["has_more"]:
                assert body["next_cursor"] is None
                break
            query = f"limit=2&{param}={body['next_cursor']}"  # unencoded, like the official clients
        assert seen == expected


def test_created_after_and_before_filter_on_the_first_artifact(shared_server):
    _, c = new_tenant(shared_server)
    early = upload(c, session_id="early")
    middle = upload(c, session_id="middle")
    upload(c, session_id="late")
    upload(c, session_id="early")  # later activity does not change when a session was created
    t_mid = middle["created_at"]
    assert [s["session_id"] for s in sessions_of(c, f"created_after={t_mid}")["sessions"]] == ["late"]
    assert [s["session_id"] for s in sessions_of(c, f"created_before={t_mid}")["sessions"]] == ["early"]
    assert [s["session_id"] for s in sessions_of(
        c, f"created_after={early['created_at']}&created_before=9999-01-01T00:00:00Z")["sessions"]
    ] == ["late", "middle"]
    # "+00:00" sent unencoded arrives as a space; it still means UTC.
    plus = t_mid.replace("Z", "+00:00")
    assert [s["session_id"] for s in sessions_of(c, f"created_after={plus}")["sessions"]] == ["late"]
    assert [s["session_id"] for s in sessions_of(c, f"created_before={plus}")["sessions"]] == ["early"]
    # A cursor is bound to its filters.
    first = sessions_of(c, f"limit=1&created_before={plus}")
    assert first["has_more"] is False
    page = sessions_of(c, "limit=1")
    assert_error(c.get(f"/v1/sessions?created_after={t_mid}&after={page['next_cursor']}"),
                 400, "invalid_request")


@pytest.mark.parametrize("query", [
    "limit=0", "limit=201", "limit=x", "created_after=soon", "created_before=2026-02-30T00:00:00Z",
    "after=forged", "cursor=forged",
])
def test_malformed_session_queries_are_400(shared_server, query):
    with shared_server.client() as c:
        assert_error(c.get(f"/v1/sessions?{query}"), 400, "invalid_request")


def test_sessions_of_other_tenants_are_invisible(shared_server):
    _, c1 = new_tenant(shared_server)
    _, c2 = new_tenant(shared_server)
    upload(c1, session_id="mine")
    assert sessions_of(c2)["sessions"] == []
    assert_error(c2.post("/v1/sessions/mine/seal"), 404, "session_not_found")
    page = sessions_of(c1, "limit=1")
    assert page["has_more"] is False


def test_seal_returns_the_seal_and_is_idempotent(shared_server):
    _, c = new_tenant(shared_server)
    arts = [upload(c, session_id="run-7") for _ in range(2)]
    r = c.post("/v1/sessions/run-7/seal")  # no body, no Content-Type
    assert r.status_code == 200, r.text
    sealed = r.json()
    assert set(sealed) == {"session_id", "status", "sealed_at", "artifact_count"}
    assert sealed["session_id"] == "run-7" and sealed["status"] == "sealed"
    assert sealed["artifact_count"] == 2
    assert sealed["sealed_at"] >= arts[-1]["created_at"]
    again = c.post("/v1/sessions/run-7/seal")
    assert again.status_code == 200 and again.json() == sealed
    [listed] = sessions_of(c)["sessions"]
    assert listed["is_sealed"] is True and listed["sealed_at"] == sealed["sealed_at"]
    [audit] = audit_rows(shared_server, "session.seal", "run-7")
    assert audit["at"] == sealed["sealed_at"] and audit["actor"].startswith("key:")


def test_a_sealed_session_refuses_uploads_but_keeps_its_artifacts(shared_server):
    _, c = new_tenant(shared_server)
    art = upload(c, session_id="closed")
    c.post("/v1/sessions/closed/seal")
    r = c.post("/v1/artifacts", data={"session_id": "closed"}, files={"file": ("x.txt", b"x", "text/plain")})
    assert_error(r, 409, "session_sealed")
    r = c.post("/v1/artifacts/upload-url", json={"filename": "x.bin", "content_type": "text/plain",
                                                  "size_bytes": 1, "session_id": "closed"})
    assert_error(r, 409, "session_sealed")
    assert c.get(f"/v1/artifacts/{art['artifact_id']}").status_code == 200
    listed = c.get("/v1/artifacts", params={"session_id": "closed"}).json()["artifacts"]
    assert [a["artifact_id"] for a in listed] == [art["artifact_id"]]
    # Other sessions are unaffected.
    upload(c, session_id="open")


def test_seal_of_a_never_used_session_is_404_and_of_a_bad_label_400(shared_server):
    _, c = new_tenant(shared_server)
    assert_error(c.post("/v1/sessions/never-used/seal"), 404, "session_not_found")
    assert_error(c.post("/v1/sessions/-bad/seal"), 400, "invalid_request")
    assert_error(c.post("/v1/sessions/" + "x" * 129 + "/seal"), 400, "invalid_request")
    assert_error(c.get("/v1/sessions/never-used/seal"), 405, "method_not_allowed")
    # Sealing does not create the session.
    assert sessions_of(c)["sessions"] == []


def test_session_whose_artifacts_were_all_deleted_can_still_be_sealed(shared_server):
    _, c = new_tenant(shared_server)
    art = upload(c, session_id="emptied")
    c.delete(f"/v1/artifacts/{art['artifact_id']}")
    r = c.post("/v1/sessions/emptied/seal")
    assert r.status_code == 200 and r.json()["artifact_count"] == 0
