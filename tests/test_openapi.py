"""docs/openapi.yaml and the running code, kept in step.

- The spec is valid OpenAPI 3.1, and consistent with itself: every response
  documents the common headers, every error uses the envelope, every
  authenticated operation documents 401/403/429/500/503 with their headers.
- Every operation in the spec is routed by the server (never the
  unknown-route 404, never 405): unauthenticated it is a 401 (where a path
  that cannot exist is a 404), authenticated it answers a documented status
  whose body and headers match the spec.
- Every method the spec does not list for a path answers 405 with an `Allow`
  header listing exactly the spec's methods.
- A rate-limited (429) answer is the documented one.
- The product brief's routes the spec does not (yet) describe are not served.

Known defects of the code are strict xfails: fixing one makes its test pass
and so fail the run until the marker goes.
"""

import copy
import hashlib
import json
import re
import subprocess
import sys
import tomllib
import uuid
from concurrent.futures import ThreadPoolExecutor

import jsonschema
import pytest
import schemathesis
import yaml
from openapi_spec_validator import OpenAPIV31SpecValidator

from conftest import ROOT, SHARDS, Org, call, d1, new_org, post_json, random_ip, resolve_ref

SPEC_PATH = ROOT / "docs" / "openapi.yaml"
SPEC = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
LOADED = schemathesis.openapi.from_path(SPEC_PATH)
HTTP_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]
# Syntactically valid path parameters that no org holds.
ABSENT = {"{id}": "int_" + "0" * 26, "{prefix}": "0000ZZZZ"}
COMMON_HEADERS = {"x-request-id", "cache-control", "x-content-type-options", "vary"}
SCOPES = {"ingest", "read", "admin"}
# Routes of the product brief ("HTTP API (v1)"). Those the spec lists must be
# served as the spec says; the others must not be served at all until the spec
# describes them (`{prefix}` stands for a syntactically valid key prefix).
PRODUCT_ROUTES = [
    ("GET", "/v1/health"),
    ("POST", "/v1/interactions"),
    ("POST", "/v1/interactions/batch"),
    ("GET", "/v1/interactions"),
    ("GET", "/v1/interactions/{id}"),
    ("DELETE", "/v1/interactions/{id}"),
    ("GET", "/v1/alerts"),
    ("GET", "/v1/audit-log"),
    ("POST", "/v1/keys"),
    ("GET", "/v1/keys"),
    ("POST", "/v1/keys/{prefix}/revoke"),
    ("POST", "/v1/keys/{prefix}/rotate"),
    ("GET", "/v1/org"),
    ("PATCH", "/v1/org"),
    ("POST", "/mcp"),
    ("GET", "/v1/interactions/export"),
    ("GET", "/v1/sessions/{session}"),
    ("POST", "/v1/erasures"),
    ("GET", "/v1/erasures/{id}"),
    ("POST", "/v1/alerts/{id}/resolve"),
    ("POST", "/v1/webhooks"),
    ("GET", "/v1/webhooks"),
    ("DELETE", "/v1/webhooks/{id}"),
    ("GET", "/v1/webhooks/{id}/deliveries"),
    ("GET", "/v1/openapi.json"),
]
# Org creation is the operator command's job (docs/architecture.md, "Why"):
# no path and method creates an org over HTTP, whatever the key's scopes.
ORG_CREATION = [
    ("POST", "/v1/orgs"),
    ("PUT", "/v1/orgs"),
    ("POST", "/v1/org"),
    ("PUT", "/v1/org"),
    ("POST", "/v1/organizations"),
    ("POST", "/v1/orgs/new"),
    ("POST", "/v1/org/create"),
    ("POST", "/v1/admin/orgs"),
    ("POST", "/v1/admin/org"),
    ("POST", "/admin/orgs"),
    ("POST", "/v1/tenants"),
    ("POST", "/v1/signup"),
]


def resolve(node):
    return resolve_ref(SPEC, node)


