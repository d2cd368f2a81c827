"""What every kind of test shares: a real `artifacta-box serve` subprocess on a free loopback
port (`BoxServer`), the admin and official CLIs as subprocesses, tenants and keys made
in-process through `Box`, and the small API and SQLite helpers the suites used to copy.

Nothing here mocks the database or the blob store: the helpers talk HTTP to the real server,
open its own SQLite file (WAL, safe beside the running server) and run the same service
functions the admin CLI runs, on the same data directory.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx

from artifacta_box.config import Settings, load_settings
from artifacta_box.context import Box
from artifacta_box.security.signing import UrlSigner
from artifacta_box.services import tenants
from artifacta_box.storage.s3 import S3Client, S3Settings

T = TypeVar("T")

KEY_RE = re.compile(r"ak_live_[A-Za-z0-9]{32}")
PAST = "2000-01-01T00:00:00.000000Z"


# ---------------------------------------------------------------------------- ports

# Test servers listen on ports below the kernel's ephemeral range: bind(0) and every outgoing
# connection take theirs from that range, so a port probed free here cannot be taken by a
# client socket before the server binds it. The range is split into one block per xdist
# worker, so two workers never hand out the same port; each process starts at a random place
# in its block, so two test runs side by side (other worktrees) rarely probe the same port.
_LOWEST_PORT = 20000


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _port_block() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    count = max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")), index + 1)
    size = (_ephemeral_low() - _LOWEST_PORT) // count
    start = _LOWEST_PORT + index * size
    return range(start, start + size)


class _Ports:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.block: range | None = None
        self.next = 0

    def take(self) -> int:
        with self.lock:
            if self.block is None:
                self.block = _port_block()
                self.next = random.randrange(len(self.block)) if len(self.block) > 0 else 0
            for _ in range(len(self.block)):
                port = self.block[self.next % len(self.block)]
                self.next += 1
                with socket.socket() as s:
                    try:
                        s.bind(("127.0.0.1", port))
                    except OSError:
                        continue
                return port
        # no usable block (an unusual ephemeral range): let the kernel choose
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]


_ports = _Ports()


def free_port() -> int:
    """A loopback port no server of this test run uses and no other xdist worker hands out."""
    return _ports.take()


# ---------------------------------------------------------------------------- processes


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


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync test code (in a thread if a loop is running)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


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
                                     start_new_session=True)
        self._partial = b""
        os.set_blocking(self.proc.stdout.fileno(), False)
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1) as probe:  # one client: each new one builds an SSL context
            while time.monotonic() < deadline:
                self._drain_stdout()  # never let a chatty server block on a full pipe
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
                try:
                    if probe.get(self.url + "/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
            else:
                self.stop()
                raise RuntimeError(f"server did not answer /health in {timeout}s:\n{self.log()}")
        # The bootstrap key is printed and flushed before the server starts listening, so it is
        # in the pipe now: read it here (a reader thread might not have got to it yet).
        self._drain_stdout()
        for line in self.stdout_lines:
            m = KEY_RE.search(line)
            if m and self.key is None:
                self.key = m.group(0)
        threading.Thread(target=self._read_stdout, daemon=True).start()
        return self

    def _drain_stdout(self) -> None:
        """Take whatever the server has written to stdout so far, without waiting."""
        assert self.proc and self.proc.stdout
        while True:
            try:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
            except BlockingIOError:
                return
            if not chunk:
                return
            self._take_stdout(chunk)

    def _take_stdout(self, chunk: bytes) -> None:
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        self.stdout_lines.extend(line.decode(errors="replace") + "\n" for line in lines)

    def _read_stdout(self) -> None:
        """The rest of stdout, as it comes, until the server exits."""
        assert self.proc and self.proc.stdout
        fd = self.proc.stdout.fileno()
        os.set_blocking(fd, True)
        while chunk := os.read(fd, 65536):
            self._take_stdout(chunk)

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
        """Run an admin command (a subprocess of the CLI under test) on this data directory."""
        cmd = box_command() + list(args) + self._base_args()
        res = subprocess.run(cmd, capture_output=True, text=True, env=self.env, input=input, timeout=120)
        if check and res.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res

    def settings(self) -> Settings:
        """The settings an admin command gets on this data directory (same file, same env)."""
        return load_settings(self.config_path, {"data_dir": str(self.data_dir)}, environ=self.env)

    def in_box(self, action: Callable[[Box], Awaitable[T]]) -> T:
        """Run `action(box)` in this process on this server's data directory, the way an admin
        command does but without starting one (milliseconds instead of a second): SQLite WAL
        lets it write beside the running server, which reads keys and plans per request."""

        async def run() -> T:
            async with Box.opened(self.settings()) as box:
                return await action(box)

        return run_async(run())

    def new_tenant(self, name: str, plan: str | None = None) -> str:
        """Create a tenant (in-process) and return a fresh API key for it."""

        async def create(box: Box) -> str:
            await tenants.create_tenant(box, name, plan)
            return (await tenants.create_key(box, name))["key"]

        return self.in_box(create)

    def new_tenant_with_cli(self, name: str, plan: str | None = None) -> str:
        """`tenants create` + `keys create` as subprocesses, for tests whose subject is the CLI."""
        self.admin("tenants", "create", name, *(["--plan", plan] if plan else []))
        return self.admin("keys", "create", "--tenant", name).stdout.strip()

    def client(self, key: str | None = None, **kw) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kw)


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


# ---------------------------------------------------------------------------- tenants


def unique_name(prefix: str = "t") -> str:
    """A tenant name of its own: tests on a shared server isolate themselves by tenant."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def new_key(server: BoxServer, plan: str | None = None, prefix: str = "t") -> str:
    """The API key of a fresh tenant."""
    return server.new_tenant(unique_name(prefix), plan)


