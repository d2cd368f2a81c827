"""The official `artifacta` CLI and SDK (PyPI artifacta-cli 0.3.0), unmodified, managing
artifacts and sessions on the box: ls with every filter, auto-pagination, inspect, rm,
session ls/seal, and a push into a sealed session."""

from __future__ import annotations

import json

import pytest
from artifacta import Client
from artifacta.errors import ArtifactDeletedError, SessionNotFoundError

from tests.helpers import artifacta_cli, new_key


def cli_json(server, key, *args, expect=0):
    res = artifacta_cli(server, *args, "--json", key=key)
    assert res.returncode == expect, (res.returncode, res.stdout, res.stderr)
    return json.loads(res.stdout) if res.stdout.strip() else None


@pytest.fixture
def tenant(shared_server):
    """(key, SDK client) of a fresh tenant."""
    key = new_key(shared_server, prefix="cli")
    return key, Client(api_key=key, base_url=shared_server.url)


def ids(items):
    return [a["artifact_id"] for a in items]


def test_cli_ls_with_every_filter(shared_server, tenant):
    key, sdk = tenant
    a = sdk.push(content=b"a", filename="a.txt", session_id="run-1", agent_id="planner",
                 metadata={"env": "prod"}).to_dict()
    b = sdk.push(content=b"b", filename="b.txt", session_id="run-2", agent_id="planner",
                 metadata={"env": "dev"}).to_dict()
    c = sdk.push(content=b"c", filename="c.txt", session_id="run-1", agent_id="coder",
                 metadata={"env": "prod"}).to_dict()

    def ls(*args):
        body = cli_json(shared_server, key, "ls", *args)
        assert set(body) == {"artifacts", "next_cursor", "has_more"}
        return ids(body["artifacts"])

    assert ls() == [c["artifact_id"], b["artifact_id"], a["artifact_id"]]
    assert ls("--session", "run-1") == [c["artifact_id"], a["artifact_id"]]
    assert ls("--agent", "planner") == [b["artifact_id"], a["artifact_id"]]
    assert ls("--meta", "env=prod") == [c["artifact_id"], a["artifact_id"]]
    assert ls("--session", "run-1", "--agent", "coder", "--meta", "env=prod") == [c["artifact_id"]]
    assert ls("--created-after", a["created_at"]) == [c["artifact_id"], b["artifact_id"]]
    assert ls("--created-before", c["created_at"].replace("Z", "+00:00")) == [
        b["artifact_id"], a["artifact_id"]]
    page = cli_json(shared_server, key, "ls", "--limit", "2")
    assert ids(page["artifacts"]) == [c["artifact_id"], b["artifact_id"]] and page["has_more"] is True
    rest = cli_json(shared_server, key, "ls", "--limit", "2", "--after", page["next_cursor"])
    assert ids(rest["artifacts"]) == [a["artifact_id"]]
    assert rest["has_more"] is False and rest["next_cursor"] is None
    # Human mode prints the table and the hint for the next page.
    res = artifacta_cli(shared_server, "ls", "--limit", "1", "--human", key=key)
    assert res.returncode == 0, res.stderr
    assert c["artifact_id"] in res.stderr.decode() and "--after" in res.stderr.decode()


def test_sdk_list_auto_paginates_across_pages(tenant):
    _, sdk = tenant
    pushed = [sdk.push(content=f"{i}".encode(), filename=f"{i}.txt", session_id="paged").id
              for i in range(7)]
    everything = sdk.list(session_id="paged", limit=2, auto_paginate=True)
    assert [a.id for a in everything] == list(reversed(pushed))
    assert everything.has_more is False
    one_page = sdk.list(session_id="paged", limit=3, auto_paginate=False)
    assert [a.id for a in one_page] == list(reversed(pushed))[:3] and one_page.has_more
    next_page = sdk.list(session_id="paged", limit=3, auto_paginate=False, cursor=one_page.next_cursor)
    assert [a.id for a in next_page] == list(reversed(pushed))[3:6]


