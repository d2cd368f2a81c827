"""A data directory (or a backup) written with the earlier two-level blob layout
(blobs/<t>/<aa>/<bb>/<sha>) keeps working: the server moves its blobs up one level at start,
restore finds them where they are, and every artifact downloads byte-identical."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import httpx

from tests.helpers import download, upload
from tests.ops_helpers import offline_cli


def to_old_layout(blobs: Path) -> int:
    """Rewrite a blob tree into the two-level layout; returns how many files moved."""
    moved = 0
    for f in [p for p in blobs.rglob("*") if p.is_file() and len(p.name) == 64]:
        old = f.parent / f.name[2:4] / f.name
        old.parent.mkdir(exist_ok=True)
        os.replace(f, old)
        moved += 1
    (blobs / "LAYOUT").unlink(missing_ok=True)
    return moved


def test_an_old_layout_data_dir_and_backup_are_upgraded_and_serve_every_byte(make_server, tmp_path):
    # Every body a file, as in the days of that layout (before storage.inline_max_bytes).
    srv = make_server(env={"ARTIFACTA_BOX_STORAGE_INLINE_MAX_BYTES": "0"})
    api = srv.client()
    contents = [b"", b"tiny", os.urandom(300_000), os.urandom(1_500_000)]
    arts = [(upload(api, c, filename=f"f{i}.bin"), c) for i, c in enumerate(contents)]
    backup = tmp_path / "backup"
    assert offline_cli("backup", str(backup), "--data-dir", str(srv.data_dir)).returncode == 0
    srv.stop()

    assert to_old_layout(srv.data_dir / "blobs") == len(contents)
    assert to_old_layout(backup / "blobs") == len(contents)

    # An older server still running on it (it holds the lock): an admin command of this version
    # moves nothing under its feet and says what to do.
    with open(srv.data_dir / "server.lock", "a+") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        refused = offline_cli("check", "--data-dir", str(srv.data_dir))
        fcntl.flock(held.fileno(), fcntl.LOCK_UN)
    assert refused.returncode != 0
    assert "earlier layout" in refused.stderr and "restart" in refused.stderr, refused.stderr
    assert not (srv.data_dir / "blobs" / "LAYOUT").exists()

    srv.start()  # migrates at start
    assert (srv.data_dir / "blobs" / "LAYOUT").read_text().strip() == "2"
    leftovers = [p for p in (srv.data_dir / "blobs").rglob("*") if p.is_dir() and len(p.parts[-1]) == 2
                 and p.parent.name not in {str(t) for t in range(1000)}]
    assert leftovers == []  # no second-level directory remains
    with srv.client() as c:
        for art, content in arts:
            assert download(c, art["artifact_id"]) == content
        more = upload(c, b"after the upgrade", filename="new.bin")
        assert download(c, more["artifact_id"]) == b"after the upgrade"
    check = offline_cli("check", "--json", "--data-dir", str(srv.data_dir))
    assert check.returncode == 0 and json.loads(check.stdout)["problems"] == [], check.stdout
    srv.stop()

    restored = tmp_path / "restored"
    out = offline_cli("restore", str(backup), "--data-dir", str(restored))
    assert out.returncode == 0, out.stderr
    check = offline_cli("check", "--json", "--data-dir", str(restored))
    assert check.returncode == 0 and json.loads(check.stdout)["problems"] == [], check.stdout
    new = make_server(data_dir=restored)
    with httpx.Client(base_url=new.url, headers={"Authorization": f"Bearer {srv.key}"},
                      timeout=60) as c2:
        for art, content in arts:
            assert download(c2, art["artifact_id"]) == content


def test_an_admin_command_upgrades_an_old_layout_when_no_server_runs(make_server):
    srv = make_server()
    api = srv.client()
    art = upload(api, b"moved by the CLI", filename="m.bin")
    srv.stop()
    to_old_layout(srv.data_dir / "blobs")
    check = offline_cli("check", "--json", "--data-dir", str(srv.data_dir))
    assert check.returncode == 0 and json.loads(check.stdout)["problems"] == [], check.stderr
    assert (srv.data_dir / "blobs" / "LAYOUT").read_text().strip() == "2"
    srv.start()
    with srv.client() as c:
        assert download(c, art["artifact_id"]) == b"moved by the CLI"
