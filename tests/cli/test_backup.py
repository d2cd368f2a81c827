"""`artifacta-box backup DEST` while the server takes writes, and `artifacta-box restore SRC`:
the restored box passes `check` and serves every artifact that existed at backup time,
byte-identical; restore refuses a live data directory and damaged backups."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import httpx

from tests.helpers import download, error_code, file_sized, sha, upload
from tests.ops_helpers import offline_cli, put_bytes, reserve


def test_backup_during_writes_restores_every_artifact_byte_identical(make_server, tmp_path):
    srv = make_server()
    api = srv.client()
    contents = [os.urandom(n) for n in (0, 1, 1000, 300_000, 2_500_000)]
    contents.append(contents[3])  # a dedup pair
    before = [(upload(api, c, filename=f"f{i}.bin"), c) for i, c in enumerate(contents)]
    deleted = upload(api, b"deleted before the backup")
    api.delete(f"/v1/artifacts/{deleted['artifact_id']}")
    pending = reserve(api, 9)
    assert put_bytes(pending, b"presigned").status_code == 200
    signed = api.get(f"/v1/artifacts/{before[2][0]['artifact_id']}/download-url").json()["download_url"]

    # Writes keep arriving while the backup runs.
    during: list[tuple[dict, bytes]] = []
    stop = threading.Event()

    def writer() -> None:
        with srv.client() as c:
            i = 0
            while not stop.is_set():
                body = os.urandom(20_000) + str(i).encode()
                during.append((upload(c, body, filename=f"during{i}.bin"), body))
                i += 1

    t = threading.Thread(target=writer)
    t.start()
    dest = tmp_path / "backup"
    try:
        res = srv.admin("backup", str(dest))
    finally:
        stop.set()
        t.join()
    assert "Backed up" in res.stdout
    assert "copying blobs" in res.stderr  # progress on stderr
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["format"] == "artifacta-box-backup"
    assert manifest["artifacts_active"] >= len(before)
    assert during, "no upload happened during the backup"

    restored_dir = tmp_path / "restored"
    out = offline_cli("restore", str(dest), "--data-dir", str(restored_dir))
    assert out.returncode == 0, out.stderr
    assert "restoring blobs" in out.stderr
    check = offline_cli("check", "--json", "--data-dir", str(restored_dir))
    assert check.returncode == 0, check.stdout
    assert json.loads(check.stdout)["problems"] == []

    srv.stop()
    new = make_server(data_dir=restored_dir)
    assert new.key is None  # not a fresh box: no bootstrap
    with httpx.Client(base_url=new.url, headers={"Authorization": f"Bearer {srv.key}"}, timeout=60) as c2:
        for art, content in before:
            got = c2.get(f"/v1/artifacts/{art['artifact_id']}")
            assert got.status_code == 200 and got.json() == art
            assert download(c2, art["artifact_id"]) == content
        present = 0
        for art, content in during:  # in the snapshot or not, never partial
            got = c2.get(f"/v1/artifacts/{art['artifact_id']}")
            assert got.status_code in (200, 404)
            if got.status_code == 200:
                present += 1
                assert download(c2, art["artifact_id"]) == content
        assert present + len(before) == manifest["artifacts_active"]
        assert error_code(c2.get(f"/v1/artifacts/{deleted['artifact_id']}")) == "artifact_already_deleted"
        assert c2.post(f"/v1/artifacts/{pending['artifact_id']}/complete").status_code == 200
        assert download(c2, pending["artifact_id"]) == b"presigned"
    # The secret came along: a signed URL minted before the backup still works.
    moved = signed.replace(srv.url, new.url)
    assert httpx.get(moved).content == contents[2]


def test_restore_refuses_a_live_or_non_empty_data_directory(make_server, tmp_path):
    srv = make_server()
    api = srv.client()
    art = upload(api, b"version one")
    dest = tmp_path / "bk"
    srv.admin("backup", str(dest))
    upload(api, b"written after the backup")

    live = srv.admin("restore", str(dest), check=False)
    assert live.returncode != 0
    assert "live" in live.stderr and "Traceback" not in live.stderr

    srv.stop()
    busy = srv.admin("restore", str(dest), check=False)
    assert busy.returncode != 0 and "--force" in busy.stderr
    srv.admin("restore", str(dest), "--force")
    srv.start()
    with srv.client() as c:
        listed = c.get("/v1/artifacts").json()["artifacts"]
        assert [a["artifact_id"] for a in listed] == [art["artifact_id"]]
        assert download(c, art["artifact_id"]) == b"version one"
    assert srv.admin("check").returncode == 0
    assert json.loads(srv.admin("audit", "--json").stdout)[0]["action"] == "box.restore"


def test_backup_and_restore_refuse_bad_destinations_and_damaged_backups(make_server, tmp_path):
    srv = make_server()
    content = file_sized(b"precious ")  # a file (inline blobs: tests/cli/test_inline_blobs.py)
    upload(srv.client(), content)
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "something").write_text("x")
    res = srv.admin("backup", str(occupied), check=False)
    assert res.returncode != 0 and "not an empty directory" in res.stderr
    inside = srv.admin("backup", str(srv.data_dir / "bk"), check=False)
    assert inside.returncode != 0 and "inside the data directory" in inside.stderr

    dest = tmp_path / "bk"
    srv.admin("backup", str(dest))
    blob = next(p for p in (dest / "blobs").rglob("*") if p.is_file())
    assert blob.name == sha(content)
    blob.write_bytes(b"tampered " + content[9:])
    bad = offline_cli("restore", str(dest), "--data-dir", str(tmp_path / "r1"))
    assert bad.returncode != 0 and "corrupt" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "r1" / "artifacta.db").exists()
    assert not [p for p in (tmp_path / "r1").rglob("*") if p.is_file() and "blobs" in p.parts]
    # A damaged backup restored with --force over a stopped box leaves that box as it was.
    srv.stop()
    over = srv.admin("restore", str(dest), "--force", check=False)
    assert over.returncode != 0 and "corrupt" in over.stderr
    srv.start()
    assert [a["size_bytes"] for a in srv.client().get("/v1/artifacts").json()["artifacts"]] == [len(content)]
    assert srv.admin("check").returncode == 0

    (dest / "manifest.json").unlink()
    incomplete = offline_cli("restore", str(dest), "--data-dir", str(tmp_path / "r2"))
    assert incomplete.returncode != 0 and "manifest.json" in incomplete.stderr
    assert not Path(tmp_path / "r2" / "artifacta.db").exists()


def test_restore_refuses_a_data_directory_litestream_replicates(make_server, tmp_path):
    """Litestream keeps its state beside the database; a database replaced under it would be
    replicated as if it were the old one's continuation. restore says what to do instead."""
    srv = make_server()
    with srv.client() as c:
        upload(c, b"replicated")
    dest = tmp_path / "backup"
    srv.admin("backup", str(dest))
    srv.stop()
    state = srv.data_dir / ".artifacta.db-litestream"
    state.mkdir()
    res = offline_cli("restore", str(dest), "--force", "--data-dir", str(srv.data_dir))
    assert res.returncode != 0
    assert "Litestream" in res.stderr and "litestream restore" in res.stderr
    assert str(state) in res.stderr
    state.rmdir()
    res = offline_cli("restore", str(dest), "--force", "--data-dir", str(srv.data_dir))
    assert res.returncode == 0, res.stderr
