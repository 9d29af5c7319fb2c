#!/usr/bin/env bash
# The run command: starts the whole system locally (wrangler dev: workerd,
# local D1, Durable Objects, alarms, rate limiting, Secrets Store) with the
# migrations applied, creates a demo org and prints its admin key.
# State lives in .interlog-dev/ (pass --fresh to start over). PORT=8787 default.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
source scripts/local-env.sh
STATE=.interlog-dev
PORT=${PORT:-8787}
[[ "${1:-}" == "--fresh" ]] && rm -rf "$STATE"

cargo build --quiet --release -p interlog-cli
bash scripts/build-worker.sh
prepare_state "$STATE"
demo=$(INTERLOG_PEPPER="$PEPPER" target/release/interlog-admin create-org --name "Demo org" --persist-to "$PERSIST")

INTERLOG_PREBUILT=1 setsid "$WRANGLER" dev --ip 127.0.0.1 --port "$PORT" --persist-to "$PERSIST" \
  --show-interactive-dev-session=false > "$STATE/wrangler.log" 2>&1 &
pid=$!
trap 'kill -- -$pid 2>/dev/null || true' EXIT INT TERM
wait_ready "$STATE/wrangler.log" "$pid"

key=$(node -e "process.stdout.write(JSON.parse(process.argv[1]).key)" "$demo")
org=$(node -e "process.stdout.write(JSON.parse(process.argv[1]).org_id)" "$demo")
cat <<MSG

interlog is running on http://127.0.0.1:$PORT   (log: $STATE/wrangler.log, Ctrl-C stops it)
demo org:       $org
demo admin key: $key

  curl -H "Authorization: Bearer $key" http://127.0.0.1:$PORT/v1/org

MSG
tail -n +1 -f "$STATE/wrangler.log" --pid "$pid" | grep --line-buffered -E '^\[wrangler:(info|warn|error)\]|ERROR|Error' || true
wait "$pid"
