"""The web console in a real Chromium against a real `artifacta-box serve`: what a person sees
and does, checked against what the API says for the same tenant.

Every test runs on a page watched for CSP violations, console errors and scripts of previews
that ran (conftest.Watch), and saves screenshots under tests/browser/screenshots/.
"""

from __future__ import annotations

import base64
import json
import re
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import run_axe, sign_in
from tests.console_helpers import Tenant
from tests.browser.samples import MARKDOWN, Sample, all_samples, png

KEY_RE = re.compile(r"^ak_live_[A-Za-z0-9]{32}$")


@pytest.fixture(scope="module")
def seeded(console) -> Tenant:
    """A tenant holding one artifact of every preview kind, over three sessions, two agents and
    two metadata values (uploaded through /v1, one after another)."""
    tenant = console.tenant()
    for i, sample in enumerate(all_samples()):
        tenant.upload(sample, session_id=f"run-{i % 3}", agent_id="agent-a" if i % 2 else "agent-b",
                      metadata={"stage": "eval" if i % 2 else "train", "n": str(i)})
    return tenant


def listed_ids(page) -> list[str]:
    rows = page.locator("#artifacts tbody tr")
    return rows.evaluate_all("rows => rows.map(r => r.dataset.artifactId)")


def api_ids(tenant: Tenant, params: dict | list) -> list[str]:
    with tenant.api() as api:
        resp = api.get("/v1/artifacts", params=params)
    assert resp.status_code == 200, resp.text
    return [a["artifact_id"] for a in resp.json()["artifacts"]]


def by_name(tenant: Tenant, filename: str) -> dict:
    return next(r for r in tenant.uploaded if r["filename"] == filename)


# ---------------------------------------------------------------------------- signing in


def test_sign_in_refuses_a_wrong_key_and_its_cookie_is_out_of_reach_of_scripts(
        console, seeded, watched, page, shot):
    page.goto(console.url + "/console/?session_id=run-1")
    expect(page).to_have_url(re.compile(r"/console/sign-in\?next="))
    watched.allow(r"status of 401")
    page.get_by_label("API key").fill("ak_live_" + "x" * 32)
    page.get_by_role("button", name="Sign in").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("The API key is invalid or has been revoked.")
    shot("wrong-key")

    page.get_by_label("API key").fill(seeded.key)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(console.url + "/console/?session_id=run-1")  # back where it began
    expect(page.get_by_role("heading", name="Artifacts", exact=True)).to_be_visible()
    assert "artifacta_console" not in page.evaluate("document.cookie")
    cookie = next(c for c in page.context.cookies() if c["name"] == "artifacta_console")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/console"
    assert 11.9 * 3600 < cookie["expires"] - time.time() < 12.1 * 3600
    payload = json.loads(base64.urlsafe_b64decode(cookie["value"].split(".")[0] + "=="))
    assert payload["k"] == seeded.key_id and seeded.key not in cookie["value"]
    shot("signed-in")

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(console.url + "/console/sign-in")
    expect(page.get_by_role("status")).to_contain_text("You are signed out.")
    page.goto(console.url + "/console/")
    expect(page).to_have_url(re.compile(r"/console/sign-in"))


def test_revoking_the_key_from_the_cli_ends_the_browser_session(console, watched, page, shot):
    tenant = console.tenant()
    sign_in(page, console.url, tenant.key)
    console.revoke_with_cli(tenant.key_id)
    page.get_by_role("link", name="Sessions", exact=True).click()
    expect(page).to_have_url(console.url + "/console/sign-in")
    expect(page.get_by_role("alert")).to_contain_text(
        "Your session ended: The API key is invalid or has been revoked.")
    shot("ended")
    page.goto(console.url + "/console/keys")
    expect(page).to_have_url(re.compile(r"/console/sign-in"))


# ---------------------------------------------------------------------------- artifacts list


