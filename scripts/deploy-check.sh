#!/usr/bin/env bash
# Checks the deploy configuration offline, so a broken staging or production
# config fails the test command rather than a deploy: `wrangler deploy
# --dry-run` of each environment of wrangler.toml (it reads the config,
# bundles the existing build and checks the Durable Object classes against
# its exports, without contacting an account), then that every binding the
# code reads (core::config::binding) and the required vars are bound, that no
# test-only var is, and the same for a config written by
# scripts/deploy-config.sh with sample ids.
set -euo pipefail
cd "$(dirname "$0")/.."
export INTERLOG_PREBUILT=1 WRANGLER_SEND_METRICS=false CI=true
WRANGLER=node_modules/.bin/wrangler
OUT="$(mktemp -d -t interlog-deploy-check.XXXXXX)"
RENDERED="wrangler.check-$$.local.toml"
trap 'rm -rf "$OUT" "$RENDERED"' EXIT

# The names the code reads, from the one place that declares them.
mapfile -t BINDINGS < <(sed -n '/^pub mod binding {/,/^}/p' core/src/config.rs | grep -oE 'pub const [A-Z0-9_]+: &str = "[A-Z0-9_]+"' | grep -oE '"[A-Z0-9_]+"' | tr -d '"')
REQUIRED_VARS=(PEPPER_VERSION PEPPER_PREVIOUS_VERSION CORS_PREFLIGHT_ORIGINS)
FORBIDDEN_VARS=(TEST_FAULTS L2_MODE)
[[ ${#BINDINGS[@]} -ge 5 ]] || { echo "deploy-check: could not read the binding names from core/src/config.rs" >&2; exit 1; }

failed=0
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
  echo "deploy-check: $config --env $env: dry run ok, ${#BINDINGS[@]} bindings and ${#REQUIRED_VARS[@]} vars bound"
}

for env in staging production; do
  check wrangler.toml "$env"
done
INTERLOG_D1_DATABASE_ID=00000000-0000-4000-8000-000000000001 INTERLOG_SECRETS_STORE_ID=0123456789abcdef0123456789abcdef \
  INTERLOG_CUSTOM_DOMAIN=api.example.com INTERLOG_CONFIG_OUT="$RENDERED" bash scripts/deploy-config.sh production >/dev/null
check "$RENDERED" production
exit $failed
