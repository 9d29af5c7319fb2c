"""Interactions API: ingest (single and batch), read, list with cursors and
filters, erase; validation, body caps, idempotency, scopes."""

import concurrent.futures
import json
import uuid

import pytest

from conftest import call, new_org, org_d1, post_json, sql_str

SINGLE_CAP = 1024 * 1024
BATCH_CAP = 5 * 1024 * 1024


def uid() -> str:
    return uuid.uuid4().hex


def test_ingest_201_and_get(keys_a):
    r = post_json("/v1/interactions", keys_a.ingest, {"type": "chat.turn", "actor": "u1", "content": "hello",
                                                       "metadata": {"lang": "en"}, "session": "s1"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["id"].startswith("int_") and len(body["id"]) == 30
    assert body["type"] == "chat.turn" and body["content"] == "hello" and body["metadata"] == {"lang": "en"}
    assert body["received_at"].endswith("Z") and body["occurred_at"].endswith("Z")
    g, _ = call("GET", f"/v1/interactions/{body['id']}", key=keys_a.read)
    assert g.status_code == 200
    assert g.json() == body


@pytest.mark.claim("owasp.api3")
def test_validation_400_names_fields(keys_a):
    r = post_json("/v1/interactions", keys_a.ingest, {"type": "Not Valid", "occurred_at": "tomorrow", "org_id": "x"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "VALIDATION_FAILED"
    assert sorted(d["field"] for d in err["details"]) == ["occurred_at", "org_id", "type"]
    assert "org_id: unknown field" in err["message"] and "2 more problems" in err["message"]


def test_validation_400_future_occurred_at(keys_a):
    r = post_json("/v1/interactions", keys_a.ingest, {"type": "t", "occurred_at": "2999-01-01T00:00:00Z"})
    assert r.status_code == 400
    assert r.json()["error"]["details"][0]["field"] == "occurred_at"


@pytest.mark.parametrize("payload", [b"{not json", b"", b"[1,2", b"\xff\xfe"])
def test_broken_json_400(keys_a, payload):
    r = post_json("/v1/interactions", keys_a.ingest, payload)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "VALIDATION_FAILED"


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", None])
@pytest.mark.claim("owasp.api8", "posture.body-caps")
def test_media_type_415(keys_a, ctype):
    headers = {"Content-Type": ctype} if ctype else {}
    r, _ = call("POST", "/v1/interactions", key=keys_a.ingest, headers=headers, data=b'{"type":"t"}')
    if ctype is None:
        # requests sends no Content-Type for raw bytes
        assert "content-type" not in {k.lower() for k in r.request.headers}
    assert r.status_code == 415
    assert r.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


def test_charset_param_accepted(keys_a):
    r = post_json("/v1/interactions", keys_a.ingest, {"type": "t"}, {"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 201


def padded(size: int, item: dict | None = None) -> bytes:
    """A JSON interaction of exactly `size` bytes."""
    base = json.dumps({"type": "t", "content": ""}).encode()
    return json.dumps({"type": "t", "content": "x" * (size - len(base))}).encode()


def chunks(data: bytes, n: int = 64 * 1024):
    for i in range(0, len(data), n):
        yield data[i:i + n]


@pytest.mark.claim("owasp.api4", "posture.body-caps")
def test_body_413_single_content_length(keys_a):
    body = padded(SINGLE_CAP + 1)
    assert len(body) == SINGLE_CAP + 1
    r = post_json("/v1/interactions", keys_a.ingest, body)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    ok = post_json("/v1/interactions", keys_a.ingest, padded(SINGLE_CAP))
    assert ok.status_code == 201


@pytest.mark.claim("owasp.api4", "posture.body-caps", "threat.large-bodies")
def test_body_413_single_streamed(keys_a):
    r, _ = call("POST", "/v1/interactions", key=keys_a.ingest, headers={"Content-Type": "application/json"},
                data=chunks(padded(SINGLE_CAP + 1)))
    assert "content-length" not in {k.lower() for k in r.request.headers}
    assert r.status_code == 413
    ok, _ = call("POST", "/v1/interactions", key=keys_a.ingest, headers={"Content-Type": "application/json"},
                 data=chunks(padded(1000)))
    assert ok.status_code == 201


def batch_of(size: int) -> bytes:
    item_base = len(json.dumps({"type": "t", "content": ""}))
    n = 100
    wrapper = len(json.dumps({"interactions": []})) + (n - 1) * 2
    per = (size - wrapper) // n
    items = [{"type": "t", "content": "x" * (per - item_base)} for _ in range(n)]
    raw = json.dumps({"interactions": items}).encode()
    extra = size - len(raw)
    items[0]["content"] += "x" * extra
    raw = json.dumps({"interactions": items}).encode()
    assert len(raw) == size
    return raw


@pytest.mark.claim("posture.body-caps", "threat.large-bodies")
def test_body_413_batch_content_length(keys_a):
    r = post_json("/v1/interactions/batch", keys_a.ingest, batch_of(BATCH_CAP + 1))
    assert r.status_code == 413
    assert str(BATCH_CAP) in r.json()["error"]["message"]


@pytest.mark.claim("owasp.api4", "posture.body-caps")
def test_body_413_batch_streamed(keys_a):
    r, _ = call("POST", "/v1/interactions/batch", key=keys_a.ingest, headers={"Content-Type": "application/json"},
                data=chunks(batch_of(BATCH_CAP + 1)))
    assert r.status_code == 413


@pytest.mark.claim("posture.body-caps")
def test_batch_at_cap_201(keys_a):
    r = post_json("/v1/interactions/batch", keys_a.ingest, batch_of(BATCH_CAP))
    assert r.status_code == 201, r.text[:300]
    assert r.json()["created"] == 100


@pytest.mark.claim("owasp.api4", "posture.body-caps")
def test_batch_101_items_400(keys_a):
    r = post_json("/v1/interactions/batch", keys_a.ingest, {"interactions": [{"type": "t"}] * 101})
    assert r.status_code == 400
    assert "1-100 items" in r.json()["error"]["message"]


def test_batch_all_or_nothing(keys_a):
    actor = uid()
    items = [{"type": "t", "actor": actor} for _ in range(30)]
    items[17] = {"type": "BAD", "actor": actor}
    items[25] = {"type": "t", "actor": actor, "bogus": 1}
    r = post_json("/v1/interactions/batch", keys_a.ingest, {"interactions": items})
    assert r.status_code == 400
    details = r.json()["error"]["details"]
    assert [(d["index"], d["field"]) for d in details] == [(17, "type"), (25, "bogus")]
    assert "interactions[17].type" in r.json()["error"]["message"]
    lst, _ = call("GET", f"/v1/interactions?actor={actor}", key=keys_a.read)
    assert lst.json()["interactions"] == []


def test_batch_201_order_and_chunking(keys_a):
    actor = uid()
    items = [{"type": "t", "actor": actor, "content": str(i)} for i in range(100)]
    r = post_json("/v1/interactions/batch", keys_a.ingest, {"interactions": items})
    assert r.status_code == 201
    body = r.json()
    assert body["created"] == 100 and body["replayed"] == 0
    assert [x["content"] for x in body["interactions"]] == [str(i) for i in range(100)]
    rows = org_d1(keys_a.org.id, f"SELECT COUNT(*) AS n FROM interactions WHERE actor = {sql_str(actor)}")
    assert rows[0]["n"] == 100


def test_idempotency_header_replay_200(keys_a):
    k = uid()
    first = post_json("/v1/interactions", keys_a.ingest, {"type": "t", "content": "one"}, {"Idempotency-Key": k})
    again = post_json("/v1/interactions", keys_a.ingest, {"type": "t", "content": "one"}, {"Idempotency-Key": k})
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json() == first.json()
    assert org_d1(keys_a.org.id, f"SELECT COUNT(*) AS n FROM interactions WHERE idempotency_key = {sql_str(k)}")[0]["n"] == 1


def test_idempotency_body_key_and_header_conflict(keys_a):
    k = uid()
    a = post_json("/v1/interactions", keys_a.ingest, {"type": "t", "idempotency_key": k})
    b = post_json("/v1/interactions", keys_a.ingest, {"type": "t"}, {"Idempotency-Key": k})
    assert (a.status_code, b.status_code) == (201, 200)
    assert a.json()["id"] == b.json()["id"]
    c = post_json("/v1/interactions", keys_a.ingest, {"type": "t", "idempotency_key": k}, {"Idempotency-Key": k + "x"})
    assert c.status_code == 400


@pytest.mark.claim("posture.tenancy")
def test_idempotency_keys_are_per_org(keys_a, keys_b):
    k = uid()
    a = post_json("/v1/interactions", keys_a.ingest, {"type": "t"}, {"Idempotency-Key": k})
    b = post_json("/v1/interactions", keys_b.ingest, {"type": "t"}, {"Idempotency-Key": k})
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["id"] != b.json()["id"]


@pytest.mark.claim("owasp.api6", "threat.duplicate-writes")
def test_idempotency_batch_sent_3_times_concurrently(keys_a):
    run = uid()
    payload = {"interactions": [{"type": "t", "actor": run, "idempotency_key": f"{run}-{i}"} for i in range(50)]}
    with concurrent.futures.ThreadPoolExecutor(3) as ex:
        results = list(ex.map(lambda _: post_json("/v1/interactions/batch", keys_a.ingest, payload), range(3)))
    assert all(r.status_code in (200, 201) for r in results), [r.text[:200] for r in results]
    ids = [[x["id"] for x in r.json()["interactions"]] for r in results]
    assert ids[0] == ids[1] == ids[2]
    assert sum(r.json()["created"] for r in results) == 50
    rows = org_d1(keys_a.org.id,
                  f"SELECT idempotency_key, COUNT(*) AS n FROM interactions WHERE actor = {sql_str(run)} GROUP BY 1")
    assert len(rows) == 50 and all(row["n"] == 1 for row in rows)


def test_batch_partially_replayed(keys_a):
    run = uid()
    first = post_json("/v1/interactions/batch", keys_a.ingest,
                      {"interactions": [{"type": "t", "actor": run, "idempotency_key": f"{run}-0"}]})
    both = post_json("/v1/interactions/batch", keys_a.ingest,
                     {"interactions": [{"type": "t", "actor": run, "idempotency_key": f"{run}-0"},
                                       {"type": "t", "actor": run, "idempotency_key": f"{run}-1"}]})
    assert both.status_code == 201
    assert both.json()["created"] == 1 and both.json()["replayed"] == 1
    assert both.json()["interactions"][0]["id"] == first.json()["interactions"][0]["id"]


def test_list_newest_first_and_cursor_walk(keys_a):
    actor = uid()
    items = [{"type": "walk", "actor": actor, "occurred_at": f"2026-01-01T00:00:{i:02d}Z", "content": str(i)}
             for i in range(25)]
    assert post_json("/v1/interactions/batch", keys_a.ingest, {"interactions": items}).status_code == 201
    seen, cursor, pages = [], None, 0
    while True:
        q = f"/v1/interactions?actor={actor}&limit=7" + (f"&cursor={cursor}" if cursor else "")
        r, _ = call("GET", q, key=keys_a.read)
        assert r.status_code == 200, r.text
        page = r.json()
        seen += [x["content"] for x in page["interactions"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 4
    assert seen == [str(i) for i in reversed(range(25))]


@pytest.mark.claim("owasp.api4", "threat.error-amplification")
def test_validation_errors_are_bounded(keys_a):
    """A ~4 MB batch of unknown fields answers a small 400: at most 20 details
    and the count of every problem in the message; a huge field name is cut."""
    per_item = 3600
    items = [{"type": "t", **{f"k{j:05d}": 0 for j in range(per_item)}} for _ in range(100)]
    body = json.dumps({"interactions": items}).encode()
    assert 3_500_000 < len(body) < BATCH_CAP
    r = post_json("/v1/interactions/batch", keys_a.ingest, body)
    assert r.status_code == 400, r.text[:300]
    assert len(r.content) < 16 * 1024, len(r.content)
    err = r.json()["error"]
    assert err["code"] == "VALIDATION_FAILED"
    assert len(err["details"]) == 20
    assert err["details"][0] == {"index": 0, "field": "k00000", "message": "unknown field"}
    assert f"(and {100 * per_item - 1} more problems" in err["message"]

    name = "n" * 500_000
    r = post_json("/v1/interactions", keys_a.ingest, {"type": "t", name: 1})
    assert r.status_code == 400
    assert len(r.content) < 16 * 1024, len(r.content)
    assert r.json()["error"]["details"][0]["field"] == "n" * 64 + "…"


@pytest.mark.claim("owasp.api4", "threat.large-pages")
def test_list_pages_end_at_the_byte_budget():
    """Twelve ~900 KB interactions listed with limit=200 come in pages of at
    most 2 MiB, each with a cursor, and the walk returns every one exactly
    once, newest first."""
    org = new_org("Byte budget org")
    size = 900_000
    items = [{"type": "big", "occurred_at": f"2026-03-01T00:00:{i:02d}Z", "content": f"{i:02d}" + "x" * (size - 2)}
             for i in range(12)]
    for i in range(0, 12, 4):
        r = post_json("/v1/interactions/batch", org.key, {"interactions": items[i:i + 4]})
        assert r.status_code == 201, r.text[:300]
    seen, cursor, pages = [], None, []
    while True:
        r, _ = call("GET", "/v1/interactions?limit=200" + (f"&cursor={cursor}" if cursor else ""), key=org.key)
        assert r.status_code == 200, r.text[:300]
        page = r.json()
        pages.append((len(page["interactions"]), len(r.content)))
        seen += [x["content"][:2] for x in page["interactions"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(pages) < 20, pages
    assert pages[0][0] < 12, pages
    assert all(n >= 1 and nbytes < 2 * 1024 * 1024 + 64 * 1024 for n, nbytes in pages), pages
    assert seen == [f"{i:02d}" for i in reversed(range(12))]


def test_list_filters(keys_a):
    actor = uid()
    items = [{"type": "a" if i % 2 else "b", "actor": actor, "occurred_at": f"2026-02-01T00:00:{i:02d}Z"}
             for i in range(10)]
    post_json("/v1/interactions/batch", keys_a.ingest, {"interactions": items})
    get = lambda q: call("GET", f"/v1/interactions?actor={actor}&{q}", key=keys_a.read)[0].json()["interactions"]
    assert len(get("type=a")) == 5
    window = get("since=2026-02-01T00:00:03Z&until=2026-02-01T00:00:06Z")
    assert [x["occurred_at"] for x in window] == [f"2026-02-01T00:00:0{i}.000Z" for i in (5, 4, 3)]
    assert get("type=zzz") == []


@pytest.mark.parametrize("query,param", [("limit=0", "limit"), ("limit=201", "limit"), ("limit=x", "limit"),
                                         ("since=yesterday", "since"), ("org_id=org_x", "org_id"),
                                         ("cursor=abc", "cursor"), ("limit=1&limit=2", "limit")])
@pytest.mark.claim("owasp.api4")
def test_list_bad_query_400(keys_a, query, param):
    r, _ = call("GET", f"/v1/interactions?{query}", key=keys_a.read)
    assert r.status_code == 400
    assert f"'{param}'" in r.json()["error"]["message"]


@pytest.mark.claim("threat.cursor-forgery")
def test_cursor_tampered_or_other_filters_400(keys_a):
    actor = uid()
    post_json("/v1/interactions/batch", keys_a.ingest, {"interactions": [{"type": "t", "actor": actor}] * 3})
    page = call("GET", f"/v1/interactions?actor={actor}&limit=1", key=keys_a.read)[0].json()
    c = page["next_cursor"]
    assert c
    flipped = c[:-1] + ("A" if c[-1] != "A" else "B")
    assert call("GET", f"/v1/interactions?actor={actor}&limit=1&cursor={flipped}", key=keys_a.read)[0].status_code == 400
    assert call("GET", f"/v1/interactions?actor=other&limit=1&cursor={c}", key=keys_a.read)[0].status_code == 400
    assert call("GET", f"/v1/interactions?actor={actor}&limit=1&cursor={c}", key=keys_a.read)[0].status_code == 200


def test_get_404(keys_a):
    for ident in ["int_00000000000000000000000000", "nope", "int_" + "Z" * 26]:
        r, _ = call("GET", f"/v1/interactions/{ident}", key=keys_a.read)
        assert r.status_code == 404, ident
        assert r.json()["error"]["code"] == "NOT_FOUND"


@pytest.mark.claim("owasp.api6")
def test_delete_204_then_404_and_audited(keys_a):
    created = post_json("/v1/interactions", keys_a.ingest, {"type": "t"}).json()
    r, _ = call("DELETE", f"/v1/interactions/{created['id']}", key=keys_a.admin)
    assert r.status_code == 204 and r.content == b""
    assert call("GET", f"/v1/interactions/{created['id']}", key=keys_a.read)[0].status_code == 404
    assert call("DELETE", f"/v1/interactions/{created['id']}", key=keys_a.admin)[0].status_code == 404
    rows = org_d1(keys_a.org.id,
                  f"SELECT action, org_id, detail FROM audit_log WHERE request_id = {sql_str(r.headers['x-request-id'])}")
    assert rows[0]["action"] == "interaction.deleted" and rows[0]["org_id"] == keys_a.org.id
    assert created["id"] in rows[0]["detail"]


@pytest.mark.parametrize("method,path,keyname", [
    ("POST", "/v1/interactions", "read"),
    ("POST", "/v1/interactions/batch", "read"),
    ("GET", "/v1/interactions", "ingest"),
    ("GET", "/v1/interactions/int_00000000000000000000000000", "ingest"),
    ("DELETE", "/v1/interactions/int_00000000000000000000000000", "ingest"),
    ("DELETE", "/v1/interactions/int_00000000000000000000000000", "read"),
])
@pytest.mark.claim("owasp.api5")
def test_scope_403(keys_a, method, path, keyname):
    key = getattr(keys_a, keyname)
    r, _ = call(method, path, key=key, headers={"Content-Type": "application/json"}, data=b'{"type":"t"}')
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "FORBIDDEN"


@pytest.mark.claim("posture.auth-envelope")
def test_dead_key_gets_401_not_400(keys_a):
    """A request that is both invalid and unauthenticated is answered 401."""
    r = post_json("/v1/interactions", "ck_live_" + "0" * 26, b"{broken")
    assert r.status_code == 401


@pytest.mark.parametrize("raw", [b"k1\xe9", b"k1\xe8", b"k1\x85", b"two words"])
def test_idempotency_header_non_ascii_400(keys_a, raw):
    """Header bytes outside visible ASCII are refused: once decoded they could
    not be told apart, and two distinct keys would replay each other."""
    r, _ = call("POST", "/v1/interactions", key=keys_a.ingest,
                headers={"Content-Type": "application/json", "Idempotency-Key": raw}, data=b'{"type":"t"}')
    assert r.status_code == 400
    assert r.json()["error"]["details"][0]["field"] == "Idempotency-Key"
