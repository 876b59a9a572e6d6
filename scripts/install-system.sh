#!/usr/bin/env bash
# Install the Debian packages magicmask needs, only those that are missing:
# ImageMagick (convert, the reference), MagickWand (what Wand loads), ffmpeg, and Python's venv.
set -euo pipefail
need=()
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || need+=(ffmpeg)
[ -x /usr/bin/convert ] || need+=(imagemagick)
dpkg -s libmagickwand-dev >/dev/null 2>&1 || need+=(libmagickwand-dev)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${need[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
