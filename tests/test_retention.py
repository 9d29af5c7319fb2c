"""Retention by Durable Object alarms (issue 6).

Rows of every table are seeded straight into the local D1 at ages just inside
and just outside their period; the alarms (every 2 s here, 300 ms while work
remains: see the `--var RETENTION_*` arguments in scripts/test.sh) must delete
exactly the expired ones — in each armed org, for org-less audit rows — and
touch nothing else. An org's alarm is armed by its first request.
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
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from conftest import ADMIN, PERSIST, ROOT, WRANGLER, call, d1, new_org, random_ip, sql_str

# The settings scripts/test.sh gives the test server (the restart test's own
# server gets the same).
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
# Where scripts/test.sh lets wrangler write its log (STATE/persist, STATE/wrangler.log).
SERVER_LOG = Path(PERSIST).parent / "wrangler.log"


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


db = retrying(d1)


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


def test_retention_mirror_of_month_rule():
    def at(s):
        return (datetime.fromisoformat(s.replace("Z", "+00:00")) - EPOCH) // timedelta(milliseconds=1)

    assert months_before(at("2026-03-31T12:00:00Z"), 1) == at("2026-03-01T00:00:00Z")
    assert months_before(at("2028-02-29T12:00:00Z"), 24) == at("2026-03-01T00:00:00Z")
    assert months_before(at("2026-11-15T10:30:00Z"), 24) == at("2024-11-15T10:30:00Z")


def get_org(key: str, base: str | None = None) -> dict:
    """GET /v1/org (arms the org's alarm on the actor's first request)."""
    if base is None:
        r, _ = call("GET", "/v1/org", key=key)
    else:
        r = requests.get(base + "/v1/org", headers={"Authorization": f"Bearer {key}",
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
            (f"{tag}_alr_out_closed", "closed", "AAAAAAA1", c - 10 * DAY, c - MINUTE),
            (f"{tag}_alr_out_open", "open", "AAAAAAA2", c - 10 * DAY, c - MINUTE),
            (f"{tag}_alr_in", "closed", "AAAAAAA3", c - 10 * DAY, c + 10 * MINUTE),
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


def present_sql(run: str) -> str:
    like = sql_str(run + "%")
    return (f"SELECT 'interactions' AS t, id AS k FROM interactions WHERE id LIKE {like} "
            f"UNION ALL SELECT 'rate_limits', prefix FROM rate_limits WHERE prefix LIKE {like} "
            f"UNION ALL SELECT 'audit_log', request_id FROM audit_log WHERE request_id LIKE {like} "
            f"UNION ALL SELECT 'alerts', id FROM alerts WHERE id LIKE {like}")


def present(run: str, query=db) -> set:
    return {(r["t"], r["k"]) for r in query(present_sql(run))}


def wait_until(predicate, timeout_s: float, every_s: float = 1.0):
    """Polls `predicate` until it returns a truthy value (returned) or the time is up (None)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every_s)


def key_counts(org_ids: list[str], query=db) -> dict:
    ids = ", ".join(sql_str(o) for o in org_ids)
    rows = query(f"SELECT 'orgs' AS t, COUNT(*) AS n FROM orgs WHERE id IN ({ids}) "
                 f"UNION ALL SELECT 'api_keys', COUNT(*) FROM api_keys WHERE org_id IN ({ids})")
    return {r["t"]: r["n"] for r in rows}


def test_retention_alarm_deletes_exactly_expired_rows():
    run = "ret" + secrets.token_hex(4)
    a, b, c = new_org("Retention A"), new_org("Retention B"), new_org("Retention C (never called)")
    before = key_counts([a.id, b.id, c.id])

    now = now_ms()
    parts = [seed(a.id, f"{run}_a", now), seed(b.id, f"{run}_b", now), seed(c.id, f"{run}_c", now),
             seed(None, f"{run}_n", now)]
    db("; ".join(p[0] for p in parts))
    seeded = iso(now_ms())
    out_armed = parts[0][1] | parts[1][1] | parts[3][1]
    everything = set().union(*(p[1] | p[2] for p in parts))
    # No org alarm is armed yet, so all org rows are there (the Janitor, armed
    # by earlier requests, may already be at work on the org-less ones).
    assert present(run) >= everything - parts[3][1]

    # First requests arm A's and B's alarms (and the Janitor's); C is never called.
    get_org(a.key)
    get_org(b.key)

    gone = wait_until(lambda: not (present(run) & out_armed), timeout_s=30)
    assert gone, f"still present after 30 s: {sorted(present(run) & out_armed)}"
    # A run that started after the seeding has completed in each armed org.
    for org in (a, b):
        last = wait_until(lambda: (lambda r: r if r and r["complete"] and r["at"] > seeded else None)(
            get_org(org.key)["last_retention_run"]), timeout_s=10, every_s=0.5)
        assert last, f"no complete run after seeding for {org.id}"
        assert set(last["deleted"]) == {"interactions", "rate_limits", "audit_log", "alerts"}
    time.sleep(2.5)  # at least one more run of every alarm
    # Exactly the expired rows of A, B and of no org are gone; C (no alarm yet) is untouched.
    assert present(run) == everything - out_armed
    assert key_counts([a.id, b.id, c.id]) == before

    # C's first request arms its alarm: now its expired rows go too, and still only those.
    get_org(c.key)
    out_c = parts[2][1]
    assert wait_until(lambda: not (present(run) & out_c), timeout_s=30), sorted(present(run) & out_c)
    time.sleep(2.5)
    assert present(run) == everything - out_armed - out_c
    assert key_counts([a.id, b.id, c.id]) == before


