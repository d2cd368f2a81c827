"""Disk full (README, "Operations"): uploads answer 503 `unavailable` before writing once free space is below
the configured reserve, while reads, deletes and gc keep working; the box recovers when space
returns. A disk that fills up in the middle of an upload answers 503 and leaves nothing behind.

The data directory lives on a real small filesystem (a 32 MB tmpfs mounted for the test; the
machines this project runs on give root). Where mounting is not permitted, the first test runs
with the box's free-space test hook instead (ARTIFACTA_BOX_TEST_FREE_BYTES_FILE); the second
needs a real filesystem to fill and says so.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import download, error_code, sql, upload
from tests.ops_helpers import admin_json

# Timing- and load-sensitive (mounts a tmpfs and fills it up):
# one at a time, on one xdist worker.
pytestmark = pytest.mark.serial

MB = 10**6


class SmallDisk:
    """A data directory on a small filesystem that a test can fill up and free again."""

    def __init__(self, root: Path, mounted: bool) -> None:
        self.root = root
        self.mounted = mounted
        self.probe_file = root.parent / "free-bytes"
        self.ballast = root / "ballast.bin"

    def env(self) -> dict[str, str]:
        return {} if self.mounted else {"ARTIFACTA_BOX_TEST_FREE_BYTES_FILE": str(self.probe_file)}

    def free(self) -> int:
        if self.mounted:
            st = os.statvfs(self.root)
            return st.f_bavail * st.f_frsize
        return int(self.probe_file.read_text())

    def fill_until_free(self, target: int) -> None:
        """Take space (another program's data on the same disk) until `target` bytes are free."""
        if not self.mounted:
            self.probe_file.write_text(str(target))
            return
        with open(self.ballast, "ab") as fh:
            fh.write(b"\0" * max(self.free() - target, 0))
            fh.flush()
            os.fsync(fh.fileno())

    def release(self) -> None:
        if self.mounted:
            self.ballast.unlink(missing_ok=True)
        else:
            self.probe_file.write_text(str(10**12))


def _mount(where: Path, size: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
                         capture_output=True, check=False)
    return res.returncode == 0


def _unmount(where: Path) -> None:
    if subprocess.run(["umount", str(where)], capture_output=True, check=False).returncode != 0:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


@pytest.fixture
def small_disk(tmp_path) -> Iterator[SmallDisk]:
    """Requested before make_server, so servers stop before the filesystem is unmounted."""
    where = tmp_path / "smalldisk"
    mounted = _mount(where, "32m")
    disk = SmallDisk(where / "box", mounted)
    if not mounted:
        disk.probe_file.write_text(str(10**12))
    try:
        yield disk
    finally:
        if mounted:
            _unmount(where)


def test_uploads_503_below_the_reserve_while_reads_deletes_and_gc_work_then_recover(
        small_disk, make_server):
    srv = make_server(data_dir=small_disk.root, env=small_disk.env(),
                      config='[storage]\nmin_free_bytes = "8MB"\n')
    api = srv.client()
    keep = upload(api, os.urandom(2 * MB), filename="keep.bin")
    doomed = upload(api, os.urandom(MB), filename="doomed.bin")
    rows_before = sql(srv, "SELECT COUNT(*) FROM artifacts")[0][0]

    small_disk.fill_until_free(6 * MB)  # below the 8 MB reserve
    tmp_dir = srv.data_dir / "tmp"
    full = [
        api.post("/v1/artifacts", files={"file": ("x.bin", b"x" * 1000, "application/octet-stream")}),
        api.post("/v1/artifacts", json={"filename": "j.txt", "content": "aGVsbG8="}),
        api.post("/v1/artifacts/upload-url", json={
            "filename": "p.bin", "content_type": "application/octet-stream", "size_bytes": 100}),
    ]
    for r in full:
        assert r.status_code == 503, r.text
        assert error_code(r) == "unavailable"
        assert "disk" in r.json()["error"]["message"]
    assert list(tmp_dir.iterdir()) == []  # refused before writing a byte
    assert sql(srv, "SELECT COUNT(*) FROM artifacts")[0][0] == rows_before

    # Reads, deletes and gc keep working.
    assert api.get(f"/v1/artifacts/{keep['artifact_id']}").status_code == 200
    assert download(api, keep["artifact_id"]) != b""
    assert len(api.get("/v1/artifacts").json()["artifacts"]) == 2
    assert api.delete(f"/v1/artifacts/{doomed['artifact_id']}").status_code == 200
    assert api.get("/v1/whoami").status_code == 200
    assert httpx.get(srv.url + "/health").status_code == 200
    assert admin_json(srv, "gc")["dry_run"] is False

    small_disk.release()
    content = os.urandom(MB)
    back = upload(api, content, filename="after.bin")
    assert download(api, back["artifact_id"]) == content
    assert admin_json(srv, "check")["ok"] is True


def test_a_disk_filling_up_mid_upload_answers_503_and_leaves_nothing(small_disk, make_server):
    assert small_disk.mounted, (
        "this test needs a real small filesystem: run it as root (it mounts a 32 MB tmpfs)")
    srv = make_server(data_dir=small_disk.root, config='[storage]\nmin_free_bytes = 0\n')
    api = srv.client()
    keep = upload(api, b"already stored " * 1000)
    rows_before = sql(srv, "SELECT COUNT(*) FROM artifacts")[0][0]
    free_before = small_disk.free()

    def body() -> Iterator[bytes]:  # chunked: no Content-Length to refuse up front
        boundary = b"--b0undary"
        yield boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        yield b"Content-Type: application/octet-stream\r\n\r\n"
        chunk = os.urandom(MB)
        for _ in range(40):  # 40 MB into a 32 MB filesystem
            yield chunk
        yield b"\r\n" + boundary + b"--\r\n"

    r = api.post("/v1/artifacts", content=body(),
                 headers={"Content-Type": "multipart/form-data; boundary=b0undary"})
    assert r.status_code == 503, r.text
    assert error_code(r) == "unavailable"
    assert list((srv.data_dir / "tmp").iterdir()) == []
    assert sql(srv, "SELECT COUNT(*) FROM artifacts")[0][0] == rows_before
    assert small_disk.free() >= free_before - MB  # the partial file's space came back

    again = upload(api, f"fits now {uuid.uuid4()}".encode())
    assert api.get(f"/v1/artifacts/{again['artifact_id']}").status_code == 200
    assert download(api, keep["artifact_id"]) == b"already stored " * 1000
    assert admin_json(srv, "check")["ok"] is True
