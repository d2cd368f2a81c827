"""Artifact pages over plain HTTP against a real server: publishing and taking down through
/v1 (every status, idempotency, the plan's cap, other tenants, audit), and what a visitor with
no key gets at /a/ (the page and its headers, the gallery, passwords and their throttle, 410
after delete/expiry/unpublish, 404 once purged, the bytes charged to the tenant like /l/).
What the page looks like and does in a real browser is tests/browser/test_pages.py."""

from __future__ import annotations

import hashlib
import json
import re
from urllib.parse import urlsplit

import httpx
import pytest

from tests.api.manage_helpers import audit_rows
from tests.helpers import BoxServer, assert_error, db, expire_now, new_tenant, upload

CONFIG = """
[plans.two_pages]
max_pages = 2

[plans.slow]
anonymous_rate_sustained = 0.01
anonymous_rate_burst = 1

[security]
failed_auth_limit = 3
"""
SLUG_RE = re.compile(r"^/a/([A-Za-z0-9]{22})$")
PAGE_KEYS = {"page_id", "public_url", "visibility", "access", "title", "created_at", "updated_at"}


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    srv = BoxServer(tmp_path_factory.mktemp("pages") / "box", config=CONFIG).start()
    yield srv
    srv.stop()


def publish(client: httpx.Client, artifact_id: str, body: dict | None = None) -> httpx.Response:
    if body is None:
        return client.post(f"/v1/artifacts/{artifact_id}/publish")
    return client.post(f"/v1/artifacts/{artifact_id}/publish", json=body)


def slug_of(page: dict) -> str:
    m = SLUG_RE.match(urlsplit(page["public_url"]).path)
    assert m, page["public_url"]
    return m.group(1)


def visitor() -> httpx.Client:
    """A browser with no key and no console cookie."""
    return httpx.Client(timeout=30, headers={"Accept": "text/html"})


def test_publish_is_201_then_200_with_the_same_url_and_new_settings(box):
    _, c = new_tenant(box)
    art = upload(c, b"# Findings\n\nAll good.\n", "findings.md", "text/markdown")
    first = publish(c, art["artifact_id"])  # no body at all: the defaults
    assert first.status_code == 201, first.text
    page = first.json()
    assert set(page) == PAGE_KEYS
    assert (page["visibility"], page["access"], page["title"]) == ("unlisted", "none", None)
    assert page["public_url"].startswith(box.url + "/a/")
    assert page["page_id"].startswith("pg_") and page["created_at"] == page["updated_at"]
    slug_of(page)

    again = publish(c, art["artifact_id"], {"visibility": "public", "title": "  Findings  "})
    assert again.status_code == 200, again.text
    updated = again.json()
    assert updated["public_url"] == page["public_url"] and updated["page_id"] == page["page_id"]
    assert (updated["visibility"], updated["title"]) == ("public", "Findings")
    assert updated["created_at"] == page["created_at"] and updated["updated_at"] > page["updated_at"]
    shown = visitor().get(updated["public_url"])
    assert shown.status_code == 200 and "<h1" in shown.text and "Findings" in shown.text


def test_slugs_are_long_random_and_unrelated_to_the_artifact(box):
    _, c = new_tenant(box)
    slugs = set()
    for i in range(8):
        art = upload(c, f"n{i}".encode())
        page = publish(c, art["artifact_id"]).json()
        slug = slug_of(page)
        assert art["artifact_id"][4:] not in slug
        slugs.add(slug)
    assert len(slugs) == 8
    # 22 characters of [A-Za-z0-9]: log2(62) * 22 = 131 bits; the characters are spread out
    assert len(set("".join(slugs))) > 40


