"""The official `artifacta-mcp` server (PyPI 1.0.4, with mcp<2), unmodified, driven over stdio by
the `mcp` client library against a real box: every tool it exposes, with the results an agent
reads checked against the box (hashes, records, error codes).

How artifacta-mcp 1.0.4 answers under mcp 1.x: a tool returns a dict, which the mcp server
library treats as *structured output*, so on the wire every call is a success whose
`structuredContent` is the tool's own result `{content, structuredContent, _meta[, isError]}`
and whose text is that dict as JSON. An agent reads `isError` and `_meta.code` from there;
`unwrap` does the same. Calls with arguments that break a tool's input schema (e.g. a malformed
artifact id) are refused by the mcp library itself, before any request reaches the box.

`publish_artifact` and `unpublish_artifact` call SDK methods (`Client.publish_artifact`,
`Client.unpublish`) that artifacta-cli 0.3.0 does not have, so with it they fail locally
(network_error, status 0) whatever the server does. `test_publish_and_unpublish_tools` records
that behaviour (a clean failure, nothing sent to the box) while the SDK lacks the methods, and
checks the page end to end (publish → the page serves → unpublish → 410) once a client has them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import artifacta
import artifacta_mcp
import httpx
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.compat.matrix_helpers import MATRIX_CONFIG
from tests.helpers import BoxServer, new_key, seconds_between, sha
from tests.backends import backend_env, both_blob_backends  # noqa: F401 - runs the module on both backends

ALL_TOOLS = {
    "whoami", "list_artifacts", "get_artifact", "get_artifact_download_url", "list_sessions",
    "store_artifact", "request_upload_url", "complete_upload", "create_download_link",
    "delete_artifact", "seal_session", "publish_artifact", "unpublish_artifact",
}
DESTRUCTIVE = {"delete_artifact", "seal_session", "create_download_link"}


@pytest.fixture(scope="module")
def box(tmp_path_factory, request, blob_backend) -> Iterator[BoxServer]:
    srv = BoxServer(tmp_path_factory.mktemp("mcpmatrix") / "box", config=MATRIX_CONFIG,
                    env=backend_env(request, blob_backend)).start()
    yield srv
    srv.stop()


class Agent:
    """An MCP client session with the artifacta-mcp server."""

    def __init__(self, session: ClientSession) -> None:
        self.session = session

    async def call(self, name: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        res = await self.session.call_tool(name, args or {})
        return unwrap(res)

    async def ok(self, name: str, args: dict[str, Any] | None = None) -> Any:
        out = await self.call(name, args)
        assert "error" not in out and "refused" not in out, (name, args, out)
        return out["data"]

    async def fails(self, name: str, args: dict[str, Any], code: str, status: int) -> dict:
        out = await self.call(name, args)
        assert "error" in out, (name, args, out)
        assert (out["error"]["code"], out["error"]["status"]) == (code, status), out
        assert out["text"], out
        return out


def unwrap(res) -> dict[str, Any]:
    """What the agent reads: {"data": <API JSON>, "meta": ...}, {"error": _meta, "text": ...} for
    a tool's own error, or {"refused": <text>} when the mcp library rejected the arguments."""
    if res.isError:
        return {"refused": res.content[0].text}
    inner = res.structuredContent
    assert isinstance(inner, dict), res
    if inner.get("isError"):
        return {"error": inner["_meta"], "text": inner["content"][0]["text"]}
    payload = inner["structuredContent"]
    # the text block carries the same API JSON, verbatim
    text = json.loads(inner["content"][0]["text"])
    assert text == payload or text == payload.get("data"), (text, payload)
    return {"data": payload, "meta": inner.get("_meta", {})}


def drive(box: BoxServer, key: str, allow: Path, scenario, *, allow_destructive: bool = True,
          env: dict[str, str] | None = None):
    """Start artifacta-mcp over stdio (as an MCP host would) and run `scenario(agent, tools)`."""
    params = artifacta_mcp.build_stdio_params(
        api_key=key, api_url=box.url, allow_path=str(allow), allow_destructive=allow_destructive,
        extra_env={"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
                   **(env or {})})
    assert params["command"] == sys.executable and params["args"][:2] == ["-m", "artifacta_mcp.cli"]

    async def main():
        server = StdioServerParameters(**params, cwd=str(allow))
        async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            tools = {t.name for t in (await session.list_tools()).tools}
            return await scenario(Agent(session), tools)

    return asyncio.run(main())


