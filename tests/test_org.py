"""GET /v1/org: admin scope, served by the org's actor; a key only ever sees its own org."""

import pytest

from conftest import call


def test_org_200(org_a):
    r, _ = call("GET", "/v1/org", key=org_a.key)
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == org_a.id
    assert body["name"] == "Org A"
    assert body["allowed_origins"] == []
    assert body["created_at"].endswith("Z")


@pytest.mark.claim("owasp.api1", "posture.measured-tenancy", "posture.tenancy", "threat.cross-tenant")
def test_tenant_isolation_org_route(org_a, org_b):
    for org in (org_a, org_b, org_a, org_b):
        r, _ = call("GET", "/v1/org", key=org.key)
        assert r.status_code == 200
        assert r.json()["id"] == org.id
    # No query string or header can name another org.
    r, _ = call("GET", f"/v1/org?org_id={org_b.id}", key=org_a.key, headers={"X-Org-Id": org_b.id})
    assert r.json()["id"] == org_a.id
