"""Injected faults (test environment only).

- D1 failures: clean 503s with Retry-After, no partial batch stored (also when
  the batch spans several insert statements), and the client's retry with the
  same idempotency keys stores everything exactly once.
- A misrouted call (the front addresses another org's actor while the call
  still names the caller's org): that actor, bound to its own org, refuses it;
  the client sees the 500 envelope and nothing of either org is read or
  written. Without `TEST_FAULTS` the fault headers do nothing.
"""

import uuid

import pytest
import requests

from conftest import SHARDS, LocalServer, call, d1, new_org, org_d1, post_json, random_ip, sql_str

FAULT = {"x-interlog-fault": "d1"}
# Largest row JSON one insert statement takes (durable/src/interactions.rs
# JSON_CHUNK_BYTES): a batch of more than this many bytes needs several.
JSON_CHUNK_BYTES = 1024 * 1024


def stored(org_id: str, actor: str) -> int:
    """Interactions of `actor` stored on the org's shard."""
    return org_d1(org_id, f"SELECT COUNT(*) AS n FROM interactions WHERE actor = {sql_str(actor)}")[0]["n"]


@pytest.mark.claim("threat.duplicate-writes")
def test_fault_503_batch_nothing_partial_then_retry(keys_a):
    actor = uuid.uuid4().hex
    body = {"interactions": [{"type": "t", "actor": actor, "idempotency_key": f"{actor}-{i}"} for i in range(100)]}
    r = post_json("/v1/interactions/batch", keys_a.ingest, body, FAULT)
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "UNAVAILABLE"
    assert int(r.headers["retry-after"]) >= 1
    assert "interlog_injected_fault" not in r.text  # internal detail stays in the logs
    assert stored(keys_a.org.id, actor) == 0  # all-or-nothing: the insert ran, nothing kept
    ok = post_json("/v1/interactions/batch", keys_a.ingest, body)
    assert ok.status_code == 201 and ok.json()["created"] == 100
    again = post_json("/v1/interactions/batch", keys_a.ingest, body)
    assert again.status_code == 200 and again.json()["replayed"] == 100
    assert stored(keys_a.org.id, actor) == 100


def test_fault_503_single_then_retry(keys_a):
    actor = uuid.uuid4().hex
    headers = dict(FAULT, **{"Idempotency-Key": actor})
    r = post_json("/v1/interactions", keys_a.ingest, {"type": "t", "actor": actor}, headers)
    assert r.status_code == 503 and "retry-after" in r.headers
    assert stored(keys_a.org.id, actor) == 0
    assert post_json("/v1/interactions", keys_a.ingest, {"type": "t", "actor": actor}, {"Idempotency-Key": actor}).status_code == 201
    assert stored(keys_a.org.id, actor) == 1


def test_fault_503_batch_of_several_chunks_nothing_partial_then_retry():
    """100 items of 40 KiB content: about 4 MB of row JSON, so at least four
    insert statements of at most 1 MiB each (and under the 5 MiB body cap). An
    injected fault after all of them rolls every one back."""
    org = new_org("Faults chunks")  # its initial key has every scope
    actor = uuid.uuid4().hex
    content = "c" * (40 * 1024)
    body = {"interactions": [{"type": "t", "actor": actor, "content": content, "idempotency_key": f"{actor}-{i}"}
                             for i in range(100)]}
    size = sum(len(content) for _ in body["interactions"])
    assert size > 3 * JSON_CHUNK_BYTES  # several chunks, whatever the per-row overhead
    r = post_json("/v1/interactions/batch", org.key, body, FAULT)
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "UNAVAILABLE" and int(r.headers["retry-after"]) >= 1
    assert stored(org.id, actor) == 0  # no chunk kept
    ok = post_json("/v1/interactions/batch", org.key, body)
    assert ok.status_code == 201 and ok.json()["created"] == 100, ok.text[:300]
    again = post_json("/v1/interactions/batch", org.key, body)
    assert again.status_code == 200 and again.json()["replayed"] == 100
    rows = org_d1(org.id, f"SELECT COUNT(*) AS n, COUNT(DISTINCT idempotency_key) AS k, MIN(length(content)) AS lo, "
                          f"MAX(length(content)) AS hi FROM interactions WHERE actor = {sql_str(actor)}")
    assert rows == [{"n": 100, "k": 100, "lo": len(content), "hi": len(content)}]


# --- a misrouted call: another org's actor refuses it --------------------------

def misrouted_to(org_id: str) -> dict:
    return {"x-interlog-fault": "wrong-org", "x-interlog-fault-org": org_id}


def org_rows(org_id: str, marker: str) -> dict:
    """What the misrouted calls could have written for `org_id` (checkpoints
    and aggregated audit counts of the earlier, real requests may land at any
    time, so they are left out; the audit rows of the misrouted requests
    themselves are checked by request id)."""
    o = sql_str(org_id)
    rows = org_d1(org_id, f"SELECT (SELECT COUNT(*) FROM interactions WHERE org_id = {o}) AS interactions, "
                          f"(SELECT COUNT(*) FROM alerts WHERE org_id = {o}) AS alerts, "
                          f"(SELECT COUNT(*) FROM orgs WHERE id = {o} AND allowed_origins LIKE '%misroute%') AS origins")[0]
    rows["keys"] = d1(f"SELECT COUNT(*) AS n FROM api_keys WHERE org_id = {o}")[0]["n"]
    rows["marked"] = sum(d1(f"SELECT COUNT(*) AS n FROM interactions WHERE content = {sql_str(marker)}", db=shard)[0]["n"]
                         for shard in SHARDS)
    return rows


