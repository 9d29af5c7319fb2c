"""The 64 KiB cap on management bodies (PATCH /v1/org, POST /v1/keys,
POST /v1/keys/{prefix}/rotate): one byte over is 413 PAYLOAD_TOO_LARGE, on
`Content-Length` before reading and, without it, while reading; a body at the
cap is read (it is no 413)."""

import json

import pytest

from conftest import Org, call, new_org, post_json

CAP = 64 * 1024


@pytest.fixture(scope="module")
def org() -> Org:
    return new_org("Management caps")


def padded(size: int, body: dict) -> bytes:
    """`body` plus a padding field, exactly `size` bytes of JSON."""
    base = json.dumps({**body, "pad": ""}).encode()
    data = json.dumps({**body, "pad": "x" * (size - len(base))}).encode()
    assert len(data) == size
    return data


def chunks(data: bytes, n: int = 16 * 1024):
    for i in range(0, len(data), n):
        yield data[i:i + n]


def target(org: Org, route: str) -> tuple[str, str, dict]:
    """(method, concrete path, a valid body) of one capped route."""
    if route == "rotate":
        made = post_json("/v1/keys", org.key, {"name": "rotate target", "scopes": ["read"]})
        assert made.status_code == 201, made.text
        return "POST", f"/v1/keys/{made.json()['prefix']}/rotate", {"grace_seconds": 0}
    return {"org": ("PATCH", "/v1/org", {"name": "Capped"}),
            "keys": ("POST", "/v1/keys", {"name": "capped", "scopes": ["read"]})}[route]


ROUTES = ["org", "keys", "rotate"]


@pytest.mark.parametrize("route", ROUTES)
def test_management_body_413_content_length(org, route):
    method, path, body = target(org, route)
    r, _ = call(method, path, key=org.key, headers={"Content-Type": "application/json"}, data=padded(CAP + 1, body))
    assert r.request.headers["content-length"] == str(CAP + 1)
    assert r.status_code == 413, f"{method} {path}: {r.status_code} {r.text}"
    assert r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    # At the cap the body is read: the unknown padding field is a validation error, not a 413.
    at_cap, _ = call(method, path, key=org.key, headers={"Content-Type": "application/json"}, data=padded(CAP, body))
    assert at_cap.status_code in (200, 201, 400), at_cap.text


@pytest.mark.parametrize("route", ROUTES)
def test_management_body_413_streamed(org, route):
    method, path, body = target(org, route)
    r, _ = call(method, path, key=org.key, headers={"Content-Type": "application/json"},
                data=chunks(padded(CAP + 1, body)))
    assert "content-length" not in {k.lower() for k in r.request.headers}
    assert r.status_code == 413, f"{method} {path}: {r.status_code} {r.text}"
    assert r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    at_cap, _ = call(method, path, key=org.key, headers={"Content-Type": "application/json"},
                     data=chunks(padded(CAP, body)))
    assert at_cap.status_code in (200, 201, 400), at_cap.text
    # A small streamed body is served.
    ok, _ = call(method, path, key=org.key, headers={"Content-Type": "application/json"},
                 data=chunks(json.dumps(body).encode()))
    assert 200 <= ok.status_code < 300, ok.text