def test_cli_inspect_and_rm(shared_server, tenant):
    key, sdk = tenant
    art = sdk.push(content=b"inspect me", filename="i.txt", metadata={"k": "v"}, ttl="never").to_dict()
    aid = art["artifact_id"]
    assert cli_json(shared_server, key, "inspect", aid) == sdk.get(aid).to_dict()
    human = artifacta_cli(shared_server, "inspect", aid, "--human", key=key)
    assert human.returncode == 0 and human.stdout.decode().strip() == aid
    assert "Expires:      never" in human.stderr.decode()

    removed = cli_json(shared_server, key, "rm", aid, "--yes")
    assert removed["failed"] == []
    [entry] = removed["deleted"]
    assert entry["artifact_id"] == aid and entry["deleted"] is True and entry["deleted_at"]
    # Removing it again still counts as deleted (the CLI reads artifact_already_deleted).
    again = cli_json(shared_server, key, "rm", aid, "--yes")
    assert again == {"deleted": [{"artifact_id": aid, "deleted": True, "deleted_at": "already_deleted"}],
                     "failed": []}
    assert sdk.delete(aid) == {"artifact_id": aid, "deleted": True}  # the SDK swallows the 410 too
    with pytest.raises(ArtifactDeletedError):
        sdk.get(aid)
    gone = artifacta_cli(shared_server, "inspect", aid, "--json", key=key)
    assert gone.returncode == 1
    assert json.loads(gone.stdout)["error"]["code"] == "artifact_already_deleted"


def test_cli_rm_by_session(shared_server, tenant):
    key, sdk = tenant
    doomed = [sdk.push(content=f"{i}".encode(), filename=f"{i}.txt", session_id="doomed").id
              for i in range(3)]
    keep = sdk.push(content=b"keep", filename="keep.txt", session_id="kept").id
    result = cli_json(shared_server, key, "rm", "--session", "doomed", "--yes")
    assert sorted(ids(result["deleted"])) == sorted(doomed) and result["failed"] == []
    assert [a.id for a in sdk.list()] == [keep]


def test_cli_session_ls_and_seal_then_push_is_refused(shared_server, tenant, tmp_path):
    key, sdk = tenant
    first = sdk.push(content=b"1", filename="1.txt", session_id="sess-a").to_dict()
    sdk.push(content=b"2", filename="2.txt", session_id="sess-b")
    sdk.push(content=b"3", filename="3.txt", session_id="sess-a")

    listed = cli_json(shared_server, key, "session", "ls")
    assert [s["session_id"] for s in listed["sessions"]] == ["sess-a", "sess-b"]
    assert listed["sessions"][0]["artifact_count"] == 2 and listed["sessions"][0]["is_sealed"] is False
    # The CLI sends these unencoded: the '+' of the offset arrives as a space.
    after = cli_json(shared_server, key, "session", "ls", "--created-after",
                     first["created_at"].replace("Z", "+00:00"))
    assert [s["session_id"] for s in after["sessions"]] == ["sess-b"]
    page = cli_json(shared_server, key, "session", "ls", "--limit", "1")
    assert page["has_more"] is True
    rest = cli_json(shared_server, key, "session", "ls", "--limit", "1", "--after", page["next_cursor"])
    assert [s["session_id"] for s in rest["sessions"]] == ["sess-b"] and rest["has_more"] is False
    assert [s.session_id for s in sdk.list_sessions(limit=1)] == ["sess-a", "sess-b"]

    sealed = cli_json(shared_server, key, "session", "seal", "sess-a")
    assert sealed["session_id"] == "sess-a" and sealed["status"] == "sealed"
    assert sealed["artifact_count"] == 2
    info = sdk.seal_session("sess-a")  # idempotent
    assert info.sealed_at == sealed["sealed_at"] and info.artifact_count == 2

    f = tmp_path / "late.txt"
    f.write_bytes(b"too late")
    res = artifacta_cli(shared_server, "push", str(f), "--session", "sess-a", "--json", key=key)
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert json.loads(res.stdout)["error"]["code"] == "session_sealed"
    assert [s.is_sealed for s in sdk.list_sessions()] == [True, False]

    missing = artifacta_cli(shared_server, "session", "seal", "never-used", "--json", key=key)
    assert missing.returncode == 1
    assert json.loads(missing.stdout)["error"]["code"] == "session_not_found"
    with pytest.raises(SessionNotFoundError):
        sdk.seal_session("never-used")


def test_readme_login_flow_config_url_then_auth_login(shared_server, tenant, tmp_path):
    # README "Pointing the official clients at the box", without environment variables:
    # `auth login` checks the key against the configured URL, so the URL is set first.
    key, _ = tenant
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "ARTIFACTA_API_KEY": "",
           "ARTIFACTA_API_URL": ""}
    steps = [("config", "set", "auth.api_url", shared_server.url), ("auth", "login", "--key", key)]
    for args in steps:
        res = artifacta_cli(shared_server, *args, key="", env=env)
        assert res.returncode == 0, (args, res.stdout, res.stderr)
    res = artifacta_cli(shared_server, "whoami", "--json", key="", env=env)
    assert res.returncode == 0 and json.loads(res.stdout)["api_key_last_4"] == key[-4:]
