"""What the S3 backend adds (storage.backend = "s3", a real SeaweedFS): presigned uploads
straight to the bucket, redirect downloads, the start-up probe, /health, and a box switched
from local to S3 that keeps serving its older blobs. Everything else an S3 box does is the
local box's behaviour, checked by the suites that run on both backends (tests/backends.py)."""

from __future__ import annotations

import os
import re
import subprocess
from urllib.parse import urlsplit

import httpx
import pytest

from tests.api.download_helpers import download_url
from tests.backends import backend_env
from tests.helpers import (
    file_sized,
    BoxServer,
    assert_error,
    blob_files,
    box_command,
    clean_env,
    free_port,
    key_of,
    new_tenant,
    read_blob,
    sha,
    sql,
    upload,
)


@pytest.fixture(scope="module")
def box(tmp_path_factory, request, seaweedfs) -> BoxServer:
    srv = BoxServer(tmp_path_factory.mktemp("s3box") / "box",
                    env=backend_env(request, "s3")).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def redirect_box(tmp_path_factory, request, seaweedfs) -> BoxServer:
    srv = BoxServer(tmp_path_factory.mktemp("s3redirect") / "box",
                    env=backend_env(request, "s3", downloads="redirect",
                                    redirect_min_bytes="1000")).start()
    yield srv
    srv.stop()


def reserve(client: httpx.Client, size: int, **fields) -> dict:
    r = client.post("/v1/artifacts/upload-url",
                    json={"filename": "direct.bin", "size_bytes": size, **fields})
    assert r.status_code == 200, r.text
    return r.json()


def put(reserved: dict, content: bytes) -> httpx.Response:
    """As the official SDK does it: upload_headers, its own Content-Length, no Authorization."""
    return httpx.put(reserved["upload_url"], content=content,
                     headers=reserved["upload_headers"], timeout=60)


# ---------------------------------------------------------------------------- uploads


def test_health_reports_the_s3_store_and_its_direct_uploads(box):
    body = httpx.get(box.url + "/health").json()
    assert (body["blobs"], body["direct_uploads"]) == ("s3", True)


def test_presigned_upload_goes_straight_to_the_bucket_once(box, seaweedfs):
    _, c = new_tenant(box)
    content = os.urandom(3 * 1024 * 1024 + 11)
    res = reserve(c, len(content), content_type="application/x-thing")
    assert urlsplit(res["upload_url"]).netloc == urlsplit(seaweedfs.endpoint).netloc
    assert res["upload_headers"] == {"Content-Type": "application/x-thing",
                                     "If-None-Match": "*"}
    assert_error(c.post(f"/v1/artifacts/{res['artifact_id']}/complete"), 400, "upload_not_found")

    assert put(res, content[:-1]).status_code == 403       # the signed length refuses it
    assert put(res, content + b"x").status_code == 403
    assert_error(c.post(f"/v1/artifacts/{res['artifact_id']}/complete"), 400, "upload_not_found")
    assert put(res, content).status_code == 200
    assert put(res, os.urandom(len(content))).status_code == 412  # nobody replaces the bytes

    done = c.post(f"/v1/artifacts/{res['artifact_id']}/complete")
    assert done.status_code == 200, done.text
    art = done.json()
    assert (art["status"], art["content_hash"], art["size_bytes"]) == (
        "active", sha(content), len(content))
    assert c.post(f"/v1/artifacts/{res['artifact_id']}/complete").json() == art
    assert httpx.get(download_url(c, art["artifact_id"])).content == content
    assert c.get("/v1/whoami").json()["usage_storage_bytes"] == len(content)
    tenant = sql(box, "SELECT tenant_id FROM artifacts WHERE artifact_id = ?",
                 (art["artifact_id"],))[0][0]
    assert read_blob(box, tenant, sha(content)) == content


def test_a_direct_upload_of_stored_bytes_keeps_one_object(box):
    _, c = new_tenant(box)
    content = os.urandom(200_000)
    first = upload(c, content)
    objects = set(blob_files(box))
    res = reserve(c, len(content))
    assert put(res, content).status_code == 200
    assert len(set(blob_files(box)) - objects) == 1           # the PUT's own key ...
    art = c.post(f"/v1/artifacts/{res['artifact_id']}/complete").json()
    assert art["content_hash"] == first["content_hash"]
    assert set(blob_files(box)) == objects                    # ... deleted after the commit
    assert httpx.get(download_url(c, art["artifact_id"])).content == content
    assert c.get("/v1/whoami").json()["usage_storage_bytes"] == len(content)


