"""The start-up probe of an S3 store: is it usable, and may clients upload to it directly?

`probe(client)` runs, in order (a few small requests, ~20-40 ms on a local SeaweedFS):

1. list one key under the prefix     reachable, bucket exists, credentials valid
2. PUT a probe object with its checksum, then GET it back      writable and readable
3. PUT it again with `If-None-Match: *`     must be 412: conditional writes honoured
4. PUT another with a wrong `x-amz-checksum-sha256`     must be 400 BadDigest
5. a multipart upload part (UNSIGNED-PAYLOAD) with a wrong `x-amz-checksum-crc32`   must be 400
6. PUT through a presigned URL whose signed Content-Length differs from the body   must be 403
7. DELETE the probe objects (and abort the multipart upload)

A failure of 1-2 means the box cannot use the store at all: `ProbeFailed`, whose message is
one line naming the store, what failed and what to do. Failures of 3, 4 and 6 are not fatal:
the report says so (one line each) and `direct_uploads` is False, so the box keeps receiving
presigned uploads itself instead of handing out S3 URLs (whose size and once-only guarantees
rest on exactly those behaviours); so does `s3.direct_uploads = false` (the same path, chosen
by the operator). A failure of 5 is not fatal either: `part_checksum` is then
SHA256, so the box signs each part's SHA-256 (the store may check that, as SigV4 requires)
instead of trusting a CRC32 the store does not check.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import secrets
import time
import zlib
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from artifacta_box.storage.s3.client import (
    CRC32,
    S3AccessDenied,
    S3BadDigest,
    SHA256,
    S3Client,
    S3Error,
    S3NoSuchBucket,
    S3PreconditionFailed,
    S3Unavailable,
    b64_sha256,
)
from artifacta_box.storage.s3.sigv4 import UNSIGNED_PAYLOAD

PROBE_PREFIX = "probe/"


class ProbeFailed(Exception):
    """The store cannot hold the box's blobs; the message is one line saying why."""


@dataclass
class ProbeReport:
    conditional_writes: bool = False   # If-None-Match: * -> 412
    checksums: bool = False            # wrong x-amz-checksum-sha256 -> 400
    signed_length: bool = False        # presigned PUT of another size -> 403
    part_checksums: bool = False       # wrong x-amz-checksum-crc32 on an UNSIGNED part -> 400
    direct_allowed: bool = True        # s3.direct_uploads
    warnings: list[str] = field(default_factory=list)
    elapsed_ms: float = 0.0

    @property
    def direct_uploads(self) -> bool:
        """May `upload-url` hand out presigned S3 PUT URLs?"""
        return (self.direct_allowed and self.conditional_writes and self.checksums
                and self.signed_length)

    @property
    def part_checksum(self) -> str:
        """What protects the parts of the box's multipart uploads (client.upload_part_sync)."""
        return CRC32 if self.part_checksums else SHA256


async def probe(client: S3Client) -> ProbeReport:
    """Check the store (see the module docstring). Raises ProbeFailed."""
    began = time.perf_counter()
    where = f"S3 store {client.describe()}"
    report = ProbeReport()
    token = secrets.token_hex(8)
    key, bad_key, size_key = (f"{PROBE_PREFIX}{token}", f"{PROBE_PREFIX}{token}-checksum",
                              f"{PROBE_PREFIX}{token}-length")
    body = f"artifacta-box probe {token}\n".encode()
    written: list[str] = []
    try:
        await _first_page(client)
        try:
            written += [key, bad_key, size_key]  # (a failed PUT may still have stored it)
            await client.put_bytes(key, body)
            back = await client.get_bytes(key)
        except S3AccessDenied as exc:
            raise ProbeFailed(f"{where}: the credentials may not write and read objects there "
                              f"({exc.code}); grant them Read, Write and List on the bucket") from None
        if back != body:
            raise ProbeFailed(f"{where}: a probe object read back differs from what was "
                              "written; the store is not usable")
        try:
            await client.put_bytes(key, body, if_none_match=True)
            report.warnings.append(
                f"{where}: ignores If-None-Match: * (a second write of an existing key "
                "succeeded); presigned uploads go through the box")
        except S3PreconditionFailed:
            report.conditional_writes = True
        report.checksums = await _refuses_bad_checksum(client, bad_key, body)
        if not report.checksums:
            report.warnings.append(
                f"{where}: accepted bytes whose x-amz-checksum-sha256 does not match; "
                "presigned uploads go through the box")
        report.part_checksums = await client.run_blocking(_part_refuses_bad_crc32, client,
                                                          f"{PROBE_PREFIX}{token}-part", body)
        if not report.part_checksums:
            report.warnings.append(
                f"{where}: accepted a multipart part whose x-amz-checksum-crc32 does not match; "
                "each part's SHA-256 is signed instead (uploads cost more CPU)")
        report.signed_length = await client.run_blocking(_refuses_other_length, client, size_key)
        if not report.signed_length:
            report.warnings.append(
                f"{where}: accepted a presigned PUT of another size than the signed "
                "Content-Length; presigned uploads go through the box")
        if not client.settings.direct_uploads:
            report.direct_allowed = False
            report.warnings.append(
                f"{where}: s3.direct_uploads = false; presigned uploads go through the box")
    except ProbeFailed:
        raise
    except S3Error as exc:
        raise ProbeFailed(explain(where, client, exc)) from None
    finally:
        for k in written:
            try:
                await client.delete(k)
            except S3Error:
                pass  # gc's orphan sweep of probe/ objects, or the operator, removes it
    report.elapsed_ms = (time.perf_counter() - began) * 1000
    return report


