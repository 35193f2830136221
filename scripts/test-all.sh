#!/usr/bin/env bash
# The one command that runs every test: installs what the tests need (sshd, Slurm, …),
# then runs the doc tests and the whole workspace under cargo-nextest. The test harness
# starts its own sshd / gateway / Slurm instances and stops them by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
cargo test --doc --workspace --quiet
exec cargo nextest run --workspace --features sremote-core/testsuite --no-fail-fast "$@"
