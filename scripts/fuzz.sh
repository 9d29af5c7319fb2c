#!/usr/bin/env bash
# Fuzzing of interlog-core with cargo-fuzz (libFuzzer, nightly toolchain).
#
#   scripts/fuzz.sh smoke            every target for 30 s (FUZZ_SMOKE_SECONDS)
#   scripts/fuzz.sh long [SECONDS]   every target for SECONDS (default 600), one at a time
#   scripts/fuzz.sh build            build the targets only
#   scripts/fuzz.sh list             list the targets
#
# TARGETS="key_parse sanitize" picks targets (default: all of `cargo fuzz list`).
# Runs one target at a time under `nice -n 19`, with debug assertions on. The
# corpus grows in fuzz/corpus/<target>/ (git-ignored) on top of the committed
# seeds in fuzz/seeds/<target>/ and the inputs of past findings in
# fuzz/regressions/<target>/ (replayed first on every run); crashes land in
# fuzz/artifacts/<target>/ (git-ignored: move a fixed one to fuzz/regressions/),
# libFuzzer's output in fuzz/logs/<target>-<mode>.log. At the end a table of
# executions, exec/s, coverage (cov, ft), corpus size and crashes is printed
# and written to fuzz/logs/summary-<mode>.tsv. Exit status is non-zero if any
# target crashed or failed to build.
#
# Installs what is missing (and skips what is there): the nightly toolchain
# (minimal profile) and cargo-fuzz at the pinned version (`cargo install --locked`).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
TOOLCHAIN=${FUZZ_TOOLCHAIN:-nightly}
mode=${1:-smoke}
case "$mode" in
  smoke) seconds=${FUZZ_SMOKE_SECONDS:-30} ;;
  long) seconds=${2:-600} ;;
  build | list) seconds=0 ;;
  *) echo "usage: $0 smoke | long [SECONDS] | build | list" >&2; exit 2 ;;
esac

if ! rustup toolchain list | grep -q "^$TOOLCHAIN"; then
  echo "==> installing the $TOOLCHAIN toolchain"
  rustup toolchain install "$TOOLCHAIN" --profile minimal
fi
if [[ "$(cargo fuzz --version 2>/dev/null | awk '{print $NF}')" != "$CARGO_FUZZ_VERSION" ]]; then
  echo "==> installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

fuzz() { cargo "+$TOOLCHAIN" fuzz "$@"; }

if [[ "$mode" == list ]]; then
  fuzz list
  exit 0
fi
read -r -a targets <<<"${TARGETS:-$(fuzz list | tr '\n' ' ')}"

echo "==> building ${#targets[@]} fuzz targets: ${targets[*]}"
for t in "${targets[@]}"; do
  nice -n 19 cargo "+$TOOLCHAIN" fuzz build --debug-assertions "$t"
done
[[ "$mode" == build ]] && exit 0

mkdir -p fuzz/logs
# Key-shaped seeds for key_parse are made here, at run time, and never
# committed (fuzz/corpus is git-ignored): well-formed keys in both cases,
# behind Bearer/bearer/Basic, and one symbol short or long.
mkdir -p fuzz/corpus/key_parse
node -e '
  const c = "0123456789ABCDEFGHJKMNPQRSTVWXYZ", r = require("crypto"), fs = require("fs");
  const key = (n) => "ck_live_" + Array.from(r.randomBytes(n), (b) => c[b % 32]).join("");
  [key(26), key(26).toLowerCase(), "Bearer " + key(26), "bearer   " + key(26), "Basic " + key(26), key(25), key(27)]
    .forEach((s, i) => fs.writeFileSync(process.argv[1] + "/generated-seed-" + i, s));' fuzz/corpus/key_parse
summary="fuzz/logs/summary-$mode.tsv"
printf 'target\tseconds\texecutions\texec_per_s\tcov\tft\tcorpus\tnew_units\tpeak_rss_mb\tcrashes\n' >"$summary"
failed=0
for t in "${targets[@]}"; do
  corpus="fuzz/corpus/$t"
  mkdir -p "$corpus" "fuzz/artifacts/$t"
  dirs=("$corpus")
  [[ -d "fuzz/seeds/$t" ]] && dirs+=("fuzz/seeds/$t")
  [[ -d "fuzz/regressions/$t" ]] && dirs+=("fuzz/regressions/$t")
  opts=(-max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048
    -artifact_prefix="$PWD/fuzz/artifacts/$t/")
  [[ -f "fuzz/dicts/$t.dict" ]] && opts+=(-dict="$PWD/fuzz/dicts/$t.dict")
  log="fuzz/logs/$t-$mode.log"
  crashes_before=$(find "fuzz/artifacts/$t" -type f | wc -l)
  echo "==> fuzzing $t for ${seconds}s (log: $log)"
  set +e
  nice -n 19 cargo "+$TOOLCHAIN" fuzz run --debug-assertions "$t" "${dirs[@]}" -- "${opts[@]}" >"$log" 2>&1
  rc=$?
  set -e
  crashes=$(( $(find "fuzz/artifacts/$t" -type f | wc -l) - crashes_before ))
  if [[ $rc -ne 0 ]]; then
    failed=1
    echo "!! $t exited with $rc; last lines of $log:"
    tail -n 40 "$log"
  fi
  # The last status line (`#N DONE cov: C ft: F corp: K/…`) and the final stats.
  status=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
  field() { sed -nE "s/.* $1: ([0-9]+).*/\1/p" <<<"$status"; }
  stat() { sed -nE "s/^stat::$1: *([0-9]+).*/\1/p" "$log" | tail -n 1; }
  corp=$(sed -nE 's/.* corp: ([0-9]+)\/.*/\1/p' <<<"$status")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$seconds" "$(stat number_of_executed_units)" \
    "$(stat average_exec_per_sec)" "$(field cov)" "$(field ft)" "$corp" "$(stat new_units_added)" \
    "$(stat peak_rss_mb)" "$crashes" >>"$summary"
done

echo
echo "==> fuzzing summary ($mode, ${seconds}s per target)"
column -t -s $'\t' "$summary" 2>/dev/null || cat "$summary"
exit $failed
