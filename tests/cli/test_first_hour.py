"""The operator's first hour (issue 13): a mistyped --data-dir is an error, not a new empty box;
every command says which data directory it used; the small inconsistencies are gone."""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest

from tests.conftest import box_command, clean_env
from tests.ops_helpers import admin_json, offline_cli, tenant_id, upload

# Every command that works on an existing box, with the arguments it needs.
ADMIN_COMMANDS = [
    ["check"], ["check", "--repair"], ["gc"], ["gc", "--dry-run"], ["tenants", "list"],
    ["tenants", "create", "acme"], ["tenants", "suspend", "acme"], ["keys", "list"],
    ["keys", "create", "--tenant", "default"], ["audit"],
]


@pytest.mark.parametrize("existing", [False, True], ids=["missing", "empty"])
def test_commands_refuse_a_directory_that_holds_no_box_and_create_nothing(tmp_path, existing):
    target = tmp_path / "typo" / "artifacta-data"
    if existing:
        target.mkdir(parents=True)
    for args in [*ADMIN_COMMANDS, ["backup", str(tmp_path / "backup")]]:
        res = offline_cli(*args, "--data-dir", str(target))
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        assert res.stderr.count("\n") == 1 and res.stderr.startswith("error: "), res.stderr
        assert str(target) in res.stderr and "not an Artifacta data directory" in res.stderr
        assert res.stdout == "", (args, res.stdout)
    assert target.exists() == existing and (not existing or list(target.iterdir()) == [])
    assert not (tmp_path / "backup").exists()


def test_every_command_says_which_data_directory_it_used(server):
    said = f"data directory: {server.data_dir.resolve()}\n"
    for args in (["tenants", "list"], ["tenants", "list", "--json"], ["keys", "list", "--json"],
                 ["gc", "--json"], ["check"], ["audit", "--json"]):
        res = server.admin(*args)
        assert said in res.stderr, (args, res.stderr)
        assert said not in res.stdout  # stdout stays the command's own (JSON parses)
        if "--json" in args:
            json.loads(res.stdout)


def test_audit_of_an_unknown_tenant_says_so(server):
    res = server.admin("audit", "--tenant", "nosuch", check=False)
    assert res.returncode == 1 and res.stderr == "error: No tenant named 'nosuch'.\n"


def test_an_empty_plan_name_is_an_error(server):
    res = server.admin("tenants", "create", "acme", "--plan", "", check=False)
    assert res.returncode == 1 and "No plan named ''" in res.stderr, res.stderr
    assert "acme" not in {t["name"] for t in admin_json(server, "tenants", "list")}
    res = server.admin("tenants", "set-plan", "default", "", check=False)
    assert res.returncode == 1 and "No plan named ''" in res.stderr


def test_suspending_twice_changes_and_audits_once(server):
    assert "is suspended" in server.admin("tenants", "suspend", "default").stdout
    again = server.admin("tenants", "suspend", "default").stdout
    assert "already suspended" in again
    assert [e["action"] for e in admin_json(server, "audit", "--action", "tenant")
            ].count("tenant.suspend") == 1
    assert "active again" in server.admin("tenants", "resume", "default").stdout
    assert "not suspended" in server.admin("tenants", "resume", "default").stdout
    assert [e["action"] for e in admin_json(server, "audit", "--action", "tenant")
            ].count("tenant.resume") == 1


def test_keys_create_export_prints_lines_a_shell_can_eval(make_server):
    srv = make_server(config="[server]\npublic_url = 'https://box.example.com'\n")
    out = srv.admin("keys", "create", "--tenant", "default", "--export").stdout
    lines = out.splitlines()
    assert len(lines) == 2 and lines[1] == "export ARTIFACTA_API_URL=https://box.example.com"
    key = lines[0].removeprefix("export ARTIFACTA_API_KEY=")
    assert lines[0].startswith("export ARTIFACTA_API_KEY=ak_live_")
    evaluated = subprocess.run(["sh", "-c", 'eval "$1"; echo "$ARTIFACTA_API_KEY"', "sh", out],
                               capture_output=True, text=True, check=True).stdout.strip()
    assert evaluated == key
    r = httpx.get(srv.url + "/v1/whoami", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200


def test_a_failed_restore_leaves_no_directory_behind(server, tmp_path):
    with server.client() as c:
        art = upload(c, b"backed up, then damaged")
    backup = tmp_path / "backup"
    server.admin("backup", str(backup))
    blob = backup / "blobs" / str(tenant_id(server, "default")) / art["content_hash"][:2] / \
        art["content_hash"]
    blob.write_bytes(b"damaged")
    target = tmp_path / "new" / "box"
    res = offline_cli("restore", str(backup), "--data-dir", str(target))
    assert res.returncode != 0 and "corrupt" in res.stderr
    assert not (tmp_path / "new").exists()
    empty = tmp_path / "made-by-hand"
    empty.mkdir()
    res = offline_cli("restore", str(backup), "--data-dir", str(empty))
    assert res.returncode != 0 and list(empty.iterdir()) == []


def test_help_documents_the_new_options():
    res = subprocess.run(box_command() + ["keys", "create", "--help"], capture_output=True,
                         text=True, env=clean_env())
    assert "--export" in res.stdout
