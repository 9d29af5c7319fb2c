"""Property-based conformance: schemathesis drives the live server with cases
it generates from docs/openapi.yaml and checks every answer against the spec.

Per operation: the spec's examples, schemathesis' coverage cases (boundary
values, missing or invalid parameters and bodies, wrong media types, methods
the spec does not list) and MAX_EXAMPLES fuzzed cases (positive and negative),
all sent with a key that holds every scope (negative cases may drop it), of
an org of the operation's own.
Checks on every answer: no 5xx; the status code is documented; the content
type, body schema and headers are those the spec documents for that status;
an error envelope's `request_id` is the `x-request-id` header.

`GET /v1/health` has no inputs at all, so schemathesis can fuzz it once only;
it gets MAX_EXAMPLES more cases from `test_health_from_any_client`, whose
input is the client address (health has no L1 limit and no auth).

Each request comes from its own client address (`CF-Connecting-IP`, which the
local runtime passes through) so the per-IP limit (60 / 60 s) never trips.
Requests are sequential (about 10 a second; each key sends a few hundred, far
under the per-key limit of 1000 / 60 s). Generation is derandomized, so every run
sends the same cases. At the end the module prints, and checks, how many cases
ran per operation and phase, and the status codes they got.
"""

import collections
import ipaddress
import random
import tempfile
import time
from pathlib import Path

import hypothesis.strategies as st
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, assume, settings
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from conftest import BASE, ROOT, Org, new_org

SPEC = ROOT / "docs" / "openapi.yaml"
MAX_EXAMPLES = 200
OPERATIONS = {
    "GET /v1/health",
    "GET /v1/org",
    "PATCH /v1/org",
    "GET /v1/interactions",
    "POST /v1/interactions",
    "POST /v1/interactions/batch",
    "GET /v1/interactions/{id}",
    "DELETE /v1/interactions/{id}",
    "GET /v1/keys",
    "POST /v1/keys",
    "POST /v1/keys/{prefix}/revoke",
    "POST /v1/keys/{prefix}/rotate",
    "GET /v1/audit-log",
    "GET /v1/alerts",
    "POST /mcp",
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
health = schema.include(path="/v1/health", method="GET")

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


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    request_id_echoed,
]


@pytest.fixture(scope="module")
def org_for():
    """A fresh org per operation (its first key holds ingest, read and admin),
    so that fuzzing key revocation, rotation or org settings in one operation
    can never disturb the others."""
    orgs: dict[str, Org] = {}

    def get(label: str) -> Org:
        if label not in orgs:
            orgs[label] = new_org(f"schemathesis {label}")
        return orgs[label]

    return get


def run(case, headers: dict) -> None:
    global sent, started
    started = started or time.monotonic()
    phase = case.meta.phase.name.value if case.meta is not None else "unknown"
    sent += 1
    response = case.call(headers=headers, timeout=30)
    cases[case.operation.label][phase] += 1
    statuses[case.operation.label][response.status_code] += 1
    case.validate_response(response, checks=CHECKS, headers=headers)


@schema.parametrize()
@SETTINGS
def test_api_conforms_to_spec(case, org_for):
    key = org_for(case.operation.label).key
    run(case, {"Authorization": f"Bearer {key}", "CF-Connecting-IP": addresses.next()})


@health.parametrize()
@health.given(client=st.ip_addresses(v=4, network=ClientAddresses.NET))
@SETTINGS
def test_health_from_any_client(case, client):
    assume(str(client) not in addresses.used)
    run(case, {"CF-Connecting-IP": addresses.take(str(client))})


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
    short = {op: c["fuzzing"] for op, c in cases.items() if c["fuzzing"] < MAX_EXAMPLES}
    assert not short, f"fewer than {MAX_EXAMPLES} fuzzed cases: {short}"