@pytest.fixture
def allow(tmp_path) -> Path:
    d = tmp_path / "workspace"
    d.mkdir()
    return d


def test_tool_list_and_the_destructive_gate(box, allow):
    key = new_key(box, prefix="mcp")

    async def with_gate_open(agent: Agent, tools: set[str]):
        assert tools == ALL_TOOLS
        stored = await agent.ok("store_artifact", {"filename": "keep.txt",
                                                    "content": base64.b64encode(b"keep").decode()})
        return stored["artifact_id"]

    aid = drive(box, key, allow, with_gate_open)

    async def with_gate_closed(agent: Agent, tools: set[str]):
        assert tools == ALL_TOOLS - DESTRUCTIVE
        out = await agent.call("delete_artifact", {"artifact_id": aid})
        assert out["error"]["code"] == "invalid_request" and "unknown tool" in out["text"]
        return (await agent.ok("get_artifact", {"artifact_id": aid}))["status"]

    assert drive(box, key, allow, with_gate_closed, allow_destructive=False) == "active"


def test_every_tool_against_the_box(box, allow, tmp_path_factory):
    key = new_key(box, prefix="mcp")
    on_disk = os.urandom(30_000)
    (allow / "model.bin").write_bytes(on_disk)
    outside = tmp_path_factory.mktemp("outside") / "secret.txt"
    outside.write_bytes(b"not for agents")
    inline = b"inline bytes from an agent\n" * 10

    async def scenario(agent: Agent, tools: set[str]) -> None:
        # whoami
        me = await agent.ok("whoami")
        assert me["api_key_last_4"] == key[-4:] and me["plan"] == "matrix"
        assert isinstance(me["usage_storage_bytes"], int)

        # store_artifact: inline content with every field, replayed with its key
        args = {"filename": "notes.txt", "content": base64.b64encode(inline).decode(),
                "content_type": "text/plain", "session_id": "mcp-run", "agent_id": "planner",
                "metadata": {"step": "1"}, "ttl": "2d", "idempotency_key": "mcp-fixed-key"}
        first = await agent.ok("store_artifact", args)
        assert first["content_hash"] == sha(inline) and first["size_bytes"] == len(inline)
        assert (first["session_id"], first["agent_id"], first["metadata"]) == ("mcp-run", "planner", {"step": "1"})
        assert seconds_between(first["created_at"], first["expires_at"]) == 2 * 86400
        assert (await agent.ok("store_artifact", args))["artifact_id"] == first["artifact_id"]
        # without a key the server makes one and says which
        auto = await agent.call("store_artifact", {"filename": "a.txt", "content": base64.b64encode(b"auto").decode()})
        assert auto["meta"]["idempotency_key"].startswith("mcp_")
        # a path inside the allow-list is read and uploaded; one outside is refused locally
        from_path = await agent.ok("store_artifact", {"filename": "model.bin", "path": str(allow / "model.bin"),
                                                      "session_id": "mcp-run", "agent_id": "trainer"})
        assert from_path["content_hash"] == sha(on_disk) and from_path["size_bytes"] == len(on_disk)
        await agent.fails("store_artifact", {"filename": "s.txt", "path": str(outside)},
                          "invalid_request", 400)

        # list_artifacts, with each filter and a cursor
        async def listed(**filters) -> list[str]:
            return [a["artifact_id"] for a in (await agent.ok("list_artifacts", filters))["artifacts"]]

        everything = await listed()
        assert everything[0] == from_path["artifact_id"] and len(everything) == 3
        assert await listed(session_id="mcp-run") == [from_path["artifact_id"], first["artifact_id"]]
        assert await listed(agent_id="trainer") == [from_path["artifact_id"]]
        assert await listed(filename="notes.txt") == [first["artifact_id"]]
        assert await listed(content_type="text/plain") == [auto["data"]["artifact_id"], first["artifact_id"]]
        assert await listed(metadata={"step": "1"}) == [first["artifact_id"]]
        assert await listed(created_after=first["created_at"]) == everything[:2]
        assert await listed(created_before=first["created_at"]) == []
        page = await agent.ok("list_artifacts", {"limit": 2})
        assert page["has_more"] is True
        rest = await agent.ok("list_artifacts", {"limit": 2, "cursor": page["next_cursor"]})
        assert [a["artifact_id"] for a in page["artifacts"] + rest["artifacts"]] == everything

        # get_artifact
        got = await agent.ok("get_artifact", {"artifact_id": first["artifact_id"]})
        assert got == first
        await agent.fails("get_artifact", {"artifact_id": "art_" + "0" * 16}, "artifact_not_found", 404)
        refused = await agent.call("get_artifact", {"artifact_id": "../../etc/passwd"})
        assert "refused" in refused  # the id pattern is enforced before any request

        # get_artifact_download_url: the bytes behind it are the stored ones
        dl = await agent.ok("get_artifact_download_url", {"artifact_id": from_path["artifact_id"]})
        assert dl["filename"] == "model.bin" and dl["size_bytes"] == len(on_disk)
        assert sha(httpx.get(dl["download_url"]).content) == from_path["content_hash"]

        # create_download_link
        link = await agent.ok("create_download_link", {"artifact_id": first["artifact_id"], "expires_in": 3600})
        assert seconds_between(link["created_at"], link["expires_at"]) == 3600
        assert httpx.get(link["url"]).content == inline
        default_link = await agent.ok("create_download_link", {"artifact_id": first["artifact_id"]})
        assert seconds_between(default_link["created_at"], default_link["expires_at"]) == 7 * 86400

        # request_upload_url -> PUT -> complete_upload
        big = os.urandom(200_000)
        grant = await agent.ok("request_upload_url", {"filename": "big.bin", "content_type": "application/octet-stream",
                                                      "size_bytes": len(big), "session_id": "mcp-up",
                                                      "metadata": {"via": "mcp"}, "ttl": "1d"})
        assert grant["status"] == "pending"
        await agent.fails("complete_upload", {"artifact_id": grant["artifact_id"]}, "upload_not_found", 400)
        put = httpx.request(grant["upload_method"], grant["upload_url"], content=big,
                            headers=grant["upload_headers"] or {})
        assert put.status_code == 200
        done = await agent.ok("complete_upload", {"artifact_id": grant["artifact_id"]})
        assert done["status"] == "active" and done["content_hash"] == sha(big)
        assert (done["session_id"], done["metadata"]) == ("mcp-up", {"via": "mcp"})
        assert await agent.ok("complete_upload", {"artifact_id": grant["artifact_id"]}) == done

        # list_sessions, paged with its cursor
        sessions = await agent.ok("list_sessions", {})
        assert [s["session_id"] for s in sessions["sessions"]] == ["mcp-up", "mcp-run"]
        one = await agent.ok("list_sessions", {"limit": 1})
        two = await agent.ok("list_sessions", {"limit": 1, "cursor": one["next_cursor"]})
        assert [one["sessions"][0]["session_id"], two["sessions"][0]["session_id"]] == ["mcp-up", "mcp-run"]

        # seal_session, then a store into it is refused by the box
        sealed = await agent.ok("seal_session", {"session_id": "mcp-run"})
        assert (sealed["status"], sealed["artifact_count"]) == ("sealed", 2)
        await agent.fails("store_artifact", {"filename": "late.txt", "session_id": "mcp-run",
                                             "content": base64.b64encode(b"late").decode()},
                          "session_sealed", 409)
        await agent.fails("seal_session", {"session_id": "never-used"}, "session_not_found", 404)

        # delete_artifact, twice (the second is reported as done), then reads answer 410
        deleted = await agent.ok("delete_artifact", {"artifact_id": first["artifact_id"]})
        assert deleted["artifact_id"] == first["artifact_id"] and deleted["deleted"] is True
        assert (await agent.ok("delete_artifact", {"artifact_id": first["artifact_id"]}))["deleted"] is True
        await agent.fails("get_artifact", {"artifact_id": first["artifact_id"]}, "artifact_already_deleted", 410)
        assert httpx.get(link["url"]).status_code == 410

        me = await agent.ok("whoami")
        assert me["active_links"] == 0  # both links pointed at the deleted artifact
        assert me["usage_storage_bytes"] == len(b"auto") + len(on_disk) + len(big)

    drive(box, key, allow, scenario)


