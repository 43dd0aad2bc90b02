#!/usr/bin/env bash
# Fuzzes what strangers send us with cargo-fuzz (libFuzzer): the FMU archive reader, the
# model-description reader, the worker protocol decoder and the Stripe-Signature parser.
#   scripts/fuzz.sh [seconds per target, default 300] [target …]
#   FUZZ_SEED=N fixes libFuzzer's seed (CI does: the same inputs in the same order each run);
#   unset, each run explores from a new random seed.
# These machines have only the stable toolchain: cargo-fuzz passes nightly flags, which
# RUSTC_BOOTSTRAP=1 allows, and `-s none` skips the sanitizer (it needs a nightly std; the
# code under test is safe Rust, and panics, overflows and failed assertions still count).
# A crash is saved under fuzz/artifacts/<target>/ and the script fails; turn it into a
# regression test in the normal suite.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-300}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(archive model_description worker_protocol stripe_signature)
fi

if ! command -v cargo-fuzz >/dev/null; then
  echo "== cargo install cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
cd fuzz
logs=logs
mkdir -p "$logs"
echo "== cargo fuzz build"
cargo fuzz build -s none
for target in "${targets[@]}"; do
  echo "== fuzz $target for ${seconds}s"
  mkdir -p "corpus/$target"
  # Hand-made inputs that reach deep paths a fresh corpus would take long to find (e.g. a
  # typed result the protocol accepts).
  if [ -d "seeds/$target" ]; then cp seeds/"$target"/* "corpus/$target/"; fi
  # libFuzzer writes a line per new input: keep them in a log, print its final statistics, and
  # the whole tail when it found something.
  log="$logs/$target.log"
  if ! cargo fuzz run -s none "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
    -seed="${FUZZ_SEED:-0}" >"$log" 2>&1; then
    tail -n 80 "$log"
    echo "fuzz $target FAILED (whole log: fuzz/$log)" >&2
    exit 1
  fi
  grep -E '^(Done|stat::number_of_executed_units|stat::new_units_added|stat::peak_rss_mb)' "$log" | sed "s/^/  $target: /"
done
