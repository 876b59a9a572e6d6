"""What a Dask cluster buys: the client's share of all CPU, the speed-up against a local run, and Amdahl's projection.

Starts a LocalCluster of separate worker processes (one thread each) in a helper process, so that the
process running magicmask (the client) holds nothing but the client: its CPU is this process's, the
scheduler's is the helper's own, the workers' is that of the helper's children (ffmpeg included). Then
runs, side by side in one run:

- a batch of videos, in both storage modes (``shared``: the workers read and write in place; ``send``: the
  videos travel and the outputs come back to be written here);
- one long video (``shared``: cut into segments over the workers; ``send``: whole on one worker);
- the same work locally (``run_many(..., jobs=WORKERS)``), for the speed-up and the outputs, compared
  byte for byte (the records aside).

The projection takes the client's CPU as the serial part of a run (it plans, claims, follows and writes
the records alone) and the rest as spread over the workers: speed-up(N) = 1 / (s + (1 - s) / N).

    python bench/bench_cluster.py [--videos 4] [--keyframes 8] [--long 40] [--workers 2] [--size 1920x1080]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from common import OUT, clip, fresh

HELPER = """
import sys, time
import distributed
if __name__ == "__main__":
    cluster = distributed.LocalCluster(n_workers=int(sys.argv[2]), threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None)
    client = distributed.Client(cluster)
    client.write_scheduler_file(sys.argv[1])
    client.close()
    while True:
        time.sleep(3600)
"""


def own_cpu() -> float:
    """CPU seconds of this process and the children it waited for (ffmpeg, if the client ran any)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def cluster_cpu(helper: psutil.Process) -> tuple[float, float]:
    """(scheduler, workers) CPU seconds so far: the helper's own, and its children's trees."""
    scheduler = helper.cpu_times().user + helper.cpu_times().system
    workers = 0.0
    for child in helper.children(recursive=True):
        try:
            workers += cpu(child)
        except psutil.NoSuchProcess:
            pass
    return scheduler, workers


def warm_up() -> None:
    from magicmask.engines import get_engine

    get_engine("native").warm_up()


def amdahl(serial: float, workers: int) -> float:
    return 1 / (serial + (1 - serial) / workers)


def written(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith(".") and p.name != "magicmask.json"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=4, help="videos in the batch")
    parser.add_argument("--keyframes", type=int, default=8, help="keyframes of each video of the batch")
    parser.add_argument("--long", type=int, default=40, help="keyframes of the long video")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (one thread each)")
    parser.add_argument("--size", default="1920x1080")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))

    import magicmask
    from magicmask.cluster import connect

    batch = []
    for number in range(args.videos):  # distinct files (the same clip, numbered)
        path = OUT / f"cluster-{width}x{height}-{args.keyframes}k-{number}.mp4"
        if not path.exists():
            os.link(clip(args.keyframes, width, height), path)
        batch.append(path)
    long = clip(args.long, width, height)
    print(f"batch: {args.videos} videos of {args.keyframes} keyframes; long: 1 video of {args.long} keyframes; {width}x{height}, native engine")
    print(f"cluster: LocalCluster of {args.workers} worker processes x 1 thread; local: run_many(jobs={args.workers}); {os.cpu_count()} cores here")

    with tempfile.TemporaryDirectory() as folder:
        scheduler_file = Path(folder) / "scheduler.json"
        helper = subprocess.Popen([sys.executable, "-c", HELPER, str(scheduler_file), str(args.workers)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(600):
                if scheduler_file.exists():
                    break
                time.sleep(0.1)
            from magicmask.cluster import scheduler_address

            address = scheduler_address(scheduler_file)
            process = psutil.Process(helper.pid)
            with connect(address) as client:
                client.wait_for_workers(args.workers, timeout=120)
                client.run(warm_up)  # Numba's kernels loaded once per worker, as a long-lived cluster has them
                rows = []
                for name, videos in (("batch", batch), ("long video", [long])):
                    local_root = fresh(OUT / "cluster-local" / name.replace(" ", "-"))
                    start = time.perf_counter()
                    results = magicmask.run_many(videos, local_root, jobs=args.workers, force=True)
                    local_seconds = time.perf_counter() - start
                    assert all(r.status == "done" for r in results), [r.message for r in results]
                    for storage in ("shared", "send"):
                        root = fresh(OUT / f"cluster-{storage}" / name.replace(" ", "-"))
                        before = (own_cpu(), *cluster_cpu(process))
                        start = time.perf_counter()
                        results = magicmask.run_many(videos, root, scheduler=client, storage=storage, force=True)
                        seconds = time.perf_counter() - start
                        time.sleep(0.5)  # the workers' last ffmpeg reaped
                        after = (own_cpu(), *cluster_cpu(process))
                        assert all(r.status == "done" for r in results), [r.message for r in results]
                        own, sched, work = (b - a for a, b in zip(before, after))
                        same = written(root) == written(local_root)
                        rows.append((name, storage, seconds, local_seconds, own, sched, work, same))
        finally:
            helper.kill()
            helper.wait()

    print()
    print(f"{'work':<11} {'storage':<7} {'cluster s':>9} {'local s':>8} {'speed-up':>8} {'client':>7} {'sched':>6} {'workers':>8} {'client %':>8} {'same bytes':>10}   projected speed-up at 10 / 100 / 1000 workers")
    for name, storage, seconds, local_seconds, own, sched, work, same in rows:
        share = own / (own + sched + work)
        projected = " / ".join(f"{amdahl(share, n):.0f}" for n in (10, 100, 1000))
        print(f"{name:<11} {storage:<7} {seconds:>9.2f} {local_seconds:>8.2f} {local_seconds / seconds:>7.2f}x {own:>6.2f}s {sched:>5.2f}s {work:>7.2f}s {100 * share:>7.1f}% {str(same):>10}   {projected}")
    print("\nCPU in seconds: client = this process (it plans, claims, follows, writes records and sent outputs); sched = the scheduler;")
    print("workers = the worker processes and their ffmpeg. client % = client / all three. Projection: Amdahl, the client's share serial.")


if __name__ == "__main__":
    main()
