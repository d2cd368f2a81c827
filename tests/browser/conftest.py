"""Fixtures of the browser suite: a real `artifacta-box serve` (the built binary when
ARTIFACTA_BOX_BIN is set), Debian's Chromium driven by pytest-playwright, tenants made
in-process through `Box` + `services.tenants`, artifacts uploaded through `/v1`.

Without Chromium the suite skips with a message saying how to install it; in CI (`CI` set) it
fails instead, so a missing browser can never pass as green. Every page a test shows is
watched for Content-Security-Policy violations and console errors (the test fails on any),
and `shot()` saves a screenshot under tests/browser/screenshots/ (git-ignored) to look at.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.browser_setup import axe_source, chromium_path, launch_args
from tests.browser.samples import MARKER_PATH
from tests.helpers import BoxServer
from tests.console_helpers import Tenant, make_tenant

SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
INSTALL_HINT = ("apt-get install -y chromium fonts-liberation fonts-noto-color-emoji "
                "(Playwright drives Debian's Chromium; .ci/run installs it)")

# Plans the suite needs beside the built-in ones: a tiny request budget to see the console
# rate-limited, and link caps to see the expiry choices capped.
SERVER_CONFIG = """
[plans.capped]
max_link_expiry = "30d"
"""

# Recorded in every page before any of its scripts run (an init script is not subject to the
# page's CSP): the violations the page raises.
WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push({directive: e.violatedDirective, blocked: e.blockedURI,
                               sample: e.sample, source: e.sourceFile, line: e.lineNumber});
});
"""


def _require_chromium() -> str:
    path = chromium_path()
    if path is None:
        message = f"Chromium is not installed: {INSTALL_HINT}"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    return {**browser_type_launch_args, "executable_path": _require_chromium(),
            "args": launch_args()}


# pytest-playwright keeps Playwright (and so its event loop, marked running in this thread)
# alive for the whole session, which breaks every later test that calls asyncio.run(). These
# overrides, the plugin's own fixtures with package scope, stop it after the browser suite.
@pytest.fixture(scope="package")
def playwright(_pw_api_request_contexts) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    if _pw_api_request_contexts:
        _pw_api_request_contexts.instrument(pw)
    yield pw
    pw.stop()


@pytest.fixture(scope="session")
def base_url(pytestconfig) -> str | None:
    # The plugin's own base_url is a session fixture declared as a method, which pytest 9
    # deprecates with a warning on every run; the same fixture as a function. The suite passes
    # full URLs, so this is --base-url or None.
    return pytestconfig.getoption("--base-url") or None


@pytest.fixture(scope="package")
def browser_type(playwright, browser_name: str):
    return getattr(playwright, browser_name)


@pytest.fixture(scope="package")
def launch_browser(browser_type_launch_args: dict, browser_type) -> Callable[..., Any]:
    return lambda **kw: browser_type.launch(**{**browser_type_launch_args, **kw})


@pytest.fixture(scope="package")
def browser_context_args(pytestconfig, playwright, device, base_url, _pw_artifacts_folder) -> dict:
    args: dict[str, Any] = dict(playwright.devices[device]) if device else {}
    if base_url:
        args["base_url"] = base_url
    if pytestconfig.getoption("--video") in ("on", "retain-on-failure"):
        args["record_video_dir"] = _pw_artifacts_folder.name
    return args


@pytest.fixture(scope="package")
def browser(launch_browser) -> Iterator[Any]:
    browser = launch_browser()
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def axe_js() -> str:
    source = axe_source()
    if source is None:
        message = "axe-core could not be fetched with npm (npm pack axe-core); set AXE_CORE_JS"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return source


# ---------------------------------------------------------------------------- the server


class ConsoleServer:
    """One served box for the module, and tenants made in-process on its data directory."""

    def __init__(self, srv: BoxServer) -> None:
        self.srv = srv
        self.url = srv.url

    def tenant(self, plan: str | None = None, name: str | None = None) -> Tenant:
        return make_tenant(self.srv, plan, name)

    def revoke_with_cli(self, key_id: str) -> None:
        self.srv.admin("keys", "revoke", key_id)


@pytest.fixture(scope="module")
def console(tmp_path_factory) -> Iterator[ConsoleServer]:
    _require_chromium()
    data = tmp_path_factory.mktemp("console") / "box"
    srv = BoxServer(data, config=SERVER_CONFIG).start()
    yield ConsoleServer(srv)
    srv.stop()


# ---------------------------------------------------------------------------- pages


class Watch:
    """What a page did that a test must not allow: CSP violations (Chromium reports each as a
    console error, in every frame; the top document's are also collected from its
    `securitypolicyviolation` events), other console errors, and requests to the marker that a
    script in a preview would fetch if it ran. `allow(pattern)` accepts console errors a test
    causes on purpose (the failed-load message of a 4xx page it asked for)."""

    def __init__(self, page) -> None:
        self.page = page
        self.console_errors: list[str] = []
        self.marker_requests: list[str] = []
        self.csp_reports: list[dict[str, Any]] = []
        self.allowed: list[re.Pattern[str]] = []
        page.on("console", self._console)
        page.on("request", self._request)

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def _console(self, msg) -> None:
        if msg.type == "error":
            self.console_errors.append(msg.text)

    def _request(self, request) -> None:
        if MARKER_PATH in request.url:
            self.marker_requests.append(request.url)

    def collect(self) -> None:
        """Gather the current document's CSP violation events."""
        try:
            self.csp_reports += self.page.evaluate("window.__cspViolations || []")
        except Exception:  # noqa: BLE001 - a page mid-navigation has no result to give
            pass

    def check(self) -> None:
        self.collect()
        assert self.csp_reports == [], f"CSP violations: {self.csp_reports}"
        csp = [e for e in self.console_errors if "Content Security Policy" in e]
        assert csp == [], f"CSP violations: {csp}"
        unexpected = [e for e in self.console_errors
                      if not any(p.search(e) for p in self.allowed)]
        assert unexpected == [], f"console errors: {unexpected}"
        assert self.marker_requests == [], f"a script in a preview ran: {self.marker_requests}"


@pytest.fixture
def watched(page) -> Iterator[Watch]:
    """The page, watched; the test fails on any CSP violation or unexpected console error."""
    page.add_init_script(WATCH_CSP)
    watch = Watch(page)
    yield watch
    watch.check()


@pytest.fixture
def shot(page, request) -> Callable[[str], Path]:
    """shot("name") saves a full-page screenshot as screenshots/<test>-<name>.png."""
    SCREENSHOTS.mkdir(exist_ok=True)

    def take(name: str, full_page: bool = True) -> Path:
        path = SCREENSHOTS / f"{request.node.name}-{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return take


def sign_in(page, url: str, key: str) -> None:
    page.goto(url + "/console/sign-in")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/console/(\?.*)?$"))


def run_axe(page, axe_js: str) -> list[dict[str, Any]]:
    """axe-core on the current page: its serious and critical violations."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(axe_js)
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ["violations"]});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                        nodes: v.nodes.map(n => n.target.join(" ")).slice(0, 5)}));
    }""")
    return [v for v in result if v["impact"] in ("serious", "critical")]
