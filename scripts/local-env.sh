# Sourced by dev.sh and test.sh: prepares a local state folder for wrangler
# (D1 migrations applied to the directory and every data shard, pepper created
# in the local Secrets Store).
# Usage: prepare_state DIR  → sets PERSIST, PEPPER
set -euo pipefail
export WRANGLER_SEND_METRICS=false CI=true
WRANGLER=node_modules/.bin/wrangler
SECRET_STORE_ID=$(awk -F'"' '/^store_id/ { print $2; exit }' wrangler.toml)
SECRET_NAME=$(awk -F'"' '/^secret_name/ { print $2; exit }' wrangler.toml)
# The local D1 bindings: the directory (DB) and the data shards (DATA_…), each
# with its own migrations_dir, from the top-level [[d1_databases]] of wrangler.toml.
mapfile -t D1_BINDINGS < <(awk -F'"' '/^\[/ { top = ($0 == "[[d1_databases]]") } top && /^binding = / { print $2 }' wrangler.toml)
[[ ${#D1_BINDINGS[@]} -ge 2 && ${D1_BINDINGS[0]} == DB ]] || { echo "local-env: no DB and DATA_ bindings in wrangler.toml" >&2; exit 1; }

random_hex() { node -e "process.stdout.write(require('crypto').randomBytes($1).toString('hex'))"; }
free_port() { node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{process.stdout.write(String(s.address().port));s.close()})"; }

prepare_state() {
  local dir=$1
  PERSIST="$dir/persist"
  mkdir -p "$dir"
  if [[ ! -s "$dir/pepper" ]]; then
    rm -rf "$PERSIST"
    (umask 077 && random_hex 32 > "$dir/pepper")
    "$WRANGLER" secrets-store secret create "$SECRET_STORE_ID" --name "$SECRET_NAME" \
      --value "$(cat "$dir/pepper")" --scopes workers --persist-to "$PERSIST" >/dev/null
  fi
  PEPPER=$(cat "$dir/pepper")
  local binding
  for binding in "${D1_BINDINGS[@]}"; do
    if ! "$WRANGLER" d1 migrations apply "$binding" --local --persist-to "$PERSIST" > "$dir/migrations.log" 2>&1; then
      cat "$dir/migrations.log" >&2
      echo "local-env: the $binding migrations do not apply to $PERSIST (a state from before the sharded layout? start over with scripts/dev.sh --fresh)" >&2
      return 1
    fi
  done
}

# start_local STATE_DIR PORT [WRANGLER_DEV_ARGS...]: prepares the state and starts `wrangler dev` in
# its own process group (prebuilt wasm, no rebuild); sets SERVER_PID and
# SERVER_LOG; stop_local stops it. Waits for the "Ready on" line.
start_local() {
  prepare_state "$1"
  SERVER_LOG="$1/wrangler.log"
  # Each server gets its own inspector port, so several can run side by side.
  INTERLOG_PREBUILT=1 setsid "$WRANGLER" dev --ip 127.0.0.1 --port "$2" --persist-to "$PERSIST" \
    --inspector-port "$(free_port)" --show-interactive-dev-session=false "${@:3}" > "$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
  wait_ready "$SERVER_LOG" "$SERVER_PID"
}

stop_local() {
  [[ -n "${SERVER_PID:-}" ]] || return 0
  kill -- "-$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}

# wait_ready LOG PID: until wrangler prints its "Ready on" line (or dies / 180 s).
wait_ready() {
  local log=$1 pid=$2
  for _ in $(seq 360); do
    grep -q "Ready on" "$log" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; echo "wrangler dev exited" >&2; return 1; }
    sleep 0.5
  done
  cat "$log" >&2
  echo "wrangler dev did not become ready" >&2
  return 1
}
