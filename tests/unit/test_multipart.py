"""The streaming multipart parser: any split of the body gives the same parts, part bodies are
handed out without copies, and every bound (headers, fields, parts) holds."""

from __future__ import annotations

import itertools
import re
import os

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from artifacta_box.http.multipart import (
    FieldTooLarge,
    FormReader,
    MissingFilePart,
    MultipartError,
    MultipartParser,
    PartData,
    PartEnd,
    PartStart,
    _parse_header_value_general,
    _parse_part_headers_general,
    boundary_from_content_type,
    parse_header_value,
    parse_part_headers,
)

B = b"xYzBoundary123"


def body_of(parts: list[tuple[bytes, bytes]], *, boundary: bytes = B, preamble: bytes = b"",
            epilogue: bytes = b"") -> bytes:
    """parts: (raw header block, content)."""
    out = bytearray(preamble)
    if preamble:
        out += b"\r\n"
    for headers, content in parts:
        out += b"--" + boundary + b"\r\n" + headers + b"\r\n\r\n" + content + b"\r\n"
    out += b"--" + boundary + b"--" + epilogue
    return bytes(out)


def field(name: str, value: bytes) -> tuple[bytes, bytes]:
    return (f'Content-Disposition: form-data; name="{name}"'.encode(), value)


def filepart(content: bytes, filename: str = "a.bin", ctype: str = "application/octet-stream"):
    return (
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: {ctype}".encode(),
        content,
    )


def parse(body: bytes, cuts: list[int] | None = None, boundary: bytes = B):
    """Feed `body` split at `cuts`; returns [(Part, content bytes)]."""
    parser = MultipartParser(boundary)
    points = [0, *(cuts or []), len(body)]
    parts: list = []
    for a, b in itertools.pairwise(points):
        for ev in parser.feed(body[a:b]):
            if isinstance(ev, PartStart):
                parts.append([ev.part, bytearray()])
            elif isinstance(ev, PartData):
                parts[-1][1] += ev.data
            else:
                assert isinstance(ev, PartEnd)
                assert ev.part is parts[-1][0]
    parser.close()
    return [(p, bytes(c)) for p, c in parts]


TRICKY = b"line1\r\nline2\r\n--xYzBoundary12\r\n--xYzBoundary\r\r\n\r\n-\r\n--"


def test_fields_and_file_are_parsed():
    body = body_of([field("session_id", b"s1"), filepart(b"hello\r\nworld", "h.txt", "text/plain")])
    parts = parse(body)
    assert [(p.name, p.filename, p.content_type, c) for p, c in parts] == [
        ("session_id", None, None, b"s1"),
        ("file", "h.txt", "text/plain", b"hello\r\nworld"),
    ]


def test_every_single_split_point_gives_the_same_parts():
    body = body_of([field("a", b"1"), filepart(TRICKY), field("metadata", b'{"k":"v"}')],
                   preamble=b"ignored preamble", epilogue=b"\r\nignored epilogue")
    expected = parse(body)
    assert expected[1][1] == TRICKY
    for cut in range(1, len(body)):
        assert parse(body, [cut]) == expected, f"split at {cut}"


def test_every_pair_of_split_points_around_the_file_part():
    body = body_of([filepart(TRICKY)])
    expected = parse(body)
    for a in range(1, len(body)):
        for b in range(a + 1, len(body), 3):
            assert parse(body, [a, b]) == expected, (a, b)


def test_byte_at_a_time():
    body = body_of([field("x", b"\r\n"), filepart(TRICKY + b"\r")])
    assert parse(body, list(range(1, len(body)))) == parse(body)


def test_content_that_looks_like_boundaries_is_kept():
    content = b"--" + B + b"\r\n" + b"\r\n-" + B + b"\r\n--" + B[:5]
    body = body_of([filepart(content)])
    assert parse(body)[0][1] == content


def test_empty_file_and_empty_field():
    body = body_of([field("agent_id", b""), filepart(b"")])
    parts = parse(body)
    assert [c for _, c in parts] == [b"", b""]


def test_preamble_and_epilogue_are_ignored():
    body = body_of([filepart(b"data")], preamble=b"This is a preamble --" + B[:4],
                   epilogue=b"\r\n--" + B + b"\r\ntrailing junk")
    assert parse(body)[0][1] == b"data"


