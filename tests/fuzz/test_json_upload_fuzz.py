"""The streaming JSON upload reader (http/json_upload.py) against what it replaced: the whole
body through `json.loads`, then the checks of the old `receive_json` and strict base64 of
`content`. Generated bodies — fields in any order, content first or last, escapes, whitespace,
non-ASCII, duplicates, truncation, stray bytes, trailing data — fed in random pieces must give
the same fields and bytes, or fail at the same step."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from artifacta_box.http.json_upload import FieldsTooLarge, JsonBodyError, UploadJsonReader

CAP = 200  # decoded bytes: some generated contents are over it
FIELDS_BOUND = 1 << 20

# ---------------------------------------------------------------------------- the reference


def reference(body: bytes) -> tuple:
    """What the whole-body code decided: ("ok", fields without content, bytes) or the step
    that refused it."""
    if not body:
        return ("json",)
    try:
        text = body.decode("utf-8")
        pairs: list[tuple[str, Any]] = []
        value = json.loads(text, object_pairs_hook=lambda kv: pairs.extend(kv) or dict(kv))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return ("json",)
    if not isinstance(value, dict):
        return ("json",)
    # The top-level object's pairs are the last ones the hook saw.
    if sum(1 for k, _ in _top_pairs(text) if k == "content") > 1:
        return ("json",)  # the streaming reader refuses content twice (json.loads keeps the last)
    encoding = value.get("content_encoding", "base64")
    if encoding != "base64":
        return ("encoding",)
    content = value.get("content")
    if not isinstance(content, str):
        return ("no content",)
    fields = {k: v for k, v in value.items() if k != "content"}
    n = len(content)
    if n % 4:
        return ("length",)
    padding = 2 if content.endswith("==") else 1 if content.endswith("=") else 0
    if n // 4 * 3 - padding > CAP:
        return ("size",)
    if content.find("=", 0, max(0, n - 2)) >= 0:
        return ("padding",)
    try:
        data = binascii.a2b_base64(content, strict_mode=True)
    except (binascii.Error, ValueError):
        return ("invalid",)
    return ("ok", _canon(fields), data)


def _top_pairs(text: str) -> list[tuple[str, Any]]:
    top: list[list[tuple[str, Any]]] = []
    json.loads(text, object_pairs_hook=lambda kv: top.append(kv) or dict(kv))
    return top[-1]


def _canon(fields: dict) -> str:
    return json.dumps(fields, sort_keys=True)


def streamed(body: bytes, cuts: list[int]) -> tuple:
    """The same decision from the streaming reader, fed `body` cut at `cuts`."""
    reader = UploadJsonReader(max_fields_chars=FIELDS_BOUND)
    out = bytearray()
    try:
        last = 0
        for cut in sorted({c for c in cuts if 0 < c < len(body)}) + [len(body)]:
            out += reader.feed(body[last:cut])
            last = cut
        out += reader.finish()
    except JsonBodyError:
        return ("json",)
    fields, content = reader.fields, reader.content
    assert fields is not None
    if fields.get("content_encoding", "base64") != "base64":
        return ("encoding",)
    if content is None:
        return ("no content",)
    if content.chars % 4:
        return ("length",)
    if content.size > CAP:
        return ("size",)
    if content.padding_inside:
        return ("padding",)
    if content.invalid:
        return ("invalid",)
    assert content.decoded == len(out) == content.size
    return ("ok", _canon(fields), bytes(out))


# ---------------------------------------------------------------------------- generated bodies

json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=20) \
    | st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
field_names = st.sampled_from(["filename", "content_type", "session_id", "agent_id", "metadata",
                               "ttl", "content_encoding", "x", "contents", ""])
base64_texts = st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode())
odd_texts = st.text(alphabet="ABCDabcd0189+/=\n \t\\\"\x01é€\U00010000\ud800\udc00", max_size=40)
content_values = base64_texts | odd_texts | json_values


@st.composite
def bodies(draw) -> bytes:
    members = [(draw(field_names), draw(json_values)) for _ in range(draw(st.integers(0, 4)))]
    for _ in range(draw(st.sampled_from([1, 1, 1, 1, 0, 2]))):  # usually one content member
        members.insert(draw(st.integers(0, len(members))), ("content", draw(content_values)))
    ws = draw(st.sampled_from(["", " ", "\n  ", "\t"]))
    ensure_ascii = draw(st.booleans())
    parts = []
    for key, value in members:
        k = json.dumps(key, ensure_ascii=ensure_ascii)
        if key == "content" and draw(st.booleans()):
            k = '"cont\\u0065nt"'  # the same key, escaped
        v = json.dumps(value, ensure_ascii=ensure_ascii)
        if key == "content" and isinstance(value, str):
            if draw(st.booleans()):
                v = v.replace("/", "\\/")
            if draw(st.booleans()):
                v = v.replace("A", "\\u0041")
        parts.append(f"{ws}{k}{ws}:{ws}{v}{ws}")
    body = ("{" + ",".join(parts) + "}" + draw(st.sampled_from(["", " ", "\n"]))).encode(
        "utf-8", "surrogatepass")  # a lone surrogate raw: not UTF-8, refused both ways
    mutation = draw(st.sampled_from(["none"] * 6 + ["truncate", "insert", "trailing", "utf8"]))
    at = draw(st.integers(0, len(body)))
    if mutation == "truncate":
        body = body[:at]
    elif mutation == "insert":
        body = body[:at] + draw(st.sampled_from([b",", b"}", b"\"", b"\\", b"x", b" ", b"{", b"]"])) \
            + body[at:]
    elif mutation == "trailing":
        body += draw(st.sampled_from([b"x", b"{}", b"1", b"\x00"]))
    elif mutation == "utf8":
        body = body[:at] + b"\xff" + body[at:]
    return body


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies(), st.lists(st.integers(0, 2000), max_size=6))
@example(b'{"content": "QUJD", "filename": "a"}', [])
@example(b'{"filename": "a", "content": "QU\\/D"}', [3, 4, 25, 26])
@example(b'{"content": "AA==AAAA"}', [])
@example(b'{"content": "QUJD"', [])
@example(b'{"content": "QUJD"} x', [])
@example(b'[1]', [])
@example(b'{"content":"00\\ud800\\udc00"}', [14])  # one character to json.loads
@example(b'{"content": "QUJD", "content": "QUJE"}', [])
@example('{"content": "QUJD", "filename": "é"}'.encode(), [34])  # a character split in two
def test_streaming_reader_decides_as_json_loads_and_strict_base64(body, cuts):
    assert streamed(body, cuts) == reference(body)


def test_other_fields_are_bounded():
    reader = UploadJsonReader(max_fields_chars=100)
    with pytest.raises(FieldsTooLarge):
        reader.feed(b'{"metadata": {"k": "' + b"v" * 200 + b'"}, "content": "QUJD"}')


def test_a_long_content_is_decoded_piece_by_piece_without_keeping_the_text():
    data = bytes(range(256)) * 4000
    text = base64.b64encode(data)
    reader = UploadJsonReader(max_fields_chars=1000)
    out = bytearray(reader.feed(b'{"filename": "f", "content": "'))
    for i in range(0, len(text), 65536):
        piece = reader.feed(text[i:i + 65536])
        assert len(piece) >= 65536 // 4 * 3 - 6 or i + 65536 >= len(text)  # nothing held back
        out += piece
    out += reader.feed(b'"}') + reader.finish()
    assert bytes(out) == data and reader.fields == {"filename": "f"}
