"""web/previews.py without a server: which preview an artifact gets, and that what the server
renders from an artifact's bytes can carry no script, no event handler, no style and no link
to anything but http(s)/mailto, however the document tries."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from artifacta_box.web import previews
from artifacta_box.web.previews import TEXT_PREVIEW_BYTES, preview_kind, render_markdown, render_preview


@pytest.mark.parametrize(("content_type", "filename", "kind", "inline"), [
    ("image/png", "x.bin", "image", "image/png"),
    ("IMAGE/JPEG; q=1", "x", "image", "image/jpeg"),
    ("image/svg+xml", "x.svg", "svg", "image/svg+xml"),
    ("application/pdf", "x", "pdf", "application/pdf"),
    ("audio/mpeg", "x", "audio", "audio/mpeg"),
    ("video/webm", "x", "video", "video/webm"),
    ("text/html; charset=utf-8", "x.txt", "html", "text/html"),  # the type wins over the name
    ("text/markdown", "x.txt", "markdown", None),
    ("application/json", "x", "json", None),
    ("application/vnd.api+json", "x", "json", None),
    ("text/csv", "x", "csv", None),
    ("text/tab-separated-values", "x", "tsv", None),
    ("text/x-python", "x", "text", None),
    ("application/xml", "x", "text", None),
    ("application/octet-stream", "Photo.PNG", "image", "image/png"),  # then the name decides
    ("application/octet-stream", "notes.md", "markdown", None),
    ("application/octet-stream", "run.log", "text", None),
    ("application/octet-stream", "Dockerfile", "text", None),
    ("application/octet-stream", "page.htm", "html", "text/html"),
    ("application/octet-stream", "model.safetensors", "none", None),
    ("application/x-msdownload", "setup.exe", "none", None),
    ("", "", "none", None),
])
def test_kind_by_content_type_then_filename(content_type, filename, kind, inline):
    chosen = preview_kind(content_type, filename)
    assert (chosen.name, chosen.inline_type) == (kind, inline)


def test_only_media_is_ever_served_inline():
    for ctype in ("text/plain", "application/javascript", "text/css", "application/json",
                  "text/xml", "application/x-shockwave-flash", "text/markdown"):
        assert previews.inline_type(ctype, "x") is None, ctype


HOSTILE_MARKDOWN = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](java&#x09;script:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](vbscript:msgbox(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "<javascript:alert(1)>",
    "![x](javascript:alert(1))",
    '![x](https://example.com/a.png "t" onerror=alert(1))',
    "<iframe src=https://example.com></iframe>",
    "<style>body{display:none}</style>",
    '<div style="position:fixed">x</div>',
    "<svg onload=alert(1)>",
    "<form action=https://evil.example><button>x</button></form>",
    "[x]: javascript:alert(1)\n\n[link][x]",
    "```html\n<script>alert(1)</script>\n```",
    "<!-- <script>alert(1)</script> -->",
]


class _Tags(HTMLParser):
    """Every element and attribute of an HTML fragment (text, escaped or not, is not a tag)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


ALLOWED_TAGS = set(previews._MARKDOWN_TAGS)


@pytest.mark.parametrize("source", HOSTILE_MARKDOWN)
def test_markdown_output_carries_no_active_content(source):
    html = str(render_markdown(source))
    for tag, attrs in _tags(html):
        assert tag in ALLOWED_TAGS and tag not in ("script", "style", "iframe", "img", "svg", "form"), html
        assert not any(name.startswith("on") or name == "style" for name in attrs), html
        href = attrs.get("href")
        if href is not None:
            assert href.startswith(("http://", "https://", "mailto:")) or not re.match(
                r"^\s*[a-z][a-z0-9+.-]*:", href, re.IGNORECASE), html


def test_the_markdown_check_sees_active_content():
    """The checks above can fail: raw HTML, once sanitised by nothing, is caught."""
    tags = _tags('<img src=x onerror=alert(1)><a href="javascript:x">y</a>')
    assert tags[0] == ("img", {"src": "x", "onerror": "alert(1)"})
    assert tags[1][1]["href"] == "javascript:x"


def test_markdown_renders_what_people_write():
    html = str(render_markdown("# Title\n\n**bold** [docs](https://example.com)\n\n| a |\n|---|\n| 1 |\n\n"
                               "```python\nx = 1\n```\n\n![chart](https://example.com/c.png)"))
    assert "<h1>Title</h1>" in html and "<strong>bold</strong>" in html
    assert '<a href="https://example.com" rel="noopener noreferrer nofollow">docs</a>' in html
    assert '<th scope="col">a</th>' in html
    assert '<span class="n">x</span>' in html  # fenced code is highlighted
    assert '<a href="https://example.com/c.png" rel="noopener noreferrer nofollow">Image: chart</a>' in html


def test_text_previews_read_a_bounded_start_and_say_so():
    size = TEXT_PREVIEW_BYTES * 4
    head = ("é" * (TEXT_PREVIEW_BYTES // 2)).encode()[: TEXT_PREVIEW_BYTES - 1]  # cut mid-character
    out = render_preview("text", head, size, "big.txt", "text/plain")
    assert out.truncated and out.shown_bytes == len(head) and out.size == size
    assert "\ufffd" not in str(out.html)


def test_binary_bytes_get_no_text_preview():
    assert render_preview("text", b"\x00\x01\x02abc", 6, "x.txt", "text/plain").binary


def test_csv_shows_the_first_rows_and_counts_them():
    rows = "".join(f"{i};{i * i}\n" for i in range(500))
    out = render_preview("csv", ("n;square\n" + rows).encode(), 10_000, "x.csv", "text/csv")
    assert out.header == ["n", "square"] and len(out.rows) == previews.CSV_PREVIEW_ROWS
    assert out.rows[3] == ["3", "9"] and out.row_count == 500 and out.more_rows
    cut = render_preview("csv", b"a,b\n1,2\n3,4\n5,", 1_000_000, "x.csv", "text/csv")
    assert cut.rows == [["1", "2"], ["3", "4"]] and cut.truncated and cut.more_rows  # last line cut off


def test_json_is_pretty_printed_or_shown_as_text_with_the_reason():
    pretty = render_preview("json", b'{"a":{"b":[1,2]}}', 17, "x.json", "application/json")
    assert "\n  " in re.sub(r"<[^>]+>", "", str(pretty.html))
    broken = render_preview("json", b'{"a":', 5, "x.json", "application/json")
    assert broken.note.startswith("This is not valid JSON")


def test_html_source_is_escaped_text():
    out = render_preview("html", b"<script>alert(1)</script>", 25, "x.html", "text/html")
    assert "<script>" not in str(out.source) and "&lt;" in str(out.source)
