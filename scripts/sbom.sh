#!/usr/bin/env bash
# Writes the CycloneDX SBOMs of a release into sbom/ (git-ignored):
#
#   sbom/interlog.cdx.json  the wasm Worker: crate `interlog` and every crate it
#                           links for wasm32-unknown-unknown (interlog-core,
#                           interlog-durable, worker, serde, …), from Cargo.lock,
#                           made by cargo-cyclonedx (build-only deps left out)
#   sbom/npm.cdx.json       the npm tooling (wrangler and its tree), from
#                           package-lock.json and node_modules, made by
#                           @cyclonedx/cyclonedx-npm (a pinned devDependency)
#
# Installs what is missing and skips what is there: cargo-cyclonedx at the
# pinned version (`cargo install --locked`, one-time, cached in ~/.cargo/bin)
# and the npm packages of package-lock.json (`npm ci`). Timestamps come from
# SOURCE_DATE_EPOCH (default: the last commit's time), so the same commit gives
# the same SBOM apart from its serial number.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_CYCLONEDX_VERSION=0.5.9
TARGET=wasm32-unknown-unknown
OUT=sbom
log() { printf '[sbom] %s\n' "$*"; }

# (its --version prints "cargo-cyclonedx-cyclonedx X.Y.Z": compare the last word)
if [[ "$(cargo cyclonedx --version 2>/dev/null | awk '{print $NF}')" != "$CARGO_CYCLONEDX_VERSION" ]]; then
  log "installing cargo-cyclonedx $CARGO_CYCLONEDX_VERSION"
  cargo install --locked cargo-cyclonedx --version "$CARGO_CYCLONEDX_VERSION"
fi
if [[ ! -x node_modules/.bin/cyclonedx-npm ]]; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
if [[ -z "${SOURCE_DATE_EPOCH:-}" ]]; then
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
  export SOURCE_DATE_EPOCH
fi

mkdir -p "$OUT"
# cargo-cyclonedx writes one file beside each workspace member's Cargo.toml; a
# per-run name keeps concurrent runs apart, and only the Worker's is kept.
tmp="sbom-tmp-$$"
cleanup() { rm -f -- "$tmp.json" ./*/"$tmp.json" "$OUT/$tmp.npm.json"; }
trap cleanup EXIT
log "cargo cyclonedx ($TARGET) -> $OUT/interlog.cdx.json"
cargo cyclonedx --format json --spec-version 1.5 --target "$TARGET" --no-build-deps \
  --override-filename "$tmp" -q
mv "$tmp.json" "$OUT/interlog.cdx.json"

log "cyclonedx-npm -> $OUT/npm.cdx.json"
node_modules/.bin/cyclonedx-npm --spec-version 1.5 --output-format JSON --flatten-components \
  --output-reproducible --validate --output-file "$OUT/$tmp.npm.json"
mv "$OUT/$tmp.npm.json" "$OUT/npm.cdx.json"

for f in "$OUT/interlog.cdx.json" "$OUT/npm.cdx.json"; do
  n=$(node -e 'const b=require(process.argv[1]); console.log((b.components||[]).length)' "$PWD/$f")
  log "$f: $n components"
done
