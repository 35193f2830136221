#!/usr/bin/env bash
# The one command that runs every test: installs what the tests need (sshd, Slurm, …),
# then runs the doc tests, the whole workspace under cargo-nextest, and the Python
# package's pytest suite (scripts/test-python.sh), then a fuzzing smoke of every decoder
# (scripts/fuzz.sh, when a nightly toolchain is present). The test harness
# starts its own sshd / gateway / Slurm instances and stops them by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
# Meanwhile, at the lowest priority (they take only the CPU the tests leave idle — most
# of the Slurm, Grid Engine and network tests wait): the Python tools' venv (PyPI) and the
# fuzz targets' nightly build. Their logs are shown only if they fail.
work=$(mktemp -d "${TMPDIR:-/tmp}/sremote-test-all.XXXXXX")
trap 'rm -rf "$work"' EXIT
nice -n 19 scripts/test-python.sh --venv-only "$work/venv" >"$work/venv.log" 2>&1 &
venv_job=$!
FUZZ_BUILD=dev nice -n 19 scripts/fuzz.sh --build >"$work/fuzz-build.log" 2>&1 &
fuzz_job=$!
cargo test --doc --workspace --quiet
status=0
cargo nextest run --workspace --features sremote-core/testsuite --no-fail-fast "$@" || status=$?
# The Python package, built into that venv, under pytest (scripts/test-python.sh).
if wait "$venv_job"; then
  SREMOTE_PY_VENV="$work/venv" scripts/test-python.sh || status=$?
else
  cat "$work/venv.log" >&2
  scripts/test-python.sh || status=$?
fi
# Every decoder under cargo-fuzz for 10 s each (skipped with a message without nightly).
wait "$fuzz_job" || cat "$work/fuzz-build.log" >&2
FUZZ_BUILD=dev scripts/fuzz.sh 10 || status=$?
exit "$status"
