"""Peak memory against the number of frames: it must not grow with them.

- `magicmask background` over 50 and over 200 keyframes of 1080p (where `convert *.tiff ... -flatten` runs out
  of its cache resources), and whether its result equals convert's on chunks folded together;
- `magicmask run` on 1080p clips with 20 and 80 keyframes (the sample clip), and 80 (the wall clip).

    python bench/bench_memory.py [--engine native --engine wand]
"""

from __future__ import annotations

import argparse
import subprocess

from common import CONVERT, MAGICMASK, OUT, USER_ENV, clip, fresh, mb, measure, wall_clip


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", action="append", help="engines to measure (repeatable); default both")
    parser.add_argument("--jobs", type=int, default=0)
    args = parser.parse_args()
    from magicmask.compare import compare_files
    from magicmask.media.extract import extract_keyframes

    frames_dir = OUT / "frames200"
    frames = sorted(frames_dir.glob("t*.tiff")) if (frames_dir / ".magicmask-keyframes.json").exists() else []
    if len(frames) != 200:
        frames = extract_keyframes(clip(200, keyint=1), fresh(frames_dir))
    engines = args.engine or ["native", "wand"]
    print("| command | engine | frames | peak memory | time |")
    print("|---|---|---|---|---|")
    peaks = {}
    for engine in engines:
        common = ["-q", "--engine", engine, "-j", str(args.jobs)]
        for count in (50, 200):
            out = OUT / f"background{count}-{engine}.tiff"
            seconds, peak = measure([*MAGICMASK, "background", *map(str, frames[:count]), "-o", str(out), *common])
            peaks[engine, count] = peak
            print(f"| magicmask background | {engine} | {count} | {mb(peak)} | {seconds:.1f} s |", flush=True)
    for engine in engines:
        print(f"background, {engine}: peak for 200 frames / peak for 50 frames = {peaks[engine, 200] / peaks[engine, 50]:.2f}")

    # convert's own answer, in chunks it can hold, folded together by convert again
    parts = []
    for i in range(0, 200, 25):
        part = OUT / f"part{i:03d}.tiff"
        subprocess.run([CONVERT, *map(str, frames[i : i + 25]), "-background", "black", "-compose", "lighten", "-flatten", str(part)], check=True)
        parts.append(str(part))
    subprocess.run([CONVERT, *parts, "-background", "black", "-compose", "lighten", "-flatten", str(OUT / "convert200.tiff")], check=True)
    for engine in engines:
        same = compare_files(OUT / f"background200-{engine}.tiff", OUT / "convert200.tiff").identical
        print(f"background of 200 frames ({engine}) identical to convert's (chunks of 25, folded by convert): {same}")
    whole = subprocess.run([CONVERT, *map(str, frames), "-background", "black", "-compose", "lighten", "-flatten", str(OUT / "convert-all.tiff")], capture_output=True, text=True, env=USER_ENV)
    print(f"convert on all 200 frames at once: exit {whole.returncode} {whole.stderr.strip().splitlines()[0] if whole.stderr.strip() else ''}")

    print("\n| command | engine | clip | keyframes | peak memory | time |")
    print("|---|---|---|---|---|---|")
    for engine in engines:
        for name, make, keyframes in (("sample", clip, 20), ("sample", clip, 80), ("wall", wall_clip, 80)):
            common = ["-q", "--engine", engine, "-j", str(args.jobs)]
            seconds, peak = measure([*MAGICMASK, "run", str(make(keyframes)), "-o", str(fresh(OUT / f"mem-run{keyframes}")), *common])
            print(f"| magicmask run | {engine} | {name} | {keyframes} | {mb(peak)} | {seconds:.1f} s |", flush=True)


if __name__ == "__main__":
    main()
