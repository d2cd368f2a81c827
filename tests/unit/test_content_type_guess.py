"""The content type guessed from a filename (an upload without a type): what mimetypes guesses
for that name, whether or not its extension was seen before."""

from __future__ import annotations

import mimetypes

import pytest

from artifacta_box.services.validation import DEFAULT_CONTENT_TYPE, content_type, guess_content_type

mimetypes.init()
KNOWN = sorted(set(mimetypes.types_map) | set(mimetypes.common_types))
NAMES = [
    *(f"report{ext}" for ext in KNOWN),
    *(f"REPORT{ext.upper()}" for ext in KNOWN),
    "a.tar.gz", "a.TAR.GZ", "a.tar.Z", "a.tgz", "a.TGZ", "a.svgz", "b.txt.bz2", "c.json.br",
    "data:text/html,<b>x</b>", "data:image/png;base64,AAAA", "x:y.txt", "no-extension",
    ".bashrc", "..txt", "dir.d/file", "dir.txt/file", "a.b.c.json", "résumé.PDF", "a.",
    "a.zzunknown", "weird.Tx T", "name.txt ",
]


@pytest.mark.parametrize("name", NAMES)
def test_the_guess_is_what_mimetypes_guesses_first_and_second_time(name):
    expected = mimetypes.guess_type(name, strict=False)[0]
    assert guess_content_type(name) == expected  # first: computed
    assert guess_content_type(name) == expected  # then: remembered by extension
    assert content_type(None, name) == (expected or DEFAULT_CONTENT_TYPE)
