"""Property-based conformance: schemathesis drives the live server with cases
it generates from docs/openapi.yaml and checks every answer against the spec.

Per operation: the spec's examples, schemathesis' coverage cases (boundary
values, missing or invalid parameters and bodies, wrong media types, methods
the spec does not list) and MAX_EXAMPLES fuzzed cases (positive and negative)
sent with an all-scopes key (so every case reaches the handler), then the same
with SCOPE_EXAMPLES fuzzed cases per single-scope key (`ingest`, `read`,
`admin`: a key holding only that scope, so the 403 answers are checked too);
negative cases may drop the key; each (operation, key) has an org of its own.
Every authenticated case waits for the 80 ms floor, so the split keeps the
run near 8 minutes while every operation still gets MAX_EXAMPLES + 3 ×
SCOPE_EXAMPLES fuzzed cases.

Every check schemathesis offers runs on every answer (`ALL_CHECKS`, loaded
from its registry, so a check a newer version adds runs too): no 5xx; the
status code is documented; the content type, body schema and headers are
those the spec documents for that status; valid data is accepted
(`positive_data_acceptance`: 2xx, or 401/403/404/409/429) and invalid data
refused (`negative_data_rejection`); a missing required header is refused;
a method the spec does not list answers 405 with `Allow`
(`unsupported_method`, `allow_header_conformance`); a 2xx given with a key is
refused without it and with a wrong one (`ignored_auth`); plus our own: an
error envelope's `request_id` is the `x-request-id` header.
The stateful checks `use_after_free` and `ensure_resource_availability` need
a sequence of calls: they run in `test_stateful_workflows`, which follows the
links schemathesis infers from the spec (create an interaction → read, list,
delete it; create a key → revoke, rotate it), each scenario with the
all-scopes key of a fresh org (a single-scope key cannot both create and read
a resource, so no chain would form).

What is not covered, and why:
- `object_level_authorization` runs on every answer but only acts when
  schemathesis is given several identities to swap (its `wfc` auth
  configuration), which this module does not set up; reading another org's
  objects is tested directly instead (tests/test_tenant_isolation.py,
  tests/test_mcp.py::test_org_isolation, tests/test_keys.py).
- The MCP per-request headers (`MCP-Protocol-Version`, `Mcp-Method`,
  `Mcp-Name`) mirror the body, which OpenAPI parameters cannot state; the
  spec documents them under `x-interlog-request-headers`, so they are not
  generated here (tests/test_mcp.py tests them), and the 2026-07-28 form of
  a request is not described as a body without them.
- Rules the spec states in prose because JSON Schema cannot (two values
  compared, or a value compared with the current time) are kept by positive
  cases (`keep_prose_rules`): they are not exclusions of checks but of
  generated data that the spec itself calls invalid.

`GET /v1/health` has no inputs at all, so schemathesis can fuzz it once only;
it gets MAX_EXAMPLES more cases from `test_health_from_any_client`, whose
input is the client address (health has no L1 limit and no auth).

Each request comes from its own client address (`CF-Connecting-IP`, which the
local runtime passes through; the few requests a check re-sends for a case
come from the case's address) so the per-IP limit (60 / 60 s) never trips.
Requests are sequential (about 10 a second; each key sends a few hundred, far
under the per-key limit of 1000 / 60 s). Generation is derandomized, so every run
sends the same cases. At the end the module prints, and checks, how many cases
ran per operation and phase, and the status codes they got.
"""

import collections
import ipaddress
import random
import re
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import hypothesis.strategies as st
import pytest
import schemathesis
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.modes import GenerationMode
from hypothesis import HealthCheck, Phase, assume, settings
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis.checks import CHECKS, load_all_checks

from conftest import BASE, ROOT, Org, new_org, scoped_key

