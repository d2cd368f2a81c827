"""A data directory (or a backup) written with the earlier two-level blob layout
(blobs/<t>/<aa>/<bb>/<sha>) keeps working: the server moves its blobs up one level at start,
restore finds them where they are, and every artifact downloads byte-identical."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx

from tests.ops_helpers import download, offline_cli, upload


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
    srv = make_server()
    api = srv.client()
    contents = [b"", b"tiny", os.urandom(300_000), os.urandom(1_500_000)]
    arts = [(upload(api, c, filename=f"f{i}.bin"), c) for i, c in enumerate(contents)]
    backup = tmp_path / "backup"
    assert offline_cli("backup", str(backup), "--data-dir", str(srv.data_dir)).returncode == 0
    srv.stop()

    assert to_old_layout(srv.data_dir / "blobs") == len(contents)
    assert to_old_layout(backup / "blobs") == len(contents)

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
