"""Tenant isolation matrix: org B's keys on org A's ids, filters and cursors
never see A's data."""

import uuid

import pytest

from conftest import call, post_json


@pytest.fixture(scope="module")
def a_data(keys_a):
    actor = "iso-" + uuid.uuid4().hex
    items = [{"type": "iso", "actor": actor, "content": f"secret {i}"} for i in range(5)]
    body = post_json("/v1/interactions/batch", keys_a.ingest, {"interactions": items}).json()
    page = call("GET", f"/v1/interactions?actor={actor}&limit=2", key=keys_a.read)[0].json()
    return {"ids": [x["id"] for x in body["interactions"]], "actor": actor, "cursor": page["next_cursor"]}


@pytest.mark.claim("owasp.api1", "posture.measured-tenancy", "posture.tenancy", "threat.cross-tenant")
def test_tenant_isolation_get_by_id(keys_b, a_data):
    for ident in a_data["ids"]:
        r, _ = call("GET", f"/v1/interactions/{ident}", key=keys_b.read)
        assert r.status_code == 404
        assert "secret" not in r.text


@pytest.mark.claim("owasp.api1", "posture.tenancy")
def test_tenant_isolation_delete_by_id(keys_a, keys_b, a_data):
    r, _ = call("DELETE", f"/v1/interactions/{a_data['ids'][0]}", key=keys_b.admin)
    assert r.status_code == 404
    still, _ = call("GET", f"/v1/interactions/{a_data['ids'][0]}", key=keys_a.read)
    assert still.status_code == 200


@pytest.mark.claim("owasp.api1", "posture.tenancy")
def test_tenant_isolation_list_filters(keys_b, a_data):
    for q in [f"actor={a_data['actor']}", "type=iso", "limit=200"]:
        r, _ = call("GET", f"/v1/interactions?{q}", key=keys_b.read)
        assert r.status_code == 200
        assert all(x["id"] not in a_data["ids"] for x in r.json()["interactions"])
        assert "secret" not in r.text


@pytest.mark.claim("owasp.api1", "posture.tenancy", "threat.cross-tenant")
def test_tenant_isolation_cursor_from_other_org_rejected(keys_b, a_data):
    assert a_data["cursor"]
    r, _ = call("GET", f"/v1/interactions?actor={a_data['actor']}&limit=2&cursor={a_data['cursor']}", key=keys_b.read)
    assert r.status_code == 400
    assert "cursor" in r.json()["error"]["message"]


@pytest.mark.claim("owasp.api1", "posture.tenancy")
def test_tenant_isolation_idempotency_replay(keys_a, keys_b):
    k = uuid.uuid4().hex
    a = post_json("/v1/interactions", keys_a.ingest, {"type": "t", "content": "A only"}, {"Idempotency-Key": k})
    b = post_json("/v1/interactions", keys_b.ingest, {"type": "t"}, {"Idempotency-Key": k})
    assert b.status_code == 201
    assert "A only" not in b.text and b.json()["id"] != a.json()["id"]
