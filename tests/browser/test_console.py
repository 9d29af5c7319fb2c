"""The web console in a real browser (Debian's Chromium through Playwright)
against the local system: every flow an org admin uses it for, stored content
rendered as text, the security headers on every console response, and a
screenshot of every page at desktop and phone size (tests/browser/screenshots,
git-ignored; the committed set is docs/console/)."""

import json
import re
from datetime import datetime, timedelta, timezone

import pytest
import requests
from playwright.sync_api import expect

from conftest import BASE, ROOT, admin, call, new_org, post_json, scoped_key, wait_until
from console_kit import (  # noqa: F401  (fixtures)
    DESKTOP,
    PHONE,
    browser,
    browser_type_launch_args,
    console,
    open_console,
    playwright,
)

DIST = ROOT / "console" / "dist"


def api(method, path, key, **kw):
    return call(method, path, key=key, **kw)[0]


def make_key(org, scopes="read", name="tool"):
    r = post_json("/v1/keys", org.key, {"name": name, "scopes": scopes.split(",")})
    assert r.status_code == 201, r.text
    return r.json()


# --- serving -----------------------------------------------------------------

def console_paths():
    files = sorted(p.relative_to(DIST).as_posix() for p in DIST.rglob("*") if p.is_file())
    assert {"index.html", "app.js", "app.css"} <= set(files), "console/dist is built by scripts/build-worker.sh"
    return [f"/console/{f}" for f in files] + ["/console/", "/console", "/console/nonexistent", "/console/.env",
                                                "/console/a//b", "/console/nested/missing.js"]


def check_security_headers(r, where):
    csp = r.headers.get("content-security-policy", "")
    directives = {d.strip().split(" ")[0]: d.strip().split(" ")[1:] for d in csp.split(";") if d.strip()}
    assert directives.get("default-src") == ["'self'"], (where, csp)
    assert directives.get("frame-ancestors") == ["'none'"], (where, csp)
    assert directives.get("script-src") == ["'self'"], (where, csp)
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "*" not in csp, (where, csp)
    assert r.headers.get("referrer-policy") == "no-referrer", where
    assert r.headers.get("x-content-type-options") == "nosniff", where


def test_every_console_response_carries_the_security_headers():
    seen = {}
    for path in console_paths():
        r = requests.get(BASE + path, timeout=30)
        check_security_headers(r, path)
        seen[path] = r.status_code
    assert seen["/console/"] == seen["/console"] == seen["/console/app.js"] == 200
    assert seen["/console/nonexistent"] == seen["/console/.env"] == seen["/console/nested/missing.js"] == 404
    head = requests.head(BASE + "/console/", timeout=30)
    post = requests.post(BASE + "/console/", data=b"x", timeout=30)
    for r in (head, post):
        check_security_headers(r, r.request.method)
    assert head.status_code == 200 and post.status_code == 405
    assert post.headers["allow"] == "GET, HEAD"
    index = requests.get(BASE + "/console/", timeout=30)
    assert index.headers["content-type"].startswith("text/html")
    assert "<script>" not in index.text and " style=" not in index.text and "<style" not in index.text
    assert requests.get(BASE + "/console/app.js", timeout=30).headers["content-type"].startswith(
        ("application/javascript", "text/javascript"))


def test_console_files_are_not_served_outside_console_path():
    # Every request runs the Worker first: a built file is never answered
    # from the asset store at its bare name (which would lack the headers).
    for name in ("/app.js", "/index.html", "/app.css"):
        r = requests.get(BASE + name, timeout=30)
        assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND", name


def test_same_origin_writes_pass_and_other_origins_are_still_refused():
    # The console's writes carry its own origin (browsers send `Origin` on a
    # same-origin POST): that is not a cross-origin call. Any other origin
    # the org does not list is refused as before.
    org = new_org("Console origin org")
    body = {"name": "from the console", "scopes": ["read"]}
    own = post_json("/v1/keys", org.key, body, headers={"Origin": BASE})
    assert own.status_code == 201, own.text
    assert "access-control-allow-origin" not in own.headers
    other = post_json("/v1/keys", org.key, body, headers={"Origin": "https://evil.example"})
    assert other.status_code == 403 and other.json()["error"]["message"] == "this Origin is not in the org's allowed_origins"
    lookalike = post_json("/v1/keys", org.key, body, headers={"Origin": BASE.replace("127.0.0.1", "localhost")})
    assert lookalike.status_code == 403


