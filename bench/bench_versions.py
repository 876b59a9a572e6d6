"""`magicmask run` of this checkout against another one (e.g. the previous release), side by side in one run.

Alternates the blog's loop, this tree's `magicmask run` and the other tree's (each run with its own code on
PYTHONPATH), several rounds, and prints the median times, each one's ratio to the loop, and whether every
output of both is identical to the loop's.

    python bench/bench_versions.py --other ../magicmask-0.1 [--clip sample] [--keyframes 80] [--rounds 3] [--no-seed] [--sheet]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from common import CLIPS, OUT, ROOT, USER_ENV, fresh, identical_outputs, machine_parallelism, measure, median, seed_loop_script


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--other", required=True, type=Path, help="the other checkout's root folder")
    parser.add_argument("--clip", choices=sorted(CLIPS), default="sample")
    parser.add_argument("--sheet", action="store_true", help="let run make its contact sheet too (its default)")
    parser.add_argument("--keyframes", type=int, default=80)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-seed", action="store_true", help="skip the blog's loop (no ratios to it)")
    args = parser.parse_args()
    video = CLIPS[args.clip](args.keyframes)
    trees = {"this": ROOT, "other": args.other.resolve()}
    print(f"clip: {video.name} ({args.keyframes} keyframes); {args.rounds} rounds, alternating; other = {trees['other']}")

    def command(tree: Path, folder: Path) -> tuple[list[str], dict]:
        env = {**os.environ, "PYTHONPATH": str(tree)}
        return [sys.executable, "-m", "magicmask.cli", "run", str(video), "-o", str(folder), "-q", *([] if args.sheet else ["--no-sheet"])], env

    # Each tree's command runs in that tree: `python -m` puts the working folder first on sys.path, before
    # PYTHONPATH, so from this tree's root the other tree's command would run this tree's code.
    for name, tree in trees.items():  # compile each tree's Numba cache before timing
        subprocess.run(command(tree, fresh(OUT / f"warm-{name}"))[0], cwd=tree, env=command(tree, OUT)[1], check=True)
    times = {name: [] for name in (["seed loop"] if not args.no_seed else []) + list(trees)}
    for round_ in range(args.rounds):
        print(f"  round {round_ + 1}:", end="", flush=True)
        for name in times:
            if name == "seed loop":
                t, _ = measure(["bash", "-c", seed_loop_script(video)], cwd=fresh(OUT / "seed"), env=USER_ENV, memory=False)
            else:
                argv, env = command(trees[name], fresh(OUT / f"run-{name}"))
                t, _ = measure(argv, cwd=trees[name], env=env, memory=False)
            times[name].append(t)
            print(f" {name} {t:.2f} s", end="", flush=True)
        print()
    print(f"\nthis machine: two CPU-bound processes together run {machine_parallelism():.2f}x as fast as one (2.00 on two free cores)\n")
    print("| command | median time | vs the blog's loop | outputs identical to the loop's |")
    print("|---|---|---|---|")
    base = median(times["seed loop"]) if "seed loop" in times else None
    if base:
        print(f"| the blog's loop (ffmpeg + convert) | {base:.2f} s | 1.0x | reference |")
    for name in trees:
        t = median(times[name])
        verdict = "not compared"
        if base:
            count, differing = identical_outputs(OUT / f"run-{name}", OUT / "seed")
            verdict = f"{count - len(differing)}/{count}"
        print(f"| `magicmask run` ({name}: {trees[name].name}) | {t:.2f} s | {f'{base / t:.2f}x' if base else '-'} | {verdict} |")
    print(f"\nthis / other: {median(times['this']) / median(times['other']):.3f} (below 1: this tree is faster)")


if __name__ == "__main__":
    main()
