"""Key lifecycle through HTTP: create (plaintext once), list (never secrets),
revoke, rotate with grace, expiry, last-admin protection, scopes; the audit
log and org settings."""

import re
from datetime import datetime, timedelta, timezone

import pytest

from conftest import FLOOR_S, admin, call, new_org, org_d1, post_json, sql_str, wait_until


def iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def create_key(admin_key: str, **body):
    body.setdefault("name", "test key")
    body.setdefault("scopes", ["read"])
    r = post_json("/v1/keys", admin_key, body)
    assert r.status_code == 201, r.text
    return r.json()


def audit_rows(org_id: str, request_id: str):
    """The audit rows of one request, on the org's shard."""
    return org_d1(org_id, f"SELECT action, reason, prefix, org_id FROM audit_log WHERE request_id = {sql_str(request_id)}")


@pytest.fixture()
def org():
    return new_org("Keys org")


@pytest.mark.claim("owasp.api3", "posture.key-storage", "threat.key-leakage")
def test_keys_create_201_plaintext_once(org):
    k = create_key(org.key, name="ci reader", scopes=["read", "ingest"])
    assert re.fullmatch(r"ck_live_[0-9A-HJKMNP-TV-Z]{26}", k["key"])
    assert k["prefix"] == k["key"][8:16]
    assert k["scopes"] == ["ingest", "read"] and k["state"] == "active" and k["last_used_at"] is None
    assert call("GET", "/v1/interactions", key=k["key"])[0].status_code == 200
    listing, _ = call("GET", "/v1/keys", key=org.key)
    assert listing.status_code == 200
    keys = listing.json()["keys"]
    assert k["prefix"] in [x["prefix"] for x in keys]
    # Never a secret in a listing: no plaintext, no hash, no 64-hex digest.
    assert "ck_live_" not in listing.text
    assert not re.search(r"[0-9a-f]{64}", listing.text)
    assert all(set(x) == {"prefix", "name", "scopes", "created_at", "last_used_at", "expires_at", "state", "replaced_by"}
               for x in keys)


@pytest.mark.claim("owasp.api3")
def test_keys_create_400_names_fields(org):
    r = post_json("/v1/keys", org.key, {"name": "", "scopes": ["root"], "expires_at": "2001-01-01T00:00:00Z"})
    assert r.status_code == 400
    assert sorted(d["field"] for d in r.json()["error"]["details"]) == ["expires_at", "name", "scopes"]


def test_keys_last_used_without_waiting_for_flush(org):
    k = create_key(org.key, scopes=["read"])
    call("GET", "/v1/interactions", key=k["key"])
    listed = {x["prefix"]: x for x in call("GET", "/v1/keys", key=org.key)[0].json()["keys"]}
    assert listed[k["prefix"]]["last_used_at"] is not None


@pytest.mark.claim("owasp.api2", "posture.auth-envelope", "threat.stale-key-state")
def test_keys_revoked_401_next_request_and_audited(org):
    k = create_key(org.key, scopes=["read"])
    assert call("GET", "/v1/interactions", key=k["key"])[0].status_code == 200
    rv, _ = call("POST", f"/v1/keys/{k['prefix']}/revoke", key=org.key)
    assert rv.status_code == 200 and rv.json()["state"] == "revoked"
    assert audit_rows(org.id, rv.headers["x-request-id"])[0]["action"] == "key.revoked"
    r, elapsed = call("GET", "/v1/interactions", key=k["key"])
    assert r.status_code == 401 and elapsed >= FLOOR_S
    row = audit_rows(org.id, r.headers["x-request-id"])[0]
    assert (row["action"], row["reason"], row["prefix"], row["org_id"]) == ("auth.failure", "revoked", k["prefix"], org.id)
    # Revoking again is idempotent.
    assert call("POST", f"/v1/keys/{k['prefix']}/revoke", key=org.key)[0].status_code == 200


def test_keys_revoked_fails_next_request_even_when_the_front_caches_it(org):
    """The front isolate caches a verified key's directory row for up to 60 s
    (core::directory), so repeated use below is served from that cache; whether
    the key is live is still decided by the org's actor on every request, so a
    revocation holds on the very next one."""
    k = create_key(org.key, scopes=["read"])
    for _ in range(5):
        assert call("GET", "/v1/interactions", key=k["key"])[0].status_code == 200
    assert call("POST", f"/v1/keys/{k['prefix']}/revoke", key=org.key)[0].status_code == 200
    for _ in range(3):
        r, _ = call("GET", "/v1/interactions", key=k["key"])
        assert r.status_code == 401, r.text


