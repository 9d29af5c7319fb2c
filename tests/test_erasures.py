"""Erasure by actor: `POST /v1/erasures` starts a job that the org actor's
alarm runs in bounded chunks; `GET /v1/erasures/{id}` shows its progress.
Admin only, audited at start and end, idempotent per actor."""

import concurrent.futures
import uuid

import pytest

from conftest import Keys, call, new_org, post_json, scoped_key, wait_until


def org_keys(name: str) -> Keys:
    org = new_org(name)
    return Keys(org, scoped_key(org, "ingest"), scoped_key(org, "read"), org.key)


def ingest_batches(keys: Keys, actor: str, total: int, session: str | None = None) -> None:
    """`total` interactions of `actor`, 100 a batch, a few batches at a time
    (each call from its own client address, so L1 never couples them)."""
    def one(n: int) -> None:
        items = [{"type": "chat.turn", "actor": actor, "content": f"{actor} {n}-{i}", "session": session}
                 for i in range(min(100, total - n))]
        r = post_json("/v1/interactions/batch", keys.ingest, {"interactions": items})
        assert r.status_code == 201, r.text

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(0, total, 100)))


def count(keys: Keys, actor: str) -> int:
    """Rows of `actor`, counted through the listing (every page)."""
    n, cursor = 0, None
    while True:
        q = f"/v1/interactions?actor={actor}&limit=200" + (f"&cursor={cursor}" if cursor else "")
        r, _ = call("GET", q, key=keys.read)
        assert r.status_code == 200, r.text
        n += len(r.json()["interactions"])
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return n


def start(keys: Keys, actor: str, key: str | None = None):
    return post_json("/v1/erasures", key or keys.admin, {"actor": actor})


def job(keys: Keys, job_id: str) -> dict:
    r, _ = call("GET", f"/v1/erasures/{job_id}", key=keys.admin)
    assert r.status_code == 200, r.text
    return r.json()


def audit(keys: Keys, action: str) -> list[dict]:
    r, _ = call("GET", f"/v1/audit-log?action={action}", key=keys.admin)
    assert r.status_code == 200, r.text
    return r.json()["entries"]


@pytest.mark.claim("threat.erasure-bounded")
def test_erasure_of_12000_rows_completes_through_the_alarm_and_spares_other_actors():
    keys = org_keys("Erasure org")
    x, y = f"user-x-{uuid.uuid4().hex[:6]}", f"user-y-{uuid.uuid4().hex[:6]}"
    ingest_batches(keys, x, 12_000)
    ingest_batches(keys, y, 700)
    assert count(keys, x) == 12_000
    usage_before = call("GET", "/v1/org", key=keys.admin)[0].json()["usage"]

    r = start(keys, x)
    assert r.status_code == 202, r.text
    started = r.json()
    assert set(started) == {"id", "actor", "state", "deleted", "started_at", "finished_at"}
    assert started["id"].startswith("era_") and started["actor"] == x
    assert started["state"] == "running" and started["finished_at"] is None

    # An interaction of X ingested while the job runs is erased by it too.
    late = post_json("/v1/interactions", keys.ingest, {"type": "chat.turn", "actor": x, "content": "late"})
    assert late.status_code == 201, late.text
    progress = []

    def done():
        j = job(keys, started["id"])
        progress.append(j["deleted"])
        return j if j["state"] == "done" else None

    finished = wait_until(done, 240, "the erasure to finish", every_s=0.5)
    # Seen in bounded steps: the count only grows, and never past what was there.
    assert progress == sorted(progress)
    # The late row was stored before the job finished, so the rule erases it.
    assert late.json()["received_at"] < finished["finished_at"]
    assert finished["deleted"] == 12_001
    assert count(keys, x) == 0
    g, _ = call("GET", f"/v1/interactions/{late.json()['id']}", key=keys.read)
    assert g.status_code == 404
    assert count(keys, y) == 700
    # The usage the triggers keep gave the room back.
    usage_after = call("GET", "/v1/org", key=keys.admin)[0].json()["usage"]
    assert usage_after["rows"] == usage_before["rows"] - 12_000

    # Audited at start and at the end, naming the job.
    started_rows = [e for e in audit(keys, "erasure.started") if e["detail"]["erasure_id"] == started["id"]]
    ended_rows = [e for e in audit(keys, "erasure.completed") if e["detail"]["erasure_id"] == started["id"]]
    assert len(started_rows) == 1 and len(ended_rows) == 1
    assert ended_rows[0]["detail"]["deleted"] == 12_001
    assert started_rows[0]["prefix"] == ended_rows[0]["prefix"] == keys.org.prefix


def test_erasure_start_is_idempotent_per_actor():
    keys = org_keys("Erasure idempotency org")
    actor = f"u-{uuid.uuid4().hex[:6]}"
    ingest_batches(keys, actor, 3_000)
    first = start(keys, actor)
    second = start(keys, actor)
    assert first.status_code == 202 and second.status_code == 202, second.text
    assert second.json()["id"] == first.json()["id"]
    assert second.headers.get("idempotent-replayed") == "true"
    assert "idempotent-replayed" not in first.headers
    wait_until(lambda: job(keys, first.json()["id"])["state"] == "done", 120, "the erasure to finish")
    assert len([e for e in audit(keys, "erasure.started") if e["detail"]["erasure_id"] == first.json()["id"]]) == 1
    # Once done, a new start is a new job (for rows stored after it).
    again = start(keys, actor)
    assert again.status_code == 202 and again.json()["id"] != first.json()["id"]
    empty = wait_until(lambda: (j := job(keys, again.json()["id"]))["state"] == "done" and j, 60, "the empty erasure")
    assert empty["deleted"] == 0


@pytest.mark.claim("threat.erasure-bounded")
def test_erasure_is_admin_only_and_org_scoped():
    keys = org_keys("Erasure authz org")
    other = org_keys("Erasure authz org B")
    for key in (keys.read, keys.ingest):
        assert start(keys, "someone", key=key).status_code == 403
    assert post_json("/v1/erasures", "ck_live_" + "0" * 26, {"actor": "x"}).status_code == 401
    r = start(keys, "someone")
    assert r.status_code == 202
    job_id = r.json()["id"]
    for key in (keys.read, keys.ingest):
        assert call("GET", f"/v1/erasures/{job_id}", key=key)[0].status_code == 403
    # Another org's admin cannot see it.
    assert call("GET", f"/v1/erasures/{job_id}", key=other.admin)[0].status_code == 404
    assert call("GET", "/v1/erasures/era_nope", key=keys.admin)[0].status_code == 404


def test_erasure_request_validation_400():
    keys = org_keys("Erasure validation org")
    for body, field in [({}, "actor"), ({"actor": ""}, "actor"), ({"actor": 5}, "actor"),
                        ({"actor": "x" * 257}, "actor"), ({"actor": "a", "org_id": "x"}, "org_id")]:
        r = post_json("/v1/erasures", keys.admin, body)
        assert r.status_code == 400, body
        assert r.json()["error"]["details"][0]["field"] == field
