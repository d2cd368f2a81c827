"""`artifacta-box check [--repair]`: verifies blobs (presence, size, SHA-256), counters, orphans
and temp leftovers beside a running server; exits non-zero on any unrepaired problem; repairs
counters and orphans but never deletes a referenced blob."""

from __future__ import annotations

import json

import pytest

from tests.helpers import (
    corrupt_blob,
    delete_blob,
    download,
    file_sized,
    read_blob,
    rows,
    sha,
    sql,
    tenant_id,
    upload,
)
from tests.ops_helpers import admin_json, age_file, blob_path, put_bytes, reserve

HOUR = 3600


def kinds(report: dict) -> set[str]:
    return {p["kind"] for p in report["problems"] if not p["repaired"]}


def test_a_healthy_store_checks_clean_with_a_progress_bar_on_stderr(make_server):
    srv = make_server()
    api = srv.client()
    upload(api, b"one" * 1000)
    upload(api, b"one" * 1000)  # dedup: one blob, two rows
    upload(api, b"two" * 1000, ttl="1h")
    res = reserve(api, 4)
    assert put_bytes(res, b"four").status_code == 200  # bytes held by a pending upload
    api.delete(f"/v1/artifacts/{upload(api, b'three' * 10)['artifact_id']}")
    (srv.data_dir / "tmp" / "in-flight.part").write_bytes(b"x")  # young: maybe an upload

    out = srv.admin("check")
    assert out.returncode == 0
    assert "OK: no problems found." in out.stdout
    assert "verifying blobs" in out.stderr
    report = admin_json(srv, "check")
    assert report["ok"] is True and report["problems"] == []
    assert report["blobs_verified"] == 3
    assert report["recent_temp_files"] == 1


@pytest.mark.parametrize("stored", ["file", "inline"])
def test_corrupt_and_missing_blobs_fail_the_check_and_repair_never_deletes_them(make_server,
                                                                                 stored):
    srv = make_server()
    api = srv.client()
    tid = tenant_id(srv, "default")
    sized = file_sized if stored == "file" else (lambda tag: tag * 100)
    good, bad, lost = sized(b"intact "), sized(b"will be corrupted "), sized(b"will go missing ")
    for content in (good, bad, lost):
        upload(api, content)
    assert sql(srv, "SELECT DISTINCT location FROM blobs") == \
        [(None if stored == "file" else "inline",)]
    corrupted = corrupt_blob(srv, tid, sha(bad))
    delete_blob(srv, tid, sha(lost))

    res = srv.admin("check", check=False)
    assert res.returncode == 1
    assert "hash_mismatch" in res.stdout and "missing_blob" in res.stdout
    assert "FAILED: 2 problem(s)" in res.stdout

    repaired = srv.admin("check", "--repair", "--json", check=False)
    assert repaired.returncode == 1
    report = json.loads(repaired.stdout)
    assert kinds(report) == {"hash_mismatch", "missing_blob"}
    # a referenced blob is never deleted, corrupt or not
    assert read_blob(srv, tid, sha(bad)) == corrupted


def test_wrong_counters_are_reported_and_repaired(make_server):
    srv = make_server()
    api = srv.client()
    content = b"counted once " * 100
    a = upload(api, content)
    upload(api, content)
    kept = upload(api, b"second blob " * 10)
    sql(srv, "UPDATE blobs SET refs = 7, live_refs = 0 WHERE sha256 = ?", (sha(content),))
    sql(srv, "UPDATE tenants SET storage_bytes = 12345 WHERE name = 'default'")
    # A blob row lost while its artifacts still reference it (the file is intact).
    sql(srv, "DELETE FROM blobs WHERE sha256 = ?", (kept["content_hash"],))

    res = srv.admin("check", "--json", check=False)
    assert res.returncode == 1
    assert kinds(json.loads(res.stdout)) == {"blob_counters", "tenant_storage", "missing_blob_row"}

    fixed = admin_json(srv, "check", "--repair")
    assert fixed["ok"] is True
    assert {p["kind"] for p in fixed["problems"]} == {"blob_counters", "tenant_storage", "missing_blob_row"}
    assert all(p["repaired"] for p in fixed["problems"])
    row = rows(srv, "SELECT refs, live_refs FROM blobs WHERE sha256 = ?", (sha(content),))[0]
    assert (row["refs"], row["live_refs"]) == (2, 2)
    expected = len(content) + len(b"second blob " * 10)
    assert api.get("/v1/whoami").json()["usage_storage_bytes"] == expected
    assert admin_json(srv, "check")["problems"] == []
    assert download(api, a["artifact_id"]) == content
    entries = admin_json(srv, "audit", "--action", "check")
    assert entries[0]["action"] == "check.repair"


def test_orphans_and_temp_leftovers_are_found_and_repaired(make_server):
    srv = make_server()
    api = srv.client()
    tid = tenant_id(srv, "default")
    keep = upload(api, b"a live artifact")
    old_orphan, young_orphan = b"old orphan " * 20, b"young orphan " * 20
    for content in (old_orphan, young_orphan):
        p = blob_path(srv.data_dir, tid, sha(content))
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)
    age_file(blob_path(srv.data_dir, tid, sha(old_orphan)), 2 * HOUR)
    stale_tmp = srv.data_dir / "tmp" / "crashed.part"
    stale_tmp.write_bytes(b"half an upload")
    age_file(stale_tmp, 2 * HOUR)

    report = json.loads(srv.admin("check", "--json", check=False).stdout)
    assert kinds(report) == {"orphan_file", "temp_leftover"}
    assert report["recent_orphans"] == 1

    fixed = admin_json(srv, "check", "--repair")
    assert fixed["ok"] is True
    assert not blob_path(srv.data_dir, tid, sha(old_orphan)).exists()
    assert blob_path(srv.data_dir, tid, sha(young_orphan)).exists()  # may be an upload in flight
    assert not stale_tmp.exists()
    assert download(api, keep["artifact_id"]) == b"a live artifact"