def assert_refused(r, *secrets_: str) -> None:
    assert r.status_code == 500, r.text
    err = r.json()["error"]
    assert (err["code"], err["message"]) == ("INTERNAL", "internal error"), err
    assert set(r.json()) == {"error"} and err["request_id"] == r.headers["x-request-id"]
    for s in secrets_:
        assert s not in r.text


def test_fault_misrouted_call_refused_by_the_other_orgs_actor():
    a, b = new_org("Misroute caller"), new_org("Misroute target")
    marker = uuid.uuid4().hex
    # B's actor serves B first, so it is bound to B for life.
    seen_b = call("GET", "/v1/org", key=b.key)[0]
    assert seen_b.status_code == 200 and seen_b.json()["id"] == b.id, seen_b.text
    assert call("GET", "/v1/org", key=a.key)[0].status_code == 200
    before = {a.id: org_rows(a.id, marker), b.id: org_rows(b.id, marker)}

    calls = [
        ("GET", "/v1/org", None),
        ("GET", "/v1/interactions", None),
        ("GET", "/v1/keys", None),
        ("POST", "/v1/interactions", {"type": "t", "content": marker}),
        ("POST", "/v1/keys", {"name": marker, "scopes": ["read"]}),
        ("PATCH", "/v1/org", {"allowed_origins": ["https://misroute.example.com"]}),
    ]
    ids = []
    for method, path, body in calls:
        h = dict(misrouted_to(b.id), **({"Content-Type": "application/json"} if body is not None else {}))
        r, _ = call(method, path, key=a.key, headers=h, json=body)
        assert_refused(r, b.id, a.id, "Misroute")
        ids.append(r.headers["x-request-id"])
    batch = post_json("/v1/interactions/batch", a.key, {"interactions": [{"type": "t", "content": marker}]},
                      misrouted_to(b.id))
    assert_refused(batch, b.id, a.id)
    ids.append(batch.headers["x-request-id"])

    # Nothing of either org was written: no rows, no audit entries for these
    # requests, no alert, no key, no setting.
    assert {a.id: org_rows(a.id, marker), b.id: org_rows(b.id, marker)} == before
    listed = ", ".join(sql_str(i) for i in ids)
    for db in ["DB", *SHARDS]:
        assert d1(f"SELECT COUNT(*) AS n FROM audit_log WHERE request_id IN ({listed})", db=db)[0]["n"] == 0, db
    # Both actors still serve their own org, unchanged.
    org_a, org_b = call("GET", "/v1/org", key=a.key)[0].json(), call("GET", "/v1/org", key=b.key)[0].json()
    assert org_a["id"] == a.id and org_b["id"] == b.id
    assert "https://misroute.example.com" not in org_a.get("allowed_origins", []) + org_b.get("allowed_origins", [])


def test_fault_misrouted_unknown_or_absent_target_is_ignored(keys_a):
    """Only a well-formed org id misroutes; anything else is no fault at all."""
    for h in ({"x-interlog-fault": "wrong-org"}, misrouted_to("not-an-org"), {"x-interlog-fault": "other"}):
        r, _ = call("GET", "/v1/org", key=keys_a.admin, headers=h)
        assert r.status_code == 200 and r.json()["id"] == keys_a.org.id, (h, r.text)


@pytest.mark.claim("owasp.api8", "threat.fault-switch")
def test_fault_headers_do_nothing_without_test_faults():
    """A server without TEST_FAULTS (as in production) ignores both faults."""
    server = LocalServer("faults-off").start()
    try:
        a = server.admin("create-org", "--name", "No faults A")
        b = server.admin("create-org", "--name", "No faults B")
        assert server.get("/v1/org", key=b["key"]).status_code == 200
        for h in (misrouted_to(b["org_id"]), FAULT):
            r = requests.post(server.url + "/v1/interactions", json={"type": "t"}, timeout=30,
                              headers=dict(h, **{"Authorization": f"Bearer {a['key']}",
                                                 "CF-Connecting-IP": random_ip()}))
            assert r.status_code == 201, (h, r.text)
            got = requests.get(server.url + "/v1/org", timeout=30,
                               headers=dict(h, **{"Authorization": f"Bearer {a['key']}",
                                                  "CF-Connecting-IP": random_ip()}))
            assert got.status_code == 200 and got.json()["id"] == a["org_id"], got.text
        rows = [row for shard in SHARDS
                for row in server.d1("SELECT org_id, COUNT(*) AS n FROM interactions GROUP BY org_id", db=shard)]
        assert rows == [{"org_id": a["org_id"], "n": 2}]
    finally:
        server.stop()