# --- sign-in ---------------------------------------------------------------

def test_sign_in_keeps_key_in_tab_only_and_sign_out_forgets_it(console):
    org = new_org("Console sign-in org")
    page = console.sign_in(org.key)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.get_by_role("heading", name="Console sign-in org")).to_be_visible()
    stored = page.evaluate("() => ({ local: localStorage.length, cookie: document.cookie, "
                           "session: JSON.stringify(sessionStorage) })")
    assert stored["local"] == 0 and stored["cookie"] == ""
    assert org.key in stored["session"]
    assert console.context.cookies() == []
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.evaluate("() => sessionStorage.length + localStorage.length") == 0
    assert org.key not in page.content()


def test_bad_key_shows_api_error_and_request_id(console):
    page = console.open()
    page.get_by_label("API key").fill("ck_live_NOT-A-KEY")
    page.get_by_role("button", name="Sign in").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("UNAUTHORIZED")
    expect(alert).to_contain_text(re.compile(r"Request id: req_[0-9A-Z]{26}"))


def test_read_key_sees_admin_pages_disabled_with_reason(console):
    org = new_org("Console read-only org")
    page = console.sign_in(scoped_key(org, "read"))
    expect(page.get_by_role("heading", name="Alerts")).to_be_visible()
    nav = page.get_by_role("navigation", name="Console pages")
    for title in ("Overview", "Keys", "Audit log", "Erasures", "Webhooks", "Org settings"):
        item = nav.locator(".disabled", has_text=title)
        expect(item).to_have_attribute("aria-disabled", "true")
        expect(item).to_have_attribute("title", re.compile("admin scope"))
        expect(item).to_contain_text("needs admin")
    expect(nav.get_by_role("link", name="Interactions")).to_be_visible()
    console.go("#/keys")
    expect(page.get_by_role("alert")).to_contain_text("Needs a key with the admin scope")


def test_keyboard_alone_signs_in_and_moves_between_pages(console):
    org = new_org("Console keyboard org")
    page = console.open()
    expect(page.get_by_label("API key")).to_be_focused()
    page.keyboard.type(org.key)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    # Focus moves to the page's content on each page change; the navigation
    # is just before it.
    for _ in range(8):
        page.keyboard.press("Shift+Tab")
        if page.evaluate("() => document.activeElement.textContent") == "Keys":
            break
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Keys", exact=True)).to_be_visible()


# --- keys ------------------------------------------------------------------

def test_created_key_works_with_api_and_revoked_key_fails_next_call(console):
    org = new_org("Console keys org")
    page = console.sign_in(org.key)
    console.go("#/keys")
    page.get_by_label("Name").fill("console-made")
    page.locator("#scope-ingest").uncheck()
    page.locator("#scope-read").check()
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-secret")
    expect(secret).to_have_text(re.compile(r"^ck_live_[0-9A-Z]{26}$"))
    plaintext = secret.text_content()
    expect(page.get_by_role("region", name=re.compile("New key"))).to_contain_text("only time the key is shown")
    console.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_text("Copied.")).to_be_visible()
    assert page.evaluate("() => navigator.clipboard.readText()") == plaintext
    assert api("GET", "/v1/interactions", plaintext).status_code == 200
    prefix = plaintext[len("ck_live_"):][:8]
    page.get_by_role("button", name=f"Revoke key {prefix}").click()
    console.confirm("Revoke")
    expect(page.get_by_text(f"Key {prefix} revoked.")).to_be_visible()
    row = page.locator("tr", has=page.locator("code", has_text=prefix)).first
    expect(row).to_contain_text("revoked")
    assert api("GET", "/v1/interactions", plaintext).status_code == 401
    # The plaintext is not kept anywhere once the page has moved on.
    console.go("#/overview")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    assert plaintext not in page.content()


def test_rotation_shows_successor_once_and_old_key_lives_through_grace(console):
    org = new_org("Console rotation org")
    old = make_key(org, "read", "to-rotate")
    page = console.sign_in(org.key)
    console.go("#/keys")
    page.get_by_label(f"Grace period in seconds for key {old['prefix']}").fill("600")
    page.get_by_role("button", name=f"Rotate key {old['prefix']}").click()
    console.confirm("Rotate")
    secret = page.locator("#new-secret")
    expect(secret).to_have_text(re.compile(r"^ck_live_[0-9A-Z]{26}$"))
    successor = secret.text_content()
    assert api("GET", "/v1/alerts", successor).status_code == 200
    assert api("GET", "/v1/alerts", old["key"]).status_code == 200  # inside its grace period
    row = page.locator("tr", has=page.locator("code", has_text=old["prefix"])).first
    expect(row).to_contain_text(successor[len("ck_live_"):][:8])


