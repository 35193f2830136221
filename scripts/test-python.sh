#!/usr/bin/env bash
# The Python package's tests (crates/sremote-py/tests): builds the package into a
# throwaway venv with pip (maturin as build backend) and runs pytest against real servers
# on loopback (an sshd from `sremote-testkit sshd`, an `sremote-gateway`, the local
# connector). No stdin needed. Extra arguments go to pytest.
#
# SREMOTE_PY_PROFILE=release builds the wheel as users get it; the default, dev, reuses
# the workspace's debug build (CI time). `scripts/test-python.sh --venv-only DIR` only
# makes the venv with the test tools (test-all.sh does it early, while other tests run);
# SREMOTE_PY_VENV=DIR then uses that venv instead of making one.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${SREMOTE_PY_PROFILE:-dev}
make_venv() {
  python3 -m venv "$1"
  # numpy: ExPyRe's np.sum job; nbclient, nbformat, ipykernel: the notebook magic's test
  # runs a real notebook headless.
  "$1/bin/pip" install -q --disable-pip-version-check "maturin>=1.5,<2" "pytest>=7" \
    numpy nbclient nbformat ipykernel
}
if [ "${1:-}" = --venv-only ]; then
  make_venv "$2"
  exit 0
fi
if [ -n "${SREMOTE_PY_VENV:-}" ] && [ -x "$SREMOTE_PY_VENV/bin/pytest" ]; then
  venv=$SREMOTE_PY_VENV
else
  venv=$(mktemp -d "${TMPDIR:-/tmp}/sremote-py-venv.XXXXXX")
  trap 'rm -rf "$venv"' EXIT
  make_venv "$venv"
fi
# The same features as the workspace test build (test-all.sh), so its artifacts are reused.
cargo build -q --workspace --bins --features sremote-core/testsuite
PATH="$venv/bin:$PATH" MATURIN_PEP517_ARGS="--profile $profile" \
  "$venv/bin/pip" install -q --disable-pip-version-check --no-build-isolation ./crates/sremote-py
# From the tests' own directory: `import sremote` is the installed package.
cd crates/sremote-py/tests
set +e
"$venv/bin/python" -m pytest -q -p no:cacheprovider . "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "test-python: pytest collected no tests — that is a failure here" >&2
  exit 1
fi
exit "$rc"
