"""L2 over several actors: replays a synthetic workload of one org whose
traffic exceeds one Durable Object and reports the L2 error of a split design
against the single-actor truth. Python 3 standard library only; deterministic
for a given seed. Design and figures: docs/scaling.md.

Usage:
  python3 bench/l2_split/simulate.py [--seed N] [--actors K ...] [--keys N]
                                     [--rate R] [--duration S] [--per-key N]
  python3 bench/l2_split/simulate.py --row-bytes N [--content-bytes B]
                                     # bytes per interaction row, on disk

The org's keys are placed on K actors by `hash(prefix) mod K`; actor 0 is the
org's key authority (today's OrgActor). Per-key L2 is interlog's limiter
(`core/src/ratelimit.rs`, 1000 / 60 s, 60 buckets of 1 s) ported exactly.
Variants:

  prefix    each key lives on one actor: per-key L2 is exact; revocations
            reach the key's actor after a push (or, if the push is lost, the
            actor's periodic key-ring check), so only liveness can be stale
  request   the wrong design, for contrast: every request goes to any actor
            (round robin) and each actor holds the key's limit / K
  rebal     prefix, but K doubles halfway without handing windows over: the
            keys that move start with empty windows
  static    an org-wide quota (hypothetical: interlog has none today) split
            as a fixed share quota / K per actor
  lease-P   the org quota handed out by the authority in leases of tokens
            with refill; grants counted over the period P
  lease-PT  the same, grants counted over P + lease TTL (never permissive)

Errors against the truth, per request: `over` = admitted though the truth
refused, `wrongful` = refused though the truth admitted; `excess` =
admissions that left some 60 s interval holding more than the limit (the
guarantee broken). K = 1 must be exact in every variant (asserted).
"""

import argparse
import bisect
import collections
import hashlib
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