# --- audit, alerts ---------------------------------------------------------

def test_audit_log_pages_and_shows_failure_reasons(console):
    org = new_org("Console audit org")
    for i in range(3):
        make_key(org, "read", f"k{i}")
    body = org.key[len("ck_live_"):]
    wrong = "ck_live_" + body[:8] + ("0" if body[8] != "0" else "1") + body[9:]
    assert api("GET", "/v1/org", wrong).status_code == 401
    failure = wait_until(
        lambda: api("GET", "/v1/audit-log", org.key, params={"action": "auth.failure"}).json()["entries"],
        30, "the auth failure's audit row")[0]
    total = len(api("GET", "/v1/audit-log", org.key, params={"limit": 200}).json()["entries"])
    assert total >= 4
    page = console.sign_in(org.key)
    console.go("#/audit?limit=2")
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(2)
    expect(page.get_by_role("status").filter(has_text="shown")).to_have_text("2 shown; more follow.")
    more = page.get_by_role("button", name="Load more")
    while more.is_visible():
        n = rows.count()
        more.click()
        expect(rows).not_to_have_count(n)
    expect(rows).to_have_count(total)
    page.get_by_label("Action").fill("auth.failure")
    page.get_by_role("button", name="Apply filters").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(failure["reason"])
    expect(rows.first).to_contain_text(failure["prefix"])
    page.get_by_label("Action").fill("")
    page.get_by_label("Key prefix").fill(org.prefix)
    page.get_by_role("button", name="Apply filters").click()
    expect(rows.first).to_contain_text(org.prefix)


def raise_dead_key_alert(org):
    dead = make_key(org, "read", "soon-dead")
    assert api("POST", f"/v1/keys/{dead['prefix']}/revoke", org.key).status_code in (200, 204)
    assert api("GET", "/v1/alerts", dead["key"]).status_code == 401
    return wait_until(lambda: api("GET", "/v1/alerts", org.key, params={"kind": "dead_key_used"}).json()["alerts"],
                      30, "the dead_key_used alert")[0]


def test_alerts_filter_by_kind_and_state(console):
    org = new_org("Console alerts org")
    alert = raise_dead_key_alert(org)
    page = console.sign_in(org.key)
    expect(page.get_by_role("region", name="Open alerts", exact=True)).to_contain_text("dead_key_used")
    console.go("#/alerts")
    page.get_by_label("Kind").select_option("dead_key_used")
    page.get_by_label("State").select_option("open")
    page.get_by_role("button", name="Apply filters").click()
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(alert["prefix"])
    page.get_by_label("State").select_option("resolved")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.get_by_text("Nothing matches.")).to_be_visible()


def test_resolving_an_alert_closes_it(console):
    org = new_org("Console resolve org")
    alert = raise_dead_key_alert(org)
    page = console.sign_in(org.key)
    console.go("#/alerts?state=open")
    page.get_by_role("button", name=f"Resolve alert dead_key_used {alert['prefix']}").click()
    expect(page.get_by_text("Alert dead_key_used resolved.")).to_be_visible()
    expect(page.get_by_text("Nothing matches.")).to_be_visible()  # no longer open
    [after] = [a for a in api("GET", "/v1/alerts", org.key).json()["alerts"] if a["id"] == alert["id"]]
    assert after["state"] == "resolved"


# --- interactions ------------------------------------------------------------

def ingest(org, items):
    key = scoped_key(org, "ingest")
    r = post_json("/v1/interactions/batch", key, {"interactions": items})
    assert r.status_code == 201, r.text
    return r.json()["interactions"]


