"""Litestream end to end: a real `artifacta-box serve` running under
`litestream replicate -restore-if-db-not-exists -exec ...` (the packaging/litestream.yml
configuration), replicating to a real SeaweedFS; then the box or the whole host is killed -9,
the database restored by Litestream, and every artifact acknowledged before the last sync must
come back byte-identical, with `artifacta-box check` clean.

Each runs with blobs on local disk (where "losing the host" keeps `blobs/`, standing for a
bucket) and with blobs in the S3 bucket (`storage.backend = "s3"`: the host loss then removes
the whole data directory).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess

import httpx
import pytest

from tests.helpers import box_command, clean_env, sha, upload
from tests.litestream_box import LitestreamBox

BLOB_BACKENDS = ["local", "s3"]


@pytest.fixture
def litestream_box(seaweedfs, s3_bucket, tmp_path, request):
    box = LitestreamBox(tmp_path, seaweedfs, s3_bucket, getattr(request, "param", "local"))
    yield box
    box.kill()


def upload_numbered(api: httpx.Client, i: int) -> tuple[str, bytes]:
    """Artifact number i: mostly small, every fifth 2 MiB (more than one WAL page's worth)."""
    body = os.urandom(100 + 997 * i) if i % 5 else os.urandom(2 * 1024 * 1024 + i)
    art = upload(api, body, filename=f"f{i}.bin", content_type=None, session_id="dr",
                 metadata={"i": str(i)})
    return art["artifact_id"], body


def download_if_kept(api: httpx.Client, artifact_id: str) -> bytes | None:
    r = api.get(f"/v1/artifacts/{artifact_id}/download-url")
    if r.status_code == 404:
        return None
    assert r.status_code == 200, r.text
    got = httpx.get(r.json()["download_url"], timeout=60, trust_env=False)
    assert got.status_code == 200
    return got.content


def check_is_clean(box: LitestreamBox) -> None:
    res = subprocess.run([*box_command(), "check", *box.admin_args()], capture_output=True,
                         text=True, env=clean_env(), timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("litestream_box", BLOB_BACKENDS, indirect=True)
def test_host_loss_keeps_every_artifact_acknowledged_before_the_last_sync(litestream_box):
    box = litestream_box.start()
    with box.client() as api:
        synced = dict(upload_numbered(api, i) for i in range(12))
        box.sync()
        unsynced = dict(upload_numbered(api, i) for i in range(12, 18))  # may or may not survive
    box.lose_host()

    box.start()  # restored by -restore-if-db-not-exists
    with box.client() as api:
        assert api.get("/v1/whoami").status_code == 200  # same tenant, same key
        for artifact_id, body in synced.items():
            got = download_if_kept(api, artifact_id)
            assert got is not None and sha(got) == sha(body)
        for artifact_id, body in unsynced.items():
            got = download_if_kept(api, artifact_id)
            assert got is None or got == body  # lost whole, or intact
        listed = api.get("/v1/artifacts", params={"session_id": "dr", "limit": 200}).json()
        assert set(synced) <= {a["artifact_id"] for a in listed["artifacts"]}
    assert box.stop() == 0
    check_is_clean(box)


@pytest.mark.parametrize("litestream_box", BLOB_BACKENDS, indirect=True)
def test_a_box_crash_with_litestream_alive_loses_nothing(litestream_box):
    box = litestream_box.start()
    # Replication has begun (the replica holds a first snapshot): what "Litestream alive"
    # means. Killed within its first moments, before that snapshot, Litestream's last sync
    # has no generation to extend and the replica stays empty (1 run in 5 here before this).
    box.sync()
    with box.client() as api:
        acknowledged = dict(upload_numbered(api, i) for i in range(15))
    os.kill(box.box_pid(), signal.SIGKILL)
    # Litestream outlives its child only for a last sync of the WAL, then exits.
    assert box.proc is not None
    box.proc.wait(60)
    box.wipe_disk()  # and then the host is lost too: only the replica is left

    box.start()
    with box.client() as api:
        for artifact_id, body in acknowledged.items():
            assert download_if_kept(api, artifact_id) == body
    assert box.stop() == 0
    check_is_clean(box)


@pytest.mark.parametrize("litestream_box", BLOB_BACKENDS, indirect=True)
def test_backup_restore_and_check_tolerate_litestreams_tables(litestream_box, tmp_path):
    box = litestream_box.start()
    with box.client() as api:
        kept = dict(upload_numbered(api, i) for i in range(3))
    box.sync()
    conn = sqlite3.connect(box.data_dir / "artifacta.db")
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()
    assert {"_litestream_seq", "_litestream_lock"} <= tables
    backup_dir = tmp_path / "backup"
    admin = box_command()
    res = subprocess.run([*admin, "backup", str(backup_dir), *box.admin_args()],
                         capture_output=True, text=True, env=clean_env(), timeout=120)
    assert res.returncode == 0, res.stderr
    assert box.stop() == 0
    check_is_clean(box)

    other = tmp_path / "restored"
    res = subprocess.run([*admin, "restore", str(backup_dir), "--data-dir", str(other),
                          "--config", str(box.config)],
                         capture_output=True, text=True, env=clean_env(), timeout=120)
    assert res.returncode == 0, res.stderr
    res = subprocess.run([*admin, "check", "--data-dir", str(other), "--config", str(box.config)],
                         capture_output=True, text=True, env=clean_env(), timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    conn = sqlite3.connect(other / "artifacta.db")
    try:
        restored = {r[0] for r in conn.execute("SELECT artifact_id FROM artifacts WHERE state = 'active'")}
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()
    assert restored == set(kept)
    # Litestream's own state stayed behind: the backup is the box's, not the replica's.
    assert not {"_litestream_seq", "_litestream_lock"} & tables