def test_transport_padding_after_boundary():
    body = (b"--" + B + b"  \t\r\n" + b'Content-Disposition: form-data; name="file"\r\n\r\n'
            + b"x\r\n--" + B + b"--\r\n")
    assert parse(body)[0][1] == b"x"


def test_quoted_params_escapes_and_semicolons():
    headers = b'Content-Disposition: form-data; name="file"; filename="we\\"ird; name=.txt"'
    part = parse(body_of([(headers, b"1")]))[0][0]
    assert part.filename == 'we"ird; name=.txt'


def test_httpx_encoded_quotes_and_utf8_filenames_round_trip():
    req = httpx.Request("POST", "http://x/", files={"file": ('r\u00e9sum\u00e9 "v2".pdf', b"pdf")},
                        data={"metadata": '{"a":"b"}'})
    ctype = req.headers["content-type"]
    body = req.read()
    boundary = boundary_from_content_type(ctype)
    parts = parse(body, boundary=boundary)
    assert parts[0][0].name == "metadata" and parts[0][1] == b'{"a":"b"}'
    assert parts[1][0].filename == 'r\u00e9sum\u00e9 "v2".pdf'
    assert parts[1][1] == b"pdf"


def test_rfc5987_filename_star_wins():
    headers = (b"Content-Disposition: form-data; name=\"file\"; filename=\"fallback.txt\"; "
               b"filename*=UTF-8''%E2%82%AC%20rates.txt")
    assert parse(body_of([(headers, b"1")]))[0][0].filename == "\u20ac rates.txt"


def test_bad_rfc5987_value_falls_back_to_plain_filename():
    headers = b'Content-Disposition: form-data; name="file"; filename="plain.txt"; filename*=bogus'
    assert parse(body_of([(headers, b"1")]))[0][0].filename == "plain.txt"


def test_unquoted_params_and_case_insensitive_names():
    headers = b"content-disposition: Form-Data; NAME=file; FileName=x.csv\r\nCONTENT-TYPE: text/csv"
    part = parse(body_of([(headers, b"1")]))[0][0]
    assert (part.name, part.filename, part.content_type) == ("file", "x.csv", "text/csv")


def test_header_value_parser():
    assert parse_header_value('multipart/form-data; boundary="a b;c"; x=1') == (
        "multipart/form-data", {"boundary": "a b;c", "x": "1"})
    assert parse_header_value("text/plain") == ("text/plain", {})


# Header values built from the characters that change how they split: separators, quotes,
# escapes, blanks, RFC 5987 stars and quotes, case.
_HEADER_PIECES = st.sampled_from([
    "form-data", "Form-Data", "multipart/form-data", ";", "; ", ";\t", "=", " = ", '"', "\\",
    "name", "NAME", "filename", "filename*", "boundary", "file", "a b", "x;y", "UTF-8''%E2%82%AC",
    "'", "*", " ", "\t", "%22", "small.bin", "-", "_", "é",
])


_WORD = st.one_of(st.sampled_from(["file", "small.bin", "x", "----b0undary"]),
                  st.text("abcXYZ09-_.%'*é", max_size=6))
# `main; name=value; ...` with each piece drawn near the simple shape (and across its edges).
_PARAMETERS = st.builds(
    lambda main, params, tail: main + "".join(params) + tail,
    st.sampled_from(["form-data", " Form-Data ", "multipart/form-data", 'a"b', ""]),
    st.lists(st.builds(
        lambda sep, name, eq, val: sep + name + eq + val,
        st.sampled_from([";", "; ", "; ", ";\t", "; \t ", " ;"]),
        st.one_of(st.sampled_from(["name", "NAME", "filename", "filename*", "boundary"]), _WORD),
        st.sampled_from(["=", "=", "=", "= ", " ="]),
        st.one_of(_WORD, _WORD.map(lambda w: f'"{w}"'), st.sampled_from(
            ['"a b;c"', '"x\\"y"', '"open', "a b", "UTF-8''%E2%82%AC.txt", '"a"b', ""])),
    ), max_size=4),
    st.sampled_from(["", "", "", " ", ";", "\t"]),
)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(_PARAMETERS, st.lists(_HEADER_PIECES, max_size=14).map("".join)))
@example('form-data; name="file"; filename="small.bin"')
@example("multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW")
@example('form-data; name="a"b; filename=x')
@example("form-data; name=file ; filename*=UTF-8''%E2%82%AC.txt")
def test_header_value_fast_path_splits_like_the_general_parser(value):
    """`parse_header_value` answers the common shape itself: on every value it must give what
    the character-by-character parser gives, or raise the same error."""
    try:
        expected = _parse_header_value_general(value)
    except MultipartError as exc:
        with pytest.raises(MultipartError, match=re.escape(str(exc))):
            parse_header_value(value)
        return
    assert parse_header_value(value) == expected


