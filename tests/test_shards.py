"""Org data on D1 shards: placement, isolation across shards, a failed shard,
and moving an org between shards.

- Placement: `create-org` without `--shard` puts the org on the open shard
  with the fewest orgs (counted in the directory just before); a closed shard
  takes no new org; `--shard` places explicitly. The org's data row (and its
  `org.created` audit row) is on its shard and on no other, read directly in
  both shard databases.
- Two orgs on different shards each read only their own rows, over the API
  and directly in both databases.
- A failed shard (the test fault switch) answers 503 with Retry-After for its
  orgs only; the other shard's orgs, called at the same time with the same
  headers, see no error.
- A move under concurrent ingest loses and duplicates nothing: the target
  holds exactly the rows acknowledged to the clients (by idempotency key and
  id) plus the rows from before, identical; the source holds no row of the
  org in any table; listing, usage, audit log and alerts match; the pause
  touched no other org.
- A move killed in the middle: the org works again once the pause lapses,
  and a second `move-org` ends the same as an uninterrupted move; a killed
  move rolled back leaves the org where it was and nothing on the target.
- Bad input to the move: the org's own shard, an unknown shard, a rollback
  with no move, an unknown org, a missing signature; nothing changes.
"""

import hashlib
import hmac
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import (ADMIN, BASE, PEPPER, PERSIST, ROOT, SHARDS, admin, call, d1, new_org, post_json,
                      scoped_key, shard_of, sql_str, wait_until)

assert SHARDS == ["DATA_1", "DATA_2"], SHARDS  # the local configuration
MOVE = "/v1/operator/move"
# Every table of a data shard and the column naming the org (core/src/shard.rs TABLES).
TABLES = {"orgs": "id", "interactions": "org_id", "rate_limits": "org_id", "audit_log": "org_id",
          "alerts": "org_id", "erasures": "org_id", "webhooks": "org_id", "webhook_outbox": "org_id",
          "webhook_deliveries": "org_id"}
ROW_COLUMNS = "id, type, occurred_at, received_at, actor, session, content, metadata, idempotency_key"
PAUSED_PHASES = {"clearing", "copying", "verifying"}
# The pause lease (core/src/moving.rs LEASE_MS) plus a paused call's wait
# (WAIT_MS) and a margin: by then a killed move no longer holds the org.
LAPSE_S = 15 + 2 + 8


# --- helpers ------------------------------------------------------------------

def rows_by_table(org_id: str, db: str) -> dict:
    """How many rows of `org_id` each table of shard `db` holds."""
    o = sql_str(org_id)
    cols = ", ".join(f"(SELECT COUNT(*) FROM {t} WHERE {c} = {o}) AS {t}" for t, c in TABLES.items())
    return d1(f"SELECT {cols}", db=db)[0]


def settled(counts: dict) -> dict:
    """Counts without rate_limits, whose checkpoints the actor writes when
    it likes."""
    return {t: n for t, n in counts.items() if t != "rate_limits"}


def no_rows() -> dict:
    return {t: 0 for t in TABLES}


def stored(org_id: str, db: str) -> list[dict]:
    return d1(f"SELECT {ROW_COLUMNS} FROM interactions WHERE org_id = {sql_str(org_id)} ORDER BY id", db=db)


def directory_move(org_id: str) -> list[dict]:
    return d1(f"SELECT org_id, from_shard, to_shard, phase FROM org_moves WHERE org_id = {sql_str(org_id)}")


def listed_ids(key: str) -> list[str]:
    """Every interaction id the API lists for the key's org (all pages)."""
    ids, cursor = [], None
    for _ in range(100):
        q = "/v1/interactions?limit=200" + (f"&cursor={cursor}" if cursor else "")
        r, _ = call("GET", q, key=key)
        assert r.status_code == 200, r.text
        page = r.json()
        ids += [x["id"] for x in page["interactions"]]
        cursor = page["next_cursor"]
        if not cursor:
            return ids
    raise AssertionError("more pages than expected")


def audit_entries(key: str) -> list[dict]:
    r, _ = call("GET", "/v1/audit-log?limit=200", key=key)
    assert r.status_code == 200, r.text
    return r.json()["entries"]