def test_bad_bodies_are_400_with_what_to_fix_and_change_nothing(box):
    _, c = new_tenant(box)
    aid = upload(c)["artifact_id"]
    cases = [
        ({"access": "password"}, "needs a password"),
        ({"access": "password", "password": ""}, "needs a password"),
        ({"visibility": "secret"}, "visibility must be 'unlisted' or 'public'"),
        ({"access": "everyone"}, "access must be 'none' or 'password'"),
        ({"title": "x" * 256}, "at most 255 characters"),
        ({"title": 7}, "title must be a string"),
        ({"title": "two\nlines"}, "control characters"),
        ({"password": "pw"}, 'only used with access "password"'),
    ]
    for body, fragment in cases:
        err = assert_error(publish(c, aid, body), 400, "invalid_request")
        assert fragment in err["message"], (body, err)
    bad_json = c.post(f"/v1/artifacts/{aid}/publish", content=b"{nope",
                      headers={"Content-Type": "application/json"})
    assert_error(bad_json, 400, "invalid_request")
    assert publish(c, aid, {"title": "x" * 255}).status_code == 201  # the limit itself is fine
    assert audit_rows(box, "page.publish", publish(c, aid).json()["page_id"])  # nothing partial


def test_unknown_foreign_deleted_and_expired_artifacts(box):
    _, owner = new_tenant(box)
    _, other = new_tenant(box)
    aid = upload(owner)["artifact_id"]
    for client, target in ((owner, "art_" + "0" * 16), (owner, "nope"), (other, aid)):
        assert_error(publish(client, target), 404, "artifact_not_found")
        assert_error(client.delete(f"/v1/artifacts/{target}/publish"), 404, "artifact_not_found")
    page = publish(owner, aid).json()
    assert_error(other.delete(f"/v1/artifacts/{aid}/publish"), 404, "artifact_not_found")
    assert visitor().get(page["public_url"]).status_code == 200  # another tenant changed nothing

    assert owner.delete(f"/v1/artifacts/{aid}").status_code == 200
    assert_error(publish(owner, aid), 410, "artifact_already_deleted")
    assert_error(owner.delete(f"/v1/artifacts/{aid}/publish"), 410, "artifact_already_deleted")
    gone = visitor().get(page["public_url"])
    assert gone.status_code == 410 and "text/html" in gone.headers["content-type"]
    assert "deleted" in gone.text

    expiring = upload(owner)["artifact_id"]
    expiring_page = publish(owner, expiring).json()
    expire_now(box, expiring)
    assert_error(publish(owner, expiring), 410, "artifact_expired")
    late = visitor().get(expiring_page["public_url"])
    assert late.status_code == 410 and "expired" in late.text


def test_unpublish_is_idempotent_and_the_url_stays_dead(box):
    _, c = new_tenant(box)
    aid = upload(c)["artifact_id"]
    never = c.delete(f"/v1/artifacts/{aid}/publish")
    assert never.status_code == 200
    assert never.json() == {"artifact_id": aid, "published": False, "page_id": None,
                            "unpublished_at": None}
    page = publish(c, aid).json()
    first = c.delete(f"/v1/artifacts/{aid}/publish")
    second = c.delete(f"/v1/artifacts/{aid}/publish")
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert first.json()["page_id"] == page["page_id"] and first.json()["unpublished_at"]
    assert len(audit_rows(box, "page.unpublish", page["page_id"])) == 1
    gone = visitor().get(page["public_url"])
    assert gone.status_code == 410 and "taken down" in gone.text
    # publishing again makes a new page under a new URL; the old one never comes back
    new = publish(c, aid)
    assert new.status_code == 201 and new.json()["public_url"] != page["public_url"]
    assert visitor().get(page["public_url"]).status_code == 410
    assert visitor().get(new.json()["public_url"]).status_code == 200


def test_a_purged_artifacts_page_and_unknown_slugs_are_404(box):
    _, c = new_tenant(box)
    aid = upload(c)["artifact_id"]
    page = publish(c, aid).json()
    with db(box) as conn:  # what the retention purge leaves: the artifact row is gone
        conn.execute("DELETE FROM artifacts WHERE artifact_id = ?", (aid,))
    conn.close()
    purged = visitor().get(page["public_url"])
    assert purged.status_code == 404 and "text/html" in purged.headers["content-type"]
    for path in ("/a/" + "A" * 22, "/a/short", "/a/" + "A" * 22 + "/raw", "/a/" + "A" * 22 + "/download"):
        resp = visitor().get(box.url + path)
        assert resp.status_code == 404, path


