"""GET /metrics: Prometheus text format; bearer token from `[metrics] token` when configured.

A scrape never reads the store: the store gauges come from `StoreGauges` (recomputed in the
background at most every `metrics.gauge_interval`), the counters from memory (and, with
--workers, the other workers' published files). Scrapes share one bucket for the whole server
(`metrics.scrape_rate` / `scrape_burst`): past it, 429 with Retry-After, so a crowd of
scrapers cannot take the CPU the API needs.
"""

from __future__ import annotations

import asyncio
import hmac

from sanic import Blueprint, Request
from sanic.response import text

from artifacta_box import errors
from artifacta_box.http.common import box_of
from artifacta_box.metrics import Metrics
from artifacta_box.security.ratelimit import METRICS_BUCKET

bp = Blueprint("metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def metrics_of(request: Request) -> Metrics:
    return request.app.ctx.metrics


def _authorised(request: Request, token: str) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value:
        return False
    return hmac.compare_digest(value.strip().encode(), token.encode())


@bp.get("/metrics")
async def metrics(request: Request):
    box = box_of(request)
    token = box.settings.metrics_token
    if token and not _authorised(request, token):
        raise errors.Unauthorized(
            "GET /metrics needs 'Authorization: Bearer <token>' with the [metrics] token "
            "from the box's configuration."
        )
    decision = box.rate.take(METRICS_BUCKET, box.settings.metrics_scrape_rate,
                             box.settings.metrics_scrape_burst)
    if not decision.allowed:
        raise errors.RateLimited(
            f"/metrics is scraped more often than metrics.scrape_rate allows; retry in "
            f"{decision.retry_after}s.",
            headers={"Retry-After": str(decision.retry_after)},
            extra={"retry_after_seconds": decision.retry_after, "retry_after": decision.retry_after},
        )
    store = dict(await request.app.ctx.store_gauges.read())
    reserve = box.reserve
    try:
        store["disk_free_bytes"] = reserve.free_bytes()
    except OSError:
        pass  # the gauge is left out; /health says why
    store["disk_reserve_bytes"] = reserve.min_free_bytes
    store["upload_memory_bytes"] = box.upload_memory.used
    store["upload_memory_limit_bytes"] = box.upload_memory.limit
    mine = metrics_of(request)
    share = request.app.ctx.metrics_share
    if share is not None:  # several workers: the whole server's counters
        others = await asyncio.to_thread(share.others)
        mine = Metrics.merged([*others, mine.snapshot()])
    body = mine.render(store=store)
    return text(body, content_type=CONTENT_TYPE)