def _filter_queries(tenant: Tenant) -> list[list[tuple[str, str]]]:
    middle = tenant.uploaded[5]["created_at"]
    late = tenant.uploaded[9]["created_at"]
    return [
        [],
        [("session_id", "run-1")],
        [("agent_id", "agent-a")],
        [("filename", "report.md")],
        [("content_type", "image/png")],
        [("metadata.stage", "eval")],
        [("session_id", "run-0"), ("metadata.stage", "train")],
        [("created_after", middle)],
        [("created_before", middle)],
        [("created_after", middle), ("created_before", late), ("agent_id", "agent-b")],
        [("metadata.stage", "eval"), ("metadata.n", "3")],
        [("session_id", "no-such-run")],
    ]


def test_every_filter_lists_exactly_what_the_api_lists(console, seeded, watched, page, shot):
    sign_in(page, console.url, seeded.key)
    for query in _filter_queries(seeded):
        page.goto(console.url + "/console/?" + urlencode(query))
        expected = api_ids(seeded, query)
        assert listed_ids(page) == expected, query
        for name, value in query:
            if not name.startswith("metadata."):
                expect(page.locator(f"#f-{name}")).to_have_value(value)
        if not expected:
            expect(page.get_by_role("heading", name="No artifacts match these filters")).to_be_visible()
    page.goto(console.url + "/console/?" + urlencode(_filter_queries(seeded)[6]))
    shot("filtered")


def test_a_bad_filter_shows_the_apis_own_error(console, seeded, watched, page, shot):
    watched.allow(r"status of 40[03]")
    sign_in(page, console.url, seeded.key)
    bad = [
        [("created_after", "yesterday")],
        [("limit", "0")],
        [("session_id", "not a label!")],
        [("cursor", "forged")],
        [("session_id", "run-1"), ("session_id", "run-2")],
        [(f"metadata.k{i}", "v") for i in range(11)],  # more than the plan's 10
    ]
    for query in bad:
        with seeded.api() as api:
            want = api.get("/v1/artifacts", params=query)
        assert want.status_code in (400, 403)
        response = page.goto(console.url + "/console/?" + urlencode(query))
        assert response.status == want.status_code, query
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text(want.json()["error"]["message"])
        expect(alert).to_contain_text(want.json()["error"]["code"])
    page.goto(console.url + "/console/?created_after=yesterday")
    shot("bad-filter")


def test_the_filter_form_writes_the_apis_parameter_names(console, seeded, watched, page, shot):
    sign_in(page, console.url, seeded.key)
    page.locator("details.filters summary").click()
    page.get_by_label("Session (session_id)").fill("run-1")
    page.get_by_label("Add a metadata filter").fill("stage=eval")
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(console.url + "/console/?session_id=run-1&metadata.stage=eval")
    assert listed_ids(page) == api_ids(seeded, {"session_id": "run-1", "metadata.stage": "eval"})
    shot("form")
    page.get_by_label("metadata.stage").fill("")  # emptied: the filter goes
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(console.url + "/console/?session_id=run-1")
    page.get_by_role("link", name="Clear filters").click()
    expect(page).to_have_url(console.url + "/console/")


def test_pages_follow_the_apis_cursors(console, seeded, watched, page, shot):
    sign_in(page, console.url, seeded.key)
    for query in ([("limit", "4")], [("session_id", "run-0"), ("limit", "2")]):
        page.goto(console.url + "/console/?" + urlencode(query))
        cursor = None
        pages = 0
        with seeded.api() as api:
            while True:
                pages += 1
                params = query + ([("cursor", cursor)] if cursor else [])
                body = api.get("/v1/artifacts", params=params).json()
                assert listed_ids(page) == [a["artifact_id"] for a in body["artifacts"]]
                cursor = body["next_cursor"]
                if cursor is None:
                    expect(page.locator("#next-page")).to_have_count(0)
                    break
                shot(f"{query[0][0]}-page{pages}")
                href = page.locator("#next-page").get_attribute("href")
                assert dict(parse_qsl(urlsplit(href).query))["cursor"] == cursor
                page.locator("#next-page").click()
        page.get_by_role("link", name="First page").click()
        assert listed_ids(page) == api_ids(seeded, query)


