"""Every command of the official `artifacta` CLI (PyPI artifacta-cli 0.3.0, unmodified), run as a
user runs it against a real box, in JSON mode and in human mode: exit codes, the JSON on stdout,
the one scriptable value human mode prints on stdout, and the bytes and hashes behind them.

`COVERED` lists every command with every option it declares; a test fails when the CLI grows
a command or option the matrix does not drive. test_sdk_upload.py, test_sdk_download.py and
test_cli_manage.py go deeper on push flags, pull and rm; this file is the complete catalogue.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import tomllib
from collections.abc import Iterator

import click
import httpx
import pytest
from artifacta.cli import main as cli_main

from tests.compat.matrix_helpers import MATRIX_CONFIG
from tests.helpers import BoxServer, artifacta_cli, new_key, seconds_between, sha
from tests.backends import backend_env, both_blob_backends  # noqa: F401 - runs the module on both backends

# command -> options the matrix drives (every declared option but --help)
COVERED: dict[str, set[str]] = {
    "push": {"--session", "--new-session", "--agent", "--meta", "--ttl", "--name", "--content-type",
             "--idempotency-key", "--presigned", "--link", "--json", "--human"},
    "pull": {"-o", "--json", "--human"},
    "ls": {"--session", "--agent", "--meta", "--created-after", "--created-before", "--limit",
           "--after", "--json", "--human"},
    "inspect": {"--json", "--human"},
    "link": {"--expires", "--json", "--human"},
    "rm": {"--session", "--yes", "--dry-run", "--json", "--human"},
    "session new": set(),
    "session ls": {"--limit", "--after", "--created-after", "--created-before", "--json", "--human"},
    "session seal": {"--json", "--human"},
    "whoami": {"--json", "--human"},
    "auth login": {"--key"},
    "config set": set(),
    "config get": set(),
}


@pytest.fixture(scope="module")
def box(tmp_path_factory, request, blob_backend) -> Iterator[BoxServer]:
    srv = BoxServer(tmp_path_factory.mktemp("climatrix") / "box", config=MATRIX_CONFIG,
                    env=backend_env(request, blob_backend)).start()
    yield srv
    srv.stop()


@pytest.fixture
def key(box) -> str:
    return new_key(box, prefix="cli")


class Run:
    """One finished CLI invocation."""

    def __init__(self, res: subprocess.CompletedProcess) -> None:
        self.code = res.returncode
        self.out = res.stdout
        self.err = res.stderr.decode("utf-8", "replace")

    @property
    def text(self) -> str:
        return self.out.decode().strip()

    def json(self):
        return json.loads(self.out)


def run(box: BoxServer, key: str, *args: str, input: bytes | None = None, expect: int = 0,
        env: dict[str, str] | None = None) -> Run:
    r = Run(artifacta_cli(box, *args, key=key, input=input, env=env))
    assert r.code == expect, (args, r.code, r.out[:500], r.err[:500])
    return r


def assert_cli_error(r: Run, code: str, status: int) -> None:
    """JSON mode: the error envelope on stdout; always a `✗` line on stderr."""
    assert r.json() == {"error": {"code": code, "message": r.json()["error"]["message"], "status": status}}
    assert "✗" in r.err


def test_every_cli_command_and_option_is_in_the_matrix():
    declared: dict[str, set[str]] = {}

    def walk(group: click.Group, prefix: str) -> None:
        for name, cmd in group.commands.items():
            full = f"{prefix}{name}"
            if isinstance(cmd, click.Group):
                walk(cmd, full + " ")
                continue
            opts = set()
            for p in cmd.params:
                if isinstance(p, click.Option):
                    opts |= {o for o in p.opts if o.startswith("-")}
            # an option with aliases (--yes/--force, -o/--output) counts once, by what we use
            declared[full] = opts - {"--help"}

    walk(cli_main, "")
    assert set(declared) == set(COVERED), (set(declared) ^ set(COVERED))
    for cmd, used in COVERED.items():
        assert used <= declared[cmd], (cmd, used - declared[cmd])
        aliases = {"--force", "--output"}  # the same options as --yes and -o
        assert declared[cmd] - used <= aliases, (cmd, declared[cmd] - used)


# ---------------------------------------------------------------------------- push


def test_push_a_file_in_json_and_human_mode(box, key, tmp_path):
    content = os.urandom(120_000)
    f = tmp_path / "table.csv"
    f.write_bytes(content)
    rec = run(box, key, "push", str(f), "--json").json()
    assert (rec["filename"], rec["content_type"]) == ("table.csv", "text/csv")
    assert (rec["size_bytes"], rec["content_hash"]) == (len(content), sha(content))
    # human mode: the id alone on stdout, the details on stderr
    human = run(box, key, "push", str(f), "--name", "t2.csv", "--meta", "k=v", "--human")
    assert re.fullmatch(r"art_[A-Za-z0-9]{16}", human.text)
    assert f"Hash:      {sha(content)}" in human.err and "✓ Uploaded" in human.err
    # every other push flag, checked on the record
    flagged = run(box, key, "push", str(f), "--session", "s-cli", "--agent", "a-cli", "--ttl", "never",
                  "--content-type", "application/x-table", "--idempotency-key", "k-1",
                  "--presigned", "--json").json()
    assert (flagged["session_id"], flagged["agent_id"], flagged["expires_at"]) == ("s-cli", "a-cli", None)
    assert flagged["content_type"] == "application/x-table" and flagged["content_hash"] == sha(content)
    replay = run(box, key, "push", str(f), "--idempotency-key", "k-2", "--json").json()
    assert run(box, key, "push", str(f), "--idempotency-key", "k-2", "--json").json() == replay
    missing = run(box, key, "push", str(tmp_path / "nope.bin"), "--json", expect=1)
    assert "File not found" in missing.err


def test_push_from_stdin_with_a_link_and_a_new_session(box, key):
    piped = b"streamed from a pipe\n" * 50
    rec = run(box, key, "push", "-", "--name", "pipe.log", "--link", "--new-session", "--json",
              input=piped).json()
    assert rec["content_hash"] == sha(piped) and rec["filename"] == "pipe.log"
    assert re.fullmatch(r"ses_[a-z0-9]{12}", rec["session_id"])
    assert set(rec["link"]) == {"link_id", "url", "expires_at"}
    got = httpx.get(rec["link"]["url"])
    assert got.status_code == 200 and got.content == piped
    # the server saw the generated session
    listed = run(box, key, "ls", "--session", rec["session_id"], "--json").json()["artifacts"]
    assert [a["artifact_id"] for a in listed] == [rec["artifact_id"]]
    # human mode: the link URL alone on stdout, the session on stderr
    human = run(box, key, "push", "-", "--name", "p2.log", "--link", "--new-session", "--human",
                input=b"second")
    assert human.text.startswith(box.url + "/l/lnk_")
    assert httpx.get(human.text).content == b"second"
    assert re.search(r"Session:\s+ses_[a-z0-9]{12}", human.err)
    no_name = run(box, key, "push", "-", "--json", input=b"x", expect=1)
    assert "--name is required" in no_name.err


# ---------------------------------------------------------------------------- pull / inspect


def test_pull_to_stdout_and_to_a_path(box, key, tmp_path):
    content = os.urandom(80_000)
    rec = run(box, key, "push", "-", "--name", "blob.bin", "--json", input=content).json()
    assert run(box, key, "pull", rec["artifact_id"], "-o", "-").out == content
    dest = tmp_path / "got.bin"
    body = run(box, key, "pull", rec["artifact_id"], "-o", str(dest), "--json").json()
    assert body == {"artifact_id": rec["artifact_id"], "filename": "blob.bin",
                    "size_bytes": len(content), "path": str(dest)}
    assert sha(dest.read_bytes()) == rec["content_hash"]
    human = run(box, key, "pull", rec["artifact_id"], "-o", str(tmp_path), "--human")
    assert human.text == str(tmp_path / "blob.bin") and "✓ Downloaded blob.bin" in human.err
    assert (tmp_path / "blob.bin").read_bytes() == content
    gone = run(box, key, "pull", "art_" + "0" * 16, "-o", "-", "--json", expect=1)
    assert_cli_error(gone, "artifact_not_found", 404)


def test_inspect_in_json_human_and_auto_mode(box, key):
    rec = run(box, key, "push", "-", "--name", "i.txt", "--ttl", "never", "--meta", "a=1",
              "--session", "insp", "--json", input=b"inspect me").json()
    aid = rec["artifact_id"]
    assert run(box, key, "inspect", aid, "--json").json() == rec
    # stdout is not a terminal, so without a flag the CLI answers in JSON
    assert run(box, key, "inspect", aid).json() == rec
    human = run(box, key, "inspect", aid, "--human")
    assert human.text == aid
    assert "Expires:      never" in human.err and "  a: 1" in human.err
    assert f"Hash:         {sha(b'inspect me')}" in human.err
    as_human = run(box, key, "inspect", aid, env={"ARTIFACTA_OUTPUT": "human"})
    assert as_human.text == aid
    missing = run(box, key, "inspect", "art_" + "1" * 16, "--human", expect=1)
    assert missing.out == b"" and f'Artifact "art_{"1" * 16}" not found.' in missing.err
    assert_cli_error(run(box, key, "inspect", "art_" + "1" * 16, "--json", expect=1),
                     "artifact_not_found", 404)


# ---------------------------------------------------------------------------- ls


def test_ls_with_each_flag_in_json_and_human_mode(box, key):
    made = []
    for i in range(5):
        made.append(run(box, key, "push", "-", "--name", f"{i}.txt", "--session", "ls-s" if i < 4 else "ls-t",
                        "--agent", "even" if i % 2 == 0 else "odd", "--meta", f"run={i % 2}",
                        "--meta", "team=ml", "--json", input=f"ls {i}".encode()).json())
    ids = [a["artifact_id"] for a in made]

    def listed(*args: str) -> list[str]:
        return [a["artifact_id"] for a in run(box, key, "ls", *args, "--json").json()["artifacts"]]

    assert listed() == ids[::-1]
    assert listed("--session", "ls-s") == ids[3::-1]
    assert listed("--agent", "odd") == [ids[3], ids[1]]
    assert listed("--meta", "run=0", "--meta", "team=ml") == [ids[4], ids[2], ids[0]]
    assert listed("--created-after", made[1]["created_at"]) == [ids[4], ids[3], ids[2]]
    assert listed("--created-before", made[2]["created_at"]) == [ids[1], ids[0]]
    page = run(box, key, "ls", "--limit", "2", "--json").json()
    assert [a["artifact_id"] for a in page["artifacts"]] == [ids[4], ids[3]] and page["has_more"]
    assert listed("--limit", "2", "--after", page["next_cursor"]) == [ids[2], ids[1]]
    # human mode: a table on stderr, and the cursor to continue with
    human = run(box, key, "ls", "--limit", "2", "--human")
    assert human.out == b""
    assert ids[4] in human.err and ids[3] in human.err and "2 artifacts" in human.err
    cursor = re.search(r"Use --after (\S+)", human.err).group(1)
    assert listed("--limit", "2", "--after", cursor) == [ids[2], ids[1]]
    assert "No artifacts found." in run(box, key, "ls", "--session", "none", "--human").err
    bad = run(box, key, "ls", "--limit", "999", "--json", expect=1)
    assert_cli_error(bad, "invalid_request", 400)


# ---------------------------------------------------------------------------- link / rm


def test_link_with_expiry_in_json_and_human_mode(box, key):
    rec = run(box, key, "push", "-", "--name", "l.bin", "--json", input=b"linked bytes").json()
    data = run(box, key, "link", rec["artifact_id"], "--expires", "30m", "--json").json()
    assert data["artifact_id"] == rec["artifact_id"]
    assert seconds_between(data["created_at"], data["expires_at"]) == 1800
    assert httpx.get(data["url"]).content == b"linked bytes"
    default = run(box, key, "link", rec["artifact_id"], "--json").json()  # bodiless POST: 7 days
    assert seconds_between(default["created_at"], default["expires_at"]) == 7 * 86400
    human = run(box, key, "link", rec["artifact_id"], "--expires", "2h", "--human")
    assert human.text.startswith(box.url + "/l/lnk_") and "✓ Download link created" in human.err
    assert httpx.get(human.text).content == b"linked bytes"
    assert "Invalid duration" in run(box, key, "link", rec["artifact_id"], "--expires", "5y",
                                     expect=1).err


def test_rm_dry_run_yes_and_session(box, key):
    recs = [run(box, key, "push", "-", "--name", f"r{i}.txt", "--session", "rm-s", "--json",
                input=f"rm {i}".encode()).json() for i in range(4)]
    a, b, c, d = (r["artifact_id"] for r in recs)
    dry = run(box, key, "rm", a, b, "--dry-run", "--yes", "--json").json()
    assert [x["artifact_id"] for x in dry["would_delete"]] == [a, b]
    assert dry["count"] == 2 and dry["total_bytes"] == recs[0]["size_bytes"] + recs[1]["size_bytes"]
    dry_h = run(box, key, "rm", "--session", "rm-s", "--dry-run", "--human")
    assert dry_h.text.split() == [d, c, b, a] and "4 artifacts would be deleted" in dry_h.err
    assert len(run(box, key, "ls", "--session", "rm-s", "--json").json()["artifacts"]) == 4
    # without --yes the CLI asks; answering no deletes nothing
    cancelled = run(box, key, "rm", a, "--human", input=b"n\n")
    assert "Cancelled." in cancelled.err
    gone = run(box, key, "rm", a, "--yes", "--json").json()
    assert [x["artifact_id"] for x in gone["deleted"]] == [a] and gone["failed"] == []
    assert gone["deleted"][0]["deleted"] is True
    again = run(box, key, "rm", a, "art_" + "9" * 16, "--yes", "--json").json()  # deleted twice
    assert again["deleted"] == [{"artifact_id": a, "deleted": True, "deleted_at": "already_deleted"}]
    assert again["failed"][0]["error"] == "artifact_not_found"
    by_session = run(box, key, "rm", "--session", "rm-s", "--yes", "--human")
    assert "3 deleted, 0 failed" in by_session.err
    assert run(box, key, "ls", "--session", "rm-s", "--json").json()["artifacts"] == []
    assert run(box, key, "whoami", "--json").json()["usage_storage_bytes"] == 0


# ---------------------------------------------------------------------------- sessions


def test_session_new_ls_and_seal(box, key):
    sid = run(box, key, "session", "new").text
    assert re.fullmatch(r"ses_[a-z0-9]{12}", sid)
    first = run(box, key, "push", "-", "--name", "a", "--session", sid, "--json", input=b"a").json()
    run(box, key, "push", "-", "--name", "b", "--session", sid, "--json", input=b"b")
    run(box, key, "push", "-", "--name", "c", "--session", "later", "--json", input=b"c")
    sessions = run(box, key, "session", "ls", "--json").json()
    assert [(s["session_id"], s["artifact_count"], s["is_sealed"]) for s in sessions["sessions"]] == [
        ("later", 1, False), (sid, 2, False)]
    page = run(box, key, "session", "ls", "--limit", "1", "--json").json()
    assert page["has_more"] and page["sessions"][0]["session_id"] == "later"
    rest = run(box, key, "session", "ls", "--limit", "1", "--after", page["next_cursor"], "--json").json()
    assert [s["session_id"] for s in rest["sessions"]] == [sid]
    # the CLI sends this query unencoded: "+00:00" arrives as " 00:00"
    after = first["created_at"].replace("Z", "+00:00")
    assert [s["session_id"] for s in run(box, key, "session", "ls", "--created-after", after,
                                         "--json").json()["sessions"]] == ["later"]
    assert [s["session_id"] for s in run(box, key, "session", "ls", "--created-before",
                                         "2999-01-01T00:00:00Z", "--json").json()["sessions"]] == [
        "later", sid]
    human = run(box, key, "session", "ls", "--human")
    assert "SEALED" in human.err and sid in human.err and "2 sessions" in human.err
    sealed = run(box, key, "session", "seal", sid, "--json").json()
    assert (sealed["session_id"], sealed["status"], sealed["artifact_count"]) == (sid, "sealed", 2)
    again = run(box, key, "session", "seal", sid, "--human")
    assert again.text == sid and f"Sealed at: {sealed['sealed_at']}" in again.err
    refused = run(box, key, "push", "-", "--name", "late", "--session", sid, "--json", input=b"x",
                  expect=1)
    assert_cli_error(refused, "session_sealed", 409)
    assert_cli_error(run(box, key, "session", "seal", "never-used", "--json", expect=1),
                     "session_not_found", 404)


# ---------------------------------------------------------------------------- account


def test_whoami_in_json_and_human_mode(box, key):
    run(box, key, "push", "-", "--name", "w", "--json", input=b"12345")
    data = run(box, key, "whoami", "--json").json()
    assert set(data) >= {"tenant_name", "plan", "api_key_last_4", "usage_requests_month",
                         "plan_requests_limit_month", "usage_storage_bytes", "plan_storage_limit_bytes",
                         "active_links", "max_active_links", "rate_limit_sustained", "rate_limit_burst"}
    assert data["api_key_last_4"] == key[-4:] and data["usage_storage_bytes"] == 5
    human = run(box, key, "whoami", "--human")
    assert human.text == data["tenant_name"]
    assert "Plan:       matrix" in human.err and "Rate limit: 100000/s (100000 burst)" in human.err
    assert re.search(r"Requests:   [\d,]+ / 100,000,000 this month", human.err)
    bad = run(box, "ak_live_" + "x" * 32, "whoami", "--json", expect=1)
    assert bad.out == b"" and "Authentication failed" in bad.err


def test_auth_login_and_config(box, key, tmp_path):
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "ARTIFACTA_API_KEY": ""}
    login = run(box, "", "auth", "login", "--key", key, env=env)
    assert f"✓ Authenticated (key ending in ...{key[-4:]})" in login.text
    saved = tomllib.loads((tmp_path / "cfg" / "artifacta" / "config.toml").read_text())
    assert saved["auth"]["api_key"] == key
    # the stored key now authenticates every command
    assert run(box, "", "whoami", "--json", env=env).json()["api_key_last_4"] == key[-4:]
    rec = run(box, "", "push", "-", "--name", "c.txt", "--json", env=env, input=b"cfg").json()
    assert rec["content_hash"] == sha(b"cfg")
    # the key can come from stdin (CI scripts)
    piped = run(box, "", "auth", "login", env={**env, "XDG_CONFIG_HOME": str(tmp_path / "cfg2")},
                input=key.encode() + b"\n")
    assert "✓ Authenticated" in piped.text
    refused = run(box, "", "auth", "login", "--key", "ak_live_" + "y" * 32, env=env, expect=1)
    assert "Invalid API key" in refused.err
    assert tomllib.loads((tmp_path / "cfg" / "artifacta" / "config.toml").read_text())["auth"][
        "api_key"] == key  # a refused key is not stored
    assert "✓ Set defaults.ttl = 7d" in run(box, "", "config", "set", "defaults.ttl", "7d", env=env).text
    assert run(box, "", "config", "get", "defaults.ttl", env=env).text == "7d"
    assert "not found" in run(box, "", "config", "get", "defaults.nope", env=env, expect=1).err


def test_exit_codes_for_client_and_network_errors(box, key):
    assert run(box, key, "inspect", "art_" + "2" * 16, "--json", expect=1).code == 1
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    down = run(box, key, "ls", "--json", env={"ARTIFACTA_API_URL": f"http://127.0.0.1:{closed}"},
               expect=3)
    assert "Network error" in down.err
    assert run(box, key, "whoami", env={"ARTIFACTA_API_URL": f"http://127.0.0.1:{closed}"},
               expect=3).code == 3


