"""CORS: preflights only for the env-level allowlist, actual responses allow an
origin only when the org lists it (else 403), never `*`, `Vary: Origin`
always; and a real browser (headless Chromium) on an allowed and a disallowed
loopback origin."""

import functools
import http.server
import os
import shutil
import subprocess
import tempfile
import threading
import uuid

import pytest

from conftest import BASE, call, new_org, org_d1, scoped_key, sql_str

APP = "https://app.example.com"
GLOBAL_ONLY = "https://global-only.example.com"
PAGE_PORTS = [int(p) for p in os.environ.get("INTERLOG_PAGE_PORTS", "").split(",") if p]


def preflight(origin: str | None, path: str = "/v1/interactions"):
    h = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"}
    if origin is not None:
        h["Origin"] = origin
    return call("OPTIONS", path, headers=h)[0]


@pytest.fixture(scope="module")
def cors_org():
    org = new_org("CORS org")
    origins = [APP] + [f"http://127.0.0.1:{PAGE_PORTS[0]}"] if PAGE_PORTS else [APP]
    r = call("PATCH", "/v1/org", key=org.key, headers={"Content-Type": "application/json"},
             json={"allowed_origins": origins})[0]
    assert r.status_code == 200, r.text
    return org


@pytest.mark.claim("posture.cors")
def test_cors_preflight_allowed_origin_204():
    r = preflight(APP)
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == APP
    assert "POST" in r.headers["access-control-allow-methods"]
    assert "authorization" in r.headers["access-control-allow-headers"]
    assert r.headers["vary"] == "Origin"
    assert "access-control-allow-credentials" not in r.headers


@pytest.mark.parametrize("origin", ["https://evil.example.com", "null", None, APP + "/", "https://APP.example.com",
                                    "http://app.example.com"])
@pytest.mark.claim("owasp.api8", "posture.cors")
def test_cors_preflight_refused_403(origin):
    r = preflight(origin)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "FORBIDDEN"
    assert not any(k.lower().startswith("access-control-") for k in r.headers)


@pytest.mark.claim("posture.cors")
def test_cors_preflight_unknown_path_404():
    assert preflight(APP, "/v1/nope").status_code == 404


@pytest.mark.claim("posture.cors")
def test_cors_actual_allowed_by_org(cors_org):
    r, _ = call("GET", "/v1/org", key=cors_org.key, headers={"Origin": APP})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == APP
    exposed = r.headers["access-control-expose-headers"]
    for h in ("x-request-id", "ratelimit", "ratelimit-policy", "retry-after"):
        assert h in exposed
    assert r.headers["vary"] == "Origin"
    assert "access-control-allow-credentials" not in r.headers


@pytest.mark.claim("posture.cors")
def test_cors_actual_error_readable_by_allowed_origin(cors_org):
    """An error answered to an allowed origin carries the CORS headers, so the
    page can read the envelope (the org's key has the read scope: a bad
    `limit` is a 400, not a 403)."""
    r, _ = call("GET", "/v1/interactions?limit=0", key=cors_org.key, headers={"Origin": APP})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "VALIDATION_FAILED"
    assert r.headers["access-control-allow-origin"] == APP
    assert "x-request-id" in r.headers["access-control-expose-headers"]
    assert r.headers["vary"] == "Origin"


@pytest.mark.parametrize("origin", [GLOBAL_ONLY, "null", APP + "/", "https://APP.example.com"])
@pytest.mark.claim("owasp.api8", "posture.cors")
def test_cors_actual_origin_not_allowed_by_org_403(cors_org, origin):
    marker = uuid.uuid4().hex
    r, _ = call("POST", "/v1/interactions", key=cors_org.key,
                headers={"Origin": origin, "Content-Type": "application/json"}, json={"type": "t", "content": marker})
    assert r.status_code == 403
    assert "access-control-allow-origin" not in r.headers
    assert r.headers["vary"] == "Origin"
    # Refused before anything was stored.
    assert org_d1(cors_org.id, f"SELECT COUNT(*) AS n FROM interactions WHERE content = {sql_str(marker)}")[0]["n"] == 0


@pytest.mark.claim("owasp.api8", "posture.cors")
def test_cors_vary_origin_always(cors_org):
    for r in (call("GET", "/v1/health")[0], call("GET", "/v1/nope")[0], call("GET", "/v1/org")[0],
              call("GET", "/v1/org", key=cors_org.key)[0]):
        assert r.headers["vary"] == "Origin"
        assert r.headers.get("access-control-allow-origin") != "*"


PAGE = """<!doctype html><html><body><pre id="out">pending</pre><script>
fetch("{api}/v1/interactions", {{method: "POST",
  headers: {{"Authorization": "Bearer {key}", "Content-Type": "application/json"}},
  body: JSON.stringify({{type: "browser.test", content: "{marker}"}})}})
 .then(r => r.json().then(j => {{ document.getElementById("out").textContent = "status:" + r.status + ":" + j.id; }}))
 .catch(e => {{ document.getElementById("out").textContent = "blocked:" + e.name; }});
</script></body></html>"""


def serve_page(port: int, html: str) -> http.server.ThreadingHTTPServer:
    root = tempfile.mkdtemp(prefix="interlog-page-")
    with open(os.path.join(root, "index.html"), "w") as f:
        f.write(html)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=root)
    handler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def open_in_chromium(url: str) -> str:
    profile = tempfile.mkdtemp(prefix="interlog-chromium-")
    out = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--virtual-time-budget=10000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120,
    )
    shutil.rmtree(profile, ignore_errors=True)
    start = out.stdout.find('<pre id="out">')
    assert start >= 0, out.stdout[-500:] + out.stderr[-2000:]
    return out.stdout[start + len('<pre id="out">'):].split("</pre>", 1)[0]


@pytest.mark.skipif(len(PAGE_PORTS) < 2, reason="needs INTERLOG_PAGE_PORTS from scripts/test.sh")
@pytest.mark.claim("posture.cors", "threat.hostile-page")
def test_cors_real_browser_allowed_and_blocked(cors_org):
    assert shutil.which("chromium"), "scripts/bootstrap.sh --python installs Debian's chromium"
    key = scoped_key(cors_org, "ingest")
    allowed_marker, blocked_marker = uuid.uuid4().hex, uuid.uuid4().hex
    servers = [serve_page(PAGE_PORTS[0], PAGE.format(api=BASE, key=key, marker=allowed_marker)),
               serve_page(PAGE_PORTS[1], PAGE.format(api=BASE, key=key, marker=blocked_marker))]
    try:
        allowed = open_in_chromium(f"http://127.0.0.1:{PAGE_PORTS[0]}/index.html")
        blocked = open_in_chromium(f"http://127.0.0.1:{PAGE_PORTS[1]}/index.html")
    finally:
        for s in servers:
            s.shutdown()
    assert allowed.startswith("status:201:int_"), allowed
    assert blocked.startswith("blocked:"), blocked
    stored = {r["content"] for r in org_d1(
        cors_org.id,
        f"SELECT content FROM interactions WHERE content IN ({sql_str(allowed_marker)}, {sql_str(blocked_marker)})")}
    assert stored == {allowed_marker}
