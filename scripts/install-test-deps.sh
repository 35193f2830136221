#!/usr/bin/env bash
# Install what the test suite needs on a fresh Debian/Ubuntu machine (idempotent, no stdin).
# Needs root (or sudo) for apt-get; skips what is already there.
set -euo pipefail
need=()
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null || need+=(openssh-client)
command -v ip >/dev/null || need+=(iproute2)
command -v ps >/dev/null || need+=(procps)
command -v git >/dev/null || need+=(git)
# Login shells the SSH tests log in with (any login shell must work).
for sh in tcsh fish zsh ksh; do command -v "$sh" >/dev/null || need+=("$sh"); done
# The hosts' sessions use the system python (not a pyenv one on the runner's PATH).
/usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3 python3-venv)
# numpy for the hosts' python: the Python jobs test submits np.sum (ExPyRe's example).
/usr/bin/python3 -c 'import numpy' 2>/dev/null || need+=(python3-numpy)
if [ "${SREMOTE_TEST_SLURM:-1}" = 1 ]; then
  command -v slurmctld >/dev/null || need+=(slurmctld)
  command -v slurmd >/dev/null || need+=(slurmd)
  command -v sbatch >/dev/null || need+=(slurm-client)
  command -v munged >/dev/null || need+=(munge)
  # Accounting (sacct) for the Slurm tests: slurmdbd on a private MariaDB (server and client
  # cores only: no init scripts, nothing starts a system database). SLURM_ACCOUNTING=0: none.
  if [ "${SLURM_ACCOUNTING:-1}" = 1 ]; then
    command -v slurmdbd >/dev/null || need+=(slurmdbd)
    command -v mariadbd >/dev/null || need+=(mariadb-server-core)
    command -v my_print_defaults >/dev/null || need+=(mariadb-client-core)
  fi
fi
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
  echo "[install-test-deps] installing: ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -q "${need[@]}" >/dev/null 2>&1 \
    || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q "${need[@]}" >/dev/null; }
fi
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
