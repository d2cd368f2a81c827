"""Byte serving without a server: Range parsing, conditional requests, the headers of every
answer, and a Content-Disposition that is safe and parseable for any stored filename."""

from __future__ import annotations

import email.message
import re
from urllib.parse import unquote

import pytest

from artifacta_box.http.byteserve import (
    SECURITY_HEADERS,
    UNSATISFIABLE,
    ByteRange,
    Representation,
    ascii_fallback,
    content_disposition,
    cors_headers,
    decide,
    if_none_match_hits,
    if_range_allows,
    parse_range,
    safe_filename,
)
from artifacta_box.errors import RangeNotSatisfiable
from artifacta_box.storage import BlobRef

SHA = "ab" * 32
ETAG = f'"{SHA}"'


def rep(size: int = 1000, filename: str = "report.pdf", ctype: str = "application/pdf") -> Representation:
    return Representation(BlobRef(1, SHA, size, None), "/nonexistent", size, SHA, ctype, filename)


# ------------------------------------------------------------------------------ Range


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-0", ByteRange(0, 0)),                 # first byte
        ("bytes=999-999", ByteRange(999, 999)),         # last byte
        ("bytes=0-999", ByteRange(0, 999)),
        ("bytes=10-19", ByteRange(10, 19)),
        ("bytes=990-", ByteRange(990, 999)),            # open-ended
        ("bytes=0-", ByteRange(0, 999)),
        ("bytes=-1", ByteRange(999, 999)),              # suffix
        ("bytes=-10", ByteRange(990, 999)),
        ("bytes=-1000", ByteRange(0, 999)),
        ("bytes=-5000", ByteRange(0, 999)),             # suffix longer than the file: all of it
        ("bytes=500-99999999999999999999", ByteRange(500, 999)),  # end clamped to EOF
        ("Bytes = 1-2", ByteRange(1, 2)),               # unit is case-insensitive, OWS allowed
        ("bytes=1-2,", ByteRange(1, 2)),                # empty list elements are ignored
        ("bytes=1000-", UNSATISFIABLE),                 # starts at EOF
        ("bytes=1000-2000", UNSATISFIABLE),
        ("bytes=99999999999999999999-", UNSATISFIABLE),
        ("bytes=-0", UNSATISFIABLE),
        ("bytes=0-9,20-29", None),                      # several ranges: whole body (documented)
        ("bytes=0-0,-1", None),
        ("bytes=5-1", None),                            # last < first: invalid, ignored
        ("bytes=", None),
        ("bytes=-", None),
        ("bytes=a-b", None),
        ("bytes=1-2-3", None),
        ("bytes=+1-2", None),
        ("bytes=1 - 2", None),
        ("items=0-1", None),                            # another unit
        ("0-1", None),
        ("", None),
        (None, None),
        ("bytes=" + "1" * 2000 + "-", None),           # absurdly long: ignored
    ],
)
def test_parse_range(header, expected):
    assert parse_range(header, 1000) == expected


def test_an_empty_artifact_ignores_ranges():
    for header in ("bytes=0-0", "bytes=-1", "bytes=0-"):
        assert parse_range(header, 0) is None


def test_byte_range_length():
    assert ByteRange(0, 0).length == 1 and ByteRange(10, 19).length == 10


# ------------------------------------------------------------------------------ validators


@pytest.mark.parametrize(
    ("header", "hit"),
    [
        (ETAG, True),
        (f"W/{ETAG}", True),                            # weak comparison for If-None-Match
        (f'"other", {ETAG}', True),
        (f'"other",W/{ETAG}', True),
        ("*", True),
        (' * ', True),
        ('"other"', False),
        (SHA, False),                                   # unquoted is another tag
        ("", False),
        (None, False),
    ],
)
def test_if_none_match(header, hit):
    assert if_none_match_hits(header, ETAG) is hit


@pytest.mark.parametrize(
    ("header", "allowed"),
    [
        (None, True),
        (ETAG, True),
        (f" {ETAG} ", True),
        (f"W/{ETAG}", False),                           # If-Range needs a strong match
        ('"other"', False),
        ("Wed, 21 Oct 2015 07:28:00 GMT", False),       # a date: we send no Last-Modified
    ],
)
def test_if_range(header, allowed):
    assert if_range_allows(header, ETAG) is allowed


# ------------------------------------------------------------------------------ decisions


