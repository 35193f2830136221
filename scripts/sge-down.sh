#!/usr/bin/env bash
# Stops what sge-up.sh started: deletes the jobs, then sge_execd and sge_qmaster by their
# PID files (the cluster configuration stays for the next sge-up.sh). Idempotent.
set -uo pipefail
export SGE_ROOT=${SGE_ROOT:-/var/lib/gridengine} SGE_CELL=${SGE_CELL:-default}
log() { echo "[sge-down] $*" >&2; }
. "$(dirname "$0")/daemons.sh"
stop() {
  local f=$1 name=$2 pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  running "$pid" "$name" || return 0
  log "stopping $name ($pid)"; kill -TERM "$pid"
  for _ in $(seq 100); do running "$pid" "$name" || return 0; sleep 0.1; done
  log "$name did not exit, SIGKILL"; kill -KILL "$pid"
}
command -v qdel >/dev/null && qdel -f -u '*' >/dev/null 2>&1
for f in /var/spool/gridengine/execd/*/execd.pid; do stop "$f" sge_execd; done
stop /var/spool/gridengine/qmaster/qmaster.pid sge_qmaster
log "down"
exit 0