def audit_identity(e: dict) -> tuple:
    """An audit row as it must survive a move (ids are renumbered on the
    target; an aggregated failure's count may still grow)."""
    return (e["action"], e["at"], e["reason"], e["prefix"], e["ip"], e["request_id"],
            json.dumps(e["detail"], sort_keys=True))


def usage(key: str) -> dict:
    r, _ = call("GET", "/v1/org", key=key)
    assert r.status_code == 200, r.text
    return r.json()["usage"]


def ingest_rows(key: str, n: int, actor: str) -> list[str]:
    ids = []
    for start in range(0, n, 100):
        items = [{"type": "before", "actor": actor, "content": f"before {i}", "metadata": {"i": i}}
                 for i in range(start, min(n, start + 100))]
        r = post_json("/v1/interactions/batch", key, {"interactions": items})
        assert r.status_code == 201, r.text
        ids += [x["id"] for x in r.json()["interactions"]]
    return ids


def history(org) -> dict:
    """Rows that exist naturally besides interactions: a key revoked and then
    used (key.created, key.revoked, auth.failure and a dead_key_used alert)
    and a wrong secret on a live key's prefix (auth.failure wrong_hash)."""
    made = post_json("/v1/keys", org.key, {"name": "dead", "scopes": ["read"]})
    assert made.status_code == 201, made.text
    dead = made.json()
    assert call("POST", f"/v1/keys/{dead['prefix']}/revoke", key=org.key)[0].status_code == 200
    assert call("GET", "/v1/interactions", key=dead["key"])[0].status_code == 401
    wrong = org.key[:16] + ("0" if org.key[16] != "0" else "1") + org.key[17:]
    assert call("GET", "/v1/interactions", key=wrong)[0].status_code == 401

    def alert():
        r, _ = call("GET", "/v1/alerts?kind=dead_key_used", key=org.key)
        return [a for a in r.json()["alerts"] if a["prefix"] == dead["prefix"]]

    (found,) = wait_until(alert, 15, "the dead_key_used alert")
    wait_until(lambda: any(e["reason"] == "wrong_hash" for e in audit_entries(org.key)), 15, "the wrong_hash row")
    return {"alert": found["id"], "dead_key": dead["key"]}


class Ingest:
    """Threads that ingest continuously, each with its own key and unique
    idempotency keys; a 503 or 429 (or no answer) is retried with the same
    idempotency key until it is acknowledged. `acked` maps every
    acknowledged idempotency key to the id the server answered."""

    def __init__(self, org, run: str, threads: int = 3, deadline_s: float = 120):
        self.keys = [scoped_key(org, "ingest") for _ in range(threads)]
        self.run, self.deadline_s = run, deadline_s
        self.acked: dict[str, str] = {}
        self.statuses: Counter = Counter()
        self.unexpected: list = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.worker, args=(t,), daemon=True) for t in range(threads)]

    def __enter__(self) -> "Ingest":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=self.deadline_s + 30)

    def acked_count(self) -> int:
        with self.lock:
            return len(self.acked)

    def worker(self, t: int) -> None:
        i = 0
        while not self.stop.is_set():
            idem = f"{self.run}-{t}-{i}"
            i += 1
            if i % 4 == 0:  # a batch now and then: several rows in one write
                items = [{"type": "during", "actor": self.run, "content": f"{idem}-{j}",
                          "idempotency_key": f"{idem}-{j}"} for j in range(5)]
                self.until_acked(self.keys[t], "/v1/interactions/batch", {"interactions": items}, None,
                                 [x["idempotency_key"] for x in items])
            else:
                self.until_acked(self.keys[t], "/v1/interactions",
                                 {"type": "during", "actor": self.run, "content": idem}, idem, [idem])

    def until_acked(self, key: str, path: str, body: dict, idem: str | None, idems: list[str]) -> None:
        headers = {"Idempotency-Key": idem} if idem else {}
        end = time.monotonic() + self.deadline_s
        while time.monotonic() < end:
            try:
                r = post_json(path, key, body, headers)
            except requests.RequestException:
                with self.lock:
                    self.statuses["no answer"] += 1
                time.sleep(0.2)
                continue
            with self.lock:
                self.statuses[r.status_code] += 1
            if r.status_code in (200, 201):
                got = r.json()
                ids = [x["id"] for x in got["interactions"]] if "interactions" in got else [got["id"]]
                with self.lock:
                    for k, ident in zip(idems, ids, strict=True):
                        if k in self.acked and self.acked[k] != ident:
                            self.unexpected.append(("an idempotency key answered two ids", k, self.acked[k], ident))
                        self.acked[k] = ident
                return
            if r.status_code in (429, 503):
                err = r.json()["error"]
                if err["code"] not in ("UNAVAILABLE", "RATE_LIMITED") or int(r.headers.get("retry-after", 0)) < 1:
                    with self.lock:
                        self.unexpected.append((r.status_code, r.headers.get("retry-after"), r.text[:300]))
                time.sleep(0.3)
                continue
            with self.lock:
                self.unexpected.append((r.status_code, r.text[:300]))
            return
        with self.lock:
            self.unexpected.append(("never acknowledged", idems[0]))


