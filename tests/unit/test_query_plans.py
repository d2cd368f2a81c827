"""Every list query the server can generate is served by an index in list order.

The SQL comes from the same functions the server calls (`listing.build_list_sql`,
`sessions.build_sessions_sql`), built from parsed query strings, and is planned by SQLite on
the real schema — populated and ANALYZEd, so the planner has statistics that could tempt it
away from the index if the SQL allowed it.
"""

from __future__ import annotations

import sqlite3

import pytest

from artifacta_box.config import BUILTIN_PLANS
from artifacta_box.db.migrations import migrate
from artifacta_box.services import listing, sessions

PLAN = BUILTIN_PLANS["selfhosted"]
NOW = "2026-06-01T00:00:00.000000Z"
AFTER = ("2026-05-01T00:00:00.000000Z", "art_AAAAAAAAAAAAAAAA")


@pytest.fixture(scope="module")
def db() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrate(conn)
    conn.execute("BEGIN")
    for i in range(3000):
        tenant = 1 + i % 3
        created = f"2026-05-{1 + i % 28:02d}T00:00:{i % 60:02d}.{i:06d}Z"
        aid = f"art_{i:016d}"
        state = ("active", "active", "active", "deleted", "expired", "pending")[i % 6]
        conn.execute(
            "INSERT INTO artifacts (artifact_id, tenant_id, state, filename, content_type, size_bytes, "
            "content_hash, session_id, agent_id, metadata, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?, 1, 'h', ?, ?, '{}', ?, ?)",
            (aid, tenant, state, f"f{i % 50}.txt", ("text/plain", "image/png")[i % 2],
             f"s{i % 40}", f"agent{i % 7}", created, None if i % 4 else "2026-07-01T00:00:00.000000Z"),
        )
        for key, value in (("env", ("prod", "dev")[i % 2]), ("run", f"r{i % 100}")):
            conn.execute(
                "INSERT INTO artifact_metadata VALUES (?, ?, ?, ?, ?)", (tenant, key, value, created, aid)
            )
    for i in range(500):
        conn.execute(
            "INSERT INTO sessions VALUES (?, ?, 3, ?, ?, ?, NULL)",
            (1 + i % 3, f"s{i}", NOW, f"2026-05-{1 + i % 28:02d}T00:00:00.000000Z",
             f"2026-05-{1 + i % 28:02d}T01:{i % 60:02d}:00.000000Z"),
        )
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    return conn


def plan_of(db: sqlite3.Connection, sql: str, params: list) -> list[str]:
    return [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()]


def assert_indexed(lines: list[str], driver: str) -> None:
    text = "\n".join(lines)
    assert "TEMP B-TREE" not in text, text  # no sort: the index order is the list order
    access = [ln for ln in lines if ln.startswith(("SCAN", "SEARCH"))]
    assert access, text
    for ln in access:
        assert ln.startswith("SEARCH"), text  # every table is reached through an index range
    # the intended index drives the loop (artifact_metadata is reached by its primary key)
    expected = "SEARCH m USING PRIMARY KEY" if driver == "artifact_metadata" else f"INDEX {driver} "
    assert expected in access[0], text


CASES = [
    ("", "artifacts_list"),
    ("session_id=s1", "artifacts_by_session"),
    ("agent_id=agent1", "artifacts_by_agent"),
    ("filename=f1.txt", "artifacts_by_filename"),
    ("content_type=text/plain", "artifacts_by_type"),
    ("created_after=2026-05-02T00:00:00Z", "artifacts_list"),
    ("created_before=2026-05-20T00:00:00%2B00:00", "artifacts_list"),
    ("created_after=2026-05-02T00:00:00Z&created_before=2026-05-20T00:00:00Z", "artifacts_list"),
    ("metadata.env=prod", "artifact_metadata"),
    ("metadata.env=prod&metadata.run=r7", "artifact_metadata"),
    ("metadata.env=prod&metadata.run=r7&metadata.x=y", "artifact_metadata"),
    ("session_id=s1&agent_id=agent1", "artifacts_by_session"),
    ("agent_id=agent1&content_type=text/plain", "artifacts_by_agent"),
    ("filename=f1.txt&content_type=text/plain", "artifacts_by_filename"),
    ("session_id=s1&metadata.env=prod", "artifacts_by_session"),
    ("agent_id=agent1&metadata.env=prod", "artifact_metadata"),
    ("metadata.env=prod&created_after=2026-05-02T00:00:00Z", "artifact_metadata"),
    ("session_id=s1&created_after=2026-05-02T00:00:00Z&created_before=2026-05-09T00:00:00Z",
     "artifacts_by_session"),
    (("session_id=s1&agent_id=agent1&filename=f1.txt&content_type=text/plain&metadata.env=prod"
     "&metadata.run=r1&created_after=2026-05-02T00:00:00Z&created_before=2026-05-09T00:00:00Z"),
     "artifacts_by_session"),
]


