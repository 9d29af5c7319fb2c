"""Tenant isolation matrix: org B's keys on org A's ids, filters and cursors
never see A's data. The matrix runs twice: with both orgs on one data shard,
and with the two orgs on different shards."""

import uuid

import pytest

from conftest import Keys, call, new_org, post_json, scoped_key, shard_of

# (case, shard of org A, shard of org B)
PLACEMENTS = [("same-shard", "DATA_1", "DATA_1"), ("different-shards", "DATA_1", "DATA_2")]


@pytest.fixture(scope="module", params=PLACEMENTS, ids=[p[0] for p in PLACEMENTS])
def placement(request):
    case, shard_a, shard_b = request.param
    orgs = [new_org(f"Isolation {case} {n}", shard=s) for n, s in (("A", shard_a), ("B", shard_b))]
    assert [shard_of(o.id) for o in orgs] == [shard_a, shard_b], case
    return case, [Keys(o, scoped_key(o, "ingest"), scoped_key(o, "read"), o.key) for o in orgs]


# These shadow the session-wide orgs of conftest.py: each case has its own pair.
@pytest.fixture(scope="module")
def keys_a(placement):
    return placement[1][0]


@pytest.fixture(scope="module")
def keys_b(placement):
    return placement[1][1]


def test_tenant_isolation_orgs_are_placed_as_the_case_says(placement, keys_a, keys_b):
    case, _ = placement
    a, b = shard_of(keys_a.org.id), shard_of(keys_b.org.id)
    assert (a == b) == (case == "same-shard"), (case, a, b)


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
