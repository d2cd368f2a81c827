"""`artifacta-box gc` and the server's own periodic lifecycle run (README, "Operations").

Each test runs its own server so the figures gc prints are exactly the test's own. Nothing
sleeps for expiry or retention: timestamps are moved into the past in the server's SQLite file
and file times with os.utime, as if the time had passed.
"""

from __future__ import annotations

import time

import httpx

from tests.helpers import download, error_code, file_sized, rows, sha, sql, tenant_id, upload
from tests.ops_helpers import DAY, admin_json, age_file, blob_path, iso_ago, put_bytes, reserve

HOUR = 3600


def test_deleted_artifacts_are_purged_after_retention_and_their_blob_after_the_grace(make_server):
    srv = make_server()
    api = srv.client()
    # Files (inline blobs: tests/cli/test_inline_blobs.py).
    shared, alone = file_sized(b"shared content "), file_sized(b"only in one artifact ")
    a, b, c = upload(api, shared), upload(api, shared), upload(api, alone)
    for art in (a, c):
        assert api.delete(f"/v1/artifacts/{art['artifact_id']}").status_code == 200

    # Within retention nothing is purged and the 410 holds.
    first = admin_json(srv, "gc")
    assert first["purged_artifacts"] == 0
    assert error_code(api.get(f"/v1/artifacts/{a['artifact_id']}")) == "artifact_already_deleted"

    sql(srv, "UPDATE artifacts SET deleted_at = ? WHERE artifact_id IN (?, ?)",
        (iso_ago(31 * DAY), a["artifact_id"], c["artifact_id"]))
    dry = admin_json(srv, "gc", "--dry-run")
    assert dry["dry_run"] is True
    assert dry["purged_artifacts"] == 2
    assert api.get(f"/v1/artifacts/{a['artifact_id']}").status_code == 410  # dry run changed nothing

    done = admin_json(srv, "gc")
    assert done["purged_artifacts"] == 2
    assert done["deleted_blobs"] == 0  # the blob that lost its last row waits for the grace
    for art in (a, c):
        r = api.get(f"/v1/artifacts/{art['artifact_id']}")
        assert r.status_code == 404 and error_code(r) == "artifact_not_found"
    assert download(api, b["artifact_id"]) == shared
    tid = tenant_id(srv, "default")
    shared_path, alone_path = blob_path(srv.data_dir, tid, sha(shared)), blob_path(srv.data_dir, tid, sha(alone))
    assert shared_path.exists() and alone_path.exists()
    assert sql(srv, "SELECT COUNT(*) FROM artifact_metadata WHERE artifact_id IN (?, ?)",
               (a["artifact_id"], c["artifact_id"]))[0][0] == 0

    # Once unreferenced (and untouched) for longer than the grace, the blob goes; the shared one
    # is still referenced by b and stays.
    sql(srv, "UPDATE blobs SET unreferenced_at = ? WHERE sha256 = ?", (iso_ago(2 * HOUR), sha(alone)))
    age_file(alone_path, 2 * HOUR)
    age_file(shared_path, 2 * HOUR)
    res = srv.admin("gc")
    assert "purged artifacts" in res.stdout and "reclaimed bytes" in res.stdout
    assert f"{len(alone):,}" in res.stdout
    assert not alone_path.exists()
    assert shared_path.exists()
    assert download(api, b["artifact_id"]) == shared
    assert sql(srv, "SELECT COUNT(*) FROM blobs WHERE sha256 = ?", (sha(alone),))[0][0] == 0
    assert admin_json(srv, "check")["ok"] is True