@pytest.mark.parametrize("ctype", [
    None, "", "multipart/form-data", "multipart/form-data; boundary=",
    "multipart/form-data; boundary=" + "a" * 71, 'multipart/form-data; boundary="bad\x01"',
    'multipart/form-data; boundary="ends with space "', "text/plain; boundary=abc",
])
def test_invalid_boundaries_are_refused(ctype):
    with pytest.raises(MultipartError):
        boundary_from_content_type(ctype)


def test_valid_boundary_with_quotes_and_spaces():
    assert boundary_from_content_type('multipart/form-data; boundary="a b\'()+_,-./:=?"') == \
        b"a b'()+_,-./:=?"


@pytest.mark.parametrize("body", [
    b"",                                                    # nothing at all
    b"no boundary anywhere",
    body_of([filepart(b"abc")])[:-2],                       # close delimiter cut short
    body_of([filepart(b"abc")]).replace(b"--" + B + b"--", b""),  # no close delimiter
    b"--" + B + b"\r\n" + b'Content-Disposition: form-data; name="file"\r\n\r\npartial',
])
def test_truncated_bodies_fail_at_close(body):
    parser = MultipartParser(B)
    parser.feed(body)
    with pytest.raises(MultipartError):
        parser.close()


def test_junk_after_boundary_is_refused():
    with pytest.raises(MultipartError):
        MultipartParser(B).feed(b"--" + B + b"junk\r\n")


def test_part_without_content_disposition_is_refused():
    with pytest.raises(MultipartError):
        MultipartParser(B).feed(b"--" + B + b"\r\nContent-Type: text/plain\r\n\r\nx")
    with pytest.raises(MultipartError):
        MultipartParser(B).feed(b"--" + B + b"\r\n\r\nx")


def test_part_headers_are_capped():
    parser = MultipartParser(B, max_header_bytes=1024)
    with pytest.raises(MultipartError, match="headers"):
        parser.feed(b"--" + B + b"\r\nX-Big: " + b"a" * 2000)
    parser = MultipartParser(B, max_header_bytes=1024)
    chunk = b"--" + B + b"\r\nX-Big: "
    with pytest.raises(MultipartError, match="headers"):  # also when it trickles in
        parser.feed(chunk)
        for _ in range(200):
            parser.feed(b"a" * 10)


def test_part_count_is_capped():
    body = body_of([field(f"f{i}", b"x") for i in range(10)])
    with pytest.raises(MultipartError, match="Too many parts"):
        MultipartParser(B, max_parts=5).feed(body)


def test_large_body_is_handed_out_as_views_of_the_fed_chunks_with_bounded_holdback():
    head = b"--" + B + b'\r\nContent-Disposition: form-data; name="file"; filename="big"\r\n\r\n'
    parser = MultipartParser(B)
    parser.feed(head)
    fed = emitted = 0
    delim_len = len(parser.delimiter)
    for _ in range(160):
        chunk = os.urandom(65536).replace(b"\r", b"\n")
        events = parser.feed(chunk)
        fed += len(chunk)
        assert len(events) == 1 and isinstance(events[0], PartData)
        emitted += len(events[0].data)
        assert events[0].data.obj is chunk  # zero-copy: a view into the very chunk we fed
        assert fed == emitted
    # a chunk ending in a possible delimiter start holds back only those few bytes
    chunk = os.urandom(1000).replace(b"\r", b"\n") + b"\r\n--" + B[:3]
    events = parser.feed(chunk)
    fed += len(chunk)
    emitted += sum(len(e.data) for e in events)
    assert 0 < fed - emitted < delim_len
    events = parser.feed(b"\r\n--" + B + b"--")
    emitted += sum(len(e.data) for e in events if isinstance(e, PartData))
    assert emitted == fed
    assert parser.done


