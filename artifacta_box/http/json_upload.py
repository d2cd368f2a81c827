"""The JSON upload body (`{"filename": ..., "content": "<base64>", ...}`), read as it streams.

`UploadJsonReader.feed(chunk)` takes the body in any pieces and returns the bytes of the
`content` string decoded so far, so they go straight to the blob writer: the body is never
collected whole (a 13 MB upload used to hold its body, its text and its decoded bytes at once).
Every other member is kept as its raw JSON text (bounded: `max_fields_chars`) and parsed with
`json.loads` at the end, so those fields — duplicates, numbers, escapes, nesting — behave
exactly as they did when the whole body went through `json.loads`. Members come in any order,
`content` first or last.

Equivalence with `json.loads(body)` then `binascii.a2b_base64(content, strict_mode=True)`
(tests/fuzz/test_json_upload_fuzz.py compares the two on generated bodies):
- the body must be UTF-8 and one JSON object; any syntax error, truncation or trailing data is
  a `JsonBodyError`, raised when it is seen (at the latest by `finish`);
- JSON string escapes in `content` (`\\/`, `\\u0041`...) are decoded before base64, so an escaped
  character is what json.loads would have produced (`\\n` is a newline, refused by strict base64);
- problems of the base64 text itself (length, `=` inside, characters outside the alphabet) are
  recorded, not raised: the caller reports them after the other fields' errors, in the order
  the whole-body code did (`Base64Stream`);
- `content` twice is refused (json.loads would silently keep the last one).
"""

from __future__ import annotations

import binascii
import codecs
import json
import re
from typing import Any

CONTENT_FIELD = "content"
_WHITESPACE = " \t\n\r"
# Raw control characters, which no JSON string may hold (looked for only in content that is
# already known to be bad base64: strict base64 refuses them first).
_CONTROL = re.compile(r"[\x00-\x1f]")
# Where a run of plain characters stops in a string other than content.
_STRING_STOP = re.compile(r'["\\]')
# Structural characters of a value other than content (strings are skipped whole).
_VALUE_STOP = re.compile(r'["\[\]{},]')
_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
                   "t": "\t"}
_HEX = frozenset("0123456789abcdefABCDEF")
# What an escaped character outside printable ASCII becomes on its way to base64: still refused
# as bad base64, but never mistaken for a raw control character (which would make it bad JSON).
_NOT_BASE64 = "\x80"


class JsonBodyError(ValueError):
    """The body is not one JSON object in UTF-8 (the message says where and what)."""


class FieldsTooLarge(ValueError):
    """The members other than content are larger than the reader's bound."""


class Base64Stream:
    """Strict base64 decoded as it arrives, in multiples of 4 characters.

    The last characters are held back until `close`: only there can `=` be padding. What is
    wrong is recorded (`problem`), never raised; after the first problem nothing more is
    decoded (nothing could be stored)."""

    def __init__(self) -> None:
        self._carry = ""
        self._consumed = 0          # characters decoded so far (a multiple of 4)
        self.chars = 0              # all characters, known after close
        self.decoded = 0            # bytes decoded so far
        self.padding = 0
        self.padding_inside = False
        self.invalid = False
        self.control = False        # a raw control character was seen (not JSON at all)
        self.closed = False

    def feed(self, text: str) -> bytes:
        carry = self._carry + text if self._carry else text
        if len(carry) < 8:
            self._carry = carry
            return b""
        cut = (len(carry) - 4) // 4 * 4  # keep at least the last 4: they may be padding
        portion, self._carry = carry[:cut], carry[cut:]
        self._consumed += cut
        if "=" in portion:  # never the last quad: padding inside the data
            self.padding_inside = True
        return self._decode(portion)

    def _decode(self, portion: str) -> bytes:
        if self.invalid or self.padding_inside or not portion:
            if _CONTROL.search(portion):
                self.control = True
            return b""
        try:
            data = binascii.a2b_base64(portion, strict_mode=True)
        except (binascii.Error, ValueError):  # outside the alphabet, or not ASCII
            self.invalid = True
            if _CONTROL.search(portion):
                self.control = True
            return b""
        self.decoded += len(data)
        return data

    def close(self) -> bytes:
        tail, self._carry = self._carry, ""
        self.closed = True
        self.chars = n = self._consumed + len(tail)
        self.padding = 2 if tail.endswith("==") else 1 if tail.endswith("=") else 0
        inside = tail.find("=")
        if inside >= 0 and self._consumed + inside < n - 2:
            self.padding_inside = True
        if n % 4:
            if _CONTROL.search(tail):
                self.control = True
            return b""
        return self._decode(tail)

    @property
    def size(self) -> int:
        """The decoded size the text declares (its length and padding), once closed."""
        return self.chars // 4 * 3 - self.padding


