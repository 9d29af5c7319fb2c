"""Auth latency benchmark: N successful and N failed authentications (each
failure reason in turn), sequential on one keep-alive connection, against a
running local system. Prints p50/p90/p99/max per outcome in milliseconds.

Usage: python bench/auth_latency.py URL ADMIN_KEY [N]
"""

import random
import statistics
import sys
import time

import requests

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    url, key = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 50
    body = key[len("ck_live_"):]
    wrong = "ck_live_" + body[:8] + ("0" if body[8] != "0" else "1") + body[9:]
    unknown = "ck_live_" + "".join(random.choice(CROCKFORD) for _ in range(26))
    failing = [None, "ck_live_short", unknown, wrong]
    s = requests.Session()
    samples = {"success": [], "failure": []}
    for i in range(n):
        for outcome, cred in (("success", key), ("failure", failing[i % len(failing)])):
            h = {"CF-Connecting-IP": f"198.18.{i % 250}.{1 + i // 250}"}
            if cred:
                h["Authorization"] = f"Bearer {cred}"
            t0 = time.perf_counter()
            r = s.get(url + "/v1/org", headers=h, timeout=30)
            dt = (time.perf_counter() - t0) * 1000
            assert r.status_code == (200 if outcome == "success" else 401), r.text
            samples[outcome].append(dt)
    print(f"auth latency, {n} sequential requests per outcome (ms)")
    print(f"{'outcome':<10}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}{'mean':>8}")
    for outcome, xs in samples.items():
        print(f"{outcome:<10}{pct(xs, 50):8.1f}{pct(xs, 90):8.1f}{pct(xs, 99):8.1f}{max(xs):8.1f}{statistics.mean(xs):8.1f}")


if __name__ == "__main__":
    main()
