"""The shipped executable end to end: what an operator does with `dist/artifacta-box`.

CI builds the binary with `packaging/build.sh` and runs this module with
ARTIFACTA_BOX_BIN=dist/artifacta-box (see .ci/run); without that variable the same checks run
against `python -m artifacta_box`, so the default test run exercises them too.

Every server here runs with its own TMPDIR: the single-file binary unpacks itself there, and
after a stop the directory must be empty again (unpacked files removed, no temporary file
left anywhere), the exit code 0 and the log free of tracebacks.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from artifacta_box import __version__
from tests.backends import backend_env
from tests.helpers import KEY_RE, BoxServer, artifacta_cli, box_command, clean_env, sha

# Timing- and load-sensitive (signals, restarts and worker processes against shutdown
# deadlines): one at a time, on one xdist worker.
pytestmark = pytest.mark.serial

QUICK_STOP = "[server]\nshutdown_timeout = 10.0\n"


def run_box(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(box_command() + list(args), check=False, capture_output=True, text=True,
                          env=clean_env(**(env or {})), timeout=120)


@pytest.fixture
def start_box(make_server, tmp_path: Path) -> Iterator[Callable[..., tuple[BoxServer, Path]]]:
    """start_box(name, **kw): a server on `tmp_path / name` with its own TMPDIR (where a onefile
    binary unpacks itself). The TMPDIR is a short path of the system's temp directory: with
    --workers, Python binds an AF_UNIX socket inside it (at most 107 bytes), and pytest's own
    per-test paths (longer still under xdist) leave too little room."""
    made: list[Path] = []

    def start(name: str, env: dict[str, str] | None = None, **kw) -> tuple[BoxServer, Path]:
        tmpdir = Path(tempfile.mkdtemp(prefix=f"abx-{name}-"))
        made.append(tmpdir)
        srv = make_server(env={"TMPDIR": str(tmpdir), **(env or {})}, data_dir=tmp_path / name,
                          **kw)
        return srv, tmpdir

    yield start
    for tmpdir in made:
        shutil.rmtree(tmpdir, ignore_errors=True)


def assert_stopped_cleanly(srv: BoxServer, tmpdir: Path, code: int | None) -> None:
    log = srv.log_path.read_text(errors="replace")
    assert code == 0, f"exit code {code}:\n{log[-3000:]}"
    assert "Traceback" not in log, log[-3000:]
    assert os.listdir(tmpdir) == [], "the unpacked binary or a temporary file was left in TMPDIR"
    assert os.listdir(srv.data_dir / "tmp") == [], "a staging file was left in the data dir"


def cli_json(srv: BoxServer, key: str, *args: str) -> dict:
    res = artifacta_cli(srv, *args, "--json", key=key)
    assert res.returncode == 0, (args, res.stdout, res.stderr)
    return json.loads(res.stdout)


def pull(srv: BoxServer, key: str, artifact_id: str, dest: Path) -> bytes:
    res = artifacta_cli(srv, "pull", artifact_id, "-o", str(dest), key=key)
    assert res.returncode == 0, (res.stdout, res.stderr)
    return dest.read_bytes()


def test_help_and_version_list_every_command():
    res = run_box("--help")
    assert res.returncode == 0, res.stderr
    for command in ("serve", "keys", "tenants", "gc", "check", "backup", "restore", "config",
                    "version"):
        assert re.search(rf"^\s+{command}\s", res.stdout, re.MULTILINE), f"{command} missing:\n{res.stdout}"
    res = run_box("version")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"artifacta-box {__version__} ")
    assert re.search(r"sqlite \d+\.\d+\.\d+", res.stdout)


def test_official_cli_round_trip_survives_sigterm_and_restart(start_box, tmp_path):
    srv, tmpdir = start_box("box", config=QUICK_STOP)

    answer = httpx.get(srv.url + "/health")
    health = answer.json()
    # Sanic's TouchUp ran (the binary carries Sanic's source for it): it drops the empty
    # `alt-svc:` header Sanic's unrewritten response path sends (and halves a small request's CPU).
    assert "alt-svc" not in answer.headers
    bundled = re.search(r"sqlite (\S+)\)", run_box("version").stdout).group(1)
    assert health == {"status": "ok", "version": __version__, "sqlite_version": bundled}

    key = srv.admin("keys", "create", "--tenant", "default", "--name", "smoke").stdout.strip()
    assert KEY_RE.fullmatch(key)

    small = os.urandom(300_000)
    large = os.urandom(2_500_000)
    (tmp_path / "report.bin").write_bytes(small)
    (tmp_path / "dataset.bin").write_bytes(large)
    pushed = cli_json(srv, key, "push", str(tmp_path / "report.bin"), "--session", "smoke",
                      "--meta", "stage=final")
    presigned = cli_json(srv, key, "push", str(tmp_path / "dataset.bin"), "--session", "smoke",
                         "--presigned")
    assert pushed["content_hash"] == sha(small)
    assert presigned["status"] == "active"
    assert presigned["content_hash"] == sha(large)
    ids = {pushed["artifact_id"], presigned["artifact_id"]}

    listed = cli_json(srv, key, "ls", "--session", "smoke")
    assert {a["artifact_id"] for a in listed["artifacts"]} == ids
    assert pull(srv, key, pushed["artifact_id"], tmp_path / "pulled.bin") == small
    assert pull(srv, key, presigned["artifact_id"], tmp_path / "pulled-large.bin") == large
    link = cli_json(srv, key, "link", pushed["artifact_id"])
    assert link["url"].startswith(srv.url + "/")
    assert httpx.get(link["url"]).content == small  # no Authorization needed

    assert_stopped_cleanly(srv, tmpdir, srv.stop(signal.SIGTERM))

    # A restart on the same data directory sees everything: keys, artifacts, bytes, links.
    srv.start()
    listed = cli_json(srv, key, "ls", "--session", "smoke")
    assert {a["artifact_id"] for a in listed["artifacts"]} == ids
    assert pull(srv, key, presigned["artifact_id"], tmp_path / "again.bin") == large
    assert httpx.get(link["url"]).content == small
    keys = json.loads(srv.admin("keys", "list", "--json").stdout)
    assert "smoke" in {k["name"] for k in keys}
    assert_stopped_cleanly(srv, tmpdir, srv.stop(signal.SIGTERM))


def test_the_executable_on_s3_round_trips_and_stops_cleanly(start_box, tmp_path, request,
                                                            seaweedfs):
    """Blobs in S3: the official CLI pushes (a presigned push goes straight to the bucket) and
    pulls through the executable, check --verify and gc run from it, and it stops with exit 0
    and nothing left behind (its S3 client closed before the event loop ends)."""
    srv, tmpdir = start_box("s3box", config=QUICK_STOP, env=backend_env(request, "s3"))
    assert httpx.get(srv.url + "/health").json()["blobs"] == "s3"
    key = srv.key
    small, large = os.urandom(200_000), os.urandom(9_000_000)
    (tmp_path / "small.bin").write_bytes(small)
    (tmp_path / "large.bin").write_bytes(large)
    pushed = cli_json(srv, key, "push", str(tmp_path / "small.bin"))
    presigned = cli_json(srv, key, "push", str(tmp_path / "large.bin"), "--presigned")
    assert presigned["content_hash"] == sha(large)
    assert pull(srv, key, pushed["artifact_id"], tmp_path / "p1.bin") == small
    assert pull(srv, key, presigned["artifact_id"], tmp_path / "p2.bin") == large
    check = srv.admin("check", "--verify", "--json", check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert json.loads(srv.admin("gc", "--json").stdout)["deleted_blobs"] == 0
    assert_stopped_cleanly(srv, tmpdir, srv.stop(signal.SIGTERM))


def test_gc_check_backup_and_restore_from_the_executable(start_box, tmp_path):
    srv, tmpdir = start_box("box", config=QUICK_STOP)
    content = os.urandom(100_000)
    with srv.client() as c:
        r = c.post("/v1/artifacts", files={"file": ("kept.bin", content, "application/octet-stream")})
        assert r.status_code == 201, r.text
        artifact_id = r.json()["artifact_id"]

    # All three beside the running server, as an operator would run them from cron.
    gc = json.loads(srv.admin("gc", "--json").stdout)
    assert isinstance(gc, dict)
    check = srv.admin("check", "--json", check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    dest = tmp_path / "backup"
    srv.admin("backup", str(dest))
    assert any(dest.iterdir())
    assert_stopped_cleanly(srv, tmpdir, srv.stop(signal.SIGTERM))

    restored = tmp_path / "restored"
    res = run_box("restore", str(dest), "--data-dir", str(restored))
    assert res.returncode == 0, res.stdout + res.stderr
    srv2, tmpdir2 = start_box("restored", config=QUICK_STOP, args=["--no-bootstrap"])
    with srv2.client(srv.key) as c:
        r = c.get(f"/v1/artifacts/{artifact_id}/download-url")
        assert r.status_code == 200, r.text
        assert httpx.get(r.json()["download_url"]).content == content
    assert_stopped_cleanly(srv2, tmpdir2, srv2.stop(signal.SIGTERM))


def test_two_workers_serve_and_stop_when_the_whole_group_is_signalled(start_box, tmp_path):
    # SIGTERM to every process at once, as systemd's KillMode=control-group or `kill -- -PGID`
    # does: the bootloader, the worker manager, the workers and Sanic's helper processes.
    srv, tmpdir = start_box("box", config=QUICK_STOP, args=["--workers", "2"])
    (tmp_path / "w.txt").write_bytes(b"from a worker\n" * 1000)
    pushed = cli_json(srv, srv.key, "push", str(tmp_path / "w.txt"))
    with srv.client() as c:
        # Consecutive new connections are spread over both workers; all of them see the write.
        for _ in range(10):
            r = c.get(f"/v1/artifacts/{pushed['artifact_id']}", headers={"Connection": "close"})
            assert r.status_code == 200, r.text
    assert pull(srv, srv.key, pushed["artifact_id"], tmp_path / "w-out.txt") == b"from a worker\n" * 1000
    os.killpg(srv.proc.pid, signal.SIGTERM)
    assert_stopped_cleanly(srv, tmpdir, srv.proc.wait(60))


def trickle(chunks: int, sent: threading.Event, body: bytearray) -> Iterator[bytes]:
    yield b'--bnd\r\nContent-Disposition: form-data; name="file"; filename="slow.bin"\r\n'
    yield b"Content-Type: application/octet-stream\r\n\r\n"
    for i in range(chunks):
        chunk = bytes([i % 251]) * 65536
        body += chunk
        yield chunk
        sent.set()
        time.sleep(0.05)  # keeps the request in flight while the signals arrive
    yield b"\r\n--bnd--\r\n"


def wait_until_refusing(srv: BoxServer, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(srv.url + "/health", timeout=1, headers={"Connection": "close"})
        except httpx.TransportError:
            return
        time.sleep(0.02)
    raise AssertionError("the server kept accepting connections after SIGTERM")


def test_repeated_sigterm_and_ctrl_c_stop_once_and_let_the_upload_finish(start_box, tmp_path):
    srv, tmpdir = start_box("box", config=QUICK_STOP)
    sent, body, result = threading.Event(), bytearray(), {}

    def upload() -> None:
        with srv.client() as c:
            result["response"] = c.post(
                "/v1/artifacts", content=trickle(100, sent, body),
                headers={"Content-Type": "multipart/form-data; boundary=bnd"})

    t = threading.Thread(target=upload)
    t.start()
    assert sent.wait(30)
    srv.proc.send_signal(signal.SIGTERM)
    wait_until_refusing(srv)  # the drain has begun: Sanic has dropped its own signal handlers
    # Another SIGTERM to the main process, then Ctrl-C as a terminal sends it (to the whole
    # group: the onefile bootloader forwards it to the server, which also gets it directly).
    srv.proc.send_signal(signal.SIGTERM)
    os.killpg(srv.proc.pid, signal.SIGINT)
    code = srv.proc.wait(60)
    t.join(60)
    assert_stopped_cleanly(srv, tmpdir, code)
    response = result["response"]
    assert response.status_code == 201, response.text
    assert response.json()["content_hash"] == sha(bytes(body))

    conn = sqlite3.connect(srv.data_dir / "artifacta.db")
    try:
        state = conn.execute("SELECT state FROM artifacts WHERE artifact_id = ?",
                             (response.json()["artifact_id"],)).fetchone()
    finally:
        conn.close()
    assert state == ("active",)