@pytest.mark.claim("owasp.api2", "posture.auth-envelope")
def test_keys_expired_401_and_audited(org):
    # Long enough to be live on a slow runner; the expiry is then awaited by
    # polling (each poll is a request the actor decides anew).
    expires = datetime.now(timezone.utc) + timedelta(seconds=5)
    k = create_key(org.key, scopes=["read"], expires_at=iso(expires))
    first, _ = call("GET", "/v1/interactions", key=k["key"])
    assert first.status_code == 200 or datetime.now(timezone.utc) >= expires, first.text

    def refused():
        r, _ = call("GET", "/v1/interactions", key=k["key"])
        return [r] if r.status_code != 200 else None  # a list: a 4xx `Response` is falsy

    [r] = wait_until(refused, 30, "the key to expire")
    assert r.status_code == 401 and datetime.now(timezone.utc) >= expires - timedelta(milliseconds=100)
    assert audit_rows(org.id, r.headers["x-request-id"])[0]["reason"] == "expired"
    listed = {x["prefix"]: x for x in call("GET", "/v1/keys", key=org.key)[0].json()["keys"]}
    assert listed[k["prefix"]]["state"] == "expired"


@pytest.mark.claim("owasp.api2", "threat.stale-key-state")
def test_keys_rotation_grace_works_and_ends(org):
    old = create_key(org.key, scopes=["read", "ingest"])
    r = post_json(f"/v1/keys/{old['prefix']}/rotate", org.key, {"grace_seconds": 5})
    assert r.status_code == 201, r.text
    new = r.json()
    grace_end = datetime.fromisoformat(new["previous"]["expires_at"].replace("Z", "+00:00"))
    assert new["key"] != old["key"] and new["scopes"] == ["ingest", "read"]
    assert new["previous"]["prefix"] == old["prefix"] and new["previous"]["replaced_by"] == new["prefix"]
    assert call("GET", "/v1/interactions", key=new["key"])[0].status_code == 200
    in_grace, _ = call("GET", "/v1/interactions", key=old["key"])
    assert in_grace.status_code == 200 or datetime.now(timezone.utc) >= grace_end, in_grace.text
    # Grace over: the old key is refused from its end on, polled (not slept for).
    wait_until(lambda: call("GET", "/v1/interactions", key=old["key"])[0].status_code == 401, 30, "the grace to end")
    assert datetime.now(timezone.utc) >= grace_end - timedelta(milliseconds=100)
    assert call("GET", "/v1/interactions", key=new["key"])[0].status_code == 200


@pytest.mark.claim("owasp.api6")
def test_keys_rotation_never_past_own_expiry(org):
    end = datetime.now(timezone.utc) + timedelta(hours=1)
    old = create_key(org.key, scopes=["read"], expires_at=iso(end))
    new = post_json(f"/v1/keys/{old['prefix']}/rotate", org.key, {"grace_seconds": 86400}).json()
    assert new["previous"]["expires_at"] == old["expires_at"]
    assert new["expires_at"] == old["expires_at"]  # the successor copies the expiry


def test_keys_rotate_400_and_404(org):
    k = create_key(org.key)
    assert post_json(f"/v1/keys/{k['prefix']}/rotate", org.key, {"grace_seconds": -1}).status_code == 400
    assert post_json(f"/v1/keys/{k['prefix']}/rotate", org.key, {}).status_code == 400
    assert post_json("/v1/keys/ZZZZZZZZ/rotate", org.key, {"grace_seconds": 0}).status_code == 404
    assert call("POST", "/v1/keys/not-a-prefix/revoke", key=org.key)[0].status_code == 404


@pytest.mark.claim("owasp.api5")
def test_keys_last_admin_409(org):
    r, _ = call("POST", f"/v1/keys/{org.prefix}/revoke", key=org.key)
    assert r.status_code == 409
    assert "last active admin key" in r.json()["error"]["message"]
    second = create_key(org.key, scopes=["admin"])
    assert call("POST", f"/v1/keys/{org.prefix}/revoke", key=second["key"])[0].status_code == 200
    assert call("GET", "/v1/org", key=org.key)[0].status_code == 401


@pytest.mark.claim("threat.key-behind-actor")
def test_keys_operator_key_listed_and_revocable_while_actor_runs(org):
    # The org's actor runs and holds its keys before the operator adds two.
    assert call("GET", "/v1/org", key=org.key)[0].status_code == 200
    made = [admin("create-key", "--org", org.id, "--scopes", "read", "--name", f"operator {i}") for i in range(2)]
    # Revoking one the actor has never seen (no listing first) works.
    rv, _ = call("POST", f"/v1/keys/{made[0]['prefix']}/revoke", key=org.key)
    assert rv.status_code == 200, rv.text
    assert rv.json()["state"] == "revoked"
    listed = {x["prefix"]: x for x in call("GET", "/v1/keys", key=org.key)[0].json()["keys"]}
    assert listed[made[0]["prefix"]]["state"] == "revoked"
    assert listed[made[1]["prefix"]]["state"] == "active" and listed[made[1]["prefix"]]["name"] == "operator 1"
    assert call("GET", "/v1/interactions", key=made[0]["key"])[0].status_code == 401
    assert call("GET", "/v1/interactions", key=made[1]["key"])[0].status_code == 200


