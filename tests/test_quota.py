"""Per-org storage quota: usage in GET /v1/org, QUOTA_EXCEEDED once a write
would cross the quota (a batch refused whole), other orgs unaffected, room
given back by erasure, alerts at 80 % and at 100 %, set by the operator
command."""

import uuid

import pytest

from conftest import admin, call, new_org, post_json


def usage(org) -> dict:
    r, _ = call("GET", "/v1/org", key=org.key)
    assert r.status_code == 200, r.text
    return r.json()["usage"]


def ingest(org, **fields):
    return post_json("/v1/interactions", org.key, {"type": "quota.test", **fields})


def alert_kinds(org) -> set:
    r, _ = call("GET", "/v1/alerts", key=org.key)
    assert r.status_code == 200, r.text
    return {a["kind"] for a in r.json()["alerts"]}


def test_default_quota_and_exact_usage_in_org():
    org = new_org("Quota defaults")
    assert usage(org) == {"rows": 0, "bytes": 0, "quota_rows": 1_000_000, "quota_bytes": 1 << 30}
    r = ingest(org, content="héllo", actor="a1", metadata={"k": 1}, idempotency_key="k-1")
    assert r.status_code == 201, r.text
    body = r.json()
    # UTF-8 bytes of id, type, actor, content ("é" is two), stored metadata, idempotency key.
    expected = len(body["id"]) + len("quota.test") + 2 + 6 + len('{"k":1}') + 3
    assert usage(org)["rows"] == 1 and usage(org)["bytes"] == expected
    # An idempotent replay stores nothing and counts nothing.
    again = ingest(org, content="other", idempotency_key="k-1")
    assert again.status_code == 200, again.text
    assert usage(org)["rows"] == 1 and usage(org)["bytes"] == expected


@pytest.mark.claim("owasp.api4", "threat.storage-fill")
def test_quota_refuses_whole_write_while_other_org_ingests():
    full, other = new_org("Quota full"), new_org("Quota other")
    out = admin("set-quota", "--org", full.id, "--rows", "10")
    assert out["org_id"] == full.id and out["usage"]["quota_rows"] == 10
    assert out["usage"]["quota_bytes"] == 1 << 30

    for i in range(10):
        r = ingest(full, content=f"row {i}")
        assert r.status_code == 201, r.text
        assert ingest(other, content=f"row {i}").status_code == 201
    assert usage(full)["rows"] == 10

    refused = ingest(full, content="one too many")
    assert refused.status_code == 409, refused.text
    err = refused.json()["error"]
    assert err["code"] == "QUOTA_EXCEEDED" and "10 interactions" in err["message"]
    assert err["request_id"] == refused.headers["x-request-id"]

    # The other org's ingest keeps succeeding, single and batch.
    assert ingest(other, content="still fine").status_code == 201
    batch = post_json("/v1/interactions/batch", other.key, {"interactions": [{"type": "t"}] * 3})
    assert batch.status_code == 201, batch.text

    # Room for one: a batch of two would cross the quota and is refused whole.
    listed, _ = call("GET", "/v1/interactions?limit=1", key=full.key)
    victim = listed.json()["interactions"][0]["id"]
    assert call("DELETE", f"/v1/interactions/{victim}", key=full.key)[0].status_code == 204
    assert usage(full)["rows"] == 9
    tag = uuid.uuid4().hex
    crossing = post_json("/v1/interactions/batch", full.key,
                         {"interactions": [{"type": "t", "actor": tag}, {"type": "t", "actor": tag}]})
    assert crossing.status_code == 409 and crossing.json()["error"]["code"] == "QUOTA_EXCEEDED", crossing.text
    stored, _ = call("GET", f"/v1/interactions?actor={tag}", key=full.key)
    assert stored.json()["interactions"] == []
    assert usage(full)["rows"] == 9

    # Erasure gave the room back: one more fits, exactly.
    assert ingest(full, actor=tag).status_code == 201
    assert usage(full)["rows"] == 10
    assert ingest(full).status_code == 409

    # The operator raises the quota: ingest works again.
    admin("set-quota", "--org", full.id, "--rows", "default")
    assert ingest(full).status_code == 201
    assert usage(full)["quota_rows"] == 1_000_000


@pytest.mark.claim("owasp.api4", "threat.storage-fill")
def test_byte_quota_is_enforced():
    org = new_org("Quota bytes")
    admin("set-quota", "--org", org.id, "--bytes", "400")
    assert ingest(org, content="x" * 100).status_code == 201
    big = ingest(org, content="x" * 400)
    assert big.status_code == 409 and big.json()["error"]["code"] == "QUOTA_EXCEEDED", big.text
    assert usage(org)["rows"] == 1 and usage(org)["bytes"] < 400


@pytest.mark.claim("owasp.api4", "threat.storage-fill")
def test_alerts_at_80_and_100_percent():
    org = new_org("Quota alerts")
    admin("set-quota", "--org", org.id, "--rows", "5")
    for _ in range(3):
        assert ingest(org).status_code == 201
    assert not alert_kinds(org) & {"quota_80", "quota_reached"}
    assert ingest(org).status_code == 201  # 4 of 5: 80 %
    kinds = alert_kinds(org)
    assert "quota_80" in kinds and "quota_reached" not in kinds
    assert ingest(org).status_code == 201  # 5 of 5: reached
    assert "quota_reached" in alert_kinds(org)
    assert ingest(org).status_code == 409
    r, _ = call("GET", "/v1/alerts?kind=quota_reached", key=org.key)
    (alert,) = r.json()["alerts"]
    assert alert["prefix"] is None and alert["state"] == "open"
