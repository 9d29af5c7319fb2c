"""Auth outcomes: every credential failure is the same 401, no sooner than the
80 ms floor, with the real reason in audit_log only."""

import re

import pytest

from conftest import FLOOR_S, admin, call, d1, new_org, random_ip, random_key, sql_str

REASONS = ["missing", "malformed", "unknown_prefix", "wrong_hash", "revoked", "expired"]


@pytest.fixture(scope="module")
def credentials(org_a):
    """One presented credential per failure reason (None: no header)."""
    # A throwaway org whose keys are made dead in D1 before its actor ever loads them.
    dead = new_org("Dead keys org")
    expired = admin("create-key", "--org", dead.id, "--scopes", "read,admin", "--expires-at", "2020-01-01T00:00:00Z")
    d1(f"UPDATE api_keys SET state = 'revoked', revoked_at = 0 WHERE prefix = {sql_str(dead.prefix)}")
    body = org_a.key[len("ck_live_"):]
    wrong = "ck_live_" + body[:8] + ("0" if body[8] != "0" else "1") + body[9:]
    return {
        "missing": None,
        "malformed": "ck_live_NOT-A-KEY",
        "unknown_prefix": random_key(),
        "wrong_hash": wrong,
        "revoked": dead.key,
        "expired": expired["key"],
    }


@pytest.fixture(scope="module")
def failures(credentials):
    out = {}
    for reason in REASONS:
        ip = random_ip()
        r, elapsed = call("GET", "/v1/org", key=credentials[reason], ip=ip)
        out[reason] = (r, elapsed, ip)
    return out


@pytest.mark.parametrize("reason", REASONS)
def test_auth_401(failures, reason):
    r, elapsed, _ = failures[reason]
    assert r.status_code == 401
    body = r.json()
    assert body["error"]["code"] == "UNAUTHORIZED"
    assert body["error"]["message"] == "invalid or missing API key"
    assert body["error"]["request_id"] == r.headers["x-request-id"]
    assert elapsed >= FLOOR_S, f"{reason} answered after {elapsed * 1000:.1f} ms"


def test_auth_401_bodies_identical_but_request_id(failures):
    bodies = {
        reason: re.sub(rb'"request_id":"req_[0-9A-Z]{26}"', b'"request_id":"X"', r.content)
        for reason, (r, _, _) in failures.items()
    }
    assert len(set(bodies.values())) == 1, bodies


def test_auth_401_header_names_identical(failures):
    names = {reason: tuple(sorted(h.lower() for h in r.headers)) for reason, (r, _, _) in failures.items()}
    assert len(set(names.values())) == 1, names
    values = {
        reason: tuple(sorted((k.lower(), v) for k, v in r.headers.items() if k.lower() not in ("x-request-id", "date")))
        for reason, (r, _, _) in failures.items()
    }
    assert len(set(values.values())) == 1, values


def test_auth_401_audit_reason(failures, credentials):
    ids = {r.headers["x-request-id"]: reason for reason, (r, _, _) in failures.items()}
    rows = d1(
        "SELECT request_id, action, reason, prefix, ip, org_id FROM audit_log WHERE request_id IN ("
        + ",".join(sql_str(i) for i in ids) + ")"
    )
    by_reason = {ids[row["request_id"]]: row for row in rows}
    assert set(by_reason) == set(REASONS), rows
    for reason, row in by_reason.items():
        assert row["action"] == "auth.failure"
        assert row["reason"] == reason
        assert row["ip"] == failures[reason][2]
        key = credentials[reason]
        if reason in ("missing", "malformed"):
            assert row["prefix"] is None
        else:
            assert row["prefix"] == key[len("ck_live_"):][:8].upper()
        # Failures on a known org are filed under that org; the rest under none.
        assert (row["org_id"] is not None) == (reason in ("wrong_hash", "revoked", "expired"))


def test_audit_never_holds_key_material(failures, credentials):
    rows = d1("SELECT * FROM audit_log")
    text = repr(rows)
    for key in credentials.values():
        if key:
            assert key[len("ck_live_"):] not in text


def test_auth_200_held_to_floor(org_a):
    r, elapsed = call("GET", "/v1/org", key=org_a.key)
    assert r.status_code == 200
    assert elapsed >= FLOOR_S


def test_auth_key_any_case(org_a):
    r, _ = call("GET", "/v1/org", key="ck_live_" + org_a.key[len("ck_live_"):].lower())
    assert r.status_code == 200


def test_auth_scheme_other_than_bearer_401(org_a):
    r, _ = call("GET", "/v1/org", headers={"Authorization": f"Basic {org_a.key}"})
    assert r.status_code == 401


def test_scope_403(org_a):
    read_only = admin("create-key", "--org", org_a.id, "--scopes", "read,ingest")
    r, elapsed = call("GET", "/v1/org", key=read_only["key"])
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "FORBIDDEN"
    assert "admin" in r.json()["error"]["message"]
    assert elapsed >= FLOOR_S
    rows = d1(f"SELECT action, reason FROM audit_log WHERE request_id = {sql_str(r.headers['x-request-id'])}")
    assert rows == [{"action": "auth.forbidden", "reason": "admin"}]