SPEC = ROOT / "docs" / "openapi.yaml"
MAX_EXAMPLES = 100
SCOPE_EXAMPLES = 10
SCOPES = ("ingest", "read", "admin")
STATEFUL_EXAMPLES = 40
OPERATIONS = {
    "GET /v1/health",
    "GET /v1/openapi.json",
    "GET /v1/org",
    "PATCH /v1/org",
    "GET /v1/interactions",
    "POST /v1/interactions",
    "POST /v1/interactions/batch",
    "GET /v1/interactions/{id}",
    "DELETE /v1/interactions/{id}",
    "GET /v1/interactions/export",
    "GET /v1/sessions/{session}",
    "POST /v1/erasures",
    "GET /v1/erasures/{id}",
    "GET /v1/keys",
    "POST /v1/keys",
    "POST /v1/keys/{prefix}/revoke",
    "POST /v1/keys/{prefix}/rotate",
    "GET /v1/audit-log",
    "GET /v1/alerts",
    "POST /v1/alerts/{id}/resolve",
    "GET /v1/webhooks",
    "POST /v1/webhooks",
    "DELETE /v1/webhooks/{id}",
    "POST /v1/webhooks/{id}/rotate-secret",
    "GET /v1/webhooks/{id}/deliveries",
    "POST /mcp",
    "POST /v1/operator/reconcile",
    "POST /v1/operator/move",
}
SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)

# Hypothesis' caches go to the temp dir, not into the work tree.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "interlog-hypothesis")

schema = schemathesis.openapi.from_path(SPEC)
schema.config.update(base_url=BASE)
# A body over an operation's cap is refused with 413 before it is read as
# JSON: for a fuzzed invalid body that is a rejection like 400. Only the
# operator calls' 1 KiB cap is within reach of the bodies schemathesis makes.
_rejection = schema.config.checks.negative_data_rejection
_rejection.expected_statuses = [*_rejection.expected_statuses, "413"]
health = schema.include(path="/v1/health", method="GET")



