#!/usr/bin/env bash
# A real Slurm cluster on one machine, over the namespace hosts of scripts/netns-bed.sh:
# munged and slurmctld in the root namespace, one `slurmd -N NAME` per namespace host.
#
#   scripts/slurm-bed.sh up TAG N     bring up N nodes (TAGn0 .. TAGn(N-1)); prints the bring-up time
#   scripts/slurm-bed.sh down TAG     stop what `up` started, remove its files and namespaces
#   scripts/slurm-bed.sh env TAG      print `export SLURM_CONF=...` for sbatch/squeue/scontrol
#
# Facts this relies on (PLATFORM.md): `ip netns exec` remounts /sys and hides the cgroup
# mounts, so slurmd is entered with `nsenter --net` only; proctrack/linuxproc and
# task/none need no cgroups; spool and pid files are per node (%n); slurmctld reads the
# node list only when it starts. Node names resolve through NodeAddr, so /etc/hosts is
# not touched. Needs root, Debian's slurm-wlm and munge (scripts/install-deps.sh --multi-host).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
usage() { sed -n '2,8p' "$0" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1; tag=$2
dir=/tmp/heed-slurm-$tag
conf=$dir/slurm.conf

start_munge() {
  if [ -S /run/munge/munge.socket.2 ] && munge -n >/dev/null 2>&1; then return; fi
  install -d -o munge -g munge -m 0755 /run/munge
  # munged keeps every descriptor it inherits; a caller that waits for EOF on one (Swift's
  # Process does) would wait for the daemon. Close all but the standard three first.
  (
    for fd in /proc/$BASHPID/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null; done
    exec runuser -u munge -- /usr/sbin/munged </dev/null >/dev/null 2>&1
  )
  touch "$dir/started-munged"
  for _ in $(seq 100); do munge -n >/dev/null 2>&1 && return; sleep 0.05; done
  echo "slurm-bed: munged did not come up" >&2; exit 1
}

down() {
  if [ -d "$dir" ]; then
    for f in "$dir"/slurmd-*.pid "$dir"/slurmctld.pid; do
      [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
    done
    sleep 0.3
    for f in "$dir"/slurmd-*.pid "$dir"/slurmctld.pid; do
      [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null || true
    done
    if [ -f "$dir/started-munged" ]; then pkill -u munge -x munged 2>/dev/null || true; fi
    rm -rf "$dir"
  fi
  "$here/netns-bed.sh" down "$tag"
}

case "$cmd" in
  up)
    n=${3:?usage: slurm-bed.sh up TAG N}
    start=$(date +%s%N)
    mkdir -p "$dir/state" "$dir/spool"
    trap 'down' ERR
    mapfile -t hosts < <("$here/netns-bed.sh" up "$tag" "$n")
    # A failed `netns-bed.sh up` (its message is on stderr) leaves fewer host lines.
    if [ "${#hosts[@]}" -ne "$n" ]; then echo "slurm-bed: the network bed for $tag did not come up" >&2; down; exit 1; fi
    bridge_addr=$(echo "${hosts[0]}" | awk '{print $2}' | sed 's/\.[0-9]*$/.1/')
    port_base=$(( 20000 + $(printf '%s' "$tag" | cksum | cut -d' ' -f1) % 20000 ))
    {
      echo "ClusterName=heed$tag"
      echo "SlurmctldHost=$(hostname -s)($bridge_addr)"
      echo "SlurmctldPort=$port_base"
      echo "SlurmdPort=$((port_base + 1))"
      echo "SlurmUser=root"
      echo "SlurmdUser=root"
      echo "AuthType=auth/munge"
      echo "CredType=cred/munge"
      echo "StateSaveLocation=$dir/state"
      echo "SlurmdSpoolDir=$dir/spool/%n"
      echo "SlurmctldPidFile=$dir/slurmctld.pid"
      echo "SlurmdPidFile=$dir/slurmd-%n.pid"
      echo "SlurmctldLogFile=$dir/slurmctld.log"
      echo "SlurmdLogFile=$dir/slurmd-%n.log"
      echo "ProctrackType=proctrack/linuxproc"
      echo "TaskPlugin=task/none"
      echo "JobAcctGatherType=jobacct_gather/none"
      echo "AccountingStorageType=accounting_storage/none"
      echo "SchedulerType=sched/builtin"
      echo "SelectType=select/linear"
      echo "MpiDefault=none"
      echo "ReturnToService=2"
      echo "MinJobAge=300"
      echo "SlurmdTimeout=30"
      for ((k = 0; k < n; k++)); do
        addr=$(echo "${hosts[$k]}" | awk '{print $2}')
        echo "NodeName=${tag}n$k NodeAddr=$addr CPUs=2 State=UNKNOWN"
      done
      echo "PartitionName=heed Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE"
    } > "$conf"
    start_munge
    /usr/sbin/slurmctld -f "$conf"
    for ((k = 0; k < n; k++)); do
      mkdir -p "$dir/spool/${tag}n$k"
      nsenter --net="/var/run/netns/heed-$tag-h$k" /usr/sbin/slurmd -f "$conf" -N "${tag}n$k"
    done
    export SLURM_CONF=$conf
    for _ in $(seq 300); do
      idle=$(sinfo -h -N -o '%t' 2>/dev/null | grep -c '^idle' || true)
      [ "$idle" -eq "$n" ] && break
      sleep 0.1
    done
    if [ "$idle" -ne "$n" ]; then
      echo "slurm-bed: only $idle of $n nodes became idle; see $dir/*.log" >&2
      sinfo -N >&2 || true
      down; exit 1
    fi
    trap - ERR
    end=$(date +%s%N)
    printf 'slurm-bed: %d nodes up in %s s (SLURM_CONF=%s)\n' "$n" "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')" "$conf"
    ;;
  down)
    down
    ;;
  env)
    echo "export SLURM_CONF=$conf"
    ;;
  *) usage ;;
esac
