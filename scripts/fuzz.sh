#!/usr/bin/env bash
# Fuzz every decoder that reads what another side sent: request, response, the session
# frame stream, plugin output, job status files, the hosts config and gateway URL paths.
#
#   scripts/fuzz.sh [SECONDS]     # each target for SECONDS (default 60); needs nightly
#   FUZZ_BUILD=dev scripts/fuzz.sh 10   # unoptimised build: quicker to build (CI's smoke)
#   scripts/fuzz.sh --build        # only build the targets (test-all.sh does it early,
#                                  # at low priority, while the other tests run)
#
# Needs `cargo +nightly` and cargo-fuzz (installed here when missing). Without nightly it
# says so and exits 0 (CI runs a 10 s smoke per target when nightly is present). Prints
# one line per target: executions and the result; exits 1 if any target crashed.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
build_only=0
[ "${1:-}" = --build ] && { build_only=1; shift; }
secs=${1:-60}
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "[fuzz] skipped: no nightly toolchain (rustup toolchain install nightly)"
  exit 0
fi
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
# Pure Rust: the sanitizer adds nothing to bounds checks; without it builds and runs are faster.
flags=(--sanitizer none)
[ "${FUZZ_BUILD:-release}" = dev ] && flags+=(--dev)
cargo +nightly fuzz build "${flags[@]}" >/dev/null 2>&1 || cargo +nightly fuzz build "${flags[@]}"
[ "$build_only" = 1 ] && exit 0
failed=0
for target in $(cargo +nightly fuzz list); do
  mkdir -p "corpus/$target"
  log=$(mktemp)
  if cargo +nightly fuzz run "${flags[@]}" "$target" "corpus/$target" -- \
       -max_total_time="$secs" -max_len=65536 -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  else
    result=CRASHED; failed=1; tail -n 40 "$log"
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  echo "[fuzz] $target: $runs executions in ${secs}s: $result"
  rm -f "$log"
done
exit $failed