def test_the_plans_page_cap(box):
    _, c = new_tenant(box, plan="two_pages")
    ids = [upload(c)["artifact_id"] for _ in range(3)]
    assert publish(c, ids[0]).status_code == 201
    assert publish(c, ids[1]).status_code == 201
    err = assert_error(publish(c, ids[2]), 403, "quota_exceeded")
    assert "2 published pages" in err["message"]
    assert publish(c, ids[1], {"title": "re-publish is no new page"}).status_code == 200
    who = c.get("/v1/whoami").json()
    assert (who["active_pages"], who["max_pages"]) == (2, 2)
    # a taken-down page, or one of a deleted artifact, frees its place at once
    assert c.delete(f"/v1/artifacts/{ids[0]}/publish").status_code == 200
    assert publish(c, ids[2]).status_code == 201
    assert c.delete(f"/v1/artifacts/{ids[1]}").status_code == 200
    assert c.get("/v1/whoami").json()["active_pages"] == 1


def test_publish_and_unpublish_are_audited(box):
    name, c = new_tenant(box)
    aid = upload(c)["artifact_id"]
    page = publish(c, aid, {"visibility": "public"}).json()
    publish(c, aid, {"access": "password", "password": "hunter2"})
    c.delete(f"/v1/artifacts/{aid}/publish")
    published = audit_rows(box, "page.publish", page["page_id"])
    assert [json.loads(r["details"])["first"] for r in published] == [True, False]
    assert json.loads(published[1]["details"])["access"] == "password"
    assert all(r["tenant"] == name and r["actor"].startswith("key:") for r in published)
    assert "hunter2" not in json.dumps([dict(r) for r in published])
    assert len(audit_rows(box, "page.unpublish", page["page_id"])) == 1


def test_the_page_for_a_visitor_and_its_headers(box):
    _, c = new_tenant(box)
    body = b"step,loss\n1,0.5\n2,0.25\n"
    art = upload(c, body, "metrics.csv", "text/csv")
    page = publish(c, art["artifact_id"], {"title": "Loss curve <b>raw</b>"}).json()
    v = visitor()
    resp = v.get(page["public_url"])
    assert resp.status_code == 200
    assert resp.headers["x-robots-tag"] == "noindex"  # unlisted
    assert "script-src 'self'" in resp.headers["content-security-policy"]
    assert resp.headers["x-frame-options"] == "DENY"
    assert "Loss curve &lt;b&gt;raw&lt;/b&gt;" in resp.text  # escaped
    assert "metrics.csv" in resp.text and '<meta name="robots" content="noindex">' in resp.text
    assert 'id="preview-csv"' in resp.text and "<td>0.25</td>" in resp.text
    assert "set-cookie" not in resp.headers
    slug = slug_of(page)
    raw = v.get(f"{box.url}/a/{slug}/raw")
    assert raw.status_code == 200 and raw.content == body
    assert raw.headers["content-disposition"].startswith("attachment")  # CSV is not inline
    assert raw.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert raw.headers["x-content-type-options"] == "nosniff"
    down = v.get(f"{box.url}/a/{slug}/download")
    assert down.status_code == 200 and down.content == body
    assert down.headers["x-robots-tag"] == "noindex"
    assert hashlib.sha256(down.content).hexdigest() == art["content_hash"]
    ranged = v.get(f"{box.url}/a/{slug}/download", headers={"Range": "bytes=0-3"})
    assert ranged.status_code == 206 and ranged.content == body[:4]

    public = publish(c, art["artifact_id"], {"visibility": "public"}).json()
    assert "x-robots-tag" not in v.get(public["public_url"]).headers  # may be indexed


