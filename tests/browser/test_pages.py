"""Artifact pages (/a/) in a real Chromium against a real `artifacta-box serve`, as a visitor
with no key and no console cookie sees them: every preview kind under the console's safety
rules, the download button, the password flow, noindex, the gallery, 410 after delete, light
and dark, a phone, axe-core; and the console's publish controls.

Pages run under conftest.Watch (no CSP violation, no console error, no preview script that
ran) and save screenshots under tests/browser/screenshots/.
"""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import run_axe, sign_in
from tests.browser.samples import all_samples
from tests.browser.test_console import PREVIEW_CHECKS
from tests.console_helpers import Tenant

SANDBOXED_SCRIPT = r"^Blocked script execution in '.*/raw' because the document's frame is sandboxed"


def publish(tenant: Tenant, artifact_id: str, **body) -> dict:
    with tenant.api() as api:
        resp = api.post(f"/v1/artifacts/{artifact_id}/publish", json=body)
    assert resp.status_code in (200, 201), resp.text
    return resp.json()


@pytest.fixture(scope="module")
def published(console) -> tuple[Tenant, dict[str, dict]]:
    """A tenant with one artifact of every preview kind, each published (public), by filename:
    {"record": the artifact, "page": the publish answer}."""
    tenant = console.tenant()
    out = {}
    for sample in all_samples():
        record = tenant.upload(sample, session_id="pages")
        page = publish(tenant, record["artifact_id"], visibility="public",
                       title=f"Results: {sample.filename}")
        out[sample.filename] = {"record": record, "page": page, "sample": sample}
    return tenant, out


def _pdf(page, preview, sample, record, url):
    expect(preview.locator("iframe#preview-pdf")).to_be_visible()
    raw = page.request.get(page.url + "/raw")
    assert raw.status == 200 and raw.body() == sample.data
    assert raw.headers["content-disposition"].startswith("inline;")
    assert "sandbox" in raw.headers["content-security-policy"]


def _none(page, preview, sample, record, url):
    expect(preview).to_contain_text("No preview for this type of file")
    raw = page.request.get(page.url + "/raw")
    assert raw.headers["content-disposition"].startswith("attachment;")


CHECKS = {**PREVIEW_CHECKS, "pdf": _pdf, "none": _none}


def test_every_preview_kind_on_a_public_page(console, published, watched, page, shot):
    watched.allow(SANDBOXED_SCRIPT)
    _, items = published
    seen = set()
    for filename, item in items.items():
        sample, record = item["sample"], item["record"]
        response = page.goto(item["page"]["public_url"])
        assert response.status == 200
        assert "x-robots-tag" not in response.headers  # public: may be indexed
        expect(page.locator("h1#page-title")).to_have_text(f"Results: {filename}")
        facts = page.locator("#page-facts")
        expect(facts).to_contain_text(filename)
        expect(facts).to_contain_text(record["created_at"][:10])
        expect(page.locator("#download")).to_have_text(f"Download {filename}")
        CHECKS[sample.kind](page, page.locator("#preview"), sample, record, console.url)
        seen.add(sample.kind)
        assert page.context.cookies() == []  # a visitor gets no cookie from an open page
        shot(filename.replace(".", "-"))
    assert seen == set(CHECKS)


def test_the_download_button_gives_the_stored_bytes(console, published, watched, page):
    _, items = published
    item = items["result.json"]
    page.goto(item["page"]["public_url"])
    with page.expect_download() as info:
        page.locator("#download").click()
    download = info.value
    assert download.suggested_filename == "result.json"
    with open(download.path(), "rb") as fh:
        assert fh.read() == item["sample"].data


def test_an_unlisted_page_asks_not_to_be_indexed(console, watched, page, shot):
    tenant = console.tenant()
    sample = next(s for s in all_samples() if s.filename == "report.md")
    record = tenant.upload(sample)
    url = publish(tenant, record["artifact_id"])["public_url"]
    response = page.goto(url)
    assert response.status == 200 and response.headers["x-robots-tag"] == "noindex"
    assert page.locator('meta[name="robots"]').get_attribute("content") == "noindex"
    expect(page.locator("h1#page-title")).to_have_text("report.md")  # no title: the filename
    gallery = page.goto(console.url + "/a/")
    assert gallery.status == 200
    assert page.locator(f'a[href="{url[len(console.url):]}"]').count() == 0  # never listed
    shot("unlisted")


def test_the_password_flow(console, watched, page, shot):
    watched.allow(r"status of 401")
    tenant = console.tenant()
    sample = next(s for s in all_samples() if s.filename == "run.log")
    record = tenant.upload(sample)
    url = publish(tenant, record["artifact_id"], access="password", password="open sesame",
                  title="Run log")["public_url"]
    response = page.goto(url)
    assert response.status == 401 and response.headers["x-robots-tag"] == "noindex"
    assert sample.data.decode()[:20] not in page.content()
    shot("form")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Open page").click()
    expect(page.get_by_role("alert")).to_have_text("That password is not right.")
    expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
    shot("wrong")
    page.get_by_label("Password").fill("open sesame")
    page.get_by_role("button", name="Open page").click()
    expect(page.locator("h1#page-title")).to_have_text("Run log")
    expect(page.locator("#preview-text")).to_have_text(sample.data.decode())
    assert page.evaluate("document.cookie") == ""  # HttpOnly: out of reach of scripts
    cookie = next(c for c in page.context.cookies() if c["name"] == "artifacta_page")
    assert cookie["path"] == url[len(console.url):] and cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    page.reload()
    expect(page.locator("#preview-text")).to_be_visible()  # still open after a reload
    shot("open")
    # the same browser gets no further on another password page
    other = tenant.upload(sample)
    other_url = publish(tenant, other["artifact_id"], access="password", password="open sesame")["public_url"]
    assert page.goto(other_url).status == 401


