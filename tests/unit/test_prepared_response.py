"""A PreparedResponse goes out byte for byte as Sanic's own http1_response_header would send the
same response built as an HTTPResponse (http.sanic_seams item 10), and leaves the connection's
framing state (stage, what a later send does, the size logged) the same."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from sanic.http import Http, Stage
from sanic.response import HTTPResponse

from artifacta_box.http.sanic_seams import (
    PreparedResponse,
    _HeadersTimedHttp,
    default_header,
    header_of,
    set_header,
)

BODY = b'{"artifact_id":"art_1","size":4}'
DOWNLOAD = {
    "Content-Type": "application/octet-stream", "Accept-Ranges": "bytes", "ETag": '"ab12"',
    "Content-Disposition": "attachment; filename=\"a.bin\"; filename*=UTF-8''a.bin",
    "X-Content-Type-Options": "nosniff", "Cache-Control": "private", "Content-Length": "4",
}
RATE = {"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "9", "X-RateLimit-Reset": "17"}

CASES = {
    "json 201": dict(status=201, body=BODY, headers=None, content_type="application/json"),
    "json with headers": dict(status=200, body=BODY, headers={"Idempotent-Replayed": "true"},
                              content_type="application/json"),
    "download": dict(status=200, body=b"abcd", headers=DOWNLOAD),
    "range": dict(status=206, body=b"bc", headers={**DOWNLOAD, "Content-Length": "2",
                                                   "Content-Range": "bytes 1-2/4"}),
    "head": dict(status=200, body=b"", headers=DOWNLOAD, head_only=True),
    "head without length": dict(status=200, body=b"abcd", headers={"ETag": '"x"'},
                                content_type="text/plain", head_only=True),
    "not modified": dict(status=304, body=b"", headers={"ETag": '"ab12"', "Cache-Control": "private"}),
    "no content type": dict(status=200, body=b"x", headers={"ETag": '"x"'}),
    "closing": dict(status=200, body=b"abcd", headers=DOWNLOAD, keep_alive=False),
    "injection stripped": dict(status=200, body=b"x", content_type="text/plain",
                               headers={"X-Name": "a\r\nSet-Cookie: evil=1", "X-Nul": "b\x00c"}),
    "non-ascii value": dict(status=200, body=b"x", content_type="text/plain",
                            headers={"X-Name": "caf\u00e9 \udcff"}),
    "stored length replaced": dict(status=200, body=b"abc", content_type="text/plain",
                                   headers={"content-length": "99"}),
}


class _Protocol:
    """What Http reads of its protocol to answer; `sent` collects every transport write."""

    def __init__(self) -> None:
        self.recv_buffer = bytearray()
        self.app = SimpleNamespace(dispatch=None)
        self.request_max_size = 1 << 20
        self.access_log = False
        self.sent: list[bytes] = []

    async def send(self, data: bytes) -> None:
        self.sent.append(bytes(data))

    async def receive_more(self) -> None:  # never called: nothing is read
        raise AssertionError


def _answer(http_class: type[Http], response: HTTPResponse, *, head_only: bool = False,
            keep_alive: bool = True) -> tuple[list[bytes], Stage, str | None, int]:
    protocol = _Protocol()
    http = http_class(protocol)
    http.init_for_request()
    http.response_func = http.http1_response_header  # as Http.http1 sets it per request
    http.stage = Stage.HANDLER
    http.head_only = head_only
    http.keep_alive = keep_alive
    http.request = SimpleNamespace(path="/x")
    http.respond(response)
    asyncio.run(response.send(end_stream=True))
    func = http.response_func
    return protocol.sent, http.stage, getattr(func, "__name__", None), http.response_size


def _middleware(response: HTTPResponse, *, prepared: bool) -> None:
    """What app.finish_response does to every response: request id set, rate headers defaulted."""
    if prepared:
        set_header(response, "X-Request-Id", "req_1")
        for k, v in RATE.items():
            default_header(response, k, v)
    else:
        response.headers["X-Request-Id"] = "req_1"
        for k, v in RATE.items():
            response.headers.setdefault(k, v)


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_a_prepared_response_is_sent_as_sanic_sends_the_same_response(case: str) -> None:
    spec = dict(CASES[case])
    head_only = spec.pop("head_only", False)
    keep_alive = spec.pop("keep_alive", True)
    reference = HTTPResponse(**spec)
    _middleware(reference, prepared=False)
    prepared = PreparedResponse(**spec)
    _middleware(prepared, prepared=True)
    assert prepared._pairs is not None  # the middleware kept it prepared
    expected = _answer(Http, reference, head_only=head_only, keep_alive=keep_alive)
    got = _answer(_HeadersTimedHttp, prepared, head_only=head_only, keep_alive=keep_alive)
    assert got == expected
    assert len(got[0]) == 1  # head and body in one write
    assert prepared._pairs is not None  # sent by the override, not handed back to Sanic


def test_reading_headers_makes_it_an_ordinary_response_with_the_same_pairs_in_order() -> None:
    response = PreparedResponse(b"x", 200, {"ETag": '"a"', "Cache-Control": "private"},
                                content_type="text/plain")
    set_header(response, "etag", '"b"')  # same place, new spelling and value (as Header does)
    assert header_of(response, "ETAG") == '"b"'
    assert header_of(response, "missing", "d") == "d"
    assert list(response.headers.items()) == [("etag", '"b"'), ("Cache-Control", "private")]
    assert response._pairs is None
    response.headers["X-More"] = "1"
    set_header(response, "X-Other", "2")
    assert header_of(response, "x-more") == "1"
    reference = HTTPResponse(b"x", 200, {"etag": '"b"', "Cache-Control": "private",
                                         "X-More": "1", "X-Other": "2"}, content_type="text/plain")
    assert _answer(_HeadersTimedHttp, response) == _answer(Http, reference)


def test_a_name_given_twice_in_two_spellings_keeps_both_as_header_does() -> None:
    headers = {"Vary": "Origin", "vary": "Accept"}
    response = PreparedResponse(b"x", 200, headers, content_type="text/plain")
    assert response._pairs is None
    assert _answer(_HeadersTimedHttp, response) == _answer(
        Http, HTTPResponse(b"x", 200, headers, content_type="text/plain"))


def test_a_body_sent_in_parts_goes_through_sanic() -> None:
    protocol = _Protocol()
    http = _HeadersTimedHttp(protocol)
    http.init_for_request()
    http.response_func = http.http1_response_header  # as Http.http1 sets it per request
    http.stage = Stage.HANDLER
    http.request = SimpleNamespace(path="/x")
    response = PreparedResponse(b"", 200, {"Content-Length": "4"}, content_type="text/plain")
    http.respond(response)

    async def send_in_parts() -> None:
        await response.send(b"ab", end_stream=False)
        await response.send(b"cd", end_stream=True)

    asyncio.run(send_in_parts())
    assert response._pairs is None  # Sanic read its headers
    assert protocol.sent[0].endswith(b"\r\n\r\nab") and protocol.sent[1:] == [b"cd"]
    assert http.stage is Stage.IDLE


def test_a_header_name_that_is_not_ascii_fails_as_in_sanic() -> None:
    headers = {"X-Caf\u00e9": "1"}
    with pytest.raises(UnicodeEncodeError):
        _answer(Http, HTTPResponse(b"x", 200, headers, content_type="text/plain"))
    with pytest.raises(UnicodeEncodeError):
        _answer(_HeadersTimedHttp, PreparedResponse(b"x", 200, headers, content_type="text/plain"))


def test_the_override_survives_touchup_run_twice_in_test_mode() -> None:
    # TouchUp recompiles registered methods at every app start; in test mode it takes each
    # method's original from `_<name>`, which a subclass would otherwise inherit from Http.
    from sanic import Sanic
    from sanic.touchup import TouchUp

    saved = {(cls, attr): cls.__dict__.get(attr) for cls, name in TouchUp._registry
             for attr in (name, f"_{name}")}
    was_test_mode = Sanic.test_mode
    try:
        Sanic.test_mode = True
        app = Sanic("touchup_twice")
        TouchUp.run(app)
        TouchUp.run(app)
        response = PreparedResponse(b"x", 200, {"ETag": '"x"'}, content_type="text/plain")
        sent, stage, _, _ = _answer(_HeadersTimedHttp, response)
        assert response._pairs is not None and stage is Stage.IDLE
        assert sent == _answer(Http, HTTPResponse(b"x", 200, {"ETag": '"x"'},
                                                  content_type="text/plain"))[0]
    finally:
        Sanic.test_mode = was_test_mode
        for (cls, attr), value in saved.items():
            if value is None:
                if attr in cls.__dict__:
                    delattr(cls, attr)
            else:
                setattr(cls, attr, value)
        Sanic._app_registry.pop("touchup_twice", None)