def ago(seconds: int) -> str:
    t = datetime.now(timezone.utc) - timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_interactions_filter_session_view_detail_and_erase(console):
    org = new_org("Console interactions org")
    stored = ingest(org, [
        {"type": "chat.turn", "actor": "alice", "session": "conv 1", "content": f"hello {i}", "occurred_at": ago(60 - i)}
        for i in range(3)
    ] + [{"type": "chat.turn", "actor": "bob", "session": "conv-2", "content": "other"}])
    page = console.sign_in(org.key)
    console.go("#/interactions")
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(4)
    page.get_by_label("Actor").fill("alice")
    page.get_by_role("button", name="Apply filters").click()
    expect(rows).to_have_count(3)
    page.get_by_label("Actor").fill("")
    page.get_by_label("Session").fill("conv-2")
    page.get_by_role("button", name="Apply filters").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("bob")
    # One conversation, oldest first.
    console.go("#/interactions")
    page.get_by_role("link", name="conv 1").first.click()
    expect(page.get_by_role("heading", name="Conversation conv 1")).to_be_visible()
    expect(page.locator("ol.conversation pre.content")).to_have_text(["hello 0", "hello 1", "hello 2"])
    victim = stored[0]
    page.get_by_role("link", name=victim["id"]).click()
    expect(page.locator("#content")).to_have_text("hello 0")
    page.get_by_role("button", name="Erase this interaction").click()
    console.confirm("Erase")
    expect(page.get_by_text(f"Interaction {victim['id']} erased.")).to_be_visible()
    assert api("GET", f"/v1/interactions/{victim['id']}", org.key).status_code == 404


PAYLOADS = [
    '<img src=x onerror="alert(1)">',
    "<script>alert(2)</script>",
    '"><svg onload=alert(3)><a href="https://evil.example/">x</a>',
    "[click](javascript:alert(4)) ![p](https://evil.example/p.png)",
    "{{constructor.constructor('alert(5)')()}} ${alert(6)} <iframe src=https://evil.example/></iframe>",
]


def test_stored_injection_is_rendered_as_text_and_never_runs(console):
    org = new_org("Console injection org")
    content = "\n".join(PAYLOADS)
    [rec] = ingest(org, [{"type": "chat.turn", "actor": PAYLOADS[0], "session": PAYLOADS[1], "content": content,
                          "metadata": {"html": PAYLOADS[2]}}])
    dialogs, foreign = [], []
    page = console.page
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

    def route(r):
        if r.request.url.startswith(BASE + "/"):
            r.continue_()
        else:
            foreign.append(r.request.url)
            r.abort()

    console.context.route("**/*", route)
    console.sign_in(org.key)
    console.go("#/interactions")
    row = page.locator("table tbody tr").first
    expect(row).to_contain_text(PAYLOADS[0])
    page.get_by_role("link", name=rec["id"]).click()
    expect(page.locator("#content")).to_have_text(content)
    assert page.locator("#content").text_content() == content
    assert json.loads(page.locator("#metadata").text_content()) == {"html": PAYLOADS[2]}
    expect(page.locator("dd", has_text=PAYLOADS[0])).to_have_count(1)
    page.get_by_role("link", name=PAYLOADS[1]).click()
    expect(page.get_by_role("heading", name=f"Conversation {PAYLOADS[1]}")).to_be_visible()
    assert page.locator("ol.conversation pre.content").text_content() == content
    page.wait_for_timeout(500)  # give any injected handler its chance to run
    assert page.locator("main img, main svg, main iframe, main script").count() == 0
    assert page.locator("script").count() == 1  # the console's own module
    assert dialogs == [] and foreign == []


# --- erasures ---------------------------------------------------------------------

