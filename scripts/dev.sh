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
trap stop_local EXIT INT TERM
start_local "$STATE" "$PORT"

key=$(node -e "process.stdout.write(JSON.parse(process.argv[1]).key)" "$demo")
org=$(node -e "process.stdout.write(JSON.parse(process.argv[1]).org_id)" "$demo")
cat <<MSG

interlog is running on http://127.0.0.1:$PORT   (log: $SERVER_LOG, Ctrl-C stops it)
demo org:       $org
demo admin key: $key

  curl -H "Authorization: Bearer $key" http://127.0.0.1:$PORT/v1/org

web console:    http://127.0.0.1:$PORT/console/   (sign in with the admin key above)

MSG
tail -n +1 -f "$SERVER_LOG" --pid "$SERVER_PID" | grep --line-buffered -E '^\[wrangler:(info|error)\]|ERROR' || true
wait "$SERVER_PID"
