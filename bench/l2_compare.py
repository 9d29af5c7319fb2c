"""L2 benchmark: the in-memory limiter of the OrgActor versus a bench-only
sliding window with a D1 write and read per request (`L2_MODE=d1`), side by
side in one run against two local servers with the same load.

Usage: python bench/l2_compare.py MEMORY_URL MEMORY_KEY D1_URL D1_KEY [--requests N] [--concurrency C]
"""

import argparse
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

local = threading.local()


def session():
    if not hasattr(local, "s"):
        local.s = requests.Session()
    return local.s


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def run(url, key, n, concurrency):
    lat, statuses = [], {}

    def one(i):
        h = {"Authorization": f"Bearer {key}",
             "CF-Connecting-IP": f"198.19.{random.randrange(256)}.{random.randrange(1, 255)}"}
        t0 = time.perf_counter()
        r = session().get(url + "/v1/interactions?limit=1", headers=h, timeout=60)
        lat.append((time.perf_counter() - t0) * 1000)
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as ex:
        list(ex.map(one, range(n)))
    wall = time.perf_counter() - t0
    return {"rps": n / wall, "p50": pct(lat, 50), "p99": pct(lat, 99), "statuses": statuses}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("memory_url")
    ap.add_argument("memory_key")
    ap.add_argument("d1_url")
    ap.add_argument("d1_key")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=32)
    a = ap.parse_args()
    # Warm both (isolate start, key load, checkpoint restore), then measure.
    run(a.memory_url, a.memory_key, 50, 4)
    run(a.d1_url, a.d1_key, 50, 4)
    mem = run(a.memory_url, a.memory_key, a.requests, a.concurrency)
    d1 = run(a.d1_url, a.d1_key, a.requests, a.concurrency)
    print(f"L2 limiter, {a.requests} authenticated GETs at concurrency {a.concurrency} per variant")
    print(f"{'variant':<36}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}  statuses")
    print(f"{'in-DO memory (checkpointed)':<36}{mem['rps']:9.0f}{mem['p50']:9.1f}{mem['p99']:9.1f}  {mem['statuses']}")
    print(f"{'D1 query per request (bench only)':<36}{d1['rps']:9.0f}{d1['p50']:9.1f}{d1['p99']:9.1f}  {d1['statuses']}")
    print(f"throughput ratio memory / D1: {mem['rps'] / d1['rps']:.2f}x; p99 ratio D1 / memory: {d1['p99'] / mem['p99']:.2f}x")


if __name__ == "__main__":
    main()