def new_tenant(server: BoxServer, plan: str | None = None, prefix: str = "t") -> tuple[str, httpx.Client]:
    """A fresh tenant's name and a client holding its key."""
    name = unique_name(prefix)
    return name, server.client(server.new_tenant(name, plan))


def new_client(server: BoxServer, plan: str | None = None, prefix: str = "t") -> httpx.Client:
    """A client holding the key of a fresh tenant."""
    return new_tenant(server, plan, prefix)[1]


def key_of(client: httpx.Client) -> str:
    """The API key an httpx client sends."""
    return client.headers["authorization"].split(" ", 1)[1]


# ---------------------------------------------------------------------------- the API


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def upload(client: httpx.Client, content: bytes | None = None, filename: str = "file.bin",
           content_type: str | None = "application/octet-stream",
           metadata: dict[str, str] | None = None, **fields: str) -> dict[str, Any]:
    """One multipart upload (201) whose recorded hash is the content's; the artifact record.

    `content` defaults to bytes of its own; `content_type` None sends the part without one;
    `fields` are the other form fields (session_id, agent_id, ttl, ...)."""
    if content is None:
        content = uuid.uuid4().hex.encode()
    data = dict(fields)
    if metadata is not None:
        data["metadata"] = json.dumps(metadata)
    part = (filename, content, content_type) if content_type else (filename, content)
    r = client.post("/v1/artifacts", data=data, files={"file": part})
    assert r.status_code == 201, r.text
    record = r.json()
    assert record["content_hash"] == sha(content), record
    return record


def download(client: httpx.Client, artifact_id: str) -> bytes:
    """The artifact's bytes through a download URL."""
    r = client.get(f"/v1/artifacts/{artifact_id}/download-url")
    assert r.status_code == 200, r.text
    got = httpx.get(r.json()["download_url"], timeout=60)
    assert got.status_code == 200, got.text
    return got.content


