#!/usr/bin/env python3
"""Cost of the key check on the hot paths: one `authenticate` (every /v1 request) and one
`key_is_live` (every /d/ and /u/ request of a key-bound URL), with the key cache and without
it (the cache emptied before each call, i.e. the database lookup every request made before).

    python bench/key_lookup.py [--calls 20000] [--runs 5]

In-process on a fresh data directory (real SQLite, the box's own reader threads); runs of the
two variants alternate, and the figure is the median over runs of microseconds per call.
Never part of the pytest run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from artifacta_box.config import load_settings
from artifacta_box.context import Box
from artifacta_box.datadir import prepare_data_dir
from artifacta_box.services import tenants


async def measure(box: Box, key: str, key_id: str, tenant_id: int, calls: int,
                  cached: bool) -> tuple[float, float]:
    async def one_auth() -> None:
        if not cached:
            box.keys._entries.clear()  # noqa: SLF001 - the benchmark's "no cache" variant
        await tenants.authenticate(box, key)

    async def one_live() -> None:
        if not cached:
            box.keys._entries.clear()  # noqa: SLF001
        assert await tenants.key_is_live(box, key_id, tenant_id)

    out = []
    for fn in (one_auth, one_live):
        await fn()
        t0 = time.perf_counter()
        for _ in range(calls):
            await fn()
        out.append((time.perf_counter() - t0) / calls * 1e6)
    return out[0], out[1]


async def main(calls: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(overrides={"data_dir": str(Path(tmp) / "box")}, environ={})
        prepare_data_dir(settings, create=True)
        async with Box.opened(settings) as box:
            await tenants.create_tenant(box, "bench")
            created = await tenants.create_key(box, "bench")
            key = created["key"]
            principal = await tenants.authenticate(box, key)
            figures: dict[str, list[float]] = {"cached": [], "uncached": []}
            lives: dict[str, list[float]] = {"cached": [], "uncached": []}
            for run in range(runs):
                order = ("cached", "uncached") if run % 2 == 0 else ("uncached", "cached")
                for variant in order:
                    auth, live = await measure(box, key, principal.key_id, principal.tenant_id,
                                               calls, variant == "cached")
                    figures[variant].append(auth)
                    lives[variant].append(live)
    for name, data in (("authenticate (every /v1 request)", figures),
                       ("key_is_live (/d/, /u/ with k=)", lives)):
        c, u = statistics.median(data["cached"]), statistics.median(data["uncached"])
        print(f"{name:36s} cached {c:7.1f} us  uncached {u:7.1f} us  ratio {u / c:5.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.runs))
