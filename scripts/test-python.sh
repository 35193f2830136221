#!/usr/bin/env bash
# The Python package's tests (crates/sremote-py/tests): builds the package into a
# throwaway venv with pip (maturin as build backend) and runs pytest against real servers
# on loopback (an sshd from `sremote-testkit sshd`, an `sremote-gateway`, the local
# connector). No stdin needed. Extra arguments go to pytest.
#
# SREMOTE_PY_PROFILE=release builds the wheel as users get it; the default, dev, reuses
# the workspace's debug build (CI time). Steps for test-all.sh, which runs them beside
# other tests: `--venv-only DIR` only makes the venv with the test tools;
# `--install-only` only builds the package into $SREMOTE_PY_VENV; `--tests-only` only runs
# pytest with what $SREMOTE_PY_VENV has and the workspace binaries already built.
# SREMOTE_PY_VENV=DIR uses that venv instead of making one.
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
step=all
case "${1:-}" in
  --venv-only) make_venv "$2"; exit 0 ;;
  --install-only) step=install; shift ;;
  --tests-only) step=tests; shift ;;
esac
if [ -n "${SREMOTE_PY_VENV:-}" ] && [ -x "$SREMOTE_PY_VENV/bin/pytest" ]; then
  venv=$SREMOTE_PY_VENV
elif [ "$step" != all ]; then
  echo "test-python: --$step-only needs SREMOTE_PY_VENV=DIR, a venv made by --venv-only DIR" >&2
  exit 2
else
  venv=$(mktemp -d "${TMPDIR:-/tmp}/sremote-py-venv.XXXXXX")
  trap 'rm -rf "$venv"' EXIT
  make_venv "$venv"
fi
if [ "$step" = all ]; then
  # The binaries the tests start (sremote-testkit, sremote-gateway, …). Under test-all.sh
  # (--tests-only) cargo-nextest has built them already.
  cargo build -q --workspace --bins --features sremote-core/testsuite
fi
if [ "$step" != tests ]; then
  PATH="$venv/bin:$PATH" MATURIN_PEP517_ARGS="--profile $profile" \
    "$venv/bin/pip" install -q --disable-pip-version-check --no-build-isolation ./crates/sremote-py
fi
[ "$step" != install ] || exit 0
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