def assert_error(resp: httpx.Response, status: int, code: str, *words: str) -> dict[str, Any]:
    """The error envelope with this status and code, a message for humans that names `words`
    and no traceback; returns the `error` object."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert err["code"] == code and err["status"] == status, err
    assert isinstance(err["message"], str) and err["message"], err
    assert "Traceback" not in resp.text, resp.text
    for word in words:
        assert word in err["message"], (word, err["message"])
    return err


def error_code(resp: httpx.Response) -> str:
    """The code of an error envelope (whose status is the response's)."""
    body = resp.json()
    assert set(body) == {"error"} and body["error"]["status"] == resp.status_code, body
    return body["error"]["code"]


def with_query(url: str, **changes: str | None) -> str:
    """The URL with query parameters replaced (None removes one)."""
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    for k, v in changes.items():
        if v is None:
            query.pop(k, None)
        else:
            query[k] = v
    return urlunsplit(parts._replace(query=urlencode(query)))


def ts(value: str) -> datetime:
    """An API timestamp (`...Z`, microseconds) as an aware datetime."""
    assert value.endswith("Z") and len(value) == 27, value
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def seconds_between(a: str, b: str) -> float:
    return (ts(b) - ts(a)).total_seconds()


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll a condition the server reaches on its own (e.g. cleanup after a disconnect)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# ---------------------------------------------------------------------------- the data directory


def db(server: BoxServer) -> sqlite3.Connection:
    """The server's own database file (WAL; safe beside the running server), autocommit."""
    conn = sqlite3.connect(str(server.data_dir / "artifacta.db"), timeout=15, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 15000")
    return conn


def rows(server: BoxServer, query: str, params: tuple = ()) -> list[sqlite3.Row]:
    """One statement on the server's database; rows readable by column name."""
    conn = db(server)
    try:
        return conn.execute(query, params).fetchall()
    finally:
        conn.close()


def sql(server: BoxServer, query: str, params: tuple = ()) -> list[tuple]:
    """One statement on the server's database; rows as plain tuples (comparable, printable)."""
    return [tuple(r) for r in rows(server, query, params)]


def tenant_id(server: BoxServer, name: str) -> int:
    return int(sql(server, "SELECT tenant_id FROM tenants WHERE name = ?", (name,))[0][0])


def expire_now(server: BoxServer, artifact_id: str) -> None:
    """Move an artifact's expiry into the past, as if its TTL had run out."""
    sql(server, "UPDATE artifacts SET expires_at = ? WHERE artifact_id = ?", (PAST, artifact_id))


def files_under(root: Path) -> set[str]:
    """Every file below `root`, as paths relative to it."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.is_dir() else set()


def s3_settings_of(server: BoxServer) -> S3Settings | None:
    """The [s3] settings of a box on the S3 backend (tests/backends.py), else None."""
    if server.env.get("ARTIFACTA_BOX_STORAGE_BACKEND") != "s3":
        return None
    prefix = "ARTIFACTA_BOX_S3_"
    where = ("endpoint", "bucket", "region", "prefix", "access_key_id", "secret_access_key",
             "public_endpoint")  # enough to reach the bucket (the others are raw strings here)
    return S3Settings.build({k[len(prefix):].lower(): v for k, v in server.env.items()
                             if k.startswith(prefix) and k[len(prefix):].lower() in where}, {})


def in_bucket(server: BoxServer, action: Callable[[S3Client], Awaitable[T]]) -> T | None:
    """Run `action(client)` on the bucket of a box on S3 (None for a local box)."""
    settings = s3_settings_of(server)
    if settings is None:
        return None

    async def run() -> T:
        async with S3Client(settings) as client:
            return await action(client)

    return run_async(run())


async def _keys(client: S3Client) -> list[str]:
    return [i.key async for i in client.list_objects("blobs/")]


async def _uploads(client: S3Client) -> list[str]:
    return [u.key async for u in client.list_multipart_uploads("blobs/")]


def blob_files(server: BoxServer) -> list[str]:
    """Every stored blob of the server: local files relative to `blobs/` (not its LAYOUT
    marker), and on S3 the objects as the rows name them (`s3:blobs/<tenant>/<rr>/<key>`)."""
    local = sorted(f for f in files_under(server.data_dir / "blobs") if "/" in f)
    return local + sorted("s3:" + k for k in in_bucket(server, _keys) or []) + \
        inline_blobs(server)


# storage.inline_max_bytes by default: a body up to it is kept inside the database, a larger one
# is a file (or an S3 object).
INLINE_MAX: int = Settings.__dataclass_fields__["inline_max_bytes"].default


def file_sized(tag: bytes = b"") -> bytes:
    """Unique bytes just above INLINE_MAX, so they are stored as a file or an object."""
    return tag + uuid.uuid4().bytes + os.urandom(INLINE_MAX + 1 - len(tag))


def inline_blobs(server: BoxServer) -> list[str]:
    """The blobs kept inside the database (storage.inline_max_bytes), as `inline:<tenant>/<sha>`."""
    return [f"inline:{t}/{sha}" for t, sha in sql(
        server, "SELECT tenant_id, sha256 FROM blob_data ORDER BY tenant_id, sha256")]


def read_blob(server: BoxServer, tenant: int, sha256: str) -> bytes:
    """The stored bytes of a blob, from wherever its row says they are."""
    location = sql(server, "SELECT location FROM blobs WHERE tenant_id = ? AND sha256 = ?",
                   (tenant, sha256))[0][0]
    if location is None:
        return (server.data_dir / "blobs" / str(tenant) / sha256[:2] / sha256).read_bytes()
    if location == "inline":
        return sql(server, "SELECT data FROM blob_data WHERE tenant_id = ? AND sha256 = ?",
                   (tenant, sha256))[0][0]
    return in_bucket(server, lambda c: c.get_bytes(location[3:]))


def delete_blob(server: BoxServer, tenant: int, sha256: str) -> None:
    """Lose a blob's stored bytes behind the box's back (damage for check and serving tests)."""
    location = sql(server, "SELECT location FROM blobs WHERE tenant_id = ? AND sha256 = ?",
                   (tenant, sha256))[0][0]
    if location is None:
        (server.data_dir / "blobs" / str(tenant) / sha256[:2] / sha256).unlink()
    elif location == "inline":
        sql(server, "DELETE FROM blob_data WHERE tenant_id = ? AND sha256 = ?", (tenant, sha256))
    else:
        in_bucket(server, lambda c: c.delete(location[3:]))


def corrupt_blob(server: BoxServer, tenant: int, sha256: str) -> bytes:
    """Flip one stored byte of a local file or an inline blob behind the box's back; returns
    the bytes now stored."""
    data = bytearray(read_blob(server, tenant, sha256))
    data[len(data) // 2] ^= 0xFF
    location = sql(server, "SELECT location FROM blobs WHERE tenant_id = ? AND sha256 = ?",
                   (tenant, sha256))[0][0]
    if location is None:
        (server.data_dir / "blobs" / str(tenant) / sha256[:2] / sha256).write_bytes(bytes(data))
    elif location == "inline":
        sql(server, "UPDATE blob_data SET data = ? WHERE tenant_id = ? AND sha256 = ?",
            (bytes(data), tenant, sha256))
    else:
        raise ValueError(f"corrupt_blob does not write to {location}")
    return bytes(data)


def signer(server: BoxServer) -> UrlSigner:
    """The server's own URL signer, from `<data_dir>/secret.key`."""
    return UrlSigner((server.data_dir / "secret.key").read_text("ascii").strip().encode("ascii"))


def temp_files(server: BoxServer) -> list[str]:
    """Staging files, and on S3 incomplete multipart uploads: uploads in progress."""
    tmp = server.data_dir / "tmp"
    local = sorted(p.name for p in tmp.iterdir()) if tmp.is_dir() else []
    return local + sorted(in_bucket(server, _uploads) or [])

