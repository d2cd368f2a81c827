"""The admin CLI on a live server's data directory: tenants, keys, config, bootstrap."""

import json
import subprocess

import httpx
import pytest

from tests.helpers import box_command, clean_env


@pytest.fixture(scope="module")
def server(shared_server):
    """One server for the tests that each use tenants of their own names (a test that reads the
    whole tenant list, a config or a first start has a server of its own)."""
    return shared_server


def whoami(srv, key):
    return httpx.get(srv.url + "/v1/whoami", headers={"Authorization": f"Bearer {key}"})


def test_help_lists_the_commands():
    res = subprocess.run(box_command() + ["--help"], capture_output=True, text=True, env=clean_env())
    assert res.returncode == 0
    for cmd in ("serve", "keys", "tenants", "config", "version"):
        assert cmd in res.stdout


def test_python_dash_m_matches_console_script():
    res = subprocess.run(box_command() + ["version"], capture_output=True, text=True, env=clean_env())
    assert res.returncode == 0 and res.stdout.startswith("artifacta-box ")


def test_key_lifecycle_create_works_revoke_refused(server):
    server.admin("tenants", "create", "acme")
    created = json.loads(server.admin("keys", "create", "--tenant", "acme", "--name", "ci",
                                      "--json").stdout)
    key = created["key"]
    assert key.startswith("ak_live_") and len(key) == 40
    r = whoami(server, key)
    assert r.status_code == 200 and r.json()["tenant_name"] == "acme"

    listed = json.loads(server.admin("keys", "list", "--tenant", "acme", "--json").stdout)
    assert [k["key_id"] for k in listed] == [created["key_id"]]
    assert listed[0]["last4"] == key[-4:] and listed[0]["name"] == "ci"
    assert key not in json.dumps(listed)  # the full key is never shown again

    server.admin("keys", "revoke", created["key_id"])
    r = whoami(server, key)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    # the bootstrap key of another tenant is unaffected
    assert whoami(server, server.key).json()["tenant_name"] == "default"


def test_keys_are_isolated_by_tenant(server):
    a = server.new_tenant_with_cli("alpha")
    b = server.new_tenant_with_cli("beta")
    assert whoami(server, a).json()["tenant_name"] == "alpha"
    assert whoami(server, b).json()["tenant_name"] == "beta"


def test_suspend_and_resume(server):
    key = server.new_tenant("sus")
    server.admin("tenants", "suspend", "sus")
    r = whoami(server, key)
    assert r.status_code == 401 and "suspended" in r.json()["error"]["message"]
    server.admin("tenants", "resume", "sus")
    assert whoami(server, key).status_code == 200


def test_set_plan_changes_limits_immediately(server):
    key = server.new_tenant("planned")
    server.admin("tenants", "set-plan", "planned", "pro")
    body = whoami(server, key).json()
    assert body["plan"] == "pro" and body["max_active_links"] == 500
    res = server.admin("tenants", "set-plan", "planned", "gold", check=False)
    assert res.returncode != 0 and "gold" in res.stderr and "Traceback" not in res.stderr


def test_key_cap_of_the_plan(make_server):
    srv = make_server(config="[plans.tiny]\nmax_active_keys = 2\n")
    srv.admin("tenants", "create", "small", "--plan", "tiny")
    first = json.loads(srv.admin("keys", "create", "--tenant", "small", "--json").stdout)
    srv.admin("keys", "create", "--tenant", "small")
    res = srv.admin("keys", "create", "--tenant", "small", check=False)
    assert res.returncode == 1
    assert res.stderr.startswith("error: ") and "active keys" in res.stderr
    srv.admin("keys", "revoke", first["key_id"])
    srv.admin("keys", "create", "--tenant", "small")  # room again after a revoke


def test_tenants_list_json_shows_usage(make_server):
    server = make_server()
    rows = json.loads(server.admin("tenants", "list", "--json").stdout)
    assert rows[0]["name"] == "default"
    assert {"plan", "storage_bytes", "requests_month", "active_keys", "suspended"} <= set(rows[0])
    human = server.admin("tenants", "list").stdout
    assert "default" in human and "PLAN" in human


def test_errors_are_one_line_without_traceback(server):
    for args in (["keys", "create", "--tenant", "ghost"], ["keys", "revoke", "key_nope"],
                 ["tenants", "create", "bad name!"], ["tenants", "suspend", "ghost"]):
        res = server.admin(*args, check=False)
        assert res.returncode == 1, args
        assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1, res.stderr
        assert "Traceback" not in res.stderr


def test_duplicate_tenant_is_refused(server):
    res = server.admin("tenants", "create", "default", check=False)
    assert res.returncode == 1 and "already exists" in res.stderr


def test_bad_config_stops_with_one_line(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[server]\nport = 'eighty'\n")
    res = subprocess.run(box_command() + ["serve", "--config", str(cfg), "--data-dir",
                                          str(tmp_path / "d")],
                         capture_output=True, text=True, env=clean_env(), timeout=60)
    assert res.returncode == 2
    assert res.stderr.strip().startswith("error: server.port:")
    assert "Traceback" not in res.stderr


def test_config_show_masks_the_secret(make_server):
    srv = make_server(config="[security]\nsecret_key = '" + "s" * 40 + "'\n")
    shown = json.loads(srv.admin("config", "show", "--json").stdout)
    assert shown["security"]["secret_key"] == "********"
    assert "s" * 40 not in json.dumps(shown)
    assert shown["server"]["port"] == 8787  # the file's value; the flag only applies to serve


def test_bootstrap_prints_exports_once(make_server, tmp_path):
    srv = make_server()
    out = "".join(srv.stdout_lines)
    assert f"export ARTIFACTA_API_KEY={srv.key}" in out
    assert f"export ARTIFACTA_API_URL={srv.url}" in out
    srv.stop()
    again = make_server(data_dir=srv.data_dir)
    assert again.key is None
    assert whoami(again, srv.key).status_code == 200


def test_no_bootstrap_creates_nothing(make_server):
    srv = make_server(args=["--no-bootstrap"])
    assert srv.key is None
    assert json.loads(srv.admin("tenants", "list", "--json").stdout) == []


def test_a_second_server_on_the_same_data_dir_is_refused(server):
    res = subprocess.run(box_command() + ["serve", "--data-dir", str(server.data_dir), "--port", "1"],
                         capture_output=True, text=True, env=clean_env(), timeout=60)
    assert res.returncode == 2 and "in use" in res.stderr


def test_sigterm_exits_zero(make_server):
    srv = make_server()
    assert srv.stop() == 0