PREDECESSOR = "a key in its rotation grace period cannot manage keys; use its successor"


@pytest.mark.claim("owasp.api2", "threat.admin-survives-rotation")
def test_keys_admin_in_rotation_grace_cannot_manage_keys(org):
    other = create_key(org.key, name="second admin", scopes=["admin"])
    r = post_json(f"/v1/keys/{org.prefix}/rotate", org.key, {"grace_seconds": 600})
    assert r.status_code == 201, r.text
    successor = r.json()
    # The old key, in grace, can neither revoke its successor nor end its grace.
    for method, path, body in [("POST", f"/v1/keys/{successor['prefix']}/revoke", None),
                               ("POST", f"/v1/keys/{org.prefix}/rotate", {"grace_seconds": 0}),
                               ("POST", f"/v1/keys/{other['prefix']}/revoke", None),
                               ("POST", "/v1/keys", {"name": "sneaky", "scopes": ["admin"]})]:
        denied, _ = call(method, path, key=org.key, json=body)
        assert denied.status_code == 403, (path, denied.text)
        assert denied.json()["error"]["code"] == "FORBIDDEN"
        assert denied.json()["error"]["message"] == PREDECESSOR
    # It still reads, and nothing changed.
    assert call("GET", "/v1/org", key=org.key)[0].status_code == 200
    listed = {x["prefix"]: x for x in call("GET", "/v1/keys", key=org.key)[0].json()["keys"]}
    assert listed[successor["prefix"]]["state"] == "active" and listed[other["prefix"]]["state"] == "active"
    assert listed[org.prefix]["replaced_by"] == successor["prefix"]
    assert call("GET", "/v1/org", key=successor["key"])[0].status_code == 200
    # The successor manages keys, the predecessor included.
    assert call("POST", f"/v1/keys/{org.prefix}/revoke", key=successor["key"])[0].status_code == 200
    assert call("GET", "/v1/org", key=org.key)[0].status_code == 401


@pytest.mark.claim("owasp.api2", "threat.admin-survives-rotation")
def test_keys_successor_of_the_only_admin_is_the_last_admin(org):
    r = post_json(f"/v1/keys/{org.prefix}/rotate", org.key, {"grace_seconds": 600})
    assert r.status_code == 201, r.text
    successor = r.json()
    assert call("GET", "/v1/org", key=org.key)[0].status_code == 200  # the predecessor is live, in grace
    # It does not count as the other admin key.
    rv, _ = call("POST", f"/v1/keys/{successor['prefix']}/revoke", key=successor["key"])
    assert rv.status_code == 409, rv.text
    assert "last active admin key" in rv.json()["error"]["message"]
    # Nor can a second successor (with the grace-shortened expiry) stand in for it.
    again = post_json(f"/v1/keys/{org.prefix}/rotate", successor["key"], {"grace_seconds": 0})
    assert again.status_code == 409, again.text
    assert call("GET", "/v1/org", key=successor["key"])[0].status_code == 200


@pytest.mark.claim("owasp.api1", "posture.measured-tenancy", "posture.tenancy")
def test_keys_other_org_prefix_404(org, org_b):
    assert call("POST", f"/v1/keys/{org_b.prefix}/revoke", key=org.key)[0].status_code == 404
    assert call("GET", "/v1/org", key=org_b.key)[0].status_code == 200


@pytest.mark.parametrize("method,path", [("GET", "/v1/keys"), ("POST", "/v1/keys"), ("GET", "/v1/audit-log"),
                                         ("PATCH", "/v1/org"), ("POST", "/v1/keys/ABCDEFGH/revoke")])
@pytest.mark.claim("owasp.api5", "threat.scope-escalation")
def test_scope_403_admin_routes(keys_a, method, path):
    r, _ = call(method, path, key=keys_a.read, headers={"Content-Type": "application/json"}, data=b"{}")
    assert r.status_code == 403


