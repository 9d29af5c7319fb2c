"""Injected D1 failures (test environment only): clean 503s with Retry-After,
no partial batch stored, and the client's retry with the same idempotency keys
stores everything exactly once."""

import uuid

from conftest import d1, post_json, sql_str

FAULT = {"x-interlog-fault": "d1"}


def stored(actor: str) -> int:
    return d1(f"SELECT COUNT(*) AS n FROM interactions WHERE actor = {sql_str(actor)}")[0]["n"]


def test_fault_503_batch_nothing_partial_then_retry(keys_a):
    actor = uuid.uuid4().hex
    body = {"interactions": [{"type": "t", "actor": actor, "idempotency_key": f"{actor}-{i}"} for i in range(100)]}
    r = post_json("/v1/interactions/batch", keys_a.ingest, body, FAULT)
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "UNAVAILABLE"
    assert int(r.headers["retry-after"]) >= 1
    assert "interlog_injected_fault" not in r.text  # internal detail stays in the logs
    assert stored(actor) == 0  # all-or-nothing: 10 insert statements ran, none kept
    ok = post_json("/v1/interactions/batch", keys_a.ingest, body)
    assert ok.status_code == 201 and ok.json()["created"] == 100
    again = post_json("/v1/interactions/batch", keys_a.ingest, body)
    assert again.status_code == 200 and again.json()["replayed"] == 100
    assert stored(actor) == 100


def test_fault_503_single_then_retry(keys_a):
    actor = uuid.uuid4().hex
    headers = dict(FAULT, **{"Idempotency-Key": actor})
    r = post_json("/v1/interactions", keys_a.ingest, {"type": "t", "actor": actor}, headers)
    assert r.status_code == 503 and "retry-after" in r.headers
    assert stored(actor) == 0
    assert post_json("/v1/interactions", keys_a.ingest, {"type": "t", "actor": actor}, {"Idempotency-Key": actor}).status_code == 201
    assert stored(actor) == 1
