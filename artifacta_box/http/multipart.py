"""An incremental multipart/form-data parser (RFC 7578 over RFC 2046), framework-free.

Feed it the body in pieces of any size; it hands back events. Part bodies are handed out as
memoryview slices of the bytes you fed (no copy), found with `bytes.find` on the incoming
chunk; only a possible partial delimiter at the very end of a chunk (fewer bytes than the
delimiter) is held back and copied. Part headers, the preamble and text fields are bounded, so
memory stays bounded whatever the client sends.

Two layers:

- `MultipartParser` knows the wire format: `feed(data)` → `[PartStart, PartData..., PartEnd, ...]`.
- `FormReader` knows the upload form: it buffers the small text fields (capped in size and
  count) and passes only the file part's bytes through, so the caller can stream them to disk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

# RFC 2046 §5.1.1: 1-70 characters from bchars, not ending in a space.
_BOUNDARY_RE = re.compile(r"^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$")

MAX_HEADER_BYTES = 16 * 1024     # one part's header block
MAX_PARTS = 64                   # parts per body
MAX_PADDING = 256                # transport padding after a delimiter


class MultipartError(ValueError):
    """The body is not well-formed multipart/form-data (or breaks a bound); the message says how."""


class FieldTooLarge(MultipartError):
    """A text field is larger than allowed."""


@dataclass(frozen=True)
class Part:
    """A part's headers: the form field `name`, the optional `filename` and `content_type`."""

    name: str
    filename: str | None
    content_type: str | None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PartStart:
    part: Part


@dataclass(frozen=True)
class PartData:
    data: memoryview


@dataclass(frozen=True)
class PartEnd:
    part: Part


Event = PartStart | PartData | PartEnd


# ---------------------------------------------------------------------------- header values


def boundary_from_content_type(value: str | None) -> bytes:
    """The boundary of a `multipart/form-data; boundary=...` Content-Type, validated."""
    if not value:
        raise MultipartError("Content-Type multipart/form-data needs a boundary parameter.")
    mime, params = parse_header_value(value)
    if mime != "multipart/form-data":
        raise MultipartError(f"Expected multipart/form-data, got {mime!r}.")
    boundary = params.get("boundary")
    if not boundary:
        raise MultipartError("Content-Type multipart/form-data is missing its boundary parameter.")
    if not _BOUNDARY_RE.fullmatch(boundary):
        raise MultipartError(
            "The multipart boundary is invalid: it must be 1-70 letters, digits or '()+_,-./:=? "
            "and must not end with a space."
        )
    return boundary.encode("ascii")


# The parameters nearly every client sends (`form-data; name="file"; filename="a.bin"`, a
# boundary): each `;name=value` with a token name (no `*`: no RFC 5987 form), a quoted value
# without quotes or backslashes inside or a bare one without blanks, `;` or quotes, no blanks
# around `=` and none after a value. On those the general parser below makes the same split;
# a regex makes it in 40 % of the time (the two header values of a 4 KiB upload, the request's
# Content-Type and the part's Content-Disposition, were 2 % of its loop time).
_SIMPLE_PARAM_RE = re.compile(
    r';[ \t]*([!#$%&\'+\-.^_`|~0-9A-Za-z]+)=(?:"([^"\\]*)"|([^;"\\ \t]*))')


def parse_header_value(value: str) -> tuple[str, dict[str, str]]:
    """Split `main; a=1; b="x;y"` into ('main', {'a': '1', 'b': 'x;y'}).

    The main value and parameter names are lower-cased; quoted strings honour backslash
    escapes. RFC 5987 extended parameters (`filename*=UTF-8''%E2%82%AC.txt`) are decoded and
    stored under the plain name, replacing the plain parameter; an undecodable one is ignored.
    """
    i = value.find(";")
    if i < 0:
        return value.strip().lower(), {}
    params: dict[str, str] = {}
    n, pos, match = len(value), i, _SIMPLE_PARAM_RE.match
    while pos < n:
        m = match(value, pos)
        if m is None:  # not the simple shape: the general parser decides
            return _parse_header_value_general(value)
        name, quoted, bare = m.groups()
        params[name.lower()] = bare if quoted is None else quoted
        pos = m.end()
    return value[:i].strip().lower(), params


