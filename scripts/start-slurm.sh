#!/usr/bin/env bash
# Start a single-node SLURM (Debian's slurmctld, slurmd and munge, SLURM 22.05) on this machine, bound to
# loopback, with the configuration kept in scripts/slurm/slurm.conf; what the test of a batch through
# dask-jobqueue's SLURMCluster runs on. Needs root (or sudo). Does nothing when SLURM already answers.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
sudo=""
as_munge=(runuser -u munge --)
[ "$(id -u)" -eq 0 ] || { sudo=sudo; as_munge=(sudo -u munge); }
# munge: a key, its run folder, the daemon as user munge
[ -s /etc/munge/munge.key ] || "${as_munge[@]}" /usr/sbin/mungekey --create
$sudo install -d -o munge -g munge -m 0755 /run/munge
pgrep -x munged >/dev/null || "${as_munge[@]}" /usr/sbin/munged
# the configuration, with this machine's cores and memory (MB)
memory=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
sed -e "s/^\(NodeName=localhost .*\)CPUs=[0-9]*/\1CPUs=$(nproc)/" -e "s/RealMemory=[0-9]*/RealMemory=$memory/" \
  "$here/slurm/slurm.conf" | $sudo tee /etc/slurm/slurm.conf.new >/dev/null
if ! cmp -s /etc/slurm/slurm.conf.new /etc/slurm/slurm.conf; then  # a changed configuration: daemons restarted
  $sudo mv /etc/slurm/slurm.conf.new /etc/slurm/slurm.conf
  for daemon in slurmd slurmctld; do  # stopped by the pids they wrote
    if [ -s "/run/$daemon.pid" ] && pid=$(cat "/run/$daemon.pid") && kill -0 "$pid" 2>/dev/null; then
      $sudo kill "$pid"
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
  done
else
  $sudo rm -f /etc/slurm/slurm.conf.new
fi
$sudo install -d -o slurm -g slurm /var/spool/slurmctld /var/log/slurm
$sudo install -d /var/spool/slurmd
running() { [ -s "/run/$1.pid" ] && kill -0 "$(cat "/run/$1.pid")" 2>/dev/null; }
running slurmctld || $sudo /usr/sbin/slurmctld
running slurmd || $sudo /usr/sbin/slurmd
for _ in $(seq 1 60); do
  if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    echo "SLURM is up: $(sinfo -h -o '%P %D %T %c CPUs')"
    exit 0
  fi
  sleep 0.5
done
echo "SLURM did not come up; see /var/log/slurm/slurmctld.log and /var/log/slurm/slurmd.log" >&2
exit 1
