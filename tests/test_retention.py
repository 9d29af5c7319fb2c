"""Retention by Durable Object alarms (issue 6).

Rows of every table are seeded straight into the local D1 (an org's rows on
its data shard, org-less audit rows in the directory) at ages just inside
and just outside their period; the alarms (every 2 s here, 300 ms while work
remains: SERVER_VARS) must delete exactly the expired ones — in each armed
org, for org-less audit rows — and touch nothing else. An org's alarm is
armed by its first request.

These tests run on a server of their own with those short intervals (started
on first use, stopped at the end of the module): the suite's shared server
keeps the default interval, so the thousand orgs the other tests create do
not each run retention every 2 s.
"""

import calendar
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from conftest import ADMIN, ROOT, SHARDS, WRANGLER, Org, d1_bindings, random_ip, sql_str, wait_until

# The settings of this module's servers (the shared one and the restart test's).
SERVER_VARS = {
    "RETENTION_INTERVAL_MS": "2000",
    "RETENTION_BUSY_INTERVAL_MS": "300",
    "RETENTION_BATCH_ROWS": "500",
    "RETENTION_MAX_ROWS_PER_RUN": "5000",
}
MAX_ROWS_PER_RUN = int(SERVER_VARS["RETENTION_MAX_ROWS_PER_RUN"])
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def retrying(query):
    """`query` retried on the local D1's transient `SQLITE_BUSY` (the
    `wrangler d1 execute` process and the running server share one SQLite
    file). Seeds use INSERT OR IGNORE, so a retried statement is harmless."""
    def run(sql: str) -> list:
        for attempt in range(8):
            try:
                return query(sql)
            except AssertionError as e:
                if attempt == 7 or not ("SQLITE_BUSY" in str(e) or "database is locked" in str(e)):
                    raise
                time.sleep(0.5 * (attempt + 1))
        raise AssertionError("unreachable")
    return run


_shared = None


def shared() -> "LocalServer":
    """This module's server with SERVER_VARS, started on first use."""
    global _shared
    if _shared is None:
        _shared = LocalServer()
        _shared.start()
    return _shared


def stop_shared() -> None:
    global _shared
    if _shared is not None:
        _shared.stop()
        if os.environ.get("KEEP_STATE") != "1":
            shutil.rmtree(_shared.state, ignore_errors=True)
        _shared = None


@pytest.fixture(scope="module", autouse=True)
def _shared_server():
    yield
    stop_shared()


def db(sql: str) -> list:
    """SQL on the directory of this module's server."""
    return shared().d1(sql)


def org_db(org_id: str, sql: str) -> list:
    """SQL on the data shard of `org_id` on this module's server."""
    return shared().org_d1(org_id, sql)


def seed_into(server: "LocalServer", org_id: str | None, sql: str) -> None:
    """Runs seed()'s SQL where its rows live: the org's shard, or the directory."""
    if org_id is None:
        server.d1(sql)
    else:
        server.org_d1(org_id, sql)


def new_org(name: str) -> Org:
    return Org(*shared().new_org(name))


def now_ms() -> int:
    return int(time.time() * 1000)


def months_before(ms: int, months: int) -> int:
    """Mirror of interlog_core::retention::months_before: same day and time
    `months` earlier (UTC); when that month lacks the day, its end."""
    dt = EPOCH + timedelta(milliseconds=ms)
    y, m = divmod(dt.year * 12 + dt.month - 1 - months, 12)
    m += 1
    last = calendar.monthrange(y, m)[1]
    if dt.day <= last:
        cut = dt.replace(year=y, month=m)
    else:
        cut = datetime(y, m, last, tzinfo=timezone.utc) + timedelta(days=1)
    return (cut - EPOCH) // timedelta(milliseconds=1)


def at_ms(s: str) -> int:
    """An RFC 3339 UTC time (as the API writes it) in Unix ms."""
    return (datetime.fromisoformat(s.replace("Z", "+00:00")) - EPOCH) // timedelta(milliseconds=1)


def test_retention_mirror_of_month_rule():
    at = at_ms
    assert months_before(at("2026-03-31T12:00:00Z"), 1) == at("2026-03-01T00:00:00Z")
    assert months_before(at("2028-02-29T12:00:00Z"), 24) == at("2026-03-01T00:00:00Z")
    assert months_before(at("2026-11-15T10:30:00Z"), 24) == at("2024-11-15T10:30:00Z")


