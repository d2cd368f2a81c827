"""Every upload path: `POST /v1/artifacts` (multipart or JSON base64), and the presigned flow
`POST /v1/artifacts/upload-url` → `PUT /u/<artifact_id>?e=&s=` → `POST /v1/artifacts/<id>/complete`.

Bodies are read from the request stream as they arrive (these routes are `stream=True`, so
Sanic never buffers them) and go straight into a blob-store staging file, which hashes and
counts each byte once and enforces the size limit mid-stream. Declared sizes (Content-Length)
are checked before reading. Anything that goes wrong aborts the staging file, so a refused
upload leaves no temp file; the commit itself (`services.uploads.commit_new_artifact`,
`services.presigned`) decides visibility in one transaction.

Reading, listing and deleting artifacts live in `http/artifacts.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

from sanic import Blueprint, Request

from artifacta_box import errors
from artifacta_box.config import Plan
from artifacta_box.context import Box
from artifacta_box.http.common import (
    absolute_url,
    box_of,
    charge_rate,
    ok,
    parse_json_object,
    principal_of,
)
from artifacta_box.http.json_upload import FieldsTooLarge, JsonBodyError, UploadJsonReader
from artifacta_box.http.multipart import (
    FormReader,
    MultipartError,
    PartData,
    boundary_from_content_type,
)
from artifacta_box.http.sanic_seams import (
    abandon_request_body,
    body_bytes_declared_left,
    body_read_is_ready,
)
from artifacta_box.services import presigned, tenants, validation
from artifacta_box.services.uploads import (
    ArtifactSpec,
    check_fields,
    check_session_open,
    commit_new_artifact,
    spec_from_fields,
)
from artifacta_box.services.principal import Principal
from artifacta_box.storage import BlobWriter, LimitExceeded, Received, StorageError

bp = Blueprint("uploads", url_prefix="/v1")
# The signed PUT of presigned uploads: outside /v1, authenticated by its signature alone.
signed_bp = Blueprint("signed_upload")

# Room for the multipart framing and the text fields around the file part.
MULTIPART_OVERHEAD = 4 * 1024 * 1024
MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS = 32
# Room for the other JSON fields (metadata, names) around the base64 content; they are the only
# part of a JSON upload kept in memory.
JSON_OVERHEAD = 256 * 1024

ACCEPTED_ENCODINGS = (
    "Send the upload as multipart/form-data (a part named 'file' plus optional text fields) or "
    "as application/json with the bytes base64-encoded in 'content' "
    "(\"content_encoding\": \"base64\")."
)


# ---------------------------------------------------------------------------- body reading


async def body_chunks(request: Request) -> AsyncIterator[bytes]:
    """The request body as it arrives (Content-Length or chunked). A body that makes no
    progress for `server.body_idle_timeout` is cut off with 408 (the handler's cleanup drops
    what it staged): a stalled client must not hold a staging file and its buffers until
    `response_timeout`, and a presigned PUT needs no key, so one URL could otherwise open any
    number of them."""
    stream = request.stream
    if stream is None:
        return
    idle = box_of(request).settings.body_idle_timeout
    request.ctx.body_reading = True  # from here on, refusing it means draining what is left
    loop = asyncio.get_running_loop()
    try:
        # One deadline for the whole body, armed only while a read waits (the consumer's work
        # between chunks is not the client's stall): a wait_for per chunk made a task and a
        # loop turn per chunk (10 us of the ~330 us a 4 KiB upload costs the loop). A read of
        # bytes already received cannot stall, so it arms nothing: a small body arrives with
        # its headers, and two reschedules per read were 2.5 % of the loop's time per upload.
        async with asyncio.timeout(None) as deadline:
            while True:
                if body_read_is_ready(request):
                    chunk = await stream.read()
                else:
                    deadline.reschedule(loop.time() + idle)
                    chunk = await stream.read()
                    deadline.reschedule(None)
                if chunk is None:
                    return
                if chunk:
                    yield chunk
    except TimeoutError:
        request.ctx.body_stalled = True  # nothing to drain: answer at once
        raise errors.RequestTimeout(
            f"The request body made no progress for {idle:g}s (server.body_idle_timeout); "
            "nothing was stored. Retry the upload."
        ) from None


def declared_length(request: Request) -> int | None:
    """Content-Length when the client declared one (Sanic has checked it is a number)."""
    if "chunked" in request.headers.get("transfer-encoding", "").lower():
        return None
    value = request.headers.get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise errors.InvalidRequest("Content-Length is not a number.") from None


# After refusing an upload mid-stream, what the client is still sending is read and discarded,
# up to these bounds, so that it gets to read the error instead of a connection reset (a
# "lingering close", as nginx does). Past them the connection is closed.
DRAIN_MAX_BYTES = 64 * 1024 * 1024
DRAIN_MAX_SECONDS = 5.0
DRAIN_IDLE_SECONDS = 0.5


async def drain_unread_body(request: Request) -> None:
    """Read what is left of a refused upload's body, within bounds; past them (or when none
    of it was read yet) the answer goes out with `Connection: close` instead, so no refused
    or stalled client keeps a connection and its buffers."""
    started = getattr(request.ctx, "body_reading", False)
    if not started or getattr(request.ctx, "body_stalled", False):
        # Refused before reading any of the body (declared too large, sealed session, bad
        # fields, no memory for it) or stalled: answer at once and close; reading now would
        # send `100 Continue` and invite the body (and its bytes would sit in this
        # connection's buffers while the drain waits).
        abandon_request_body(request)
        return
    left_declared = body_bytes_declared_left(request)
    if left_declared is not None and left_declared > DRAIN_MAX_BYTES:
        abandon_request_body(request)
        return
    stream = request.stream

    async def _drain() -> None:
        left = DRAIN_MAX_BYTES
        while left > 0:
            # A client that has stopped sending (it waits for our answer) gets it promptly.
            chunk = await asyncio.wait_for(stream.read(), DRAIN_IDLE_SECONDS)
            if chunk is None:
                return
            left -= len(chunk)
            # The frame outlives the drain in the timeout's traceback (a reference cycle only
            # the cyclic GC frees): it must not pin the last chunk, up to 256 KB per connection.
            del chunk

    try:
        await asyncio.wait_for(_drain(), DRAIN_MAX_SECONDS)
    except Exception:  # noqa: BLE001 - timed out, over budget, malformed or gone: close
        abandon_request_body(request)


async def refuse_after_draining(request: Request, handler, *args: Any) -> Any:
    """Run an upload handler; if it refuses the upload, drain the unread body before answering."""
    try:
        return await handler(request, *args)
    except (errors.ApiError, StorageError):
        await drain_unread_body(request)
        raise


async def abort_writer(writer: BlobWriter | None) -> None:
    """Drop an upload in progress; shielded so a client disconnect cannot interrupt the
    cleanup."""
    if writer is not None:
        await asyncio.shield(writer.abort())


# What one streamed upload body holds in memory besides its blob writer's buffers
# (box.blobs.writer_memory): the protocol's receive buffer and the multipart or JSON reader's.
READER_MEMORY = 1024 * 1024
BODY_MEMORY_RETRY_AFTER = 1


@contextmanager
def holding_body_memory(box: Box, tenant_id: int, nbytes: int) -> Iterator[None]:
    """Hold `nbytes` of the in-flight upload budget (server.upload_memory) while the body is
    read; 503 `unavailable` with Retry-After when the server's or the tenant's share is full."""
    refused = box.upload_memory.try_hold(tenant_id, nbytes)
    if refused is not None:
        which = ("the server's (server.upload_memory)" if refused == "server"
                 else "this tenant's share (server.upload_memory_per_tenant)")
        raise errors.Unavailable(
            f"Too many uploads in progress: the memory for upload bodies in flight, "
            f"{which}, is taken; retry in {BODY_MEMORY_RETRY_AFTER}s.",
            headers={"Retry-After": str(BODY_MEMORY_RETRY_AFTER)},
        )
    try:
        yield
    finally:
        box.upload_memory.release(tenant_id, nbytes)


def streamed_body_memory(box: Box, declared: int | None, limit: int) -> int:
    """What one upload body of at most `limit` bytes (`declared`, when the request says) holds
    in memory while it streams: charged to the in-flight upload budget."""
    held = READER_MEMORY + box.blobs.writer_memory(limit)
    return held if declared is None else min(declared, held)


def _mb(n: int) -> str:
    return f"{n / 10**6:,.0f} MB" if n >= 10**6 else f"{n:,} bytes"


def too_large(limit: int, what: str, hint: str = "") -> errors.FileTooLarge:
    return errors.FileTooLarge(f"{what} is larger than the limit of {_mb(limit)} ({limit:,} bytes)"
                               f" for this upload path{hint}.")


# ---------------------------------------------------------------------------- POST /v1/artifacts


@bp.post("/artifacts", stream=True)
async def upload(request: Request):
    return await refuse_after_draining(request, _upload)


async def _upload(request: Request):
    box = box_of(request)
    principal = principal_of(request)
    idem_key = validation.idempotency_key(request.headers.get("idempotency-key"))
    content_type = request.headers.get("content-type", "")
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime == "multipart/form-data":
        staged, spec = await receive_multipart(request, box, principal, content_type)
    elif mime == "application/json":
        staged, spec = await receive_json(request, box, principal)
    else:
        shown = f"Content-Type {mime!r}" if mime else "a request without Content-Type"
        raise errors.InvalidRequest(f"Unsupported upload encoding: {shown}. {ACCEPTED_ENCODINGS}")
    record, replayed = await commit_new_artifact(box, principal, staged, spec, idem_key)
    if replayed:
        return ok(record, 200, headers={"Idempotent-Replayed": "true"})
    return ok(record, 201)


async def receive_multipart(
    request: Request, box: Box, principal: Principal, content_type: str
) -> tuple[Received, ArtifactSpec]:
    """Stream the `file` part into a staging file; buffer only the small text fields."""
    plan = principal.plan
    try:
        boundary = boundary_from_content_type(content_type)
    except MultipartError as exc:
        raise errors.InvalidRequest(f"Malformed multipart upload: {exc}") from None
    limit = plan.max_multipart_bytes
    body_cap = limit + MULTIPART_OVERHEAD
    hint = "; use a presigned upload (POST /v1/artifacts/upload-url) for larger files" \
        if plan.presigned_uploads else ""
    declared = declared_length(request)
    if declared is not None and declared > body_cap:
        raise too_large(limit, f"The upload ({declared:,} bytes declared)", hint)
    box.blobs.check_space(declared or 0)
    reader = FormReader(boundary, max_field_bytes=MAX_FIELD_BYTES, max_fields=MAX_FIELDS)
    staging: BlobWriter | None = None
    received = 0
    try:
        with holding_body_memory(box, principal.tenant_id, streamed_body_memory(box, declared, limit)):
            async for chunk in body_chunks(request):
                received += len(chunk)
                if received > body_cap:
                    raise too_large(limit, "The upload", hint)
                for event in reader.feed(chunk):
                    if type(event) is PartData:
                        await staging.write(event.data)  # type: ignore[union-attr]
                    else:  # PartStart of the file: what arrived so far must already be valid
                        check_fields(plan, reader.fields)
                        await check_session_open(box, principal.tenant_id,
                                                 reader.fields.get("session_id") or None)
                        staging = box.blobs.writer(principal.tenant_id, limit)
            reader.close()
            assert staging is not None  # close() raises without a file part
            staged = await staging.finish()
    except BaseException as exc:
        await abort_writer(staging)
        if isinstance(exc, LimitExceeded):
            raise too_large(limit, "The file", hint) from None
        if isinstance(exc, MultipartError):
            raise errors.InvalidRequest(f"Malformed multipart upload: {exc}") from None
        raise
    part = reader.file_part
    try:
        spec = spec_from_fields(plan, reader.fields, fallback_filename=part.filename,
                                fallback_content_type=part.content_type)
    except BaseException:
        await box.blobs.discard(staged)
        raise
    return staged, spec


async def receive_json(request: Request, box: Box, principal: Principal
                       ) -> tuple[Received, ArtifactSpec]:
    """A JSON body with the bytes base64-encoded in `content`, decoded as it streams
    (http/json_upload.py) straight into a staging file; only the other fields are kept.

    Errors come in the order they did when the body was parsed whole: malformed JSON, then
    content_encoding, a missing content, the other fields, and the content's own problems
    (length, decoded size, padding inside, sealed session, characters outside base64)."""
    plan = principal.plan
    cap = plan.max_json_bytes
    max_body = (cap + 2) // 3 * 4 + JSON_OVERHEAD
    hint = "; use a multipart upload for larger files"
    declared = declared_length(request)
    if declared is not None and declared > max_body:
        raise too_large(cap, f"The JSON upload ({declared:,} bytes declared)", hint)
    box.blobs.check_space(declared or 0)
    reader = UploadJsonReader(max_fields_chars=JSON_OVERHEAD)
    staging: BlobWriter | None = None
    over_cap = False
    received = 0

    async def store(data: bytes) -> None:
        nonlocal staging, over_cap
        if staging is None and not over_cap:
            staging = box.blobs.writer(principal.tenant_id, cap)
        if data and not over_cap:
            try:
                await staging.write(data)  # type: ignore[union-attr]
            except LimitExceeded:  # the writer dropped what it had; the size is told below
                staging, over_cap = None, True

    try:
        with holding_body_memory(box, principal.tenant_id, streamed_body_memory(box, declared, cap)):
            async for chunk in body_chunks(request):
                received += len(chunk)
                if received > max_body:
                    raise too_large(cap, "The JSON upload", hint)
                data = reader.feed(chunk)
                if reader.content is not None:
                    await store(data)
            data = reader.finish()
            if reader.content is not None:
                await store(data)
        staged, spec = await _check_json_upload(box, principal, reader, staging, over_cap)
    except BaseException as exc:
        await abort_writer(staging)
        if isinstance(exc, JsonBodyError):
            raise errors.InvalidRequest(str(exc)) from None
        if isinstance(exc, FieldsTooLarge):  # no valid set of fields comes near it
            raise errors.InvalidRequest(
                f"The JSON upload's members other than content are larger than "
                f"{JSON_OVERHEAD // 1024} KiB: send only the upload fields (filename, "
                f"content_type, session_id, agent_id, metadata, ttl) beside content."
            ) from None
        raise
    return staged, spec


async def _check_json_upload(box: Box, principal: Principal, reader: UploadJsonReader,
                             staging: BlobWriter | None, over_cap: bool
                             ) -> tuple[Received, ArtifactSpec]:
    plan = principal.plan
    cap = plan.max_json_bytes
    body = reader.fields
    assert body is not None
    encoding = body.get("content_encoding", "base64")
    if encoding != "base64":
        raise errors.InvalidRequest(
            f"content_encoding {str(encoding)[:40]!r} is not supported: the only encoding is 'base64'."
        )
    content = reader.content
    if content is None:
        raise errors.InvalidRequest("content is required: the file's bytes, base64-encoded.")
    spec = spec_from_fields(plan, body)
    if content.chars % 4:
        raise errors.InvalidRequest(
            "content is not valid base64: its length must be a multiple of 4 (pad with '=')."
        )
    if over_cap or content.size > cap:
        raise too_large(cap, f"The decoded content ({content.size:,} bytes)",
                        "; use a multipart upload for larger files")
    if content.padding_inside:
        raise errors.InvalidRequest("content is not valid base64: '=' padding inside the data.")
    await check_session_open(box, principal.tenant_id, spec.session_id)
    if content.invalid:
        raise errors.InvalidRequest(
            "content is not valid base64 (standard alphabet A-Z a-z 0-9 + /, '=' padding, "
            "no whitespace)."
        )
    assert staging is not None  # content was present and within the cap
    return await staging.finish(), spec


# ---------------------------------------------------------------------------- presigned uploads


def _size_bytes(body: dict[str, Any], plan: Plan) -> int:
    size = body.get("size_bytes")
    if not isinstance(size, int) or isinstance(size, bool):
        raise errors.InvalidRequest(
            "size_bytes is required: the exact size of the file in bytes, as an integer."
        )
    if size < 1:
        raise errors.InvalidRequest(f"size_bytes must be at least 1 (got {size}).")
    if size > plan.max_presigned_bytes:
        raise too_large(plan.max_presigned_bytes, f"size_bytes {size:,}")
    return size


@bp.post("/artifacts/upload-url")
async def upload_url(request: Request):
    box = box_of(request)
    principal = principal_of(request)
    plan = principal.plan
    if not plan.presigned_uploads:
        raise errors.QuotaExceeded(
            f"Presigned uploads are not available on plan {plan.name!r}; upload with "
            f"POST /v1/artifacts (up to {_mb(plan.max_multipart_bytes)}) or ask for another plan.",
        )
    body = parse_json_object(request.body)
    check_fields(plan, body)
    size = _size_bytes(body, plan)
    spec = spec_from_fields(plan, body)
    reservation = await presigned.reserve_upload(box, principal, spec, size)
    record = reservation.record
    headers = {"Content-Type": spec.content_type}
    if reservation.upload_location is not None:
        # Straight to the store: Content-Length and If-None-Match are signed, so another size
        # is refused and the bytes cannot be replaced once `complete` hashed them. The client
        # sends Content-Length itself (the size it reserved); the other signed headers must be
        # sent as given. The store cannot know our keys, so this URL outlives a revoked key
        # for its short life, but `complete` needs a live key: bytes sent after a revoke are
        # never committed (the object is removed by gc as an abandoned upload).
        signed = box.blobs.presign_put(reservation.upload_location, reservation.expires_in,
                                       size=size, content_type=spec.content_type)
        url = signed.url
        headers = {k: v for k, v in signed.headers.items() if k.lower() != "content-length"}
    else:
        # Bound to the minting key too: the URL dies with it (services.downloads.require_live_key).
        signature = box.signer.sign("PUT", record["artifact_id"], principal.tenant_id,
                                    reservation.expires, extra=f"{size}|{principal.key_id}")
        url = absolute_url(request, f"/u/{record['artifact_id']}?e={reservation.expires}"
                                    f"&k={principal.key_id}&s={signature}")
    return ok({
        "artifact_id": record["artifact_id"],
        "status": "pending",
        "upload_url": url,
        "upload_method": "PUT",
        "upload_headers": headers,
        "upload_expires_at": reservation.upload_expires_at,
        "expires_in": reservation.expires_in,
        "filename": spec.filename,
        "content_type": spec.content_type,
        "size_bytes": size,
    })


@signed_bp.put("/u/<artifact_id:str>", unquote=True, stream=True)
async def put_upload(request: Request, artifact_id: str):
    return await refuse_after_draining(request, _put_upload, artifact_id)


async def _put_upload(request: Request, artifact_id: str):
    box = box_of(request)
    target = await presigned.load_upload_target(box, artifact_id)
    if target is None:
        raise errors.InvalidSignature(
            "The upload URL is invalid: it was altered or its reservation no longer exists."
        )
    key_id = request.args.get("k")  # absent from URLs minted before keys were bound
    extra = str(target.size_bytes) if key_id is None else f"{target.size_bytes}|{key_id}"
    box.signer.verify("PUT", artifact_id, target.tenant_id, request.args.get("e"),
                      request.args.get("s"), now=box.clock.time(), extra=extra)
    if key_id is not None:
        await tenants.require_live_key(box, key_id, target.tenant_id)
    plan = box.settings.plan(target.plan_name)
    charge_rate(request, target.tenant_id, plan.rate_sustained, plan.rate_burst)
    presigned.check_accepts_bytes(target.state, artifact_id, tenant_suspended=target.tenant_suspended)
    size = target.size_bytes
    mismatch = (f"The upload must be exactly {size:,} bytes (the size_bytes reserved for "
                f"{artifact_id})")
    declared = declared_length(request)
    if declared is not None and declared != size:
        raise errors.InvalidRequest(f"{mismatch}; the request declares {declared:,}.")
    box.blobs.check_space(size)
    # Never inline: a pending upload's bytes have no blob row until `complete`, and the rules
    # that keep them (gc, check, backup) follow files and objects (README, "Where the bytes
    # live"); the two-request presigned flow is not the small-upload fast path anyway.
    staging = box.blobs.writer(target.tenant_id, size, inline=False)
    try:
        with holding_body_memory(box, target.tenant_id, streamed_body_memory(box, size, size)):
            async for chunk in body_chunks(request):
                await staging.write(chunk)
            staged = await staging.finish()
    except BaseException as exc:
        await abort_writer(staging)
        if isinstance(exc, LimitExceeded):
            raise errors.InvalidRequest(f"{mismatch}; more bytes arrived.") from None
        raise
    if staged.size != size:
        await box.blobs.discard(staged)
        raise errors.InvalidRequest(f"{mismatch}; only {staged.size:,} arrived.")
    await presigned.store_upload(box, target, staged)
    return ok(
        {"artifact_id": artifact_id, "status": "pending", "size_bytes": staged.size,
         "sha256": staged.sha256},
        headers={"ETag": f'"{staged.sha256}"'},
    )


@bp.post("/artifacts/<artifact_id:str>/complete", unquote=True)
async def complete(request: Request, artifact_id: str):
    box = box_of(request)
    return ok(await presigned.complete_upload(box, principal_of(request), artifact_id))
