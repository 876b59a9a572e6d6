"""The blog's shell loop against `magicmask run`, side by side in one run.

Builds a 1080p clip with about 20 keyframes (``--clip sample``, magicmask's sample scene; ``--clip wall``, a
camera-like noisy wall with I-frames of about 0.5 MB), then alternates the two (several rounds) and prints
the median times, their ratio, peak memory of each process tree (from one more run of each, with the
memory sampler, which the timed rounds do without), and whether every output is identical.

    python bench/bench_seed_vs_run.py [--clip sample] [--keyframes 20] [--rounds 3] [--engine wand] [--jobs 0] [--sheet]
"""

from __future__ import annotations

import argparse

import os

from common import CLIPS, MAGICMASK, OUT, USER_ENV, fresh, identical_outputs, machine_parallelism, mb, measure, median, seed_loop_script


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", choices=sorted(CLIPS), default="sample")
    parser.add_argument("--keyframes", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--engine", action="append", help="engines to time (repeatable); default wand")
    parser.add_argument("--jobs", type=int, default=0)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--sheet", action="store_true", help="let run make its contact sheet too (its default; the loop makes none)")
    args = parser.parse_args()
    engines = args.engine or ["wand"]

    video = CLIPS[args.clip](args.keyframes, args.width, args.height)
    print(f"clip: {video.name} ({args.keyframes} keyframes, {args.width}x{args.height}); {args.rounds} rounds, alternating; load average {os.getloadavg()[0]:.2f}")
    times = {"seed loop": [], **{f"magicmask run --engine {e}": [] for e in engines}}
    peaks = {name: 0 for name in times}
    seed_dir = OUT / "seed"
    seed = (["bash", "-c", seed_loop_script(video)], dict(env=USER_ENV))
    # --no-sheet: the loop makes no contact sheet (run's record, with every output's sha256, stays); --sheet keeps run's default
    sheet = [] if args.sheet else ["--no-sheet"]
    commands = {"seed loop": seed, **{f"magicmask run --engine {e}": ([*MAGICMASK, "run", str(video), "-o", None, "-q", *sheet, "--engine", e, "-j", str(args.jobs)], {}) for e in engines}}

    def run(name: str, memory: bool) -> tuple[float, int]:
        args_, options = commands[name]
        folder = fresh(seed_dir if name == "seed loop" else OUT / f"run-{name.split()[-1]}")
        if name == "seed loop":
            return measure(args_, cwd=folder, memory=memory, **options)
        return measure([str(folder) if a is None else a for a in args_], memory=memory)

    for round_ in range(args.rounds):  # timed without the memory sampler (its /proc reads cost CPU)
        print(f"  round {round_ + 1}:", end="", flush=True)
        for name in times:
            t, _ = run(name, memory=False)
            times[name].append(t)
            print(f" {name.removeprefix('magicmask run --engine ')} {t:.1f} s", end="", flush=True)
        print()
    for name in times:  # then once more each, for the peak memory
        peaks[name] = run(name, memory=True)[1]

    base = median(times["seed loop"])
    print(f"\nload average {os.getloadavg()[0]:.2f}; this machine: two CPU-bound processes together run {machine_parallelism():.2f}x as fast as one (2.00 on two free cores)")
    print()
    print("| command | median time | vs seed loop | peak memory | outputs identical to the seed loop's |")
    print("|---|---|---|---|---|")
    print(f"| seed loop (ffmpeg + convert) | {base:.1f} s | 1.0x | {mb(peaks['seed loop'])} | reference |")
    for engine in engines:
        name = f"magicmask run --engine {engine}"
        count, differing = identical_outputs(OUT / f"run-{engine}", seed_dir)
        verdict = f"{count - len(differing)}/{count}" + (f" (differ: {', '.join(differing[:5])})" if differing else "")
        print(f"| `{name}` | {median(times[name]):.1f} s | {base / median(times[name]):.2f}x | {mb(peaks[name])} | {verdict} |")


if __name__ == "__main__":
    main()
