#!/usr/bin/env bash
# Checks the deploy configuration offline, so a broken staging or production
# config fails the test command rather than a deploy: `wrangler deploy
# --dry-run` of each environment of wrangler.toml (it reads the config,
# bundles the existing build and checks the Durable Object classes against
# its exports, without contacting an account), then that every binding the
# code reads (core::config::binding) and the required vars are bound, that no
# test-only var is, that the directory (DB) and at least one data shard
# (DATA_…) are bound with their role's migrations_dir and distinct databases,
# and the same for a config written by scripts/deploy-config.sh with sample ids.
# INTERLOG_WRANGLER_CONFIG checks another config of this folder instead of
# wrangler.toml (the tests use it on altered copies).
set -euo pipefail
cd "$(dirname "$0")/.."
export INTERLOG_PREBUILT=1 WRANGLER_SEND_METRICS=false CI=true
WRANGLER=node_modules/.bin/wrangler
OUT="$(mktemp -d -t interlog-deploy-check.XXXXXX)"
RENDERED="wrangler.check-$$.local.toml"
SOURCE="${INTERLOG_WRANGLER_CONFIG:-wrangler.toml}"
trap 'rm -rf "$OUT" "$RENDERED"' EXIT

# The names the code reads, from the one place that declares them.
# (A name ending in `_` is a prefix, e.g. of the data shards, not a binding.)
mapfile -t BINDINGS < <(sed -n '/^pub mod binding {/,/^}/p' core/src/config.rs | grep -oE 'pub const [A-Z0-9_]+: &str = "[A-Z0-9_]+"' | grep -oE '"[A-Z0-9_]+"' | tr -d '"' | grep -v '_$')
REQUIRED_VARS=(PEPPER_VERSION PEPPER_PREVIOUS_VERSION CORS_PREFLIGHT_ORIGINS)
FORBIDDEN_VARS=(TEST_FAULTS L2_MODE)
[[ ${#BINDINGS[@]} -ge 5 ]] || { echo "deploy-check: could not read the binding names from core/src/config.rs" >&2; exit 1; }

failed=0
# d1_of CONFIG ENV: "binding database_name migrations_dir" per D1 binding of [env.ENV].
d1_of() {
  awk -F'"' -v sec="[[env.$2.d1_databases]]" '
    function flush() { if (b != "") print b, (n == "" ? "-" : n), (m == "" ? "-" : m); b = n = m = "" }
    /^\[/ { flush(); mine = ($0 == sec); next }
    mine && /^binding = / { b = $2 }
    mine && /^database_name = / { n = $2 }
    mine && /^migrations_dir = / { m = $2 }
    END { flush() }
  ' "$1"
}
# check_d1 CONFIG ENV LOG: the directory and the data shards of the environment.
check_d1() {
  local config="$1" env="$2" log="$3" binding name dir shards=0 problems=() names=" "
  while read -r binding name dir; do
    if [[ " $names " == *" $name "* ]]; then problems+=("database $name is bound twice"); fi
    names+="$name "
    case "$binding" in
      DB) [[ $dir == migrations/directory ]] || problems+=("DB must use migrations_dir = \"migrations/directory\"") ;;
      DATA_*)
        shards=$((shards + 1))
        [[ $binding =~ ^DATA_[A-Z0-9_]{1,35}$ ]] || problems+=("$binding is not a shard name (DATA_ then A-Z, 0-9, _)")
        [[ $dir == migrations/data ]] || problems+=("$binding must use migrations_dir = \"migrations/data\"")
        grep -qE "^env\.$binding \(" "$log" || problems+=("$binding is not in the dry run's bindings") ;;
      *) problems+=("unexpected D1 binding $binding") ;;
    esac
  done < <(d1_of "$config" "$env")
  [[ $shards -ge 1 ]] || problems+=("no data shard bound (a DATA_… D1 binding; docs/deploy.md)")
  if [[ ${#problems[@]} -gt 0 ]]; then
    local p
    for p in "${problems[@]}"; do echo "deploy-check: $config [env.$env]: $p" >&2; done
    failed=1
    return 1
  fi
  SHARDS=$shards
}
check() { # config env
  local config="$1" env="$2" log="$OUT/$2-$1.log"
  if ! "$WRANGLER" deploy --dry-run --outdir "$OUT/$env" --config "$config" --env "$env" >"$log" 2>&1; then
    echo "deploy-check: FAILED wrangler deploy --dry-run --config $config --env $env:" >&2
    grep -vE '^\s*$' "$log" | tail -n 15 >&2
    failed=1
    return
  fi
  local missing=()
  for name in "${BINDINGS[@]}" "${REQUIRED_VARS[@]}"; do
    grep -qE "^env\.$name \(" "$log" || missing+=("$name")
  done
  for name in "${FORBIDDEN_VARS[@]}"; do
    if grep -qE "^env\.$name \(" "$log"; then
      echo "deploy-check: $config [env.$env] binds the test-only var $name" >&2
      failed=1
    fi
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    echo "deploy-check: $config [env.$env] lacks bindings the code reads: ${missing[*]}" >&2
    failed=1
    return
  fi
  check_d1 "$config" "$env" "$log" || return 0
  echo "deploy-check: $config --env $env: dry run ok, ${#BINDINGS[@]} bindings, $SHARDS data shard(s) and ${#REQUIRED_VARS[@]} vars bound"
}

for env in staging production; do
  check "$SOURCE" "$env"
done
# Sample ids: one per database (the directory's, then each data shard's).
n=1
while read -r binding _; do
  n=$((n + 1))
  if [[ $binding == DATA_* ]]; then
    export "INTERLOG_D1_DATABASE_ID_$binding=00000000-0000-4000-8000-$(printf '%012d' "$n")"
  fi
done < <(d1_of "$SOURCE" production)
INTERLOG_D1_DATABASE_ID=00000000-0000-4000-8000-000000000001 \
  INTERLOG_SECRETS_STORE_ID=0123456789abcdef0123456789abcdef INTERLOG_WRANGLER_CONFIG="$SOURCE" \
  INTERLOG_CUSTOM_DOMAIN=api.example.com INTERLOG_CONFIG_OUT="$RENDERED" bash scripts/deploy-config.sh production >/dev/null
check "$RENDERED" production
exit $failed