def operations():
    """(METHOD, path template, operation object) for every operation in the spec."""
    out = []
    for path, item in SPEC["paths"].items():
        for method, op in item.items():
            if method.upper() in HTTP_METHODS:
                out.append((method.upper(), path, op))
    return out


def spec_methods(path: str) -> set[str]:
    return {m.upper() for m in SPEC["paths"][path] if m.upper() in HTTP_METHODS}


def is_public(op) -> bool:
    return op.get("security", SPEC.get("security")) == []


def is_operator(op) -> bool:
    """The operator command's signed call: no API key, no scope."""
    return op.get("security") == [{"operatorSignature": []}]


def concrete(path: str, **values: str) -> str:
    """The path with its parameters filled in (by default with absent ones)."""
    for name, absent in ABSENT.items():
        path = path.replace(name, values.get(name.strip("{}"), absent))
    return path


def body_for(method: str, path: str):
    """A valid request body for the operation, or None."""
    tag = f"openapi.{uuid.uuid4().hex[:8]}"
    bodies = {
        ("POST", "/v1/interactions"): {"type": "openapi.check", "actor": tag},
        ("POST", "/v1/interactions/batch"): {"interactions": [{"type": "openapi.check", "actor": tag}]},
        ("PATCH", "/v1/org"): {"allowed_origins": ["https://openapi.example"]},
        ("POST", "/v1/keys"): {"name": tag, "scopes": ["read"]},
        ("POST", "/v1/keys/{prefix}/rotate"): {"grace_seconds": 0},
        ("POST", "/mcp"): {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        ("POST", "/v1/operator/reconcile"): {"org_id": "org_" + "0" * 26},
        ("POST", "/v1/operator/move"): {"org_id": "org_" + "0" * 26, "to": "DATA_2", "action": "step"},
        ("POST", "/v1/erasures"): {"actor": tag},
        ("POST", "/v1/webhooks"): {"url": f"https://hooks.example.com/{tag}", "events": ["alert.resolved"]},
    }
    if (method, path) in bodies:
        return bodies[(method, path)]
    assert "requestBody" not in SPEC["paths"][path][method.lower()], f"add a body for {method} {path}"
    return None


def send(method: str, path: str, key: str | None):
    """The operation called with a valid body (and `key`, if any)."""
    body = body_for(method, path)
    if body is None:
        return call(method, concrete(path), key=key)[0]
    return call(method, concrete(path), key=key, json=body)[0]


def check_headers(op, response) -> None:
    """The documented headers of the answered status are present and as specified."""
    doc = resolve(op["responses"][str(response.status_code)])
    for name, header in doc.get("headers", {}).items():
        header = resolve(header)
        value = response.headers.get(name)
        if header.get("required"):
            assert value is not None, f"{name} missing on {response.status_code}"
        if value is not None and "const" in header["schema"]:
            assert value == header["schema"]["const"], name


# (c) ------------------------------------------------------------------------


@pytest.mark.claim("owasp.api9")
def test_spec_is_valid_openapi_3_1():
    assert SPEC["openapi"].startswith("3.1.")
    errors = [str(e) for e in OpenAPIV31SpecValidator(copy.deepcopy(SPEC)).iter_errors()]
    assert not errors, "\n".join(errors[:5])
    LOADED.validate()  # schemathesis' own check against the OpenAPI 3.1 meta-schema
    labels = {result.ok().label for result in LOADED.get_all_operations()}
    assert labels == {f"{m} {p}" for m, p, _ in operations()}


def test_spec_documents_every_response_fully():
    ops = operations()
    assert ops
    for method, path, op in ops:
        where = f"{method} {path}"
        assert op.get("operationId"), where
        for status, response in op["responses"].items():
            response = resolve(response)
            headers = {k.lower() for k in response.get("headers", {})}
            assert COMMON_HEADERS <= headers, f"{where} {status}: {COMMON_HEADERS - headers}"
            if status.startswith(("4", "5")):
                schema = response["content"]["application/json"]["schema"]
                refs = {schema.get("$ref")} | {s.get("$ref") for s in schema.get("allOf", [])}
                # The error envelope; MCP's protocol errors are JSON-RPC error responses.
                envelopes = {"#/components/schemas/Error"}
                if path == "/mcp" and status in ("400", "404", "406"):
                    envelopes = {"#/components/schemas/JsonRpcErrorResponse"}
                assert refs & envelopes, f"{where} {status} must use {envelopes}"
        if is_public(op):
            assert op.get("x-required-scope") == "none", where
            continue
        if is_operator(op):
            # Signed, not keyed: an authenticated operation's refusals but 403
            # (there is no scope to lack).
            assert op.get("x-required-scope") == "operator", where
            for status in ("401", "413", "415", "429", "500", "503"):
                assert status in op["responses"], f"{where} must document {status}"
            continue
        (requirement,) = op["security"]
        (roles,) = requirement.values()
        assert len(roles) == 1 and roles[0] in SCOPES and op.get("x-required-scope") == roles[0], where
        for status, needs in {"401": {"www-authenticate"}, "403": set(), "429": {"retry-after", "ratelimit-policy",
                                                                                  "ratelimit"},
                              "500": set(), "503": {"retry-after"}}.items():
            assert status in op["responses"], f"{where} must document {status}"
            headers = {k.lower() for k in resolve(op["responses"][status]).get("headers", {})}
            assert needs <= headers, f"{where} {status}: {needs - headers}"
        if op.get("requestBody"):
            for status in ("413", "415"):
                assert status in op["responses"], f"{where} takes a body and must document {status}"


def test_error_codes_match_statuses():
    codes = resolve({"$ref": "#/components/schemas/Error"})["properties"]["error"]["properties"]["code"]["enum"]
    assert set(codes) == {"UNAUTHORIZED", "FORBIDDEN", "NOT_FOUND", "METHOD_NOT_ALLOWED", "VALIDATION_FAILED",
                          "CONFLICT", "PAYLOAD_TOO_LARGE", "UNSUPPORTED_MEDIA_TYPE", "RATE_LIMITED", "QUOTA_EXCEEDED", "INTERNAL",
                          "UNAVAILABLE"}


# (a) ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def routes_org() -> Org:
    """An org of its own: these calls change its settings and keys."""
    return new_org("OpenAPI routes")


@pytest.mark.parametrize("method,path", [(m, p) for m, p, _ in operations()], ids=lambda v: v)
@pytest.mark.claim("owasp.api9")
def test_documented_operation_is_routed(method, path, routes_org):
    op = SPEC["paths"][path][method.lower()]
    # A path below the spec's path cannot exist: it is the unknown-route 404.
    ghost, _ = call("GET", concrete(path) + "/no/such/route")
    assert ghost.status_code == 404 and ghost.json()["error"]["code"] == "NOT_FOUND"

    anonymous = send(method, path, None)
    if is_public(op):
        assert anonymous.status_code == 200
    else:
        # Routed and authenticated: neither the unknown-route 404 nor 405.
        assert anonymous.status_code == 401, anonymous.text
        assert anonymous.json()["error"]["code"] == "UNAUTHORIZED"
        check_headers(op, anonymous)

    authed = send(method, path, routes_org.key)
    assert authed.status_code != 405, authed.text
    assert str(authed.status_code) in op["responses"], f"{authed.status_code} undocumented: {authed.text}"
    if is_operator(op):
        # An API key is no credential here: the uniform 401 again.
        assert authed.status_code == 401, authed.text
        check_headers(op, authed)
        return
    documented_success = [s for s in op["responses"] if s.startswith("2")]
    if "{" in path or not documented_success:
        # An absent id or key prefix: the actor's 404, after authentication.
        assert authed.status_code == 404 and authed.json()["error"]["code"] == "NOT_FOUND", authed.text
    else:
        assert str(authed.status_code) in documented_success, authed.text
    check_headers(op, authed)
    LOADED[path][method].validate_response(authed)


def validated(method: str, path: str, response, status: int):
    assert response.status_code == status, response.text
    check_headers(SPEC["paths"][path][method.lower()], response)
    LOADED[path][method].validate_response(response)
    return response.json() if response.content else None


def test_id_routes_serve_a_stored_interaction(keys_a):
    made = post_json("/v1/interactions", keys_a.ingest, {"type": "openapi.check", "content": "kept in step"})
    made = validated("POST", "/v1/interactions", made, 201)
    path = concrete("/v1/interactions/{id}", id=made["id"])
    got = validated("GET", "/v1/interactions/{id}", call("GET", path, key=keys_a.read)[0], 200)
    assert got == made
    validated("DELETE", "/v1/interactions/{id}", call("DELETE", path, key=keys_a.admin)[0], 204)
    assert call("GET", path, key=keys_a.read)[0].status_code == 404


def test_key_routes_serve_a_real_key(routes_org):
    made = validated("POST", "/v1/keys", post_json("/v1/keys", routes_org.key, {"name": "openapi", "scopes": ["read"]}),
                     201)
    rotate = concrete("/v1/keys/{prefix}/rotate", prefix=made["prefix"])
    rotated = validated("POST", "/v1/keys/{prefix}/rotate", post_json(rotate, routes_org.key, {"grace_seconds": 60}),
                        201)
    assert rotated["previous"]["prefix"] == made["prefix"] and rotated["previous"]["replaced_by"] == rotated["prefix"]
    revoke = concrete("/v1/keys/{prefix}/revoke", prefix=rotated["prefix"])
    revoked = validated("POST", "/v1/keys/{prefix}/revoke", call("POST", revoke, key=routes_org.key)[0], 200)
    assert revoked["state"] == "revoked"
    listed = validated("GET", "/v1/keys", call("GET", "/v1/keys", key=routes_org.key)[0], 200)
    assert {made["prefix"], rotated["prefix"]} <= {k["prefix"] for k in listed["keys"]}
    audit = validated("GET", "/v1/audit-log", call("GET", "/v1/audit-log?limit=2", key=routes_org.key)[0], 200)
    assert len(audit["entries"]) == 2 and audit["next_cursor"] is not None
    validated("GET", "/v1/audit-log",
              call("GET", f"/v1/audit-log?limit=2&cursor={audit['next_cursor']}", key=routes_org.key)[0], 200)
    validated("GET", "/v1/alerts", call("GET", "/v1/alerts?state=open", key=routes_org.key)[0], 200)
    org = validated("PATCH", "/v1/org", call("PATCH", "/v1/org", key=routes_org.key, json={"name": "OpenAPI"})[0],
                    200)
    again = validated("GET", "/v1/org", call("GET", "/v1/org", key=routes_org.key)[0], 200)
    assert org["name"] == again["name"] == "OpenAPI" and org["updated_at"] == again["updated_at"]


# (b) ------------------------------------------------------------------------


def undocumented_methods():
    # OPTIONS is the CORS preflight, answered before routing (not an API operation).
    return [(m, p) for p in SPEC["paths"] for m in HTTP_METHODS if m != "OPTIONS" and m not in spec_methods(p)]


@pytest.mark.parametrize("method,path", undocumented_methods(), ids=lambda v: v)
@pytest.mark.claim("owasp.api8")
def test_undocumented_method_is_405_with_allow(method, path, org_a):
    r, _ = call(method, concrete(path), key=org_a.key)
    assert r.status_code == 405, r.text
    allow = {m.strip() for m in r.headers["allow"].split(",")}
    assert allow == spec_methods(path)
    assert re.match(r"^req_[0-9A-Z]{26}$", r.headers["x-request-id"])
    if method != "HEAD":
        assert r.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


@pytest.mark.parametrize("method", ["QUERY", "PROPFIND"])
def test_unregistered_method_is_405(method, org_a):
    r, _ = call(method, "/v1/org", key=org_a.key)
    assert r.status_code == 405, f"{method} /v1/org answered {r.status_code}: {r.text[:200]}"


# 429 ------------------------------------------------------------------------


def test_l1_rate_limited_answer_conforms():
    """Requests from one address until L1 refuses one (the local limiter counts
    in fixed one-minute windows, so at most two windows' worth)."""
    ip = random_ip()
    op = SPEC["paths"]["/v1/org"]["get"]
    with ThreadPoolExecutor(8) as ex:
        for _ in range(8):
            answers = list(ex.map(lambda _: call("GET", "/v1/org", ip=ip)[0], range(16)))
            limited = [r for r in answers if r.status_code == 429]
            if limited:
                break
    if not limited:
        pytest.fail("L1 never answered 429")
    check_headers(op, limited[0])
    LOADED["/v1/org"]["GET"].validate_response(limited[0])


# every route -----------------------------------------------------------------


@pytest.mark.parametrize("method,path", PRODUCT_ROUTES, ids=lambda v: v)
@pytest.mark.claim("owasp.api9")
def test_product_route_served_only_if_documented(method, path, routes_org):
    """A route of the product brief is either in the spec or not served. A
    documented one is asked without a key (anything but the unknown-route 404
    or a 405 shows it routed); an undocumented one with an admin key, so that
    a served route cannot hide behind the 401."""
    documented = path in SPEC["paths"] and method in spec_methods(path)
    url = concrete(path).replace("{session}", "absent-session")
    body = {} if method in ("POST", "PATCH", "PUT") else None
    if documented:
        r, _ = call(method, url, json=body)
        assert r.status_code not in (404, 405), f"documented {method} {path} answered {r.status_code}"
    else:
        r, _ = call(method, url, key=routes_org.key, json=body)
        assert r.status_code in (404, 405), (
            f"{method} {path} is served ({r.status_code}) but docs/openapi.yaml does not describe it")


def org_count(where: str = "1") -> int:
    """Org rows in the directory and on every data shard."""
    return sum(d1(f"SELECT COUNT(*) AS n FROM orgs WHERE {where}", db=db)[0]["n"] for db in ["DB", *SHARDS])


def test_no_org_creation_endpoint(routes_org):
    """API5: nothing creates an org over HTTP, with an admin key and a
    plausible body on every plausible path; the spec describes none either."""
    body = {"name": "created over HTTP " + uuid.uuid4().hex}
    before = org_count()
    for method, path in ORG_CREATION:
        assert not (path in SPEC["paths"] and method in spec_methods(path)), f"{method} {path} is documented"
        r, _ = call(method, path, key=routes_org.key, json=body)
        assert r.status_code in (404, 405), f"{method} {path} answered {r.status_code}: {r.text[:200]}"
        assert r.json()["error"]["code"] in ("NOT_FOUND", "METHOD_NOT_ALLOWED")
    assert org_count(f"name = '{body['name']}'") == 0
    assert org_count() == before  # no org row at all came from these requests


# The spec as served, its examples, the licence ------------------------------

# SHA-256 of the Apache License 2.0 text as published at
# https://www.apache.org/licenses/LICENSE-2.0.txt (unmodified).
APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"
# Plaintext keys in examples are shown as this placeholder, so that no
# key-shaped string is committed (the secret scanner's interlog-api-key rule).
KEY_PLACEHOLDER = "ck_live_…"


def test_served_spec_is_the_yaml():
    r, _ = call("GET", "/v1/openapi.json", headers={"Origin": "https://app.example.com"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.headers["cache-control"] == "public, max-age=300"
    assert r.headers["vary"] == "Origin" and re.match(r"^req_[0-9A-Z]{26}$", r.headers["x-request-id"])
    assert "access-control-allow-origin" not in r.headers  # no org, so no allowed origin
    assert r.json() == SPEC, "the Worker serves a stale spec: run scripts/openapi_json.py and rebuild"
    check_headers(SPEC["paths"]["/v1/openapi.json"]["get"], r)


def test_spec_json_is_generated_from_the_yaml():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "openapi_json.py"), "--check"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads((ROOT / "docs" / "openapi.json").read_text(encoding="utf-8")) == SPEC


def documented_bodies():
    """(where, schema, {example name: value}) for every response body in the spec."""
    for method, path, op in operations():
        for status, response in op["responses"].items():
            for media, content in resolve(response).get("content", {}).items():
                examples = {}
                if "example" in content:
                    examples["example"] = content["example"]
                for name, ex in content.get("examples", {}).items():
                    examples[name] = resolve(ex)["value"]
                yield f"{method} {path} {status} {media}", content["schema"], examples


def test_every_response_body_has_an_example():
    missing = [where for where, _, examples in documented_bodies() if not examples]
    assert not missing, "responses without an example:\n" + "\n".join(missing)


def unplaceholder(value):
    """The example with its plaintext-key placeholder replaced by a key-shaped value."""
    if isinstance(value, dict):
        return {k: unplaceholder(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unplaceholder(v) for v in value]
    if value == KEY_PLACEHOLDER:
        return "ck_live_" + "0" * 26
    return value


def test_every_example_matches_its_schema():
    checked, wrong = 0, []
    for where, schema, examples in documented_bodies():
        validator = jsonschema.Draft202012Validator({"components": SPEC["components"], **schema},
                                                    format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
        for name, value in examples.items():
            checked += 1
            errors = list(validator.iter_errors(unplaceholder(value)))
            if errors:
                wrong.append(f"{where} {name}: {errors[0].message[:200]}")
    assert checked and not wrong, "\n".join(wrong)


def error_examples(status: str) -> set[str]:
    """The messages of every documented example of `status` error bodies."""
    out = set()
    for where, _, examples in documented_bodies():
        if where.split()[2] == status:
            # The error envelope (not MCP's JSON-RPC error responses).
            out |= {v["error"]["message"] for v in examples.values() if "error" in v and "jsonrpc" not in v}
    return out


def test_error_examples_carry_the_servers_messages(org_a):
    """The fixed messages of the examples are the ones the server sends."""
    answers = {
        "401": call("GET", "/v1/org")[0],
        "404": call("GET", "/v1/interactions/" + ABSENT["{id}"], key=org_a.key)[0],
        "405": call("GET", "/v1/interactions/batch", key=org_a.key)[0],
        "415": call("POST", "/v1/interactions", key=org_a.key, data="{}", headers={"Content-Type": "text/plain"})[0],
    }
    for status, r in answers.items():
        assert str(r.status_code) == status, r.text
        assert error_examples(status) == {r.json()["error"]["message"]}, status


def test_one_licence_everywhere():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert hashlib.sha256(text.encode()).hexdigest() == APACHE_2_SHA256, "LICENSE is not the Apache 2.0 text"
    assert not [p.name for p in ROOT.glob("LICEN[CS]E*") if p.name != "LICENSE"], "one LICENSE file"
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text(encoding="utf-8"))
    package = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))
    assert cargo["workspace"]["package"]["license"] == package["license"] == "Apache-2.0"
    assert SPEC["info"]["license"]["identifier"] == "Apache-2.0"
    for member in cargo["workspace"]["members"]:
        manifest = tomllib.loads((ROOT / member / "Cargo.toml").read_text(encoding="utf-8"))
        assert manifest["package"].get("license") == {"workspace": True}, member
    assert cargo["package"]["license"] == {"workspace": True}
    fuzz = tomllib.loads((ROOT / "fuzz" / "Cargo.toml").read_text(encoding="utf-8"))
    assert fuzz["package"]["license"] == "Apache-2.0"
