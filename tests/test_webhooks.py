"""Alert delivery by webhook, end to end: a real receiver on loopback (an
http.server in a thread) that checks every message with its own Python
implementation of Standard Webhooks (hmac, base64; not the server's code),
refuses the first attempts, and a server restart in the middle of the
retries. Also: the endpoint API (secret shown once, never listed, SSRF policy,
per-org limit, audit), secret rotation signing with both secrets, the
delivery log, and an endpoint marked failing once its retries run out.

These tests run servers of their own: loopback endpoints are refused unless
`WEBHOOK_ALLOW_LOOPBACK=enabled`, and the retry schedule is shortened
(`WEBHOOK_RETRY_BASE_MS`, `WEBHOOK_MAX_AGE_MS`)."""

import base64
import hashlib
import hmac
import json
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from conftest import LocalServer, free_port, random_ip, wait_until

TOLERANCE_S = 5 * 60
BURST = 5


# --- an independent Standard Webhooks verifier -------------------------------

def verify(secret: str, headers: dict, body: bytes, now: float | None = None) -> bool:
    """Standard Webhooks: HMAC-SHA256 over "{id}.{timestamp}.{body}" keyed with
    the base64 bytes after `whsec_`; any `v1,` signature of the header may
    match; the timestamp must be within the tolerance."""
    msg_id, ts, header = headers["webhook-id"], headers["webhook-timestamp"], headers["webhook-signature"]
    if abs((now or time.time()) - int(ts)) > TOLERANCE_S:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(sig.removeprefix("v1,"), expected)
               for sig in header.split(" ") if sig.startswith("v1,"))