def instant(value):
    """Milliseconds since the epoch of an RFC 3339 value, truncated as the
    server does (None when it is not one)."""
    try:
        dt = datetime.fromisoformat(str(value).replace("z", "Z").replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    if dt.tzinfo is None:
        return None
    micros = (dt - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1)
    return int(micros / 1000) if micros < 0 else micros // 1000


DAY_MS = 86_400_000


def rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


PUBLIC_WEBHOOK_URL = re.compile(r"https://([a-z][a-z0-9]{0,20}\.){1,3}(com|org|net)(/[A-Za-z0-9._~-]{0,40}){0,4}")


def keep_prose_rules(case) -> None:
    """A positive case must also keep the rules docs/openapi.yaml states in
    prose, because JSON Schema cannot: they compare two values or a value
    with the current time. Applied to positive cases only (a negative case is
    refused either way), in place, before the case is sent:
    - `GET /v1/interactions`: `since` earlier than `until` (else `until` is
      dropped); a `cursor` is valid only as the server issued it (its MAC),
      so a generated one is dropped;
    - `occurred_at` of an interaction: from 1970 to 5 minutes ahead of now
      (else moved into that window); the `idempotency_key`s of one batch
      differ (else the later duplicates are left out);
    - `expires_at` of a new key: in the future (else moved a day or more
      ahead);
    - the `Idempotency-Key` header and the body's `idempotency_key`, when
      both are sent, are equal (else the body takes the header's);
    - a webhook `url` names a public host (else it is replaced by one)."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    now = int(time.time() * 1000)
    query = case.query if isinstance(case.query, dict) else None
    if query:
        since, until = instant(query.get("since")), instant(query.get("until"))
        if since is not None and until is not None and since >= until:
            del query["until"]
        query.pop("cursor", None)
    body = case.body if isinstance(case.body, dict) else None
    if body is None:
        return
    items = body.get("interactions") if isinstance(body.get("interactions"), list) else [body]
    seen = set()
    for item in items:
        if isinstance(item, dict):
            at = instant(item.get("occurred_at"))
            if at is not None and not 0 <= at <= now + 240_000:
                item["occurred_at"] = rfc3339(abs(at) % (now - DAY_MS))
            key = item.get("idempotency_key")
            if isinstance(key, str) and key in seen:
                del item["idempotency_key"]
            seen.add(key)
    expires = instant(body.get("expires_at"))
    if expires is not None and expires <= now + 3_600_000:
        body["expires_at"] = rfc3339(now + DAY_MS + abs(expires) % (3650 * DAY_MS))
    # A webhook `url` must name a public host (the SSRF policy, stated in
    # prose): a generated one that may not is replaced by one that does.
    if isinstance(body.get("url"), str) and not PUBLIC_WEBHOOK_URL.fullmatch(body["url"]):
        body["url"] = f"https://hooks{len(body['url'])}.example.com/in"
    header = next((v for k, v in (case.headers or {}).items() if k.lower() == "idempotency-key"), None)
    if header is not None and isinstance(body.get("idempotency_key"), str) and body["idempotency_key"] != header:
        body["idempotency_key"] = header


# cases[operation][phase], statuses[operation][status]
cases: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
statuses: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
started: float | None = None  # when the first case ran
sent = 0  # requests sent, each from a client address of its own


class ClientAddresses:
    """Hands out each address of 198.18.0.0/15 (benchmarking range) once."""

    NET = ipaddress.ip_network("198.18.0.0/15")

    def __init__(self) -> None:
        self.cursor = random.randrange(self.NET.num_addresses)
        self.used: set[str] = set()

    def take(self, address: str) -> str:
        if len(self.used) >= self.NET.num_addresses:
            raise RuntimeError("ran out of distinct client addresses")
        self.used.add(address)
        return address

    def next(self) -> str:
        while True:
            self.cursor = (self.cursor + 1) % self.NET.num_addresses
            address = str(self.NET[self.cursor])
            if address not in self.used:
                return self.take(address)


addresses = ClientAddresses()


def request_id_echoed(ctx, response, case):
    """An error envelope's `request_id` is the response's `x-request-id`."""
    if response.status_code >= 400 and response.content:
        error = response.json().get("error")
        if isinstance(error, dict) and "request_id" in error:  # not a JSON-RPC error (MCP)
            header_id = response.headers.get("x-request-id", [None])[0]
            assert error["request_id"] == header_id, "envelope request_id differs from x-request-id"


load_all_checks()
ALL_CHECKS = [*CHECKS.get_all(), request_id_echoed]
REQUIRED_CHECKS = {
    "not_a_server_error", "status_code_conformance", "content_type_conformance", "response_headers_conformance",
    "response_schema_conformance", "negative_data_rejection", "positive_data_acceptance", "missing_required_header",
    "unsupported_method", "allow_header_conformance", "use_after_free", "ensure_resource_availability",
    "ignored_auth", "object_level_authorization",
}


@pytest.fixture(scope="module")
def org_for():
    """A fresh org per operation and scope, with a key holding only that scope
    (`all`: the org's first key, which holds ingest, read and admin), so that
    fuzzing key revocation, rotation or org settings in one operation can never
    disturb the others."""
    orgs: dict[tuple[str, str], tuple[Org, str]] = {}

    def get(label: str, scope: str) -> str:
        if (label, scope) not in orgs:
            org = new_org(f"schemathesis {label} {scope}")
            orgs[label, scope] = (org, org.key if scope == "all" else scoped_key(org, scope))
        return orgs[label, scope][1]

    return get


def headers_mutated(case) -> bool:
    """Whether schemathesis generated this case's headers as invalid data."""
    components = getattr(case.meta, "components", None) or {}
    info = components.get(ParameterLocation.HEADER)
    return info is not None and info.mode == GenerationMode.NEGATIVE


def run(case, headers: dict) -> None:
    global sent, started
    started = started or time.monotonic()
    phase = case.meta.phase.name.value if case.meta is not None else "unknown"
    sent += 1
    # The client address goes into the case itself, so that the requests some
    # checks re-send (`ignored_auth` without or with a wrong key,
    # `unsupported_method`) come from it too, not all from the loopback address.
    case.headers = {**(case.headers or {}), "CF-Connecting-IP": headers["CF-Connecting-IP"]}
    keep_prose_rules(case)
    if headers_mutated(case):
        # A negative case that mutates the headers may have dropped the
        # required Authorization on purpose: adding the key back would turn
        # it into a valid request and `negative_data_rejection` would (rightly)
        # see an invalid one accepted.
        headers = {k: v for k, v in headers.items() if k != "Authorization"}
    response = case.call(headers=headers, timeout=30)
    cases[case.operation.label][phase] += 1
    statuses[case.operation.label][response.status_code] += 1
    case.validate_response(response, checks=ALL_CHECKS, headers=headers)


def test_every_check_schemathesis_offers_runs():
    names = {c.__name__ for c in ALL_CHECKS}
    assert REQUIRED_CHECKS <= names, f"checks not run: {sorted(REQUIRED_CHECKS - names)}"


@schema.parametrize()
@SETTINGS
@pytest.mark.claim("owasp.api3", "owasp.api9", "posture.transport")
def test_api_conforms_to_spec(case, org_for):
    key = org_for(case.operation.label, "all")
    run(case, {"Authorization": f"Bearer {key}", "CF-Connecting-IP": addresses.next()})


@pytest.mark.parametrize("scope", SCOPES)
@schema.parametrize()
@settings(SETTINGS, max_examples=SCOPE_EXAMPLES)
def test_api_conforms_to_spec_with_each_scope(case, scope, org_for):
    key = org_for(case.operation.label, scope)
    run(case, {"Authorization": f"Bearer {key}", "CF-Connecting-IP": addresses.next()})


@health.parametrize()
@health.given(client=st.ip_addresses(v=4, network=ClientAddresses.NET))
@SETTINGS
def test_health_from_any_client(case, client):
    assume(str(client) not in addresses.used)
    run(case, {"CF-Connecting-IP": addresses.take(str(client))})


class Workflows(schema.as_state_machine()):
    """Chains of calls along the inferred links, each scenario with the
    all-scopes key of an org of its own; every step from a fresh client
    address."""

    key: str | None = None

    def get_call_kwargs(self, case):
        global sent
        sent += 1
        return {"headers": {"Authorization": f"Bearer {Workflows.key}",
                            "CF-Connecting-IP": case.headers["CF-Connecting-IP"]}, "timeout": 30}

    def setup(self):
        super().setup()
        # A fresh org per scenario: each one starts from the same server
        # state, so replaying a scenario replays its answers too.
        Workflows.key = new_org("schemathesis workflow").key

    def before_call(self, case):
        super().before_call(case)
        case.headers = {**(case.headers or {}), "CF-Connecting-IP": addresses.next()}
        keep_prose_rules(case)

    def after_call(self, response, case):
        super().after_call(response, case)
        steps[case.operation.label] += 1
        statuses[case.operation.label][response.status_code] += 1

    def validate_response(self, response, case, additional_checks=None, **kwargs):
        case.validate_response(response, checks=ALL_CHECKS, headers=kwargs.get("headers"),
                               recorder=self.recorder)


steps: collections.Counter = collections.Counter()


def test_stateful_workflows():
    Workflows.run(settings=settings(max_examples=STATEFUL_EXAMPLES, derandomize=True, database=None,
                                    deadline=None, stateful_step_count=6,
                                    suppress_health_check=list(HealthCheck)))
    assert steps, "no stateful step ran"


def test_every_operation_ran_enough_cases(capsys):
    """Runs after the cases above: prints and checks the counts."""
    if not cases:
        pytest.skip("the schemathesis cases were not selected")
    elapsed = time.monotonic() - (started or time.monotonic())
    total = sum(sum(c.values()) for c in cases.values())
    lines = [f"schemathesis {schemathesis.__version__}: {total} cases in {elapsed:.0f} s "
             f"(max_examples={MAX_EXAMPLES}, derandomized), {sent} requests from {len(addresses.used)} "
             f"distinct client addresses"]
    for op in sorted(cases):
        phases = ", ".join(f"{p} {n}" for p, n in sorted(cases[op].items()))
        codes = ", ".join(f"{s}: {n}" for s, n in sorted(statuses[op].items()))
        lines.append(f"  {op:30} {sum(cases[op].values()):4} cases ({phases}); statuses {{{codes}}}")
    with capsys.disabled():  # shown even under `pytest -q`
        print("\n" + "\n".join(lines))
    assert set(cases) <= OPERATIONS
    assert {result.ok().label for result in schema.get_all_operations()} == OPERATIONS
    assert len(addresses.used) == sent, "a client address was used twice"
    # MAX_EXAMPLES fuzzed cases with the all-scopes key plus SCOPE_EXAMPLES per
    # single-scope key; health has no input but the client address, fuzzed
    # MAX_EXAMPLES times by test_health_from_any_client.
    per_op = MAX_EXAMPLES + SCOPE_EXAMPLES * len(SCOPES)
    # The spec itself has no input at all (one case is all there is).
    need = {op: MAX_EXAMPLES if op == "GET /v1/health" else per_op for op in cases}
    need.update({op: 1 for op in cases if op == "GET /v1/openapi.json"})
    short = {op: c["fuzzing"] for op, c in cases.items() if c["fuzzing"] < need[op]}
    assert not short, f"fewer than {MAX_EXAMPLES} fuzzed cases: {short}"