def test_same_bytes_uploaded_through_the_box_twice_keep_one_object(box):
    _, c = new_tenant(box)
    content = os.urandom(50_000)
    before = set(blob_files(box))
    a, b = upload(c, content), upload(c, content)
    assert a["content_hash"] == b["content_hash"]
    assert len(set(blob_files(box)) - before) == 1


def test_without_direct_uploads_the_box_says_so_once_and_receives_presigned_uploads_itself(
        tmp_path, request, seaweedfs):
    # The path of a store that fails the probe's conditional-write, checksum or signed-length
    # checks, chosen here by s3.direct_uploads = false (SeaweedFS passes them all): one line at
    # start, upload-url hands out the box's own /u/ URL, the bytes still end up in the bucket.
    srv = BoxServer(tmp_path / "box", env=backend_env(request, "s3", direct_uploads="false"))
    srv.start()
    try:
        said = [line for line in srv.log().splitlines()
                if "presigned uploads go through the box" in line]
        assert len(said) == 1 and "s3.direct_uploads = false" in said[0], srv.log()
        assert httpx.get(srv.url + "/health").json()["direct_uploads"] is False
        _, c = new_tenant(srv)
        content = os.urandom(9 * 1024 * 1024 + 5)   # multipart on the way to the bucket
        res = reserve(c, len(content))
        url = urlsplit(res["upload_url"])
        assert url.netloc == urlsplit(srv.url).netloc and url.path.startswith("/u/")
        assert "If-None-Match" not in res["upload_headers"]
        assert put(res, content[:-1]).status_code == 400   # the box checks the size itself
        assert put(res, content).status_code == 200
        done = c.post(f"/v1/artifacts/{res['artifact_id']}/complete")
        assert done.status_code == 200, done.text
        art = done.json()
        assert (art["status"], art["content_hash"]) == ("active", sha(content))
        assert httpx.get(download_url(c, art["artifact_id"]), timeout=60).content == content
        tenant = sql(srv, "SELECT tenant_id FROM artifacts WHERE artifact_id = ?",
                     (art["artifact_id"],))[0][0]
        assert read_blob(srv, tenant, sha(content)) == content   # read from the bucket
    finally:
        srv.stop()


# ---------------------------------------------------------------------------- redirects


def test_redirect_mode_sends_large_bodies_to_a_presigned_store_url(redirect_box, seaweedfs):
    _, c = new_tenant(redirect_box)
    content = os.urandom(300_000)
    art = upload(c, content, "report final.pdf", "application/pdf")
    url = download_url(c, art["artifact_id"])

    r = httpx.get(url)
    assert r.status_code == 302
    assert r.headers["cache-control"] == "no-store"
    assert "x-ratelimit-remaining" in r.headers                # the token was charged
    location = r.headers["location"]
    assert urlsplit(location).netloc == urlsplit(seaweedfs.endpoint).netloc
    assert "X-Amz-Expires=" in location
    expires = int(location.split("X-Amz-Expires=")[1].split("&")[0])
    assert 60 <= expires <= 300
    got = httpx.get(location)                                 # no Authorization, as the SDK
    assert got.status_code == 200 and got.content == content
    assert got.headers["content-type"] == "application/pdf"
    assert got.headers["content-disposition"] == (
        "attachment; filename=\"report final.pdf\"; filename*=UTF-8''report%20final.pdf")
    assert httpx.get(url, follow_redirects=True).content == content

    head = httpx.head(url)
    assert head.status_code == 302
    assert httpx.head(head.headers["location"]).status_code == 200
    assert httpx.get(head.headers["location"]).status_code == 403  # signed for HEAD only

    # The box's own ETag is still answered by the box.
    etag = f'"{art["content_hash"]}"'
    assert httpx.get(url, headers={"If-None-Match": etag}).status_code == 304

    link = c.post(f"/v1/artifacts/{art['artifact_id']}/links", json={}).json()
    assert httpx.get(link["url"]).status_code == 302
    assert httpx.get(link["url"], follow_redirects=True).content == content

    assert c.delete(f"/v1/artifacts/{art['artifact_id']}").status_code == 200
    assert_error(httpx.get(url), 410, "artifact_already_deleted")
    assert_error(httpx.get(link["url"]), 410, "artifact_already_deleted")