def parse(qs: str):
    from urllib.parse import parse_qsl

    return listing.parse_artifact_query(parse_qsl(qs, keep_blank_values=True), PLAN)


@pytest.mark.parametrize("paged", [False, True], ids=["first-page", "next-page"])
@pytest.mark.parametrize(("qs", "driver"), CASES, ids=[c[0] or "unfiltered" for c in CASES])
def test_every_artifact_list_query_is_served_by_an_index(db, qs, driver, paged):
    query = parse(qs)
    assert listing.driver_of(query) == driver
    sql, params = listing.build_list_sql(2, query, NOW, AFTER if paged else None, query.limit + 1)
    assert "a.state = 'active'" in sql  # what makes the partial indexes applicable
    assert_indexed(plan_of(db, sql, params), driver)


COMBOS = [qs for qs, _ in CASES if len(listing.candidate_drivers(parse(qs))) > 1]


@pytest.mark.parametrize("qs", COMBOS)
def test_every_candidate_driver_of_a_combination_is_index_driven(db, qs):
    """With several filters the server picks the candidate whose index range is smallest
    (choose_driver); whichever it picks, the page is an index range read with no sort."""
    query = parse(qs)
    for driver in listing.candidate_drivers(query):
        sql, params = listing.build_list_sql(2, query, NOW, AFTER, query.limit + 1, driver)
        assert_indexed(plan_of(db, sql, params), driver)
        probe, probe_params = listing.probe_sql(2, query, driver)
        assert "TEMP B-TREE" not in "\n".join(plan_of(db, probe, probe_params))


def test_the_smallest_candidate_range_drives(db):
    def pick(qs):
        return listing.choose_driver(db, 2, parse(qs))

    query = parse("agent_id=agent1&metadata.env=prod")
    counts = {d: db.execute(*listing.probe_sql(2, query, d)).fetchone()[0]
              for d in listing.candidate_drivers(query)}
    chosen = pick("agent_id=agent1&metadata.env=prod")
    assert counts[chosen] == min(counts.values())
    assert pick("agent_id=agent1") == "artifacts_by_agent"
    assert pick("") == "artifacts_list"


@pytest.mark.parametrize(("qs", "driver"), CASES, ids=[c[0] or "unfiltered" for c in CASES])
def test_generated_sql_returns_exactly_the_matching_rows_in_order(db, qs, driver):
    """The index-driven SQL agrees with a brute-force evaluation of the same filters, whichever
    candidate index drives it."""
    query = parse(qs)
    results = []
    for candidate in listing.candidate_drivers(query) or [driver]:
        sql, params = listing.build_list_sql(2, query, NOW, None, 10_000, candidate)
        results.append([r[1] for r in db.execute(sql, params).fetchall()])
    got = results[0]
    assert all(r == got for r in results)
    rows = db.execute(
        "SELECT artifact_id, session_id, agent_id, filename, content_type, created_at, expires_at "
        "FROM artifacts NOT INDEXED WHERE tenant_id = 2 AND state = 'active'"
    ).fetchall()
    meta = {}
    for aid, key, value in db.execute("SELECT artifact_id, key, value FROM artifact_metadata"):
        meta.setdefault(aid, {})[key] = value
    expected = []
    for aid, sid, agent, fname, ctype, created, expires in rows:
        if expires is not None and expires <= NOW:
            continue
        fields = {"session_id": sid, "agent_id": agent, "filename": fname, "content_type": ctype}
        if any(getattr(query, k) is not None and getattr(query, k) != v for k, v in fields.items()):
            continue
        if query.created_after and not created > query.created_after:
            continue
        if query.created_before and not created < query.created_before:
            continue
        if any(meta.get(aid, {}).get(k) != v for k, v in query.metadata):
            continue
        expected.append((created, aid))
    expected.sort(reverse=True)
    assert got == [aid for _, aid in expected]


@pytest.mark.parametrize("qs", [
    "", "created_after=2026-05-02T00:00:00Z", "created_before=2026-05-20T00:00:00 00:00",
    "created_after=2026-05-02T00:00:00Z&created_before=2026-05-20T00:00:00Z&limit=7",
])
@pytest.mark.parametrize("paged", [False, True], ids=["first-page", "next-page"])
def test_sessions_list_is_served_by_the_activity_index(db, qs, paged):
    from urllib.parse import parse_qsl

    query = sessions.parse_session_query(parse_qsl(qs, keep_blank_values=True), PLAN)
    after = ("2026-05-10T01:00:00.000000Z", "s9") if paged else None
    sql, params = sessions.build_sessions_sql(2, query, after, query["limit"] + 1)
    assert_indexed(plan_of(db, sql, params), "sessions_by_activity")