def iso(ms: int) -> str:
    return (EPOCH + timedelta(milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


RUN_LINE = re.compile(r"retention org=(\S+) (\{.*\})\s*$")


def runs_in_log(log: Path, org_id: str, offset: int = 0) -> list[dict]:
    """The retention summaries the OrgActor of `org_id` logged after `offset`."""
    if not log.exists():
        return []
    runs = []
    with open(log, encoding="utf-8", errors="replace") as f:
        f.seek(offset)
        for line in f:
            m = RUN_LINE.search(line)
            if m and m.group(1) == org_id:
                runs.append(json.loads(m.group(2)))
    return runs


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
        db(f"WITH RECURSIVE n(i) AS (SELECT {start + 1} UNION ALL SELECT i + 1 FROM n WHERE i < {start + half}) "
           f"INSERT OR IGNORE INTO interactions (org_id, id, type, occurred_at, received_at, content) "
           f"SELECT {o}, printf('{run}_v%06d', i), 'retention.volume', {c - DAY} - i * 10000, "
           f"{c - MINUTE} - i * 10000, 'expired' FROM n")
    db(f"INSERT OR IGNORE INTO interactions (org_id, id, type, occurred_at, received_at) VALUES "
       + ", ".join(f"({o}, '{run}_keep{i}', 'retention.volume', {c + 10 * MINUTE + i}, {c + 10 * MINUTE + i})"
                   for i in range(5)))
    count_sql = (f"SELECT SUM(received_at < {c}) AS expired, SUM(received_at >= {c}) AS kept "
                 f"FROM interactions WHERE org_id = {o}")
    assert db(count_sql) == [{"expired": total, "kept": 5}]
    seeded = iso(now_ms())
    log_offset = SERVER_LOG.stat().st_size if SERVER_LOG.exists() else 0
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
    assert db(count_sql) == [{"expired": 0, "kept": 5}]
    for s in seen.values():
        assert sum(s["deleted"].values()) <= MAX_ROWS_PER_RUN, s

    runs = [r for r in runs_in_log(SERVER_LOG, org.id, log_offset) if r["at"] > iso(now)]
    if not runs:
        warnings.warn(f"no retention lines in {SERVER_LOG}; bound checked on {len(seen)} observed summaries only")
        assert len(seen) >= 2
        return
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
        config = (ROOT / "wrangler.toml").read_text()
        store = re.search(r'^store_id\s*=\s*"([^"]+)"', config, re.M).group(1)
        name = re.search(r'^secret_name\s*=\s*"([^"]+)"', config, re.M).group(1)
        self._run([WRANGLER, "secrets-store", "secret", "create", store, "--name", name, "--value", self.pepper,
                   "--scopes", "workers", "--persist-to", str(self.persist)])
        self._run([WRANGLER, "d1", "migrations", "apply", "DB", "--local", "--persist-to", str(self.persist)])

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

    def d1(self, sql: str) -> list:
        def once(q: str) -> list:
            out = self._run([WRANGLER, "d1", "execute", "DB", "--local", "--persist-to", str(self.persist), "--json",
                             "--command", q])
            return json.loads(out)[0]["results"]
        return retrying(once)(sql)

    def new_org(self, name: str) -> tuple[str, str]:
        out = self._run([ADMIN, "create-org", "--name", name, "--persist-to", str(self.persist)],
                        env=dict(wrangler_env(), INTERLOG_PEPPER=self.pepper))
        d = json.loads(out.strip().splitlines()[-1])
        return d["org_id"], d["key"]


@pytest.fixture
def own_server():
    server = LocalServer()
    try:
        yield server
    finally:
        server.stop()
        if os.environ.get("KEEP_STATE") != "1":
            shutil.rmtree(server.state, ignore_errors=True)


def test_retention_alarm_fires_after_restart(own_server):
    s = own_server
    s.start()
    org_id, key = s.new_org("Retention restart")
    get_org(key, s.url)  # arms the org's alarm and the Janitor's
    assert wait_until(lambda: get_org(key, s.url)["last_retention_run"], timeout_s=20, every_s=0.5), \
        "the alarm never ran before the restart"
    s.stop()

    # While the server is down: rows expire (seeded), and the alarms' times pass.
    run = "ret" + secrets.token_hex(4)
    now = now_ms()
    parts = [seed(org_id, f"{run}_a", now), seed(None, f"{run}_n", now)]
    s.d1("; ".join(p[0] for p in parts))
    out = parts[0][1] | parts[1][1]
    keep = parts[0][2] | parts[1][2]
    assert present(run, s.d1) == out | keep
    time.sleep(3)  # the 2 s alarms are now overdue

    s.start()
    log_offset = s.log_path.stat().st_size
    # First without any request: the overdue alarms should fire on their own.
    on_their_own = wait_until(lambda: not (present(run, s.d1) & out), timeout_s=20)
    if not on_their_own:
        # The known local bug (an alarm overdue at start may never fire): the
        # org's first request re-arms its alarm and the Janitor's.
        warnings.warn("overdue alarms did not fire on their own after the restart; re-armed by a request")
        get_org(key, s.url)
        assert wait_until(lambda: not (present(run, s.d1) & out), timeout_s=30), sorted(present(run, s.d1) & out)
    time.sleep(2.5)
    assert present(run, s.d1) == keep
    log = s.log_path.read_text()[log_offset:]
    assert f"retention org={org_id}" in log and "retention orgless" in log
    # And they keep firing: another run of the org's alarm after the cleanup.
    last = get_org(key, s.url)["last_retention_run"]
    assert last["complete"] and last["at"] > iso(now)
