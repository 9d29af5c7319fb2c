"""Authorization matrix, built from docs/openapi.yaml: every operation is
called (with a valid body, the spec's first example) by

- a live key of the same org that lacks the operation's scope (`x-required-scope`):
  403 FORBIDDEN, and nothing changes;
- another org's admin key (all scopes) on this org's resources: an operation
  on an id or key prefix of this org answers 404 NOT_FOUND and leaves it as
  it was; a collection operation answers only the caller's own data (none of
  this org's ids, prefixes or markers appear) and changes nothing here;
- this org's key with the scope: a success, so the body is valid and the
  resource exists (a 400 or 404 cannot mask the checks above).
"""

import json
import re
import uuid

import pytest
import yaml

from conftest import ROOT, Org, call, new_org, post_json, scoped_key, resolve_ref, wait_until

SPEC = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text(encoding="utf-8"))
HTTP_METHODS = {"get", "post", "put", "patch", "delete"}
SCOPES = ("ingest", "read", "admin")
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}
INTERACTION_ID = re.compile(r"int_[0-9A-Z]{26}")


def resolve(node):
    return resolve_ref(SPEC, node)


def spec_operations() -> list[tuple[str, str, str, dict]]:
    """(operationId, METHOD, path template, operation) for every operation."""
    out = []
    for path, item in SPEC["paths"].items():
        for method, op in item.items():
            if method in HTTP_METHODS:
                out.append((op["operationId"], method.upper(), path, op))
    return out


OPERATIONS = spec_operations()


def example_body(op: dict):
    """The first example of the operation's JSON request body, or None."""
    body = op.get("requestBody")
    if body is None:
        return None
    media = resolve(body)["content"]["application/json"]
    if "example" in media:
        return media["example"]
    examples = media.get("examples")
    assert examples, f"{op['operationId']}: the spec gives no example body"
    return resolve(next(iter(examples.values())))["value"]


def lacking(scope: str) -> str:
    """The scope list of a key with every scope but `scope`."""
    return ",".join(s for s in SCOPES if s != scope)


class Victim:
    """Org A: its admin key, one key per missing scope, one stored interaction
    with a unique actor, and what it must never leak."""

    def __init__(self):
        self.org: Org = new_org("Authz victim")
        self.lacking = {s: scoped_key(self.org, lacking(s)) for s in SCOPES}
        self.marker = f"authz-{uuid.uuid4().hex[:12]}"
        r = post_json("/v1/interactions", self.org.key, {"type": "authz.check", "actor": self.marker,
                                                         "content": self.marker})
        assert r.status_code == 201, r.text
        self.interaction = r.json()["id"]

    def secrets(self) -> set[str]:
        """Identifiers of org A that another org's answer must never contain."""
        prefixes = {k[len("ck_live_"):][:8] for k in [self.org.key, *self.lacking.values()]}
        return {self.org.id, self.marker, self.interaction, *prefixes}

    def snapshot(self) -> dict:
        """Org A's state as its admin sees it (what a foreign call must not change)."""
        org = call("GET", "/v1/org", key=self.org.key)[0]
        keys = call("GET", "/v1/keys", key=self.org.key)[0]
        items = call("GET", "/v1/interactions?limit=200", key=self.org.key)[0]
        assert org.status_code == keys.status_code == items.status_code == 200
        o = org.json()
        return {
            "org": (o["id"], o["name"], o["allowed_origins"]),
            "keys": sorted((k["prefix"], k["state"], k.get("expires_at")) for k in keys.json()["keys"]),
            "interactions": sorted(INTERACTION_ID.findall(items.text)),
        }


@pytest.fixture(scope="module")
def victim() -> Victim:
    return Victim()


@pytest.fixture(scope="module")
def intruder() -> Org:
    """Org B; the key `create-org` prints holds every scope."""
    return new_org("Authz intruder")


def dead_key_alert(victim: Victim) -> str:
    """A fresh open alert of org A: a key revoked, then used."""
    r = post_json("/v1/keys", victim.org.key, {"name": "authz alert", "scopes": ["read"]})
    assert r.status_code == 201, r.text
    prefix, key = r.json()["prefix"], r.json()["key"]
    assert post_json(f"/v1/keys/{prefix}/revoke", victim.org.key, {}).status_code == 200
    assert call("GET", "/v1/org", key=key)[0].status_code == 401

    def found():
        r = call("GET", "/v1/alerts?kind=dead_key_used&state=open", key=victim.org.key)[0]
        return [a["id"] for a in r.json()["alerts"] if a.get("prefix") == prefix]

    return wait_until(found, 10, "the dead_key_used alert")[0]


