"""Prints the table of `scripts/bench.sh hotpath` from wrk's outputs.

Usage: report.py DIR   (DIR holds one `NAME.cCONCURRENCY.txt` wrk --latency output each)
"""
import re
import sys
from pathlib import Path

ORDER = ["floor", "memory_do", "d1_shape", "interlog"]
LABEL = {
    "floor": "floor only (80 ms timer)",
    "memory_do": "JS: floor + HMAC + DO from memory",
    "d1_shape": "JS: D1 lookup + HMAC + DO reading D1",
    "interlog": "interlog GET /v1/org",
}


def ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse(path: Path) -> dict:
    out = path.read_text()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    pct = {p: ms(v) for p, v in re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M)}
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    total = re.search(r"(\d+) requests in", out)
    cpu = re.search(r"Server CPU ms: (\d+)", out)
    cpu_per_req = int(cpu.group(1)) / int(total.group(1)) if cpu and total and int(total.group(1)) else None
    return {"rps": rps, "p50": pct["50"], "p99": pct["99"], "non2xx": int(bad.group(1)) if bad else 0,
            "socket": errors.group(1) if errors else "", "cpu": cpu_per_req}


def main() -> None:
    d = Path(sys.argv[1])
    runs = {}
    for f in sorted(d.glob("*.c*.txt")):
        name, conc = f.stem.split(".c")
        runs[(name, int(conc))] = parse(f)
    concs = sorted({c for _, c in runs})
    for c in concs:
        print(f"\nconcurrency {c}")
        print(f"  {'worker':40} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'CPU ms/req':>11}")
        for name in ORDER:
            r = runs.get((name, c))
            if r:
                print(f"  {LABEL[name]:40} {r['rps']:8.1f} {r['p50']:8.1f} {r['p99']:8.1f} {r['non2xx']:8}"
                  + (f" {r['cpu']:11.2f}" if r["cpu"] is not None else f" {'-':>11}")
                      + (f"  socket errors: {r['socket']}" if r["socket"] else ""))
        il, mem, fl = runs.get(("interlog", c)), runs.get(("memory_do", c)), runs.get(("floor", c))
        if il and mem:
            print(f"  interlog / memory-DO throughput: {il['rps'] / mem['rps']:.2f}"
                  + (f"   interlog / floor-only throughput: {il['rps'] / fl['rps']:.2f}" if fl else "")
                  + f"   p50 interlog - memory-DO: {il['p50'] - mem['p50']:+.1f} ms")


if __name__ == "__main__":
    main()
