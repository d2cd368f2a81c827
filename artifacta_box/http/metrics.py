"""GET /metrics: Prometheus text format; bearer token from `[metrics] token` when configured."""

from __future__ import annotations

import asyncio
import hmac

from sanic import Blueprint, Request
from sanic.response import text

from artifacta_box import errors
from artifacta_box.http.common import box_of
from artifacta_box.metrics import Metrics
from artifacta_box.services.stats import store_stats

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
    store = await store_stats(box)
    mine = metrics_of(request)
    share = request.app.ctx.metrics_share
    if share is not None:  # several workers: the whole server's counters
        others = await asyncio.to_thread(share.others)
        mine = Metrics.merged([*others, mine.snapshot()])
    body = mine.render(store=store)
    return text(body, content_type=CONTENT_TYPE)
