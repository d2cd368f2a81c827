"""Presigned URLs against a real SeaweedFS, used the way clients use them (plain HTTP, no
credentials): GET/HEAD carrying the box's Content-Disposition and type, PUT bound to one size
and to a key that does not exist yet."""

from __future__ import annotations

import asyncio
import inspect
import os
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from artifacta_box.storage.s3 import S3Client

MiB = 1024 * 1024
DISPOSITION = "attachment; filename=\"r_sum_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf"


def client_side() -> httpx.Client:
    return httpx.Client(timeout=30, trust_env=False)  # never through a proxy


def with_client(settings, fn):
    """fn(client), awaited if it returns an awaitable."""
    async def go():
        async with S3Client(settings) as c:
            result = fn(c)
            return await result if inspect.isawaitable(result) else result

    return asyncio.run(go())


@pytest.fixture
def stored(s3_settings):
    data = os.urandom(2 * MiB + 7)
    with_client(s3_settings, lambda c: c.put_bytes("blobs/obj", data))
    return data


def test_presigned_get_carries_disposition_type_and_cache_control(s3_settings, stored):
    def sign(c: S3Client):
        return c.presign_get("blobs/obj", 120, content_disposition=DISPOSITION,
                             content_type="application/pdf", cache_control="private")

    url = with_client(s3_settings, sign)
    with client_side() as http:
        r = http.get(url)
        ranged = http.get(url, headers={"Range": "bytes=100-199"})
        tampered = http.get(url.replace("response-content-type=application%2Fpdf",
                                        "response-content-type=text%2Fhtml"))
    assert r.status_code == 200 and r.content == stored
    assert r.headers["content-disposition"] == DISPOSITION
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["cache-control"] == "private"
    assert ranged.status_code == 206 and ranged.content == stored[100:200]
    assert ranged.headers["content-range"] == f"bytes 100-199/{len(stored)}"
    assert tampered.status_code == 403  # the response parameters are signed


def test_a_head_url_answers_head_only_and_a_get_url_get_only(s3_settings, stored):
    head_url, get_url = with_client(s3_settings, lambda c: (
        c.presign_get("blobs/obj", 60, method="HEAD"), c.presign_get("blobs/obj", 60)))
    with client_side() as http:
        head = http.head(head_url)
        get_with_head_url = http.get(head_url)
        head_with_get_url = http.head(get_url)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(stored))
    assert get_with_head_url.status_code == 403
    assert head_with_get_url.status_code == 403


def test_an_expired_presigned_get_is_refused(s3_settings, stored):
    def sign(c: S3Client):
        signed_long_ago = datetime.now(UTC) - timedelta(seconds=600)
        return c.signer.presign_url("GET", c.settings.client_endpoint,
                                    c.object_path("blobs/obj"), 60, now=signed_long_ago)

    url = with_client(s3_settings, sign)
    with client_side() as http:
        assert http.get(url).status_code == 403


def test_presigned_urls_name_the_public_endpoint(seaweedfs, s3_bucket):
    settings = seaweedfs.settings(s3_bucket, public_endpoint="https://files.example.com")
    urls = with_client(settings, lambda c: (
        c.presign_get("k", 60), c.presign_put("k", 60, content_length=3).url))
    assert all(u.startswith(f"https://files.example.com/{s3_bucket}/k?") for u in urls)


def test_presigned_put_takes_exactly_the_signed_size_once(s3_settings):
    data = os.urandom(MiB + 3)
    signed = with_client(s3_settings, lambda c: c.presign_put(
        "blobs/up", 300, content_length=len(data), content_type="application/zip"))
    assert signed.headers == {"Content-Length": str(len(data)), "If-None-Match": "*",
                              "Content-Type": "application/zip"}
    with client_side() as http:
        too_long = http.put(signed.url, content=data + b"!",
                            headers={**signed.headers, "Content-Length": str(len(data) + 1)})
        too_short = http.put(signed.url, content=data[:-1],
                             headers={**signed.headers, "Content-Length": str(len(data) - 1)})
        unconditional = {k: v for k, v in signed.headers.items() if k != "If-None-Match"}
        without_if_none_match = http.put(signed.url, content=data, headers=unconditional)
        exists_before = with_client(s3_settings, lambda c: c.head("blobs/up"))
        ok = http.put(signed.url, content=data, headers=signed.headers)
        again = http.put(signed.url, content=os.urandom(len(data)), headers=signed.headers)
    assert (too_long.status_code, too_short.status_code) == (403, 403)
    assert without_if_none_match.status_code == 403  # the condition is part of the signature
    assert exists_before is None  # nothing refused was stored
    assert ok.status_code == 200
    assert again.status_code == 412  # nobody can replace the bytes once they are there
    info = with_client(s3_settings, lambda c: c.head("blobs/up"))
    assert info.size == len(data)
    assert with_client(s3_settings, lambda c: c.get_bytes("blobs/up")) == data