def test_erasure_names_the_actor_runs_to_done_and_the_actor_is_gone(console):
    org = new_org("Console erasure org")
    actor = "leaving user <7>"
    ingest(org, [{"type": "chat.turn", "actor": actor, "content": f"bye {i}"} for i in range(3)]
           + [{"type": "chat.turn", "actor": "staying-user", "content": "still here"}])
    reader = scoped_key(org, "read")
    page = console.sign_in(org.key)
    console.go("#/erasures")
    expect(page.get_by_text("kept in its memory only")).to_be_visible()
    expect(page.get_by_text("No erasure started in this tab yet.")).to_be_visible()
    page.get_by_label("Actor", exact=True).fill(actor)
    # Cancelling starts nothing.
    page.get_by_role("button", name="Erase everything of this actor").click()
    expect(page.get_by_role("dialog")).to_contain_text(f'Erase everything of actor "{actor}"?')
    console.confirm("Cancel")
    expect(page.get_by_text("No erasure started in this tab yet.")).to_be_visible()
    assert api("GET", "/v1/interactions", reader, params={"actor": actor}).json()["interactions"] != []
    page.get_by_role("button", name="Erase everything of this actor").click()
    console.confirm("Erase")
    row = page.locator(".jobs table tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("td").nth(0)).to_have_text(actor)
    expect(row.locator("td").nth(1)).to_have_text("done", timeout=30_000)
    expect(row.locator("td").nth(2)).to_have_text("3")
    expect(row.locator("td").nth(6)).to_have_text("Finished.")
    job_id = row.locator("td").nth(5).text_content()
    job = api("GET", f"/v1/erasures/{job_id}", org.key).json()
    assert job["state"] == "done" and job["deleted"] == 3 and job["actor"] == actor
    assert api("GET", "/v1/interactions", reader, params={"actor": actor}).json()["interactions"] == []
    assert len(api("GET", "/v1/interactions", reader, params={"actor": "staying-user"}).json()["interactions"]) == 1
    # The job stays listed in this tab across pages, and is forgotten on sign-out.
    console.go("#/overview")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    console.go("#/erasures")
    expect(row.locator("td").nth(5)).to_have_text(job_id)
    # Signing out (no reload) forgets it.
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("API key").fill(org.key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    console.go("#/erasures")
    expect(page.get_by_text("No erasure started in this tab yet.")).to_be_visible()


# --- webhooks ---------------------------------------------------------------------

def test_webhook_refused_url_shows_api_message_then_secret_shown_once_rotated_and_deleted(console):
    org = new_org("Console webhooks org")
    bad = "http://hooks.example.com/interlog"
    expected = post_json("/v1/webhooks", org.key, {"url": bad})
    assert expected.status_code == 400, expected.text
    message = expected.json()["error"]["details"][0]["message"]
    private = post_json("/v1/webhooks", org.key, {"url": "https://10.0.0.5/hook"})
    assert private.status_code == 400, private.text
    private_message = private.json()["error"]["details"][0]["message"]
    page = console.sign_in(org.key)
    console.go("#/webhooks")
    expect(page.get_by_text("No webhooks yet.")).to_be_visible()
    url = page.get_by_label("Endpoint URL")
    inline = page.locator("#webhook-url-errors")
    url.fill(bad)
    page.get_by_role("button", name="Add webhook").click()
    expect(inline).to_have_text(message)
    expect(url).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("alert")).to_contain_text("VALIDATION_FAILED")
    expect(page.get_by_role("alert")).to_contain_text(re.compile(r"Request id: req_[0-9A-Z]{26}"))
    url.fill("https://10.0.0.5/hook")
    page.get_by_role("button", name="Add webhook").click()
    expect(inline).to_have_text(private_message)
    assert api("GET", "/v1/webhooks", org.key).json()["webhooks"] == []
    # A public https URL is accepted; the secret is shown this once.
    good = "https://hooks.example.com/interlog"
    url.fill(good)
    page.get_by_label("alert.resolved").uncheck()
    page.get_by_role("button", name="Add webhook").click()
    secret = page.locator("#new-secret")
    expect(secret).to_have_text(re.compile(r"^whsec_[A-Za-z0-9+/]{43}=$"))
    first = secret.text_content()
    expect(page.get_by_role("region", name=f"Signing secret of {good}")).to_contain_text(
        "only time the signing secret is shown")
    [hook] = api("GET", "/v1/webhooks", org.key).json()["webhooks"]
    assert hook["url"] == good and hook["events"] == ["alert.opened"] and hook["state"] == "active"
    row = page.locator("tr", has=page.locator("code", has_text=hook["id"]))
    expect(row).to_contain_text(good)
    expect(row).to_contain_text("alert.opened")
    expect(row).to_contain_text("active")
    console.go("#/overview")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    console.go("#/webhooks")
    expect(row).to_contain_text(good)
    assert first not in page.content()
    # Rotation shows the new secret once; the old one keeps signing for a while.
    page.get_by_role("button", name=f"Rotate secret of webhook {hook['id']}").click()
    console.confirm("Rotate")
    expect(secret).to_have_text(re.compile(r"^whsec_[A-Za-z0-9+/]{43}=$"))
    assert secret.text_content() != first
    [rotated] = api("GET", "/v1/webhooks", org.key).json()["webhooks"]
    assert rotated["previous_secret_expires_at"] is not None
    until = re.sub(r"(\.\d+)?Z$", " UTC", rotated["previous_secret_expires_at"].replace("T", " "))
    expect(row.locator("td").nth(4)).to_have_text(until)
    # The (empty) delivery log of the endpoint.
    page.get_by_role("link", name=f"Deliveries of webhook {hook['id']}").click()
    expect(page.get_by_role("heading", name="Deliveries", exact=True)).to_be_visible()
    expect(page.get_by_text("No deliveries yet")).to_be_visible()
    page.get_by_role("link", name="← Webhooks").click()
    page.get_by_role("button", name=f"Delete webhook {hook['id']}").click()
    console.confirm("Delete")
    expect(page.get_by_text(f"Webhook {hook['id']} deleted.")).to_be_visible()
    expect(page.get_by_text("No webhooks yet.")).to_be_visible()
    assert api("GET", "/v1/webhooks", org.key).json()["webhooks"] == []


def test_read_key_cannot_open_webhooks_or_erasures(console):
    org = new_org("Console read-only hooks org")
    page = console.sign_in(scoped_key(org, "read"))
    expect(page.get_by_role("heading", name="Alerts")).to_be_visible()
    for path in ("#/webhooks", "#/erasures", "#/webhooks/whk_01KB2M4XQ7J6Z8W3V5T9R0N1PA"):
        console.go(path)
        expect(page.get_by_role("alert")).to_contain_text("Needs a key with the admin scope")


# --- org settings -------------------------------------------------------------

def test_bad_origin_shows_the_api_message_inline(console):
    org = new_org("Console settings org")
    lines = ["https://ok.example.com", "ftp://bad.example"]
    expected = call("PATCH", "/v1/org", key=org.key, json={"allowed_origins": lines})[0]
    assert expected.status_code == 400
    message = expected.json()["error"]["details"][0]["message"]
    page = console.sign_in(org.key)
    console.go("#/settings")
    origins = page.get_by_label("Allowed origins (one per line)")
    origins.fill("\n".join(lines))
    page.get_by_role("button", name="Save settings").click()
    inline = page.locator("#origins-errors")
    expect(inline).to_have_text(f"Line 2 (ftp://bad.example): {message}")
    expect(origins).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("alert")).to_contain_text("VALIDATION_FAILED")
    origins.fill(lines[0])
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Saved.")).to_be_visible()
    assert api("GET", "/v1/org", org.key).json()["allowed_origins"] == [lines[0]]