def test_images_are_inline_and_html_stays_sandboxed(box):
    _, c = new_tenant(box)
    png = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
    img = publish(c, upload(c, png, "dot.png", "image/png")["artifact_id"]).json()
    raw = visitor().get(img["public_url"] + "/raw")
    assert raw.headers["content-type"] == "image/png"
    assert raw.headers["content-disposition"].startswith("inline")
    html_art = upload(c, b"<script>alert(1)</script><p>hi</p>", "page.html", "text/html")
    html_page = publish(c, html_art["artifact_id"]).json()
    shown = visitor().get(html_page["public_url"]).text
    assert '<iframe class="preview-frame" sandbox=""' in shown
    assert "<script>alert(1)</script>" not in shown  # shown as source only, escaped
    raw_html = visitor().get(html_page["public_url"] + "/raw")
    assert raw_html.headers["content-security-policy"] == "default-src 'none'; sandbox"


def test_the_gallery_lists_public_pages_newest_first_in_pages(box):
    _, c = new_tenant(box)
    made = []
    for i in range(27):
        art = upload(c, f"g{i}".encode(), f"gallery-{i:02d}.txt")
        publish(c, art["artifact_id"], {"visibility": "public", "title": f"Gallery item {i:02d}"})
        made.append(art["artifact_id"])
    hidden = upload(c, b"unlisted", "hidden.txt")
    publish(c, hidden["artifact_id"])  # unlisted: never listed
    v = visitor()
    first = v.get(box.url + "/a/")
    assert first.status_code == 200 and "x-robots-tag" not in first.headers
    titles = re.findall(r"Gallery item (\d\d)", first.text)
    assert titles == [f"{i:02d}" for i in range(26, 2, -1)]  # 24 a page, newest first
    assert "hidden.txt" not in first.text
    older = re.search(r'href="(/a/\?cursor=[^"]+)" rel="next"', first.text)
    assert older
    second = v.get(box.url + older.group(1).replace("&amp;", "&"))
    assert re.findall(r"Gallery item (\d\d)", second.text)[:3] == ["02", "01", "00"]
    # taken down or deleted: off the gallery at once
    assert c.delete(f"/v1/artifacts/{made[-1]}/publish").status_code == 200
    assert c.delete(f"/v1/artifacts/{made[-2]}").status_code == 200
    now = re.findall(r"Gallery item (\d\d)", v.get(box.url + "/a/").text)
    assert now[:2] == ["24", "23"] and "26" not in now and "25" not in now
    bad = v.get(box.url + "/a/?cursor=forged")
    assert bad.status_code == 400 and "cursor" in bad.text


