#!/usr/bin/env bash
# Benchmarks against a freshly started local system. Prints figures.
#   scripts/bench.sh auth [N]     auth latency: N successes and N failures (default 50)
#   scripts/bench.sh ingest [...] ingest throughput/latency vs raw SQLite (args: see bench/ingest.py)
#   scripts/bench.sh timing [N]   auth-failure/429 timing uniformity: N samples per outcome (default 300), KS per pair
#   scripts/bench.sh load [SECONDS] [CONCURRENCY] [ORGS]      mixed load (default 300 s, 8, 8) in the bench environment
#   scripts/bench.sh load-restart [SECONDS] [RESTART_AT] [CONCURRENCY] [ORGS]
#                                 the same, stopping and restarting the server at RESTART_AT s (default 180, 80, 8, 6)
#   scripts/bench.sh l2 [N] [C]   L2: native limiter decisions/s and bytes per key, then the in-DO limiter
#                                 vs a bench-only D1-query-per-request limiter, side by side (default 2000, 32)
#   scripts/bench.sh hotpath [SECONDS]
#                                 authenticated GET /v1/org under wrk at concurrency 16 and 64 (default 15 s each),
#                                 side by side with three baseline Workers (bench/hotpath/) in the same run
#   scripts/bench.sh move [ROWS...]
#                                 moving an org of ROWS rows (default 1000 10000) from DATA_1 to DATA_2 while one
#                                 client writes: the move's time and the writer's latency before and during it
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-auth}
# Set-up and builds report their progress and errors on stderr (a cold wasm
# build takes minutes); stdout carries the figures only.
step() { printf '==> %s\n' "$*" >&2; }
step "bootstrap"
bash scripts/bootstrap.sh --python >&2
source scripts/local-env.sh
step "build: operator CLI (release)"
cargo build --release -p interlog-cli >&2
step "build: wasm Worker"
bash scripts/build-worker.sh >&2
STATE=$(mktemp -d -t interlog-bench.XXXXXX)
trap 'stop_local; rm -rf "$STATE"' EXIT
start_local "$STATE" "$(free_port)"
url="http://127.0.0.1:$(grep -oE 'Ready on http://127.0.0.1:[0-9]+' "$SERVER_LOG" | grep -oE '[0-9]+$')"
org=$(INTERLOG_PEPPER="$PEPPER" target/release/interlog-admin create-org --name "Bench org" --persist-to "$PERSIST")
key=$(node -e "process.stdout.write(JSON.parse(process.argv[1]).key)" "$org")