async def _first_page(client: S3Client) -> None:
    async for _ in client.list_objects(PROBE_PREFIX):
        break


async def _refuses_bad_checksum(client: S3Client, key: str, body: bytes) -> bool:
    wrong = b64_sha256(hashlib.sha256(body + b"~").hexdigest())

    def call() -> None:
        client._request("PUT", key, headers={"x-amz-checksum-sha256": wrong}, body=body,
                        retry=False, ok=(200,))

    try:
        await client.run_blocking(call)
    except S3BadDigest:
        return True
    except S3Error as exc:
        return exc.status == 400  # some stores name the code differently
    return False


def _part_refuses_bad_crc32(client: S3Client, key: str, body: bytes) -> bool:
    """Upload a part of `body` with the CRC32 of other bytes, as the writer sends parts but
    wrong (in a worker thread); the upload is aborted whatever happens."""
    upload_id = client.create_multipart_sync(key, checksum=CRC32)
    wrong = base64.b64encode(zlib.crc32(body + b"~").to_bytes(4, "big")).decode("ascii")
    try:
        client._request("PUT", key, query={"partNumber": "1", "uploadId": upload_id},
                        headers={"x-amz-checksum-crc32": wrong}, body=body,
                        payload_sha256=UNSIGNED_PAYLOAD, retry=False, ok=(200,))
    except S3BadDigest:
        return True
    except S3Error as exc:
        return exc.status == 400
    finally:
        try:
            client.abort_multipart_sync(key, upload_id)
        except S3Error:
            pass  # gc aborts probe uploads a day old (S3BlobStore.remove_incomplete)
    return False


def _refuses_other_length(client: S3Client, key: str) -> bool:
    """Send 2 bytes to a PUT URL presigned for 1 (in a worker thread). Signed on the box's
    own endpoint, as `presign_put` signs on the public one."""
    headers = {"Content-Length": "1", "If-None-Match": "*"}
    parts = urlsplit(client.signer.presign_url("PUT", client.settings.endpoint,
                                               client.object_path(key), 60, headers=headers))
    conn = client.new_connection()
    try:
        conn.request("PUT", f"{parts.path}?{parts.query}", body=b"ab",
                     headers={**headers, "Content-Length": "2"})
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()
    return status == 403


def explain(where: str, client: S3Client, exc: S3Error) -> str:
    """One line: what is wrong with the store and what to do about it."""
    s = client.settings
    if isinstance(exc, S3Unavailable):
        return (f"{where}: cannot reach it ({exc.reason}); check s3.endpoint and that the store "
                "is running")
    if isinstance(exc, S3NoSuchBucket):
        return (f"{where}: the bucket does not exist; create it (SeaweedFS: weed mini/server "
                f"-s3 ... -bucket={s.bucket}; AWS: aws s3 mb s3://{s.bucket})")
    if exc.code == "InvalidAccessKeyId":
        return (f"{where}: the store does not know access key {s.access_key_id!r}; check "
                "s3.access_key_id (or AWS_ACCESS_KEY_ID)")
    if exc.code == "SignatureDoesNotMatch":
        return (f"{where}: the secret key does not match access key {s.access_key_id!r}; check "
                "s3.secret_access_key (or AWS_SECRET_ACCESS_KEY) and s3.region")
    if exc.code == "RequestTimeTooSkewed":
        return f"{where}: the clocks of the box and the store differ too much; synchronise them (NTP)"
    if isinstance(exc, S3AccessDenied):
        return (f"{where}: access denied ({exc.code or exc.status}); grant the credentials "
                "Read, Write and List on the bucket")
    return f"{where}: {exc}"