# Reader states.
_START, _FIRST_KEY, _NEXT_KEY, _KEY, _COLON, _VALUE, _CONTENT, _OTHER, _AFTER_VALUE, _END, \
    _NOT_OBJECT = range(11)


class UploadJsonReader:
    """One JSON upload body: `feed` each piece as it arrives (it returns the content bytes it
    completes), then `finish`; after that `fields` holds every member but content, parsed by
    json.loads, and `content` the base64 stream's verdict (None when content was not a string).
    Malformed JSON raises `JsonBodyError`; other members past `max_fields_chars`,
    `FieldsTooLarge`."""

    def __init__(self, max_fields_chars: int) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._max_fields = max_fields_chars
        self._fields_chars = 0
        self._offset = 0            # characters scanned before the current piece
        self._state = _START
        self._any_input = False
        self._members: list[str] = []
        self._raw: list[str] = []   # the key, member or non-object body being collected
        self._key = ""
        self._escape = ""           # a string escape split across pieces ("\\", "\\u00"...)
        self._after_high = False    # content's last character was an escaped high surrogate
        self._depth = 0             # nesting inside a value other than content
        self._in_string = False
        self._keys_seen_content = False
        self.content: Base64Stream | None = None
        self.fields: dict[str, Any] | None = None

    # ------------------------------------------------------------------ public

    def feed(self, chunk: bytes | bytearray | memoryview) -> bytes:
        """Take the next piece of the body; the content bytes it completes."""
        if chunk:
            self._any_input = True
        try:
            text = self._utf8.decode(chunk)
        except UnicodeDecodeError:
            raise JsonBodyError("The request body is not valid UTF-8.") from None
        return self._scan(text)

    def finish(self) -> bytes:
        """The end of the body: the last content bytes; `fields` and `content` are set."""
        try:
            text = self._utf8.decode(b"", final=True)
        except UnicodeDecodeError:
            raise JsonBodyError("The request body is not valid UTF-8.") from None
        tail = self._scan(text)
        if not self._any_input:
            raise JsonBodyError("A JSON object body is required.")
        if self._state == _NOT_OBJECT:
            self._loads("".join(self._raw))  # raises when it is not JSON at all
            raise JsonBodyError("The request body must be a JSON object.")
        if self._state != _END:
            raise self._error("the body ends before the JSON object does")
        self.fields = self._loads("{" + ",".join(self._members) + "}")
        return tail

    # ------------------------------------------------------------------ scanning

    def _error(self, what: str, pos: int | None = None) -> JsonBodyError:
        where = f" (at character {self._offset + pos})" if pos is not None else ""
        return JsonBodyError(f"The request body is not valid JSON: {what}{where}.")

    def _loads(self, text: str) -> Any:
        try:
            return json.loads(text)
        except RecursionError:
            raise JsonBodyError("The JSON body is nested too deeply.") from None
        except ValueError as exc:
            raise JsonBodyError(f"The request body is not valid JSON: {exc}.") from None

    def _collect(self, piece: str) -> None:
        self._fields_chars += len(piece)
        if self._fields_chars > self._max_fields:
            raise FieldsTooLarge(self._max_fields)
        self._raw.append(piece)

    def _scan(self, text: str) -> bytes:
        out: list[bytes] = []
        pos, end = 0, len(text)
        while pos < end:
            state = self._state
            if state in (_START, _FIRST_KEY, _NEXT_KEY, _COLON, _VALUE, _AFTER_VALUE, _END):
                while pos < end and text[pos] in _WHITESPACE:
                    pos += 1
                if pos == end:
                    break
                pos = self._structural(text, pos)
            elif state == _CONTENT:
                pos = self._content(text, pos, out)
            elif state == _KEY:
                pos = self._string(text, pos)
                if not self._in_string:
                    self._state = _COLON
            elif state == _OTHER:
                pos = self._other(text, pos)
            else:  # _NOT_OBJECT: collected whole (bounded), judged by json.loads at the end
                self._collect(text[pos:])
                pos = end
        self._offset += end
        return b"".join(out)

    def _structural(self, text: str, pos: int) -> int:
        """One character between tokens (whitespace already skipped); the next position."""
        state, ch = self._state, text[pos]
        if state == _START:
            if ch == "{":
                self._state = _FIRST_KEY
                return pos + 1
            self._state = _NOT_OBJECT
            return pos
        if state in (_FIRST_KEY, _NEXT_KEY):
            if ch == '"':
                self._raw = []
                self._in_string = True
                self._collect('"')
                self._state = _KEY
                return pos + 1
            if ch == "}" and state == _FIRST_KEY:
                self._state = _END
                return pos + 1
            raise self._error("expecting a property name in double quotes", pos)
        if state == _COLON:
            if ch != ":":
                raise self._error("expecting ':' after a property name", pos)
            raw_key = "".join(self._raw)
            self._key = self._loads(raw_key)
            if self._key == CONTENT_FIELD:
                if self._keys_seen_content:
                    raise JsonBodyError(
                        "The JSON body has more than one 'content' member; send it once.")
                self._keys_seen_content = True
            self._raw = [raw_key, ":"]
            self._fields_chars += 1
            self._state = _VALUE
            return pos + 1
        if state == _VALUE:
            if self._key == CONTENT_FIELD and ch == '"':
                self._fields_chars -= sum(map(len, self._raw))  # not a field after all
                self._raw = []
                self.content = Base64Stream()
                self._state = _CONTENT
                return pos + 1
            self._depth = 0
            self._in_string = False
            self._state = _OTHER
            return pos
        if state == _AFTER_VALUE:
            if ch == ",":
                self._state = _NEXT_KEY
                return pos + 1
            if ch == "}":
                self._state = _END
                return pos + 1
            raise self._error("expecting ',' or '}' after a value", pos)
        raise self._error("extra data after the JSON object", pos)  # _END

    def _string(self, text: str, pos: int) -> int:
        """Collect a string other than content (key or inside a value) up to its closing
        quote; escapes are kept raw (json.loads decodes them) but never end the string."""
        end = len(text)
        while pos < end:
            if self._escape:
                self._collect(text[pos])
                self._escape = ""
                pos += 1
                continue
            m = _STRING_STOP.search(text, pos)
            if m is None:
                self._collect(text[pos:])
                return end
            stop = m.start()
            self._collect(text[pos:stop + 1])
            if text[stop] == '"':
                self._in_string = False
                return stop + 1
            self._escape = "\\"
            pos = stop + 1
        return pos

    def _other(self, text: str, pos: int) -> int:
        """Collect a value other than content up to the ',' or '}' that ends it."""
        end = len(text)
        while pos < end:
            if self._in_string:
                pos = self._string(text, pos)
                continue
            m = _VALUE_STOP.search(text, pos)
            if m is None:
                self._collect(text[pos:])
                return end
            stop, ch = m.start(), text[m.start()]
            if ch in ",}" and self._depth == 0:
                self._collect(text[pos:stop])
                self._members.append("".join(self._raw))
                self._raw = []
                self._state = _NEXT_KEY if ch == "," else _END
                return stop + 1
            self._collect(text[pos:stop + 1])
            if ch == '"':
                self._in_string = True
            elif ch in "[{":
                self._depth += 1
            elif ch in "]}":
                self._depth -= 1
                if self._depth < 0:
                    raise self._error(f"unexpected {ch!r}", stop)
            pos = stop + 1
        return pos

    def _content(self, text: str, pos: int, out: list[bytes]) -> int:
        """Decode the content string up to its closing quote, escapes included. Runs of plain
        characters are found with str.find (memchr speed; a regex character class costs ten
        times that), and all of this piece goes to the base64 stream in one call."""
        stream = self.content
        assert stream is not None
        end = len(text)
        quote = text.find('"', pos)
        if not self._escape:
            # The common cases at once: no escapes, or only `\/` (clients that escape slashes).
            # With no backslash left after replacing `\/`, every backslash began a `\/`.
            run = text[pos:end if quote < 0 else quote]
            if run:
                self._after_high = False
            if "\\" in run:
                run = run.replace("\\/", "/")
            if "\\" not in run:
                if quote < 0:
                    data = stream.feed(run)
                    if data:
                        out.append(data)
                    return end
                self._end_content([run], out)
                return quote + 1
        pieces: list[str] = []
        backslash = text.find("\\", pos)
        while pos < end:
            if self._escape:
                pos = self._content_escape(text, pos, pieces)
                continue
            if 0 <= quote < pos:  # that one was escaped
                quote = text.find('"', pos)
            if 0 <= backslash < pos:
                backslash = text.find("\\", pos)
            stop = min(i for i in (quote, backslash, end) if i >= 0)
            if stop > pos:
                pieces.append(text[pos:stop])
                self._after_high = False
            if stop == end:
                pos = end
                break
            if stop == quote:
                self._end_content(pieces, out)
                return stop + 1
            self._escape = "\\"
            pos = stop + 1
        data = stream.feed("".join(pieces))
        if data:
            out.append(data)
        return pos

    def _end_content(self, pieces: list[str], out: list[bytes]) -> None:
        stream = self.content
        assert stream is not None
        data = stream.feed("".join(pieces)) + stream.close()
        if stream.control:
            # Raw control characters are not allowed in a JSON string: the body is not JSON,
            # which is refused before anything about its fields or its base64.
            raise self._error("a control character inside the content string")
        if data:
            out.append(data)
        self._state = _AFTER_VALUE

    def _content_escape(self, text: str, pos: int, pieces: list[str]) -> int:
        """Continue an escape sequence in content; add the character it stands for."""
        esc = self._escape
        if esc == "\\":
            ch = text[pos]
            if ch in _SIMPLE_ESCAPES:
                self._escape = ""
                char = _SIMPLE_ESCAPES[ch]
                pieces.append(char if char >= " " else _NOT_BASE64)
                self._after_high = False
                return pos + 1
            if ch != "u":
                raise self._error(f"invalid escape '\\{ch}' in the content string", pos)
            self._escape = "\\u"
            return pos + 1
        need = 6 - len(esc)
        digits = text[pos:pos + need]
        if any(c not in _HEX for c in digits):
            raise self._error("invalid \\uXXXX escape in the content string", pos)
        esc += digits
        if len(esc) < 6:
            self._escape = esc
            return pos + len(digits)
        self._escape = ""
        # Any character past ASCII (a surrogate too) is outside the base64 alphabet.
        code = int(esc[2:], 16)
        if self._after_high and 0xDC00 <= code <= 0xDFFF:
            self._after_high = False  # json.loads joins the pair into one character
        else:
            pieces.append(chr(code) if 0x20 <= code < 0x80 else _NOT_BASE64)
            self._after_high = 0xD800 <= code <= 0xDBFF
        return pos + len(digits)