# ---------------------------------------------------------------------------- FormReader


def read_form(body: bytes, cuts=(), **kw):
    reader = FormReader(B, **kw)
    points = [0, *cuts, len(body)]
    data = bytearray()
    starts = []
    for a, b in itertools.pairwise(points):
        for ev in reader.feed(body[a:b]):
            if isinstance(ev, PartStart):
                starts.append(ev.part)
            else:
                assert isinstance(ev, PartData)
                data += ev.data
    reader.close()
    return reader, starts, bytes(data)


def test_form_fields_after_the_file_are_collected():
    body = body_of([field("filename", b"n.txt"), filepart(b"abc"), field("ttl", b"1d"),
                    field("metadata", '{"k":"\u00e9"}'.encode())])
    for cut in range(1, len(body), 7):
        reader, starts, data = read_form(body, [cut])
        assert data == b"abc" and len(starts) == 1
        assert reader.fields == {"filename": "n.txt", "ttl": "1d", "metadata": '{"k":"\u00e9"}'}


def test_form_needs_a_file_part():
    with pytest.raises(MissingFilePart):
        read_form(body_of([field("filename", b"x")]))


def test_form_refuses_two_file_parts():
    with pytest.raises(MultipartError, match="more than one"):
        read_form(body_of([filepart(b"1"), filepart(b"2")]))


def test_form_refuses_duplicate_text_fields():
    with pytest.raises(MultipartError, match="more than once"):
        read_form(body_of([field("ttl", b"1d"), field("ttl", b"2d"), filepart(b"1")]))


def test_form_text_fields_are_capped_in_size_and_count():
    with pytest.raises(FieldTooLarge):
        read_form(body_of([field("metadata", b"x" * 2000), filepart(b"1")]), max_field_bytes=1000)
    with pytest.raises(FieldTooLarge):  # also when it arrives in small pieces
        body = body_of([field("metadata", b"x" * 2000), filepart(b"1")])
        read_form(body, list(range(1, len(body), 50)), max_field_bytes=1000)
    with pytest.raises(MultipartError, match="Too many"):
        read_form(body_of([field(f"f{i}", b"x") for i in range(5)] + [filepart(b"1")]), max_fields=3)


def test_form_text_fields_must_be_utf8():
    with pytest.raises(MultipartError, match="UTF-8"):
        read_form(body_of([field("agent_id", b"\xff\xfe"), filepart(b"1")]))


def test_form_file_bytes_are_never_buffered():
    body = body_of([filepart(os.urandom(300_000))])
    _reader, _starts, data = read_form(body, list(range(1000, len(body), 65536)), max_field_bytes=10)
    assert len(data) == 300_000


# ---------------------------------------------------------------------------- fast paths vs general

_NAME_TEXT = st.text(alphabet='af_"\\%2;= \té\r\n', max_size=8)
_DISPOSITIONS = st.one_of(
    st.builds(lambda n, f: f'Content-Disposition: form-data; name="{n}"'
              + ("" if f is None else f'; filename="{f}"'),
              st.one_of(st.sampled_from(["file", "session_id", "metadata", "ttl"]), _NAME_TEXT),
              st.one_of(st.none(), st.sampled_from(["a.bin", "%22q%22.txt", "é.txt"]), _NAME_TEXT)),
    st.sampled_from(['content-disposition: form-data; name="file"', 'Content-Disposition:form-data; name="x"',
                     'Content-Disposition: form-data; name=file', 'Content-Disposition: attachment; name="f"',
                     'Content-Disposition: form-data; filename="a"', 'Content-Disposition: form-data; name="f"; x=1',
                     'Content-Disposition: form-data; name="a\\"b"', "Content-Disposition: form-data; name*=UTF-8''%C3%A9"]),
)
_EXTRA_LINES = st.sampled_from(["Content-Type: text/plain", "Content-Type:", "Content-Type:  a/b \t",
                                "content-type: x/y", " folded", "X-Other: 1", "bad line", ":empty"])
_HEADER_BLOCKS = st.builds(lambda d, extra: "\r\n".join([d, *extra]).encode("utf-8"),
                           _DISPOSITIONS, st.lists(_EXTRA_LINES, max_size=2))


