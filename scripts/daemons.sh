# Sourced by slurm-up.sh, slurm-down.sh, sge-up.sh and sge-down.sh: whether the daemon a
# PID file names still runs. A PID file outlives its daemon (a killed machine, a daemon
# that died), and its PID may since belong to another process: only a process of the
# expected name counts, so a stale file neither stops a start nor gets another process
# killed. PID 1 here (process_api) reaps orphans lazily: a zombie counts as gone.

# running PID NAME: PID is a live (not zombie) process whose name (/proc/PID/comm) is NAME.
running() {
  local comm st
  case $1 in '' | *[!0-9]*) return 1 ;; esac
  comm=$(cat "/proc/$1/comm" 2>/dev/null) && [ "$comm" = "$2" ] || return 1
  st=$(ps -o stat= -p "$1" 2>/dev/null) && [ -n "$st" ] && [ "${st#Z}" = "$st" ]
}

# alive FILE NAME: FILE exists and names a running NAME.
alive() { [ -f "$1" ] && running "$(cat "$1" 2>/dev/null)" "$2"; }
