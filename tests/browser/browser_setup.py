"""Where the browser tests find Chromium and axe-core (nothing is downloaded by Playwright).

- Chromium: Debian's package (`apt-get install chromium fonts-liberation
  fonts-noto-color-emoji`; `.ci/run` does it). Playwright is pointed at the real binary the
  package installs (`/usr/lib/chromium/chromium`, listed by `dpkg -L chromium`): the
  `chromium` command is a wrapper script. `ARTIFACTA_BOX_CHROMIUM` names another binary.
  `playwright install` is never run.
- axe-core: the npm package, fetched once with `npm pack` into a cache directory
  (`~/.cache/artifacta-box-tests`, or `ARTIFACTA_BOX_TEST_CACHE`); `AXE_CORE_JS` names a copy
  of `axe.min.js` instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

AXE_VERSION = "4.14.1"
_DEBIAN_CHROMIUM = "/usr/lib/chromium/chromium"


def chromium_path() -> str | None:
    """The real Chromium binary, or None when it is not installed."""
    named = os.environ.get("ARTIFACTA_BOX_CHROMIUM")
    if named:
        return named if os.access(named, os.X_OK) else None
    if os.access(_DEBIAN_CHROMIUM, os.X_OK):
        return _DEBIAN_CHROMIUM
    if shutil.which("dpkg"):
        listing = subprocess.run(["dpkg", "-L", "chromium"], capture_output=True, text=True)
        for line in listing.stdout.splitlines():
            if line.endswith("/chromium/chromium") and os.access(line, os.X_OK):
                return line
    return None


def launch_args() -> list[str]:
    """Chromium flags for this machine: no sandbox as root; nothing that phones home (the
    network here is closed, and background fetches would only fail and add noise)."""
    args = ["--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
            "--disable-features=Translate,MediaRouter,OptimizationHints"]
    if os.geteuid() == 0:
        args.insert(0, "--no-sandbox")
    return args


def cache_dir() -> Path:
    root = os.environ.get("ARTIFACTA_BOX_TEST_CACHE") or str(Path.home() / ".cache" / "artifacta-box-tests")
    return Path(root)


def axe_source() -> str | None:
    """The text of axe.min.js, fetched from the npm registry once; None when impossible."""
    named = os.environ.get("AXE_CORE_JS")
    if named:
        return Path(named).read_text()
    target = cache_dir() / f"axe-core-{AXE_VERSION}" / "axe.min.js"
    if target.exists():
        return target.read_text()
    npm = shutil.which("npm")
    if npm is None:
        return None
    with tempfile.TemporaryDirectory() as work:
        res = subprocess.run([npm, "pack", f"axe-core@{AXE_VERSION}", "--silent",
                              "--pack-destination", work],
                             capture_output=True, text=True, timeout=300)
        if res.returncode != 0:
            return None
        tgz = next(Path(work).glob("axe-core-*.tgz"), None)
        if tgz is None:
            return None
        with tarfile.open(tgz) as tar:
            member = tar.extractfile("package/axe.min.js")
            if member is None:
                return None
            data = member.read()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(target)
    return data.decode()