def _parse_header_value_general(value: str) -> tuple[str, dict[str, str]]:
    """`parse_header_value` for any input, character by character."""
    n = len(value)
    i = value.find(";")
    if i < 0:
        return value.strip().lower(), {}
    main = value[:i].strip().lower()
    params: dict[str, str] = {}
    extended: dict[str, str] = {}
    while i < n:
        # at a ';' (or past the end)
        i += 1
        while i < n and value[i] in " \t":
            i += 1
        j = i
        while j < n and value[j] not in "=;":
            j += 1
        key = value[i:j].strip().lower()
        if j >= n or value[j] == ";":
            i = j
            continue  # a bare token such as `form-data; foo;` — ignored
        j += 1  # past '='
        while j < n and value[j] in " \t":
            j += 1
        if j < n and value[j] == '"':
            j += 1
            out = []
            while j < n and value[j] != '"':
                if value[j] == "\\" and j + 1 < n:
                    j += 1
                out.append(value[j])
                j += 1
            if j >= n:
                raise MultipartError(f"Unterminated quoted string in header parameter {key!r}.")
            j += 1  # closing quote
            val = "".join(out)
            while j < n and value[j] != ";":
                j += 1
        else:
            k = value.find(";", j)
            k = n if k < 0 else k
            val = value[j:k].strip()
            j = k
        i = j
        if not key:
            continue
        if key.endswith("*"):
            decoded = _decode_rfc5987(val)
            if decoded is not None:
                extended[key[:-1]] = decoded
        else:
            params[key] = val
    params.update(extended)
    return main, params


def _decode_rfc5987(value: str) -> str | None:
    """`charset'lang'pct-encoded` → text; None when malformed or the charset is unknown."""
    parts = value.split("'", 2)
    if len(parts) != 3:
        return None
    charset = parts[0].strip().lower() or "utf-8"
    if charset not in ("utf-8", "iso-8859-1", "us-ascii"):
        return None
    try:
        return unquote(parts[2], encoding=charset, errors="strict")
    except (UnicodeDecodeError, LookupError):
        return None


def _html5_unescape(value: str) -> str:
    """Browsers and httpx send `"` inside a quoted name/filename as %22 (the WHATWG form rule)."""
    return value.replace("%22", '"') if "%22" in value else value


# A part's header block as clients write it (httpx, browsers, curl): the Content-Disposition
# line with a quoted name and maybe a quoted filename, then maybe a Content-Type line. On those
# the general parser below makes the same Part; one regex makes it in a third of the time.
_SIMPLE_PART_HEADERS_RE = re.compile(
    r'Content-Disposition: (form-data; name="([^"\\\r\n]*)"(?:; filename="([^"\\\r\n]*)")?)'
    r'(?:\r\nContent-Type:([^\r\n]*))?')


def parse_part_headers(block: bytes) -> Part:
    """Parse one part's header block (without the terminating blank line)."""
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        return _parse_part_headers_general(block.decode("latin-1"))
    m = _SIMPLE_PART_HEADERS_RE.fullmatch(text)
    if m is None:
        return _parse_part_headers_general(text)
    disposition, name, filename, content_type = m.groups()
    headers = {"content-disposition": disposition}
    if content_type is not None:
        content_type = headers["content-type"] = content_type.strip()
    return Part(
        name=_html5_unescape(name),
        filename=_html5_unescape(filename) if filename is not None else None,
        content_type=content_type or None,
        headers=headers,
    )


def _parse_part_headers_general(text: str) -> Part:
    """`parse_part_headers` for any header block (decoded), line by line."""
    headers: dict[str, str] = {}
    last = None
    for line in text.split("\r\n"):
        if not line:
            continue
        if line[0] in " \t" and last is not None:  # obsolete folding
            headers[last] += " " + line.strip()
            continue
        name, sep, val = line.partition(":")
        name = name.strip().lower()
        if not sep or not name:
            raise MultipartError(f"Malformed part header line {line[:60]!r}.")
        headers[name] = val.strip()
        last = name
    disposition = headers.get("content-disposition")
    if disposition is None:
        raise MultipartError("A part has no Content-Disposition header.")
    kind, params = parse_header_value(disposition)
    if kind != "form-data":
        raise MultipartError(f"A part's Content-Disposition is {kind!r}, expected form-data.")
    name = params.get("name")
    if name is None:
        raise MultipartError("A part's Content-Disposition has no name parameter.")
    filename = params.get("filename")
    return Part(
        name=_html5_unescape(name),
        filename=_html5_unescape(filename) if filename is not None else None,
        content_type=headers.get("content-type") or None,
        headers=headers,
    )


# ---------------------------------------------------------------------------- wire format

_PREAMBLE, _AFTER_DELIMITER, _HEADERS, _BODY, _EPILOGUE = range(5)