# Helpers of the timing/load benchmarks (crate loadgen/, binary interlog-load).
bench_admin() { INTERLOG_PEPPER="$PEPPER" target/release/interlog-admin "$@" --persist-to "$PERSIST"; }
json_field() { node -e "process.stdout.write(String(JSON.parse(process.argv[1])[process.argv[2]]))" "$1" "$2"; }
# The bench environment: L2 out of the way, retention alarms every few seconds.
BENCH_VARS=(--var L2_LIMIT:1000000 --var RETENTION_INTERVAL_MS:2000 --var RETENTION_BUSY_INTERVAL_MS:300)
bench_env_start() {
  stop_local
  BENCH_PORT=$(free_port)
  start_local "$STATE" "$BENCH_PORT" "${BENCH_VARS[@]}"
  url="http://127.0.0.1:$BENCH_PORT"
}
# bench_orgs N FILE: the first org plus N-1 more, one operator JSON line each.
bench_orgs() {
  echo "$org" > "$2"
  for _ in $(seq 2 "$1"); do bench_admin create-org --name "Load org" >> "$2"; done
}
# bench_d1_counts: interactions stored over every data shard (an org's rows
# are on one shard, so the per-shard counts add up).
bench_d1_counts() {
  stop_local # the running server can hold the database locked
  local binding stored=0 distinct=0 r
  for binding in "${D1_BINDINGS[@]}"; do
    [[ $binding == DATA_* ]] || continue
    r=$("$WRANGLER" d1 execute "$binding" --local --persist-to "$PERSIST" --json --command \
      "SELECT COUNT(*) AS stored, COUNT(DISTINCT org_id || '/' || idempotency_key) AS distinct_keys FROM interactions" |
      node -e "const r=JSON.parse(require('fs').readFileSync(0,'utf8'))[0].results[0];console.log(r.stored, r.distinct_keys)") ||
      { echo "D1 cross-check: query of $binding failed" >&2; return 0; }
    stored=$(( stored + ${r% *} )); distinct=$(( distinct + ${r#* } ))
  done
  echo "D1 cross-check: stored $stored distinct (org, idempotency key) $distinct"
}
# hotpath_keys DIR: 30 interlog keys in 6 orgs (DIR/interlog.keys) and 30
# baseline keys whose digests the D1-shaped baseline stores (DIR/baseline.keys).
hotpath_keys() {
  : > "$1/interlog.keys"
  for _ in $(seq 6); do
    local o; o=$(bench_admin create-org --name "Hotpath org")
    json_field "$o" key >> "$1/interlog.keys"; echo >> "$1/interlog.keys"
    for _ in $(seq 4); do
      json_field "$(bench_admin create-key --org "$(json_field "$o" org_id)" --scopes admin --name hotpath)" key \
        >> "$1/interlog.keys"
      echo >> "$1/interlog.keys"
    done
  done
  node bench/hotpath/seed.mjs "$1/baseline.keys" > "$1/seed.sql"
}
# hotpath_baseline NAME PORT DIR: starts bench/hotpath/NAME.toml with wrangler dev; sets HOT_PID.
hotpath_baseline() {
  local dir="$3/$1" log="$3/$1.log"
  mkdir -p "$dir"
  if [[ $1 == d1_shape ]]; then
    "$WRANGLER" d1 execute DB --local --config "bench/hotpath/$1.toml" --persist-to "$dir" --file "$3/seed.sql" >/dev/null
  fi
  hotpath_serve "bench/hotpath/$1.toml" "$2" "$dir" "$log"
}
# hotpath_serve CONFIG PORT PERSIST LOG [--var NAME:VALUE]...: starts a Worker
# with bench/hotpath/serve.mjs (wrangler's dev server without the DevTools
# inspector session that relays every console call); sets HOT_PID.
hotpath_serve() {
  INTERLOG_PREBUILT=1 setsid node bench/hotpath/serve.mjs --config "$1" --port "$2" --persist-to "$3" "${@:5}" \
    > "$4" 2>&1 &
  HOT_PID=$!
  wait_ready "$4" "$HOT_PID"
}
case "$what" in
  l2)
    cargo run --quiet --release -p interlog-core --example limiter_bench
    # Two servers with the same load: in-memory L2 (default) and L2_MODE=d1.
    stop_local
    mem_state="$STATE/mem"; d1_state="$STATE/d1"
    mem_port=$(free_port); start_local "$mem_state" "$mem_port" --var L2_LIMIT:1000000
    mem_pid=$SERVER_PID
    mem_key=$(json_field "$(INTERLOG_PEPPER="$PEPPER" target/release/interlog-admin create-org --name L2mem --persist-to "$PERSIST")" key)
    SERVER_PID=
    d1_port=$(free_port); start_local "$d1_state" "$d1_port" --var L2_LIMIT:1000000 --var L2_MODE:d1
    d1_key=$(json_field "$(INTERLOG_PEPPER="$PEPPER" target/release/interlog-admin create-org --name L2d1 --persist-to "$PERSIST")" key)
    trap 'stop_local; kill -- "-$mem_pid" 2>/dev/null || true; rm -rf "$STATE"' EXIT
    .venv/bin/python bench/l2_compare.py "http://127.0.0.1:$mem_port" "$mem_key" "http://127.0.0.1:$d1_port" "$d1_key" \
      --requests "${2:-2000}" --concurrency "${3:-32}"
    ;;
  auth) .venv/bin/python bench/auth_latency.py "$url" "$key" "${2:-50}" ;;
  move) shift; INTERLOG_PEPPER="$PEPPER" .venv/bin/python bench/move.py "$url" target/release/interlog-admin "$PERSIST" "$@" ;;
  ingest) shift; .venv/bin/python bench/ingest.py "$url" "$key" "$@" ;;
  timing)
    cargo build --quiet --release -p interlog-loadgen
    org_id=$(json_field "$org" org_id)
    revoked=$(bench_admin create-key --org "$org_id" --scopes admin --name "timing revoked")
    expired=$(bench_admin create-key --org "$org_id" --scopes admin --name "timing expired" --expires-at 2020-01-01T00:00:00Z)
    target/release/interlog-load timing --url "$url" --admin-key "$key" --samples "${2:-300}" \
      --revoked-key "$(json_field "$revoked" key)" --expired-key "$(json_field "$expired" key)" ;;
  load)
    cargo build --quiet --release -p interlog-loadgen
    bench_env_start
    bench_orgs "${4:-8}" "$STATE/orgs.jsonl"
    status=0
    target/release/interlog-load load --url "$url" --orgs-file "$STATE/orgs.jsonl" --duration "${2:-300}" \
      --concurrency "${3:-8}" || status=$?
    bench_d1_counts
    exit "$status" ;;
  load-restart)
    cargo build --quiet --release -p interlog-loadgen
    bench_env_start
    # One more org than loaded: the last stays quiet (its alarm is probed).
    bench_orgs "$(( ${5:-6} + 1 ))" "$STATE/orgs.jsonl"
    restart_at=${3:-80}
    target/release/interlog-load load --url "$url" --orgs-file "$STATE/orgs.jsonl" --duration "${2:-180}" \
      --concurrency "${4:-8}" --restart-at "$restart_at" --ready-file "$STATE/ready" &
    load_pid=$!
    while [[ ! -e "$STATE/ready" ]]; do kill -0 "$load_pid" || break; sleep 0.2; done
    sleep "$restart_at"
    echo "bench: stopping the server at ~${restart_at} s" >&2
    stop_local
    start_local "$STATE" "$BENCH_PORT" "${BENCH_VARS[@]}"
    echo "bench: server started again" >&2
    status=0
    wait "$load_pid" || status=$?
    bench_d1_counts
    exit "$status" ;;
  hotpath)
    command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
    bench_env_start
    hot="$STATE/hotpath"; mkdir -p "$hot/out"
    hotpath_keys "$hot"
    pids=()
    targets=${HOTPATH_TARGETS:-floor memory_do d1_shape interlog}
    for base in floor memory_do d1_shape; do
      [[ " $targets " == *" $base "* ]] || continue
      port=$(free_port)
      hotpath_baseline "$base" "$port" "$hot"
      pids+=("$HOT_PID"); eval "pid_$base=$HOT_PID"
      eval "url_$base=http://127.0.0.1:$port"
    done
    # interlog too runs under serve.mjs, on the state the keys were made in.
    stop_local
    hotpath_serve wrangler.toml "$BENCH_PORT" "$PERSIST" "$hot/interlog.log" "${BENCH_VARS[@]}"
    pids+=("$HOT_PID"); interlog_pid=$HOT_PID
    trap 'for p in "${pids[@]}"; do kill -- "-$p" 2>/dev/null || true; done; rm -rf "$STATE"' EXIT
    for target in $targets; do
      target_url=$url; keys="$hot/interlog.keys"; pgid=$interlog_pid
      if [[ $target != interlog ]]; then eval "target_url=\$url_$target pgid=\$pid_$target"; keys="$hot/baseline.keys"; fi
      for c in ${HOTPATH_CONCURRENCY:-16 64}; do
        echo "bench: $target at concurrency $c" >&2
        HOTPATH_KEYS="$keys" wrk -t2 -c"$c" -d3s -s bench/hotpath/requests.lua "$target_url" >/dev/null # warm-up
        cpu0=$(bash bench/hotpath/cpu.sh "$pgid")
        HOTPATH_KEYS="$keys" wrk -t2 -c"$c" -d"${2:-15}s" --latency -s bench/hotpath/requests.lua "$target_url" \
          > "$hot/out/$target.c$c.txt"
        echo "Server CPU ms: $(( $(bash bench/hotpath/cpu.sh "$pgid") - cpu0 ))" >> "$hot/out/$target.c$c.txt"
      done
    done
    .venv/bin/python bench/hotpath/report.py "$hot/out" ;;
  *) echo "unknown benchmark: $what" >&2; exit 2 ;;
esac
