#!/usr/bin/env bash
# The one command that runs every test: installs what the tests need (sshd, Slurm, …),
# then runs the doc tests, the whole workspace under cargo-nextest, and the Python
# package's pytest suite (scripts/test-python.sh), then a fuzzing smoke of every decoder
# (scripts/fuzz.sh, when a nightly toolchain is present). The test harness
# starts its own sshd / gateway / Slurm instances and stops them by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
cargo test --doc --workspace --quiet
status=0
cargo nextest run --workspace --features sremote-core/testsuite --no-fail-fast "$@" || status=$?
# The Python package, built into a throwaway venv, under pytest (scripts/test-python.sh).
scripts/test-python.sh || status=$?
# Every decoder under cargo-fuzz for 10 s each (skipped with a message without nightly).
FUZZ_BUILD=dev scripts/fuzz.sh 10 || status=$?
exit "$status"
