"""The /d/ route's query parse: the first value of each parameter, as parse_qs gives it, for
every query string (its fast path skips decoding only when there is nothing to decode)."""

from urllib.parse import parse_qs

from hypothesis import given
from hypothesis import strategies as st

from artifacta_box.http.downloads import signed_query

PIECES = ["e", "s", "k", "x", "=", "&", "&&", "==", ";", "%41", "%zz", "%2", "+", "é", "1796",
          "wzTq-_", ""]


def reference(query: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(query, keep_blank_values=True, errors="replace").items()}


@given(st.lists(st.sampled_from(PIECES), max_size=12).map("".join))
def test_the_first_values_are_parse_qs_ones(query):
    assert signed_query(query) == reference(query)


def test_a_minted_url_query():
    q = "e=1796221813&k=key_abcdefghijklmnop&s=wzTqv6Opieb4rX_UTfFT4QogS-2s-2w40Fd6AjDvaMg"
    assert signed_query(q) == {"e": "1796221813", "k": "key_abcdefghijklmnop",
                               "s": "wzTqv6Opieb4rX_UTfFT4QogS-2s-2w40Fd6AjDvaMg"}
    assert signed_query("e=1&e=2&s=&k") == {"e": "1", "s": "", "k": ""}  # first wins, blanks kept