def test_a_recently_touched_unreferenced_blob_is_kept(make_server):
    """An upload of the same content refreshes the file's mtime (dedup hit) before its row
    lands; gc must not take the file from under it even if the row says unreferenced long ago."""
    srv = make_server()
    api = srv.client()
    content = file_sized(b"about to be uploaded again ")
    art = upload(api, content)
    api.delete(f"/v1/artifacts/{art['artifact_id']}")
    sql(srv, "UPDATE artifacts SET deleted_at = ? WHERE artifact_id = ?", (iso_ago(31 * DAY), art["artifact_id"]))
    admin_json(srv, "gc")
    sql(srv, "UPDATE blobs SET unreferenced_at = ? WHERE sha256 = ?", (iso_ago(2 * HOUR), sha(content)))
    path = blob_path(srv.data_dir, tenant_id(srv, "default"), sha(content))
    assert path.exists()  # fresh mtime: within the grace
    assert admin_json(srv, "gc")["deleted_blobs"] == 0
    assert path.exists()
    again = upload(api, content)
    assert download(api, again["artifact_id"]) == content


def test_expired_artifacts_stop_counting_at_once_and_are_purged_after_retention(make_server):
    srv = make_server()
    api = srv.client()
    content = b"short-lived " * 200
    art = upload(api, content, ttl="1h")
    assert api.get("/v1/whoami").json()["usage_storage_bytes"] == len(content)
    sql(srv, "UPDATE artifacts SET expires_at = ? WHERE artifact_id = ?", (iso_ago(60), art["artifact_id"]))

    first = admin_json(srv, "gc")
    assert first["expired"] == 1 and first["purged_artifacts"] == 0
    assert sql(srv, "SELECT state FROM artifacts WHERE artifact_id = ?", (art["artifact_id"],))[0][0] == "expired"
    assert error_code(api.get(f"/v1/artifacts/{art['artifact_id']}")) == "artifact_expired"
    assert api.get("/v1/whoami").json()["usage_storage_bytes"] == 0

    sql(srv, "UPDATE artifacts SET expired_at = ? WHERE artifact_id = ?", (iso_ago(31 * DAY), art["artifact_id"]))
    assert admin_json(srv, "gc")["purged_artifacts"] == 1
    assert error_code(api.get(f"/v1/artifacts/{art['artifact_id']}")) == "artifact_not_found"


def test_stale_presigned_uploads_lose_their_row_and_bytes(make_server):
    srv = make_server()
    api = srv.client()
    content = b"uploaded but never completed " * 40
    with_bytes = reserve(api, len(content))
    assert put_bytes(with_bytes, content).status_code == 200
    without_bytes = reserve(api, 10)
    fresh = reserve(api, 5)
    path = blob_path(srv.data_dir, tenant_id(srv, "default"), sha(content))
    assert path.exists()

    sql(srv, "UPDATE artifacts SET upload_expires_at = ? WHERE artifact_id IN (?, ?)",
        (iso_ago(2 * HOUR), with_bytes["artifact_id"], without_bytes["artifact_id"]))
    age_file(path, 2 * HOUR)
    report = admin_json(srv, "gc")
    assert report["purged_pending"] == 2
    assert report["deleted_blobs"] == 1 and report["reclaimed_bytes"] == len(content)
    assert not path.exists()
    for res in (with_bytes, without_bytes):
        assert error_code(api.get(f"/v1/artifacts/{res['artifact_id']}")) == "artifact_not_found"
    r = api.get(f"/v1/artifacts/{fresh['artifact_id']}")
    assert r.status_code == 200 and r.json()["status"] == "pending"


def test_orphan_files_go_after_the_grace_but_never_bytes_a_pending_upload_holds(make_server):
    srv = make_server()
    api = srv.client()
    tid = tenant_id(srv, "default")
    # What a crash between an upload's bytes and its row leaves: a store file with no row.
    orphan = b"bytes whose row never committed " * 30
    orphan_path = blob_path(srv.data_dir, tid, sha(orphan))
    orphan_path.parent.mkdir(parents=True, exist_ok=True)
    orphan_path.write_bytes(orphan)
    # A presigned upload whose bytes arrived long ago and which is still waiting for complete.
    held = b"waiting for complete " * 30
    res = reserve(api, len(held))
    assert put_bytes(res, held).status_code == 200
    held_path = blob_path(srv.data_dir, tid, sha(held))
    age_file(held_path, 3 * HOUR)

    assert admin_json(srv, "gc")["deleted_blobs"] == 0  # the orphan is younger than the grace
    assert orphan_path.exists()

    age_file(orphan_path, 2 * HOUR)
    assert admin_json(srv, "gc", "--dry-run")["orphan_files"] == 1
    assert orphan_path.exists()
    report = admin_json(srv, "gc")
    assert report["deleted_blobs"] == 1 and report["orphan_files"] == 1
    assert report["reclaimed_bytes"] == len(orphan)
    assert not orphan_path.exists()
    assert held_path.exists()
    done = api.post(f"/v1/artifacts/{res['artifact_id']}/complete")
    assert done.status_code == 200, done.text
    assert download(api, res["artifact_id"]) == held


