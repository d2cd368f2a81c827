"""Disk full (README, "Operations"): uploads answer 503 `unavailable` before writing once free space is below
the configured reserve, while reads, deletes and gc keep working; the box recovers when space
returns. A disk that fills up in the middle of an upload answers 503 and leaves nothing behind.

The data directory lives on a real small filesystem (a 32 MB tmpfs mounted for the test; the
machines this project runs on give root). Where mounting is not permitted, the first test runs
with the box's free-space test hook instead (ARTIFACTA_BOX_TEST_FREE_BYTES_FILE); the second
needs a real filesystem to fill and says so.
"""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import time
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
    healthy = httpx.get(srv.url + "/health")
    assert healthy.status_code == 200 and healthy.json()["status"] == "ok"
    assert "reason" not in healthy.json()

    small_disk.fill_until_free(6 * MB)  # below the 8 MB reserve
    # Alive (200, keep routing here) but not all there: the status says so, and why.
    health = httpx.get(srv.url + "/health")
    assert health.status_code == 200
    assert health.json()["status"] == "degraded", health.json()
    assert "reserve" in health.json()["reason"] and "8000000" in health.json()["reason"]
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
    assert httpx.get(srv.url + "/health").json()["status"] == "degraded"
    assert admin_json(srv, "gc")["dry_run"] is False

    small_disk.release()
    assert httpx.get(srv.url + "/health").json()["status"] == "ok"
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


def _chunked_multipart(size: int, filename: str = "big.bin") -> tuple[Iterator[bytes], dict[str, str]]:
    def body() -> Iterator[bytes]:  # chunked: no Content-Length to refuse up front
        yield (b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="'
               + filename.encode() + b'"\r\nContent-Type: application/octet-stream\r\n\r\n')
        chunk = os.urandom(MB)
        for _ in range(size // MB):
            yield chunk
        yield b"\r\n--b0undary--\r\n"
    return body(), {"Content-Type": "multipart/form-data; boundary=b0undary"}


def test_the_reserve_holds_while_bytes_stream(small_disk, make_server):
    """A chunked upload declares no size, so only a check while its bytes stream can keep the
    reserve: it is refused with 503 before it would cross it, and leaves nothing."""
    assert small_disk.mounted, "this test needs a real small filesystem: run it as root"
    srv = make_server(data_dir=small_disk.root, config='[storage]\nmin_free_bytes = "8MB"\n')
    api = srv.client()
    rows_before = sql(srv, "SELECT COUNT(*) FROM artifacts")[0][0]
    free_before = small_disk.free()
    assert free_before > 8 * MB + 4 * MB
    body, headers = _chunked_multipart(40 * MB)  # more than the disk holds
    r = api.post("/v1/artifacts", content=body, headers=headers)
    assert r.status_code == 503, r.text
    assert error_code(r) == "unavailable" and "reserve" in r.json()["error"]["message"]
    assert list((srv.data_dir / "tmp").iterdir()) == []
    assert sql(srv, "SELECT COUNT(*) FROM artifacts")[0][0] == rows_before
    assert small_disk.free() >= free_before - MB

    # Two at once cannot take the disk below the reserve by more than a slice each.
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(lambda i=i: srv.client().post(
            "/v1/artifacts", content=_chunked_multipart(10 * MB, f"c{i}.bin")[0], headers=headers))
            for i in range(2)]
        statuses = sorted(f.result().status_code for f in futures)
    assert set(statuses) <= {201, 503} and 503 in statuses, statuses
    assert small_disk.free() >= 8 * MB - 2 * MB
    assert list((srv.data_dir / "tmp").iterdir()) == []
    # An upload that fits still goes through.
    fits = upload(api, os.urandom(MB), filename="fits.bin")
    assert download(api, fits["artifact_id"]) is not None


def test_on_a_full_disk_deletes_links_extend_ttl_and_gc_still_write(small_disk, make_server):
    """Another program fills the disk to its last byte: the ballast the server keeps in the
    data directory is released so SQLite can write, and put back when space returns."""
    assert small_disk.mounted, "this test needs a real small filesystem: run it as root"
    srv = make_server(data_dir=small_disk.root, config='[storage]\nmin_free_bytes = "10MB"\n')
    ballast = srv.data_dir / "reserve.ballast"
    assert ballast.stat().st_size == 8 * 1024 * 1024
    assert oct(ballast.stat().st_mode & 0o777) == "0o600"
    api = srv.client()
    arts = [upload(api, os.urandom(100_000), filename=f"a{i}.bin") for i in range(3)]

    small_disk.fill_until_free(0)
    assert small_disk.free() < 64 * 1024
    r = api.delete(f"/v1/artifacts/{arts[0]['artifact_id']}")
    assert r.status_code == 200, r.text
    assert not ballast.exists()  # released for that write
    link = api.post(f"/v1/artifacts/{arts[1]['artifact_id']}/links", json={})
    assert link.status_code == 201, link.text
    assert api.post(f"/v1/artifacts/{arts[2]['artifact_id']}/extend-ttl",
                    json={"ttl": "60d"}).status_code == 200
    assert admin_json(srv, "gc")["dry_run"] is False
    assert httpx.get(link.json()["url"]).status_code == 200
    assert httpx.get(srv.url + "/health").json()["status"] == "degraded"  # 8 MiB < 10 MB

    small_disk.release()
    deadline = time.monotonic() + 30
    while not ballast.exists():  # the server puts it back within a few seconds
        assert time.monotonic() < deadline, "the ballast was never put back"
        time.sleep(0.2)
    assert ballast.stat().st_size == 8 * 1024 * 1024
    assert httpx.get(srv.url + "/health").json()["status"] == "ok"
    assert admin_json(srv, "check")["ok"] is True