# What a fixed SDK would add (the two methods artifacta-mcp 1.0.4 calls, with the arguments it
# passes), loaded into the MCP server's process by `sitecustomize`: it exercises the tools' path
# to the box today. The installed SDK is always tested as it is, too.
FIXED_SDK_SHIM = """
import artifacta

def publish_artifact(self, artifact_id, *, title=None, visibility="unlisted", access="none"):
    body = {"visibility": visibility, "access": access}
    if title is not None:
        body["title"] = title
    return self._request("POST", f"/v1/artifacts/{artifact_id}/publish", json=body).json()

def unpublish(self, artifact_id):
    return self._request("DELETE", f"/v1/artifacts/{artifact_id}/publish").json()

if not hasattr(artifacta.Client, "publish_artifact"):
    artifacta.Client.publish_artifact = publish_artifact
if not hasattr(artifacta.Client, "unpublish"):
    artifacta.Client.unpublish = unpublish
"""


@pytest.mark.parametrize("sdk", ["installed", "with-publish-methods"])
def test_publish_and_unpublish_tools(box, allow, tmp_path, sdk):
    """With the installed SDK (artifacta-cli 0.3.0 lacks the methods) both tools fail before any
    request, cleanly; with an SDK that has them (a future release, or the shim above) they
    publish a page the box serves, idempotently, and take it down (410)."""
    key = new_key(box, prefix="mcp")
    env = {}
    if sdk == "installed":
        sdk_can_publish = hasattr(artifacta.Client, "publish_artifact")
        sdk_can_unpublish = hasattr(artifacta.Client, "unpublish")
    else:
        shim = tmp_path / "shim"
        shim.mkdir()
        (shim / "sitecustomize.py").write_text(FIXED_SDK_SHIM)
        env["PYTHONPATH"] = str(shim)
        sdk_can_publish = sdk_can_unpublish = True

    async def scenario(agent: Agent, tools: set[str]) -> None:
        stored = await agent.ok("store_artifact", {"filename": "summary.md", "content_type": "text/markdown",
                                                   "content": base64.b64encode(b"# Done\n").decode()})
        aid = stored["artifact_id"]
        before = (await agent.ok("whoami"))["usage_requests_month"]
        args = {"artifact_id": aid, "title": "Run summary", "visibility": "public"}
        page = None
        if not sdk_can_publish:
            out = await agent.fails("publish_artifact", args, "network_error", 0)
            assert "Traceback" not in out["text"]
        else:
            page = await agent.ok("publish_artifact", args)
            assert (page["title"], page["visibility"], page["access"]) == ("Run summary", "public", "none")
            assert page["public_url"].startswith(box.url + "/a/")
            shown = httpx.get(page["public_url"])
            assert shown.status_code == 200 and "Run summary" in shown.text
            again = await agent.ok("publish_artifact", args)  # idempotent: the same URL
            assert again["public_url"] == page["public_url"]
            await agent.fails("publish_artifact", {"artifact_id": "art_" + "0" * 16},
                              "artifact_not_found", 404)
        if not sdk_can_unpublish:
            out = await agent.fails("unpublish_artifact", {"artifact_id": aid}, "network_error", 0)
            assert "Traceback" not in out["text"]
        else:
            first = await agent.ok("unpublish_artifact", {"artifact_id": aid})
            assert first["published"] is False
            assert await agent.ok("unpublish_artifact", {"artifact_id": aid}) == first  # a no-op
            if page is not None:
                assert httpx.get(page["public_url"]).status_code == 410
        me = await agent.ok("whoami")
        assert me["active_pages"] == 0
        if not (sdk_can_publish or sdk_can_unpublish):
            assert me["usage_requests_month"] == before + 1  # only this whoami reached the box

    drive(box, key, allow, scenario, env=env)
