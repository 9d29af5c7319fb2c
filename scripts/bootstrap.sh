#!/usr/bin/env bash
# Installs everything interlog's commands need on a fresh Debian machine that
# has rustup's Rust and Node 20 + npm, skipping whatever is already there:
# the pinned toolchain + wasm32 target, wasm-bindgen-cli at the Cargo.lock
# version, worker-build, the npm packages of package-lock.json and (with
# --python) the Python test clients in .venv and Debian's chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[bootstrap] %s\n' "$*" >&2; }
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
WORKER_BUILD_VERSION=0.8.7

# 1. Rust toolchain of rust-toolchain.toml, with its components and targets.
rustup show active-toolchain >/dev/null 2>&1 || rustup toolchain install
rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

# 2. wasm-bindgen-cli at exactly the version Cargo.lock resolves.
wbg_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if ! "$CARGO_BIN/wasm-bindgen" --version 2>/dev/null | grep -qx "wasm-bindgen $wbg_version"; then
  log "installing wasm-bindgen-cli $wbg_version"
  # --locked can fail when a pinned transitive crate was yanked; fall back to a fresh resolve.
  cargo install --locked wasm-bindgen-cli --version "=$wbg_version" \
    || cargo install --force wasm-bindgen-cli --version "=$wbg_version"
fi

# 3. worker-build.
if ! "$CARGO_BIN/worker-build" --version 2>/dev/null | grep -qx "$WORKER_BUILD_VERSION"; then
  log "installing worker-build $WORKER_BUILD_VERSION"
  cargo install --locked worker-build --version "=$WORKER_BUILD_VERSION"
fi

# 4. npm packages (wrangler pinned) from the lock file.
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -x node_modules/.bin/wrangler || "$(cat node_modules/.interlog-lock 2>/dev/null)" != "$lock_sum" ]]; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_sum" > node_modules/.interlog-lock
fi

# 5. Python test clients.
if [[ "${1:-}" == "--python" ]]; then
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    log "installing python3 + venv from Debian"
    apt-get update -qq && apt-get install -y -qq python3 python3-venv >/dev/null
  fi
  # jq for the README's shell examples, which the suite runs.
  if ! command -v jq >/dev/null 2>&1; then
    log "installing jq from Debian"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null
  fi
  # Headless Chromium for the real-browser CORS test (Debian's package).
  if ! command -v chromium >/dev/null 2>&1; then
    log "installing chromium from Debian"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
  req_sum=$(sha256sum tests/requirements.txt | cut -d' ' -f1)
  if [[ ! -x .venv/bin/python || "$(cat .venv/.interlog-req 2>/dev/null)" != "$req_sum" ]]; then
    log "python test clients"
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
    echo "$req_sum" > .venv/.interlog-req
  fi
fi
