#!/usr/bin/env bash
# Export memory: a fresh local system, 10,000 then 30,000 interactions, the
# workerd process's resident memory before and during each export (see
# bench/export_memory.py). Run it on a quiet machine:
#   bash bench/export_memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/local-env.sh
bash scripts/build-worker.sh >&2
cargo build --quiet -p interlog-cli >&2
STATE=$(mktemp -d -t interlog-export-mem.XXXXXX)
trap 'stop_local; rm -rf "$STATE"' EXIT
start_local "$STATE" "$(free_port)" --var L2_LIMIT:1000000
url="http://127.0.0.1:$(grep -oE 'Ready on http://127.0.0.1:[0-9]+' "$SERVER_LOG" | grep -oE '[0-9]+$')"
org=$(INTERLOG_PEPPER="$PEPPER" target/debug/interlog-admin create-org --name "Export memory" --persist-to "$PERSIST")
key=$(node -e "process.stdout.write(JSON.parse(process.argv[1]).key)" "$org")
.venv/bin/python bench/export_memory.py "$url" "$key" "$SERVER_PID" "$SERVER_LOG"