def test_sessions_sidebar_and_usage_strip_agree_with_the_api(console, seeded, watched, page, shot):
    sign_in(page, console.url, seeded.key)
    with seeded.api() as api:
        sessions = api.get("/v1/sessions", params={"limit": "15"}).json()["sessions"]
        me = api.get("/v1/whoami").json()
    sidebar = page.locator(".session-list li")
    expect(sidebar).to_have_count(len(sessions))
    for item, session in zip(sidebar.all(), sessions, strict=True):
        expect(item).to_contain_text(session["session_id"])
        expect(item).to_contain_text(f"{session['artifact_count']} artifact")
    page.locator(".session-list a", has_text="run-2").click()
    expect(page).to_have_url(console.url + "/console/?session_id=run-2")
    assert listed_ids(page) == api_ids(seeded, {"session_id": "run-2"})
    expect(page.locator("#usage-storage")).to_contain_text(
        f"{me['usage_storage_bytes']:,} of {me['plan_storage_limit_bytes']:,} bytes")
    expect(page.locator("#usage-links")).to_contain_text(
        f"{me['active_links']:,} of {me['max_active_links']:,}")
    expect(page.locator("#usage-keys")).to_contain_text("1 of 1,000")
    shown = int(page.locator("#usage-requests .usage-figure").inner_text().split(" of ")[0].replace(",", ""))
    with seeded.api() as api:
        later = api.get("/v1/whoami").json()["usage_requests_month"]
    assert 0 < shown <= later
    expect(page.locator("#usage-requests")).to_contain_text(f"of {me['plan_requests_limit_month']:,}")
    shot("artifacts")


def test_an_empty_box_says_how_to_push(console, watched, page, shot):
    tenant = console.tenant()
    sign_in(page, console.url, tenant.key)
    expect(page.get_by_role("heading", name="No artifacts yet")).to_be_visible()
    commands = page.locator(".empty pre").inner_text()
    assert f"export ARTIFACTA_API_URL={console.url}" in commands
    assert "artifacta push report.pdf --session run-42 --meta stage=eval" in commands
    shot("empty")
    page.get_by_role("link", name="Sessions", exact=True).click()
    expect(page.get_by_role("heading", name="No sessions yet")).to_be_visible()
    expect(page.locator(".empty pre")).to_contain_text("artifacta push")
    shot("empty-sessions")


# ---------------------------------------------------------------------------- previews


def _media_state(page, selector: str) -> dict:
    return page.locator(selector).evaluate("""async (el) => {
        if (el.readyState < 1) await new Promise((ok, bad) => {
            el.addEventListener("loadedmetadata", ok, {once: true});
            el.addEventListener("error", () => bad(new Error("media error " + el.error.code)), {once: true});
        });
        return {duration: el.duration, width: el.videoWidth || 0};
    }""")


def test_every_preview_kind_is_shown_safely(console, seeded, watched, page, shot):
    # The sandboxed HTML frame's script is refused, and Chromium says so on the console.
    watched.allow(r"^Blocked script execution in '.*/raw' because the document's frame is sandboxed")
    sign_in(page, console.url, seeded.key)
    seen = set()
    for sample in all_samples():
        record = by_name(seeded, sample.filename)
        page.goto(console.url + f"/console/artifacts/{record['artifact_id']}")
        preview = page.locator("#preview")
        expect(page.locator("#sha256")).to_have_text(record["content_hash"])
        check = PREVIEW_CHECKS[sample.kind]
        check(page, preview, sample, record, console.url)
        seen.add(sample.kind)
        preview.scroll_into_view_if_needed()
        shot(sample.filename.replace(".", "-"))
    assert seen == set(PREVIEW_CHECKS)