def own_resource(victim: Victim, param: str, path: str) -> str:
    """A fresh resource of org A for a path parameter (each operation gets its own)."""
    if param == "session":
        session = f"authz-session-{uuid.uuid4().hex[:8]}"
        r = post_json("/v1/interactions", victim.org.key, {"type": "authz.target", "actor": victim.marker,
                                                           "session": session})
        assert r.status_code == 201, r.text
        return session
    if param == "id" and path.startswith("/v1/erasures/"):
        r = post_json("/v1/erasures", victim.org.key, {"actor": f"authz-erase-{uuid.uuid4().hex[:8]}"})
        assert r.status_code == 202, r.text
        return r.json()["id"]
    if param == "id" and path.startswith("/v1/webhooks/"):
        r = post_json("/v1/webhooks", victim.org.key, {"url": "https://hooks.example.com/authz",
                                                       "events": ["alert.opened"]})
        assert r.status_code == 201, r.text
        return r.json()["id"]
    if param == "id" and path.startswith("/v1/alerts/"):
        return dead_key_alert(victim)
    if param == "id":
        r = post_json("/v1/interactions", victim.org.key, {"type": "authz.target", "actor": victim.marker})
        assert r.status_code == 201, r.text
        return r.json()["id"]
    if param == "prefix":
        r = post_json("/v1/keys", victim.org.key, {"name": "authz target", "scopes": ["read"]})
        assert r.status_code == 201, r.text
        return r.json()["prefix"]
    raise AssertionError(f"no resource for path parameter {{{param}}}: add one")


def send(method: str, path: str, key: str, body):
    headers = dict(MCP_HEADERS) if path == "/mcp" else {}
    if body is None:
        return call(method, path, key=key, headers=headers)[0]
    headers["Content-Type"] = "application/json"
    return call(method, path, key=key, headers=headers, data=json.dumps(body))[0]


def test_every_operation_states_its_scope():
    assert OPERATIONS
    for op_id, method, path, op in OPERATIONS:
        assert op.get("x-required-scope") in (*SCOPES, "none", "operator"), f"{op_id} ({method} {path})"
    ids = [o[0] for o in OPERATIONS]
    assert len(ids) == len(set(ids)), "operationIds must be unique"


@pytest.mark.parametrize("op_id,method,path,op", OPERATIONS, ids=[o[0] for o in OPERATIONS])
def test_authz_matrix(op_id, method, path, op, victim, intruder):
    scope = op["x-required-scope"]
    body = example_body(op)
    params = re.findall(r"\{(\w+)\}", path)
    concrete = path
    for p in params:
        concrete = concrete.replace(f"{{{p}}}", own_resource(victim, p, path))
    before = victim.snapshot()

    if scope == "operator":
        # Signed by the operator, not a key: any key, even an admin's, is refused
        # (the signature's own checks: tests/test_operator_cli.py).
        r = send(method, concrete, victim.org.key, body)
        assert r.status_code == 401, f"{op_id} with an admin key: {r.status_code} {r.text}"
        return

    if scope == "none":
        # Needs no scope: any key, even a foreign one, gets the same public answer.
        for key in (victim.lacking["admin"], intruder.key):
            r = send(method, concrete, key, body)
            assert r.status_code == 200, f"{op_id}: {r.status_code} {r.text}"
            assert not victim.secrets() & set(re.findall(r"[\w-]+", r.text)), f"{op_id} leaks org A"
        return

    # 1. Same org, live key, without the operation's scope: 403 and nothing done.
    r = send(method, concrete, victim.lacking[scope], body)
    assert r.status_code == 403, f"{op_id} with a key lacking {scope!r}: {r.status_code} {r.text}"
    assert r.json()["error"]["code"] == "FORBIDDEN", r.text
    assert victim.snapshot() == before, f"{op_id}: a key without {scope!r} changed org A"

    # 2. Another org's admin (every scope) on org A's resources.
    r = send(method, concrete, intruder.key, body)
    text = r.text
    if params:
        assert r.status_code == 404, f"{op_id} by another org on org A's {params}: {r.status_code} {text}"
        assert r.json()["error"]["code"] == "NOT_FOUND", text
    else:
        assert 200 <= r.status_code < 300, f"{op_id} by another org: {r.status_code} {text}"
    leaked = {s for s in victim.secrets() if s in text}
    assert not leaked, f"{op_id} answered another org with org A's {leaked}"
    assert victim.snapshot() == before, f"{op_id} by another org changed org A"
    if path == "/mcp":
        # The tools read only the caller's org.
        tool = send("POST", "/mcp", intruder.key, {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "list_interactions", "arguments": {"actor": victim.marker}}})
        assert tool.status_code == 200, tool.text
        assert not {s for s in victim.secrets() if s in tool.text}, tool.text

    # 3. The owner with the scope succeeds: the body is valid and the resource exists.
    r = send(method, concrete, victim.org.key, body)
    assert 200 <= r.status_code < 300, f"{op_id} by org A's admin: {r.status_code} {r.text}"
