"""Helpers for the download and share-link tests: minting download URLs, and signing them with
the server's own secret for what a test must not wait for (an expiry in the past)."""

from __future__ import annotations

import time

import httpx

from tests.helpers import BoxServer, signer, sql


def download_url(client: httpx.Client, artifact_id: str) -> str:
    r = client.get(f"/v1/artifacts/{artifact_id}/download-url")
    assert r.status_code == 200, r.text
    return r.json()["download_url"]


def tenant_id_of(server: BoxServer, artifact_id: str) -> int:
    return sql(server, "SELECT tenant_id FROM artifacts WHERE artifact_id = ?", (artifact_id,))[0][0]


def signed_url(server: BoxServer, artifact_id: str, expires: int, method: str = "GET",
               tenant_id: int | None = None) -> str:
    tid = tenant_id_of(server, artifact_id) if tenant_id is None else tenant_id
    sig = signer(server).sign(method, artifact_id, tid, expires)
    return f"{server.url}/d/{artifact_id}?e={expires}&s={sig}"


def past_expiry() -> int:
    return int(time.time()) - 60