def _markdown(page, preview, sample, record, url):
    body = preview.locator("#preview-markdown")
    expect(body.get_by_role("heading", name="Evaluation report")).to_be_visible()
    assert body.locator("script").count() == 0
    assert page.locator('a[href^="javascript:" i]').count() == 0
    expect(body).to_contain_text('<script>fetch("/console/static/script-ran-marker")</script>')
    safe = body.get_by_role("link", name="a safe link")
    assert safe.get_attribute("href") == "https://example.com/docs"
    assert "noopener" in safe.get_attribute("rel")
    assert body.locator("img").count() == 0  # a remote image becomes a link
    expect(body.get_by_role("link", name="Image: a remote image")).to_be_visible()
    expect(body.locator("table th").first).to_have_text("model")
    assert body.locator("pre.code span.k").count() >= 1  # the fenced Python is highlighted
    assert body.locator("[style]").count() == 0


def _html(page, preview, sample, record, url):
    frame_el = preview.locator("iframe#preview-html")
    assert frame_el.get_attribute("sandbox") == ""
    frame = page.frame_locator("iframe#preview-html")
    expect(frame.locator("#greeting")).to_have_text("Rendered, scripts off")  # not "SCRIPT RAN"
    preview.get_by_text("HTML source").click()
    expect(preview.locator("#preview-source")).to_contain_text('textContent = "SCRIPT RAN"')


def _svg(page, preview, sample, record, url):
    img = preview.locator("img#preview-image")
    expect(img).to_be_visible()
    assert img.evaluate("el => el.complete && el.naturalWidth") == 120
    assert preview.locator("svg").count() == 0  # never inlined into the page


def _image(page, preview, sample, record, url):
    img = preview.locator("img#preview-image")
    expect(img).to_be_visible()
    assert img.evaluate("el => el.complete && el.naturalWidth") in (48, 20)


def _csv(page, preview, sample, record, url):
    expect(preview.locator("#preview-csv-count")).to_have_text("Showing the first 100 rows of 150.")
    expect(preview.locator("#preview-csv thead th")).to_have_text(["step", "loss", "accuracy"])
    expect(preview.locator("#preview-csv tbody tr")).to_have_count(100)
    expect(preview.locator("#preview-csv tbody tr").first.locator("td")).to_have_text(["0", "1.0000", "0.500"])


def _json(page, preview, sample, record, url):
    text = preview.locator("#preview-text").inner_text()
    assert '\n  "metrics": {\n    "accuracy": 0.931,' in text  # pretty-printed


def _text(page, preview, sample, record, url):
    code = preview.locator("#preview-text")
    expect(code).to_have_text(sample.data.decode())
    if sample.filename.endswith(".py"):
        assert code.locator("span.k, span.kn, span.kd").count() >= 2  # highlighted as Python


def _pdf(page, preview, sample, record, url):
    expect(preview.locator("iframe#preview-pdf")).to_be_visible()
    raw = page.request.get(url + f"/console/artifacts/{record['artifact_id']}/raw")
    assert raw.status == 200 and raw.body() == sample.data
    assert raw.headers["content-type"] == "application/pdf"
    assert raw.headers["content-disposition"].startswith("inline;")
    assert raw.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in raw.headers["content-security-policy"]


def _audio(page, preview, sample, record, url):
    state = _media_state(page, "audio#preview-audio")
    assert 0.4 < state["duration"] < 0.6


def _video(page, preview, sample, record, url):
    state = _media_state(page, "video#preview-video")
    assert state["width"] == 160


def _none(page, preview, sample, record, url):
    expect(preview).to_contain_text("No preview for this type of file")
    raw = page.request.get(url + f"/console/artifacts/{record['artifact_id']}/raw")
    assert raw.headers["content-disposition"].startswith("attachment;")


PREVIEW_CHECKS = {
    "markdown": _markdown, "html": _html, "svg": _svg, "image": _image, "csv": _csv,
    "json": _json, "text": _text, "pdf": _pdf, "audio": _audio, "video": _video, "none": _none,
}


