"""Validation matches the whole value: an anchored pattern checked with `re.match` lets a trailing
newline through (`$` matches before a final `\\n`), which once created a session `run\\n` that no
seal could name. Path parameters are checked after percent-decoding, like every other value."""

from __future__ import annotations

import base64
import json

import pytest

from tests.helpers import assert_error, new_tenant, upload

TRAILING = ["\n", "\r\n", "\x00", " "]


@pytest.fixture(scope="module")
def c(shared_server):
    _, client = new_tenant(shared_server)
    with client:
        yield client


def json_upload(c, **fields):
    body = {"filename": "f.txt", "content": base64.b64encode(b"x").decode(), **fields}
    return c.post("/v1/artifacts", json=body)


@pytest.mark.parametrize("tail", TRAILING)
@pytest.mark.parametrize("field", ["session_id", "agent_id"])
def test_labels_with_a_trailing_character_are_refused(c, field, tail):
    assert_error(json_upload(c, **{field: "run" + tail}), 400, "invalid_request")
    r = c.post("/v1/artifacts", data={field: "run" + tail}, files={"file": ("f.txt", b"x")})
    assert_error(r, 400, "invalid_request")
    assert_error(c.get("/v1/artifacts", params={field: "run" + tail}), 400, "invalid_request")


@pytest.mark.parametrize("tail", TRAILING)
def test_metadata_keys_with_a_trailing_character_are_refused(c, tail):
    assert_error(json_upload(c, metadata={"k" + tail: "v"}), 400, "invalid_request")
    r = c.post("/v1/artifacts", data={"metadata": json.dumps({"k" + tail: "v"})},
               files={"file": ("f.txt", b"x")})
    assert_error(r, 400, "invalid_request")
    assert_error(c.get("/v1/artifacts", params={"metadata.k" + tail: "v"}), 400, "invalid_request")


@pytest.mark.parametrize("tail", TRAILING)
def test_ttls_with_a_trailing_character_are_refused(c, tail):
    assert_error(json_upload(c, ttl="1h" + tail), 400, "invalid_request")
    assert_error(json_upload(c, ttl="never" + tail), 400, "invalid_request")
    art = upload(c)
    assert_error(c.post(f"/v1/artifacts/{art['artifact_id']}/extend-ttl", json={"ttl": "2h" + tail}),
                 400, "invalid_request")


def test_exact_values_still_pass(c):
    r = json_upload(c, session_id="run", agent_id="a.b_c-1", metadata={"k": "v"}, ttl="1h")
    assert r.status_code == 201, r.text
    assert r.json()["session_id"] == "run"


@pytest.mark.parametrize("encoded", ["run%0A", "run%0D%0A", "run%00", "run%20", "run%2Fx", "%2E%2E"])
def test_percent_encoded_path_parameters_are_validated_decoded(c, encoded):
    assert_error(c.post(f"/v1/sessions/{encoded}/seal"), 400, "invalid_request")


def test_percent_encoded_path_parameters_name_the_decoded_value(c):
    art = upload(c, session_id="enc-1")
    # %2D is '-': the seal names session "enc-1", not a label containing '%'.
    r = c.post("/v1/sessions/enc%2D1/seal")
    assert r.status_code == 200, r.text
    assert r.json()["session_id"] == "enc-1"
    # An artifact id with one character percent-encoded is the same artifact.
    encoded_id = art["artifact_id"][:-1] + "%{:02X}".format(ord(art["artifact_id"][-1]))
    r = c.get(f"/v1/artifacts/{encoded_id}")
    assert r.status_code == 200, r.text
    assert r.json()["artifact_id"] == art["artifact_id"]
    assert_error(c.get(f"/v1/artifacts/{art['artifact_id']}%0A"), 404, "artifact_not_found")


def test_every_route_with_a_path_parameter_decodes_it(tmp_path):
    """A new route that forgot `unquote=True` would validate `enc%2D1` instead of `enc-1`."""
    from artifacta_box.app import create_app
    from artifacta_box.config import load_settings

    settings = load_settings(overrides={"data_dir": str(tmp_path / "box")}, environ={})
    app = create_app(settings, name="unquote_check")
    dynamic = [route for route in app.router.routes if "<" in route.path]
    assert dynamic
    assert [route.path for route in dynamic if not route.unquote] == []