@settings(max_examples=2000, deadline=None)
@given(st.one_of(_HEADER_BLOCKS, st.binary(max_size=40)))
@example(b'Content-Disposition: form-data; name="file"; filename="small.bin"\r\n'
         b"Content-Type: application/octet-stream")
@example(b'Content-Disposition: form-data; name="file"\r\nContent-Type:   ')
@example('Content-Disposition: form-data; name="é"'.encode("latin-1"))
def test_part_headers_fast_path_makes_the_part_the_general_parser_makes(block):
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        text = block.decode("latin-1")
    try:
        expected = _parse_part_headers_general(text)
    except MultipartError as exc:
        with pytest.raises(MultipartError, match=re.escape(str(exc))):
            parse_part_headers(block)
        return
    assert parse_part_headers(block) == expected


_CONTENTS = st.one_of(st.binary(max_size=64), st.sampled_from([b"", TRICKY, b"\r\n--" + B, b"\xff\xfe"]))
_FILE_HEADERS = (b'Content-Disposition: form-data; name="file"; filename="a.bin"\r\n'
                 b"Content-Type: application/octet-stream")
_CLEAN_FIELDS = st.builds(lambda n: f'Content-Disposition: form-data; name="{n}"'.encode(),
                          st.sampled_from(["session_id", "agent_id", "metadata", "ttl", "filename"]))


@st.composite
def _forms(draw) -> bytes:
    """Mostly the clients' shape (a few text fields, then the file part), each aspect of it
    broken now and then: odd headers, parts in any order, padding, preamble, a bad end."""
    odd = st.integers(0, 5).map(lambda i: i == 0)
    headers = st.one_of(_CLEAN_FIELDS, _HEADER_BLOCKS) if draw(odd) else _CLEAN_FIELDS
    parts = draw(st.lists(st.tuples(headers, _CONTENTS), max_size=4))
    file_part = (_FILE_HEADERS, draw(_CONTENTS))
    if draw(odd):
        parts.insert(draw(st.integers(0, len(parts))), file_part)
        if draw(odd):
            parts.pop(draw(st.integers(0, len(parts) - 1)))
    else:
        parts.append(file_part)
    body = bytearray(b"preamble\r\n" if draw(odd) else b"")
    for headers, content in parts:
        pad = draw(st.sampled_from([b" ", b"x", b"\t", b"-"])) if draw(odd) else b""
        body += b"--" + B + pad + b"\r\n" + headers + b"\r\n\r\n" + content + b"\r\n"
    end = b"--" + B + b"--"
    if draw(odd):
        end = draw(st.sampled_from([b"--" + B, b"--" + B + b"-", b"--" + B + b"\r\n", b""]))
    body += end + draw(st.sampled_from([b"", b"\r\n", b"epilogue"]))
    if draw(odd):
        del body[len(body) - draw(st.integers(1, min(12, len(body)))):]
    return bytes(body)


def _outcome(body: bytes, stepwise: bool):
    reader = FormReader(B, max_field_bytes=48, max_fields=3)
    try:
        events = reader.feed_stepwise(body) if stepwise else reader.feed(body)
        reader.close()
    except MultipartError as exc:
        return type(exc), str(exc)
    data = b"".join(bytes(ev.data) for ev in events if isinstance(ev, PartData))
    starts = [ev.part for ev in events if isinstance(ev, PartStart)]
    return reader.fields, reader.file_part, starts, data, reader.done, reader.parser.parts


@settings(max_examples=3000, deadline=None)
@given(_forms())
@example(body_of([field("session_id", b"s"), field("metadata", b'{"a": 1}'), filepart(b"x" * 100)]))
@example(body_of([filepart(b"")]))
@example(body_of([filepart(b"1"), field("ttl", b"1d")], epilogue=b"\r\n"))
def test_a_whole_form_in_one_piece_is_read_as_the_stepwise_parser_reads_it(body):
    """`FormReader.feed` reads a whole form in its first piece by itself: on every body it must
    give the fields, file part and bytes the stepwise parser gives, or raise the same error."""
    assert _outcome(body, stepwise=False) == _outcome(body, stepwise=True)


def test_a_whole_form_in_one_piece_is_not_copied():
    body = body_of([field("session_id", b"s"), filepart(b"x" * 4096)])
    events = FormReader(B).feed(body)
    assert isinstance(events[1], PartData) and events[1].data.obj is body
