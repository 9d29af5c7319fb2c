"""Export: `GET /v1/interactions/export` streams NDJSON in the listing's
order (newest or oldest first), with the listing's filters, resumable after
the last id seen, and ends with one control line."""

import concurrent.futures
import json
import random
import uuid

import pytest
import requests

from conftest import BASE, FLOOR_S, Keys, call, new_org, post_json, random_ip, scoped_key

ROWS = 10_000


def org_keys(name: str) -> Keys:
    org = new_org(name)
    return Keys(org, scoped_key(org, "ingest"), scoped_key(org, "read"), org.key)


@pytest.fixture(scope="module")
def big() -> Keys:
    """An org with 10,000 interactions: occurred_at spread over a day with
    many ties (so the order is by time, then id, not by arrival), two actors."""
    keys = org_keys("Export org")
    rng = random.Random(17)

    def one(n: int) -> None:
        items = [{"type": "chat.turn", "actor": "a" if (n + i) % 3 else "b",
                  "occurred_at": f"2026-02-01T{rng.randrange(24):02}:{rng.randrange(60):02}:{rng.randrange(6):02}Z",
                  "content": f"row {n + i} " + "x" * rng.randrange(200), "metadata": {"n": n + i}}
                 for i in range(100)]
        r = post_json("/v1/interactions/batch", keys.ingest, {"interactions": items})
        assert r.status_code == 201, r.text

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(0, ROWS, 100)))
    return keys


def listing(key: str, query: str = "") -> list[dict]:
    out, cursor = [], None
    while True:
        r, _ = call("GET", f"/v1/interactions?limit=200{query}" + (f"&cursor={cursor}" if cursor else ""), key=key)
        assert r.status_code == 200, r.text
        out += r.json()["interactions"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return out


def export(key: str, query: str = "") -> tuple[list[dict], dict, requests.Response]:
    """The rows and the final control line of one export, read as a stream."""
    r = requests.get(f"{BASE}/v1/interactions/export{query}", stream=True, timeout=120,
                     headers={"Authorization": f"Bearer {key}", "CF-Connecting-IP": random_ip()})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in r.iter_lines() if line]
    assert lines and "export" in lines[-1], "no final control line"
    assert all("export" not in line for line in lines[:-1])
    return lines[:-1], lines[-1]["export"], r


@pytest.mark.claim("threat.export-bounded")
def test_export_of_10000_equals_the_listing_in_both_orders(big):
    expected = listing(big.read)
    assert len(expected) == ROWS
    rows, end, _ = export(big.read)
    assert rows == expected
    assert end == {"complete": True, "count": ROWS, "last_id": expected[-1]["id"]}
    rows, end, _ = export(big.read, "?order=asc")
    assert rows == list(reversed(expected))
    assert end["complete"] is True and end["count"] == ROWS


def test_export_resumes_after_the_last_id_seen(big):
    expected = listing(big.read, "&actor=b")
    cut = len(expected) // 3
    rows, end, _ = export(big.read, f"?actor=b&after={expected[cut - 1]['id']}")
    assert rows == expected[cut:]
    assert end["count"] == len(expected) - cut
    asc = list(reversed(expected))
    rows, _, _ = export(big.read, f"?actor=b&order=asc&after={asc[9]['id']}")
    assert rows == asc[10:]


def test_export_takes_the_listing_filters(big):
    query = "&actor=a&since=2026-02-01T06:00:00Z&until=2026-02-01T09:00:00Z"
    expected = listing(big.read, query)
    assert 0 < len(expected) < ROWS
    rows, end, _ = export(big.read, "?" + query[1:])
    assert rows == expected and end["count"] == len(expected)


def test_export_of_nothing_is_just_the_final_line():
    keys = org_keys("Export empty org")
    rows, end, _ = export(keys.read)
    assert rows == [] and end == {"complete": True, "count": 0, "last_id": None}
    # Filter values outside ASCII travel too.
    post_json("/v1/interactions", keys.ingest, {"type": "t", "actor": "zoë 😀"})
    rows, end, _ = export(keys.read, "?actor=zo%C3%AB%20%F0%9F%98%80")
    assert [r["actor"] for r in rows] == ["zoë 😀"] and end["count"] == 1


def test_export_query_errors_are_json_400(big):
    for query, field in [("?order=up", "order"), ("?after=int_nope", "after"), ("?limit=5", "limit")]:
        r, _ = call("GET", f"/v1/interactions/export{query}", key=big.read)
        assert r.status_code == 400, query
        assert r.headers["content-type"] == "application/json"
        assert r.json()["error"]["details"][0]["field"] == field, query
    # A well-formed id that names no interaction is no place to resume from.
    r, _ = call("GET", f"/v1/interactions/export?after=int_{'0' * 26}", key=big.read)
    assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"


@pytest.mark.claim("threat.export-bounded")
def test_export_needs_read_scope_waits_for_the_floor_and_stays_in_the_org(big):
    other = org_keys("Export org B")
    post_json("/v1/interactions", other.ingest, {"type": "t", "actor": "a"})
    rows, end, _ = export(other.read)
    assert len(rows) == 1 and end["count"] == 1
    # An id of another org is no place to resume from: not found, as an absent one.
    r, _ = call("GET", f"/v1/interactions/export?after={rows[0]['id']}", key=big.read)
    assert r.status_code == 404
    r, elapsed = call("GET", "/v1/interactions/export", key=big.ingest)
    assert r.status_code == 403 and elapsed >= FLOOR_S
    r, elapsed = call("GET", "/v1/interactions/export", key="ck_live_" + "0" * 26)
    assert r.status_code == 401 and elapsed >= FLOOR_S
    r, elapsed = call("GET", f"/v1/interactions/export?session=none-{uuid.uuid4().hex}", key=big.read)
    assert r.status_code == 200 and elapsed >= FLOOR_S