# ---------------------------------------------------------------------------- actions


def test_share_link_create_serve_revoke(console, watched, page, shot):
    tenant = console.tenant(plan="capped")  # links of at most 30 days
    record = tenant.upload(Sample("notes.txt", "text/plain", b"shared bytes\n", "text"))
    sign_in(page, console.url, tenant.key)
    page.goto(console.url + f"/console/artifacts/{record['artifact_id']}")
    choices = page.get_by_label("Link expires after").locator("option").all_inner_texts()
    assert choices == ["1 hour", "1 day", "7 days", "30 days"]
    page.get_by_label("Link expires after").select_option(label="1 day")
    page.get_by_role("button", name="Create share link").click()
    expect(page.get_by_role("status")).to_contain_text("Share link created: ")
    links = page.locator("#links li")
    expect(links).to_have_count(1)
    url = links.first.locator("a.link-url").inner_text()
    assert url.startswith(console.url + "/l/")
    with tenant.api() as api:
        listed = [e for e in api.get("/v1/artifacts").json()["artifacts"]]
        assert listed[0]["artifact_id"] == record["artifact_id"]
    served = httpx.get(url)
    assert served.status_code == 200 and served.content == b"shared bytes\n"
    expires = links.first.locator("time").get_attribute("datetime")
    left = datetime.fromisoformat(expires.replace("Z", "+00:00")) - datetime.now(UTC)
    assert timedelta(hours=23) < left <= timedelta(days=1)
    shot("created")

    links.first.get_by_role("button", name=re.compile("Revoke link")).click()
    expect(page.get_by_role("status")).to_contain_text("revoked; it now answers 410")
    expect(page.locator("#no-links")).to_be_visible()
    gone = httpx.get(url)
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "link_expired"
    shot("revoked")


def test_extend_ttl_and_the_apis_refusal_to_shorten(console, watched, page, shot):
    tenant = console.tenant()
    record = tenant.upload(Sample("short.txt", "text/plain", b"soon gone\n", "text"), ttl="1d")
    sign_in(page, console.url, tenant.key)
    page.goto(console.url + f"/console/artifacts/{record['artifact_id']}")
    page.get_by_label("Expire this long from now").fill("90d")
    page.get_by_role("button", name="Extend TTL").click()
    expect(page.get_by_role("status")).to_contain_text("TTL extended. It now expires")
    with tenant.api() as api:
        after = api.get(f"/v1/artifacts/{record['artifact_id']}").json()
    assert after["expires_at"] > record["expires_at"]
    expect(page.locator("#expires time")).to_have_attribute("datetime", after["expires_at"])
    page.get_by_label("Expire this long from now").fill("1h")
    page.get_by_role("button", name="Extend TTL").click()
    expect(page.get_by_role("alert")).to_contain_text("extend-ttl can only extend")
    with tenant.api() as api:
        assert api.get(f"/v1/artifacts/{record['artifact_id']}").json()["expires_at"] == after["expires_at"]
    shot("refused")


def test_delete_asks_first(console, watched, page, shot):
    tenant = console.tenant()
    record = tenant.upload(Sample("old.png", "image/png", png(), "image"))
    sign_in(page, console.url, tenant.key)
    page.goto(console.url + f"/console/artifacts/{record['artifact_id']}")
    page.get_by_role("link", name="Delete…").click()
    expect(page.get_by_role("heading", name="Delete old.png?")).to_be_visible()
    shot("confirm")
    page.get_by_role("link", name="Cancel").click()
    with tenant.api() as api:
        assert api.get(f"/v1/artifacts/{record['artifact_id']}").status_code == 200
    page.get_by_role("link", name="Delete…").click()
    page.get_by_role("button", name="Delete artifact").click()
    expect(page).to_have_url(console.url + "/console/")
    expect(page.get_by_role("status")).to_contain_text(f"Deleted old.png ({record['artifact_id']}).")
    assert listed_ids(page) == []
    with tenant.api() as api:
        assert api.get(f"/v1/artifacts/{record['artifact_id']}").status_code == 410