@pytest.mark.claim("owasp.api6")
def test_audit_log_pages_and_filters(org):
    made = [create_key(org.key, name=f"k{i}")["prefix"] for i in range(3)]
    r, _ = call("GET", "/v1/audit-log?action=key.created&limit=2", key=org.key)
    assert r.status_code == 200
    page1 = r.json()
    assert [e["prefix"] for e in page1["entries"]] == made[::-1][:2]
    page2 = call("GET", f"/v1/audit-log?action=key.created&limit=2&cursor={page1['next_cursor']}", key=org.key)[0].json()
    # Oldest: the org's first admin key, created (and audited) by the operator command.
    admin = org.key[len("ck_live_"):][:8]
    assert [e["prefix"] for e in page2["entries"]] == [made[0], admin] and page2["next_cursor"] is None
    one = call("GET", f"/v1/audit-log?prefix={made[1]}", key=org.key)[0].json()["entries"]
    assert [e["action"] for e in one] == ["key.created"]
    assert call("GET", "/v1/audit-log?prefix=nope", key=org.key)[0].status_code == 400


def test_org_patch_allowed_origins(org):
    r = call("PATCH", "/v1/org", key=org.key, headers={"Content-Type": "application/json"},
             json={"allowed_origins": ["https://b.example.com", "https://a.example.com:8443"], "name": "Renamed"})[0]
    assert r.status_code == 200, r.text
    assert r.json()["allowed_origins"] == ["https://a.example.com:8443", "https://b.example.com"]
    assert r.json()["name"] == "Renamed"
    bad = call("PATCH", "/v1/org", key=org.key, headers={"Content-Type": "application/json"},
               json={"allowed_origins": ["https://ok.example.com", "https://bad.example.com/", "*", "https://[0]*",
                                         "http://[::1]garbage"]})[0]
    assert bad.status_code == 400
    fields = [d["field"] for d in bad.json()["error"]["details"]]
    assert fields == ["allowed_origins[1]", "allowed_origins[2]", "allowed_origins[3]", "allowed_origins[4]"]
    assert "bad.example.com/" in bad.json()["error"]["message"]
    assert call("GET", "/v1/org", key=org.key)[0].json()["allowed_origins"] == ["https://a.example.com:8443",
                                                                               "https://b.example.com"]


def alerts_of(key):
    return {(a["kind"], a["prefix"]): a for a in call("GET", "/v1/alerts", key=key)[0].json()["alerts"]}


@pytest.mark.claim("owasp.api6")
def test_alerts_dead_key_used(org):
    k = create_key(org.key, scopes=["read"])
    call("POST", f"/v1/keys/{k['prefix']}/revoke", key=org.key)
    call("GET", "/v1/interactions", key=k["key"])
    a = alerts_of(org.key)[("dead_key_used", k["prefix"])]
    assert a["state"] == "open" and a["count"] >= 1


@pytest.mark.claim("owasp.api2", "owasp.api6", "threat.key-enumeration")
def test_alerts_auth_failure_burst(org):
    body = org.key[len("ck_live_"):]
    wrong = "ck_live_" + body[:8] + ("0" if body[8] != "0" else "1") + body[9:]
    for _ in range(5):
        assert call("GET", "/v1/org", key=wrong)[0].status_code == 401
    a = alerts_of(org.key)[("auth_failure_burst", org.prefix)]
    assert a["count"] == 5


@pytest.mark.claim("owasp.api6")
def test_alerts_key_expiring(org):
    k = create_key(org.key, scopes=["read"], expires_at=iso(datetime.now(timezone.utc) + timedelta(days=2)))
    call("GET", "/v1/interactions", key=k["key"])
    assert ("key_expiring", k["prefix"]) in alerts_of(org.key)


@pytest.mark.claim("owasp.api1", "posture.tenancy")
def test_alerts_isolated_between_orgs(org, org_b):
    k = create_key(org.key, scopes=["read"])
    call("POST", f"/v1/keys/{k['prefix']}/revoke", key=org.key)
    call("GET", "/v1/interactions", key=k["key"])
    # The alert exists (its org sees it), and only its org does.
    assert ("dead_key_used", k["prefix"]) in alerts_of(org.key)
    assert all(p != k["prefix"] for (_, p) in alerts_of(org_b.key))


def test_keys_list_never_shows_another_orgs_keys():
    """Two orgs with several keys each: each listing holds exactly its own
    org's prefixes, disjoint from the other's."""
    one, two = new_org("Keys list one"), new_org("Keys list two")
    mine = {one.prefix} | {create_key(one.key, name=f"one {i}")["prefix"] for i in range(3)}
    theirs = {two.prefix} | {create_key(two.key, name=f"two {i}")["prefix"] for i in range(3)}
    assert not mine & theirs
    for org, own, other in ((one, mine, theirs), (two, theirs, mine)):
        r, _ = call("GET", "/v1/keys", key=org.key)
        assert r.status_code == 200, r.text
        assert {k["prefix"] for k in r.json()["keys"]} == own
        assert not any(p in r.text for p in other) and (one.id if org is two else two.id) not in r.text
