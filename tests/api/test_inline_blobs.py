"""Small bodies inside SQLite (storage.inline_max_bytes, storage/inline.py) against a real server
on both backends: which bodies stay in the database (up to the threshold, exactly at it, one byte
over it), on every upload path; that they leave no file, temp file or object; dedup between
inline bytes and files or objects in both directions; usage and quotas; share links; and the
presigned PUT, which never goes inline. Range, HEAD and 304 on inline bytes: test_downloads.py
(its SMALL artifact is inline)."""

from __future__ import annotations

import base64
import hashlib
import os

import httpx
import pytest

from tests.api.download_helpers import download_url, tenant_id_of
from tests.api.upload_helpers import LIMITS_CONFIG
from tests.backends import both_blob_backends  # noqa: F401 - runs the module on both backends
from tests.helpers import (
    INLINE_MAX,
    blob_files,
    download,
    inline_blobs,
    new_tenant,
    sql,
    upload,
)
from tests.ops_helpers import put_bytes, reserve

NO_INLINE = {"ARTIFACTA_BOX_STORAGE_INLINE_MAX_BYTES": "0"}


def location(server, tenant: int, digest: str) -> str | None:
    return sql(server, "SELECT location FROM blobs WHERE tenant_id = ? AND sha256 = ?",
               (tenant, digest))[0][0]


def temp_files(server) -> list[str]:
    return [p.name for p in (server.data_dir / "tmp").iterdir()]


def upload_json(client: httpx.Client, content: bytes) -> dict:
    r = client.post("/v1/artifacts", json={"filename": "j.bin",
                                           "content": base64.b64encode(content).decode()})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.mark.parametrize("size", [0, 1, INLINE_MAX - 1, INLINE_MAX, INLINE_MAX + 1,
                                  3 * INLINE_MAX])
@pytest.mark.parametrize("path", ["multipart", "json"])
def test_bodies_up_to_the_threshold_live_in_the_database_and_larger_ones_do_not(
        shared_server, path, size, blob_backend):
    _, client = new_tenant(shared_server)
    content = os.urandom(size)
    rec = upload(client, content) if path == "multipart" else upload_json(client, content)
    tenant = tenant_id_of(shared_server, rec["artifact_id"])
    digest = hashlib.sha256(content).hexdigest()
    assert rec["content_hash"] == digest and rec["size_bytes"] == size
    stored = f"inline:{tenant}/{digest}"
    where = location(shared_server, tenant, digest)
    # the tenant's files and objects (its only upload is this one)
    outside = [f for f in blob_files(shared_server)
               if f.startswith((f"{tenant}/", f"s3:blobs/{tenant}/"))]
    if size <= INLINE_MAX:
        assert where == "inline"
        assert stored in inline_blobs(shared_server)
        assert outside == []  # no file at its content address, no object: only the row's bytes
    else:
        assert where is None if blob_backend == "local" else where.startswith("s3:")
        assert stored not in inline_blobs(shared_server)
        assert len(outside) == 1
    assert temp_files(shared_server) == []
    assert httpx.get(download_url(client, rec["artifact_id"])).content == content
    client.close()


def test_dedup_goes_by_the_blob_row_between_inline_bytes_and_files_or_objects(
        make_server, tmp_path):
    """Content already kept as a file or an object is referenced by a small upload of it (no
    second copy inline); content already inline is referenced by an upload made with inline
    off. Usage counts each content once, wherever it is."""
    srv = make_server(data_dir=tmp_path / "box", env=NO_INLINE)
    first, second = b"first stored as a file " * 10, b"first stored inline " * 10
    with srv.client() as c:
        as_file = upload(c, first)
    tenant = tenant_id_of(srv, as_file["artifact_id"])
    was_file = location(srv, tenant, as_file["content_hash"])
    assert was_file != "inline" and inline_blobs(srv) == []
    srv.stop()
    for k in NO_INLINE:
        srv.env.pop(k)
    srv.start()
    with srv.client() as c:
        again = upload(c, first)
        inline = upload(c, second)
        inline_again = upload(c, second)
        assert c.get("/v1/whoami").json()["usage_storage_bytes"] == len(first) + len(second)
    assert location(srv, tenant, as_file["content_hash"]) == was_file
    assert sql(srv, "SELECT refs FROM blobs WHERE sha256 = ?", (as_file["content_hash"],)) == [(2,)]
    assert inline_blobs(srv) == [f"inline:{tenant}/{inline['content_hash']}"]  # one copy
    assert sql(srv, "SELECT refs FROM blobs WHERE sha256 = ?", (inline["content_hash"],)) == [(2,)]
    srv.stop()
    srv.env.update(NO_INLINE)
    srv.start()
    before = blob_files(srv)
    with srv.client() as c:
        third = upload(c, second)  # written as a file or an object, then dropped: a duplicate
        for art, body in ((as_file, first), (again, first), (inline, second),
                          (inline_again, second), (third, second)):
            assert httpx.get(download_url(c, art["artifact_id"])).content == body
        assert c.get("/v1/whoami").json()["usage_storage_bytes"] == len(first) + len(second)
    assert blob_files(srv) == before  # the duplicate left nothing behind
    assert location(srv, tenant, inline["content_hash"]) == "inline"
    assert sql(srv, "SELECT refs FROM blobs WHERE sha256 = ?", (inline["content_hash"],)) == [(3,)]
    assert temp_files(srv) == []
    assert srv.admin("check", check=False).returncode == 0


def test_inline_uploads_count_against_the_storage_quota_after_dedup(make_server):
    srv = make_server(config=LIMITS_CONFIG)  # plan "tiny": 250,000 bytes of storage
    _, client = new_tenant(srv, "tiny")
    chunk = INLINE_MAX - 100
    uploads = [upload(client, os.urandom(chunk)) for _ in range(250_000 // chunk)]
    assert {location(srv, tenant_id_of(srv, u["artifact_id"]), u["content_hash"])
            for u in uploads} == {"inline"}
    over = client.post("/v1/artifacts", files={"file": ("x.bin", os.urandom(chunk))})
    assert over.status_code == 403 and over.json()["error"]["code"] == "quota_exceeded"
    rows_before = len(inline_blobs(srv))
    assert upload(client, download(client, uploads[0]["artifact_id"]))  # dedup: nothing billed
    assert len(inline_blobs(srv)) == rows_before  # the refused upload left no bytes either
    client.close()


def test_share_links_serve_inline_bytes(shared_server):
    _, client = new_tenant(shared_server)
    rec = upload(client, b"shared from the database")
    link = client.post(f"/v1/artifacts/{rec['artifact_id']}/links", json={})
    assert link.status_code == 201, link.text
    r = httpx.get(link.json()["url"], headers={"Range": "bytes=7-10"})
    assert r.status_code == 206 and r.content == b"from"
    client.close()


def test_a_presigned_put_is_stored_as_a_file_even_when_small(shared_server, blob_backend):
    """Pending bytes have no blob row until complete; they are never inline."""
    _, client = new_tenant(shared_server)
    content = b"small but presigned"
    res = reserve(client, len(content))
    assert put_bytes(res, content).status_code == 200
    done = client.post(f"/v1/artifacts/{res['artifact_id']}/complete")
    assert done.status_code == 200, done.text
    tenant = tenant_id_of(shared_server, res["artifact_id"])
    assert location(shared_server, tenant, done.json()["content_hash"]) != "inline"
    assert download(client, res["artifact_id"]) == content
    client.close()
