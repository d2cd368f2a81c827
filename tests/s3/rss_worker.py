"""Run in a subprocess by test_memory.py: stream N MiB up to S3 and back down through the
client, reporting peak RSS (VmHWM, reset after warm-up) above the warmed-up baseline."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys

from artifacta_box.storage.s3 import ObjectWriter, S3Client, S3Settings

MiB = 1024 * 1024


def rss_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # resets VmHWM to the current RSS


async def main(settings: S3Settings, mib: int) -> dict:
    block = os.urandom(MiB)
    async with S3Client(settings) as client:
        await client.put_bytes("warm", block)  # threads, connections, buffers in place
        await client.get_bytes("warm")
        baseline = rss_kib("VmRSS")
        reset_peak()
        writer = ObjectWriter(client, "big", 5 * 10**9)
        expected = hashlib.sha256()
        for _ in range(mib):
            await writer.write(block)
            expected.update(block)
        written = await writer.finish()
        put_peak = rss_kib("VmHWM")
        reset_peak()
        digest, size = hashlib.sha256(), 0
        reader = await client.open_read("big")
        async with reader:
            async for chunk in reader:
                digest.update(chunk)
                size += len(chunk)
        get_peak = rss_kib("VmHWM")
        await client.delete("big")
    return {"baseline_mb": baseline / 1024, "put_peak_mb": put_peak / 1024,
            "get_peak_mb": get_peak / 1024, "size": size, "parts": written.parts,
            "sent_sha256": expected.hexdigest(), "stored_sha256": written.sha256,
            "read_sha256": digest.hexdigest()}


if __name__ == "__main__":
    args = json.loads(sys.argv[1])
    print(json.dumps(asyncio.run(main(S3Settings(**args["settings"]), args["mib"]))))
