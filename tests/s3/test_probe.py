"""The start-up probe against a real SeaweedFS: a usable store passes with every capability
the box relies on; each way a store can be unusable fails in one line that says what to do."""

from __future__ import annotations

import asyncio
import socket

import pytest

from artifacta_box.storage.s3 import ProbeFailed, S3Client, probe
from tests.s3_server import READ_ONLY


def run_probe(settings, **client_options):
    async def go():
        async with S3Client(settings, **client_options) as c:
            report = await probe(c)
            left = [o.key async for o in c.list_objects()]
            pending = [u.key async for u in c.list_multipart_uploads()]
            return report, left, pending

    return asyncio.run(go())


def probe_failure(settings, **client_options) -> str:
    with pytest.raises(ProbeFailed) as exc:
        run_probe(settings, **client_options)
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith(f"S3 store {settings.endpoint} bucket {settings.bucket!r}")
    return message


def test_a_working_store_passes_and_allows_direct_uploads(s3_settings):
    report, left, pending = run_probe(s3_settings)
    assert (report.conditional_writes, report.checksums, report.signed_length,
            report.part_checksums) == (True, True, True, True)
    assert report.direct_uploads and report.warnings == []
    assert report.part_checksum == "CRC32"
    assert report.elapsed_ms > 0
    assert left == []  # the probe cleans up after itself
    assert pending == []  # its multipart upload too


def test_a_missing_bucket_says_to_create_it(seaweedfs):
    message = probe_failure(seaweedfs.settings("no-such-bucket-here"))
    assert "bucket does not exist" in message and "-bucket=no-such-bucket-here" in message


def test_an_unknown_access_key_is_named(seaweedfs, s3_bucket):
    message = probe_failure(seaweedfs.settings(s3_bucket, access_key_id="NOT-A-KEY"))
    assert "does not know access key 'NOT-A-KEY'" in message and "s3.access_key_id" in message


def test_a_wrong_secret_is_named(seaweedfs, s3_bucket):
    message = probe_failure(seaweedfs.settings(s3_bucket, secret_access_key="wrong-secret"))
    assert "secret key does not match" in message and "s3.secret_access_key" in message


def test_read_only_credentials_are_refused_for_writing(seaweedfs, s3_bucket):
    settings = seaweedfs.settings(s3_bucket, access_key_id=READ_ONLY[0],
                                  secret_access_key=READ_ONLY[1])
    message = probe_failure(settings)
    assert "may not write" in message and "grant them Read, Write and List" in message


def test_an_unreachable_store_is_named(seaweedfs, s3_bucket):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    message = probe_failure(seaweedfs.settings(s3_bucket, endpoint=f"http://127.0.0.1:{port}"),
                            retries=0)
    assert "cannot reach it" in message and "Connection refused" in message
    assert "check s3.endpoint" in message