def test_a_new_key_is_shown_once_and_can_be_revoked(console, watched, page, shot):
    tenant = console.tenant()
    sign_in(page, console.url, tenant.key)
    page.get_by_role("link", name="Keys").click()
    page.get_by_label("Name").fill("ci-pipeline")
    page.get_by_role("button", name="Create key").click()
    new_key = page.get_by_label("The new API key").input_value()
    assert KEY_RE.match(new_key)
    shot("shown-once")
    assert httpx.get(console.url + "/v1/whoami", headers={"Authorization": f"Bearer {new_key}"}).status_code == 200
    page.reload()
    expect(page).to_have_url(console.url + "/console/keys")
    expect(page.locator("#new-key")).to_have_count(0)
    assert new_key not in page.content()
    row = page.locator("#keys tbody tr", has_text="ci-pipeline")
    expect(row).to_contain_text("…" + new_key[-4:])
    expect(page.locator("#keys tbody tr")).to_have_count(2)  # nothing made twice by the reload
    row.get_by_role("link", name="Revoke key ci-pipeline").click()
    page.get_by_role("button", name="Revoke key").click()
    expect(page.get_by_role("status")).to_contain_text("revoked")
    expect(page.locator("#keys tbody tr", has_text="ci-pipeline")).to_contain_text("revoked")
    assert httpx.get(console.url + "/v1/whoami", headers={"Authorization": f"Bearer {new_key}"}).status_code == 401
    shot("revoked")


def test_sessions_page_lists_and_seals(console, watched, page, shot):
    tenant = console.tenant()
    for name in ("alpha", "beta", "alpha"):
        tenant.upload(Sample(f"{name}.txt", "text/plain", name.encode(), "text"), session_id=name)
    sign_in(page, console.url, tenant.key)
    page.get_by_role("link", name="Sessions", exact=True).click()
    with tenant.api() as api:
        sessions = api.get("/v1/sessions").json()["sessions"]
    rows = page.locator("#sessions tbody tr")
    assert rows.evaluate_all("rs => rs.map(r => r.dataset.sessionId)") == [s["session_id"] for s in sessions]
    expect(page.locator('#sessions tr[data-session-id="alpha"] td.num')).to_have_text("2")
    shot("open")
    page.get_by_role("link", name="Seal session alpha").click()
    page.get_by_role("button", name="Seal session").click()
    expect(page.get_by_role("status")).to_contain_text("Session alpha is sealed")
    expect(page.locator('#sessions tr[data-session-id="alpha"]')).to_contain_text("sealed")
    with tenant.api() as api:
        refused = api.post("/v1/artifacts", data={"session_id": "alpha"},
                           files={"file": ("late.txt", b"late", "text/plain")})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "session_sealed"
    shot("sealed")


def test_audit_page_shows_this_tenants_trail_only(console, watched, page, shot):
    tenant, other = console.tenant(), console.tenant()
    mine = tenant.upload(Sample("a.txt", "text/plain", b"a", "text"))
    theirs = other.upload(Sample("b.txt", "text/plain", b"b", "text"))
    with tenant.api() as api:
        link = api.post(f"/v1/artifacts/{mine['artifact_id']}/links").json()
        api.delete(f"/v1/artifacts/{mine['artifact_id']}")
    with other.api() as api:
        api.delete(f"/v1/artifacts/{theirs['artifact_id']}")
    sign_in(page, console.url, tenant.key)
    page.get_by_role("link", name="Audit").click()
    table = page.locator("#audit")
    expect(table).to_contain_text("link.create")
    expect(table).to_contain_text("artifact.delete")
    expect(table).to_contain_text(link["link_id"])
    assert theirs["artifact_id"] not in table.inner_text()
    shot("trail")
    page.get_by_label("Action").fill("link")
    page.get_by_role("button", name="Show").click()
    actions = page.locator("#audit tbody th").all_inner_texts()
    assert actions == ["link.create"]