L2_LIMIT = 1000
PERIOD_MS = 60_000
BUCKETS = 60
SLOTS = BUCKETS + 1
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class Limiter:
    """interlog_core::ratelimit::RateLimiter, ported: a ring of 61 bucket
    counts per key, admitted iff the buckets overlapping (t - P, t] hold
    fewer than `limit`; only admissions are counted; time never runs
    backwards for a key."""

    def __init__(self, limit, period_ms=PERIOD_MS):
        self.limit = limit
        self.period = period_ms
        self.w = (period_ms - 1) // BUCKETS + 1
        self.win = {}  # key -> [counts, last_ms, total]

    def _advance(self, win, t):
        if t <= win[1]:
            return
        w = self.w
        head = win[1] // w
        steps = min(t // w - head, SLOTS)
        counts = win[0]
        s = head % SLOTS
        for _ in range(steps):
            s = (s + 1) % SLOTS
            win[2] -= counts[s]
            counts[s] = 0
        win[1] = t

    def _used(self, win, t):
        w = self.w
        head = win[1] // w
        first = (t - (self.period - 1)) // w
        if first > head:
            return 0
        total = win[2]
        counts = win[0]
        for b in range(head - BUCKETS, first):
            total -= counts[b % SLOTS]
        return total

    def used(self, key, now):
        """Admissions counted against a request at `now`."""
        win = self.win.get(key)
        if win is None:
            return 0
        t = max(now, win[1])
        self._advance(win, t)
        return self._used(win, t)

    def allows(self, key, now):
        """Would `check` admit now? (Advances the ring; counts nothing.)"""
        win = self.win.get(key)
        if win is None:
            return True
        t = max(now, win[1])
        self._advance(win, t)
        return self._used(win, t) < self.limit

    def add(self, key, now):
        """Counts one admission (after `allows` said yes)."""
        win = self.win.get(key)
        if win is None:
            win = self.win[key] = [[0] * SLOTS, now, 0]
        t = max(now, win[1])
        self._advance(win, t)
        win[0][(t // self.w) % SLOTS] += 1
        win[2] += 1

    def check(self, key, now):
        if self.allows(key, now):
            self.add(key, now)
            return True
        return False


class SlidingLog:
    """Exact count of admissions in (t - P, t] per key: finds admissions that
    break the limit (`excess`)."""

    def __init__(self, limit):
        self.limit = limit
        self.log = collections.defaultdict(collections.deque)

    def admit(self, key, t):
        q = self.log[key]
        q.append(t)
        while q[0] <= t - PERIOD_MS:
            q.popleft()
        return len(q) > self.limit


def place(prefix, k):
    """The actor of a key: a stable hash of its prefix mod K."""
    return int.from_bytes(hashlib.blake2b(prefix.encode(), digest_size=8).digest(), "big") % k


# ---------------------------------------------------------------- workload


def workload(rng, keys, rate, duration_s, zipf_s, revocations):
    """Events (t_ms, key index) sorted by time, the prefixes, and the
    revocations {key index: t_ms}."""
    prefixes = set()
    while len(prefixes) < keys:
        prefixes.add("".join(rng.choice(CROCKFORD) for _ in range(8)))
    prefixes = sorted(prefixes)
    rng.shuffle(prefixes)  # rank i (0 = most popular) -> prefixes[i]
    weights = [1 / (i + 1) ** zipf_s for i in range(keys)]
    cum, acc = [], 0.0
    for w in weights:
        acc += w
        cum.append(acc)

    def pick():
        return bisect.bisect_left(cum, rng.random() * acc)

    end = duration_s * 1000
    events = []
    # Base traffic: Poisson at `rate`.
    t = 0.0
    while True:
        t += rng.expovariate(rate / 1000)
        if t >= end:
            break
        events.append((int(t), pick()))
    # Org-wide bursts: 4 spans of 5-15 s at 2-3x the rate.
    for _ in range(4):
        start = rng.uniform(0, end - 15_000)
        span = rng.uniform(5_000, 15_000)
        extra = rate * rng.uniform(1, 2)
        t = start
        while True:
            t += rng.expovariate(extra / 1000)
            if t >= start + span:
                break
            events.append((int(t), pick()))
    # Key bursts: 12 keys (any rank) send 300-2,000 requests in 2-10 s.
    for _ in range(12):
        key = rng.randrange(keys)
        start = rng.uniform(0, end - 10_000)
        span = rng.uniform(2_000, 10_000)
        for _ in range(rng.randint(300, 2_000)):
            events.append((int(start + rng.uniform(0, span)), key))
    events.sort()
    # Revocations: keys of rank 1-200, revoked in the middle of the run.
    revoked = {}
    for key in rng.sample(range(1, min(keys, 200)), min(revocations, min(keys, 200) - 1)):
        revoked[key] = int(rng.uniform(0.3, 0.8) * end)
    return events, prefixes, revoked


# ---------------------------------------------------------------- replays


def truth_keys(events, revoked):
    """One actor: liveness first (a revoked key is refused and not counted),
    then per-key L2."""
    lim = Limiter(L2_LIMIT)
    out = bytearray(len(events))
    for i, (t, k) in enumerate(events):
        r = revoked.get(k)
        if r is not None and t >= r:
            continue
        out[i] = lim.check(k, t)
    return out


def split_prefix(events, prefixes, revoked, k, stale_ms, rebalance_at=None):
    """Keys on actors by prefix. `stale_ms[key]`: how long after its
    revocation the key's actor still admits it (0 on the authority itself).
    With `rebalance_at`, K doubles then and moved keys start empty."""
    actors = [Limiter(L2_LIMIT) for _ in range(2 * k)]
    home = [place(p, k) for p in prefixes]
    later = [place(p, 2 * k) for p in prefixes]
    out = bytearray(len(events))
    load = collections.Counter()
    for i, (t, key) in enumerate(events):
        # After the rebalance a key that moved (mod 2K != mod K) is served
        # by one of the K new actors, whose window for it starts empty.
        a = home[key] if rebalance_at is None or t < rebalance_at else later[key]
        load[(a, t // 1000)] += 1
        r = revoked.get(key)
        if r is not None and t >= r + (0 if a == 0 else stale_ms[key]):
            continue
        out[i] = actors[a].check(key, t)
    return out, load


def split_request(events, revoked, k, stale_ms):
    """Requests spread over actors regardless of key; each actor holds
    limit / K of every key."""
    share = max(1, L2_LIMIT // k)
    actors = [Limiter(share) for _ in range(k)]
    out = bytearray(len(events))
    for i, (t, key) in enumerate(events):
        a = i % k
        r = revoked.get(key)
        if r is not None and t >= r + (0 if a == 0 else stale_ms[key]):
            continue
        out[i] = actors[a].check(key, t)
    return out


def truth_org(events, revoked, quota):
    """One actor with a per-key L2 and an org-wide quota over the same
    window: admitted iff both allow; both count it."""
    keys, org = Limiter(L2_LIMIT), Limiter(quota)
    out = bytearray(len(events))
    for i, (t, k) in enumerate(events):
        r = revoked.get(k)
        if r is not None and t >= r:
            continue
        if keys.allows(k, t) and org.allows(0, t):
            keys.add(k, t)
            org.add(0, t)
            out[i] = 1
    return out


def live_requests(events, home, revoked):
    """(index, time, key, home actor) of each request whose key is not yet
    revoked at its time (the authority's view: no staleness)."""
    for i, (t, key) in enumerate(events):
        r = revoked.get(key)
        if r is None or t < r:
            yield i, t, key, home[key]


def split_static(events, home, revoked, k, quota):
    """The org quota as a fixed share per actor (no exchange)."""
    share = max(1, quota // k)
    keys = [Limiter(L2_LIMIT) for _ in range(k)]
    org = [Limiter(share) for _ in range(k)]
    out = bytearray(len(events))
    for i, t, key, a in live_requests(events, home, revoked):
        if keys[a].allows(key, t) and org[a].allows(0, t):
            keys[a].add(key, t)
            org[a].add(0, t)
            out[i] = 1
    return out


class Authority:
    """The org's budget, held by actor 0 (the key authority). Its own
    admissions are counted as today, by interlog's limiter over P; tokens
    granted to the other actors are counted over `window` ms (P, or P + the
    lease TTL), unused ones coming back at expiry. A request of actor 0 or a
    grant fits while both together stay below `quota`. With no other actor
    (K = 1) this is the single-actor truth."""

    def __init__(self, quota, window):
        self.quota, self.window = quota, window
        self.own = Limiter(quota)
        self.grants = collections.deque()  # [t, n]
        self.sum = 0
        self.granted = 0

    def _room(self, t):
        while self.grants and self.grants[0][0] <= t - self.window:
            self.sum -= self.grants.popleft()[1]
        return self.quota - self.own.used(0, t) - self.sum

    def allows_own(self, t):
        return self._room(t) > 0

    def grant(self, t, want):
        n = max(0, min(want, self._room(t)))
        if n == 0:
            return None
        entry = [t, n]
        self.grants.append(entry)
        self.sum += n
        self.granted += n
        return entry

    def refund(self, entry, n, t):
        # Still counted only if the grant has not left the window yet.
        if entry[0] > t - self.window:
            entry[1] -= n
            self.sum -= n


def split_lease(events, home, revoked, k, quota, lease, ttl_ms, rtt_ms, window, retry_ms=1000):
    """The org quota in leases: actor 0 counts its own requests against the
    authority's budget directly; another actor asks the authority for
    `lease` tokens when its balance falls to a quarter of a lease (one ask
    in flight), the tokens arrive `rtt_ms` later and expire `ttl_ms` after
    the grant, unused ones going back. A refused ask is repeated after
    `retry_ms`."""
    auth = Authority(quota, window)
    keys = [Limiter(L2_LIMIT) for _ in range(k)]
    held = [collections.deque() for _ in range(k)]  # [expiry, remaining, entry]
    pending = [None] * k  # (arrives_at, entry)
    next_ask = [0] * k
    low = max(1, lease // 4)
    out = bytearray(len(events))
    for i, t, key, a in live_requests(events, home, revoked):
        if a == 0:
            if keys[0].allows(key, t) and auth.allows_own(t):
                keys[0].add(key, t)
                auth.own.add(0, t)
                out[i] = 1
            continue
        h = held[a]
        p = pending[a]
        if p is not None and p[0] <= t:
            entry = p[1]
            h.append([entry[0] + ttl_ms, entry[1], entry])
            pending[a] = None
        while h and (h[0][0] <= t or h[0][1] == 0):
            _, rest, entry = h.popleft()
            if rest:
                auth.refund(entry, rest, t)
        balance = sum(x[1] for x in h)
        if balance <= low and pending[a] is None and t >= next_ask[a]:
            entry = auth.grant(t, lease)
            if entry is None:
                next_ask[a] = t + retry_ms
            else:
                pending[a] = (t + rtt_ms, entry)
        if balance > 0 and keys[a].allows(key, t):
            keys[a].add(key, t)
            h[0][1] -= 1
            out[i] = 1
    return out, auth.granted


# ---------------------------------------------------------------- scoring


def score(events, truth, got, limit_of_key=L2_LIMIT, org_limit=None, revoked=None):
    over = wrongful = stale = excess = 0
    per_key = collections.defaultdict(lambda: [0, 0, 0, 0])  # over, wrongful, excess, admitted
    log = SlidingLog(limit_of_key)
    org_log = SlidingLog(org_limit) if org_limit else None
    org_excess = 0
    for i, (t, k) in enumerate(events):
        g, tr = got[i], truth[i]
        if g:
            per_key[k][3] += 1
            if log.admit(k, t):
                excess += 1
                per_key[k][2] += 1
            if org_log is not None and org_log.admit(0, t):
                org_excess += 1
        if g and not tr:
            over += 1
            per_key[k][0] += 1
            if revoked and k in revoked and t >= revoked[k]:
                stale += 1
        elif tr and not g:
            wrongful += 1
            per_key[k][1] += 1
    return {"over": over, "wrongful": wrongful, "stale": stale, "excess": excess, "org_excess": org_excess,
            "admitted": sum(got), "per_key": per_key}


def peak_actor_rps(load):
    return max(load.values()) if load else 0


def busiest_share(events, home):
    c = collections.Counter(home[key] for _, key in events)
    return max(c.values()) / len(events)


# ---------------------------------------------------------------- storage


def row_bytes(n, content_bytes):
    """Bytes per interaction row: every data-shard migration applied to SQLite
    (D1 is SQLite), N rows of bench/ingest.py's shape inserted for one org, file
    size (pages in use) divided by N. `content_bytes` > 0 pads `content` to
    that length (the default shape's content is ~67 B)."""

    def content(i):
        text = "The quick brown fox asks about order #%d and gets a polite answer." % i
        return (text + " " + "x" * content_bytes)[:content_bytes] if content_bytes else text

    with tempfile.TemporaryDirectory() as d:
        db = sqlite3.connect(str(Path(d) / "rows.sqlite"), isolation_level=None)
        for m in sorted((ROOT / "migrations" / "data").glob("*.sql")):
            db.executescript(m.read_text())
        org = "org_" + "0" * 26
        now = 1_790_000_000_000
        db.execute("INSERT INTO orgs (id, name, created_at, updated_at) VALUES (?, 'bench', ?, ?)", (org, now, now))
        # No storage quota in the way of a large N.
        db.execute("UPDATE orgs SET quota_rows = ?, quota_bytes = ?", (1 << 50, 1 << 50))
        db.execute("BEGIN")
        for i in range(n):
            db.execute(
                "INSERT INTO interactions (org_id, id, type, occurred_at, received_at, actor, session, content, "
                "metadata, idempotency_key) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (org, "int_%026d" % i, "chat.turn", now + i, now + i, "user-%d" % (i % 97), "run-%d" % (i // 10),
                 content(i), '{"channel":"web","n":%d}' % i, "run-%d" % i))
        db.execute("COMMIT")
        pages = db.execute("PRAGMA page_count").fetchone()[0] - db.execute("PRAGMA freelist_count").fetchone()[0]
        size = pages * db.execute("PRAGMA page_size").fetchone()[0]
        used = db.execute("SELECT used_bytes FROM orgs").fetchone()[0]
        per_index = {}
        try:
            for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='interactions'"):
                per_index[name] = None
            rows = db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall()
            per_index = {name: b for name, b in rows if name in per_index or name == "interactions"}
        except sqlite3.OperationalError:
            per_index = {}
        db.close()
    print(f"rows: {n}  sqlite {sqlite3.sqlite_version}  data migrations: {len(list((ROOT / 'migrations' / 'data').glob('*.sql')))}")
    print(f"file (pages in use): {size:,} B  = {size / n:.0f} B/row")
    print(f"quota bytes counted by the trigger (text columns only): {used / n:.0f} B/row")
    for name, b in sorted(per_index.items(), key=lambda x: -(x[1] or 0)):
        if b:
            print(f"  {name:28} {b / n:7.0f} B/row")


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--actors", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--keys", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=1500, help="base org requests/s (Poisson)")
    ap.add_argument("--duration", type=int, default=180, help="seconds simulated")
    ap.add_argument("--zipf", type=float, default=1.1)
    ap.add_argument("--revocations", type=int, default=20)
    ap.add_argument("--push-ms", type=int, default=50, help="revocation push: authority -> key's actor")
    ap.add_argument("--push-loss", type=float, default=0.1, help="share of pushes lost")
    ap.add_argument("--refresh-ms", type=int, default=5000, help="key-ring check when a push is lost")
    ap.add_argument("--org-quota", type=int, default=90_000, help="hypothetical org-wide limit per 60 s")
    ap.add_argument("--lease", type=int, default=500, help="tokens per lease")
    ap.add_argument("--lease-ttl-ms", type=int, default=10_000)
    ap.add_argument("--rtt-ms", type=int, default=25, help="lease request round trip to the authority")
    ap.add_argument("--per-key", type=int, default=5, help="keys listed per variant at the largest K")
    ap.add_argument("--row-bytes", type=int, metavar="N", help="only measure bytes per interaction row with N rows")
    ap.add_argument("--content-bytes", type=int, default=0, help="with --row-bytes: pad content to this length")
    a = ap.parse_args()
    if a.row_bytes:
        row_bytes(a.row_bytes, a.content_bytes)
        return
    if 1 not in a.actors:
        a.actors = [1] + a.actors
    started = time.perf_counter()
    rng = random.Random(a.seed)
    events, prefixes, revoked = workload(rng, a.keys, a.rate, a.duration, a.zipf, a.revocations)
    stale_ms = {}
    for key in sorted(revoked):
        stale_ms[key] = a.refresh_ms if rng.random() < a.push_loss else a.push_ms
    n = len(events)
    per_key_total = collections.Counter(k for _, k in events)
    print(f"seed {a.seed}: {n:,} requests in {a.duration} s from {a.keys:,} keys (Zipf s={a.zipf}); "
          f"org mean {n / a.duration:,.0f} req/s; L2 {L2_LIMIT} / {PERIOD_MS // 1000} s per key; "
          f"{len(revoked)} revocations (push {a.push_ms} ms, {a.push_loss:.0%} lost -> {a.refresh_ms} ms)")
    top = per_key_total.most_common(3)
    print("busiest keys: " + ", ".join(f"{prefixes[k]} {c / a.duration:.0f} req/s" for k, c in top))

    t_keys = truth_keys(events, revoked)
    truth_score = score(events, t_keys, t_keys)
    assert truth_score["excess"] == 0, "the ported limiter broke its guarantee"
    over_l2 = sum(1 for k, v in truth_score["per_key"].items() if per_key_total[k] - v[3] > 0)
    print(f"truth (one actor): admitted {truth_score['admitted']:,}, refused {n - truth_score['admitted']:,}; "
          f"{over_l2} keys were refused at least once")

    rows = []
    details = {}

    def record(variant, k, s, extra=""):
        truth = org_truth if variant in ("static", "lease-P", "lease-PT") else truth_score
        rows.append((variant, k, s["admitted"], s["admitted"] - truth["admitted"], s["over"], s["wrongful"],
                     s["stale"], s["excess"], s["org_excess"], extra))
        details[(variant, k)] = s
        if k == 1:
            bad = {f: s[f] for f in ("over", "wrongful", "stale", "excess", "org_excess") if s[f]}
            assert not bad, f"{variant} at K = 1 differs from the truth: {bad}"

    for k in a.actors:
        home = [place(p, k) for p in prefixes]
        got, load = split_prefix(events, prefixes, revoked, k, stale_ms)
        record("prefix", k, score(events, t_keys, got, revoked=revoked),
               f"busiest actor {busiest_share(events, home):.0%}, peak {peak_actor_rps(load):,} req/s")
    for k in a.actors:
        got = split_request(events, revoked, k, stale_ms)
        record("request", k, score(events, t_keys, got, revoked=revoked))
    for k in a.actors:
        if k == 1:
            got, _ = split_prefix(events, prefixes, revoked, 1, stale_ms)
        elif k % 2:
            continue  # K doubles: odd K has no predecessor
        else:
            got, _ = split_prefix(events, prefixes, revoked, k // 2, stale_ms, rebalance_at=a.duration * 500)
        record("rebal", k, score(events, t_keys, got, revoked=revoked),
               "" if k == 1 else f"K {k // 2} -> {k} at {a.duration // 2} s")

    t_org = truth_org(events, revoked, a.org_quota)
    org_truth = score(events, t_org, t_org, org_limit=a.org_quota)
    assert org_truth["org_excess"] == 0 and org_truth["excess"] == 0
    print(f"org quota {a.org_quota:,} / 60 s (hypothetical), truth admitted {org_truth['admitted']:,}; "
          f"lease {a.lease} tokens, TTL {a.lease_ttl_ms} ms, round trip {a.rtt_ms} ms")
    for k in a.actors:
        home = [place(p, k) for p in prefixes]
        got = split_static(events, home, revoked, k, a.org_quota)
        record("static", k, score(events, t_org, got, org_limit=a.org_quota))
    for name, window in (("lease-P", PERIOD_MS), ("lease-PT", PERIOD_MS + a.lease_ttl_ms)):
        for k in a.actors:
            home = [place(p, k) for p in prefixes]
            got, granted = split_lease(events, home, revoked, k, a.org_quota, a.lease, a.lease_ttl_ms, a.rtt_ms,
                                       window)
            s = score(events, t_org, got, org_limit=a.org_quota)
            record(name, k, s, f"tokens granted to actors 1..K-1: {granted:,}")

    print()
    head = ("variant", "K", "admitted", "vs truth", "over", "wrongful", "(stale)", "key excess", "org excess", "")
    print("{:9} {:>2} {:>9} {:>8} {:>7} {:>9} {:>8} {:>10} {:>10}  {}".format(*head))
    for r in rows:
        print("{:9} {:>2} {:>9,} {:>+8,} {:>7,} {:>9,} {:>8,} {:>10,} {:>10,}  {}".format(*r))

    kmax = max(a.actors)
    if a.per_key and kmax > 1:
        print(f"\nper key at K = {kmax} (the {a.per_key} keys with the most error; requests, truth admitted):")
        for variant in ("prefix", "request", "rebal", "static", "lease-P", "lease-PT"):
            s = details.get((variant, kmax))
            if s is None:
                continue
            truth = truth_score if variant in ("prefix", "request", "rebal") else org_truth
            worst = sorted(s["per_key"].items(), key=lambda kv: -(kv[1][0] + kv[1][1]))[: a.per_key]
            worst = [(k, v) for k, v in worst if v[0] + v[1]]
            if not worst:
                print(f"  {variant:9} none")
                continue
            for k, (over, wrong, exc, adm) in worst:
                print(f"  {variant:9} {prefixes[k]}  {per_key_total[k]:>6,} req  truth {truth['per_key'][k][3]:>6,}"
                      f"  got {adm:>6,}  over {over:>5,}  wrongful {wrong:>5,}  excess {exc:>5,}"
                      + ("  revoked" if k in revoked else ""))
    print(f"\n{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