class MultipartParser:
    """Streaming parser: `feed(data)` any number of times, then `close()`.

    Every part's body is delimited by CRLF "--" boundary; the very first boundary may start
    the body. After the close delimiter (`--boundary--`) the rest (epilogue) is ignored.
    """

    def __init__(self, boundary: bytes, *, max_header_bytes: int = MAX_HEADER_BYTES,
                 max_parts: int = MAX_PARTS) -> None:
        self.delimiter = b"\r\n--" + boundary
        self.max_header_bytes = max_header_bytes
        self.max_parts = max_parts
        self.parts = 0
        self.done = False
        self._state = _PREAMBLE
        # The first boundary may be at offset 0: pretend a CRLF precedes the body.
        self._pending = b"\r\n"
        self._part: Part | None = None

    def feed(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Consume `data`; returns the events it completes. PartData views point into `data`
        (or a small copy of held-back bytes), valid until the caller lets go of them."""
        if self._pending:
            data = self._pending + bytes(data)
            self._pending = b""
        elif not isinstance(data, bytes):
            data = bytes(data)
        events: list[Event] = []
        n = len(data)
        pos = 0
        delim = self.delimiter
        dlen = len(delim)
        while True:
            state = self._state
            if state == _BODY:
                idx = data.find(delim, pos)
                if idx >= 0:
                    if idx > pos:
                        events.append(PartData(memoryview(data)[pos:idx]))
                    events.append(PartEnd(self._part))  # type: ignore[arg-type]
                    self._part = None
                    pos = idx + dlen
                    self._state = _AFTER_DELIMITER
                    continue
                keep = _partial_delimiter_start(data, max(pos, n - dlen + 1), delim)
                if keep > pos:
                    events.append(PartData(memoryview(data)[pos:keep]))
                self._pending = data[keep:]
                return events
            if state == _PREAMBLE:
                idx = data.find(delim, pos)
                if idx < 0:
                    # Discard the preamble but keep enough to match a delimiter split here.
                    self._pending = data[max(pos, n - dlen + 1):]
                    return events
                pos = idx + dlen
                self._state = _AFTER_DELIMITER
                continue
            if state == _AFTER_DELIMITER:
                if n - pos < 2:
                    self._pending = data[pos:]
                    return events
                if data[pos:pos + 2] == b"--":
                    self.done = True
                    self._state = _EPILOGUE
                    return events
                eol = data.find(b"\r\n", pos, pos + MAX_PADDING + 2)
                if eol < 0:
                    if n - pos > MAX_PADDING:
                        raise MultipartError("Unexpected data after a multipart boundary.")
                    self._pending = data[pos:]
                    return events
                if data[pos:eol].strip(b" \t"):
                    raise MultipartError("Unexpected data after a multipart boundary.")
                pos = eol + 2
                self._state = _HEADERS
                continue
            if state == _HEADERS:
                if n - pos < 2:
                    self._pending = data[pos:]
                    return events
                if data[pos:pos + 2] == b"\r\n":  # a part with no headers at all
                    block = b""
                    pos += 2
                else:
                    end = data.find(b"\r\n\r\n", pos, pos + self.max_header_bytes + 4)
                    if end < 0:
                        if n - pos > self.max_header_bytes:
                            raise MultipartError(
                                f"A part's headers are larger than {self.max_header_bytes} bytes."
                            )
                        self._pending = data[pos:]
                        return events
                    block = data[pos:end]
                    pos = end + 4
                self.parts += 1
                if self.parts > self.max_parts:
                    raise MultipartError(f"Too many parts (more than {self.max_parts}).")
                self._part = parse_part_headers(block)
                events.append(PartStart(self._part))
                self._state = _BODY
                continue
            # _EPILOGUE: ignore everything
            return events

    def close(self) -> None:
        """The body has ended: raise unless the close delimiter was seen."""
        if not self.done:
            if self._state == _PREAMBLE:
                raise MultipartError("The body contains no multipart boundary.")
            raise MultipartError(
                "The multipart body ended before its closing boundary (truncated upload?)."
            )


def _partial_delimiter_start(data: bytes, start: int, delim: bytes) -> int:
    """The offset of the earliest suffix of `data` (beginning at or after `start`) that is a
    proper prefix of `delim`, or len(data) if none: those bytes must wait for the next chunk."""
    n = len(data)
    p = data.find(b"\r", start)
    while p >= 0:
        if delim.startswith(data[p:]):
            return p
        p = data.find(b"\r", p + 1)
    return n


# ---------------------------------------------------------------------------- upload form


# The file part's own parser events, passed through as the parser made them.
FileEvent = PartStart | PartData


class FormReader:
    """The upload form on top of the parser: text fields buffered (each at most
    `max_field_bytes`, at most `max_fields` of them), the `file_field` part streamed out.

    `feed()` returns only the file part's PartStart/PartData events; text fields are in `fields` (decoded
    UTF-8) once complete. Exactly one file part is accepted.
    """

    def __init__(self, boundary: bytes, *, file_field: str = "file",
                 max_field_bytes: int = 64 * 1024, max_fields: int = 32,
                 max_header_bytes: int = MAX_HEADER_BYTES) -> None:
        self.parser = MultipartParser(boundary, max_header_bytes=max_header_bytes,
                                      max_parts=max_fields + 1)
        self.file_field = file_field
        self.max_field_bytes = max_field_bytes
        self.max_fields = max_fields
        self.fields: dict[str, str] = {}
        self.file_part: Part | None = None
        self.file_done = False
        self._current: Part | None = None
        self._buf = bytearray()
        self._in_file = False
        self._first = True

    @property
    def done(self) -> bool:
        return self.parser.done

    def feed(self, data: bytes | bytearray | memoryview) -> list[FileEvent]:
        """Consume the next piece of the body; returns the file part's events it completes."""
        if self._first and type(data) is bytes:
            self._first = False
            events = self._feed_whole(data)
            if events is not None:
                return events
        self._first = False
        return self.feed_stepwise(data)

    def _feed_whole(self, data: bytes) -> list[FileEvent] | None:
        """The whole form in the first piece, in the shape clients send (boundary first, parts
        with headers, one CRLF after each delimiter, the close delimiter in this piece): each
        part found by one `bytes.find` of the delimiter, no copy of the body (the stepwise
        parser copies the first piece to prepend a CRLF and walks a state machine per part;
        it was ~5 % of a 4 KiB upload's loop time). Anything else — a preamble, padding, a
        part left open, any bound or rule broken — returns None having changed nothing, and
        `feed_stepwise` decides (its errors included), so the two always agree."""
        parser = self.parser
        delim = parser.delimiter
        dlen = len(delim)
        if not data.startswith(delim[2:]) or data[dlen - 2:dlen] != b"\r\n":
            return None
        pos = dlen
        max_header = parser.max_header_bytes
        fields: dict[str, str] = {}
        file_part: Part | None = None
        file_start = file_end = 0
        parts = 0
        while True:
            end = data.find(b"\r\n\r\n", pos, pos + max_header + 4)
            parts += 1
            if end < 0 or parts > parser.max_parts:
                return None
            try:
                part = parse_part_headers(data[pos:end])
            except MultipartError:
                return None
            start = end + 4
            idx = data.find(delim, start)
            if idx < 0:
                return None
            if part.name == self.file_field:
                if file_part is not None:
                    return None
                file_part, file_start, file_end = part, start, idx
            else:
                if (part.name in fields or len(fields) >= self.max_fields
                        or idx - start > self.max_field_bytes):
                    return None
                try:
                    fields[part.name] = data[start:idx].decode("utf-8")
                except UnicodeDecodeError:
                    return None
            pos = idx + dlen
            after = data[pos:pos + 2]
            if after == b"--":
                break
            if after != b"\r\n":
                return None
            pos += 2
        if file_part is None:
            return None
        parser.parts = parts
        parser.done = True
        parser._state = _EPILOGUE
        parser._pending = b""
        self.fields = fields
        self.file_part = file_part
        self.file_done = True
        if file_end > file_start:
            return [PartStart(file_part), PartData(memoryview(data)[file_start:file_end])]
        return [PartStart(file_part)]

    def feed_stepwise(self, data: bytes | bytearray | memoryview) -> list[FileEvent]:
        """`feed` by the general parser, for a body in any shape and in pieces of any size."""
        out: list[FileEvent] = []
        for ev in self.parser.feed(data):
            if isinstance(ev, PartData):
                if self._in_file:
                    out.append(ev)
                else:
                    if len(self._buf) + len(ev.data) > self.max_field_bytes:
                        raise FieldTooLarge(
                            f"Form field {self._current.name!r} is larger than "  # type: ignore[union-attr]
                            f"{self.max_field_bytes} bytes."
                        )
                    self._buf += ev.data
            elif isinstance(ev, PartStart):
                part = ev.part
                if part.name == self.file_field:
                    if self.file_part is not None:
                        raise MultipartError(
                            f"The form has more than one {self.file_field!r} part; send exactly one."
                        )
                    self.file_part = part
                    self._in_file = True
                    out.append(ev)
                else:
                    if part.name in self.fields:
                        raise MultipartError(f"Form field {part.name!r} appears more than once.")
                    if len(self.fields) >= self.max_fields:
                        raise MultipartError(f"Too many form fields (more than {self.max_fields}).")
                    self._current = part
                    self._buf = bytearray()
            else:  # PartEnd
                if self._in_file:
                    self._in_file = False
                    self.file_done = True
                else:
                    name = self._current.name  # type: ignore[union-attr]
                    try:
                        self.fields[name] = self._buf.decode("utf-8")
                    except UnicodeDecodeError:
                        raise MultipartError(f"Form field {name!r} is not valid UTF-8.") from None
                    self._current = None
                    self._buf = bytearray()
        return out

    def close(self) -> None:
        """The body has ended: raise unless it was complete and had its file part."""
        self.parser.close()
        if self.file_part is None:
            raise MissingFilePart(f"The form has no {self.file_field!r} part: send the bytes as "
                                  f"a part named {self.file_field!r}.")


class MissingFilePart(MultipartError):
    """The form has no file part."""
