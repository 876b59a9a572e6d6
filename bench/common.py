"""Shared pieces of the benchmarks: test clips, timing with peak memory of a whole process tree, identity."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
# the magicmask commands the benches start run this tree's code, not whichever magicmask is installed
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])

CONVERT = "/usr/bin/convert"  # ImageMagick's own binary, whatever PATH puts first
# the environment a user's shell has: importing magicmask points ImageMagick at magicmask's policy,
# which the seed's commands must not get
USER_ENV = {k: v for k, v in os.environ.items() if k != "MAGICK_CONFIGURE_PATH"}
MAGICMASK = [sys.executable, "-m", "magicmask.cli"]


def clip(keyframes: int, width: int = 1920, height: int = 1080, keyint: int = 10) -> Path:
    """A sample clip with ``keyframes`` keyframes (cached in bench/out)."""
    from magicmask.sample import make_sample_video

    OUT.mkdir(exist_ok=True)
    path = OUT / f"clip-{width}x{height}-{keyframes}k{keyint}.mp4"
    if not path.exists():
        make_sample_video(path, width=width, height=height, count=keyframes * keyint, keyint=keyint)
    return path


def wall_clip(keyframes: int, width: int = 1920, height: int = 1080, keyint: int = 10) -> Path:
    """A clip like a camera's: a noisy textured wall that a dark figure crosses, H.264 with I-frames of about
    0.5 MB at 1080p (the sample clip's TIFFs compress better). The wall holds still and every frame is coded
    at one quantiser, so keyframes differ where the figure is and where H.264's intra prediction carries the
    change on (right of it and below). Made by ffmpeg alone (lavfi sources, fixed noise seeds, no dithering,
    x264 on a fixed number of threads, no dates), so the same ffmpeg makes the same file; cached in bench/out."""
    OUT.mkdir(exist_ok=True)
    path = OUT / f"wall-{width}x{height}-{keyframes}k{keyint}.mp4"
    if path.exists():
        return path
    seconds = keyframes * keyint / 25
    fig_w, fig_h = max(2, height // 6) & ~1, max(2, height * 7 // 18) & ~1
    wall = (
        f"color=c=0x8a7a66:s={width}x{height}:r=25:d={seconds},format=yuv420p,"
        "noise=c0s=14:c1s=14:c2s=14:allf=u,gblur=sigma=1.2,"  # the wall's grain (the same in every frame)
        f"drawgrid=w={max(8, width // 12)}:h={max(4, height // 17)}:t={max(1, height // 216)}:c=0x4a4038@0.6,"  # joints
        "vignette=angle=0.5:dither=0,noise=alls=7[wall];"  # light falling off; fine noise
        f"color=c=0x221c2a:s={fig_w}x{fig_h}:r=25:d={seconds},format=yuv420p[figure];"
        f"[wall][figure]overlay=x='-{fig_w}+t*{(width + fig_w) / seconds:.4f}':y={height * 7 // 20}:shortest=1"
    )
    tmp = path.with_name(".tmp-" + path.name)
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i", wall, "-c:v", "libx264", "-preset", "veryfast",
         "-qp", "23", "-g", str(keyint), "-sc_threshold", "0", "-x264-params", "threads=2", "-pix_fmt", "yuv420p",
         "-fflags", "+bitexact", "-map_metadata", "-1", str(tmp)],
        check=True,
    )
    os.replace(tmp, path)
    return path


CLIPS = {"sample": clip, "wall": wall_clip}
"""The bench clips by name: ``sample`` (magicmask's own sample scene, small I-frames), ``wall`` (a camera-like
noisy wall, I-frames of about 0.5 MB)."""


def _pss(pid: int) -> int:
    """Proportional set size of one process: its private memory plus its share of pages it shares."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _tree_memory(process: psutil.Process) -> int:
    """Memory of a process tree: the sum of PSS, so shared libraries count once, not once per process."""
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.Error:
        return 0
    return sum(_pss(p.pid) for p in members)


def measure(args: list[str], cwd=None, env=None, shell=False, memory: bool = True) -> tuple[float, int]:
    """Run a command; return (wall seconds, peak memory of its process tree in bytes, as summed PSS).

    The memory sampler reads /proc/PID/smaps_rollup of every process 50 times a second, which costs
    CPU (0.5-0.9 s in a 5 s run on two cores): with ``memory=False`` it does not run and the peak is 0,
    for timings.
    """
    peak = 0
    start = time.perf_counter()
    child = subprocess.Popen(args, cwd=cwd, env=env, shell=shell, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    process = psutil.Process(child.pid)
    stop = threading.Event()

    def sample():
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_memory(process))
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    if memory:
        sampler.start()
    _, err = child.communicate()
    elapsed = time.perf_counter() - start
    stop.set()
    if memory:
        sampler.join()
    if child.returncode != 0:
        raise SystemExit(f"command failed ({child.returncode}): {' '.join(map(str, args))[:200]}\n{err.decode()[-2000:]}")
    return elapsed, peak


def seed_loop_script(video: Path) -> str:
    """The blog's commands as a shell script (RGB keyframes, see README), with ImageMagick's own convert."""
    return f"""set -e
ffmpeg -hide_banner -loglevel error -nostdin -skip_frame nokey -i {video} -fps_mode passthrough -pix_fmt rgb24 -f image2 t%02d.tiff
for i in *.tiff;
do
name=`echo $i | cut -d'.' -f1`;
{CONVERT} t01.tiff $i -compose difference -composite -threshold 5% -blur 0x3 -threshold 20% -blur 0x3 "$name-mask.tiff"
{CONVERT} $i "$name-mask.tiff" -compose multiply -flatten "$name-clean.jpg"
done
"""


def fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def identical_outputs(ours: Path, reference: Path) -> tuple[int, list[str]]:
    """Compare every NAME-mask.tiff and NAME-clean.jpg of ``reference`` with ``ours``: (count, differing names)."""
    from magicmask.compare import compare_files

    names = sorted(p.name for p in reference.iterdir() if p.name.endswith(("-mask.tiff", "-clean.jpg")))
    differing = [name for name in names if not compare_files(ours / name, reference / name).identical]
    return len(names), differing


_BURN = "import time\nt = time.perf_counter()\nx = 0\nfor i in range(10_000_000):\n    x += i\nprint(time.perf_counter() - t)\n"


def machine_parallelism() -> float:
    """How much faster two CPU-bound processes finish together than one after the other (2.0 on two
    free cores): shared or throttled virtual cores show here, and bound every parallel speed-up."""
    def together(n: int) -> float:
        start = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", _BURN], stdout=subprocess.DEVNULL) for _ in range(n)]
        for p in procs:
            p.wait()
        return time.perf_counter() - start

    one = together(1)
    return 2 * one / together(2)


def median(values) -> float:
    return statistics.median(values)


def mb(n: int) -> str:
    return f"{n / 2**20:.0f} MB"
