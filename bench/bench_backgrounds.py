"""Backgrounds over every frame of a 1080p video: time and peak memory (issue 9: under 2 GB for 3,000 frames).

Runs :func:`magicmask.statistics.make_backgrounds` with ``--from video`` in a child process for each method and
measures the wall time and the peak memory of its whole process tree (Python and the ffmpeg decoding into it),
on a 1080p sample clip of ``--frames`` frames (made once, cached in bench/out), and on a clip of a fifth of that
length, to show the peak does not grow with the length.

    python bench/bench_backgrounds.py [--frames 3000] [--samples 100]
"""

from __future__ import annotations

import argparse
import sys

from common import OUT, clip, fresh, mb, measure

CHILD = """
import sys
from pathlib import Path
from magicmask.statistics import make_backgrounds
video, frames, out, method, window, samples = sys.argv[1:7]
keyframes = sorted(Path(frames).glob("t*.tiff"))
make_backgrounds(video, keyframes, out, method, "video", window=float(window), samples=int(samples))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--samples", type=int, default=100)
    args = parser.parse_args()
    from magicmask.media.extract import extract_keyframes

    print("| method | frames | peak memory (process tree) | time | frames/s |")
    print("|---|---|---|---|---|")
    runs = [("mean", 0.0), ("median", 0.0), ("median", 4.0)]
    for count in (args.frames // 5, args.frames):
        video = clip(count // 100, keyint=100)  # 1080p, a keyframe every 4 s
        frames_dir = OUT / f"frames-{video.stem}"
        if not list(frames_dir.glob("t*.tiff")):
            extract_keyframes(video, fresh(frames_dir))
        for method, window in runs:
            out = fresh(OUT / "backgrounds")
            seconds, peak = measure([sys.executable, "-c", CHILD, str(video), str(frames_dir), str(out), method, str(window), str(args.samples)])
            label = method + (f" --window {window:g}" if window else "")
            print(f"| {label} | {count} | {mb(peak)} | {seconds:.1f} s | {count / seconds:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
