"""`artifacts list --deleted` is one walk of the deleted-rows index, with or without a tenant."""

import sqlite3

from artifacta_box.db.migrations import migrate
from artifacta_box.services.recovery import _DELETED_SQL


def test_listing_deleted_artifacts_walks_the_deleted_index_without_sorting():
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrate(conn)
    for tenant, params in (("", ("2026-01-01", 100)), (" AND a.tenant_id = ?", ("2026-01-01", 1, 100))):
        plan = [row[3] for row in conn.execute(
            "EXPLAIN QUERY PLAN " + _DELETED_SQL.format(tenant=tenant), params)]
        assert any("USING INDEX artifacts_deleted" in step for step in plan), plan
        assert not any("TEMP B-TREE" in step for step in plan), plan
