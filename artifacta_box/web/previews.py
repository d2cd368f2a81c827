"""Safe previews of stored artifacts: which kind of preview an artifact gets, and the HTML of
the previews rendered on the server (text and code, JSON, CSV, Markdown, HTML source).

Choosing a kind (`preview_kind`): the stored content type first; only when it names nothing
previewable (`application/octet-stream`, an unknown type) does the filename's extension
decide. Media kinds (image, SVG, PDF, audio, video, and HTML rendered) are shown by the browser
from the byte route, which serves `inline` only the `inline_type` chosen here (an allowlist) and
keeps `nosniff` and the `sandbox` CSP on every answer; every other artifact is `attachment`.
How a page embeds each kind is fixed by the `preview.html` macros:

- SVG only inside `<img>`: an image context never runs its scripts or loads its links.
- HTML only inside `<iframe sandbox="">` (no scripts, an opaque origin: no cookies, no way to
  reach the page around it); beside it, its source as highlighted text.
- Markdown with raw HTML off (markdown-it-py escapes it), its output then sanitised with an
  allowlist (nh3): no script, no event handler, no `style`, links only http(s)/mailto (never
  `javascript:`), and images turned into links, so a document cannot make the page fetch
  anything from elsewhere.

Reads are bounded: text previews render at most TEXT_PREVIEW_BYTES of the artifact (the page
says when it shows only the start), CSV at most CSV_PREVIEW_ROWS rows of it. The renderers
(Pygments, markdown-it-py, nh3, csv) are imported on first use, never at start-up.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import PurePosixPath
from typing import Any

from markupsafe import Markup, escape

TEXT_PREVIEW_BYTES = 512 * 1024
CSV_PREVIEW_ROWS = 100
CSV_PREVIEW_COLUMNS = 50
CSV_CELL_CHARS = 500
BINARY_PROBE_BYTES = 8192

# Kinds the browser shows from the byte route, with the types it may be served inline as.
_MEDIA_TYPES: dict[str, str] = {
    "image/png": "image", "image/jpeg": "image", "image/gif": "image", "image/webp": "image",
    "image/avif": "image", "image/bmp": "image", "image/x-icon": "image",
    "image/vnd.microsoft.icon": "image",
    "image/svg+xml": "svg",
    "application/pdf": "pdf",
    "audio/mpeg": "audio", "audio/mp4": "audio", "audio/aac": "audio", "audio/ogg": "audio",
    "audio/wav": "audio", "audio/x-wav": "audio", "audio/wave": "audio", "audio/webm": "audio",
    "audio/flac": "audio", "audio/x-flac": "audio", "audio/opus": "audio",
    "video/mp4": "video", "video/webm": "video", "video/ogg": "video",
    "text/html": "html", "application/xhtml+xml": "html",
}
# Kinds rendered on the server from the first bytes.
_TEXT_TYPES: dict[str, str] = {
    "text/markdown": "markdown", "text/x-markdown": "markdown",
    "application/json": "json", "text/json": "json", "application/ld+json": "json",
    "application/geo+json": "json", "application/manifest+json": "json",
    "text/csv": "csv", "application/csv": "csv", "text/tab-separated-values": "tsv",
    "application/xml": "text", "application/javascript": "text",
    "application/x-javascript": "text", "application/ecmascript": "text",
    "application/x-yaml": "text", "application/yaml": "text", "application/toml": "text",
    "application/x-sh": "text", "application/x-shellscript": "text",
    "application/x-python": "text", "application/x-python-code": "text", "application/sql": "text",
    "application/x-ndjson": "text", "application/jsonl": "text", "application/x-tex": "text",
    "application/x-ipynb+json": "json",
}
# Extension -> the content type it stands for, when the stored type says nothing.
_EXTENSIONS: dict[str, str] = {
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
    ".webp": "image/webp", ".avif": "image/avif", ".bmp": "image/bmp", ".ico": "image/x-icon",
    ".svg": "image/svg+xml", ".pdf": "application/pdf",
    ".mp3": "audio/mpeg", ".m4a": "audio/mp4", ".aac": "audio/aac", ".ogg": "audio/ogg",
    ".oga": "audio/ogg", ".opus": "audio/ogg", ".wav": "audio/wav", ".flac": "audio/flac",
    ".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm", ".ogv": "video/ogg",
    ".html": "text/html", ".htm": "text/html", ".xhtml": "application/xhtml+xml",
    ".md": "text/markdown", ".markdown": "text/markdown", ".mdown": "text/markdown",
    ".json": "application/json", ".geojson": "application/geo+json",
    ".jsonld": "application/ld+json", ".ipynb": "application/json",
    ".csv": "text/csv", ".tsv": "text/tab-separated-values",
}
# Extensions of text and source files (shown as highlighted text whatever the stored type).
_TEXT_EXTENSIONS = frozenset(
    [".txt", ".log", ".text", ".out", ".err", ".diff", ".patch", ".ini", ".cfg", ".conf", ".toml", ".yaml", ".yml", ".xml", ".env", ".rst", ".tex", ".py", ".pyi", ".ipy", ".js", ".mjs", ".cjs", ".ts", ".tsx", ".jsx", ".css", ".scss", ".sass", ".less", ".sh", ".bash", ".zsh", ".fish", ".ps1", ".bat", ".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh", ".cs", ".java", ".kt", ".kts", ".scala", ".go", ".rs", ".rb", ".php", ".pl", ".pm", ".lua", ".r", ".jl", ".swift", ".m", ".mm", ".sql", ".graphql", ".proto", ".tf", ".hcl", ".nix", ".dockerfile", ".makefile", ".mk", ".cmake", ".gradle", ".properties", ".vue", ".svelte", ".elm", ".erl", ".ex", ".exs", ".hs", ".ml", ".fs", ".clj", ".dart", ".zig", ".v", ".sv", ".vhd", ".asm", ".s", ".ndjson", ".jsonl", ".csl", ".srt", ".vtt", ".gitignore", ".editorconfig", ".lock"]
)
_TEXT_FILENAMES = frozenset(
    ["dockerfile", "makefile", "license", "readme", "changelog", "notice", "authors", "contributing", "gemfile", "rakefile", "procfile", "vagrantfile", "justfile"]
)

MEDIA_KINDS = frozenset({"image", "svg", "pdf", "audio", "video"})
TEXT_KINDS = frozenset({"text", "json", "csv", "tsv", "markdown", "html"})


@dataclass(frozen=True)
class PreviewKind:
    """How an artifact is previewed.

    `name`: image, svg, pdf, audio, video, html (rendered sandboxed + source), markdown, json,
    csv, tsv, text, or none (download only). `inline_type`: the Content-Type the byte route may
    serve it inline as (None: only ever as an attachment).
    """

    name: str
    inline_type: str | None = None

    @property
    def is_text(self) -> bool:
        return self.name in TEXT_KINDS


NO_PREVIEW = PreviewKind("none")


def essence(content_type: str | None) -> str:
    """`Text/HTML; charset=utf-8` -> `text/html`."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def _extension(filename: str) -> tuple[str, str]:
    name = PurePosixPath((filename or "").replace("\\", "/")).name.lower()
    suffix = PurePosixPath(name).suffix
    return name, suffix