def test_plain_get_is_200_with_every_header():
    d = decide("GET", {}, rep())
    assert (d.status, d.start, d.length, d.body) == (200, 0, 1000, True)
    h = d.headers
    assert h["Content-Length"] == "1000"
    assert h["Content-Type"] == "application/pdf"
    assert h["Accept-Ranges"] == "bytes"
    assert h["ETag"] == ETAG
    assert h["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in h["Content-Security-Policy"]
    assert "default-src 'none'" in h["Content-Security-Policy"]
    assert h["Cache-Control"] == "private"
    assert h["Content-Disposition"].startswith("attachment;")
    assert "Content-Range" not in h


def test_range_get_is_206_with_content_range():
    d = decide("GET", {"range": "bytes=-10"}, rep())
    assert (d.status, d.start, d.length) == (206, 990, 10)
    assert d.headers["Content-Range"] == "bytes 990-999/1000"
    assert d.headers["Content-Length"] == "10"


def test_head_ignores_range_and_sends_no_body():
    d = decide("HEAD", {"range": "bytes=0-9"}, rep())
    assert (d.status, d.body) == (200, False)
    assert d.headers["Content-Length"] == "1000"


def test_unsatisfiable_range_is_416_with_star_content_range():
    with pytest.raises(RangeNotSatisfiable) as info:
        decide("GET", {"range": "bytes=1000-"}, rep())
    err = info.value
    assert err.status == 416
    assert err.headers["Content-Range"] == "bytes */1000"
    assert err.body()["error"]["code"] == "range_not_satisfiable"


def test_if_none_match_beats_range_and_answers_304_without_body():
    d = decide("GET", {"if-none-match": ETAG, "range": "bytes=0-1"}, rep())
    assert (d.status, d.body) == (304, False)
    assert d.headers["ETag"] == ETAG
    assert "Content-Length" not in d.headers and "Content-Type" not in d.headers
    assert decide("HEAD", {"if-none-match": ETAG}, rep()).status == 304


def test_if_range_decides_between_206_and_200():
    assert decide("GET", {"range": "bytes=0-1", "if-range": ETAG}, rep()).status == 206
    d = decide("GET", {"range": "bytes=0-1", "if-range": '"stale"'}, rep())
    assert (d.status, d.length) == (200, 1000)
    # a stale If-Range also defuses an unsatisfiable Range: the whole new representation
    assert decide("GET", {"range": "bytes=5000-", "if-range": '"stale"'}, rep()).status == 200


def test_multi_range_serves_the_whole_representation():
    d = decide("GET", {"range": "bytes=0-0,5-9"}, rep())
    assert (d.status, d.start, d.length) == (200, 0, 1000)


def test_empty_representation():
    d = decide("GET", {"range": "bytes=0-"}, rep(size=0))
    assert (d.status, d.length) == (200, 0)
    assert d.headers["Content-Length"] == "0"


# ------------------------------------------------------------------------------ Content-Disposition

HOSTILE = [
    "report.pdf",
    'quo"te.txt',
    'back\\slash.txt',
    "line\r\nSet-Cookie: x=1.txt",
    "tab\there.txt",
    "nul\x00byte",
    "../../etc/passwd",
    "..\\..\\windows\\system32",
    "/absolute/path.sh",
    "dir/sub/",
    "naïve café.txt",
    "日本語のファイル.csv",
    "emoji 🎉🚀.png",
    "percent %41%0d%0a.txt",
    "semi;colon=x; filename=evil.exe",
    "'single'quotes'.txt",
    "..",
    ".",
    "   ",
    "\u202egnp.exe",                                   # right-to-left override
    "a" * 255,
    "é" * 255,
    "\u2028line\u2029sep",
]


def _parse(value: str) -> email.message.Message:
    msg = email.message.Message()
    msg["Content-Disposition"] = value
    return msg


@pytest.mark.parametrize("name", HOSTILE)
def test_content_disposition_is_safe_ascii_and_parseable(name):
    value = content_disposition(name)
    # one header line of printable ASCII: nothing to split or inject
    assert re.fullmatch(r"[\x20-\x7e]+", value), value
    assert value.startswith('attachment; filename="')
    m = re.fullmatch(r'attachment; filename="([^"\\]*)"; filename\*=UTF-8\'\'([A-Za-z0-9!#$&+\-.^_`|~%]+)',
                     value)
    assert m, value
    fallback = m.group(1)
    assert fallback and "/" not in fallback and "%" not in fallback
    assert not fallback.startswith(".")
    # a standard parser reads the header; it gets the (path-free) name back from filename*
    assert _parse(value).get_filename() in (fallback, safe_filename(name))
    decoded = _parse(f"attachment; filename*=UTF-8''{m.group(2)}").get_filename()
    assert decoded == unquote(m.group(2), errors="strict") == safe_filename(name)
    assert "/" not in decoded and "\\" not in decoded
    assert not any(ch in decoded for ch in "\r\n\x00\u2028\u2029\u202e")


def test_filenames_keep_their_readable_form():
    value = content_disposition("naïve café.txt")
    assert 'filename="naive cafe.txt"' in value
    assert "filename*=UTF-8''na%C3%AFve%20caf%C3%A9.txt" in value
    assert content_disposition("report.pdf") == (
        "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
    )


def test_ascii_fallback_and_safe_filename():
    assert ascii_fallback("日本語.csv") == "___.csv"
    assert ascii_fallback('a"b\\c%d/e') == "a_b_c_d_e"
    assert ascii_fallback("...") == "download"
    assert safe_filename("../../etc/passwd") == ".._.._etc_passwd"
    assert safe_filename("..") == "download"
    assert safe_filename("a\r\nb") == "a__b"


# ------------------------------------------------------------------------------ CORS


def test_cors_headers_only_for_allowed_origins():
    allowed = ("https://app.example",)
    h = cors_headers("https://app.example", allowed)
    assert h["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Content-Range" in h["Access-Control-Expose-Headers"]
    assert h["Vary"] == "Origin"
    assert "Access-Control-Allow-Origin" not in cors_headers("https://evil.example", allowed)
    assert cors_headers(None, allowed) == {"Vary": "Origin"}
    assert cors_headers("https://app.example", ()) == {}
    assert cors_headers("https://any.example", ("*",))["Access-Control-Allow-Origin"] == "*"


def test_security_headers_are_the_documented_set():
    assert SECURITY_HEADERS == {
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private",
    }


def test_response_headers_still_lose_cr_lf_and_nul_with_the_fast_sanitiser():
    import artifacta_box.app  # noqa: F401 - installs the fast path
    from sanic.response import HTTPResponse

    r = HTTPResponse(headers={"X-Clean": "attachment; filename=\"a.txt\"",
                              "X-Evil": "v\r\nSet-Cookie: x=1\x00"})
    sent = dict(r.processed_headers)
    assert sent[b"X-Clean"] == b'attachment; filename="a.txt"'
    assert sent[b"X-Evil"] == b"vSet-Cookie: x=1"
