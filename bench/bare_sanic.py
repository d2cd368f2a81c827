"""The bare-Sanic reference server for the benchmarks (bench-only; never part of the box).

What "as fast as Sanic can go" looks like for the box's byte paths, with none of the API around
them (no auth, no database, no rate limiting):

- `PUT|POST /upload/<name>` (stream=True): the raw body is written to `<dir>/<name>` while being
  hashed with SHA-256, in 1 MiB slices handed to a worker thread (hashlib and os.write release
  the GIL, so the loop keeps receiving while the previous slice is hashed and written), then
  fsynced. Answers `{"sha256", "size"}`. This is the durable-ingest floor the box's upload
  paths are compared with.
- `GET /files/<name>`: `sanic.response.file_stream` of `<dir>/<name>` in 1 MiB chunks (the
  bare-Sanic download reference; nginx is the sendfile reference).
- `GET /health`.

Run: python bench/bare_sanic.py --host 127.0.0.1 --port 8901 --dir /tmp/bare
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import re

from sanic import Request, Sanic
from sanic.response import file_stream, json

CHUNK = 1024 * 1024
NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def create_app(data_dir: str) -> Sanic:
    app = Sanic("bare_sanic_reference")
    app.config.TOUCHUP = True  # the default, as in the box run from source
    app.config.ACCESS_LOG = False
    app.config.MOTD = False
    app.config.REQUEST_MAX_SIZE = 100 * 2**30  # streaming route: no framework cap
    app.config.RESPONSE_TIMEOUT = 3600
    app.config.REQUEST_TIMEOUT = 3600

    def target(name: str) -> str:
        if not NAME_RE.match(name) or name.startswith("."):
            raise ValueError("bad name")
        return os.path.join(data_dir, name)

    @app.get("/health")
    async def health(request: Request):
        return json({"status": "ok"})

    @app.route("/upload/<name>", methods=["PUT", "POST"], stream=True)
    async def upload(request: Request, name: str):
        path = target(name)
        loop = asyncio.get_running_loop()
        h = hashlib.sha256()
        fd = os.open(path + ".part", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)

        def flush(data: bytes | bytearray) -> None:
            h.update(data)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]

        size = 0
        buf = bytearray()
        pending: asyncio.Future | None = None
        try:
            while True:
                chunk = await request.stream.read()
                if chunk is None:
                    break
                size += len(chunk)
                buf += chunk
                if len(buf) >= CHUNK:
                    data, buf = buf, bytearray()  # hand the buffer over, no copy
                    if pending is not None:
                        await pending
                    pending = loop.run_in_executor(None, flush, data)
            if pending is not None:
                await pending

            def finish(data: bytes | bytearray) -> None:
                if data:
                    flush(data)
                os.fsync(fd)

            await loop.run_in_executor(None, finish, buf)
        finally:
            os.close(fd)
        os.replace(path + ".part", path)
        return json({"sha256": h.hexdigest(), "size": size})

    @app.get("/files/<name>")
    async def download(request: Request, name: str):
        path = target(name)
        return await file_stream(path, chunk_size=CHUNK, mime_type="application/octet-stream")

    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8901)
    ap.add_argument("--dir", required=True)
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    app = create_app(os.path.abspath(args.dir))
    app.run(host=args.host, port=args.port, single_process=True, access_log=False, motd=False)


if __name__ == "__main__":
    main()
