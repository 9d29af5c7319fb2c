"""Ingest benchmark: throughput and latency of single and batch (100) ingest
against a running local system, next to the raw insert rate of SQLite on the
same machine for the same rows and schema, measured in the same run.

Usage: python bench/ingest.py URL INGEST_KEY [--concurrency C] [--single N] [--batches M]
"""

import argparse
import json
import random
import sqlite3
import statistics
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
local = threading.local()


def session():
    if not hasattr(local, "s"):
        local.s = requests.Session()
    return local.s


def item(run: str, i: int) -> dict:
    return {
        "type": "chat.turn",
        "actor": f"user-{i % 97}",
        "session": f"{run}-{i // 10}",
        "content": "The quick brown fox asks about order #%d and gets a polite answer." % i,
        "metadata": {"channel": "web", "n": i},
        "idempotency_key": f"{run}-{i}",
    }


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def run_http(url, key, payloads, path, concurrency, per_request):
    lat, errors = [], []

    def one(body):
        h = {"Authorization": f"Bearer {key}", "Content-Type": "application/json",
             "CF-Connecting-IP": f"198.19.{random.randrange(256)}.{random.randrange(1, 255)}"}
        t0 = time.perf_counter()
        r = session().post(url + path, data=body, headers=h, timeout=60)
        dt = time.perf_counter() - t0
        if r.status_code not in (200, 201):
            errors.append((r.status_code, r.text[:200]))
        lat.append(dt * 1000)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as ex:
        list(ex.map(one, payloads))
    wall = time.perf_counter() - t0
    return {"rate": len(payloads) * per_request / wall, "p50": pct(lat, 50), "p99": pct(lat, 99),
            "requests": len(payloads), "errors": errors, "wall": wall}


def run_sqlite(rows, per_txn):
    schema = (ROOT / "migrations" / "data" / "0001_data.sql").read_text()
    with tempfile.TemporaryDirectory() as d:
        db = sqlite3.connect(Path(d) / "raw.sqlite", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(schema)
        sql = ("INSERT INTO interactions (org_id, id, type, occurred_at, received_at, actor, session, content, "
               "metadata, idempotency_key) VALUES (?,?,?,?,?,?,?,?,?,?)")
        t0 = time.perf_counter()
        for i in range(0, len(rows), per_txn):
            db.execute("BEGIN")
            db.executemany(sql, rows[i:i + per_txn])
            db.execute("COMMIT")
        wall = time.perf_counter() - t0
        db.close()
    return len(rows) / wall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("key")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--single", type=int, default=1000)
    ap.add_argument("--batches", type=int, default=200)
    a = ap.parse_args()

    run = uuid.uuid4().hex[:12]
    singles = [json.dumps(item(run + "s", i)) for i in range(a.single)]
    batches = [json.dumps({"interactions": [item(run + "b", b * 100 + j) for j in range(100)]})
               for b in range(a.batches)]
    now = int(time.time() * 1000)
    rows = []
    for i in range(a.batches * 100):
        it = item(run + "r", i)
        rows.append(("org_bench", f"int_{i:026d}", it["type"], now, now, it["actor"], it["session"], it["content"],
                     json.dumps(it["metadata"]), it["idempotency_key"]))

    single = run_http(a.url, a.key, singles, "/v1/interactions", a.concurrency, 1)
    batch = run_http(a.url, a.key, batches, "/v1/interactions/batch", a.concurrency, 100)
    # The baseline swings with the machine: take the median of three runs.
    raw_batch = statistics.median(run_sqlite(rows, 100) for _ in range(3))
    raw_single = statistics.median(run_sqlite(rows[: a.single * 5], 1) for _ in range(3))

    print(f"ingest benchmark: concurrency {a.concurrency}, {a.single} single requests, {a.batches} batches of 100")
    print(f"{'path':<34}{'interactions/s':>16}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    print(f"{'HTTP single (1 per request)':<34}{single['rate']:16.0f}{single['p50']:9.1f}{single['p99']:9.1f}"
          f"{len(single['errors']):8d}")
    print(f"{'HTTP batch (100 per request)':<34}{batch['rate']:16.0f}{batch['p50']:9.1f}{batch['p99']:9.1f}"
          f"{len(batch['errors']):8d}")
    print(f"{'raw SQLite, 1 row per txn (median of 3)':<34}{raw_single:16.0f}")
    print(f"{'raw SQLite, 100 rows per txn (median of 3)':<34}{raw_batch:16.0f}")
    print(f"ratio batch HTTP / raw SQLite (100 per txn): {batch['rate'] / raw_batch * 100:.1f} %")
    print(f"ratio single HTTP / raw SQLite (1 per txn):  {single['rate'] / raw_single * 100:.1f} %")
    for name, r in (("single", single), ("batch", batch)):
        for e in r["errors"][:3]:
            print(f"  {name} error: {e}")


if __name__ == "__main__":
    main()
