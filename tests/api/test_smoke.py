"""The box stands up: health, whoami through the official CLI."""

import json

from tests.helpers import artifacta_cli


def test_health_answers_ok_with_version(server):
    import httpx

    r = httpx.get(server.url + "/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["version"]


def test_official_cli_whoami_json(server):
    res = artifacta_cli(server, "whoami", "--json")
    assert res.returncode == 0, res.stderr
    body = json.loads(res.stdout)
    assert body["tenant_name"] == "default"
    assert body["api_key_last_4"] == server.key[-4:]