def test_links_are_dropped_after_expiry_plus_retention(make_server):
    srv = make_server()
    api = srv.client()
    art = upload(api, b"shared by link")
    old = api.post(f"/v1/artifacts/{art['artifact_id']}/links").json()
    recent = api.post(f"/v1/artifacts/{art['artifact_id']}/links").json()
    sql(srv, "UPDATE links SET expires_at = ? WHERE link_id = ?", (iso_ago(31 * DAY), old["link_id"]))
    sql(srv, "UPDATE links SET expires_at = ? WHERE link_id = ?", (iso_ago(60), recent["link_id"]))
    assert admin_json(srv, "gc")["dropped_links"] == 1
    gone = httpx.get(old["url"])
    assert gone.status_code == 404 and error_code(gone) == "link_not_found"
    assert error_code(httpx.get(recent["url"])) == "link_expired"


def test_old_idempotency_keys_are_forgotten(make_server):
    srv = make_server()
    api = srv.client()
    headers = {"Idempotency-Key": "push-1"}
    files = {"file": ("a.txt", b"idempotent", "text/plain")}
    first = api.post("/v1/artifacts", files=files, headers=headers)
    assert first.status_code == 201
    assert api.post("/v1/artifacts", files=files, headers=headers).status_code == 200
    assert admin_json(srv, "gc")["idempotency_keys"] == 0
    sql(srv, "UPDATE idempotency_keys SET created_at = ?", (iso_ago(2 * DAY),))
    assert admin_json(srv, "gc")["idempotency_keys"] == 1
    assert sql(srv, "SELECT COUNT(*) FROM idempotency_keys")[0][0] == 0


def test_gc_beside_a_running_server_removes_only_old_temp_files(make_server):
    srv = make_server()
    tmp = srv.data_dir / "tmp"
    young, old = tmp / "young.part", tmp / "old.part"
    young.write_bytes(b"an upload in flight")
    old.write_bytes(b"left by a crash")
    age_file(old, 2 * HOUR)
    report = admin_json(srv, "gc")
    assert report["temp_files"] == 1
    assert young.exists() and not old.exists()
    srv.stop()
    # No server, so nothing can be in flight: every temp file is a leftover.
    assert admin_json(srv, "gc")["temp_files"] == 1
    assert not young.exists()


def test_gc_runs_are_recorded_and_audited(make_server):
    srv = make_server()
    api = srv.client()
    art = upload(api, b"to be purged")
    api.delete(f"/v1/artifacts/{art['artifact_id']}")
    sql(srv, "UPDATE artifacts SET deleted_at = ? WHERE artifact_id = ?", (iso_ago(40 * DAY), art["artifact_id"]))
    admin_json(srv, "gc")
    runs = rows(srv, "SELECT purged_artifacts, finished_at FROM gc_runs WHERE purged_artifacts > 0")
    assert len(runs) == 1 and runs[0]["finished_at"] is not None
    entries = admin_json(srv, "audit", "--action", "gc")
    assert entries[0]["action"] == "gc.run" and entries[0]["actor"] == "cli"
    assert entries[0]["details"]["purged_artifacts"] == 1


