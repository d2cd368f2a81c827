"""The official `artifacta` SDK and CLI (PyPI artifacta-cli 0.3.0), unmodified, downloading from
the box and sharing links: every byte comes back with the SHA-256 the box recorded."""

from __future__ import annotations

import json
import secrets

import httpx
import pytest
from artifacta import Client
from artifacta.errors import ArtifactaError, ArtifactDeletedError

from tests.helpers import artifacta_cli, new_key, seconds_between, sha
from tests.backends import both_blob_backends  # noqa: F401 - runs the module on both backends

PAYLOAD = secrets.token_bytes(2 * 1024 * 1024 + 13)  # streamed, not an inline read


@pytest.fixture(scope="module")
def tenant(shared_server):
    """(key, SDK client) of a tenant of this module."""
    key = new_key(shared_server)
    return key, Client(api_key=key, base_url=shared_server.url)


def cli(server, key, *args, input: bytes | None = None, expect: int = 0):
    res = artifacta_cli(server, *args, key=key, input=input)
    assert res.returncode == expect, (res.returncode, res.stdout[:500], res.stderr[:500])
    return res


def test_sdk_pull_pull_bytes_pull_dict(tmp_path, tenant):
    _, sdk = tenant
    art = sdk.push(content=PAYLOAD, filename="model weights.bin")
    assert art.content_hash == sha(PAYLOAD)
    assert sha(sdk.pull_bytes(art.id)) == art.content_hash
    path = sdk.pull(art.id, output=tmp_path)
    assert path == tmp_path / "model weights.bin"
    assert sha(path.read_bytes()) == art.content_hash
    target = sdk.pull(art.id, output=tmp_path / "renamed.bin")
    assert sha(target.read_bytes()) == art.content_hash
    doc = {"answer": 42, "text": "naïve ✓", "items": list(range(100))}
    jart = sdk.push_dict(doc, filename="result.json")
    assert sdk.pull_dict(jart.id) == doc


def test_sdk_create_link_round_trip_and_deleted_artifact(tenant):
    _, sdk = tenant
    art = sdk.push(content=PAYLOAD, filename="shared.bin")
    link = sdk.create_link(art.id)
    assert link.artifact_id == art.id and link.link_id.startswith("lnk_")
    assert seconds_between(link.created_at, link.expires_at) == 604800
    got = httpx.get(link.url)  # no auth, as a person would open it
    assert got.status_code == 200 and sha(got.content) == art.content_hash
    short = sdk.create_link(art.id, expires_in=120)
    assert seconds_between(short.created_at, short.expires_at) == 120
    sdk.delete(art.id)
    gone = httpx.get(link.url)
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "artifact_already_deleted"
    with pytest.raises(ArtifactDeletedError):
        sdk.pull_bytes(art.id)
    with pytest.raises(ArtifactaError):
        sdk.create_link(art.id)


def test_cli_pull_to_stdout_and_to_a_path(shared_server, tenant, tmp_path):
    key, sdk = tenant
    art = sdk.push(content=PAYLOAD, filename="out.bin")
    res = cli(shared_server, key, "pull", art.id, "-o", "-")
    assert sha(res.stdout) == art.content_hash
    dest = tmp_path / "pulled.bin"
    res = cli(shared_server, key, "pull", art.id, "-o", str(dest), "--json")
    assert sha(dest.read_bytes()) == art.content_hash
    body = json.loads(res.stdout)
    assert body == {"artifact_id": art.id, "filename": "out.bin", "size_bytes": len(PAYLOAD),
                    "path": str(dest)}
    # into a directory: the name comes from download-url's filename, path parts stripped
    tricky = sdk.push(content=b"traversal", filename="../../escape.txt")
    (tmp_path / "dir").mkdir()
    cli(shared_server, key, "pull", tricky.id, "-o", str(tmp_path / "dir"))
    assert (tmp_path / "dir" / "escape.txt").read_bytes() == b"traversal"


def test_cli_link_with_expiry(shared_server, tenant):
    key, sdk = tenant
    art = sdk.push(content=b"link me via the cli", filename="l.txt")
    data = json.loads(cli(shared_server, key, "link", art.id, "--expires", "1h", "--json").stdout)
    assert data["artifact_id"] == art.id
    assert seconds_between(data["created_at"], data["expires_at"]) == 3600
    assert httpx.get(data["url"]).content == b"link me via the cli"
    human = cli(shared_server, key, "link", art.id, "--human")
    url = human.stdout.decode().strip()
    assert url.startswith(shared_server.url + "/l/lnk_")
    assert httpx.get(url).content == b"link me via the cli"


def test_cli_push_with_link(shared_server, tenant, tmp_path):
    key, _ = tenant
    f = tmp_path / "report.csv"
    f.write_bytes(PAYLOAD)
    data = json.loads(cli(shared_server, key, "push", str(f), "--link", "--json").stdout)
    assert data["content_hash"] == sha(PAYLOAD)
    assert set(data["link"]) == {"link_id", "url", "expires_at"}
    got = httpx.get(data["link"]["url"])
    assert got.status_code == 200 and sha(got.content) == sha(PAYLOAD)
    assert got.headers["content-disposition"].startswith('attachment; filename="report.csv"')
    # human mode prints the link URL on stdout
    human = cli(shared_server, key, "push", "-", "--name", "stdin.txt", "--link", "--human",
                input=b"from stdin")
    url = human.stdout.decode().strip()
    assert httpx.get(url).content == b"from stdin"