# ---------------------------------------------------------------------------- CSRF


def test_a_foreign_origin_or_a_missing_token_is_refused_and_changes_nothing(console, watched, page, shot):
    tenant = console.tenant()
    record = tenant.upload(Sample("keep.txt", "text/plain", b"keep me", "text"))
    target = console.url + f"/console/artifacts/{record['artifact_id']}/delete"
    sign_in(page, console.url, tenant.key)
    page.goto(console.url + f"/console/artifacts/{record['artifact_id']}/delete")
    token = page.locator('input[name="csrf"]').first.get_attribute("value")

    # The same browser session (its cookie), but without the token, or from elsewhere.
    no_token = page.request.post(target, form={}, headers={"Origin": console.url})
    assert no_token.status == 403 and "security token" in no_token.text()
    foreign = page.request.post(target, form={"csrf": token}, headers={"Origin": "http://evil.example"})
    assert foreign.status == 403 and "sent from http://evil.example, not from" in foreign.text()
    no_origin = page.request.post(target, form={"csrf": token})
    assert no_origin.status == 403 and "without an Origin header" in no_origin.text()

    # A real cross-site form post: the browser sends no SameSite=Strict cookie, so there is no
    # session to act for at all.
    page.route("http://evil.example/", lambda route: route.fulfill(
        content_type="text/html",
        body=f'<form method="post" action="{target}"><input name="csrf" value="{token}">'
             '<button>win a prize</button></form>'))
    page.goto("http://evil.example/")
    page.get_by_role("button", name="win a prize").click()
    expect(page).to_have_url(re.compile(r"/console/sign-in"))
    shot("cross-site-post")
    with tenant.api() as api:
        assert api.get(f"/v1/artifacts/{record['artifact_id']}").status_code == 200


# ---------------------------------------------------------------------------- for people


def _pages_to_check(console, seeded) -> list[tuple[str, str]]:
    ids = {r["filename"]: r["artifact_id"] for r in seeded.uploaded}
    return [
        ("artifacts", "/console/"),
        ("filtered", "/console/?session_id=run-1&metadata.stage=eval"),
        ("markdown", f"/console/artifacts/{ids['report.md']}"),
        ("csv", f"/console/artifacts/{ids['metrics.csv']}"),
        ("html", f"/console/artifacts/{ids['page.html']}"),
        ("code", f"/console/artifacts/{ids['train.py']}"),
        ("image", f"/console/artifacts/{ids['plot.png']}"),
        ("video", f"/console/artifacts/{ids['clip.webm']}"),
        ("delete", f"/console/artifacts/{ids['weights.bin']}/delete"),
        ("sessions", "/console/sessions"),
        ("seal", "/console/sessions/seal?session_id=run-1"),
        ("keys", "/console/keys"),
        ("audit", "/console/audit"),
        ("bad-filter", "/console/?created_after=yesterday"),
        ("not-found", "/console/no-such-page"),
    ]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_nothing_serious_on_any_page(console, seeded, watched, page, axe_js, shot, scheme):
    watched.allow(r"status of 40[04]")
    watched.allow(r"^Blocked script execution in '.*/raw' because the document's frame is sandboxed")
    page.emulate_media(color_scheme=scheme)
    page.goto(console.url + "/console/sign-in")
    found = {"sign-in": run_axe(page, axe_js)}
    sign_in(page, console.url, seeded.key)
    for name, path in _pages_to_check(console, seeded):
        page.goto(console.url + path)
        found[name] = run_axe(page, axe_js)
        shot(name)
    empty = console.tenant()
    page.goto(console.url + "/console/")
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, console.url, empty.key)
    found["empty"] = run_axe(page, axe_js)
    assert {name: v for name, v in found.items() if v} == {}