# --- every page at both sizes -------------------------------------------------------

PAGES = [("overview", "Overview"), ("keys", "Keys"), ("audit", "Audit log"), ("alerts", "Alerts"),
         ("interactions", "Interactions"), ("erasures", "Erasures"), ("webhooks", "Webhooks"),
         ("settings", "Org settings")]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_every_page_renders_without_overflow_and_is_captured(open_console, viewport):
    org = new_org("Acme support")
    make_key(org, "ingest", "website widget")
    stored = ingest(org, [
        {"type": "chat.turn", "actor": "customer-17", "session": "support-4711", "content": "My invoice is wrong."},
        {"type": "chat.turn", "actor": "agent-bot", "session": "support-4711",
         "content": "Sorry to hear that. Which invoice number?"},
        {"type": "page.view", "actor": "customer-17", "session": "support-4711", "content": "/billing"},
    ])
    raise_dead_key_alert(org)
    hook = post_json("/v1/webhooks", org.key, {"url": "https://hooks.example.com/interlog"})
    assert hook.status_code == 201, hook.text
    c = open_console(viewport)
    page = c.open()
    expect(page.get_by_label("API key")).to_be_visible()
    c.shot("signin")
    c.sign_in(org.key)
    for path, title in PAGES:
        c.go(f"#/{path}")
        expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible()
        expect(page.get_by_text("Loading…")).to_have_count(0)
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth"), path
        c.shot(path)
    c.go(f"#/interactions/{stored[1]['id']}")
    expect(page.locator("#content")).to_have_text(stored[1]["content"])
    c.shot("interaction")
    c.go("#/sessions/support-4711")
    expect(page.locator("ol.conversation li")).to_have_count(3)
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    c.shot("session")
    c.go(f"#/webhooks/{hook.json()['id']}")
    expect(page.get_by_role("heading", name="Deliveries", exact=True)).to_be_visible()
    expect(page.get_by_text("No deliveries yet")).to_be_visible()
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    c.shot("deliveries")
    # The erasures page again, with a finished job (replaces the empty view).
    c.go("#/erasures")
    page.get_by_label("Actor", exact=True).fill("customer-17")
    page.get_by_role("button", name="Erase everything of this actor").click()
    c.confirm("Erase")
    expect(page.locator(".jobs tbody tr").first).to_contain_text("done", timeout=30_000)
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    c.shot("erasures")
