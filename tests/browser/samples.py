"""The artifacts the browser tests upload: one of every preview kind, each made here from
nothing (standard library only) except a two-second WebM clip kept in fixtures/ (see there).

Hostile ones carry the attacks a preview must not fall for: Markdown with raw `<script>` and a
`javascript:` link, HTML whose script would request MARKER_PATH if it ran, an SVG with a script.
"""

from __future__ import annotations

import io
import math
import struct
import wave
import zlib
from dataclasses import dataclass
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
# A script in a preview that ran would fetch this (the tests watch for the request).
MARKER_PATH = "/console/static/script-ran-marker"


@dataclass(frozen=True)
class Sample:
    filename: str
    content_type: str
    data: bytes
    kind: str  # the preview kind the console must choose


def png(width: int = 48, height: int = 32) -> bytes:
    """A small RGB gradient PNG."""
    raw = b"".join(
        b"\x00" + b"".join(bytes((x * 5 % 256, y * 8 % 256, 160)) for x in range(width))
        for y in range(height)
    )

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def wav(seconds: float = 0.5, rate: int = 8000) -> bytes:
    """A 440 Hz tone."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
                               for i in range(int(seconds * rate))))
    return buf.getvalue()


def pdf(text: str = "Hello from a PDF") -> bytes:
    """A one-page PDF with a line of text (objects and xref offsets computed)."""
    stream = f"BT /F1 24 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


MARKDOWN = f"""# Evaluation report

Accuracy went **up** to *93.1%* on the held-out set.

- [a safe link](https://example.com/docs)
- [a javascript link](javascript:alert(document.cookie))
- <script>fetch("{MARKER_PATH}")</script> raw HTML is shown as text
- ![a remote image](https://example.com/tracker.png)

| model | accuracy |
|-------|---------:|
| base  | 0.871 |
| tuned | 0.931 |

```python
def score(x):
    return x * 2  # highlighted
```
""".encode()

HTML = f"""<!doctype html>
<html><head><title>Agent page</title></head>
<body><h1 id="greeting">Rendered, scripts off</h1>
<p>This page was made by an agent.</p>
<script>
document.getElementById("greeting").textContent = "SCRIPT RAN";
fetch("{MARKER_PATH}?from=html");
</script></body></html>
""".encode()

SVG = f"""<svg xmlns="http://www.w3.org/2000/svg" width="120" height="80" viewBox="0 0 120 80">
<rect width="120" height="80" rx="10" fill="#2452c7"/>
<circle cx="60" cy="40" r="22" fill="#ffd33d"/>
<script>fetch("{MARKER_PATH}?from=svg")</script>
</svg>
""".encode()

CSV = ("step,loss,accuracy\n" + "".join(f"{i},{1 / (i + 1):.4f},{0.5 + i / 400:.3f}\n"
                                         for i in range(150))).encode()

JSON = b'{"run":"run-42","metrics":{"accuracy":0.931,"loss":0.21},"tags":["eval","tuned"]}'

PYTHON = b'''"""Train a tiny model."""
import math


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


print(sigmoid(0.5))
'''

LOG = b"2026-11-28 12:00:00 INFO starting run-42\n2026-11-28 12:00:05 INFO done\n"


def all_samples() -> list[Sample]:
    return [
        Sample("report.md", "text/markdown", MARKDOWN, "markdown"),
        Sample("page.html", "text/html", HTML, "html"),
        Sample("chart.svg", "image/svg+xml", SVG, "svg"),
        Sample("plot.png", "image/png", png(), "image"),
        # No useful type: the filename decides.
        Sample("photo.png", "application/octet-stream", png(20, 20), "image"),
        Sample("metrics.csv", "text/csv", CSV, "csv"),
        Sample("result.json", "application/json", JSON, "json"),
        Sample("train.py", "text/x-python", PYTHON, "text"),
        Sample("run.log", "text/plain", LOG, "text"),
        Sample("paper.pdf", "application/pdf", pdf(), "pdf"),
        Sample("tone.wav", "audio/wav", wav(), "audio"),
        Sample("clip.webm", "video/webm", (FIXTURES / "clip.webm").read_bytes(), "video"),
        Sample("weights.bin", "application/octet-stream", bytes(range(256)) * 4, "none"),
    ]
