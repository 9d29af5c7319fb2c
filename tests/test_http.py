"""HTTP basics: health, 404/405 envelopes, x-request-id on every response."""

import re

import pytest

from conftest import call

REQ_ID = re.compile(r"^req_[0-9A-Z]{26}$")


def test_health_200_no_auth():
    r, _ = call("GET", "/v1/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    assert REQ_ID.match(r.headers["x-request-id"])


@pytest.mark.parametrize("path", ["/", "/v1", "/v1/org/", "/v2/org", "/v1/nope"])
@pytest.mark.claim("owasp.api8", "owasp.api9")
def test_unknown_path_404(path):
    r, _ = call("GET", path)
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["code"] == "NOT_FOUND"
    assert err["request_id"] == r.headers["x-request-id"]


@pytest.mark.claim("owasp.api8")
def test_wrong_method_405():
    r, _ = call("DELETE", "/v1/org")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, PATCH"
    assert r.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


def test_request_ids_unique():
    ids = {call("GET", "/v1/health")[0].headers["x-request-id"] for _ in range(20)}
    assert len(ids) == 20
