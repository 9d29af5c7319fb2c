"""Moving an org between data shards: how long the move takes and how long
the org's writes wait, for orgs of a few sizes, side by side with the same
writer's latency before the move (the baseline, measured in the same run).

Usage: bench/move.py URL ADMIN PERSIST ROWS... (INTERLOG_PEPPER in the
environment). Each size gets a fresh org on DATA_1 filled through the batch
API, then `interlog-admin move-org --to DATA_2` runs while one writer ingests
continuously (retrying a 503 with the same idempotency key, as a client
should). Loopback only.
"""

import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time

import requests

URL, ADMIN, PERSIST = sys.argv[1], sys.argv[2], sys.argv[3]
SIZES = [int(n) for n in sys.argv[4:]] or [1000, 10000]


def ip() -> str:
    return f"198.18.{random.randrange(256)}.{random.randrange(1, 255)}"


def admin(*args: str) -> dict:
    out = subprocess.run([ADMIN, *args, "--persist-to", PERSIST], capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        sys.exit(f"interlog-admin {args[0]} failed: {out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def post(key: str, path: str, body: dict) -> requests.Response:
    h = {"Authorization": f"Bearer {key}", "CF-Connecting-IP": ip()}
    return requests.post(URL + path, json=body, headers=h, timeout=60)


def fill(key: str, rows: int) -> None:
    for start in range(0, rows, 100):
        items = [{"type": "message", "content": f"row {i} " + "x" * 200} for i in range(start, min(rows, start + 100))]
        r = post(key, "/v1/interactions/batch", {"interactions": items})
        if r.status_code not in (200, 201):
            sys.exit(f"fill failed: {r.status_code} {r.text[:200]}")


class Writer(threading.Thread):
    """One client ingesting one interaction at a time; each write's latency
    includes its retries, so a paused write shows as one long write."""

    def __init__(self, key: str):
        super().__init__(daemon=True)
        self.key, self.stop, self.samples, self.retries, self.n = key, False, [], 0, 0

    def run(self) -> None:
        while not self.stop:
            self.n += 1
            t0 = time.perf_counter()
            while True:
                r = post(self.key, "/v1/interactions", {"type": "probe", "idempotency_key": f"w{self.n}"})
                if r.status_code in (200, 201):
                    break
                self.retries += 1
                time.sleep(0.2)
            self.samples.append((t0, time.perf_counter() - t0))

    def between(self, a: float, b: float) -> list:
        return [s for t, s in self.samples if a <= t <= b]


def pct(xs: list, p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] * 1000 if xs else float("nan")


print(f"{'rows':>7} {'move s':>7} {'steps':>6} {'writes before p50/max ms':>25} {'writes during p50/max ms':>25} {'503s':>5}")
for rows in SIZES:
    org = admin("create-org", "--name", f"Move {rows}", "--shard", "DATA_1")
    fill(org["key"], rows)
    w = Writer(org["key"])
    w.start()
    time.sleep(5)
    t_move = time.perf_counter()
    proc = subprocess.run(
        [ADMIN, "move-org", "--org", org["org_id"], "--to", "DATA_2", "--url", URL, "--persist-to", PERSIST],
        capture_output=True, text=True, timeout=3600,
    )
    t_done = time.perf_counter()
    time.sleep(2)
    w.stop = True
    w.join()
    if proc.returncode != 0:
        sys.exit(f"move-org failed: {proc.stderr}")
    steps = len([line for line in proc.stderr.splitlines() if line.strip()])
    before, during = w.between(t_move - 5, t_move), w.between(t_move, t_done)
    print(
        f"{rows:>7} {t_done - t_move:>7.1f} {steps:>6} "
        f"{pct(before, .5):>12.0f} / {pct(before, 1):>10.0f} {pct(during, .5):>12.0f} / {max(during, default=0) * 1000:>10.0f} "
        f"{w.retries:>5}"
    )
