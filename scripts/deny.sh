#!/usr/bin/env bash
# Dependency policy of Cargo.lock with cargo-deny (deny.toml): licenses, bans
# (duplicates, forbidden crates, wildcards) and sources (the default Rust
# package registry only, no git).
#
#   scripts/deny.sh               cargo deny check licenses bans sources
#   scripts/deny.sh advisories    also the RustSec advisories (needs GitHub,
#                                 where the advisory database is cloned from)
#
# Installs cargo-deny at the pinned version if missing (`cargo install
# --locked`, a few minutes cold, then cached in ~/.cargo/bin).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DENY_VERSION=0.20.2
if [[ "$(cargo deny --version 2>/dev/null | awk '{print $NF}')" != "$CARGO_DENY_VERSION" ]]; then
  echo "[deny] installing cargo-deny $CARGO_DENY_VERSION"
  cargo install --locked cargo-deny --version "$CARGO_DENY_VERSION"
fi

checks=(licenses bans sources)
[[ "${1:-}" == advisories ]] && checks+=(advisories)
cargo deny --locked check --hide-inclusion-graph --show-stats "${checks[@]}"