def test_the_server_runs_the_lifecycle_by_itself(make_server):
    srv = make_server(config='[retention]\ngc_interval = "1s"\n')
    api = srv.client()
    art = upload(api, b"purged by the server's own gc")
    api.delete(f"/v1/artifacts/{art['artifact_id']}")
    sql(srv, "UPDATE artifacts SET deleted_at = ? WHERE artifact_id = ?", (iso_ago(31 * DAY), art["artifact_id"]))
    deadline = time.monotonic() + 30
    while api.get(f"/v1/artifacts/{art['artifact_id']}").status_code != 404:
        assert time.monotonic() < deadline, "the server's periodic gc did not purge the artifact"
        time.sleep(0.2)


def test_lifecycle_selections_are_served_by_their_indexes(tmp_path):
    """gc runs every few minutes on stores of millions of rows: each selection must walk a
    partial index of the rows it wants, never scan the table."""
    from artifacta_box.db import connect_sync, initialise
    from artifacta_box.services import lifecycle

    initialise(tmp_path / "a.db")
    conn = connect_sync(tmp_path / "a.db")
    expected = [
        (lifecycle.PURGE_SQL["deleted"], ("x", "", 0, 500), "artifacts_deleted"),
        (lifecycle.PURGE_SQL["expired"], ("x", "", 0, 500), "artifacts_expired"),
        (lifecycle.STALE_PENDING_SQL, ("x", "", 0, 500), "artifacts_pending"),
        (lifecycle.UNREFERENCED_SQL, ("x", "", -1, "", 500), "blobs_unreferenced"),
        (lifecycle.PENDING_HOLDS_SQL, (1, "x"), "artifacts_by_upload"),
    ]
    for sql_text, params, index in expected:
        plan = " | ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql_text, params))
        assert f"USING INDEX {index}" in plan or f"USING COVERING INDEX {index}" in plan, plan
        assert "TEMP B-TREE" not in plan, plan
    conn.close()


def test_purging_an_artifact_removes_its_pages_and_their_urls_answer_404(make_server):
    srv = make_server()
    api = srv.client()
    art = upload(api, b"published, then deleted")
    page = api.post(f"/v1/artifacts/{art['artifact_id']}/publish").json()
    assert api.delete(f"/v1/artifacts/{art['artifact_id']}").status_code == 200
    assert httpx.get(page["public_url"]).status_code == 410  # within retention: gone
    sql(srv, "UPDATE artifacts SET deleted_at = ? WHERE artifact_id = ?",
        (iso_ago(31 * DAY), art["artifact_id"]))
    assert admin_json(srv, "gc")["purged_artifacts"] == 1
    assert sql(srv, "SELECT COUNT(*) FROM pages WHERE artifact_id = ?", (art["artifact_id"],))[0][0] == 0
    assert httpx.get(page["public_url"]).status_code == 404


def test_check_reports_a_page_whose_artifact_is_gone_and_repair_removes_only_it(make_server):
    srv = make_server()
    api = srv.client()
    kept = upload(api, b"published and kept")
    lost = upload(api, b"published, row removed by hand")
    kept_page = api.post(f"/v1/artifacts/{kept['artifact_id']}/publish").json()
    lost_page = api.post(f"/v1/artifacts/{lost['artifact_id']}/publish").json()
    assert admin_json(srv, "check")["ok"] is True
    # As if the artifact row had gone without gc (damage, a hand edit): its page dangles.
    sql(srv, "UPDATE pages SET artifact_id = ? WHERE page_id = ?",
        ("art_doesnotexist000000000", lost_page["page_id"]))
    report = admin_json(srv, "check", check=False)
    assert [p["kind"] for p in report["problems"]] == ["dangling_page"]
    assert lost_page["page_id"] in report["problems"][0]["detail"]
    assert httpx.get(lost_page["public_url"]).status_code == 404
    fixed = admin_json(srv, "check", "--repair", check=False)
    assert [(p["kind"], p["repaired"]) for p in fixed["problems"]] == [("dangling_page", True)]
    assert sql(srv, "SELECT page_id FROM pages") == [(kept_page["page_id"],)]
    assert httpx.get(kept_page["public_url"]).status_code == 200
    assert admin_json(srv, "check")["ok"] is True
