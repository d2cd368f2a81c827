"""Tenants for the web console's tests (tests/api/test_console.py, tests/browser/): made
in-process through `Box` + `services.tenants` on a running server's data directory (cheap, and
safe beside the server, as the admin CLI is), with artifacts uploaded through `/v1`."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from artifacta_box.config import load_settings
from artifacta_box.context import Box
from artifacta_box.services import tenants
from tests.helpers import BoxServer

CSRF_RE = re.compile(r'name="csrf" value="([0-9a-f]+)"')


@dataclass
class Tenant:
    name: str
    key: str
    key_id: str
    server: BoxServer
    uploaded: list[dict[str, Any]] = field(default_factory=list)

    def api(self) -> httpx.Client:
        return self.server.client(self.key)

    def upload(self, sample: Any, **fields: Any) -> dict[str, Any]:
        """Upload `sample` (filename, content_type, data) through /v1 as multipart, as the
        official clients do; `fields` are the form's text fields (metadata as a dict)."""
        form = {k: (json.dumps(v) if k == "metadata" else str(v)) for k, v in fields.items()}
        with self.api() as api:
            resp = api.post("/v1/artifacts", data=form,
                            files={"file": (sample.filename, sample.data, sample.content_type)})
        assert resp.status_code == 201, resp.text
        record = resp.json()
        self.uploaded.append(record)
        return record


def make_tenant(srv: BoxServer, plan: str | None = None, name: str | None = None) -> Tenant:
    """A new tenant and key on `srv`'s data directory (with its config file)."""
    name = name or f"t-{uuid.uuid4().hex[:8]}"
    settings = load_settings(srv.config_path, overrides={"data_dir": str(srv.data_dir)}, environ={})

    async def make() -> dict[str, Any]:
        async with Box.opened(settings) as box:
            await tenants.create_tenant(box, name, plan, actor="test")
            return await tenants.create_key(box, name, "console-test", actor="test")

    # Callers may run inside an event loop (Playwright's sync API): the Box gets its own.
    with ThreadPoolExecutor(1) as pool:
        created = pool.submit(asyncio.run, make()).result()
    return Tenant(name, created["key"], created["key_id"], srv)


def csrf_of(html: str) -> str:
    m = CSRF_RE.search(html)
    assert m, "no CSRF token on the page"
    return m.group(1)
