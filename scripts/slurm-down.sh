#!/usr/bin/env bash
# Stops what slurm-up.sh started (by PID file only): slurmd, slurmctld, slurmdbd, its
# MariaDB, munged. Idempotent.
#   SLURM_TEST_DIR   (default /tmp/sremote-slurm)
#   SLURM_KEEP_MUNGE=1  leave munged running
#   SLURM_PURGE=1       also delete $SLURM_TEST_DIR (logs, state)
set -uo pipefail
DIR=${SLURM_TEST_DIR:-/tmp/sremote-slurm}
export SLURM_CONF=${SLURM_CONF:-/etc/slurm/slurm.conf}
log() { echo "[slurm-down] $*" >&2; }

# PID 1 here (process_api) reaps orphans lazily, so a dead daemon can linger as a
# zombie for a few seconds: treat state Z as gone.
. "$(dirname "$0")/daemons.sh"

# 1. cancel all jobs so slurmstepd/job processes don't outlive slurmd
if alive "$DIR/slurmctld.pid" slurmctld; then
  ids=$(squeue -h -o %i 2>/dev/null | tr '\n' ' ')
  if [ -n "${ids// }" ]; then
    log "cancelling jobs: $ids"; scancel $ids 2>/dev/null
    for _ in $(seq 100); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.1; done
  fi
fi

# 2. daemons, by PID (slurmctld sends its last records to slurmdbd before it exits;
#    MariaDB flushes on SIGTERM)
for d in slurmd slurmctld slurmdbd mariadbd; do
  f="$DIR/$d.pid"
  if alive "$f" "$d"; then
    pid=$(cat "$f"); log "stopping $d ($pid)"; kill -TERM "$pid"
    for _ in $(seq 300); do running "$pid" "$d" || break; sleep 0.1; done
    running "$pid" "$d" && { log "$d did not exit, SIGKILL"; kill -KILL "$pid"; }
  fi
  rm -f "$f"
done

# 3. munged (started by slurm-up.sh via its own pid file)
if [ "${SLURM_KEEP_MUNGE:-0}" != 1 ] && alive /run/munge/munged.pid munged; then
  pid=$(cat /run/munge/munged.pid); log "stopping munged ($pid)"; kill -TERM "$pid"
  for _ in $(seq 50); do running "$pid" munged || break; sleep 0.1; done
fi

rm -f "$DIR/started-by"
[ "${SLURM_PURGE:-0}" = 1 ] && rm -rf "$DIR"
log "down"
exit 0
