"""Every file the box writes is private (issue 13): umask 077 for every process, and the modes
an older version (or an operator's mkdir) left are fixed at start, with a log line."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tests.helpers import download, upload
from tests.ops_helpers import offline_cli


def modes(root: Path) -> dict[str, int]:
    """Permission bits of the directory and everything under it, by relative path."""
    out = {".": stat.S_IMODE(root.stat().st_mode)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            out[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return out


def not_private(root: Path) -> dict[str, str]:
    """Entries other users could read, traverse or write, with their modes."""
    return {path: oct(mode) for path, mode in modes(root).items() if mode & 0o077}


def open_up(root: Path) -> int:
    """What an older version under umask 022 left: directories 0755, files 0644."""
    count = 0
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            os.chmod(Path(dirpath) / name, 0o644)
            count += 1
    return count


def test_an_open_data_directory_is_made_private_at_start_and_stays_so(make_server, tmp_path):
    srv = make_server(args=["--workers", "2"])
    with srv.client() as c:
        kept = upload(c, b"private bytes")
    assert srv.stop() == 0
    assert not_private(srv.data_dir) == {}  # everything it wrote under umask 077

    files = open_up(srv.data_dir)
    assert files >= 5  # database, secret, lock, layout marker, the blob...
    srv.start()
    log = srv.log()
    assert f"made {files} files and " in log and f"in {srv.data_dir.resolve()} private" in log
    with srv.client() as c:
        assert download(c, kept["artifact_id"]) == b"private bytes"
        upload(c, b"written after the fix")
    assert not_private(srv.data_dir) == {}  # WAL/SHM, the new blob, metrics.d/, ratelimit...

    dest = tmp_path / "backup"
    dest.mkdir(mode=0o755)  # made by hand beforehand
    os.chmod(dest, 0o755)
    srv.admin("backup", str(dest))
    assert not_private(dest) == {}
    restored = tmp_path / "restored"
    assert offline_cli("restore", str(dest), "--data-dir", str(restored)).returncode == 0
    assert not_private(restored) == {}


def test_a_data_directory_made_by_hand_becomes_private(make_server, tmp_path):
    root = tmp_path / "made-by-hand"
    root.mkdir()
    os.chmod(root, 0o755)
    srv = make_server(data_dir=root)
    assert srv.stop() == 0
    assert not_private(root) == {}, not_private(root)
    assert srv.admin("check").returncode == 0
