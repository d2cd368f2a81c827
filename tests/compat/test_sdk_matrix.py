"""Every public method of the official `artifacta` SDK (PyPI artifacta-cli 0.3.0, unmodified)
against a real box, checked the way a user sees it: bytes and hashes round-trip, records carry
the right fields, and every documented error arrives as its SDK exception with code and status.

`COVERED` maps each public `Client` method to the tests that drive it; a test fails when the
SDK grows a method the matrix does not cover. Upload paths are explored in depth by
test_sdk_upload.py, downloads by test_sdk_download.py; this file is the complete catalogue.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from artifacta import Client, session_new
from artifacta.errors import (
    ArtifactaError,
    ArtifactDeletedError,
    ArtifactExpiredError,
    ArtifactNotFoundError,
    AuthenticationError,
    FileTooLargeError,
    InvalidRequestError,
    QuotaExceededError,
    RateLimitedError,
    SessionNotFoundError,
    SessionSealedError,
    TTLExceedsPlanLimitError,
    UploadNotFoundError,
)
from artifacta.sdk import Artifact, Link, ListResult, SealInfo, Session, TenantInfo

from tests.compat.matrix_helpers import MATRIX_CONFIG
from tests.helpers import BoxServer, expire_now, new_key, seconds_between, sha
from tests.backends import backend_env, both_blob_backends  # noqa: F401 - runs the module on both backends

COVERED = {
    "push": ["test_push_from_a_path", "test_push_content_with_every_field",
             "test_push_presigned", "test_push_idempotency_key"],
    "push_dict": ["test_push_dict_and_pull_dict"],
    "pull": ["test_pull_to_a_directory_and_to_a_file"],
    "pull_bytes": ["test_push_from_a_path", "test_push_presigned"],
    "pull_dict": ["test_push_dict_and_pull_dict"],
    "get": ["test_get_returns_the_uploaded_record"],
    "list": ["test_list_each_filter", "test_list_auto_and_manual_pagination",
             "test_client_defaults_scope_push_and_list"],
    "delete": ["test_delete_twice"],
    "create_link": ["test_create_link"],
    "seal_session": ["test_seal_session"],
    "list_sessions": ["test_list_sessions_with_offsets_and_pages"],
    "whoami": ["test_whoami"],
    "request_upload_url": ["test_request_upload_url_and_complete_upload"],
    "complete_upload": ["test_request_upload_url_and_complete_upload"],
    "session_new": ["test_session_new"],
}


@pytest.fixture(scope="module")
def box(tmp_path_factory, request, blob_backend) -> Iterator[BoxServer]:
    srv = BoxServer(tmp_path_factory.mktemp("sdkmatrix") / "box", config=MATRIX_CONFIG,
                    env=backend_env(request, blob_backend)).start()
    yield srv
    srv.stop()


@pytest.fixture
def sdk(box) -> Client:
    """An SDK client of a fresh tenant."""
    return Client(api_key=new_key(box), base_url=box.url)


def test_every_public_sdk_method_is_in_the_matrix():
    public = {name for name in dir(Client) if not name.startswith("_")}
    assert public == set(COVERED), f"not covered: {public - set(COVERED)}; stale: {set(COVERED) - public}"
    module = sys.modules[__name__]
    for tests in COVERED.values():
        for name in tests:
            assert callable(getattr(module, name, None)), name


# ---------------------------------------------------------------------------- push


def test_push_from_a_path(sdk, tmp_path):
    content = os.urandom(700_000)
    path = tmp_path / "metrics.json"
    path.write_bytes(content)
    art = sdk.push(path)
    assert isinstance(art, Artifact)
    assert art.id.startswith("art_") and len(art.id) == 20
    assert (art.filename, art.content_type) == ("metrics.json", "application/json")
    assert (art.size_bytes, art.content_hash) == (len(content), sha(content))
    assert sha(sdk.pull_bytes(art.id)) == sha(content)


def test_push_content_with_every_field(sdk):
    art = sdk.push(content=b"x" * 10, filename="notes.md", content_type="text/x-notes",
                   session_id="run-7", agent_id="writer", metadata={"stage": "draft", "n": "1"},
                   ttl="2d")
    d = art.to_dict()
    assert (art.session_id, art.agent_id, art.metadata) == ("run-7", "writer", {"stage": "draft", "n": "1"})
    assert art.content_type == "text/x-notes" and d["status"] == "active"
    assert seconds_between(art.created_at, art.expires_at) == 2 * 86400
    never = sdk.push(content=b"forever", filename="f.txt", ttl="never")
    assert never.expires_at is None and "expires_at" in never.to_dict()


def test_push_presigned(sdk):
    content = os.urandom(300_001)
    art = sdk.push(content=content, filename="big.bin", presigned=True, session_id="pre",
                   agent_id="up", metadata={"via": "presigned"}, ttl="1d")
    assert art.to_dict()["status"] == "active"
    assert (art.size_bytes, art.content_hash) == (len(content), sha(content))
    assert (art.session_id, art.agent_id, art.metadata) == ("pre", "up", {"via": "presigned"})
    assert sdk.pull_bytes(art.id) == content


def test_push_idempotency_key(sdk):
    first = sdk.push(content=b"once", filename="o.txt", idempotency_key="job-42")
    again = sdk.push(content=b"once", filename="o.txt", idempotency_key="job-42")
    assert again.id == first.id
    # the same key with another request is a new upload, never the old artifact
    other = sdk.push(content=b"once", filename="o.txt", idempotency_key="job-42",
                     metadata={"retry": "2"})
    assert other.id != first.id and other.metadata == {"retry": "2"}
    assert len(sdk.list()) == 2
    assert sdk.whoami().usage_storage_bytes == len(b"once")  # one blob, billed once


def test_push_dict_and_pull_dict(sdk):
    doc = {"score": 0.93, "labels": ["a", "b"], "nested": {"ok": True}, "text": "naïve ✓"}
    art = sdk.push_dict(doc, filename="eval.json", session_id="ev", metadata={"kind": "eval"})
    raw = json.dumps(doc).encode()
    assert art.content_type == "application/json" and art.content_hash == sha(raw)
    assert sdk.pull_dict(art.id) == doc
    with pytest.raises(InvalidRequestError):
        sdk.pull_dict(sdk.push(content=b"\xff not json", filename="x.bin").id)


# ---------------------------------------------------------------------------- read


def test_pull_to_a_directory_and_to_a_file(sdk, tmp_path):
    content = os.urandom(50_000)
    art = sdk.push(content=content, filename="weights v2.bin")
    into_dir = sdk.pull(art.id, output=tmp_path)
    assert into_dir == tmp_path / "weights v2.bin" and sha(into_dir.read_bytes()) == art.content_hash
    to_file = sdk.pull(art.id, output=tmp_path / "sub" / "copy.bin")
    assert to_file.read_bytes() == content


def test_get_returns_the_uploaded_record(sdk):
    art = sdk.push(content=b"get me", filename="g.txt", session_id="s", metadata={"k": "v"})
    got = sdk.get(art.id)
    assert got.to_dict() == art.to_dict()
    assert set(got.to_dict()) == {"artifact_id", "filename", "content_type", "size_bytes",
                                  "content_hash", "session_id", "agent_id", "metadata", "status",
                                  "expires_at", "created_at"}
    with pytest.raises(ArtifactNotFoundError) as e:
        sdk.get("art_" + "Z" * 16)
    assert (e.value.code, e.value.status) == ("artifact_not_found", 404)


def test_list_each_filter(sdk):
    a = sdk.push(content=b"a", filename="a.txt", session_id="s1", agent_id="ag1",
                 metadata={"env": "prod", "team": "ml"})
    b = sdk.push(content=b"b", filename="b.txt", session_id="s1", agent_id="ag2",
                 metadata={"env": "dev", "team": "ml"})
    c = sdk.push(content=b"c", filename="c.txt", session_id="s2", agent_id="ag1",
                 metadata={"env": "prod"})
    result = sdk.list()
    assert isinstance(result, ListResult)
    assert [x.id for x in result] == [c.id, b.id, a.id]  # newest first
    assert [x.id for x in sdk.list(session_id="s1")] == [b.id, a.id]
    assert [x.id for x in sdk.list(agent_id="ag1")] == [c.id, a.id]
    assert [x.id for x in sdk.list(metadata={"env": "prod"})] == [c.id, a.id]
    assert [x.id for x in sdk.list(metadata={"env": "prod", "team": "ml"})] == [a.id]
    assert [x.id for x in sdk.list(session_id="s1", agent_id="ag1", metadata={"team": "ml"})] == [a.id]
    assert len(sdk.list(session_id="never-used")) == 0


def test_list_auto_and_manual_pagination(sdk):
    made = [sdk.push(content=f"{i}".encode(), filename=f"{i}.txt", session_id="pages").id
            for i in range(7)]
    newest_first = list(reversed(made))
    auto = sdk.list(session_id="pages", limit=3)
    assert [x.id for x in auto] == newest_first and auto.has_more is False
    pages, cursor = [], None
    while True:
        page = sdk.list(session_id="pages", limit=3, auto_paginate=False, cursor=cursor)
        pages.append([x.id for x in page])
        if not page.has_more:
            assert page.next_cursor is None
            break
        cursor = page.next_cursor
    assert pages == [newest_first[0:3], newest_first[3:6], newest_first[6:7]]


def test_client_defaults_scope_push_and_list(box, monkeypatch):
    key = new_key(box)
    scoped = Client(api_key=key, base_url=box.url, session_id="ctor-s", agent_id="ctor-a")
    art = scoped.push(content=b"scoped", filename="s.txt")
    assert (art.session_id, art.agent_id) == ("ctor-s", "ctor-a")
    Client(api_key=key, base_url=box.url).push(content=b"other", filename="o.txt")
    assert [x.id for x in scoped.list()] == [art.id]  # the defaults filter the list too
    monkeypatch.setenv("ARTIFACTA_SESSION_ID", "env-s")
    monkeypatch.setenv("ARTIFACTA_API_KEY", key)
    monkeypatch.setenv("ARTIFACTA_API_URL", box.url)
    from_env = Client()
    env_art = from_env.push(content=b"env", filename="e.txt")
    assert env_art.session_id == "env-s"
    assert [x.id for x in from_env.list()] == [env_art.id]


# ---------------------------------------------------------------------------- manage


def test_delete_twice(sdk):
    art = sdk.push(content=b"to delete", filename="d.txt", session_id="del")
    first = sdk.delete(art.id)
    assert first["artifact_id"] == art.id and first["deleted"] is True
    assert first["deleted_at"] >= art.created_at
    second = sdk.delete(art.id)  # the SDK treats 410 artifact_already_deleted as success
    assert second == {"artifact_id": art.id, "deleted": True}
    with pytest.raises(ArtifactDeletedError) as e:
        sdk.get(art.id)
    assert (e.value.code, e.value.status) == ("artifact_already_deleted", 410)
    assert len(sdk.list(session_id="del")) == 0
    assert sdk.whoami().usage_storage_bytes == 0


def test_create_link(sdk):
    content = os.urandom(5000)
    art = sdk.push(content=content, filename="share.bin")
    link = sdk.create_link(art.id)
    assert isinstance(link, Link)
    assert link.link_id.startswith("lnk_") and link.artifact_id == art.id
    assert seconds_between(link.created_at, link.expires_at) == 7 * 86400
    got = httpx.get(link.url)
    assert got.status_code == 200 and sha(got.content) == art.content_hash
    hour = sdk.create_link(art.id, expires_in=3600)
    assert hour.link_id != link.link_id
    assert seconds_between(hour.created_at, hour.expires_at) == 3600
    assert sdk.whoami().active_links == 2


def test_seal_session(sdk):
    sdk.push(content=b"1", filename="1.txt", session_id="to-seal")
    sdk.push(content=b"2", filename="2.txt", session_id="to-seal")
    info = sdk.seal_session("to-seal")
    assert isinstance(info, SealInfo)
    assert (info.session_id, info.status, info.artifact_count) == ("to-seal", "sealed", 2)
    assert sdk.seal_session("to-seal").sealed_at == info.sealed_at  # idempotent
    with pytest.raises(SessionSealedError) as e:
        sdk.push(content=b"3", filename="3.txt", session_id="to-seal")
    assert (e.value.code, e.value.status) == ("session_sealed", 409)
    with pytest.raises(SessionNotFoundError) as e:
        sdk.seal_session("never-used")
    assert (e.value.code, e.value.status) == ("session_not_found", 404)


def test_list_sessions_with_offsets_and_pages(sdk):
    for i in range(5):
        sdk.push(content=f"{i}".encode(), filename="s.txt", session_id=f"sess-{i}")
    sessions = sdk.list_sessions()
    assert all(isinstance(s, Session) for s in sessions)
    assert [s.session_id for s in sessions] == [f"sess-{i}" for i in reversed(range(5))]
    first = sessions[-1]
    assert (first.artifact_count, first.is_sealed) == (1, False)
    assert first.first_artifact_at == first.last_artifact_at
    # auto-pagination over pages of 2 (the SDK sends the cursor as `after`)
    assert [s.session_id for s in sdk.list_sessions(limit=2)] == [s.session_id for s in sessions]
    # the SDK does not URL-encode this query: "+00:00" arrives as " 00:00"
    cut = sessions[2].first_artifact_at  # sess-2
    plus = cut.replace("Z", "+00:00")
    assert [s.session_id for s in sdk.list_sessions(created_after=plus)] == ["sess-4", "sess-3"]
    assert [s.session_id for s in sdk.list_sessions(created_before=cut)] == ["sess-1", "sess-0"]
    assert [s.session_id for s in sdk.list_sessions(created_after="2000-01-01T00:00:00Z",
                                                    created_before=cut, limit=1)] == ["sess-1", "sess-0"]


def test_whoami(box):
    key = new_key(box, prefix="m")
    sdk = Client(api_key=key, base_url=box.url)
    sdk.push(content=b"12345", filename="a.txt")
    sdk.push(content=b"12345", filename="b.txt")  # same bytes: one blob
    sdk.push(content=b"678", filename="c.txt")
    info = sdk.whoami()
    assert isinstance(info, TenantInfo)
    assert info.plan == "matrix" and info.api_key_last_4 == key[-4:]
    assert info.tenant_name.startswith("m-")
    assert info.usage_storage_bytes == 8
    assert info.usage_requests_month >= 4
    for name in ("usage_requests_month", "plan_requests_limit_month", "usage_storage_bytes",
                 "plan_storage_limit_bytes", "active_links", "max_active_links",
                 "rate_limit_sustained", "rate_limit_burst"):
        assert type(getattr(info, name)) is int, name
    assert info.to_dict()["rate_limit_burst"] == 100000


def test_request_upload_url_and_complete_upload(sdk):
    content = b"presigned by hand " * 100
    grant = sdk.request_upload_url("hand.txt", "text/plain", len(content), session_id="hand",
                                   metadata={"m": "1"}, ttl="3d")
    assert grant["status"] == "pending" and grant["upload_url"].startswith("http")
    with pytest.raises(UploadNotFoundError) as e:
        sdk.complete_upload(grant["artifact_id"])
    assert (e.value.code, e.value.status) == ("upload_not_found", 400)
    assert sdk.get(grant["artifact_id"]).to_dict()["status"] == "pending"
    assert len(sdk.list(session_id="hand")) == 0  # pending is not listed
    put = httpx.request(grant["upload_method"], grant["upload_url"], content=content,
                        headers=grant["upload_headers"] or {})
    assert put.status_code == 200
    done = sdk.complete_upload(grant["artifact_id"])
    assert done["status"] == "active" and done["content_hash"] == sha(content)
    assert (done["session_id"], done["metadata"]) == ("hand", {"m": "1"})
    assert sdk.complete_upload(grant["artifact_id"]) == done
    assert [x.id for x in sdk.list(session_id="hand")] == [grant["artifact_id"]]


def test_session_new():
    made = {session_new() for _ in range(50)} | {Client.session_new() for _ in range(50)}
    assert len(made) == 100
    for sid in made:
        assert sid.startswith("ses_") and len(sid) == 16 and sid[4:].isalnum() and sid[4:].islower()


# ---------------------------------------------------------------------------- errors


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_every_documented_error_arrives_as_its_sdk_exception(box, tmp_path: Path, monkeypatch):
    sdk = Client(api_key=new_key(box), base_url=box.url)
    art = sdk.push(content=b"e", filename="e.txt", session_id="err")

    def raises(exc_type, code: str, status: int, fn) -> ArtifactaError:
        with pytest.raises(exc_type) as e:
            fn()
        assert (e.value.code, e.value.status) == (code, status), (e.value.code, e.value.status)
        assert e.value.message
        return e.value

    raises(AuthenticationError, "unauthorized", 401,
           lambda: Client(api_key="ak_live_" + "0" * 32, base_url=box.url).whoami())
    raises(InvalidRequestError, "invalid_request", 400,
           lambda: sdk.push(content=b"x", filename="x", metadata={"1bad": "v"}))
    raises(InvalidRequestError, "invalid_request", 400, lambda: sdk.list(limit=500))
    raises(TTLExceedsPlanLimitError, "ttl_exceeds_plan_limit", 400,
           lambda: sdk.push(content=b"x", filename="x", ttl="99999d"))
    raises(ArtifactNotFoundError, "artifact_not_found", 404, lambda: sdk.pull_bytes("art_" + "0" * 16))
    raises(SessionNotFoundError, "session_not_found", 404, lambda: sdk.seal_session("nope"))
    pending = sdk.request_upload_url("p.bin", "application/octet-stream", 10)
    raises(UploadNotFoundError, "upload_not_found", 400, lambda: sdk.complete_upload(pending["artifact_id"]))
    sdk.seal_session("err")
    raises(SessionSealedError, "session_sealed", 409,
           lambda: sdk.push(content=b"x", filename="x", session_id="err", presigned=True))
    expired = sdk.push(content=b"old", filename="old.txt")
    expire_now(box, expired.id)
    raises(ArtifactExpiredError, "artifact_expired", 410, lambda: sdk.get(expired.id))
    sdk.delete(art.id)
    raises(ArtifactDeletedError, "artifact_already_deleted", 410, lambda: sdk.create_link(art.id))

    free = Client(api_key=new_key(box, "free"), base_url=box.url)
    raises(QuotaExceededError, "quota_exceeded", 403,
           lambda: free.list(metadata={"a": "1", "b": "2"}))
    raises(TTLExceedsPlanLimitError, "ttl_exceeds_plan_limit", 400,
           lambda: free.push(content=b"x", filename="x", ttl="never"))
    tiny = Client(api_key=new_key(box, "tiny"), base_url=box.url)
    raises(FileTooLargeError, "file_too_large", 413, lambda: tiny.push(content=os.urandom(5000), filename="x"))
    raises(FileTooLargeError, "file_too_large", 413,
           lambda: tiny.push(content=os.urandom(5000), filename="x", presigned=True))
    slow = Client(api_key=new_key(box, "slow"), base_url=box.url)
    for _ in range(3):
        slow.whoami()
    limited = raises(RateLimitedError, "rate_limited", 429, slow.whoami)
    assert isinstance(limited, RateLimitedError) and limited.retry_after_seconds >= 1

    down = Client(api_key=new_key(box), base_url=f"http://127.0.0.1:{_closed_port()}")
    raises(ArtifactaError, "network_error", 0, down.whoami)
    monkeypatch.delenv("ARTIFACTA_API_KEY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "empty-config"))
    with pytest.raises(AuthenticationError):
        Client(api_key="", base_url=box.url)  # no key anywhere: refused before any request
