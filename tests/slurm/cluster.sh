#!/usr/bin/env bash
# A throwaway single-node Slurm cluster on this machine, for tests/slurm_e2e.py and by hand.
#
#   tests/slurm/cluster.sh start DIR   # munged + slurmctld + slurmd, everything under DIR;
#                                      # prints "SLURM_CONF=DIR/etc/slurm.conf" once the node is idle
#   SLURM_CONF=DIR/etc/slurm.conf sbatch ...
#   tests/slurm/cluster.sh stop DIR    # kills the daemons started in DIR and removes DIR
#
# Runs as root (munged --force, SlurmUser=root): no systemd, no cgroups, nothing in /etc.
# A fresh munge key, random free ports and DIR-local state, so two clusters never meet and a
# leftover of a killed run does not disturb the next one. Needs slurmctld slurmd slurm-client
# munge (scripts/install-deps.sh).
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
dir=$2
START_TIMEOUT=${SLURM_TEST_START_TIMEOUT:-60}

stop() {
  [ -d "$dir" ] || return 0
  dir=$(cd "$dir" && pwd)
  local pids=() p
  # jobs first, while slurmctld and slurmd can still end their steps
  p=$(cat "$dir/run/slurmctld.pid" 2>/dev/null || true)
  if [ -n "$p" ] && grep -qs "$dir" "/proc/$p/cmdline"; then
    SLURM_CONF="$dir/etc/slurm.conf" timeout 5 scancel --user="$(id -un)" 2>/dev/null || true
    for _ in $(seq 10); do
      [ -z "$(SLURM_CONF="$dir/etc/slurm.conf" timeout 2 squeue -h -o %i 2>/dev/null)" ] && break
      sleep 0.25
    done
  fi
  for f in slurmd slurmctld munged; do
    p=$(cat "$dir/run/$f.pid" 2>/dev/null || true)
    # only a process that is still the daemon we started (a reused pid is left alone)
    if [ -n "$p" ] && grep -qs "$dir" "/proc/$p/cmdline"; then
      kill -TERM "$p" 2>/dev/null || true
      pids+=("$p")
    fi
  done
  for _ in $(seq 100); do
    local alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  # whatever of a job still runs: slurmstepd, the batch script, srun, the tasks (processes
  # started by this cluster's slurmd carry its SLURM_CONF and a SLURM_JOB_ID)
  for e in /proc/[0-9]*/environ; do
    p=${e#/proc/}
    p=${p%/environ}
    [ "$p" = $$ ] && continue
    if tr '\0' '\n' 2>/dev/null <"$e" | grep -qxF "SLURM_CONF=$dir/etc/slurm.conf"; then
      case $(cat "/proc/$p/comm" 2>/dev/null) in
        slurmstepd) kill -KILL "$p" 2>/dev/null || true ;;
        *) tr '\0' '\n' 2>/dev/null <"$e" | grep -q '^SLURM_JOB_ID=' && kill -KILL "$p" 2>/dev/null || true ;;
      esac
    fi
  done
  # our layout only: never remove a folder this script did not fill
  if [ -d "$dir/run" ] && [ -d "$dir/munge" ]; then rm -rf "$dir"; else rmdir "$dir" 2>/dev/null || true; fi
}

fail() {
  echo "cluster.sh: $*" >&2
  for f in munged slurmctld slurmd; do
    [ -s "$dir/log/$f.log" ] && { echo "---- $dir/log/$f.log (last lines)" >&2; tail -n 15 "$dir/log/$f.log" >&2; }
  done
  stop
  exit 1
}

free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])'
}

start() {
  for b in munged mungekey slurmctld slurmd sinfo scontrol; do
    command -v "$b" >/dev/null || PATH=$PATH:/usr/sbin:/sbin command -v "$b" >/dev/null ||
      { echo "cluster.sh: $b not found; run scripts/install-deps.sh (slurmctld slurmd slurm-client munge)" >&2; exit 1; }
  done
  export PATH=$PATH:/usr/sbin:/sbin
  [ "$(id -u)" -eq 0 ] || { echo "cluster.sh: must run as root (SlurmUser=root, munged as root)" >&2; exit 1; }
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  mkdir -p "$dir"/{etc,run,log,state,spool,munge/lib}
  # munged refuses a socket folder writable by others and a key readable by others
  chmod 755 "$dir" "$dir/run"
  chmod 700 "$dir/munge" "$dir/munge/lib"

  # ---- munge ----
  mungekey --create --keyfile="$dir/munge/munge.key" 2>/dev/null ||
    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$dir/munge/munge.key"
  local sock="$dir/run/munge.socket"
  munged --foreground --force --socket="$sock" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/run/munged.pidfile" --log-file="$dir/log/munged.log" \
    --seed-file="$dir/munge/lib/munged.seed" </dev/null >>"$dir/log/munged.log" 2>&1 &
  echo $! >"$dir/run/munged.pid"
  for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
  [ -S "$sock" ] || fail "munged did not create $sock"
  munge --socket="$sock" -n </dev/null | unmunge --socket="$sock" >/dev/null 2>&1 ||
    fail "munge/unmunge round trip failed on $sock"

  # ---- slurm.conf: this machine as slurmd -C reports it ----
  local host node ctl_port d_port
  host=$(hostname -s)
  node=$(slurmd -C | sed -n 's/^\(NodeName=[^ ]*\) \(.*\)/\1 \2/p' | head -n 1 | sed 's/ UpTime=.*//')
  [ -n "$node" ] || fail "slurmd -C printed no NodeName line"
  ctl_port=$(free_port)
  d_port=$(free_port)
  while [ "$d_port" = "$ctl_port" ]; do d_port=$(free_port); done
  cat >"$dir/etc/slurm.conf" <<EOF
# written by tests/slurm/cluster.sh
ClusterName=qcaltest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctl_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$sock
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pidfile
SlurmdPidFile=$dir/run/slurmd.pidfile
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
MinJobAge=600
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  export SLURM_CONF="$dir/etc/slurm.conf"

  # ---- daemons, in the foreground of background jobs: their pids are ours ----
  slurmctld -D -i -f "$SLURM_CONF" </dev/null >>"$dir/log/slurmctld.out" 2>&1 &
  echo $! >"$dir/run/slurmctld.pid"
  slurmd -D -f "$SLURM_CONF" </dev/null >>"$dir/log/slurmd.out" 2>&1 &
  echo $! >"$dir/run/slurmd.pid"

  local state="" t0=$SECONDS
  while [ $((SECONDS - t0)) -lt "$START_TIMEOUT" ]; do
    for f in slurmctld slurmd; do
      kill -0 "$(cat "$dir/run/$f.pid")" 2>/dev/null ||
        fail "$f exited at start: $(tail -n 3 "$dir/log/$f.out" 2>/dev/null | tr '\n' ' ')"
    done
    state=$(timeout 10 sinfo -h -N -o '%T' 2>/dev/null | head -n 1 || true)
    [ "$state" = idle ] && break
    sleep 0.5
  done
  [ "$state" = idle ] || fail "node not idle after ${START_TIMEOUT}s (sinfo: '${state:-no answer}')"
  echo "SLURM_CONF=$SLURM_CONF"
}

case $cmd in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
