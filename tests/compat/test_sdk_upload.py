"""Every upload path of the official clients (PyPI artifacta-cli 0.3.0, unmodified) against the
box: SDK push from a path, from bytes, push_dict, presigned push and the manual presigned
steps; CLI push from a file and from stdin, its automatic Idempotency-Key, the push flags and
`push --presigned`. Each result is checked against the bytes sent (sha256, size) and, where a
download route exists, by pulling the bytes back."""

from __future__ import annotations

import json
import os

import httpx
import pytest
from artifacta import Client
from artifacta.errors import (
    InvalidRequestError,
    SessionSealedError,
    TTLExceedsPlanLimitError,
    UploadNotFoundError,
)

from tests.helpers import artifacta_cli, new_key, sha
from tests.backends import both_blob_backends  # noqa: F401 - runs the module on both backends


@pytest.fixture(scope="module")
def key(shared_server):
    return new_key(shared_server, prefix="sdk")


@pytest.fixture(scope="module")
def sdk(shared_server, key):
    return Client(api_key=key, base_url=shared_server.url)


def cli(server, key, *args, input=None):
    res = artifacta_cli(server, *args, key=key, input=input)
    assert res.returncode == 0, (res.returncode, res.stdout, res.stderr)
    return json.loads(res.stdout)


def test_sdk_push_from_a_path(sdk, tmp_path):
    content = os.urandom(2_000_000)
    path = tmp_path / "report.csv"
    path.write_bytes(content)
    art = sdk.push(path)
    assert art.id.startswith("art_")
    assert art.filename == "report.csv" and art.content_type == "text/csv"
    assert art.size_bytes == len(content) and art.content_hash == sha(content)
    assert art.to_dict()["status"] == "active"
    assert sdk.pull_bytes(art.id) == content
    assert sdk.get(art.id).to_dict() == art.to_dict()


def test_sdk_push_content_with_every_field(sdk):
    content = b"hello from the sdk\n"
    art = sdk.push(content=content, filename="hello.txt", session_id="sdk-run", agent_id="planner",
                   metadata={"stage": "eval", "score": "0.9"}, ttl="2d", content_type="text/x-hello")
    d = art.to_dict()
    assert (d["session_id"], d["agent_id"]) == ("sdk-run", "planner")
    assert d["metadata"] == {"stage": "eval", "score": "0.9"}
    assert d["content_type"] == "text/x-hello"
    assert d["content_hash"] == sha(content) and d["size_bytes"] == len(content)
    assert d["expires_at"] > d["created_at"]


def test_sdk_push_dict(sdk):
    data = {"answer": 42, "items": [1, 2, 3]}
    art = sdk.push_dict(data, filename="result.json", metadata={"kind": "result"})
    raw = json.dumps(data).encode()
    assert art.content_type == "application/json"
    assert art.content_hash == sha(raw) and art.size_bytes == len(raw)
    assert sdk.pull_dict(art.id) == data


def test_sdk_idempotency_key(sdk):
    a = sdk.push(content=b"idem", filename="i.txt", idempotency_key="sdk-idem-1")
    b = sdk.push(content=b"idem", filename="i.txt", idempotency_key="sdk-idem-1")
    assert a.id == b.id


def test_sdk_presigned_push(sdk):
    content = os.urandom(1_234_567)
    art = sdk.push(content=content, filename="big.bin", presigned=True, session_id="sdk-pre",
                   metadata={"path": "presigned"}, ttl="1d")
    d = art.to_dict()
    assert d["status"] == "active"
    assert d["content_hash"] == sha(content) and d["size_bytes"] == len(content)
    assert (d["session_id"], d["metadata"]) == ("sdk-pre", {"path": "presigned"})
    assert sdk.pull_bytes(art.id) == content