def test_password_pages(box):
    _, c = new_tenant(box)
    art = upload(c, b"secret findings", "secret.txt")
    page = publish(c, art["artifact_id"], {"access": "password", "password": "correct horse",
                                           "visibility": "public"}).json()
    with db(box) as conn:
        stored = conn.execute("SELECT password_hash FROM pages WHERE page_id = ?",
                              (page["page_id"],)).fetchone()[0]
    conn.close()
    assert stored.startswith("scrypt$16384$8$1$") and "correct horse" not in stored
    url = page["public_url"]
    slug = slug_of(page)
    v = visitor()
    form = v.get(url)
    assert form.status_code == 401 and 'type="password"' in form.text
    assert "secret findings" not in form.text and form.headers["x-robots-tag"] == "noindex"
    assert v.get(url + "/raw").status_code == 401
    assert v.get(url + "/download").status_code == 401
    wrong = v.post(url, data={"password": "wrong"})
    assert wrong.status_code == 401 and "not right" in wrong.text
    right = v.post(url, data={"password": "correct horse"})
    assert right.status_code == 303 and right.headers["location"] == f"/a/{slug}"
    cookie = right.headers["set-cookie"]
    assert f"Path=/a/{slug}" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "correct horse" not in cookie
    assert v.get(url).status_code == 200 and "secret findings" in v.get(url).text
    assert v.get(url + "/download").content == b"secret findings"

    # the cookie opens this page only
    other = publish(c, upload(c, b"other")["artifact_id"],
                    {"access": "password", "password": "correct horse"}).json()
    token = cookie.split(";")[0].split("=", 1)[1]
    borrowed = httpx.get(other["public_url"], cookies={"artifacta_page": token})
    assert borrowed.status_code == 401
    # a new password ends access granted under the old one
    publish(c, art["artifact_id"], {"access": "password", "password": "new one"})
    assert v.get(url).status_code == 401
    # and access "none" opens it to everyone again, under the same URL
    publish(c, art["artifact_id"], {"access": "none"})
    assert visitor().get(url).status_code == 200
    # a form sent from another site is refused
    publish(c, art["artifact_id"], {"access": "password", "password": "pw"})
    foreign = visitor().post(url, data={"password": "pw"}, headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403 and "set-cookie" not in foreign.headers


@pytest.mark.serial  # failures counted in a sliding window while the requests run
def test_wrong_passwords_are_throttled_per_address_and_page(box):
    _, c = new_tenant(box)
    page = publish(c, upload(c, b"guarded")["artifact_id"],
                   {"access": "password", "password": "right"}).json()
    other = publish(c, upload(c, b"elsewhere")["artifact_id"],
                    {"access": "password", "password": "right"}).json()
    v = visitor()
    for _ in range(3):  # failed_auth_limit = 3
        assert v.post(page["public_url"], data={"password": "guess"}).status_code == 401
    blocked = v.post(page["public_url"], data={"password": "right"})
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
    assert "Too many wrong passwords" in blocked.text and "set-cookie" not in blocked.headers
    # another page, and the API's own failed-auth budget, are untouched
    assert v.post(other["public_url"], data={"password": "right"}).status_code == 303
    assert c.get("/v1/whoami").status_code == 200


@pytest.mark.serial  # a token bucket refilling while the requests run
def test_page_bytes_are_charged_to_the_tenants_anonymous_bucket_like_share_links(box):
    _, c = new_tenant(box, plan="slow")  # 1 anonymous token, refilled at 1 per 100 s
    aid = upload(c, b"rationed")["artifact_id"]
    url = publish(c, aid).json()["public_url"]
    assert visitor().get(url).status_code == 200  # the anonymous bucket is empty now
    limited = visitor().get(url)
    assert limited.status_code == 429 and "text/html" in limited.headers["content-type"]
    assert int(limited.headers["retry-after"]) >= 1
    assert visitor().get(url + "/download").status_code == 429
    link = c.post(f"/v1/artifacts/{aid}/links").json()["url"]
    assert_error(httpx.get(link), 429, "rate_limited")  # the same bucket as its share links
    assert c.get("/v1/whoami").status_code == 200  # the API's own bucket is untouched


def test_the_console_publishes_and_unpublishes(box):
    from tests.api.test_console import signed_in
    from tests.console_helpers import csrf_of, make_tenant

    tenant = make_tenant(box)
    with tenant.api() as api:
        art = api.post("/v1/artifacts", files={"file": ("c.txt", b"from the console", "text/plain")}).json()
    client = signed_in(box, tenant)
    aid = art["artifact_id"]
    shown = client.get(f"/console/artifacts/{aid}")
    assert "Not published" in shown.text
    token = csrf_of(shown.text)
    done = client.post(f"/console/artifacts/{aid}/publish",
                       data={"csrf": token, "visibility": "public", "access": "none", "title": "Hi"})
    assert done.status_code == 303
    with tenant.api() as api:
        who = api.get("/v1/whoami").json()
    assert who["active_pages"] == 1
    shown = client.get(f"/console/artifacts/{aid}")
    url = re.search(r'id="page-url" type="text" value="([^"]+)"', shown.text).group(1)
    assert visitor().get(url).status_code == 200
    refused = client.post(f"/console/artifacts/{aid}/publish",
                          data={"csrf": token, "visibility": "unlisted", "access": "password"})
    assert refused.status_code == 303
    assert "needs a password" in client.get(f"/console/artifacts/{aid}").text
    assert client.post(f"/console/artifacts/{aid}/unpublish", data={}).status_code == 403
    assert client.post(f"/console/artifacts/{aid}/unpublish", data={"csrf": token}).status_code == 303
    assert visitor().get(url).status_code == 410
