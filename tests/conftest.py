"""Shared fixtures: a real `artifacta-box serve` subprocess on a free loopback port.

Tests talk HTTP to it (httpx, or the official `artifacta` SDK/CLI) and use the admin CLI on
the same data directory. Nothing here mocks the database or the blob store.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytest_plugins = ("tests.s3_server",)  # seaweedfs, s3_bucket, s3_settings fixtures

KEY_RE = re.compile(r"ak_live_[A-Za-z0-9]{32}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def box_command() -> list[str]:
    """How to run the box: the built binary when ARTIFACTA_BOX_BIN is set, else this Python."""
    binary = os.environ.get("ARTIFACTA_BOX_BIN")
    return [binary] if binary else [sys.executable, "-m", "artifacta_box"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ARTIFACTA_BOX_", "ARTIFACTA_API_", "ARTIFACTA_SESSION", "ARTIFACTA_AGENT"))}
    env["NO_PROXY"] = "127.0.0.1,localhost"
    env["no_proxy"] = "127.0.0.1,localhost"
    # One server process unless a test asks for more (--workers N beats this): `serve` runs a
    # worker per core by default, which would double every test server on a 2-core machine.
    env["ARTIFACTA_BOX_SERVER_WORKERS"] = "1"
    env.update(extra)
    return env


class BoxServer:
    """One server process on its own data directory."""

    def __init__(self, data_dir: Path, config: str | None = None, env: dict[str, str] | None = None,
                 args: list[str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.key: str | None = None
        self.config_path: Path | None = None
        if config is not None:
            self.config_path = data_dir.parent / f"{data_dir.name}.toml"
            self.config_path.write_text(config)
        self.env = clean_env(**(env or {}))
        self.args = args or []
        self.proc: subprocess.Popen | None = None
        self.stdout_lines: list[str] = []
        self.log_path = data_dir.parent / f"{data_dir.name}.log"

    def _base_args(self) -> list[str]:
        out = ["--data-dir", str(self.data_dir)]
        if self.config_path:
            out += ["--config", str(self.config_path)]
        return out

    def start(self, timeout: float = 30.0) -> BoxServer:
        cmd = box_command() + ["serve", "--port", str(self.port), *self._base_args(), *self.args]
        self._log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._log, env=self.env,
                                     text=True, start_new_session=True)
        threading.Thread(target=self._read_stdout, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError(f"server did not answer /health in {timeout}s:\n{self.log()}")
        # the bootstrap key is printed before the server starts listening
        for line in list(self.stdout_lines):
            m = KEY_RE.search(line)
            if m and self.key is None:
                self.key = m.group(0)
        return self

    def _read_stdout(self) -> None:
        assert self.proc and self.proc.stdout
        for line in self.proc.stdout:
            self.stdout_lines.append(line)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def admin(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        """Run an admin command on this server's data directory."""
        cmd = box_command() + list(args) + self._base_args()
        res = subprocess.run(cmd, capture_output=True, text=True, env=self.env, input=input, timeout=120)
        if check and res.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res

    def new_tenant(self, name: str, plan: str | None = None) -> str:
        """Create a tenant and return a fresh API key for it."""
        self.admin("tenants", "create", name, *(["--plan", plan] if plan else []))
        return self.admin("keys", "create", "--tenant", name).stdout.strip()

    def client(self, key: str | None = None, **kw) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kw)


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator:
    """Factory: make_server(config=..., env=..., args=...) -> started BoxServer; all stopped after."""
    started: list[BoxServer] = []
    counter = iter(range(1000))

    def factory(config: str | None = None, env: dict[str, str] | None = None,
                args: list[str] | None = None, data_dir: Path | None = None,
                start: bool = True) -> BoxServer:
        d = data_dir or tmp_path / f"box{next(counter)}"
        srv = BoxServer(d, config=config, env=env, args=args)
        started.append(srv)
        return srv.start() if start else srv

    yield factory
    for srv in started:
        srv.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory) -> Iterator[BoxServer]:
    """One server per test module, for tests that isolate themselves by tenant."""
    d = tmp_path_factory.mktemp("shared") / "box"
    srv = BoxServer(d).start()
    yield srv
    srv.stop()


@pytest.fixture
def server(make_server) -> BoxServer:
    """A fresh server with the bootstrap tenant `default` and its key in `.key`."""
    return make_server()


@pytest.fixture
def api(server: BoxServer) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def official_env(server: BoxServer, key: str | None = None, **extra: str) -> dict[str, str]:
    """Environment for the official `artifacta` CLI / `artifacta-mcp` pointed at `server`."""
    env = clean_env(ARTIFACTA_API_URL=server.url, ARTIFACTA_API_KEY=key or server.key or "", **extra)
    env["XDG_CONFIG_HOME"] = str(server.data_dir.parent / "xdg")
    env["HOME"] = str(server.data_dir.parent)
    return env


def artifacta_cli(server: BoxServer, *args: str, key: str | None = None, input: bytes | None = None,
                  env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the official `artifacta` CLI (from PyPI artifacta-cli) against `server`."""
    exe = Path(sys.executable).parent / "artifacta"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "artifacta.cli"]
    return subprocess.run(cmd + list(args), capture_output=True, input=input,
                          env={**official_env(server, key), **(env or {})}, timeout=120)
