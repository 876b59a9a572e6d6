#!/usr/bin/env bash
# Install the Debian packages magicmask needs, only those that are missing:
# ImageMagick (convert, the reference), MagickWand (what Wand loads), ffmpeg, and Python's venv.
# With MAGICMASK_SLURM=1 (as CI sets it), also SLURM and munge, then a single-node SLURM is started
# (scripts/start-slurm.sh) for the test of a batch through dask-jobqueue.
set -euo pipefail
need=()
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || need+=(ffmpeg)
[ -x /usr/bin/convert ] || need+=(imagemagick)
dpkg -s libmagickwand-dev >/dev/null 2>&1 || need+=(libmagickwand-dev)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
if [ "${MAGICMASK_SLURM:-}" = 1 ]; then
  for package in slurmctld slurmd slurm-client munge; do
    dpkg -s "$package" >/dev/null 2>&1 || need+=("$package")
  done
fi
start_slurm() {
  if [ "${MAGICMASK_SLURM:-}" = 1 ]; then
    "$(dirname "$0")/start-slurm.sh"
  fi
}
if [ ${#need[@]} -eq 0 ]; then
  start_slurm
  exit 0
fi
echo "installing Debian packages: ${need[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
start_slurm