def assert_moved(org, before: list[dict], ingest: Ingest, audit_before: list[dict], alert_id: str) -> None:
    """The org lives on DATA_2 with exactly the acknowledged rows plus the
    rows from before; DATA_1 holds nothing of it; the API agrees."""
    assert not ingest.unexpected, ingest.unexpected[:5]
    assert shard_of(org.id) == "DATA_2"
    assert directory_move(org.id) == [], "the move's directory row is gone once done"
    target = stored(org.id, "DATA_2")
    ids = [r["id"] for r in target]
    assert len(ids) == len(set(ids))
    by_idem = {r["idempotency_key"]: r["id"] for r in target if r["idempotency_key"] is not None}
    assert len(by_idem) == len([r for r in target if r["idempotency_key"] is not None]), "no key stored twice"
    missing = {k: v for k, v in ingest.acked.items() if by_idem.get(k) != v}
    assert not missing, f"acknowledged but not stored (or under another id): {list(missing.items())[:5]}"
    extra = set(by_idem) - set(ingest.acked)
    assert not extra, f"stored but never acknowledged: {sorted(extra)[:5]}"
    # The rows from before the move are there, column for column.
    old = {r["id"]: r for r in before}
    assert {r["id"]: r for r in target if r["id"] in old} == old
    assert set(ids) == set(old) | set(ingest.acked.values()), "nothing else on the target"
    assert rows_by_table(org.id, "DATA_1") == no_rows(), "the source holds no row of the org"
    # The API lists the same rows, and usage counts them.
    listed = listed_ids(org.key)
    assert len(listed) == len(set(listed)) and set(listed) == set(ids)
    used = usage(org.key)
    assert used["rows"] == len(ids)
    (row,) = d1(f"SELECT used_rows, used_bytes FROM orgs WHERE id = {sql_str(org.id)}", db="DATA_2")
    assert (row["used_rows"], row["used_bytes"]) == (used["rows"], used["bytes"])
    # The audit rows from before the move are still listed, with the move's own row.
    after = audit_entries(org.key)
    kept = {audit_identity(e) for e in after}
    lost = [e for e in audit_before if audit_identity(e) not in kept]
    assert not lost, lost
    moved = [e for e in after if e["action"] == "org.moved"]
    assert len(moved) == 1, [e["action"] for e in after]
    detail = moved[0]["detail"]
    assert (detail["from"], detail["to"], detail["actor"]) == ("DATA_1", "DATA_2", "operator"), moved[0]
    alerts = call("GET", "/v1/alerts", key=org.key)[0].json()["alerts"]
    assert alert_id in [a["id"] for a in alerts]


def admin_env() -> dict:
    return dict(os.environ, INTERLOG_PEPPER=PEPPER)


def move_report(out: dict) -> dict:
    return out.get("move", out)


