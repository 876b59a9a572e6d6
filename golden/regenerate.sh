#!/usr/bin/env bash
# Regenerate the golden outputs with the REAL commands of the blog post (ffmpeg and ImageMagick's
# own convert), never with magicmask. Inputs (the two sample videos) are kept as they are unless
# --inputs is given, which draws them anew with magicmask.sample and encodes them with ffmpeg.
#
#   golden/regenerate.sh [--inputs]
#
# Layout, for each VIDEO in walk (8-bit) and walk10 (10-bit H.264, keyframes as 16-bit TIFF):
#   VIDEO.mp4                      the input
#   VIDEO/frames/t01.tiff ...      ffmpeg -skip_frame nokey -i VIDEO.mp4 -fps_mode passthrough -pix_fmt rgb24|rgb48le -f image2 t%02d.tiff
#   VIDEO/first/NAME-mask.tiff ... the seed's loop with t01.tiff as background
#   VIDEO/lighten/background.tiff  convert t*.tiff -background black -compose lighten -flatten background.tiff
#   VIDEO/lighten/NAME-mask.tiff   the seed's loop with that background
#   VIDEO/keyframes.jpg            convert t*.tiff -background white -compose darken -flatten keyframes.jpg
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
CONVERT=${CONVERT:-/usr/bin/convert}
"$CONVERT" -version | grep -q ImageMagick || { echo "ImageMagick's convert not found at $CONVERT" >&2; exit 1; }
python=${PYTHON:-python3}

if [ "${1:-}" = "--inputs" ] || [ ! -f walk.mp4 ] || [ ! -f walk10.mp4 ]; then
  (cd .. && "$python" -c "
from magicmask.sample import make_sample_video
make_sample_video('golden/walk.mp4', width=160, height=120, count=40, keyint=8)
make_sample_video('golden/walk10.mp4', width=160, height=120, count=24, keyint=8, deep=True)
")
fi

seed_loop() {  # seed_loop BACKGROUND OUTDIR FRAMES...
  local bg=$1 outdir=$2; shift 2
  for i in "$@"; do
    name=$(basename "$i" .tiff)
    "$CONVERT" "$bg" "$i" -compose difference -composite -threshold 5% -blur 0x3 -threshold 20% -blur 0x3 "$outdir/$name-mask.tiff"
    "$CONVERT" "$i" "$outdir/$name-mask.tiff" -compose multiply -flatten "$outdir/$name-clean.jpg"
  done
}

for video in walk walk10; do
  pix_fmt=rgb24; [ "$video" = walk10 ] && pix_fmt=rgb48le
  rm -rf "$video"; mkdir -p "$video/frames" "$video/first" "$video/lighten"
  ffmpeg -hide_banner -loglevel error -nostdin -skip_frame nokey -i "$video.mp4" -fps_mode passthrough -pix_fmt "$pix_fmt" -f image2 "$video/frames/t%02d.tiff"
  frames=("$video"/frames/t*.tiff)
  seed_loop "$video/frames/t01.tiff" "$video/first" "${frames[@]}"
  "$CONVERT" "${frames[@]}" -background black -compose lighten -flatten "$video/lighten/background.tiff"
  seed_loop "$video/lighten/background.tiff" "$video/lighten" "${frames[@]}"
  "$CONVERT" "${frames[@]}" -background white -compose darken -flatten "$video/keyframes.jpg"
done

{
  echo "Made by golden/regenerate.sh on $(date -u +%Y-%m-%d)"
  "$CONVERT" -version | head -1
  ffmpeg -version | head -1
} > VERSIONS.txt
cat VERSIONS.txt