def _kind_of_type(ctype: str) -> PreviewKind | None:
    if ctype in _MEDIA_TYPES:
        return PreviewKind(_MEDIA_TYPES[ctype], ctype)
    if ctype in _TEXT_TYPES:
        return PreviewKind(_TEXT_TYPES[ctype])
    if ctype.endswith("+json"):
        return PreviewKind("json")
    if ctype.endswith("+xml"):
        return PreviewKind("text")
    if ctype.startswith("text/"):
        return PreviewKind("text")
    return None


def preview_kind(content_type: str | None, filename: str) -> PreviewKind:
    """The preview for an artifact: by content type first, by filename second."""
    kind = _kind_of_type(essence(content_type))
    if kind is not None:
        return kind
    name, suffix = _extension(filename)
    if suffix in _EXTENSIONS:
        return _kind_of_type(_EXTENSIONS[suffix]) or NO_PREVIEW
    if suffix in _TEXT_EXTENSIONS or name in _TEXT_FILENAMES:
        return PreviewKind("text")
    return NO_PREVIEW


def inline_type(content_type: str | None, filename: str) -> str | None:
    """The Content-Type a preview byte route may serve this artifact `inline` as, or None."""
    return preview_kind(content_type, filename).inline_type


# ---------------------------------------------------------------------------- text previews


