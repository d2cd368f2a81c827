"""Litestream end to end: a real `artifacta-box serve` running under
`litestream replicate -restore-if-db-not-exists -exec ...` (the packaging/litestream.yml
configuration), replicating to a real SeaweedFS; then the box or the whole host is killed -9,
the database restored by Litestream, and every artifact acknowledged before the last sync must
come back byte-identical, with `artifacta-box check` clean.

Phase A: blobs are still local, so "losing the host" removes everything in the data directory
except `blobs/` (which stands for the S3 bucket the blobs will live in). When the S3 blob
backend lands, `BLOB_BACKENDS` gains "s3" and `box_config` points the box at the bucket; the
host loss then removes the whole directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import KEY_RE, box_command, clean_env, free_port
from tests.s3_server import ADMIN, REGION, SeaweedFS

ROOT = Path(__file__).resolve().parents[2]
LITESTREAM_CONFIG = ROOT / "packaging" / "litestream.yml"
BLOB_BACKENDS = ["local"]
SECRET = "litestream-e2e-secret-" + "x" * 32  # in the config: secret.key dies with the host


def litestream_binary() -> str:
    exe = Path(sys.executable).parent / "litestream"
    if not exe.exists():
        raise RuntimeError("the `litestream` binary is missing: pip install -e '.[test]'")
    return str(exe)


def box_config(backend: str) -> str:
    assert backend == "local"
    return f'[security]\nsecret_key = "{SECRET}"\n'


class LitestreamBox:
    """`litestream replicate -exec "artifacta-box serve ..."` on one data directory."""

    def __init__(self, root: Path, seaweedfs: SeaweedFS, bucket: str, backend: str) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.config = root / "box.toml"
        self.config.write_text(box_config(backend))
        self.socket = root / "litestream.sock"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = clean_env(
            ARTIFACTA_BOX_DB=str(self.data_dir / "artifacta.db"),
            LITESTREAM_S3_ENDPOINT=seaweedfs.endpoint, LITESTREAM_S3_BUCKET=bucket,
            LITESTREAM_S3_PATH="box/db", LITESTREAM_S3_REGION=REGION,
            LITESTREAM_ACCESS_KEY_ID=ADMIN[0], LITESTREAM_SECRET_ACCESS_KEY=ADMIN[1],
            LITESTREAM_SOCKET=str(self.socket),
        )
        self.env.pop("AWS_CA_BUNDLE", None)  # Litestream 0.5 refuses to start with it set
        self.proc: subprocess.Popen | None = None
        self.key: str | None = None
        self.stdout: list[str] = []
        self.log_path = root / "litestream.log"

    def admin_args(self) -> list[str]:
        return ["--data-dir", str(self.data_dir), "--config", str(self.config)]

    def start(self, timeout: float = 60) -> LitestreamBox:
        serve = " ".join([*box_command(), "serve", "--port", str(self.port), *self.admin_args()])
        cmd = [litestream_binary(), "replicate", "-config", str(LITESTREAM_CONFIG),
               "-restore-if-db-not-exists", "-exec", serve]
        log = open(self.log_path, "ab")  # noqa: SIM115 - the process's until it exits
        # A session of its own: the process group is "the host" for kill -9.
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, env=self.env,
                                     text=True, start_new_session=True)
        log.close()
        self.stdout = []
        threading.Thread(target=self._read_stdout, args=(self.proc,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"litestream exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/health", timeout=1, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)  # polling interval
        else:
            raise RuntimeError(f"the box did not answer /health in {timeout}s:\n{self.log()}")
        for line in list(self.stdout):
            if (m := KEY_RE.search(line)) and self.key is None:
                self.key = m.group(0)
        return self

    def _read_stdout(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            self.stdout.append(line)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.key}"},
                            timeout=60, trust_env=False)

    def sync(self) -> None:
        """`litestream sync -wait`: returns once the replica holds every commit made so far."""
        res = subprocess.run([litestream_binary(), "sync", "-wait", "-socket", str(self.socket),
                              str(self.data_dir / "artifacta.db")],
                             capture_output=True, text=True, env=self.env, timeout=60)
        assert res.returncode == 0, res.stderr
        m = re.search(r"^txid: (\w+)\nreplica_txid: (\w+)", res.stdout, re.MULTILINE)
        assert m and m.group(1) == m.group(2), res.stdout

    def box_pid(self) -> int:
        """The serve process, Litestream's child."""
        assert self.proc is not None
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            children = (task / "children").read_text().split()
            if children:
                return int(children[0])
        raise AssertionError("litestream has no child process")

    def lose_host(self) -> None:
        """kill -9 of Litestream and the box at once, then the host's disk is gone (but for the
        blobs, which stand for the bucket)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self.wipe_disk()

    def wipe_disk(self) -> None:
        for entry in self.data_dir.iterdir():
            if entry.name == "blobs":
                continue
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        return self.proc.wait(60)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)


@pytest.fixture
def litestream_box(seaweedfs, s3_bucket, tmp_path, request):
    box = LitestreamBox(tmp_path, seaweedfs, s3_bucket, getattr(request, "param", "local"))
    yield box
    box.kill()


def upload(api: httpx.Client, i: int) -> tuple[str, bytes]:
    body = os.urandom(100 + 997 * i) if i % 5 else os.urandom(2 * 1024 * 1024 + i)
    r = api.post("/v1/artifacts", files={"file": (f"f{i}.bin", body)},
                 data={"session_id": "dr", "metadata": json.dumps({"i": str(i)})})
    assert r.status_code == 201, r.text
    return r.json()["artifact_id"], body


def download(api: httpx.Client, artifact_id: str) -> bytes | None:
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
        synced = dict(upload(api, i) for i in range(12))
        box.sync()
        unsynced = dict(upload(api, i) for i in range(12, 18))  # may or may not survive
    box.lose_host()

    box.start()  # restored by -restore-if-db-not-exists
    with box.client() as api:
        assert api.get("/v1/whoami").status_code == 200  # same tenant, same key
        for artifact_id, body in synced.items():
            got = download(api, artifact_id)
            assert got is not None and hashlib.sha256(got).digest() == hashlib.sha256(body).digest()
        for artifact_id, body in unsynced.items():
            got = download(api, artifact_id)
            assert got is None or got == body  # lost whole, or intact
        listed = api.get("/v1/artifacts", params={"session_id": "dr", "limit": 200}).json()
        assert set(synced) <= {a["artifact_id"] for a in listed["artifacts"]}
    assert box.stop() == 0
    check_is_clean(box)


@pytest.mark.parametrize("litestream_box", BLOB_BACKENDS, indirect=True)
def test_a_box_crash_with_litestream_alive_loses_nothing(litestream_box):
    box = litestream_box.start()
    with box.client() as api:
        acknowledged = dict(upload(api, i) for i in range(15))
    os.kill(box.box_pid(), signal.SIGKILL)
    # Litestream outlives its child only for a last sync of the WAL, then exits.
    assert box.proc is not None
    box.proc.wait(60)
    box.wipe_disk()  # and then the host is lost too: only the replica is left

    box.start()
    with box.client() as api:
        for artifact_id, body in acknowledged.items():
            assert download(api, artifact_id) == body
    assert box.stop() == 0
    check_is_clean(box)


@pytest.mark.parametrize("litestream_box", BLOB_BACKENDS, indirect=True)
def test_backup_restore_and_check_tolerate_litestreams_tables(litestream_box, tmp_path):
    box = litestream_box.start()
    with box.client() as api:
        kept = dict(upload(api, i) for i in range(3))
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
    finally:
        conn.close()
    assert restored == set(kept)
