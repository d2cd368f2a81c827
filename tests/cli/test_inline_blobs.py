"""The admin commands on inline blobs (bytes kept in the database, storage/inline.py): gc purges
bytes with their row in one transaction, check finds missing, corrupt and orphaned inline bytes
(and `--repair` removes only the orphans), backup carries them in the database snapshot
(rehashed, counted in the manifest) and restore brings them back byte-identical."""

from __future__ import annotations

import json

import httpx

from tests.helpers import (
    corrupt_blob,
    download,
    file_sized,
    inline_blobs,
    sha,
    sql,
    tenant_id,
    upload,
)
from tests.ops_helpers import DAY, admin_json, iso_ago, offline_cli

HOUR = 3600


def test_gc_removes_inline_bytes_with_their_row_after_the_grace(make_server):
    srv = make_server()
    api = srv.client()
    tid = tenant_id(srv, "default")
    shared, alone = b"shared inline " * 50, b"alone inline " * 40
    a, b, c = upload(api, shared), upload(api, shared), upload(api, alone)
    for art in (a, c):
        assert api.delete(f"/v1/artifacts/{art['artifact_id']}").status_code == 200
    sql(srv, "UPDATE artifacts SET deleted_at = ? WHERE artifact_id IN (?, ?)",
        (iso_ago(31 * DAY), a["artifact_id"], c["artifact_id"]))
    done = admin_json(srv, "gc")
    assert (done["purged_artifacts"], done["deleted_blobs"]) == (2, 0)  # the row's grace holds
    assert len(inline_blobs(srv)) == 2

    sql(srv, "UPDATE blobs SET unreferenced_at = ? WHERE sha256 = ?", (iso_ago(2 * HOUR), sha(alone)))
    dry = admin_json(srv, "gc", "--dry-run")
    assert dry["deleted_blobs"] == 1 and dry["reclaimed_bytes"] == len(alone)
    assert len(inline_blobs(srv)) == 2  # a dry run changes nothing
    done = admin_json(srv, "gc")
    assert done["deleted_blobs"] == 1 and done["reclaimed_bytes"] == len(alone)
    assert inline_blobs(srv) == [f"inline:{tid}/{sha(shared)}"]
    assert sql(srv, "SELECT COUNT(*) FROM blobs WHERE sha256 = ?", (sha(alone),)) == [(0,)]
    assert download(api, b["artifact_id"]) == shared
    # the same bytes uploaded again are inline again, with a row of their own
    again = upload(api, alone)
    assert download(api, again["artifact_id"]) == alone
    assert admin_json(srv, "check")["ok"] is True


def test_check_reports_orphaned_inline_bytes_and_repair_and_gc_remove_only_those(make_server):
    srv = make_server()
    api = srv.client()
    tid = tenant_id(srv, "default")
    kept = upload(api, b"still referenced " * 10)
    lost_row = upload(api, b"its blob row goes " * 10)
    # Bytes no row wants: as if a row had been deleted by hand after its artifacts went.
    sql(srv, "INSERT INTO blob_data (tenant_id, sha256, data) VALUES (?, ?, ?)",
        (tid, sha(b"nobody's"), b"nobody's"))
    # Bytes whose blob row went while artifacts still reference them: not an orphan, the
    # repair recreates the row from them.
    sql(srv, "DELETE FROM blobs WHERE sha256 = ?", (lost_row["content_hash"],))

    report = admin_json(srv, "check", check=False)
    assert sorted(p["kind"] for p in report["problems"]) == ["missing_blob_row", "orphan_inline"]
    assert admin_json(srv, "gc", "--dry-run")["orphan_files"] == 1
    assert len(inline_blobs(srv)) == 3
    fixed = admin_json(srv, "check", "--repair", check=False)
    assert all(p["repaired"] for p in fixed["problems"]), fixed["problems"]
    assert sorted(inline_blobs(srv)) == sorted(
        f"inline:{tid}/{h}" for h in (kept["content_hash"], lost_row["content_hash"]))
    assert sql(srv, "SELECT location FROM blobs WHERE sha256 = ?",
               (lost_row["content_hash"],)) == [("inline",)]
    assert download(api, lost_row["artifact_id"]) == b"its blob row goes " * 10
    assert admin_json(srv, "check")["ok"] is True
    # gc removes an orphan too (never bytes a row names)
    sql(srv, "INSERT INTO blob_data (tenant_id, sha256, data) VALUES (?, ?, ?)",
        (tid, sha(b"again"), b"again"))
    assert admin_json(srv, "gc")["orphan_files"] == 1
    assert len(inline_blobs(srv)) == 2


def test_check_verify_rehashes_inline_bytes(make_server):
    srv = make_server()
    api = srv.client()
    art = upload(api, b"verified from the database " * 20)
    assert admin_json(srv, "check", "--verify")["blobs_verified"] == 1
    corrupt_blob(srv, tenant_id(srv, "default"), art["content_hash"])
    report = admin_json(srv, "check", "--verify", check=False)
    assert [p["kind"] for p in report["problems"]] == ["hash_mismatch"]
    assert "blob_data" in report["problems"][0]["detail"]


def test_backup_carries_inline_bytes_and_restore_serves_them_byte_identical(make_server,
                                                                          tmp_path):
    srv = make_server()
    api = srv.client()
    small = [upload(api, f"small {i} ".encode() * (i + 1)) for i in range(5)]
    big_bytes = file_sized(b"a file beside them")
    big = upload(api, big_bytes)
    gone = upload(api, b"deleted and purged before the backup")
    api.delete(f"/v1/artifacts/{gone['artifact_id']}")
    sql(srv, "UPDATE artifacts SET deleted_at = ? WHERE artifact_id = ?",
        (iso_ago(31 * DAY), gone["artifact_id"]))
    admin_json(srv, "gc")  # its row is purged, its blob row (refs 0) waits for the grace
    dest = tmp_path / "bk"
    srv.admin("backup", str(dest))
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["blobs"]["count"] == 1  # the file
    inline_bytes = sum(s["size_bytes"] for s in small)
    assert manifest["blobs"]["inline"] == {"count": 5, "bytes": inline_bytes}

    restored = tmp_path / "restored"
    res = offline_cli("restore", str(dest), "--data-dir", str(restored))
    assert res.returncode == 0, res.stderr
    check = offline_cli("check", "--json", "--data-dir", str(restored))
    assert check.returncode == 0, check.stdout
    srv.stop()
    new = make_server(data_dir=restored)
    with httpx.Client(base_url=new.url, headers={"Authorization": f"Bearer {srv.key}"},
                      timeout=60) as c:
        for i, art in enumerate(small):
            assert download(c, art["artifact_id"]) == f"small {i} ".encode() * (i + 1)
        assert download(c, big["artifact_id"]) == big_bytes
    # the unreferenced blob did not travel: neither its row nor its bytes
    assert sql(new, "SELECT COUNT(*) FROM blob_data WHERE sha256 = ?",
               (gone["content_hash"],)) == [(0,)]


def test_a_corrupt_inline_blob_fails_the_backup(make_server, tmp_path):
    srv = make_server()
    art = upload(srv.client(), b"precious and small " * 10)
    corrupt_blob(srv, tenant_id(srv, "default"), art["content_hash"])
    res = srv.admin("backup", str(tmp_path / "bk"), check=False)
    assert res.returncode != 0 and "corrupt" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "bk" / "manifest.json").exists()
