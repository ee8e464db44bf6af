#!/usr/bin/env bash
# Start a throw-away single-node Slurm cluster (slurmctld + slurmd + its own munged) on this
# machine, for the tests of the Slurm executor. Needs root and the Debian packages slurm-wlm and
# munge (installed here with apt-get when missing). Prints `export SLURM_CONF=...` on success.
#
# Everything of the cluster lives under $SYNTHSCALE_SLURM_DIR (default /tmp/synthscale-slurm):
# config, state, logs, pid files, its own munge key and socket. Its daemons listen on free ports
# of their own, so it never meets another Slurm or munge on the machine, and two such clusters
# (in two folders) do not share anything.
#
# Stop it with: scripts/slurm_single_node.sh stop   (same SYNTHSCALE_SLURM_DIR). That cancels the
# cluster's jobs, stops its daemons and every process of its jobs (found by the folder in their
# command line or SLURM_CONF in their environment; nothing else), waits until they are gone
# (SIGKILL after 20 s) and exits non-zero if one is still running.
set -euo pipefail

DIR="${SYNTHSCALE_SLURM_DIR:-/tmp/synthscale-slurm}"
CONF="$DIR/slurm.conf"
HOST="$(hostname -s)"
PIDFILES=("$DIR/slurmd.pid" "$DIR/slurmctld.pid" "$DIR/munged.pid")

# running (a zombie, which a container's init may never reap, is not)
alive() {
  [[ -n "$1" && -r "/proc/$1/stat" ]] || return 1
  local state
  state="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)"
  [[ -n "$state" && "$state" != Z ]]
}

# pids of the processes of this folder's cluster: its daemons (their command line names the folder)
# and its jobs' processes (slurmstepd, job scripts, srun: their environment has SLURM_CONF=$CONF);
# never this script or its subshells
cluster_pids() {
  local proc pid ppid
  for proc in /proc/[0-9]*; do
    pid="${proc#/proc/}"
    [[ "$pid" == "$$" || "$pid" == "$BASHPID" ]] && continue
    ppid="$(awk '{print $4}' "$proc/stat" 2>/dev/null)"
    [[ "$ppid" == "$$" || "$ppid" == "$BASHPID" ]] && continue
    alive "$pid" || continue
    if tr '\0' ' ' < "$proc/cmdline" 2>/dev/null | grep -q -- "$DIR" \
        || tr '\0' '\n' < "$proc/environ" 2>/dev/null | grep -qx -- "SLURM_CONF=$CONF"; then
      echo "$pid"
    fi
  done
}

stop_all() {
  # jobs first, while the controller can still cancel them and their steps can still end cleanly
  local ctld=""
  [[ -s "$DIR/slurmctld.pid" ]] && ctld="$(cat "$DIR/slurmctld.pid")"
  if [[ -f "$CONF" ]] && alive "$ctld" && tr '\0' ' ' < "/proc/$ctld/cmdline" | grep -q -- "$CONF"; then
    local jobs
    jobs="$(SLURM_CONF="$CONF" timeout 10 squeue -h -o %i 2>/dev/null < /dev/null || true)"
    if [[ -n "$jobs" ]]; then
      # shellcheck disable=SC2086
      SLURM_CONF="$CONF" timeout 10 scancel --quiet $jobs 2>/dev/null < /dev/null || true
      for _ in $(seq 40); do
        [[ -z "$(SLURM_CONF="$CONF" timeout 10 squeue -h -o %i 2>/dev/null < /dev/null || true)" ]] && break
        sleep 0.25
      done
    fi
  fi
  local pids pid
  pids="$(cluster_pids)"
  [[ -z "$pids" ]] && { rm -f "${PIDFILES[@]}"; return 0; }
  # shellcheck disable=SC2086
  kill $pids 2>/dev/null || true
  for _ in $(seq 80); do
    [[ -z "$(cluster_pids)" ]] && { rm -f "${PIDFILES[@]}"; return 0; }
    sleep 0.25
  done
  pids="$(cluster_pids)"
  # shellcheck disable=SC2086
  [[ -n "$pids" ]] && kill -9 $pids 2>/dev/null || true
  sleep 0.5
  pids="$(cluster_pids)"
  if [[ -n "$pids" ]]; then
    echo "processes of the cluster in $DIR are still running: $(echo $pids)" >&2
    return 1
  fi
  rm -f "${PIDFILES[@]}"
}

if [[ "${1:-start}" == "stop" ]]; then
  unset SLURM_CONF  # the processes this script starts must not look like the cluster's
  stop_all
  exit $?
fi

[[ "$(id -u)" == 0 ]] || { echo "needs root (to run munged and slurmd)" >&2; exit 3; }
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  command -v apt-get >/dev/null || { echo "slurm-wlm/munge missing and no apt-get" >&2; exit 3; }
  DEBIAN_FRONTEND=noninteractive timeout 240 apt-get install -y -q slurm-wlm munge >/dev/null \
    || { echo "apt-get install slurm-wlm munge failed" >&2; exit 3; }
fi

# anything that fails from here on stops what was started already
trap 'status=$?; if [[ $status -ne 0 ]]; then stop_all || true; fi' EXIT

mkdir -p "$DIR/state" "$DIR/spool"
chmod 0755 "$DIR"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo $((20000 + RANDOM % 20000)); }
CTLD_PORT="${SYNTHSCALE_SLURMCTLD_PORT:-$(free_port)}"
SLURMD_PORT="${SYNTHSCALE_SLURMD_PORT:-$(free_port)}"

# munge: this cluster's own key and daemon, on its own socket
SOCKET="$DIR/munge.socket"
if [[ ! -s "$DIR/munge.key" ]]; then
  dd if=/dev/urandom bs=1 count=1024 of="$DIR/munge.key" status=none
fi
chmod 0400 "$DIR/munge.key"
if ! munge --socket="$SOCKET" -n >/dev/null 2>&1; then
  munged --force --socket="$SOCKET" --key-file="$DIR/munge.key" --pid-file="$DIR/munged.pid" \
    --log-file="$DIR/munged.log" --seed-file="$DIR/munged.seed" >/dev/null 2>&1 \
    || { echo "munged did not start (see $DIR/munged.log)" >&2; exit 3; }
fi
for _ in $(seq 20); do munge --socket="$SOCKET" -n >/dev/null 2>&1 && break; sleep 0.25; done
munge --socket="$SOCKET" -n | unmunge --socket="$SOCKET" >/dev/null || { echo "munge round trip failed" >&2; exit 3; }

CPUS="$(nproc)"
MEM_MB="$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))"
cat > "$CONF" <<CONF
ClusterName=synthscale
SlurmctldHost=$HOST
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$SOCKET
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=600
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
export SLURM_CONF="$CONF"

if ! scontrol ping 2>/dev/null | grep -q UP; then
  slurmctld -f "$CONF" || { echo "slurmctld did not start (see $DIR/slurmctld.log)" >&2; exit 3; }
fi
if ! pgrep -F "$DIR/slurmd.pid" >/dev/null 2>&1; then
  slurmd -f "$CONF" || { echo "slurmd did not start (see $DIR/slurmd.log)" >&2; exit 3; }
fi
state=""
for _ in $(seq 60); do
  state="$(sinfo -h -o %T 2>/dev/null | head -1)"
  [[ "$state" == idle* || "$state" == mixed* ]] && { echo "export SLURM_CONF=$CONF"; exit 0; }
  sleep 0.5
done
echo "the node did not come up (sinfo: ${state:-nothing}; see $DIR/slurmd.log)" >&2
exit 3