@dataclass
class TextPreview:
    """A server-rendered preview. `html` is safe to insert into a page as it is."""

    kind: str
    html: Markup = field(default_factory=Markup)
    size: int = 0               # the artifact's size in bytes
    shown_bytes: int = 0        # how many of them the preview read
    truncated: bool = False     # the preview shows only the start
    note: str | None = None     # e.g. why JSON is shown as plain text
    binary: bool = False        # the bytes are not text: nothing to show
    # CSV only
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    row_count: int = 0          # data rows in the bytes read
    more_rows: bool = False     # rows beyond those shown (or beyond the bytes read)
    source: Markup | None = None  # HTML: the highlighted source beside the sandboxed render


def looks_binary(head: bytes) -> bool:
    """NUL bytes in the first few KiB: not text (UTF-16 files are the rare false positive)."""
    return b"\x00" in head[:BINARY_PROBE_BYTES]


def decode_text(head: bytes, truncated: bool) -> str:
    """UTF-8 (a BOM dropped), bad bytes replaced; a character cut in two by the read limit is
    left out rather than shown as a replacement character."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = decoder.decode(head, final=not truncated)
    return text[1:] if text.startswith("\ufeff") else text


def render_preview(kind: str, head: bytes, size: int, filename: str,
                   content_type: str | None) -> TextPreview:
    """Render the first bytes of an artifact (`head`, at most TEXT_PREVIEW_BYTES) as `kind`.

    CPU-bound (highlighting up to 512 KiB): call it off the event loop.
    """
    truncated = len(head) < size
    out = TextPreview(kind=kind, size=size, shown_bytes=len(head), truncated=truncated)
    if looks_binary(head):
        out.binary = True
        return out
    text = decode_text(head, truncated)
    if kind == "markdown":
        out.html = render_markdown(text)
    elif kind == "json":
        _render_json(out, text, filename)
    elif kind in ("csv", "tsv"):
        _render_csv(out, text, tab=kind == "tsv" or _extension(filename)[1] == ".tsv")
    elif kind == "html":
        out.source = highlight(text, "page.html", "text/html")
    else:
        out.html = highlight(text, filename, content_type)
    return out


def render_file_preview(kind: str, path: str, size: int, filename: str,
                        content_type: str | None) -> TextPreview:
    """Read the first TEXT_PREVIEW_BYTES of a stored file and render them as `kind`.

    Blocking (a read, then highlighting): run it in a worker thread. OSError if the file cannot
    be read.
    """
    with open(path, "rb") as fh:
        head = fh.read(min(size, TEXT_PREVIEW_BYTES))
    return render_preview(kind, head, size, filename, content_type)


def _render_json(out: TextPreview, text: str, filename: str) -> None:
    if out.truncated:
        out.note = "Only the start of this JSON document is shown, as text."
        out.html = highlight(text, "data.json", "application/json")
        return
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        out.note = f"This is not valid JSON ({exc}); shown as text."
        out.html = highlight(text, filename, "text/plain")
        return
    pretty = json.dumps(value, indent=2, ensure_ascii=False)
    out.html = highlight(pretty, "data.json", "application/json")


def _render_csv(out: TextPreview, text: str, *, tab: bool) -> None:
    if out.truncated and "\n" in text:
        text = text[: text.rindex("\n") + 1]  # the last line may be cut by the read limit
    delimiter = "\t" if tab else _sniff_delimiter(text[:8192])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[list[str]] = []
    count = 0
    try:
        header = next(reader, None)
        for row in reader:
            count += 1
            if len(rows) < CSV_PREVIEW_ROWS:
                rows.append([_cell(c) for c in row[:CSV_PREVIEW_COLUMNS]])
    except csv.Error as exc:
        out.note = f"The CSV could not be read past row {count + 1} ({exc})."
    out.header = [_cell(c) for c in (header or [])[:CSV_PREVIEW_COLUMNS]]
    width = max([len(out.header)] + [len(r) for r in rows]) if (rows or out.header) else 0
    out.header += [""] * (width - len(out.header))
    out.rows = [r + [""] * (width - len(r)) for r in rows]
    out.row_count = count
    out.more_rows = count > len(rows) or out.truncated


def _cell(value: str) -> str:
    return value if len(value) <= CSV_CELL_CHARS else value[:CSV_CELL_CHARS] + "…"


def _sniff_delimiter(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


# ---------------------------------------------------------------------------- highlighting


@lru_cache(maxsize=1)
def _formatter() -> Any:
    from pygments.formatters import HtmlFormatter

    # Classes, never inline styles: the page's CSP allows no inline style.
    return HtmlFormatter(nowrap=True)


def _lexer(filename: str, content_type: str | None) -> Any:
    from pygments.lexers import get_lexer_for_filename, get_lexer_for_mimetype
    from pygments.lexers.special import TextLexer
    from pygments.util import ClassNotFound

    for find, arg in ((get_lexer_for_filename, _extension(filename)[0] or "x"),
                      (get_lexer_for_mimetype, essence(content_type))):
        try:
            return find(arg, stripnl=False, ensurenl=False)
        except ClassNotFound:
            continue
    return TextLexer(stripnl=False, ensurenl=False)


def highlight(text: str, filename: str, content_type: str | None) -> Markup:
    """Syntax-highlighted HTML (spans with Pygments' token classes) of `text`."""
    from pygments import highlight as pygments_highlight

    return Markup(pygments_highlight(text, _lexer(filename, content_type), _formatter()))


# ---------------------------------------------------------------------------- Markdown

_MARKDOWN_TAGS = frozenset(
    ["a", "abbr", "b", "blockquote", "br", "code", "del", "details", "div", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "samp", "small", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul"]
)
_MARKDOWN_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}
_URL_SCHEMES = {"http", "https", "mailto"}


@lru_cache(maxsize=1)
def _markdown() -> Any:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])

    def image_as_link(renderer, tokens, idx, options, env) -> str:
        # An image would make the page fetch from wherever the document points: link to it.
        token = tokens[idx]
        src = token.attrGet("src") or ""
        alt = renderer.renderInlineAsText(token.children or [], options, env)
        label = f"Image: {alt}" if alt else "Image"
        return f'<a href="{escape(src)}">{escape(label)}</a>'

    md.add_render_rule("image", image_as_link)

    def fence(renderer, tokens, idx, options, env) -> str:
        token = tokens[idx]
        lang = token.info.strip().split(maxsplit=1)[0] if token.info.strip() else ""
        body = highlight(token.content, f"code.{lang}" if lang else "code.txt",
                         f"text/x-{lang}" if lang else "text/plain")
        return f'<pre class="code"><code>{body}</code></pre>\n'

    md.add_render_rule("fence", fence)
    return md


@lru_cache(maxsize=1)
def _token_classes() -> frozenset[str]:
    from pygments.token import STANDARD_TYPES

    return frozenset(c for c in STANDARD_TYPES.values() if c)


def sanitize_html(html: str) -> Markup:
    """Only the allowlisted tags and attributes, links to http(s)/mailto only, no comments."""
    import nh3

    return Markup(nh3.clean(
        html,
        tags=set(_MARKDOWN_TAGS),
        attributes={k: set(v) for k, v in _MARKDOWN_ATTRIBUTES.items()},
        url_schemes=set(_URL_SCHEMES),
        link_rel="noopener noreferrer nofollow",
        allowed_classes={"pre": {"code"}, "span": set(_token_classes())},
        set_tag_attribute_values={"th": {"scope": "col"}},
        strip_comments=True,
    ))


def render_markdown(text: str) -> Markup:
    """Markdown to sanitised HTML (raw HTML in the source shows as text)."""
    return sanitize_html(_markdown().render(text))
