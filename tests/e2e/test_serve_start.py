"""How `serve` starts, as an operator sees it (issue 13): it binds before it creates or prints
anything, says where it really listens, and warns about what it would otherwise ignore.
From source, and from the binary with ARTIFACTA_BOX_BIN set."""

from __future__ import annotations

import socket
import subprocess

from artifacta_box.config import load_settings
from artifacta_box.server import metrics_exposed
from tests.helpers import box_command, clean_env, free_port


def serve(tmp_path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(box_command() + ["serve", "--data-dir", str(tmp_path / "box"), *args],
                          capture_output=True, text=True, timeout=120, check=False,
                          env=clean_env(TMPDIR=str(tmp_path), **(env or {})))


def test_a_busy_port_is_one_line_and_exit_2_before_anything_happens(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = serve(tmp_path, "--port", str(port))
    assert res.returncode == 2
    assert res.stderr == f"error: cannot listen on 127.0.0.1:{port}: address already in use\n"
    assert res.stdout == ""  # no bootstrap key, no "listening"
    assert not (tmp_path / "box").exists()


def test_an_unknown_host_is_one_line_and_exit_2(tmp_path):
    res = serve(tmp_path, "--host", "no-such-host.invalid", "--port", str(free_port()))
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("error: cannot listen on no-such-host.invalid:")
    assert res.stderr.count("\n") == 1 and res.stdout == ""
    assert not (tmp_path / "box").exists()


def test_it_prints_the_address_it_bound_and_warns_about_unknown_variables(make_server):
    srv = make_server(args=["--host", "localhost"],
                      env={"ARTIFACTA_BOX_SERVER_PROT": "9",
                           "ARTIFACTA_BOX_DB": "/srv/box/artifacta.db"})  # packaging/litestream.yml
    log = srv.log()
    assert f"listening on http://127.0.0.1:{srv.port} " in log  # resolved, not "localhost"
    assert ("warning: ignoring environment variable ARTIFACTA_BOX_SERVER_PROT (did you mean "
            "ARTIFACTA_BOX_SERVER_PORT?)") in log
    assert log.count("ARTIFACTA_BOX_SERVER_PROT") == 1
    assert "ARTIFACTA_BOX_DB" not in log  # expected, not a setting: no warning
    assert "/metrics needs no token" not in log  # loopback only


def test_metrics_are_called_exposed_beyond_loopback_without_a_token():
    # (Tests never listen beyond loopback; this is the rule the start-up warning follows.)
    open_box = load_settings(None, environ={})
    guarded = load_settings(None, environ={"ARTIFACTA_BOX_METRICS_TOKEN": "t" * 20})
    for host in ("0.0.0.0", "::", "192.0.2.10", "2001:db8::1"):
        assert metrics_exposed(host, open_box) and not metrics_exposed(host, guarded)
    for host in ("127.0.0.1", "127.0.0.2", "::1"):
        assert not metrics_exposed(host, open_box)