def get_org(key: str, base: str | None = None) -> dict:
    """GET /v1/org (arms the org's alarm on the actor's first request)."""
    r = requests.get((base or shared().url) + "/v1/org", headers={"Authorization": f"Bearer {key}",
                                                               "CF-Connecting-IP": random_ip()}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def seed(org_id: str | None, tag: str, now: int) -> tuple[str, set, set]:
    """SQL inserting rows of `org_id` (None: org-less audit rows only) just
    outside and just inside each period at `now`; returns the SQL and the
    (table, key) pairs expected gone and expected kept."""
    out, keep, stmts = set(), set(), []
    if org_id is not None:
        org = sql_str(org_id)
        c = months_before(now, 24)
        rows = [  # (key, received_at, occurred_at)
            (f"{tag}_int_out", c - MINUTE, c - MINUTE),
            (f"{tag}_int_out_old", c - 400 * DAY, c - 400 * DAY),
            (f"{tag}_int_in", c + 10 * MINUTE, c + 10 * MINUTE),
            # Age counts from received_at: an ancient occurred_at received yesterday stays.
            (f"{tag}_int_in_old_event", now - DAY, now - 5 * 365 * DAY),
        ]
        stmts.append("INSERT OR IGNORE INTO interactions (org_id, id, type, occurred_at, received_at, content) VALUES "
                     + ", ".join(f"({org}, {sql_str(k)}, 'retention.test', {occ}, {rec}, 'x')" for k, rec, occ in rows))
        out |= {("interactions", f"{tag}_int_out"), ("interactions", f"{tag}_int_out_old")}
        keep |= {("interactions", f"{tag}_int_in"), ("interactions", f"{tag}_int_in_old_event")}

        c = now - 2 * HOUR
        rows = [  # (prefix, window_start, updated_at)
            (f"{tag}rlo", c - MINUTE - 60_000, c - MINUTE),
            (f"{tag}rli", c + 10 * MINUTE - 60_000, c + 10 * MINUTE),
            # An old window written to recently stays.
            (f"{tag}rlw", now - 3 * HOUR, now - MINUTE),
        ]
        stmts.append("INSERT OR IGNORE INTO rate_limits (prefix, org_id, window_start, count, updated_at) VALUES "
                     + ", ".join(f"({sql_str(p)}, {org}, {ws}, 3, {up})" for p, ws, up in rows))
        out.add(("rate_limits", f"{tag}rlo"))
        keep |= {("rate_limits", f"{tag}rli"), ("rate_limits", f"{tag}rlw")}

        c = now - 90 * DAY
        rows = [  # (id, state, prefix, first_seen, last_seen)
            (f"{tag}_alr_out_closed", "resolved", "AAAAAAA1", c - 10 * DAY, c - MINUTE),
            (f"{tag}_alr_out_open", "open", "AAAAAAA2", c - 10 * DAY, c - MINUTE),
            (f"{tag}_alr_in", "resolved", "AAAAAAA3", c - 10 * DAY, c + 10 * MINUTE),
            # Open and still being seen: stays however old its first sighting.
            (f"{tag}_alr_in_open", "open", "AAAAAAA4", now - 400 * DAY, now - MINUTE),
        ]
        stmts.append("INSERT OR IGNORE INTO alerts (id, org_id, kind, prefix, state, first_seen, last_seen, count) VALUES "
                     + ", ".join(f"({sql_str(i)}, {org}, 'dead_key_used', {sql_str(p)}, {sql_str(s)}, {f}, {ls}, 2)"
                                 for i, s, p, f, ls in rows))
        out |= {("alerts", f"{tag}_alr_out_closed"), ("alerts", f"{tag}_alr_out_open")}
        keep |= {("alerts", f"{tag}_alr_in"), ("alerts", f"{tag}_alr_in_open")}
    org = "NULL" if org_id is None else sql_str(org_id)
    c = now - 90 * DAY
    rows = [(f"{tag}_aud_out", c - MINUTE), (f"{tag}_aud_out_old", c - 1000 * DAY), (f"{tag}_aud_in", c + 10 * MINUTE)]
    stmts.append("INSERT OR IGNORE INTO audit_log (org_id, at, action, request_id) VALUES "
                 + ", ".join(f"({org}, {at}, 'retention.test', {sql_str(r)})" for r, at in rows))
    out |= {("audit_log", f"{tag}_aud_out"), ("audit_log", f"{tag}_aud_out_old")}
    keep.add(("audit_log", f"{tag}_aud_in"))
    return "; ".join(stmts), out, keep


def present_sql(run: str, shard: bool) -> str:
    """The seeded rows of `run` left in a data shard (`shard`) or the directory
    (which holds audit rows only)."""
    like = sql_str(run + "%")
    audit = f"SELECT 'audit_log' AS t, request_id AS k FROM audit_log WHERE request_id LIKE {like}"
    if not shard:
        return audit
    return (f"SELECT 'interactions' AS t, id AS k FROM interactions WHERE id LIKE {like} "
            f"UNION ALL SELECT 'rate_limits', prefix FROM rate_limits WHERE prefix LIKE {like} "
            f"UNION ALL {audit} "
            f"UNION ALL SELECT 'alerts', id FROM alerts WHERE id LIKE {like}")


def present(run: str, server: "LocalServer | None" = None) -> set:
    """The seeded rows of `run` left in the directory and every data shard."""
    s = server or shared()
    found = s.d1(present_sql(run, shard=False))
    for shard in SHARDS:
        found += s.d1(present_sql(run, shard=True), shard)
    return {(r["t"], r["k"]) for r in found}


def run_after(key: str, after: str, base: str | None = None):
    """The org's last retention run if it is complete and ran after `after`
    (an RFC 3339 time), else None."""
    last = get_org(key, base)["last_retention_run"]
    return last if last and last["complete"] and last["at"] > after else None


def key_counts(org_ids: list[str]) -> dict:
    """The orgs' directory rows and keys, and their rows of settings on the shards."""
    ids = ", ".join(sql_str(o) for o in org_ids)
    rows = db(f"SELECT 'orgs' AS t, COUNT(*) AS n FROM orgs WHERE id IN ({ids}) "
              f"UNION ALL SELECT 'api_keys', COUNT(*) FROM api_keys WHERE org_id IN ({ids})")
    counts = {r["t"]: r["n"] for r in rows}
    counts["shard orgs"] = sum(shared().d1(f"SELECT COUNT(*) AS n FROM orgs WHERE id IN ({ids})", shard)[0]["n"]
                               for shard in SHARDS)
    return counts


@pytest.mark.claim("posture.measured-retention", "posture.retention", "threat.over-retention")
def test_retention_alarm_deletes_exactly_expired_rows():
    run = "ret" + secrets.token_hex(4)
    a, b, c = new_org("Retention A"), new_org("Retention B"), new_org("Retention C (never called)")
    before = key_counts([a.id, b.id, c.id])

    now = now_ms()
    owners = [a.id, b.id, c.id, None]
    parts = [seed(owner, f"{run}_{tag}", now) for owner, tag in zip(owners, "abcn")]
    for owner, part in zip(owners, parts):
        seed_into(shared(), owner, part[0])
    seeded = iso(now_ms())
    out_armed = parts[0][1] | parts[1][1] | parts[3][1]
    everything = set().union(*(p[1] | p[2] for p in parts))
    # No org alarm is armed yet, so all org rows are there (the Janitor, armed
    # by earlier requests, may already be at work on the org-less ones).
    assert present(run) >= everything - parts[3][1]

    # First requests arm A's and B's alarms (and the Janitor's); C is never called.
    get_org(a.key)
    get_org(b.key)

    wait_until(lambda: not (present(run) & out_armed), 30, "the expired rows of A, B and of no org to go")
    # A run that started after the seeding has completed in each armed org.
    for org in (a, b):
        last = wait_until(lambda: run_after(org.key, seeded), 10, f"a complete run after seeding for {org.id}")
        assert set(last["deleted"]) == {"interactions", "rate_limits", "audit_log", "alerts"}
    more_runs(a, b)
    # Exactly the expired rows of A, B and of no org are gone; C (no alarm yet) is untouched.
    assert present(run) == everything - out_armed
    assert key_counts([a.id, b.id, c.id]) == before

    # C's first request arms its alarm: now its expired rows go too, and still only those.
    get_org(c.key)
    out_c = parts[2][1]
    wait_until(lambda: not (present(run) & out_c), 30, "C's expired rows to go")
    more_runs(a, b, c)
    assert present(run) == everything - out_armed - out_c
    assert key_counts([a.id, b.id, c.id]) == before


def more_runs(*orgs) -> None:
    """Waits until every org's alarm has completed one more run that started
    after this call (the Janitor runs on the same interval)."""
    since = iso(now_ms())
    for org in orgs:
        wait_until(lambda: run_after(org.key, since), 15, f"one more retention run of {org.id}")


def iso(ms: int) -> str:
    return (EPOCH + timedelta(milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def test_retention_row_exactly_at_the_cutoff_is_kept():
    """The SQL boundary itself: a row received exactly at the cutoff of the run
    that deleted everything older is still there; the one 1 ms older is gone.
    The cutoff moves with the alarm's clock, so a row is seeded for every
    millisecond of the next minute's cutoffs: whichever run is observed, its
    cutoff (computed from the run's own `at`) has a row exactly on it."""
    org = new_org("Retention boundary")
    o = sql_str(org.id)
    t0 = now_ms()
    lo, hi = months_before(t0, 24) - 2_000, months_before(t0 + 60_000, 24)
    org_db(org.id, f"WITH RECURSIVE n(t) AS (SELECT {lo} UNION ALL SELECT t + 1 FROM n WHERE t < {hi}) "
                   f"INSERT OR IGNORE INTO interactions (org_id, id, type, occurred_at, received_at) "
                   f"SELECT {o}, printf('edge_%d', t), 'retention.edge', t, t FROM n")
    seeded = iso(now_ms())
    get_org(org.key)  # arms the alarm

    def observed():
        """A complete run and the oldest row left right after it, read between
        two equal summaries; None when a run came in between."""
        first = run_after(org.key, seeded)
        if first is None:
            return None
        oldest = org_db(org.id, f"SELECT MIN(received_at) AS t FROM interactions WHERE org_id = {o}")[0]["t"]
        if get_org(org.key)["last_retention_run"] != first:
            return None
        cutoff = months_before(at_ms(first["at"]), 24)
        assert lo < cutoff <= hi, (first, lo, hi)  # inside the seeded range
        # Everything older than the cutoff is gone. A row exactly on it is
        # kept; a delete with `<=` would leave cutoff + 1 as the oldest.
        assert oldest >= cutoff, (oldest, cutoff)
        return (oldest, cutoff) if oldest == cutoff else None

    # Rows were seeded for every millisecond, so the oldest row left being the
    # cutoff's own means: 1 ms older gone, exactly on the cutoff kept. (Later
    # runs move the cutoff on, so this is read only between two summaries.)
    wait_until(observed, 40, "a run whose cutoff row is the oldest row left (the row on it kept)")


def alarm_lines(text: str) -> list[dict]:
    """The alarm runs in a stretch of the server log: one JSON object per line
    (`{"event": "alarm", "actor": "org" | "janitor", "org_id", "retention", ...}`)."""
    found = []
    for line in text.splitlines():
        line = line.strip()
        if not (line.startswith("{") and '"alarm"' in line):
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("event") == "alarm":
            found.append(entry)
    return found


def retention_runs(text: str, org_id: str | None) -> list[dict]:
    """The retention summaries logged for `org_id` (None: the Janitor's)."""
    return [e["retention"] for e in alarm_lines(text) if e.get("org_id") == org_id and e.get("retention")]


def runs_in_log(log: Path, org_id: str, offset: int = 0) -> list[dict]:
    """The retention summaries the OrgActor of `org_id` logged after `offset`."""
    if not log.exists():
        return []
    with open(log, encoding="utf-8", errors="replace") as f:
        f.seek(offset)
        return retention_runs(f.read(), org_id)


@pytest.mark.claim("owasp.api4", "posture.measured-retention", "posture.retention")
def test_retention_alarm_volume_20000_in_bounded_runs():
    total = 20_000
    run = "ret" + secrets.token_hex(4)
    org = new_org("Retention volume")
    now = now_ms()
    c = months_before(now, 24)
    o = sql_str(org.id)
    half = total // 2
    # Two statements of 10,000 rows each, received between 25 months and a few days before the cutoff.
    for start in (0, half):
        org_db(org.id, f"WITH RECURSIVE n(i) AS (SELECT {start + 1} UNION ALL SELECT i + 1 FROM n WHERE i < {start + half}) "
                       f"INSERT OR IGNORE INTO interactions (org_id, id, type, occurred_at, received_at, content) "
                       f"SELECT {o}, printf('{run}_v%06d', i), 'retention.volume', {c - DAY} - i * 10000, "
                       f"{c - MINUTE} - i * 10000, 'expired' FROM n")
    org_db(org.id, f"INSERT OR IGNORE INTO interactions (org_id, id, type, occurred_at, received_at) VALUES "
           + ", ".join(f"({o}, '{run}_keep{i}', 'retention.volume', {c + 10 * MINUTE + i}, {c + 10 * MINUTE + i})"
                       for i in range(5)))
    count_sql = (f"SELECT SUM(received_at < {c}) AS expired, SUM(received_at >= {c}) AS kept "
                 f"FROM interactions WHERE org_id = {o}")
    assert org_db(org.id, count_sql) == [{"expired": total, "kept": 5}]
    seeded = iso(now_ms())
    server_log = shared().log_path
    log_offset = server_log.stat().st_size if server_log.exists() else 0
    get_org(org.key)  # the first request arms the alarm

    # Watch the summaries while the alarm works through them.
    seen = {}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        last = get_org(org.key)["last_retention_run"]
        if last and last["at"] > iso(now):
            seen[last["at"]] = last
        if last and last["at"] > seeded:
            if last["complete"] and sum(last["deleted"].values()) == 0:
                break
        time.sleep(0.2)
    assert org_db(org.id, count_sql) == [{"expired": 0, "kept": 5}]
    for s in seen.values():
        assert sum(s["deleted"].values()) <= MAX_ROWS_PER_RUN, s

    runs = [r for r in runs_in_log(server_log, org.id, log_offset) if r["at"] > iso(now)]
    # Every run is logged: without the lines the bound per run is unproven.
    assert runs, f"no retention lines for {org.id} in {server_log}"
    busy = [r for r in runs if r["deleted"]["interactions"] > 0]
    # Every run within its bound; together exactly the 20,000; the alarm re-armed several times.
    assert all(sum(r["deleted"].values()) <= MAX_ROWS_PER_RUN for r in runs), runs
    assert sum(r["deleted"]["interactions"] for r in runs) == total
    assert len(busy) >= total // MAX_ROWS_PER_RUN
    assert any(not r["complete"] for r in busy), busy


# --- restart: a server of our own, stopped and started again on its state ---

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wrangler_env() -> dict:
    return dict(os.environ, INTERLOG_PREBUILT="1", CI="true", WRANGLER_SEND_METRICS="false")


class LocalServer:
    """`wrangler dev` on the normal configuration with its own state folder,
    prepared like scripts/local-env.sh prepare_state does."""

    def __init__(self):
        self.state = Path(tempfile.mkdtemp(prefix="interlog-retention-"))
        self.persist = self.state / "persist"
        self.pepper = secrets.token_hex(32)
        self.proc = None
        self.url = None
        self.log_path = self.state / "wrangler.log"
        self.shards: dict[str, str] = {}  # org id -> its data shard
        config = (ROOT / "wrangler.toml").read_text()
        store = re.search(r'^store_id\s*=\s*"([^"]+)"', config, re.M).group(1)
        name = re.search(r'^secret_name\s*=\s*"([^"]+)"', config, re.M).group(1)
        self._run([WRANGLER, "secrets-store", "secret", "create", store, "--name", name, "--value", self.pepper,
                   "--scopes", "workers", "--persist-to", str(self.persist)])
        for binding in d1_bindings():  # the directory and every data shard
            self._run([WRANGLER, "d1", "migrations", "apply", binding, "--local", "--persist-to", str(self.persist)])

    def _run(self, args: list[str], env: dict | None = None) -> str:
        out = subprocess.run(args, cwd=ROOT, env=env or wrangler_env(), capture_output=True, text=True, timeout=180)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    def start(self):
        port = free_port()
        vars_ = [a for k, v in SERVER_VARS.items() for a in ("--var", f"{k}:{v}")]
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [WRANGLER, "dev", "--ip", "127.0.0.1", "--port", str(port), "--inspector-port", str(free_port()),
             "--persist-to", str(self.persist), "--show-interactive-dev-session=false", *vars_],
            cwd=ROOT, env=wrangler_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        offset_ready = self.log_path.read_text().count("Ready on")
        for _ in range(360):
            if self.log_path.read_text().count("Ready on") > offset_ready:
                break
            assert self.proc.poll() is None, self.log_path.read_text()[-4000:]
            time.sleep(0.5)
        else:
            raise AssertionError("wrangler dev did not become ready")
        self.url = f"http://127.0.0.1:{port}"

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            self.proc.wait(timeout=30)
        self.proc = None

    def d1(self, sql: str, db: str = "DB") -> list:
        """SQL on one database of this server (binding `db`)."""
        def once(q: str) -> list:
            out = self._run([WRANGLER, "d1", "execute", db, "--local", "--persist-to", str(self.persist), "--json",
                             "--command", q])
            return json.loads(out)[0]["results"]
        return retrying(once)(sql)

    def org_d1(self, org_id: str, sql: str) -> list:
        """SQL on the data shard the directory places `org_id` on (looked up
        once: nothing here moves an org, and the boundary test reads between
        two alarm runs, so one `wrangler d1 execute` per read)."""
        if org_id not in self.shards:
            (row,) = self.d1(f"SELECT shard FROM orgs WHERE id = {sql_str(org_id)}")
            self.shards[org_id] = row["shard"]
        return self.d1(sql, self.shards[org_id])

    def new_org(self, name: str) -> tuple[str, str]:
        out = self._run([ADMIN, "create-org", "--name", name, "--persist-to", str(self.persist)],
                        env=dict(wrangler_env(), INTERLOG_PEPPER=self.pepper))
        d = json.loads(out.strip().splitlines()[-1])
        return d["org_id"], d["key"]


@pytest.fixture
def own_server():
    stop_shared()  # one server of this module at a time
    server = LocalServer()
    try:
        yield server
    finally:
        server.stop()
        if os.environ.get("KEEP_STATE") != "1":
            shutil.rmtree(server.state, ignore_errors=True)


@pytest.mark.claim("posture.measured-retention", "posture.retention", "threat.over-retention")
def test_retention_alarm_fires_after_restart(own_server):
    s = own_server
    s.start()
    org_id, key = s.new_org("Retention restart")
    get_org(key, s.url)  # arms the org's alarm and the Janitor's
    wait_until(lambda: get_org(key, s.url)["last_retention_run"], 20, "a run before the restart")
    s.stop()
    stopped = now_ms()

    # While the server is down: rows expire (seeded), and the alarms' times pass.
    run = "ret" + secrets.token_hex(4)
    now = now_ms()
    parts = [seed(org_id, f"{run}_a", now), seed(None, f"{run}_n", now)]
    seed_into(s, org_id, parts[0][0])
    seed_into(s, None, parts[1][0])
    out = parts[0][1] | parts[1][1]
    keep = parts[0][2] | parts[1][2]
    assert present(run, s) == out | keep
    # Down past the alarms' next time (at most one interval after the last run).
    overdue = stopped + int(SERVER_VARS["RETENTION_INTERVAL_MS"]) + 500
    wait_until(lambda: now_ms() > overdue, 10, "the alarms' next time to pass while the server is down")

    log_offset = s.log_path.stat().st_size
    s.start()
    # Without any request: the overdue alarms must fire on their own (nothing
    # here reaches the server; `present` reads D1 through wrangler).
    wait_until(lambda: not (present(run, s) & out), 30,
               "the overdue alarms to fire on their own after the restart and delete the expired rows")
    assert present(run, s) == keep

    def logged():
        log = s.log_path.read_text()[log_offset:]
        return bool(retention_runs(log, org_id) and retention_runs(log, None))

    wait_until(logged, 10, "a logged run of the org's alarm and of the Janitor after the restart")
    # And they keep firing: another complete run of the org's alarm after the cleanup.
    cleaned = iso(now_ms())
    wait_until(lambda: run_after(key, cleaned, s.url), 15, "one more run of the org's alarm")
    assert present(run, s) == keep
