#!/usr/bin/env bash
# Single-node Grid Engine (Debian's gridengine 8.1: sge_qmaster + sge_execd) for sremote's
# tests, on a machine without systemd. Idempotent: re-running while up is a no-op.
# Installs the packages (debconf preseeded: cell `default`, this host as master) when
# missing; aliases the host name to `localhost` (this host's name resolves to 127.0.0.1,
# which Grid Engine otherwise refuses); allows root jobs; schedules every second; makes
# queue all.q with one slot per CPU. Needs root. Stop with sge-down.sh.
set -euo pipefail
export SGE_ROOT=${SGE_ROOT:-/var/lib/gridengine} SGE_CELL=${SGE_CELL:-default}
HOST=$(hostname -s)
CPUS=$(nproc)
COMMON=$SGE_ROOT/$SGE_CELL/common
QM_PID=/var/spool/gridengine/qmaster/qmaster.pid
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
log() { echo "[sge-up] $*" >&2; }
. "$(dirname "$0")/daemons.sh"
execd_pid() { ls /var/spool/gridengine/execd/*/execd.pid 2>/dev/null | head -1; }

# ---- 1. packages --------------------------------------------------------------
if [ ! -x /usr/sbin/sge_qmaster ] || [ ! -x /usr/sbin/sge_execd ] || ! command -v qsub >/dev/null; then
  log "installing gridengine-master gridengine-exec gridengine-client"
  export DEBIAN_FRONTEND=noninteractive
  for p in gridengine-common gridengine-master gridengine-client; do
    printf '%s shared/gridenginemaster string %s\n%s shared/gridenginecell string default\n%s shared/gridengineconfig boolean true\n' \
      "$p" "$HOST" "$p" "$p" | debconf-set-selections
  done
  apt-get install -y -q gridengine-master gridengine-exec gridengine-client >/dev/null \
    || { apt-get update -q >/dev/null && apt-get install -y -q gridengine-master gridengine-exec gridengine-client >/dev/null; }
fi
[ -f "$COMMON/act_qmaster" ] || { log "no cell $COMMON (the package did not configure a cluster)"; exit 1; }

# ---- already up? ----------------------------------------------------------------
if alive "$QM_PID" sge_qmaster && [ -n "$(execd_pid)" ] && alive "$(execd_pid)" sge_execd \
   && qstat -f 2>/dev/null | grep -q "^all.q@" && ! qstat -f 2>/dev/null | grep -q "^all.q@.* [a-zA-Z]*E" \
   && qconf -sconf global 2>/dev/null | grep -q "flush_time=00:00:01"; then
  log "already up"; exit 0
fi

# ---- 2. host name -----------------------------------------------------------------
getent hosts "$HOST" >/dev/null || echo "127.0.0.1 $HOST" >> /etc/hosts
echo "$HOST" > "$COMMON/act_qmaster"
echo "$HOST localhost" > "$COMMON/host_aliases"

# ---- 3. qmaster -------------------------------------------------------------------
if ! alive "$QM_PID" sge_qmaster; then
  /usr/sbin/sge_qmaster
fi
for _ in $(seq 300); do qconf -sh >/dev/null 2>&1 && break; sleep 0.1; done
qconf -sh >/dev/null || { log "sge_qmaster does not answer"; tail -5 /var/spool/gridengine/qmaster/messages >&2; exit 1; }

# ---- 4. configuration: root may run jobs, schedule every second ----------------------
mkdir -p "$WORK/conf"
qconf -sconf global > "$WORK/conf/global"
sed -i -E 's/^(min_uid|min_gid)[[:space:]].*/\1 0/' "$WORK/conf/global"
# accounting (qacct) written within a second of a job's end, not 15 s
sed -i -E 's/flush_time=[0-9:]+/flush_time=00:00:01/' "$WORK/conf/global"
qconf -Mconf "$WORK/conf/global" >/dev/null
qconf -ssconf > "$WORK/sched"
sed -i -E 's/^schedule_interval .*/schedule_interval 0:0:1/; s/^flush_submit_sec .*/flush_submit_sec 1/; s/^flush_finish_sec .*/flush_finish_sec 1/' "$WORK/sched"
qconf -Msconf "$WORK/sched" >/dev/null
qconf -sh | grep -qx "$HOST" || qconf -ah "$HOST" >/dev/null
qconf -ss | grep -qx "$HOST" || qconf -as "$HOST" >/dev/null
if ! qconf -sql 2>/dev/null | grep -qx all.q; then
  qconf -sq > "$WORK/q" 2>/dev/null || true
  cat > "$WORK/all.q" <<Q
qname                 all.q
hostlist              $HOST
seq_no                0
load_thresholds       NONE
suspend_thresholds    NONE
nsuspend              1
suspend_interval      00:05:00
priority              0
min_cpu_interval      00:05:00
processors            UNDEFINED
qtype                 BATCH INTERACTIVE
ckpt_list             NONE
pe_list               make
rerun                 FALSE
slots                 $CPUS
tmpdir                /tmp
shell                 /bin/sh
prolog                NONE
epilog                NONE
shell_start_mode      unix_behavior
starter_method        NONE
suspend_method        NONE
resume_method         NONE
terminate_method      NONE
notify                00:00:60
owner_list            NONE
user_lists            NONE
xuser_lists           NONE
subordinate_list      NONE
complex_values        NONE
projects              NONE
xprojects             NONE
calendar              NONE
initial_state         default
s_rt                  INFINITY
h_rt                  INFINITY
s_cpu                 INFINITY
h_cpu                 INFINITY
s_fsize               INFINITY
h_fsize               INFINITY
s_data                INFINITY
h_data                INFINITY
s_stack               INFINITY
h_stack               INFINITY
s_core                INFINITY
h_core                INFINITY
s_rss                 INFINITY
h_rss                 INFINITY
s_vmem                INFINITY
h_vmem                INFINITY
Q
  qconf -Aq "$WORK/all.q" >/dev/null
fi

# ---- 5. execd (reads the configuration above when it starts) ----------------------------
if [ -z "$(execd_pid)" ] || ! alive "$(execd_pid)" sge_execd; then
  /usr/sbin/sge_execd
fi
for _ in $(seq 150); do
  qhost -h "$HOST" 2>/dev/null | awk -v h="$HOST" '$1==h && $7!="-" {ok=1} END {exit !ok}' && break
  sleep 0.1
done
qmod -c all.q >/dev/null 2>&1 || true
qstat -f | grep -q "^all.q@" || { log "queue all.q has no instance"; exit 1; }
log "up: $(qstat -f | grep '^all.q@')"
