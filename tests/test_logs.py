"""Structured logs: one JSON line per request, found by its x-request-id, with
the route template, outcome, org and key prefix, canonical client address;
alarm runs log one JSON line each; no line carries key material or the pepper."""

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from conftest import PEPPER, PERSIST, call, new_org, post_json, random_ip, wait_until

SERVER_LOG = Path(os.environ.get("INTERLOG_SERVER_LOG") or Path(PERSIST).parent / "wrangler.log")
# `[wrangler:info] GET /path 200 OK (85ms)`: the local runtime's own line.
RUNTIME_REQUEST_LINE = re.compile(r"^\S*\[wrangler:\w+\] [A-Z]+ \S+ \d{3} ")
KEY_MATERIAL = re.compile(r"ck_live_[0-9A-HJKMNP-TV-Z]{26}", re.IGNORECASE)
REQUEST_FIELDS = {
    "event": str,
    "level": str,
    "request_id": str,
    "route": (str, type(None)),
    "method": str,
    "status": int,
    "duration_ms": int,
    "outcome": str,
    "limit_tier": (str, type(None)),
    "org_id": (str, type(None)),
    "key_prefix": (str, type(None)),
    "client_ip": (str, type(None)),
}


def json_lines() -> list[dict]:
    """Every line of the server log that is one JSON object."""
    found = []
    for line in SERVER_LOG.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
    return found


def request_line(request_id: str, timeout_s: float = 10) -> dict:
    """The log line of the request `request_id` (waits for the log to catch up)."""
    seen: list[dict] = []

    def find() -> bool:
        seen[:] = [l for l in json_lines() if l.get("event") == "request" and l.get("request_id") == request_id]
        return bool(seen)

    wait_until(find, timeout_s, f"the log line of {request_id} in {SERVER_LOG}")
    assert len(seen) == 1, seen
    return seen[0]


def check_shape(line: dict) -> None:
    assert set(line) == set(REQUEST_FIELDS), sorted(line)
    for field, kind in REQUEST_FIELDS.items():
        assert isinstance(line[field], kind), (field, line[field])
    assert line["duration_ms"] >= 0


def test_logs_line_of_a_successful_request_found_by_request_id():
    org = new_org("Logs org")
    ip = random_ip()
    r = post_json("/v1/interactions", org.key, {"type": "logs.check", "actor": "logs"}, headers={"CF-Connecting-IP": ip})
    assert r.status_code == 201, r.text
    line = request_line(r.headers["x-request-id"])
    check_shape(line)
    assert line["event"] == "request" and line["level"] == "info"
    assert line["route"] == "/v1/interactions"
    assert line["method"] == "POST"
    assert line["status"] == 201
    assert line["outcome"] == "ok" and line["limit_tier"] is None
    assert line["org_id"] == org.id
    assert line["key_prefix"] == org.prefix.upper()
    assert line["client_ip"] == ip
    assert line["duration_ms"] >= 80  # the floor


def test_logs_route_is_the_template_and_ipv6_is_canonical():
    org = new_org("Logs template org")
    r, _ = call("POST", "/v1/keys/ABCDEFGH/revoke", key=org.key, ip="2001:DB8:0:0::1")
    line = request_line(r.headers["x-request-id"])
    check_shape(line)
    assert line["route"] == "/v1/keys/{prefix}/revoke"
    assert "ABCDEFGH" not in json.dumps(line)
    assert line["client_ip"] == "2001:db8::1"
    unknown, _ = call("GET", "/v1/no/such/route")
    assert request_line(unknown.headers["x-request-id"])["route"] is None


def test_logs_401_and_429_lines_carry_their_outcome():
    org = new_org("Logs refusals org")
    wrong = org.key[:-1] + ("0" if org.key[-1] != "0" else "1")
    r, _ = call("GET", "/v1/org", key=wrong)
    assert r.status_code == 401
    line = request_line(r.headers["x-request-id"])
    check_shape(line)
    assert (line["status"], line["outcome"], line["org_id"], line["key_prefix"]) == (401, "UNAUTHORIZED", None, None)
    assert line["route"] == "/v1/org"
    # L1 per client address: at most two windows' worth before one is refused.
    ip = random_ip()
    with ThreadPoolExecutor(8) as ex:
        answers = list(ex.map(lambda _: call("GET", "/v1/org", ip=ip)[0], range(121)))
    refused = [a for a in answers if a.status_code == 429]
    assert refused, {a.status_code for a in answers}
    line = request_line(refused[0].headers["x-request-id"])
    check_shape(line)
    assert (line["status"], line["outcome"], line["limit_tier"]) == (429, "RATE_LIMITED", "l1")
    assert line["client_ip"] == ip


def test_logs_alarm_runs_are_one_json_line_each():
    org = new_org("Logs alarm org")
    assert call("GET", "/v1/org", key=org.key)[0].status_code == 200  # arms the actor's alarm

    def runs() -> list[dict]:
        return [l for l in json_lines() if l.get("event") == "alarm" and l.get("org_id") == org.id]

    run = wait_until(runs, 15, "an alarm line of the org")[0]
    assert run["actor"] == "org" and isinstance(run["flushed"], int) and isinstance(run["checkpoint"], int)
    wait_until(lambda: any(r["retention"] for r in runs()), 15, "a retention run of the org")
    janitor = [l for l in json_lines() if l.get("event") == "alarm" and l.get("actor") == "janitor"]
    assert janitor and all(l["org_id"] is None for l in janitor)


def test_logs_never_carry_key_material_or_the_pepper():
    # Key material in the headers and bodies of requests that succeed, fail
    # validation, are refused, and mint a new key (whose plaintext is answered).
    org = new_org("Logs secrets org")
    key = org.key
    post_json("/v1/interactions", key, {"type": "logs.secret", "actor": key})
    post_json("/v1/interactions", key, {"type": 7, "actor": key})
    call("GET", "/v1/org", key=key, headers={"X-Api-Key": key})
    call("GET", "/v1/org", key=key[:-1] + ("0" if key[-1] != "0" else "1"))
    minted = post_json("/v1/keys", key, {"name": "logs minted", "scopes": ["read"]})
    assert minted.status_code == 201, minted.text
    request_line(minted.headers["x-request-id"])
    # The runtime's own request lines echo the URL as sent; every other line,
    # all of the Worker's, is checked.
    lines = [l for l in SERVER_LOG.read_text(encoding="utf-8", errors="replace").splitlines()
             if not RUNTIME_REQUEST_LINE.match(l)]
    leaked = [l for l in lines if KEY_MATERIAL.search(l)]
    assert not leaked, f"{len(leaked)} lines with key material in {SERVER_LOG}, first: {leaked[0][:200]}"
    assert PEPPER, "INTERLOG_PEPPER is not set"
    assert not [l for l in lines if PEPPER in l], "the pepper is in the log"
