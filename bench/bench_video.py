"""`magicmask video` on a 1080p clip: frames per second, CPU per frame and peak memory.

Builds a 1920x1080 sample clip (cached in bench/out), runs the command several times and prints the
median wall-clock rate (the whole command: probing, decoding, masks, encoding), the CPU seconds per
frame of the whole process tree (ffmpeg included), and the peak memory of one more run (the memory
sampler reads /proc 50 times a second, which slowed the timed runs when it ran in them).

    python bench/bench_video.py [--frames 300] [--rounds 3] [--preset veryfast] [--jobs 0] [--masks] [--lossless]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess

from common import MAGICMASK, OUT, clip, mb, measure, median


def busy_clip(frames: int, width: int, height: int):
    """testsrc2, every frame but the first 10% brighter: the mask chain works on the whole of every frame (cached in bench/out)."""
    OUT.mkdir(exist_ok=True)
    path = OUT / f"busy-{width}x{height}-{frames}.mp4"
    if not path.exists():
        source = f"testsrc2=size={width}x{height}:rate=25:duration={frames / 25}"
        args = ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", source, "-vf", "eq=brightness='if(eq(n,0),0,0.1)':eval=frame", "-c:v", "libx264", "-g", "25", "-crf", "18", "-pix_fmt", "yuv420p", "-y", str(path)]
        subprocess.run(args, check=True)
    return path


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", choices=["sample", "busy"], default="sample")
    parser.add_argument("--frames", type=int, default=300, help="frames in the clip (a keyframe every 25)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument("--jobs", type=int, default=0)
    parser.add_argument("--masks", action="store_true", help="also write the masks video")
    parser.add_argument("--lossless", action="store_true")
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    args = parser.parse_args()

    frames = max(1, args.frames // 25) * 25
    video = clip(frames // 25, args.width, args.height, keyint=25) if args.clip == "sample" else busy_clip(frames, args.width, args.height)
    cores = len(os.sched_getaffinity(0))
    command = [*MAGICMASK, "video", str(video), "-o", str(OUT / "clean.mp4"), "-q", "-j", str(args.jobs), "--preset", args.preset]
    if args.masks:
        command += ["--masks", str(OUT / "masks.mp4")]
    if args.lossless:
        command += ["--lossless"]
    print(f"clip: {video.name} ({frames} frames, {args.width}x{args.height}); {cores} cores; preset {args.preset}"
          f"{', masks video' if args.masks else ''}{', lossless' if args.lossless else ''}; load average {os.getloadavg()[0]:.1f}")
    rates, cpus, peaks = [], [], []
    for round_ in range(args.rounds):  # timed without the memory sampler: its reads of /proc cost CPU too
        before = children_cpu()
        seconds, _ = measure(command, memory=False)
        cpu = children_cpu() - before
        rates.append(frames / seconds)
        cpus.append(cpu / frames)
        print(f"  round {round_ + 1}: {seconds:.1f} s, {frames / seconds:.1f} fps, {1000 * cpu / frames:.0f} ms CPU per frame")
    _, peak = measure(command)
    peaks.append(peak)
    print(f"  one more run for the peak memory: {mb(peak)}")
    print()
    print("| clip | cores | preset | median fps (whole command) | CPU per frame (all processes) | peak memory | load average |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {args.clip} {args.width}x{args.height}, {frames} frames | {cores} | {args.preset} | {median(rates):.1f} | {1000 * median(cpus):.0f} ms | {mb(max(peaks))} | {os.getloadavg()[0]:.1f} |")


if __name__ == "__main__":
    main()
