"""GET /v1/artifacts: filters, order, pagination, cursors, and what is never listed."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from tests.api.manage_helpers import list_all
from tests.helpers import assert_error, expire_now, new_tenant, upload

RECORD_FIELDS = {
    "artifact_id", "filename", "content_type", "size_bytes", "content_hash", "session_id",
    "agent_id", "metadata", "status", "expires_at", "created_at",
}


def ids(items):
    return [a["artifact_id"] for a in items]


def newest_first(records):
    return sorted(records, key=lambda a: (a["created_at"], a["artifact_id"]), reverse=True)


def test_lists_live_artifacts_newest_first_with_full_records(shared_server):
    _, c = new_tenant(shared_server)
    made = [upload(c, f"content {i}".encode(), filename=f"f{i}.txt", metadata={"i": str(i)})
            for i in range(3)]
    body = c.get("/v1/artifacts").json()
    assert set(body) == {"artifacts", "next_cursor", "has_more"}
    assert body["has_more"] is False and body["next_cursor"] is None
    assert ids(body["artifacts"]) == ids(newest_first(made)) == ids(reversed(made))
    for item, original in zip(body["artifacts"], reversed(made), strict=True):
        assert set(item) == RECORD_FIELDS
        assert item == original
        assert item["status"] == "active"


def test_each_filter_is_exact_and_filters_combine_with_and(shared_server):
    _, c = new_tenant(shared_server)
    a = upload(c, filename="report.json", content_type="application/json", session_id="run-1",
               agent_id="planner", metadata={"env": "prod", "team": "ml"})
    b = upload(c, filename="report.json", content_type="text/plain", session_id="run-2",
               agent_id="planner", metadata={"env": "dev", "team": "ml"})
    d = upload(c, filename="notes.txt", content_type="text/plain", session_id="run-1",
               agent_id="coder", metadata={"env": "prod"})
    e = upload(c, filename="report.json.bak", content_type="application/json")

    def listed(**params):
        r = c.get("/v1/artifacts", params=params)
        assert r.status_code == 200, r.text
        return set(ids(r.json()["artifacts"]))

    everything = {x["artifact_id"] for x in (a, b, d, e)}
    assert listed() == everything
    assert listed(session_id="run-1") == {a["artifact_id"], d["artifact_id"]}
    assert listed(agent_id="planner") == {a["artifact_id"], b["artifact_id"]}
    assert listed(filename="report.json") == {a["artifact_id"], b["artifact_id"]}  # exact, not prefix
    assert listed(content_type="application/json") == {a["artifact_id"], e["artifact_id"]}
    assert listed(**{"metadata.env": "prod"}) == {a["artifact_id"], d["artifact_id"]}
    assert listed(**{"metadata.team": "ml"}) == {a["artifact_id"], b["artifact_id"]}
    assert listed(**{"metadata.env": "prod", "metadata.team": "ml"}) == {a["artifact_id"]}
    assert listed(session_id="run-1", agent_id="coder") == {d["artifact_id"]}
    assert listed(agent_id="planner", content_type="text/plain") == {b["artifact_id"]}
    assert listed(session_id="run-1", **{"metadata.team": "ml"}) == {a["artifact_id"]}
    assert listed(filename="report.json", **{"metadata.env": "dev"}) == {b["artifact_id"]}
    # Unknown values are simply empty lists, not errors.
    assert listed(session_id="never-used") == set()
    assert listed(agent_id="nobody") == set()
    assert listed(**{"metadata.env": "staging"}) == set()
    assert listed(**{"metadata.missing": "x"}) == set()


def test_created_after_and_before_are_exclusive_and_accept_offsets(shared_server):
    _, c = new_tenant(shared_server)
    made = [upload(c) for _ in range(5)]
    mid = made[2]["created_at"]
    older = {x["artifact_id"] for x in made[:2]}
    newer = {x["artifact_id"] for x in made[3:]}

    def listed(**params):
        r = c.get("/v1/artifacts", params=params)
        assert r.status_code == 200, r.text
        return set(ids(r.json()["artifacts"]))

    assert listed(created_after=mid) == newer
    assert listed(created_before=mid) == older
    assert listed(created_after=made[0]["created_at"], created_before=made[4]["created_at"]) == {
        x["artifact_id"] for x in made[1:4]
    }
    # The same instant written with an offset.
    instant = datetime.strptime(mid, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    plus_two = instant.astimezone(timezone_plus(2)).isoformat()
    assert plus_two.endswith("+02:00")
    assert listed(created_after=plus_two) == newer
    assert listed(created_before=instant.isoformat()) == older  # "+00:00"
    # An unencoded '+' (arrives as a space) is read as the offset it was.
    r = c.get(f"/v1/artifacts?created_after={plus_two}")
    assert r.status_code == 200 and set(ids(r.json()["artifacts"])) == newer
    # Far bounds.
    assert listed(created_after="1900-01-01T00:00:00Z") == older | newer | {made[2]["artifact_id"]}
    assert listed(created_before="1900-01-01T00:00:00Z") == set()
    assert listed(created_after=(instant + timedelta(days=3650)).isoformat()) == set()


def timezone_plus(hours):
    from datetime import timezone

    return timezone(timedelta(hours=hours))


@pytest.mark.parametrize("params", [
    {"created_after": "yesterday"},
    {"created_before": "2026-13-45T00:00:00Z"},
    {"created_after": "0001-01-01T00:00:00+01:00"},
    {"limit": "0"}, {"limit": "201"}, {"limit": "-1"}, {"limit": "abc"}, {"limit": "1.5"}, {"limit": ""},
    {"session_id": "-starts-with-dash"}, {"agent_id": "has space"}, {"session_id": "x" * 129},
    {"metadata.1abc": "v"}, {"metadata.": "v"}, {"metadata.bad key": "v"}, {"metadata.k": "v" * 1025},
    {"cursor": "not-a-cursor"},
])
def test_malformed_queries_are_400(shared_server, params):
    with shared_server.client() as c:
        assert_error(c.get("/v1/artifacts", params=params), 400, "invalid_request")


def test_limit_bounds_are_inclusive(shared_server):
    _, c = new_tenant(shared_server)
    made = [upload(c) for _ in range(3)]
    one = c.get("/v1/artifacts", params={"limit": "1"}).json()
    assert ids(one["artifacts"]) == [made[-1]["artifact_id"]] and one["has_more"] is True
    full = c.get("/v1/artifacts", params={"limit": "200"}).json()
    assert len(full["artifacts"]) == 3 and full["has_more"] is False


def test_a_parameter_given_twice_is_400(shared_server):
    with shared_server.client() as c:
        r = c.get("/v1/artifacts?session_id=a&session_id=b")
    assert_error(r, 400, "invalid_request")


def test_metadata_filter_count_is_limited_by_the_plan(shared_server):
    _, free = new_tenant(shared_server, plan="free")
    art = upload(free, metadata={"a": "1", "b": "2"})
    one = free.get("/v1/artifacts", params={"metadata.a": "1"})
    assert one.status_code == 200 and ids(one.json()["artifacts"]) == [art["artifact_id"]]
    two = free.get("/v1/artifacts", params={"metadata.a": "1", "metadata.b": "2"})
    assert_error(two, 403, "quota_exceeded")
    # A malformed key is a 400 even when the count is also over the limit.
    assert_error(free.get("/v1/artifacts", params={"metadata.a": "1", "metadata.9": "2"}),
                 400, "invalid_request")
    _, pro = new_tenant(shared_server, plan="pro")  # 5 filters
    art = upload(pro, metadata={k: "v" for k in "abcde"})
    five = pro.get("/v1/artifacts", params={f"metadata.{k}": "v" for k in "abcde"})
    assert five.status_code == 200 and ids(five.json()["artifacts"]) == [art["artifact_id"]]
    six = pro.get("/v1/artifacts", params={f"metadata.{k}": "v" for k in "abcdef"})
    assert_error(six, 403, "quota_exceeded")


def test_pages_follow_cursors_and_cursors_are_bound_to_tenant_and_query(shared_server):
    _, c = new_tenant(shared_server)
    made = [upload(c, session_id="s1") for _ in range(5)]
    first = c.get("/v1/artifacts", params={"limit": "2", "session_id": "s1"}).json()
    assert first["has_more"] is True and isinstance(first["next_cursor"], str)
    cursor = first["next_cursor"]
    second = c.get("/v1/artifacts", params={"limit": "2", "session_id": "s1", "cursor": cursor}).json()
    assert ids(first["artifacts"]) + ids(second["artifacts"]) == ids(reversed(made))[:4]
    # The page size may change between pages; the filters may not.
    rest = c.get("/v1/artifacts", params={"limit": "50", "session_id": "s1", "cursor": cursor}).json()
    assert ids(rest["artifacts"]) == ids(reversed(made))[2:]
    assert rest["has_more"] is False and rest["next_cursor"] is None
    assert_error(c.get("/v1/artifacts", params={"limit": "2", "cursor": cursor}), 400, "invalid_request")
    assert_error(c.get("/v1/artifacts", params={"session_id": "s2", "cursor": cursor}),
                 400, "invalid_request")
    # Tampering with any character is detected.
    for i in (0, len(cursor) // 2, len(cursor) - 1):
        forged = cursor[:i] + ("A" if cursor[i] != "A" else "B") + cursor[i + 1:]
        assert_error(c.get("/v1/artifacts", params={"session_id": "s1", "cursor": forged}),
                     400, "invalid_request")
    # Another tenant cannot use it, even with the same filters.
    _, other = new_tenant(shared_server)
    with other:
        assert_error(other.get("/v1/artifacts", params={"session_id": "s1", "cursor": cursor}),
                     400, "invalid_request")


def test_has_more_is_false_when_the_last_page_is_exactly_full(shared_server):
    _, c = new_tenant(shared_server)
    made = [upload(c) for _ in range(4)]
    first = c.get("/v1/artifacts", params={"limit": "2"}).json()
    second = c.get("/v1/artifacts", params={"limit": "2", "cursor": first["next_cursor"]}).json()
    assert ids(first["artifacts"]) + ids(second["artifacts"]) == ids(reversed(made))
    assert second["has_more"] is False and second["next_cursor"] is None


def test_deleted_and_expired_artifacts_leave_the_list_at_once(shared_server):
    _, c = new_tenant(shared_server)
    keep, gone, old = (upload(c, content_type="text/plain", session_id="s", metadata={"k": "v"})
                       for _ in range(3))
    assert c.delete(f"/v1/artifacts/{gone['artifact_id']}").status_code == 200
    expire_now(shared_server, old["artifact_id"])
    for params in ({}, {"session_id": "s"}, {"metadata.k": "v"}, {"content_type": "text/plain"}):
        assert ids(c.get("/v1/artifacts", params=params).json()["artifacts"]) == [keep["artifact_id"]]


def test_other_tenants_artifacts_are_never_listed(shared_server):
    _, c1 = new_tenant(shared_server)
    _, c2 = new_tenant(shared_server)
    a = upload(c1, session_id="shared-name", metadata={"k": "v"})
    b = upload(c2, session_id="shared-name", metadata={"k": "v"})
    for params in ({}, {"session_id": "shared-name"}, {"metadata.k": "v"}):
        assert ids(c1.get("/v1/artifacts", params=params).json()["artifacts"]) == [a["artifact_id"]]
        assert ids(c2.get("/v1/artifacts", params=params).json()["artifacts"]) == [b["artifact_id"]]


FAST_PLAN = """
[plans.selfhosted]
rate_sustained = 100000
rate_burst = 100000
"""


@pytest.mark.serial  # a thousand uploads, then paging beside eight writers
def test_paging_over_a_thousand_artifacts_returns_each_exactly_once_even_during_uploads(make_server):
    server = make_server(config=FAST_PLAN)
    c = server.client()
    local = threading.local()
    clients = [c]

    def seed(i):
        if not hasattr(local, "client"):
            local.client = server.client()
            clients.append(local.client)
        # every third shares a session and a metadata value, to page the index-driven filters too
        return upload(local.client, f"{i}".encode(), filename=f"f{i}.txt",
                      session_id="big" if i % 3 == 0 else None,
                      metadata={"mod": str(i % 3)})

    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(seed, range(1030)))
    expected = ids(newest_first(made))
    assert len(set(expected)) == 1030

    for limit in (200, 7):
        assert ids(list_all(c, limit)) == expected
    big = [a for a in newest_first(made) if a["session_id"] == "big"]
    assert ids(list_all(c, 50, session_id="big")) == ids(big)
    assert ids(list_all(c, 33, **{"metadata.mod": "0"})) == ids(big)

    # Page with limit 7 while eight writers keep uploading: every artifact that existed when
    # paging began is listed exactly once, and the order never goes backwards.
    stop = threading.Event()
    added: list[dict] = []

    def writer(n):
        i = 0
        while not stop.is_set():
            added.append(seed(10_000 + n * 1000 + i))
            i += 1

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(writer, n) for n in range(8)]
        try:
            seen = list_all(c, 7)
        finally:
            stop.set()
        for f in futures:
            f.result()
    assert added, "no upload happened while paging"
    seen_ids = ids(seen)
    assert len(seen_ids) == len(set(seen_ids)), "an artifact was listed twice"
    keys = [(a["created_at"], a["artifact_id"]) for a in seen]
    assert keys == sorted(keys, reverse=True)
    existing = set(expected)
    assert [i for i in seen_ids if i in existing] == expected
    for client in clients:
        client.close()
