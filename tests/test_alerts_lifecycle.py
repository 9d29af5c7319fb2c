"""Alert lifecycle over HTTP: an admin resolves an alert (audited, idempotent,
404 outside the org), a cause that recurs opens a new alert, the `state`
filter (`resolved`, and `closed` as its alias), and alerts that resolve by
themselves: `key_expiring` when its key is revoked, a burst once it has been
quiet for the configured time (a server of its own with a short quiet time)."""

import shutil
from datetime import datetime, timedelta, timezone

import pytest
import requests

from conftest import BASE, LocalServer, call, new_org, org_d1, random_ip, sql_str, wait_until

QUIET_MS = 2000


def iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def create_key(base: str, admin_key: str, **body) -> dict:
    body.setdefault("name", "lifecycle key")
    body.setdefault("scopes", ["read"])
    r = requests.post(base + "/v1/keys", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {admin_key}", "CF-Connecting-IP": random_ip()})
    assert r.status_code == 201, r.text
    return r.json()


def send(base: str, method: str, path: str, key: str, **kw) -> requests.Response:
    h = {"Authorization": f"Bearer {key}", "CF-Connecting-IP": random_ip()}
    return requests.request(method, base + path, headers=h, timeout=30, **kw)


def alerts(base: str, key: str, **query) -> list:
    r = send(base, "GET", "/v1/alerts", key, params=query)
    assert r.status_code == 200, r.text
    return r.json()["alerts"]


def dead_key_alert(base: str, admin_key: str) -> tuple[dict, dict]:
    """A key revoked and then used: its `dead_key_used` alert (and the key)."""
    k = create_key(base, admin_key)
    assert send(base, "POST", f"/v1/keys/{k['prefix']}/revoke", admin_key).status_code == 200
    assert send(base, "GET", "/v1/interactions", k["key"]).status_code == 401
    found = wait_until(lambda: [a for a in alerts(base, admin_key, kind="dead_key_used") if a["prefix"] == k["prefix"]
                                and a["state"] == "open"], 10, "the dead_key_used alert")
    return found[0], k


@pytest.fixture()
def org():
    return new_org("Alert lifecycle")


@pytest.mark.claim("threat.alert-lifecycle")
def test_admin_resolves_an_alert_once_and_it_is_audited(org):
    alert, _ = dead_key_alert(BASE, org.key)
    assert alert["resolved_at"] is None
    r = call("POST", f"/v1/alerts/{alert['id']}/resolve", key=org.key)[0]
    assert r.status_code == 200, r.text
    done = r.json()
    assert (done["id"], done["state"]) == (alert["id"], "resolved")
    assert done["resolved_at"] is not None
    # Idempotent: the second call answers the same alert and writes nothing.
    again = call("POST", f"/v1/alerts/{alert['id']}/resolve", key=org.key)[0]
    assert again.status_code == 200 and again.json()["resolved_at"] == done["resolved_at"]
    rows = org_d1(org.id, f"SELECT action, prefix, detail FROM audit_log WHERE org_id = {sql_str(org.id)} "
                  f"AND action = 'alert.resolved'")
    assert len(rows) == 1 and alert["id"] in rows[0]["detail"] and rows[0]["prefix"] == org.prefix
    listed = {a["id"]: a for a in alerts(BASE, org.key)}
    assert listed[alert["id"]]["state"] == "resolved"


def test_state_filter_resolved_and_its_alias_closed(org):
    alert, _ = dead_key_alert(BASE, org.key)
    open_ids = [a["id"] for a in alerts(BASE, org.key, state="open")]
    assert alert["id"] in open_ids
    assert call("POST", f"/v1/alerts/{alert['id']}/resolve", key=org.key)[0].status_code == 200
    assert [a["id"] for a in alerts(BASE, org.key, state="resolved")] == [alert["id"]]
    assert [a["id"] for a in alerts(BASE, org.key, state="closed")] == [alert["id"]]
    assert alert["id"] not in [a["id"] for a in alerts(BASE, org.key, state="open")]
    bad = call("GET", "/v1/alerts?state=done", key=org.key)[0]
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "VALIDATION_FAILED"


def test_a_cause_that_recurs_after_resolution_opens_a_new_alert(org):
    alert, k = dead_key_alert(BASE, org.key)
    assert call("POST", f"/v1/alerts/{alert['id']}/resolve", key=org.key)[0].status_code == 200
    assert call("GET", "/v1/interactions", key=k["key"])[0].status_code == 401
    fresh = wait_until(lambda: [a for a in alerts(BASE, org.key, kind="dead_key_used", state="open")
                                if a["prefix"] == k["prefix"]], 10, "a new open alert")
    assert fresh[0]["id"] != alert["id"] and fresh[0]["count"] == 1
    old = [a for a in alerts(BASE, org.key) if a["id"] == alert["id"]][0]
    assert old["state"] == "resolved"


def test_resolve_is_404_for_unknown_malformed_and_other_orgs_alerts(org, org_b):
    alert, _ = dead_key_alert(BASE, org.key)
    for path in [f"/v1/alerts/{alert['id']}/resolve"]:
        r = call("POST", path, key=org_b.key)[0]
        assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"
    unknown = "alr_" + "0" * 26
    for bad in [unknown, "alr_nope", "int_x"]:
        assert call("POST", f"/v1/alerts/{bad}/resolve", key=org.key)[0].status_code == 404
    # Still open: the other org's call changed nothing.
    assert [a for a in alerts(BASE, org.key) if a["id"] == alert["id"]][0]["state"] == "open"


def test_resolve_needs_the_admin_scope(org):
    alert, _ = dead_key_alert(BASE, org.key)
    reader = create_key(BASE, org.key, scopes=["read"])
    r = call("POST", f"/v1/alerts/{alert['id']}/resolve", key=reader["key"])[0]
    assert r.status_code == 403
    assert call("GET", "/v1/alerts/x/resolve", key=org.key)[0].status_code == 405


def test_key_expiring_resolves_when_its_key_is_revoked(org):
    k = create_key(BASE, org.key, expires_at=iso(datetime.now(timezone.utc) + timedelta(days=2)))
    assert call("GET", "/v1/interactions", key=k["key"])[0].status_code == 200
    found = wait_until(lambda: [a for a in alerts(BASE, org.key, kind="key_expiring") if a["prefix"] == k["prefix"]],
                       10, "the key_expiring alert")
    assert found[0]["state"] == "open"
    assert call("POST", f"/v1/keys/{k['prefix']}/revoke", key=org.key)[0].status_code == 200
    after = [a for a in alerts(BASE, org.key, kind="key_expiring") if a["id"] == found[0]["id"]][0]
    assert after["state"] == "resolved" and after["resolved_at"] is not None
    row = org_d1(org.id, f"SELECT resolved_by FROM alerts WHERE id = {sql_str(found[0]['id'])}")
    assert row == [{"resolved_by": "auto"}]


@pytest.fixture(scope="module")
def quiet_server():
    server = LocalServer("alerts-quiet")
    server.start("--var", f"ALERT_QUIET_MS:{QUIET_MS}")
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)


@pytest.mark.claim("threat.alert-lifecycle")
def test_a_burst_quiet_for_the_configured_time_resolves_by_itself(quiet_server):
    s = quiet_server
    admin_key = s.admin("create-org", "--name", "Quiet")["key"]
    alert, k = dead_key_alert(s.url, admin_key)
    # With no new event for the quiet time, the alarm resolves it (not before).
    done = wait_until(lambda: [a for a in alerts(s.url, admin_key, state="resolved") if a["id"] == alert["id"]],
                      20, "the quiet alert to resolve by itself")
    resolved_at = datetime.fromisoformat(done[0]["resolved_at"].replace("Z", "+00:00"))
    last_seen = datetime.fromisoformat(done[0]["last_seen"].replace("Z", "+00:00"))
    assert resolved_at - last_seen >= timedelta(milliseconds=QUIET_MS)
    # The cause recurs: a new alert, open.
    assert send(s.url, "GET", "/v1/interactions", k["key"]).status_code == 401
    fresh = wait_until(lambda: alerts(s.url, admin_key, state="open"), 10, "a new open alert")
    assert fresh[0]["id"] != alert["id"] and fresh[0]["prefix"] == k["prefix"]
