"""Export memory: the serving runtime's resident memory before and during
exports of 10,000 and 30,000 interactions (about 1 KB each), beside a read of
the same rows through the paged listing, to show that an export streams
(its memory does not grow with its size) instead of holding its body.

Usage: python bench/export_memory.py URL KEY SERVER_PGID SERVER_LOG
(KEY with the ingest and read scopes; SERVER_PGID the process group of
`wrangler dev`, whose `workerd` process runs the Worker and its actors;
SERVER_LOG its output, where each export logs the size of the isolate's wasm
linear memory when it ended: that memory only grows, so it shows whether the
Rust side ever held more than a page.)
Prints one JSON object per read.
"""

import json
import os
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests


def workerd_pids(pgid: int) -> list[int]:
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if int(fields[2]) == pgid and comm.startswith("workerd"):
            out.append(int(pid))
    return out


def rss_kib(pids: list[int], field: str = "RssAnon") -> int:
    """Resident memory of `pids` (KiB): `RssAnon` is the heap (wasm and JS
    memory, buffers); the database file SQLite reads is counted apart, in
    `RssFile`/`RssShmem`."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            total += next(int(line.split()[1]) for line in f if line.startswith(field + ":"))
    return total


def headers(key: str) -> dict:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json",
            "CF-Connecting-IP": f"198.19.{random.randrange(256)}.{random.randrange(1, 255)}"}


def ingest(url: str, key: str, start: int, count: int) -> None:
    def one(n: int) -> None:
        items = [{"type": "chat.turn", "actor": f"user-{(n + i) % 97}", "session": f"s-{(n + i) // 10}",
                  "content": f"row {n + i} " + "lorem ipsum dolor " * 55} for i in range(min(100, start + count - n))]
        r = requests.post(f"{url}/v1/interactions/batch", json={"interactions": items}, headers=headers(key), timeout=60)
        r.raise_for_status()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(start, start + count, 100)))


def read_export(url: str, key: str, rows: int) -> int:
    r = requests.get(f"{url}/v1/interactions/export", headers=headers(key), stream=True, timeout=600)
    body, last = 0, b""
    for chunk in r.iter_content(chunk_size=65536):
        body += len(chunk)
        last = (last + chunk)[-4096:]
    end = json.loads(last.rstrip(b"\n").rsplit(b"\n", 1)[-1])["export"]
    assert end["complete"] and end["count"] == rows, end
    return body


def read_listing(url: str, key: str, rows: int) -> int:
    body, cursor, n = 0, None, 0
    while True:
        q = "?limit=200" + (f"&cursor={cursor}" if cursor else "")
        r = requests.get(f"{url}/v1/interactions{q}", headers=headers(key), timeout=60)
        r.raise_for_status()
        body += len(r.content)
        n += len(r.json()["interactions"])
        cursor = r.json()["next_cursor"]
        if cursor is None:
            assert n == rows, n
            return body


def wasm_memory(log: str) -> int | None:
    """The wasm memory size the last finished export logged (bytes)."""
    found = None
    with open(log, errors="replace") as f:
        for line in f:
            if '"event":"export"' in line:
                try:
                    found = json.loads(line[line.index("{"):])["wasm_memory_bytes"]
                except (ValueError, KeyError):
                    pass
    return found


def measure(what: str, read, url: str, key: str, pids: list[int], rows: int) -> dict:
    time.sleep(2)
    before = {f: rss_kib(pids, f) for f in ("RssAnon", "VmRSS")}
    peak, stop = {f: [v] for f, v in before.items()}, threading.Event()

    def sample():
        while not stop.is_set():
            for f in peak:
                peak[f].append(rss_kib(pids, f))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    t0 = time.perf_counter()
    body = read(url, key, rows)
    elapsed = time.perf_counter() - t0
    stop.set()
    sampler.join()
    mib = lambda kib: round(kib / 1024, 1)  # noqa: E731
    return {"read": what, "rows": rows, "body_mib": round(body / 2**20, 1), "seconds": round(elapsed, 1),
            "heap_before_mib": mib(before["RssAnon"]), "heap_growth_mib": mib(max(peak["RssAnon"]) - before["RssAnon"]),
            "rss_before_mib": mib(before["VmRSS"]), "rss_growth_mib": mib(max(peak["VmRSS"]) - before["VmRSS"])}


def main() -> None:
    url, key, pgid, log = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    pids = workerd_pids(pgid)
    assert pids, "no workerd process in that group"
    stored = 0
    for rows in (10_000, 30_000):
        ingest(url, key, stored, rows - stored)
        stored = rows
        # The export, then the same rows through the paged listing (the
        # reference: the same D1 reads, one page per response), then the export again.
        for what, read in (("export", read_export), ("listing", read_listing), ("export", read_export)):
            figures = measure(what, read, url, key, pids, rows)
            if what == "export":
                time.sleep(1)  # the log line reaches the file
                mem = wasm_memory(log)
                figures["wasm_memory_mib"] = None if mem is None else round(mem / 2**20, 2)
            print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