def test_sdk_manual_presigned_steps(sdk):
    content = b"manual presigned bytes"
    url = sdk.request_upload_url("m.txt", "text/plain", len(content), session_id="sdk-manual")
    with pytest.raises(UploadNotFoundError):
        sdk.complete_upload(url["artifact_id"])
    assert sdk.get(url["artifact_id"]).to_dict()["status"] == "pending"
    r = httpx.request(url["upload_method"], url["upload_url"], content=content,
                      headers=url["upload_headers"])
    assert r.status_code == 200
    done = sdk.complete_upload(url["artifact_id"])
    assert done["status"] == "active" and done["content_hash"] == sha(content)
    assert sdk.complete_upload(url["artifact_id"]) == done


def test_sdk_upload_errors_map_to_the_sdk_exceptions(sdk):
    sdk.push(content=b"x", filename="x.txt", session_id="sdk-sealed")
    sdk.seal_session("sdk-sealed")
    with pytest.raises(SessionSealedError):
        sdk.push(content=b"y", filename="y.txt", session_id="sdk-sealed")
    with pytest.raises(SessionSealedError):
        sdk.push(content=b"y", filename="y.txt", session_id="sdk-sealed", presigned=True)
    with pytest.raises(TTLExceedsPlanLimitError):
        sdk.push(content=b"y", filename="y.txt", ttl="99999d")
    with pytest.raises(InvalidRequestError):
        sdk.push(content=b"y", filename="y.txt", metadata={"bad key": "v"})


def test_cli_push_file_stdin_repeat_and_flags(shared_server, key, tmp_path):
    content = os.urandom(300_000)
    path = tmp_path / "out.parquet"
    path.write_bytes(content)
    first = cli(shared_server, key, "push", str(path), "--json")
    assert first["filename"] == "out.parquet"
    assert first["content_hash"] == sha(content) and first["size_bytes"] == len(content)
    # the CLI sends an automatic Idempotency-Key: the same push returns the same artifact
    again = cli(shared_server, key, "push", str(path), "--json")
    assert again["artifact_id"] == first["artifact_id"]
    # stdin
    piped = b"from stdin\n" * 1000
    stdin = cli(shared_server, key, "push", "-", "--name", "piped.log", "--json", input=piped)
    assert stdin["filename"] == "piped.log" and stdin["content_hash"] == sha(piped)
    assert stdin["size_bytes"] == len(piped)
    # flags
    flagged = cli(shared_server, key, "push", str(path), "--session", "cli-run", "--agent", "cli-agent",
                  "--meta", "k=v", "--meta", "team=ml", "--ttl", "3d", "--name", "renamed.bin",
                  "--content-type", "application/x-parquet", "--json")
    assert flagged["artifact_id"] != first["artifact_id"]  # another filename/session: a new key
    assert (flagged["session_id"], flagged["agent_id"]) == ("cli-run", "cli-agent")
    assert flagged["metadata"] == {"k": "v", "team": "ml"}
    assert flagged["filename"] == "renamed.bin"
    assert flagged["content_type"] == "application/x-parquet"
    assert flagged["content_hash"] == sha(content)
    # the same key with different metadata is a new upload, not the old artifact
    remeta = cli(shared_server, key, "push", str(path), "--session", "cli-run", "--agent", "cli-agent",
                 "--meta", "k=other", "--name", "renamed.bin", "--json")
    assert remeta["artifact_id"] != flagged["artifact_id"] and remeta["metadata"] == {"k": "other"}


def test_cli_push_presigned(shared_server, key, tmp_path):
    content = os.urandom(777_777)
    path = tmp_path / "large.bin"
    path.write_bytes(content)
    art = cli(shared_server, key, "push", str(path), "--presigned", "--session", "cli-pre", "--json")
    assert art["status"] == "active"
    assert art["content_hash"] == sha(content) and art["size_bytes"] == len(content)
    assert art["session_id"] == "cli-pre"
    res = artifacta_cli(shared_server, "push", str(path), "--human", key=key)
    assert res.returncode == 0 and res.stdout.decode().strip().startswith("art_")