def test_redirect_mode_still_proxies_small_bodies(redirect_box):
    _, c = new_tenant(redirect_box)
    content = b"tiny" * 100  # 400 bytes < redirect_min_bytes
    art = upload(c, content, "t.txt", "text/plain")
    r = httpx.get(download_url(c, art["artifact_id"]))
    assert r.status_code == 200 and r.content == content
    assert r.headers["etag"] == f'"{art["content_hash"]}"'


def test_console_and_public_pages_preview_store_objects_through_the_box(redirect_box):
    """Previews never redirect to the store (its answer would lack the sandbox and nosniff
    headers): a PNG past the inline threshold and a CSV's text preview are read from the bucket."""
    _, c = new_tenant(redirect_box)
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(100_000)
    csv = b"name,value\n" + b"".join(b"row%05d,%d\n" % (i, i) for i in range(5_000))
    image = upload(c, png, "plot.png", "image/png")
    table = upload(c, csv, "table.csv", "text/csv")
    assert len(csv) > 32 * 1024 and image["size_bytes"] == len(png)

    browser = httpx.Client(base_url=redirect_box.url, timeout=30,
                           headers={"Origin": redirect_box.url, "Accept": "text/html"})
    page = browser.get("/console/sign-in")
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
    signed = browser.post("/console/sign-in", data={"csrf": csrf, "api_key": key_of(c),
                                                     "next": "/console/"})
    assert signed.status_code == 303, signed.text

    raw = browser.get(f"/console/artifacts/{image['artifact_id']}/raw")
    assert raw.status_code == 200 and raw.content == png
    assert raw.headers["content-disposition"].startswith("inline")
    assert raw.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert raw.headers["x-content-type-options"] == "nosniff"
    ranged = browser.get(f"/console/artifacts/{image['artifact_id']}/raw",
                         headers={"Range": "bytes=8-1007"})
    assert ranged.status_code == 206 and ranged.content == png[8:1008]

    shown = browser.get(f"/console/artifacts/{table['artifact_id']}")
    assert shown.status_code == 200 and 'id="preview-csv"' in shown.text
    assert "row00000" in shown.text and "row00042" in shown.text

    published = c.post(f"/v1/artifacts/{image['artifact_id']}/publish")
    assert published.status_code == 201, published.text
    visitor = httpx.get(published.json()["public_url"] + "/raw", timeout=30)
    assert visitor.status_code == 200 and visitor.content == png
    assert visitor.headers["content-security-policy"] == "default-src 'none'; sandbox"


# ---------------------------------------------------------------------------- start-up


def test_a_bucket_that_does_not_exist_stops_serve_in_one_line(tmp_path, request, seaweedfs):
    env = clean_env(**backend_env(request, "s3"))
    env["ARTIFACTA_BOX_S3_BUCKET"] = "no-such-bucket-here"
    res = subprocess.run([*box_command(), "serve", "--port", str(free_port()), "--data-dir",
                          str(tmp_path / "box")], capture_output=True, text=True, env=env,
                         timeout=60)
    assert res.returncode == 2
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no-such-bucket-here" in errors[0], res.stderr
    assert "listening" not in res.stderr


def test_a_box_switched_to_s3_keeps_serving_its_local_blobs(make_server, request, tmp_path):
    local = make_server(data_dir=tmp_path / "switch")
    old_bytes, new_bytes = file_sized(b"written while local"), file_sized(b"written on s3")
    with local.client() as c:
        old = upload(c, old_bytes)
        small = upload(c, b"small, inline")
    local.stop()
    switched = make_server(data_dir=tmp_path / "switch", env=backend_env(request, "s3"))
    switched.key = local.key
    with switched.client() as c:
        assert httpx.get(download_url(c, old["artifact_id"])).content == old_bytes
        assert httpx.get(download_url(c, small["artifact_id"])).content == b"small, inline"
        new = upload(c, new_bytes)
        assert httpx.get(download_url(c, new["artifact_id"])).content == new_bytes
        new_small = upload(c, b"small on the s3 box")  # no object, no round trip
        assert httpx.get(download_url(c, new_small["artifact_id"])).content == \
            b"small on the s3 box"
    rows = dict(sql(switched, "SELECT sha256, location FROM blobs"))
    assert rows[old["content_hash"]] is None
    assert rows[new["content_hash"]].startswith("s3:blobs/")
    assert rows[small["content_hash"]] == rows[new_small["content_hash"]] == "inline"
    check = switched.admin("check", check=False)
    assert check.returncode == 0, check.stdout + check.stderr