def test_keyboard_only(console, seeded, watched, page, shot):
    page.goto(console.url + "/console/sign-in")
    page.keyboard.press("Tab")
    skip = page.evaluate("() => ({text: document.activeElement.textContent, "
                         "top: document.activeElement.getBoundingClientRect().top, "
                         "outline: getComputedStyle(document.activeElement).outlineStyle})")
    assert skip["text"] == "Skip to main content" and skip["top"] >= 0 and skip["outline"] != "none"
    shot("skip-link", full_page=False)
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "api_key"
    page.keyboard.type(seeded.key)
    page.keyboard.press("Enter")
    expect(page).to_have_url(console.url + "/console/")
    # Skip the navigation, then tab to the first artifact and open it.
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    first = seeded.uploaded[-1]
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == first["filename"]:
            break
    else:
        raise AssertionError("the first artifact's link was never reached with Tab")
    ring = page.evaluate("() => { const s = getComputedStyle(document.activeElement); "
                         "return [s.outlineStyle, parseFloat(s.outlineWidth)]; }")
    assert ring[0] != "none" and ring[1] >= 2
    shot("focus-ring", full_page=False)
    page.keyboard.press("Enter")
    expect(page).to_have_url(console.url + f"/console/artifacts/{first['artifact_id']}")
    # Every form control of the artifact page has a label.
    unlabeled = page.evaluate("""() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
        .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')).map(el => el.id || el.name)""")
    assert unlabeled == []
    headers = page.evaluate("() => [...document.querySelectorAll('th')].filter(th => !th.getAttribute('scope')).length")
    assert headers == 0


def test_dark_mode_follows_the_system(console, seeded, watched, page, shot):
    sign_in(page, console.url, seeded.key)
    luminance = """() => { const [r, g, b] = getComputedStyle(document.body).backgroundColor
        .match(/\\d+/g).map(Number); return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255; }"""
    page.emulate_media(color_scheme="dark")
    page.goto(console.url + f"/console/artifacts/{by_name(seeded, 'report.md')['artifact_id']}")
    assert page.evaluate(luminance) < 0.15
    shot("dark")
    page.emulate_media(color_scheme="light")
    assert page.evaluate(luminance) > 0.9
    shot("light")


def test_the_readme_screenshot(console, watched, page, shot):
    """The picture in the README's Console section, from a realistic tenant."""
    tenant = console.tenant(name="research")
    for i, sample in enumerate(s for s in all_samples() if s.kind != "none"):
        tenant.upload(sample, session_id=("eval-0412", "train-0411", "ablation-03")[i % 3],
                      agent_id=("planner", "evaluator")[i % 2], metadata={"stage": "eval"})
    page.set_viewport_size({"width": 1280, "height": 800})
    sign_in(page, console.url, tenant.key)
    page.goto(console.url + f"/console/artifacts/{tenant.uploaded[0]['artifact_id']}")
    assert MARKDOWN.decode().splitlines()[0].lstrip("# ") in page.inner_text("#preview")
    shot("readme-artifact", full_page=False)
    page.goto(console.url + "/console/")
    shot("readme-list", full_page=False)


def test_the_axe_check_can_fail(page, axe_js):
    """run_axe reports what it should: a page with an unlabelled image and button fails."""
    page.set_content('<html lang="en"><title>t</title><body><main><img src="data:,">'
                     '<button></button></main></body></html>')
    assert {"image-alt", "button-name"} <= {v["id"] for v in run_axe(page, axe_js)}


def test_a_phone_sized_window_needs_no_sideways_scrolling(console, seeded, watched, page, shot):
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, console.url, seeded.key)
    for name, path in (("list", "/console/"),
                       ("artifact", f"/console/artifacts/{by_name(seeded, 'metrics.csv')['artifact_id']}"),
                       ("keys", "/console/keys")):
        page.goto(console.url + path)
        # Wide tables scroll inside their own region; the page itself never does.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, name
        shot(f"phone-{name}")
