"""Per-stage times of the native engine on 1080p keyframes, against Wand's render_frame, on one core.

Builds the sample clip at 1920x1080 (60 frames, a keyframe every 10) in a temporary folder, extracts
its keyframes, then times every stage of the native engine on each keyframe against the first one
(the background; the blurs and the multiply run on the moving region, as render_frame does) and prints the median of each stage, the whole native render_frame, Wand's
render_frame (ImageMagick limited to one thread) and the ratio. Both engines' outputs are compared
byte for byte on every frame timed.

    python bench/bench_native_stages.py [--repeat N] [--deep]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("MAGICK_THREAD_LIMIT", "1")  # before ImageMagick loads: one OpenMP thread
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from magicmask import sample
from magicmask.media import extract as keyframes  # noqa: E402
from magicmask.engines import _native_kernels as k  # noqa: E402
from magicmask.engines import native  # noqa: E402
from magicmask.execute import keep_freed_memory  # noqa: E402
from magicmask.params import MaskParams  # noqa: E402


def _timed(times: dict, name: str, function, *args):
    start = time.perf_counter()
    result = function(*args)
    times.setdefault(name, []).append(time.perf_counter() - start)
    return result


def native_stages(background: native.Picture, frame: Path, params: MaskParams, times: dict) -> tuple[bytes, bytes]:
    """One frame through the native engine, stage by stage (the calls render_frame makes, via _foreground)."""
    picture = _timed(times, "read frame (TIFF strips)", native.read_picture, frame)
    rows, columns = picture.samples.shape[:2]
    chain = native._chain(params)
    first = np.empty((rows, columns), dtype=np.uint16)
    box = _timed(times, "difference + threshold", native.difference_threshold, background, picture, chain[0][1], first)
    region = native._region(box, first.shape, chain)
    part = np.ascontiguousarray(first[region])
    (_, kernel1), (_, t2), (_, kernel2) = chain[1:]
    spare = np.empty_like(part)
    _timed(times, "blur 1, horizontal pass", k.blur_rows, part, kernel1, spare)
    _timed(times, "blur 1, vertical pass", k.blur_columns, spare, kernel1, part)
    second = np.empty_like(part)
    _timed(times, "threshold 2", k.threshold_gray, part, t2, second)
    _timed(times, "blur 2, horizontal pass", k.blur_rows, second, kernel2, spare)
    _timed(times, "blur 2, vertical pass", k.blur_columns, spare, kernel2, second)
    samples, _ = _timed(times, "quantise (mask file samples)", native._as_file_samples, second, background.depth)
    part_picture = replace(picture, samples=np.ascontiguousarray(picture.samples[region]))
    read_back = None if native._by_tables(part_picture, samples) else native._read_back(samples)
    clean_part, gray = _timed(times, "multiply (clean)", native.clean_samples, part_picture, read_back, samples)
    mask = np.zeros((rows, columns, 1), dtype=background.samples.dtype)
    clean = np.zeros((rows, columns, picture.samples.shape[2]), dtype=np.uint8)
    mask[region], clean[region] = samples, clean_part
    mask_bytes = _timed(times, "TIFF encode (mask)", native.tiff_bytes, mask, background)
    clean_bytes = _timed(times, "JPEG encode (clean)", native.jpeg_bytes, clean[:, :, :1] if gray else clean, picture)
    return mask_bytes, clean_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="passes over the keyframes (default 3)")
    parser.add_argument("--deep", action="store_true", help="a 10-bit clip (16-bit keyframes)")
    args = parser.parse_args()

    from wand.resource import limits

    from magicmask.engines import wand

    limits["thread"] = 1
    keep_freed_memory()  # as the command line does
    params = MaskParams()
    with tempfile.TemporaryDirectory(prefix="magicmask-bench-") as folder:
        folder = Path(folder)
        start = time.perf_counter()
        video = sample.make_sample_video(folder / "clip.mp4", width=1920, height=1080, count=60, keyint=10, deep=args.deep)
        frames = keyframes.extract_keyframes(video, folder / "frames")
        print(f"clip: 1920x1080, {len(frames)} keyframes ({'16' if args.deep else '8'}-bit TIFF), made in {time.perf_counter() - start:.1f} s")

        start = time.perf_counter()
        background = native.load_background(frames[0])
        native.render_frame(background, frames[1], params)  # compiles or loads the Numba cache
        print(f"native engine warm-up (Numba compile or cache load, first frame): {time.perf_counter() - start:.2f} s")

        stages: dict[str, list[float]] = {}
        whole_native: list[float] = []
        whole_wand: list[float] = []
        identical = 0
        compared = 0
        wand_background = wand.load_background(frames[0])
        try:
            for _ in range(args.repeat):
                for frame in frames[1:]:
                    staged = native_stages(background, frame, params, stages)
                    start = time.perf_counter()
                    ours = native.render_frame(background, frame, params)
                    whole_native.append(time.perf_counter() - start)
                    start = time.perf_counter()
                    theirs = wand.render_frame(wand_background, frame, params)
                    whole_wand.append(time.perf_counter() - start)
                    compared += 1
                    identical += ours == theirs == staged
        finally:
            wand_background.close()

    print(f"\nmedian per 1080p frame, one core, {len(whole_native)} frame renders:")
    stage_total = 0.0
    for name, values in stages.items():
        median = statistics.median(values)
        stage_total += median
        print(f"  {name:32s} {median * 1000:8.1f} ms")
    print(f"  {'sum of stage medians':32s} {stage_total * 1000:8.1f} ms")
    native_median = statistics.median(whole_native)
    wand_median = statistics.median(whole_wand)
    print(f"\n  {'native render_frame':32s} {native_median * 1000:8.1f} ms")
    print(f"  {'wand render_frame':32s} {wand_median * 1000:8.1f} ms")
    print(f"  {'ratio wand / native':32s} {wand_median / native_median:8.1f} x")
    print(f"\noutputs identical (mask TIFF and clean JPEG bytes, native == staged == wand): {identical}/{compared}")


if __name__ == "__main__":
    main()
