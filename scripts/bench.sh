#!/usr/bin/env bash
# Benchmarks against a freshly started local system. Prints figures.
#   scripts/bench.sh auth [N]     auth latency: N successes and N failures (default 50)
#   scripts/bench.sh ingest [...] ingest throughput/latency vs raw SQLite (args: see bench/ingest.py)
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-auth}
bash scripts/bootstrap.sh --python >/dev/null
source scripts/local-env.sh
cargo build --quiet --release -p interlog-cli
bash scripts/build-worker.sh >/dev/null 2>&1
STATE=$(mktemp -d -t interlog-bench.XXXXXX)
trap 'stop_local; rm -rf "$STATE"' EXIT
start_local "$STATE" "$(free_port)"
url="http://127.0.0.1:$(grep -oE 'Ready on http://127.0.0.1:[0-9]+' "$SERVER_LOG" | grep -oE '[0-9]+$')"
org=$(INTERLOG_PEPPER="$PEPPER" target/release/interlog-admin create-org --name "Bench org" --persist-to "$PERSIST")
key=$(node -e "process.stdout.write(JSON.parse(process.argv[1]).key)" "$org")
case "$what" in
  auth) .venv/bin/python bench/auth_latency.py "$url" "$key" "${2:-50}" ;;
  ingest) shift; .venv/bin/python bench/ingest.py "$url" "$key" "$@" ;;
  *) echo "unknown benchmark: $what" >&2; exit 2 ;;
esac
