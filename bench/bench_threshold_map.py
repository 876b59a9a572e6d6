"""What learning the threshold map costs beside the median background it rides along with (issue 15).

``--threshold adaptive`` learns the map from the frames the median already holds (no second pass over the
video). This times, on the same decoded frames, alternating: the per-pixel lower median alone (the
background, what ``--background median --from video`` computes anyway) and
:func:`magicmask.thresholds.median_and_map` (the same median and the map: the difference's intensity of every
held frame, its per-pixel lower median, the 3x3 neighbourhood maximum, band by band of rows in one pass). The
map's cost is the difference; the target is a map that costs no more than the median (map / median <= 1).
Clips: the two CDnet clips of bench/data/cdnet and a 1080p sample clip of 100 frames.

    python bench/bench_threshold_map.py [--rounds 3] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from common import clip  # noqa: E402

from magicmask import thresholds  # noqa: E402
from magicmask.media.decode import iter_frames  # noqa: E402
from magicmask.media.probe import video_info  # noqa: E402
from magicmask.statistics import DEFAULT_SAMPLES, lower_median, taken  # noqa: E402


def held_frames(video: Path) -> list:
    info = video_info(video)
    return [frame for index, frame in enumerate(iter_frames(video, info=info)) if taken(index, info.frames, DEFAULT_SAMPLES)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="threads for both steps (all cores by default)")
    args = parser.parse_args(argv)
    videos = [HERE / "data" / "cdnet" / "fall.mp4", HERE / "data" / "cdnet" / "traffic.mp4", clip(10)]
    print("| clip | frames held | median alone | median and map | the map's cost | map / median |")
    print("|---|---|---|---|---|---|")
    for video in videos:
        frames = held_frames(video)
        background = lower_median(frames, args.threads)
        assert (thresholds.median_and_map(frames, threads=args.threads)[0] == background).all()  # compiled, warm, same median
        medians, boths = [], []
        for _ in range(args.rounds):
            start = time.perf_counter()
            lower_median(frames, args.threads)
            medians.append(time.perf_counter() - start)
            start = time.perf_counter()
            thresholds.median_and_map(frames, threads=args.threads)
            boths.append(time.perf_counter() - start)
        median, both = statistics.median(medians), statistics.median(boths)
        height, width = frames[0].shape[:2]
        print(f"| {video.name} ({width}x{height}) | {len(frames)} | {median:.3f} s | {both:.3f} s | {both - median:.3f} s | {(both - median) / median:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