def start_move(org_id: str, *extra: str) -> tuple[subprocess.Popen, threading.Event, list[str]]:
    """`move-org` as a subprocess; the event is set once a progress line
    (stderr) reports a phase before the switch (clearing, copying, verifying:
    a step works up to 1.5 s, so which one depends on the machine's speed)."""
    proc = subprocess.Popen([ADMIN, "move-org", "--org", org_id, "--to", "DATA_2", "--url", BASE, *extra,
                             "--persist-to", PERSIST], cwd=ROOT, env=admin_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    copying, lines = threading.Event(), []

    def read() -> None:
        for line in proc.stderr:
            lines.append(line)
            if any(phase in line for phase in ("clearing", "copying", "verifying")):
                copying.set()

    threading.Thread(target=read, daemon=True).start()
    return proc, copying, lines


def kill_while_copying(org_id: str) -> float:
    proc, copying, lines = start_move(org_id)
    try:
        assert copying.wait(60), ("no copying progress line", "".join(lines)[-2000:])
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    killed_at = time.monotonic()
    (move,) = directory_move(org_id)
    assert move["phase"] in PAUSED_PHASES, ("killed before the switch", move, "".join(lines)[-1000:])
    assert (move["from_shard"], move["to_shard"]) == ("DATA_1", "DATA_2")
    assert shard_of(org_id) == "DATA_1"
    shown = admin("show-org", "--org", org_id)
    assert shown["shard"] == "DATA_1" and shown["move"]["to"] == "DATA_2", shown
    return killed_at


def first_write_after(key: str, since: float) -> tuple[float, str, str]:
    """Seconds from `since` until a write of the org is acknowledged, with
    its idempotency key and id."""
    idem = "probe-" + uuid.uuid4().hex
    deadline = since + LAPSE_S
    while True:
        r = post_json("/v1/interactions", key, {"type": "probe", "content": idem}, {"Idempotency-Key": idem})
        if r.status_code in (200, 201):
            return time.monotonic() - since, idem, r.json()["id"]
        assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1, r.text
        assert time.monotonic() < deadline, f"the org still refuses writes {LAPSE_S} s after the kill"
        time.sleep(0.25)


def sign(body: bytes) -> str:
    """`x-interlog-operator`, made from the documented recipe."""
    t_ms = int(time.time() * 1000)
    k_op = hmac.new(PEPPER.encode(), b"interlog/derive/operator/v1", hashlib.sha256).digest()
    return f"t={t_ms},v1={hmac.new(k_op, f'{t_ms}.'.encode() + body, hashlib.sha256).hexdigest()}"


def move_call(body: dict, signed: bool = True):
    data = json.dumps(body, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json"}
    if signed:
        headers["x-interlog-operator"] = sign(data)
    return call("POST", MOVE, headers=headers, data=data)[0]


def run_move_cli(*args: str, timeout_s: float = 90) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([ADMIN, "move-org", *args, "--url", BASE, "--persist-to", PERSIST], cwd=ROOT,
                              env=admin_env(), capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else e.stderr or ""
        raise AssertionError(f"move-org {' '.join(args)} did not end in {timeout_s} s; its last progress "
                             f"lines: {err.splitlines()[-3:]}") from None


# --- placement ----------------------------------------------------------------

def shard_loads() -> dict:
    """Orgs per shard and open/closed, read from the directory."""
    counts = {r["shard"]: r["n"] for r in d1("SELECT shard, COUNT(*) AS n FROM orgs GROUP BY shard")}
    states = {r["name"]: r["state"] for r in d1("SELECT name, state FROM shards")}
    return {s: (states.get(s, "open"), counts.get(s, 0)) for s in SHARDS}


def expected_placement(loads: dict) -> str:
    return min((n, s) for s, (state, n) in loads.items() if state == "open")[1]


def test_create_org_without_shard_goes_to_the_open_shard_with_fewest_orgs():
    # Make the shards' counts differ, so the rule (not the tie-break) decides.
    new_org("Placement filler", shard="DATA_1")
    loads = shard_loads()
    listed = {s["name"]: s for s in admin("list-shards")["shards"]}
    assert {s: (listed[s]["state"], listed[s]["orgs"]) for s in SHARDS} == loads
    want = expected_placement(loads)
    org = new_org("Placed by the rule", shard=None)
    assert shard_of(org.id) == want, loads
    after = shard_loads()
    assert after[want][1] == loads[want][1] + 1
    # Placed again with the new counts: the rule follows them.
    second = new_org("Placed by the rule, second", shard=None)
    assert shard_of(second.id) == expected_placement(after), after


def test_a_closed_shard_takes_no_new_org_and_refuses_an_explicit_one():
    loads = shard_loads()
    fewest = expected_placement(loads)
    other = next(s for s in SHARDS if s != fewest)
    admin("set-shard", fewest, "--closed")
    try:
        org = new_org("Placed beside a closed shard", shard=None)
        assert shard_of(org.id) == other, "the closed shard had fewer orgs, yet took none"
        refused = subprocess.run([ADMIN, "create-org", "--name", "Refused", "--shard", fewest, "--persist-to",
                                  PERSIST], cwd=ROOT, env=admin_env(), capture_output=True, text=True, timeout=120)
        assert refused.returncode == 1 and fewest in refused.stderr, refused.stderr
        assert shard_loads()[fewest][1] == loads[fewest][1], "no org placed on the closed shard"
        audit = d1("SELECT detail FROM audit_log WHERE org_id IS NULL AND action = 'shard.state_set' "
                   "ORDER BY id DESC LIMIT 1")
        assert json.loads(audit[0]["detail"]) == {"shard": fewest, "state": "closed", "actor": "operator"}
    finally:
        admin("set-shard", fewest, "--open")
    assert shard_loads()[fewest][0] == "open"


@pytest.mark.parametrize("shard", SHARDS)
def test_create_org_with_shard_places_its_data_row_on_that_shard_only(shard):
    org = new_org(f"Explicitly on {shard}", shard=shard)
    assert shard_of(org.id) == shard
    other = next(s for s in SHARDS if s != shard)
    here, there = rows_by_table(org.id, shard), rows_by_table(org.id, other)
    assert there == no_rows()
    assert (here["orgs"], here["audit_log"]) == (1, 2), here  # org.created, key.created
    (row,) = d1(f"SELECT name, used_rows FROM orgs WHERE id = {sql_str(org.id)}", db=shard)
    assert row == {"name": f"Explicitly on {shard}", "used_rows": 0}
    assert sorted(e["action"] for e in audit_entries(org.key)) == ["key.created", "org.created"]
    shown = admin("show-org", "--org", org.id)
    assert shown["shard"] == shard and shown.get("move") is None


# --- isolation across shards ----------------------------------------------------

@pytest.mark.claim("shard.isolation-across")
def test_orgs_on_different_shards_each_read_only_their_own_rows():
    a, b = new_org("Shard reader A", shard="DATA_1"), new_org("Shard reader B", shard="DATA_2")
    assert (shard_of(a.id), shard_of(b.id)) == ("DATA_1", "DATA_2")
    actor = uuid.uuid4().hex  # the same actor name in both orgs
    a_ids = ingest_rows(a.key, 30, actor)
    b_ids = ingest_rows(b.key, 20, actor)
    for org, mine, theirs in ((a, a_ids, b_ids), (b, b_ids, a_ids)):
        assert sorted(listed_ids(org.key)) == sorted(mine)
        r, _ = call("GET", f"/v1/interactions?actor={actor}&limit=200", key=org.key)
        assert sorted(x["id"] for x in r.json()["interactions"]) == sorted(mine)
        for ident in theirs[:5]:
            assert call("GET", f"/v1/interactions/{ident}", key=org.key)[0].status_code == 404
        assert usage(org.key)["rows"] == len(mine)
    both = ", ".join(sql_str(o) for o in (a.id, b.id))
    for shard, org, mine in (("DATA_1", a, a_ids), ("DATA_2", b, b_ids)):
        rows = d1(f"SELECT org_id, id FROM interactions WHERE org_id IN ({both})", db=shard)
        assert {r["org_id"] for r in rows} == {org.id}, shard
        assert sorted(r["id"] for r in rows) == sorted(mine), shard
        owners = d1(f"SELECT DISTINCT org_id FROM audit_log WHERE org_id IN ({both})", db=shard)
        assert owners == [{"org_id": org.id}], shard
        assert [r["id"] for r in d1(f"SELECT id FROM orgs WHERE id IN ({both})", db=shard)] == [org.id]


# --- a failed shard ---------------------------------------------------------------

@pytest.mark.parametrize("failed", SHARDS)
@pytest.mark.claim("shard.isolated-failure")
def test_a_failed_shard_answers_503_for_its_orgs_only(failed):
    a, b = new_org("Fault shard 1", shard="DATA_1"), new_org("Fault shard 2", shard="DATA_2")
    by_shard = {"DATA_1": a, "DATA_2": b}
    down, up = by_shard[failed], by_shard[next(s for s in SHARDS if s != failed)]
    assert shard_of(down.id) == failed and shard_of(up.id) != failed
    marker = uuid.uuid4().hex
    seed = post_json("/v1/interactions", up.key, {"type": "seed", "content": marker})
    assert seed.status_code == 201
    fault = {"x-interlog-fault": "shard", "x-interlog-fault-shard": failed}
    ops = [
        ("POST", "/v1/interactions", {"type": "t", "actor": marker, "content": "during the fault"}, 201),
        ("POST", "/v1/interactions/batch", {"interactions": [{"type": "t", "actor": marker}] * 3}, 201),
        ("GET", "/v1/interactions?limit=5", None, 200),
        ("GET", f"/v1/interactions/{seed.json()['id']}", None, 200),
        ("GET", "/v1/org", None, 200),
    ]
    work = [(org, op) for _ in range(4) for op in ops for org in (down, up)]  # interleaved

    def one(item):
        org, (method, path, body, _) = item
        h = dict(fault, **({"Content-Type": "application/json"} if body is not None else {}))
        return call(method, path, key=org.key, headers=h, data=json.dumps(body) if body is not None else None)[0]

    with ThreadPoolExecutor(8) as ex:
        answers = list(ex.map(one, work))
    for (org, (method, path, _, ok)), r in zip(work, answers):
        if org is down:
            assert r.status_code == 503, (method, path, r.status_code, r.text)
            err = r.json()["error"]
            assert err["code"] == "UNAVAILABLE" and err["request_id"] == r.headers["x-request-id"]
            assert int(r.headers["retry-after"]) >= 1
        else:
            assert r.status_code == ok, (method, path, r.status_code, r.text)
    up_ids = {r["org_id"] for r in d1(f"SELECT org_id FROM interactions WHERE actor = {sql_str(marker)}",
                                      db=next(s for s in SHARDS if s != failed))}
    assert up_ids == {up.id}
    assert d1(f"SELECT COUNT(*) AS n FROM interactions WHERE actor = {sql_str(marker)}", db=failed)[0]["n"] == 0
    assert usage(up.key)["rows"] == 1 + 4 * (1 + 3)
    # Without the fault header the failed shard's org works again.
    assert post_json("/v1/interactions", down.key, {"type": "t", "actor": marker}).status_code == 201
    assert call("GET", "/v1/org", key=down.key)[0].status_code == 200
    assert usage(down.key)["rows"] == 1


# --- moving an org ----------------------------------------------------------------

@pytest.fixture()
def mover():
    """An org on DATA_1 with 3,000 rows (a move then takes several steps), key and alert history; a bystander org
    on DATA_2 that keeps writing during the move."""
    org = new_org("Moving org", shard="DATA_1")
    bystander = new_org("Bystander on the target", shard="DATA_2")
    ingest_rows(org.key, 3000, "before-" + uuid.uuid4().hex)
    made = history(org)
    return org, bystander, made


def bystander_writes(org, stop: threading.Event, statuses: Counter) -> None:
    while not stop.is_set():
        r = post_json("/v1/interactions", org.key, {"type": "bystander"})
        statuses[r.status_code] += 1
        time.sleep(0.1)


@pytest.mark.claim("shard.move-lossless")
def test_move_under_concurrent_ingest_loses_and_duplicates_nothing(mover):
    org, bystander, made = mover
    before = stored(org.id, "DATA_1")
    assert len(before) == 3000
    audit_before = audit_entries(org.key)
    stop, seen = threading.Event(), Counter()
    side = threading.Thread(target=bystander_writes, args=(bystander, stop, seen), daemon=True)
    side.start()
    t0 = time.monotonic()
    with Ingest(org, "move-" + uuid.uuid4().hex) as ingest:
        wait_until(lambda: ingest.acked_count() >= 30, 60, "writes acknowledged before the move")
        acked_at_start = ingest.acked_count()
        out = admin("move-org", "--org", org.id, "--to", "DATA_2", "--url", BASE)
        moved_in = time.monotonic() - t0
        acked_at_switch = ingest.acked_count()
        wait_until(lambda: ingest.acked_count() >= acked_at_switch + 30, 60, "writes acknowledged after the move")
    stop.set()
    side.join(timeout=30)
    report = move_report(out)
    assert report["done"] is True and report["phase"] == "done", report
    assert (report["from"], report["to"], report["org_id"]) == ("DATA_1", "DATA_2", org.id)
    assert report["verified"]["interactions"]["rows"] >= 3000 + acked_at_start, report
    assert_moved(org, before, ingest, audit_before, made["alert"])
    # The paused org's clients were slowed, the bystander on the target was not.
    assert set(seen) == {201}, seen
    assert call("GET", "/v1/interactions", key=made["dead_key"])[0].status_code == 401
    print(f"move under ingest: {len(ingest.acked)} acknowledged keys, statuses {dict(ingest.statuses)}, "
          f"bystander {dict(seen)}, move-org took {moved_in:.1f} s, report {json.dumps(report)}")


@pytest.mark.claim("shard.move-lossless")
def test_move_killed_while_copying_then_resumed_ends_the_same(mover):
    org, _, made = mover
    before = stored(org.id, "DATA_1")
    audit_before = audit_entries(org.key)
    with Ingest(org, "kill-" + uuid.uuid4().hex) as ingest:
        wait_until(lambda: ingest.acked_count() >= 20, 60, "writes acknowledged before the move")
        killed_at = kill_while_copying(org.id)
        # The pause lapses: the org writes (to DATA_1) again without any operator action.
        lapse_s, idem, ident = first_write_after(org.key, killed_at)
        with ingest.lock:
            ingest.acked[idem] = ident
        acked = ingest.acked_count()
        wait_until(lambda: ingest.acked_count() >= acked + 20, 60, "writes acknowledged after the kill")
        assert shard_of(org.id) == "DATA_1"
        assert any(r["id"] == ident for r in stored(org.id, "DATA_1")), "the write went to the old shard"
        out = admin("move-org", "--org", org.id, "--to", "DATA_2", "--url", BASE)
        acked = ingest.acked_count()
        wait_until(lambda: ingest.acked_count() >= acked + 20, 60, "writes acknowledged after the move")
    report = move_report(out)
    assert report["done"] is True and report["phase"] == "done", report
    assert report["attempt"] >= 2, ("the copy started again", report)
    assert_moved(org, before, ingest, audit_before, made["alert"])
    print(f"killed move: writes again {lapse_s:.1f} s after the kill; {len(ingest.acked)} acknowledged keys, "
          f"statuses {dict(ingest.statuses)}, report {json.dumps(report)}")


@pytest.mark.claim("shard.move-lossless")
def test_move_killed_while_copying_then_rolled_back_leaves_the_org_where_it_was(mover):
    org, _, made = mover
    before = stored(org.id, "DATA_1")
    counts = rows_by_table(org.id, "DATA_1")
    kill_while_copying(org.id)
    out = run_move_cli("--org", org.id, "--to", "DATA_2", "--rollback")
    assert out.returncode == 0, out.stderr
    # The org works at once, on DATA_1: the rollback ended the pause (no wait for the lease).
    lapse_s, _, ident = first_write_after(org.key, time.monotonic())
    assert lapse_s < 3, lapse_s
    report = move_report(json.loads(out.stdout))
    assert report["done"] is True and report["phase"] == "rolled_back", report
    assert shard_of(org.id) == "DATA_1"
    assert directory_move(org.id) == []
    assert admin("show-org", "--org", org.id).get("move") is None
    assert rows_by_table(org.id, "DATA_2") == no_rows(), "the target's copy is deleted"
    now = stored(org.id, "DATA_1")
    assert [r for r in now if r["id"] != ident] == before and len(now) == len(before) + 1
    counted = rows_by_table(org.id, "DATA_1")
    assert {t: counted[t] for t in ("orgs", "interactions", "alerts")} == \
        {"orgs": counts["orgs"], "interactions": counts["interactions"] + 1, "alerts": counts["alerts"]}
    assert sorted(listed_ids(org.key)) == sorted([r["id"] for r in before] + [ident])
    assert usage(org.key)["rows"] == len(before) + 1
    assert made["alert"] in [a["id"] for a in call("GET", "/v1/alerts", key=org.key)[0].json()["alerts"]]
    print(f"rolled back move: writes again {lapse_s:.1f} s after the rollback, report {json.dumps(report)}")


# --- bad input ----------------------------------------------------------------------

def test_move_to_the_shard_the_org_is_on_changes_nothing():
    org = new_org("Move to itself", shard="DATA_1")
    ingest_rows(org.key, 10, "self")
    counts = rows_by_table(org.id, "DATA_1")
    # The server answers "done" at once: there is nothing to move.
    r = move_call({"org_id": org.id, "to": "DATA_1", "action": "step"})
    assert r.status_code == 200, r.text
    report = r.json()["move"]
    assert (report["done"], report["phase"], report["from"], report["to"]) == (True, "done", "DATA_1", "DATA_1")
    assert report["copied"] == {} and report["verified"] == {}, report
    cli = run_move_cli("--org", org.id, "--to", "DATA_1")
    assert cli.returncode == 0, cli.stderr
    assert move_report(json.loads(cli.stdout))["phase"] == "done"
    assert shard_of(org.id) == "DATA_1" and directory_move(org.id) == []
    assert settled(rows_by_table(org.id, "DATA_1")) == settled(counts)
    assert rows_by_table(org.id, "DATA_2") == no_rows()
    assert usage(org.key)["rows"] == 10


def test_move_to_an_unknown_shard_is_400_and_changes_nothing():
    org = new_org("Move nowhere", shard="DATA_1")
    for to in ("DATA_9", "data_2", "DB", ""):
        r = move_call({"org_id": org.id, "to": to, "action": "step"})
        assert r.status_code == 400, (to, r.text)
        assert r.json()["error"]["code"] == "VALIDATION_FAILED", (to, r.text)
    cli = run_move_cli("--org", org.id, "--to", "DATA_9")
    assert cli.returncode in (1, 2) and "DATA_9" in cli.stderr, cli.stderr
    assert shard_of(org.id) == "DATA_1" and directory_move(org.id) == []
    assert rows_by_table(org.id, "DATA_2") == no_rows()
    assert call("GET", "/v1/org", key=org.key)[0].status_code == 200


def test_rollback_with_no_move_is_done_and_changes_nothing():
    org = new_org("Rollback of nothing", shard="DATA_1")
    counts = rows_by_table(org.id, "DATA_1")
    r = move_call({"org_id": org.id, "to": "DATA_2", "action": "rollback"})
    assert r.status_code == 200, r.text
    report = r.json()["move"]
    assert (report["done"], report["phase"], report["copied"]) == (True, "rolled_back", {}), report
    cli = run_move_cli("--org", org.id, "--to", "DATA_2", "--rollback")
    assert cli.returncode == 0, cli.stderr
    assert move_report(json.loads(cli.stdout))["done"] is True
    assert shard_of(org.id) == "DATA_1" and directory_move(org.id) == []
    assert settled(rows_by_table(org.id, "DATA_1")) == settled(counts)
    assert rows_by_table(org.id, "DATA_2") == no_rows()


def test_move_of_an_unknown_org_is_404_and_an_unsigned_move_is_401():
    absent = "org_" + "0" * 26
    r = move_call({"org_id": absent, "to": "DATA_2", "action": "step"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND", r.text
    org = new_org("Unsigned move", shard="DATA_1")
    r = move_call({"org_id": org.id, "to": "DATA_2", "action": "step"}, signed=False)
    assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHORIZED", r.text
    assert shard_of(org.id) == "DATA_1" and directory_move(org.id) == []
    assert rows_by_table(org.id, "DATA_2") == no_rows()