def test_the_verifier_matches_the_specification_example():
    # The example of the Standard Webhooks specification.
    headers = {"webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp": "1614265330",
               "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}
    body = b'{"test": 2432232314}'
    assert verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", headers, body, now=1614265330)
    assert not verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", headers, body + b" ", now=1614265330)


# --- the receiver ------------------------------------------------------------

class Receiver:
    """Records every POST; answers 500 while `refusing`, and for the first
    `fail_first` attempts of each message id; 204 otherwise."""

    def __init__(self):
        self.lock = threading.Lock()
        self.received: list[dict] = []
        self.refusing = False
        self.fail_first = 0
        self.port = free_port()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver.lock:
                    seen = sum(1 for r in receiver.received if r["headers"].get("webhook-id") == headers.get("webhook-id"))
                    status = 500 if receiver.refusing or seen < receiver.fail_first else 204
                    receiver.received.append({"headers": headers, "body": body, "status": status, "at": time.time()})
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def snapshot(self) -> list[dict]:
        with self.lock:
            return list(self.received)

    def events(self, kind: str) -> dict:
        """Alert id → the requests that carried its `kind` event."""
        out: dict[str, list] = {}
        for r in self.snapshot():
            payload = json.loads(r["body"])
            if payload["type"] == kind:
                out.setdefault(payload["data"]["id"], []).append(r)
        return out

    def close(self):
        self.server.shutdown()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


# --- servers of our own --------------------------------------------------------

def own_server(name: str, max_age_ms: int) -> tuple[LocalServer, tuple]:
    args = ("--var", "WEBHOOK_ALLOW_LOOPBACK:enabled", "--var", "WEBHOOK_RETRY_BASE_MS:300",
            "--var", f"WEBHOOK_MAX_AGE_MS:{max_age_ms}")
    return LocalServer(name), args


@pytest.fixture(scope="module")
def server():
    s, args = own_server("webhooks", 120_000)
    s.start(*args)
    s.start_args = args
    try:
        yield s
    finally:
        s.stop()
        shutil.rmtree(s.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def short_server():
    s, args = own_server("webhooks-failing", 1_500)
    s.start(*args)
    try:
        yield s
    finally:
        s.stop()
        shutil.rmtree(s.dir, ignore_errors=True)


def send(s: LocalServer, method: str, path: str, key: str, body=None) -> requests.Response:
    h = {"Authorization": f"Bearer {key}", "CF-Connecting-IP": random_ip()}
    return requests.request(method, s.url + path, headers=h, json=body, timeout=30)


def new_org(s: LocalServer, name: str) -> str:
    return s.admin("create-org", "--name", name)["key"]


def add_hook(s: LocalServer, key: str, url: str, **extra) -> dict:
    r = send(s, "POST", "/v1/webhooks", key, {"url": url, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def burst(s: LocalServer, key: str, n: int) -> set[str]:
    """`n` keys revoked and then used: `n` distinct `dead_key_used` alerts."""
    prefixes = []
    for i in range(n):
        k = send(s, "POST", "/v1/keys", key, {"name": f"burst {i}", "scopes": ["read"]}).json()
        assert send(s, "POST", f"/v1/keys/{k['prefix']}/revoke", key).status_code == 200
        assert send(s, "GET", "/v1/interactions", k["key"]).status_code == 401
        prefixes.append(k["prefix"])
    alerts = send(s, "GET", "/v1/alerts?kind=dead_key_used&limit=200", key).json()["alerts"]
    mine = [a for a in alerts if a["prefix"] in prefixes]
    assert sorted(a["prefix"] for a in mine) == sorted(prefixes)
    return {a["id"] for a in mine}


# --- the endpoint API ------------------------------------------------------------

@pytest.mark.claim("threat.webhook-secrets")
def test_create_shows_the_secret_once_and_lists_never_show_it(server, receiver):
    key = new_org(server, "Hooks API")
    made = add_hook(server, key, receiver.url, events=["alert.opened"])
    assert made["secret"].startswith("whsec_") and len(base64.b64decode(made["secret"][6:])) == 32
    assert made["id"].startswith("whk_") and made["events"] == ["alert.opened"] and made["state"] == "active"
    listed = send(server, "GET", "/v1/webhooks", key).json()["webhooks"]
    assert [h["id"] for h in listed] == [made["id"]]
    assert made["secret"] not in json.dumps(listed) and "secret" not in listed[0]
    audit = send(server, "GET", "/v1/audit-log?action=webhook.created", key)
    # The audit log names the endpoint, never the secret.
    assert made["secret"] not in audit.text
    assert send(server, "DELETE", f"/v1/webhooks/{made['id']}", key).status_code == 204
    assert send(server, "DELETE", f"/v1/webhooks/{made['id']}", key).status_code == 404
    assert send(server, "GET", "/v1/webhooks", key).json()["webhooks"] == []


@pytest.mark.claim("threat.webhook-ssrf", "owasp.api7")
def test_private_link_local_and_metadata_targets_are_refused(server):
    key = new_org(server, "Hooks SSRF")
    # Even with loopback opened for tests, nothing else private passes.
    for url in ["http://hooks.example.com/x", "https://10.0.0.5/x", "https://192.168.1.1/", "https://172.16.0.1/",
                "https://169.254.169.254/latest/meta-data/", "https://100.64.0.1/", "https://[fd00::1]/",
                "https://[fe80::1]/", "https://[::ffff:10.0.0.1]/", "https://metadata.google.internal/",
                "https://2130706433/", "https://0x7f.1/", "https://printer.local/", "https://u:p@example.com/",
                "ftp://example.com/", "not a url"]:
        r = send(server, "POST", "/v1/webhooks", key, {"url": url})
        assert r.status_code == 400, (url, r.text)
        assert r.json()["error"]["details"][0]["field"] == "url", url
    assert send(server, "GET", "/v1/webhooks", key).json()["webhooks"] == []


def test_endpoint_limit_unknown_fields_and_other_orgs(server, receiver):
    key, other = new_org(server, "Hooks limit"), new_org(server, "Hooks other")
    assert send(server, "POST", "/v1/webhooks", key, {"url": receiver.url, "extra": 1}).status_code == 400
    assert send(server, "POST", "/v1/webhooks", key, {"url": receiver.url, "events": ["nope"]}).status_code == 400
    made = [add_hook(server, key, receiver.url) for _ in range(10)]
    r = send(server, "POST", "/v1/webhooks", key, {"url": receiver.url})
    assert r.status_code == 409 and r.json()["error"]["code"] == "CONFLICT"
    # Another org sees none of them and can touch none of them.
    assert send(server, "GET", "/v1/webhooks", other).json()["webhooks"] == []
    for path, method in [(f"/v1/webhooks/{made[0]['id']}", "DELETE"),
                         (f"/v1/webhooks/{made[0]['id']}/rotate-secret", "POST"),
                         (f"/v1/webhooks/{made[0]['id']}/deliveries", "GET")]:
        assert send(server, method, path, other).status_code == 404, path
    assert len(send(server, "GET", "/v1/webhooks", key).json()["webhooks"]) == 10


# --- delivery ------------------------------------------------------------------------

@pytest.mark.claim("threat.webhook-delivery")
def test_burst_arrives_exactly_once_signed_through_failures_and_a_restart(server, receiver):
    key = new_org(server, "Hooks burst")
    hook = add_hook(server, key, receiver.url)
    receiver.refusing = True
    alert_ids = burst(server, key, BURST)

    # Every alert's message is being retried: at least two refused attempts each.
    def retried():
        got = receiver.events("alert.opened")
        return set(got) == alert_ids and all(len(v) >= 2 for v in got.values())
    wait_until(retried, 30, "two refused attempts of every message")

    # Restart in the middle of the retries; the receiver accepts from now on.
    server.stop()
    refused_before = len(receiver.snapshot())
    receiver.refusing = False
    server.start(*server.start_args)
    # The first call wakes the org's actor, which re-arms its alarm.
    assert send(server, "GET", "/v1/webhooks", key).status_code == 200

    def all_acked():
        got = receiver.events("alert.opened")
        return set(got) == alert_ids and all(any(r["status"] == 204 for r in v) for v in got.values())
    wait_until(all_acked, 60, "every alert delivered after the restart")
    time.sleep(3)  # Anything sent twice would arrive now.

    got = receiver.events("alert.opened")
    assert set(got) == alert_ids, "every alert of the burst arrived"
    message_ids = set()
    for alert_id, reqs in got.items():
        ids = {r["headers"]["webhook-id"] for r in reqs}
        assert len(ids) == 1, f"the same webhook-id on every retry of {alert_id}"
        message_ids |= ids
        acks = [r for r in reqs if r["status"] == 204]
        assert len(acks) == 1, f"{alert_id} acknowledged {len(acks)} times"
        assert reqs[-1]["status"] == 204, "nothing sent after the acknowledgement"
        for r in reqs:
            assert verify(hook["secret"], r["headers"], r["body"]), "every attempt is validly signed"
    assert len(message_ids) == BURST
    assert len(receiver.snapshot()) > refused_before, "deliveries continued after the restart"

    log = send(server, "GET", f"/v1/webhooks/{hook['id']}/deliveries?limit=200", key).json()["deliveries"]
    assert {d["outcome"] for d in log} >= {"retrying", "delivered"}
    assert sorted(d["message_id"] for d in log if d["outcome"] == "delivered") == sorted(message_ids)
    assert all(d["status"] in (204, 500) for d in log)


@pytest.mark.claim("threat.webhook-replay")
def test_a_tampered_signature_or_body_fails_verification(server, receiver):
    key = new_org(server, "Hooks tamper")
    hook = add_hook(server, key, receiver.url)
    ids = burst(server, key, 1)
    got = wait_until(lambda: receiver.events("alert.opened").get(next(iter(ids))), 20, "a delivery")[0]
    assert verify(hook["secret"], got["headers"], got["body"])
    sig = got["headers"]["webhook-signature"]
    flipped = sig[:-3] + ("A" if sig[-3] != "A" else "B") + sig[-2:]
    assert not verify(hook["secret"], dict(got["headers"], **{"webhook-signature": flipped}), got["body"])
    assert not verify(hook["secret"], got["headers"], got["body"].replace(b"dead_key_used", b"dead_key_usee"))
    assert not verify(hook["secret"], dict(got["headers"], **{"webhook-id": "msg_other"}), got["body"])
    old = str(int(got["headers"]["webhook-timestamp"]) - TOLERANCE_S - 1)
    assert not verify(hook["secret"], dict(got["headers"], **{"webhook-timestamp": old}), got["body"])
    other = "whsec_" + base64.b64encode(b"\x01" * 32).decode()
    assert not verify(other, got["headers"], got["body"])


@pytest.mark.claim("threat.webhook-secrets")
def test_rotation_signs_with_both_secrets_during_the_overlap(server, receiver):
    key = new_org(server, "Hooks rotate")
    hook = add_hook(server, key, receiver.url)
    r = send(server, "POST", f"/v1/webhooks/{hook['id']}/rotate-secret", key)
    assert r.status_code == 200, r.text
    rotated = r.json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != hook["secret"]
    assert rotated["previous_secret_expires_at"] is not None
    ids = burst(server, key, 1)
    got = wait_until(lambda: receiver.events("alert.opened").get(next(iter(ids))), 20, "a delivery")[0]
    assert len(got["headers"]["webhook-signature"].split(" ")) == 2
    assert verify(rotated["secret"], got["headers"], got["body"])
    assert verify(hook["secret"], got["headers"], got["body"])


def test_resolving_an_alert_delivers_alert_resolved_to_subscribers_only(server, receiver):
    key = new_org(server, "Hooks resolved")
    add_hook(server, key, receiver.url, events=["alert.resolved"])
    (alert_id,) = burst(server, key, 1)
    assert send(server, "POST", f"/v1/alerts/{alert_id}/resolve", key).status_code == 200
    got = wait_until(lambda: receiver.events("alert.resolved").get(alert_id), 20, "the alert.resolved event")
    payload = json.loads(got[0]["body"])
    assert payload["data"]["state"] == "resolved" and payload["data"]["resolved_at"]
    assert alert_id not in receiver.events("alert.opened"), "not subscribed to alert.opened"


@pytest.mark.claim("threat.webhook-delivery")
def test_an_endpoint_that_never_acknowledges_is_marked_failing_and_an_alert_says_so(short_server, receiver):
    s = short_server
    key = new_org(s, "Hooks failing")
    hook = add_hook(s, key, receiver.url)
    receiver.refusing = True
    burst(s, key, 1)
    failing = wait_until(lambda: [h for h in send(s, "GET", "/v1/webhooks", key).json()["webhooks"]
                                  if h["state"] == "failing"], 30, "the endpoint marked failing")
    assert failing[0]["id"] == hook["id"]
    alerts = send(s, "GET", "/v1/alerts?kind=webhook_failing", key).json()["alerts"]
    assert len(alerts) == 1 and alerts[0]["state"] == "open"
    log = send(s, "GET", f"/v1/webhooks/{hook['id']}/deliveries", key).json()["deliveries"]
    assert log[0]["outcome"] in ("failed", "retrying") and any(d["outcome"] == "failed" for d in log)
    assert all(d["outcome"] != "delivered" for d in log)
    # The receiver recovers: the next event is delivered and the endpoint is active again.
    receiver.refusing = False
    burst_ids = burst(s, key, 1)
    wait_until(lambda: any(r["status"] == 204 for r in receiver.events("alert.opened").get(next(iter(burst_ids)), [])),
               20, "a delivery after recovery")
    wait_until(lambda: send(s, "GET", "/v1/webhooks", key).json()["webhooks"][0]["state"] == "active", 10,
               "the endpoint active again")
