#!/usr/bin/env bash
# Builds the wasm Worker (build/index.js + build/index_bg.wasm). Used as the
# wrangler [build] command. With INTERLOG_PREBUILT=1 and an existing build it
# does nothing, so a test run compiles the wasm exactly once.
set -euo pipefail
cd "$(dirname "$0")/.."
# The web console's static files (console/dist, served through [assets]).
node console/build.mjs
if [[ "${INTERLOG_PREBUILT:-}" == 1 && -f build/index.js && -f build/index_bg.wasm ]]; then
  exit 0
fi
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$CARGO_BIN/wasm-bindgen}"
exec "$CARGO_BIN/worker-build" --release
