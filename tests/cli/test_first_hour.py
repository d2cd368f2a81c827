"""The operator's first hour (issue 13): a mistyped --data-dir is an error, not a new empty box;
every command says which data directory it used; the small inconsistencies are gone."""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest

from tests.helpers import (
    box_command,
    clean_env,
    expire_now,
    file_sized,
    sha,
    sql,
    tenant_id,
    upload,
)
from tests.ops_helpers import admin_json, offline_cli

# Every command that works on an existing box, with the arguments it needs.
ADMIN_COMMANDS = [
    ["check"], ["check", "--repair"], ["gc"], ["gc", "--dry-run"], ["tenants", "list"],
    ["tenants", "create", "acme"], ["tenants", "suspend", "acme"], ["keys", "list"],
    ["keys", "create", "--tenant", "default"], ["audit"], ["artifacts", "list", "--deleted"],
    ["artifacts", "restore", "art_0123456789abcdef"],
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
                 ["gc", "--json"], ["check"], ["audit", "--json"],
                 ["artifacts", "list", "--deleted", "--json"]):
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
        art = upload(c, file_sized(b"backed up, then damaged"))  # a file the backup holds
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


# ------------------------------------------------------------------ artifacts restore / list


def usage_of(server, tenant: str = "default") -> int:
    return next(t["storage_bytes"] for t in admin_json(server, "tenants", "list")
                if t["name"] == tenant)


def test_a_deleted_artifact_is_restored_as_it_was_and_charged_again(server):
    api = server.client()
    content = b"worth keeping after all" * 100
    art = upload(api, content, filename="report.txt", session_id="run-7", metadata={"k": "v"})
    link = api.post(f"/v1/artifacts/{art['artifact_id']}/links").json()["url"]
    assert api.delete(f"/v1/artifacts/{art['artifact_id']}").status_code == 200
    assert usage_of(server) == 0
    assert httpx.get(link).status_code == 410

    listed = admin_json(server, "artifacts", "list", "--deleted")
    assert [a["artifact_id"] for a in listed] == [art["artifact_id"]]
    assert listed[0]["tenant"] == "default" and listed[0]["size_bytes"] == len(content)
    assert listed[0]["purge_after"] > listed[0]["deleted_at"]
    human = server.admin("artifacts", "list", "--deleted").stdout
    assert art["artifact_id"] in human and "PURGED AFTER" in human

    done = admin_json(server, "artifacts", "restore", art["artifact_id"])
    assert done["billed_bytes"] == len(content) and done["expires_at"] == art["expires_at"]
    assert usage_of(server) == len(content)
    got = api.get(f"/v1/artifacts/{art['artifact_id']}").json()
    assert {k: got[k] for k in ("artifact_id", "filename", "session_id", "metadata", "expires_at",
                                "content_hash", "created_at")} == \
        {k: art[k] for k in ("artifact_id", "filename", "session_id", "metadata", "expires_at",
                             "content_hash", "created_at")}
    assert httpx.get(link).content == content  # its link works again
    sessions = api.get("/v1/sessions").json()["sessions"]
    assert next(x["artifact_count"] for x in sessions if x["session_id"] == "run-7") == 1
    assert admin_json(server, "artifacts", "list", "--deleted") == []
    entry = admin_json(server, "audit", "--action", "artifact.restore")[0]
    assert entry["target"] == art["artifact_id"] and entry["actor"] == "cli"
    assert entry["details"]["billed_bytes"] == len(content)
    assert server.admin("check").returncode == 0

    again = server.admin("artifacts", "restore", art["artifact_id"], check=False)
    assert again.returncode == 1 and "is not deleted (it is active)" in again.stderr


def test_restoring_content_a_live_artifact_holds_costs_nothing(server):
    api = server.client()
    content = b"the same bytes twice" * 50
    first, second = upload(api, content), upload(api, content)
    api.delete(f"/v1/artifacts/{first['artifact_id']}")
    assert usage_of(server) == len(content)  # identical content counts once
    done = admin_json(server, "artifacts", "restore", first["artifact_id"])
    assert done["billed_bytes"] == 0 and usage_of(server) == len(content)
    assert second["content_hash"] == sha(content)


def test_a_restore_over_the_storage_quota_is_refused_and_changes_nothing(make_server):
    srv = make_server(config="[plans.tiny]\nstorage_bytes = 1000\n")
    api = srv.client(srv.new_tenant("small", plan="tiny"))
    gone = upload(api, b"a" * 600)
    api.delete(f"/v1/artifacts/{gone['artifact_id']}")
    upload(api, b"b" * 600)
    res = srv.admin("artifacts", "restore", gone["artifact_id"], check=False)
    assert res.returncode == 1 and "Storage quota exceeded" in res.stderr, res.stderr
    assert f"restoring {gone['artifact_id']} adds 600" in res.stderr
    assert api.get(f"/v1/artifacts/{gone['artifact_id']}").status_code == 410
    assert usage_of(srv, "small") == 600
    assert [a["artifact_id"] for a in admin_json(srv, "artifacts", "list", "--deleted",
                                                 "--tenant", "small")] == [gone["artifact_id"]]


def test_an_artifact_that_expired_while_deleted_needs_a_new_ttl(server):
    api = server.client()
    art = upload(api, b"short-lived", ttl="1h")
    api.delete(f"/v1/artifacts/{art['artifact_id']}")
    expire_now(server, art["artifact_id"])
    res = server.admin("artifacts", "restore", art["artifact_id"], check=False)
    assert res.returncode == 1 and "--ttl" in res.stderr, res.stderr
    done = admin_json(server, "artifacts", "restore", art["artifact_id"], "--ttl", "7d")
    assert done["expires_at"] > "2026"
    assert api.get(f"/v1/artifacts/{art['artifact_id']}").status_code == 200


def test_past_retention_or_unknown_ids_cannot_be_restored(server):
    api = server.client()
    art = upload(api, b"deleted long ago")
    api.delete(f"/v1/artifacts/{art['artifact_id']}")
    sql(server, "UPDATE artifacts SET deleted_at = '2020-01-01T00:00:00.000000Z' "
                "WHERE artifact_id = ?", (art["artifact_id"],))
    assert admin_json(server, "artifacts", "list", "--deleted") == []
    res = server.admin("artifacts", "restore", art["artifact_id"], check=False)
    assert res.returncode == 1 and "retention" in res.stderr
    res = server.admin("artifacts", "restore", "art_0123456789abcdef", check=False)
    assert res.returncode == 1 and "No artifact art_0123456789abcdef" in res.stderr
    res = server.admin("artifacts", "list", check=False)
    assert res.returncode == 2 and "--deleted" in res.stderr
    res = server.admin("artifacts", "list", "--deleted", "--tenant", "nosuch", check=False)
    assert res.returncode == 1 and "No tenant named 'nosuch'" in res.stderr


def test_help_documents_the_new_commands():
    res = subprocess.run(box_command() + ["artifacts", "--help"], capture_output=True, text=True,
                         env=clean_env())
    assert "restore" in res.stdout and "list" in res.stdout
    res = subprocess.run(box_command() + ["keys", "create", "--help"], capture_output=True,
                         text=True, env=clean_env())
    assert "--export" in res.stdout
