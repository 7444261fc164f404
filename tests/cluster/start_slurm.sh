#!/usr/bin/env bash
# Starts a single-node Slurm cluster on this machine, for the batch tests (and by hand).
#
#   sudo bash tests/cluster/start_slurm.sh
#
# Installs slurmctld, slurmd, slurm-client and munge from the distribution's packages if
# they are missing, writes a minimal /etc/slurm/slurm.conf (one node: this host, its CPUs
# and memory; one default partition "batch"), starts munged, slurmctld and slurmd, and
# waits until `sinfo` shows the node idle. Safe to rerun: a running cluster is left alone.
# There is no accounting database (sacct says "accounting storage is disabled").
# Exit status 0: the cluster is up. Otherwise the last line says why it could not start
# it (tests/test_batch_slurm.py runs this script and skips with that reason).
set -euo pipefail

say() { echo "start_slurm: $*" >&2; }
fail() { echo "start_slurm: cannot start Slurm: $*" >&2; exit 1; }

PARTITION=batch
HOST="$(hostname -s)"

node_ready() {
  command -v sinfo >/dev/null 2>&1 || return 1
  local state
  state="$(sinfo --noheader --nodes="$HOST" --format=%t 2>/dev/null | head -n1)" || return 1
  [[ "$state" == idle* || "$state" == mix* || "$state" == alloc* ]]
}

if node_ready; then
  say "already running ($(sinfo --noheader --format='%P %D %t' | head -n1))"
  exit 0
fi

[[ "$(id -u)" == 0 ]] || fail "needs root (to install packages and run slurmctld/slurmd as SlurmUser=root); run it with sudo."

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v slurmd >/dev/null 2>&1 \
    || ! command -v sbatch >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || fail "apt-get not found: install slurmctld, slurmd, slurm-client and munge by hand."
  say "installing slurmctld slurmd slurm-client munge"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q slurmctld slurmd slurm-client munge >/tmp/start_slurm_apt.log 2>&1; then
    apt-get update -q >>/tmp/start_slurm_apt.log 2>&1 || true
    apt-get install -y -q slurmctld slurmd slurm-client munge >>/tmp/start_slurm_apt.log 2>&1 \
      || fail "apt-get install failed (no package registry reachable?); see /tmp/start_slurm_apt.log"
  fi
fi

# munge: runs as the munge user, with its key and /run/munge owned by it.
if ! pgrep -x munged >/dev/null 2>&1; then
  id munge >/dev/null 2>&1 || fail "the munge user is missing (the munge package did not install it)."
  if [[ ! -s /etc/munge/munge.key ]]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  fi
  chown -R munge:munge /etc/munge && chmod 700 /etc/munge && chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge /var/lib/munge /var/log/munge
  chown munge:munge /run/munge /var/lib/munge /var/log/munge
  chmod 755 /run/munge
  runuser -u munge -- /usr/sbin/munged || fail "munged did not start (see /var/log/munge/munged.log)."
fi

CPUS="$(nproc --all)"
MEMORY_MB="$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)"
mkdir -p /etc/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm
CONF=/etc/slurm/slurm.conf
WANTED="$(cat <<CONF
# Written by lottery_ticket tests/cluster/start_slurm.sh: a single-node test cluster.
ClusterName=lottery
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SchedulerParameters=sched_interval=2
MinJobAge=300
NodeName=$HOST CPUs=$CPUS RealMemory=$MEMORY_MB State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
)"
if [[ ! -f "$CONF" ]] || [[ "$(cat "$CONF")" != "$WANTED" ]]; then
  printf '%s\n' "$WANTED" > "$CONF"
  # A changed configuration: restart the daemons so that they read it.
  for pidfile in /run/slurmd.pid /run/slurmctld.pid; do
    if [[ -s "$pidfile" ]] && kill "$(cat "$pidfile")" 2>/dev/null; then sleep 1; fi
  done
fi

pgrep -x slurmctld >/dev/null 2>&1 || slurmctld || fail "slurmctld did not start (see /var/log/slurm/slurmctld.log)."
pgrep -x slurmd >/dev/null 2>&1 || slurmd || fail "slurmd did not start (see /var/log/slurm/slurmd.log)."

for _ in $(seq 1 60); do
  if node_ready; then
    say "up: partition $PARTITION, node $HOST, $CPUS CPUs, ${MEMORY_MB} MB"
    exit 0
  fi
  # A node that was down (an earlier unclean stop) comes back once told to.
  state="$(sinfo --noheader --nodes="$HOST" --format=%t 2>/dev/null | head -n1 || true)"
  if [[ "$state" == down* || "$state" == drain* ]]; then
    scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true
  fi
  sleep 1
done
fail "the node did not become idle within 60 s: $(sinfo 2>&1 | tail -n +2 | head -n3)"
