#!/usr/bin/env bash
# Build every cargo-fuzz target and run each one briefly from its checked-in
# seeds (fuzz/seeds/TARGET); fail on any crash, panic, leak or timeout.
#
#   fuzz/smoke.sh                      # about 15 s per target (4 targets)
#   FUZZ_SECONDS=600 fuzz/smoke.sh     # longer
#   FUZZ_TARGETS="request params" fuzz/smoke.sh
#
# Stable Rust is enough: `cargo fuzz build -s none` needs no nightly and no
# RUSTC_BOOTSTRAP (no sanitizer; panics and assertion failures are the crashes).
# New inputs go to a scratch corpus, never into the checked-in seeds; a crashing
# input is kept in fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${FUZZ_SECONDS:-15}"
targets="${FUZZ_TARGETS:-request config params pending_step}"
command -v cargo-fuzz >/dev/null || {
  echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
  exit 1
}

cargo fuzz build -s none
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for t in $targets; do
  mkdir -p "$scratch/$t" "artifacts/$t"
  echo "== fuzz $t for ${seconds}s"
  if ! cargo fuzz run -s none "$t" "$scratch/$t" "seeds/$t" -- \
      -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
      >"$scratch/$t.log" 2>&1; then
    tail -n 40 "$scratch/$t.log" >&2
    echo "fuzz target $t FAILED; the input is in fuzz/artifacts/$t/" >&2
    exit 1
  fi
  grep -E '^stat::number_of_executed_units' "$scratch/$t.log" || true
done
echo "fuzz smoke: all targets ran without a crash"
