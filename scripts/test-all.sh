#!/usr/bin/env bash
# The one command that runs every test: installs what the tests need (sshd, Slurm, …),
# then runs the doc tests, the whole workspace under cargo-nextest, and the Python
# package's pytest suite (scripts/test-python.sh), then a fuzzing smoke of every decoder
# (scripts/fuzz.sh, when a nightly toolchain is present). The test harness
# starts its own sshd / gateway / Slurm instances and stops them by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d "${TMPDIR:-/tmp}/sremote-test-all.XXXXXX")
trap 'rm -rf "$work"' EXIT
# What the tests need (apt: sshd, Slurm, …; mostly download and unpack) while the build
# runs: nothing is built against it; the tests wait for it.
scripts/install-test-deps.sh >"$work/deps.log" 2>&1 &
deps_job=$!
# Meanwhile, at the lowest priority (they take only the CPU the tests leave idle — most
# of the Slurm, Grid Engine and network tests wait): the Python tools' venv (PyPI) and the
# fuzz targets' nightly build. Their logs are shown only if they fail.
nice -n 19 scripts/test-python.sh --venv-only "$work/venv" >"$work/venv.log" 2>&1 &
venv_job=$!
FUZZ_BUILD=dev nice -n 19 scripts/fuzz.sh --build >"$work/fuzz-build.log" 2>&1 &
fuzz_job=$!
cargo test --doc --workspace --quiet
status=0
if ! wait "$deps_job"; then
  cat "$work/deps.log" >&2
  echo "test-all: installing what the tests need failed (above); nothing was tested" >&2
  exit 1
fi
cat "$work/deps.log" >&2
# Build every test binary (and the workspace's binaries beside them), then run them from
# that list: cargo is not run again while the tests run, so the Python package can build
# meanwhile at the lowest priority (it takes 2–3 min of CPU: another feature set of the
# shared dependencies) instead of after them.
cargo nextest list --workspace --features sremote-core/testsuite --list-type binaries-only \
  --message-format json >"$work/binaries.json"
cargo metadata --format-version 1 --all-features >"$work/cargo-metadata.json"
(
  # The venv job is this subshell's sibling: it cannot `wait` for it, only see it gone.
  while kill -0 "$venv_job" 2>/dev/null; do sleep 1; done
  SREMOTE_PY_VENV="$work/venv" nice -n 19 scripts/test-python.sh --install-only
) >"$work/py-install.log" 2>&1 &
py_job=$!
cargo nextest run --binaries-metadata "$work/binaries.json" \
  --cargo-metadata "$work/cargo-metadata.json" --no-fail-fast "$@" || status=$?
# The Python package, built into that venv meanwhile, under pytest (scripts/test-python.sh).
if wait "$py_job"; then
  SREMOTE_PY_VENV="$work/venv" scripts/test-python.sh --tests-only || status=$?
else
  cat "$work/venv.log" "$work/py-install.log" >&2
  scripts/test-python.sh || status=$?
fi
# Every decoder under cargo-fuzz for 10 s each (skipped with a message without nightly).
wait "$fuzz_job" || cat "$work/fuzz-build.log" >&2
FUZZ_BUILD=dev scripts/fuzz.sh 10 || status=$?
exit "$status"
