#!/usr/bin/env bash
# The test command: formatting, lints, native unit/property tests, one wasm
# build, then the integration suite over HTTP against a real `wrangler dev`
# (fresh state folder, free loopback port), which is always stopped afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n==> %s\n' "$*"; }

step "bootstrap"
bash scripts/bootstrap.sh --python
source scripts/local-env.sh

step "cargo fmt --check"
cargo fmt --all -- --check

# Which lints run is set in Cargo.toml ([workspace.lints]) and core/clippy.toml;
# here clippy only turns their warnings into errors.
step "clippy (native: core, cli, loadgen)"
cargo clippy --quiet -p interlog-core -p interlog-cli -p interlog-loadgen --all-targets -- -D warnings

step "clippy (wasm32: worker, durable objects)"
cargo clippy --quiet --target wasm32-unknown-unknown -p interlog -p interlog-durable -- -D warnings

step "unit and property tests (native)"
cargo test --quiet -p interlog-core -p interlog-cli -p interlog-durable -p interlog-loadgen

step "supply chain: cargo-deny (licenses, bans, sources)"
bash scripts/deny.sh

step "supply chain: CycloneDX SBOMs of the wasm build and the npm tooling (sbom/)"
bash scripts/sbom.sh
export INTERLOG_SBOM_REQUIRED=1  # tests/test_trust_docs.py checks what it wrote

step "build: wasm Worker (once) and operator CLI"
bash scripts/build-worker.sh
cargo build --quiet -p interlog-cli

step "deploy config: wrangler deploy --dry-run of staging and production (offline)"
bash scripts/deploy-check.sh

step "start the local system"
STATE=$(mktemp -d -t interlog-test.XXXXXX)
PORT=$(free_port)
# Two loopback origins for the browser CORS test: one the test org allows, one not.
PAGE_PORTS="$(free_port),$(free_port)"
PREFLIGHT="https://app.example.com,https://global-only.example.com"
for p in ${PAGE_PORTS//,/ }; do PREFLIGHT="$PREFLIGHT,http://127.0.0.1:$p"; done
cleanup() {
  stop_local
  if [[ "${KEEP_STATE:-}" != 1 ]]; then rm -rf "$STATE"; fi
}
trap cleanup EXIT
start_local "$STATE" "$PORT" --var "CORS_PREFLIGHT_ORIGINS:$PREFLIGHT" --var TEST_FAULTS:enabled
echo "wrangler dev ready on 127.0.0.1:$PORT (state $STATE)"

step "integration tests"
set +e
INTERLOG_URL="http://127.0.0.1:$PORT" INTERLOG_PERSIST="$PERSIST" INTERLOG_PEPPER="$PEPPER" \
  INTERLOG_ADMIN="$PWD/target/debug/interlog-admin" INTERLOG_PAGE_PORTS="$PAGE_PORTS" \
  INTERLOG_SERVER_LOG="$SERVER_LOG" .venv/bin/python -m pytest -q -p no:cacheprovider "${@:-tests}"
rc=$?
set -e
if [[ $rc -ne 0 ]]; then
  echo "--- last lines of wrangler.log ---"; tail -n 60 "$SERVER_LOG"
fi
exit $rc
