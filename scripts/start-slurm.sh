#!/usr/bin/env bash
# A one-node Slurm on this machine, for kiln's Slurm runner (docs/verify.md,
# "Slurm"): Debian 12's slurm-wlm (slurmctld + slurmd) and munge, run as root,
# every file under one state directory, no accounting database, no GPU.
#
#   scripts/start-slurm.sh [--stop] [STATE_DIR]     (default /var/tmp/kiln-slurm)
#
# Idempotent: when the controller of STATE_DIR already answers, it only waits
# for the node. Prints `export SLURM_CONF=STATE_DIR/slurm.conf`: Slurm's
# commands (sbatch, squeue, scontrol, scancel, sinfo) -- kiln's too -- find
# the cluster through it. Ports: KILN_SLURM_PORT (slurmctld, default 6817)
# and the next one (slurmd).
#
# Why these settings: proctrack/linuxproc and task/none need no cgroup
# (containers, CI machines); accounting_storage/none because there is no
# slurmdbd -- kiln reads a job's end from `scontrol show job`, which keeps a
# finished job for MinJobAge seconds; OverTimeLimit=0 and a short KillWait so
# that a job over its time limit ends within seconds of it.
set -euo pipefail

stop=false
[[ "${1:-}" == "--stop" ]] && { stop=true; shift; }
state=${1:-${KILN_SLURM_DIR:-/var/tmp/kiln-slurm}}
port=${KILN_SLURM_PORT:-6817}
node=$(hostname -s)
conf=$state/slurm.conf
export SLURM_CONF=$conf

alive() { [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
stop_one() {  # pid file: TERM, then KILL after 5 s
  alive "$1" || return 0
  local pid; pid=$(cat "$1"); kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

if $stop; then
  stop_one "$state/slurmd.pid"; stop_one "$state/slurmctld.pid"; stop_one "$state/munge/munged.pid"
  echo "start-slurm: stopped ($state)"
  exit 0
fi

for b in munged slurmctld slurmd sinfo sbatch scontrol; do
  command -v "$b" >/dev/null || { echo "start-slurm: $b is not installed (scripts/install-deps.sh: slurm-wlm, munge)" >&2; exit 2; }
done
[[ $(id -u) -eq 0 ]] || { echo "start-slurm: run as root (slurmd starts jobs as their users)" >&2; exit 2; }

node_idle() { sinfo -h -n "$node" -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; }
wait_idle() {
  for _ in $(seq 1 150); do
    node_idle && { echo "export SLURM_CONF=$conf"; exit 0; }
    sleep 0.2
  done
  echo "start-slurm: node $node is not idle after 30 s:" >&2
  sinfo -N -l >&2 || true
  tail -n 20 "$state/slurmctld.log" "$state/slurmd.log" >&2 || true
  exit 2
}

if alive "$state/slurmctld.pid" && alive "$state/slurmd.pid" && alive "$state/munge/munged.pid"; then
  wait_idle
fi

# Anything half-started goes; the cluster's state (jobs) is thrown away with it.
stop_one "$state/slurmd.pid"; stop_one "$state/slurmctld.pid"; stop_one "$state/munge/munged.pid"
rm -rf "$state/ctld" "$state/d"
mkdir -p "$state/munge" "$state/ctld" "$state/d" "$state/jobs"
chmod 0700 "$state/munge"
[[ -s "$state/munge/munge.key" ]] || { dd if=/dev/urandom bs=1 count=1024 of="$state/munge/munge.key" 2>/dev/null; }
chmod 0400 "$state/munge/munge.key"

cat >"$conf" <<CONF
# Written by kiln's scripts/start-slurm.sh: one node, no GPU, no accounting.
ClusterName=kiln
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$state/munge/munge.socket.2
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/d
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
MinJobAge=600
KillWait=2
OverTimeLimit=0
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=$node NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=1024 State=UNKNOWN
PartitionName=kiln Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF

munged --force --key-file="$state/munge/munge.key" --socket="$state/munge/munge.socket.2" \
  --pid-file="$state/munge/munged.pid" --log-file="$state/munge/munged.log" --seed-file="$state/munge/munged.seed"
slurmctld -f "$conf"   # both daemonize and write their pid files
slurmd -f "$conf"
wait_idle