def test_a_deleted_artifacts_page_answers_410(console, watched, page, shot):
    watched.allow(r"status of 410")
    tenant = console.tenant()
    record = tenant.upload(next(s for s in all_samples() if s.filename == "plot.png"))
    url = publish(tenant, record["artifact_id"], visibility="public")["public_url"]
    assert page.goto(url).status == 200
    with tenant.api() as api:
        assert api.delete(f"/v1/artifacts/{record['artifact_id']}").status_code == 200
    response = page.goto(url)
    assert response.status == 410
    expect(page.get_by_role("heading", level=1)).to_have_text("This page is gone")
    expect(page.locator("#message")).to_have_text("The file behind this page was deleted.")
    assert page.goto(console.url + "/a/").status == 200
    assert page.locator(f'a[href="{url[len(console.url):]}"]').count() == 0  # off the gallery
    shot("gone")


def test_the_gallery_pages_newest_first(console, published, watched, page, shot):
    _, items = published
    page.goto(console.url + "/a/")
    titles = page.locator("#gallery h2").all_inner_texts()
    ours = [t for t in titles if t.startswith("Results: ")]
    expected = [f"Results: {s.filename}" for s in reversed(all_samples())]
    assert ours == expected[:len(ours)] and ours  # newest first
    shot("gallery")
    page.get_by_role("link", name="Results: report.md").click()
    expect(page).to_have_url(items["report.md"]["page"]["public_url"])


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_nothing_serious_on_pages_in_light_and_dark(console, published, watched, page,
                                                              axe_js, shot, scheme):
    watched.allow(SANDBOXED_SCRIPT)
    watched.allow(r"status of 4(01|04|10)")
    _, items = published
    tenant = console.tenant()
    record = tenant.upload(items["report.md"]["sample"])
    locked = publish(tenant, record["artifact_id"], access="password", password="pw")["public_url"]
    gone = tenant.upload(items["run.log"]["sample"])
    gone_url = publish(tenant, gone["artifact_id"])["public_url"]
    with tenant.api() as api:
        api.delete(f"/v1/artifacts/{gone['artifact_id']}/publish")
    page.emulate_media(color_scheme=scheme)
    targets = [(f.replace(".", "-"), items[f]["page"]["public_url"])
               for f in ("report.md", "page.html", "metrics.csv", "train.py", "chart.svg",
                         "clip.webm", "weights.bin")]
    targets += [("gallery", console.url + "/a/"), ("password", locked), ("gone", gone_url),
                ("not-found", console.url + "/a/" + "Z" * 22)]
    found = {}
    luminance = """() => { const [r, g, b] = getComputedStyle(document.body).backgroundColor
        .match(/\\d+/g).map(Number); return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255; }"""
    for name, url in targets:
        page.goto(url)
        found[name] = run_axe(page, axe_js)
        lum = page.evaluate(luminance)
        assert (lum < 0.15) if scheme == "dark" else (lum > 0.9), (name, lum)
        shot(name)
    assert {name: v for name, v in found.items() if v} == {}


def test_a_phone_shows_pages_without_sideways_scrolling(console, published, watched, page, shot):
    watched.allow(SANDBOXED_SCRIPT)
    _, items = published
    page.set_viewport_size({"width": 390, "height": 844})
    for filename in ("report.md", "metrics.csv", "train.py", "plot.png", "page.html"):
        page.goto(items[filename]["page"]["public_url"])
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, filename
        button = page.locator("#download").bounding_box()
        assert button["width"] > 300  # a full-width button, easy to tap
        shot(f"phone-{filename.replace('.', '-')}")
    page.goto(console.url + "/a/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot("phone-gallery")
    page.emulate_media(color_scheme="dark")
    page.goto(items["report.md"]["page"]["public_url"])
    shot("phone-dark")


def test_the_console_publishes_and_takes_down(console, watched, page, shot):
    watched.allow(r"status of 410")
    tenant = console.tenant()
    record = tenant.upload(next(s for s in all_samples() if s.filename == "metrics.csv"))
    sign_in(page, console.url, tenant.key)
    page.goto(console.url + f"/console/artifacts/{record['artifact_id']}")
    card = page.locator("#page")
    expect(card.locator("#page-state")).to_contain_text("Not published")
    card.get_by_label("Title").fill("Training metrics")
    card.get_by_label("Visibility").select_option("public")
    card.get_by_role("button", name="Publish page").click()
    expect(page.get_by_role("status")).to_contain_text("Published: ")
    expect(card.locator("#page-state")).to_have_text("published")
    url = card.locator("#page-url").input_value()
    assert re.fullmatch(re.escape(console.url) + r"/a/[A-Za-z0-9]{22}", url)
    with tenant.api() as api:
        assert api.get("/v1/whoami").json()["active_pages"] == 1
    shot("published")
    # a password page without a password: the API's own refusal, shown
    card.get_by_label("Access", exact=True).select_option("password")
    card.get_by_role("button", name="Update page").click()
    expect(page.get_by_role("alert")).to_contain_text('access "password" needs a password')
    page.goto(url)
    expect(page.locator("h1#page-title")).to_have_text("Training metrics")
    page.goto(console.url + f"/console/artifacts/{record['artifact_id']}")
    page.get_by_role("button", name="Take the page down").click()
    expect(page.get_by_role("status")).to_contain_text("Page taken down")
    expect(page.locator("#page #page-state")).to_contain_text("Not published")
    shot("taken-down")
    assert httpx.get(url).status_code == 410
