"""Where the per-frame work runs: in this process, or on every core with joblib's loky workers.

Work crosses process boundaries as paths, bytes and plain values, never as Wand objects. Results
are handed back as they complete, so a progress bar can follow them, and tasks are submitted as
their inputs appear (frames still being extracted by ffmpeg start as soon as each one is whole).
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import signal
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from magicmask.errors import MagicmaskError

BACKENDS = ("loky", "dask")  # dask: magicmask.cluster, on a dask.distributed cluster


def default_jobs() -> int:
    """The number of cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def resolve_jobs(jobs: int | None) -> int:
    """``jobs`` as a worker count: ``None`` or 0 means every core, negative counts back from it (-1 = all)."""
    if jobs is None or jobs == 0:
        return default_jobs()
    if jobs < 0:
        return max(1, default_jobs() + 1 + jobs)
    return jobs


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def keep_freed_memory(limit: int = 32 * 2**20, trim: int = 512 * 2**20) -> bool:
    """Let glibc reuse the memory of freed frames instead of returning it to the system each time.

    Every frame allocates a few arrays of a few MB. Above glibc's mmap threshold each is a fresh
    mmap whose pages fault in (and are zeroed) on first touch, then an munmap; threads doing that at
    once serialise on the kernel's memory map, which measured 99 ms of CPU per 1080p frame with two
    threads against 67 ms with this setting. Blocks up to ``limit`` bytes then come from the heap,
    and up to ``trim`` bytes of free heap are kept for the next frame. A no-op (False) where the C
    library is not glibc. Process-wide: the command line calls it, the library leaves it to its caller.
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, limit)) and bool(mallopt(M_TRIM_THRESHOLD, trim))


def limit_imagemagick_threads() -> None:
    """In each worker: one ImageMagick thread (its OpenMP threads would multiply with the workers)."""
    os.environ["MAGICK_THREAD_LIMIT"] = "1"
    try:
        from wand.resource import limits

        limits["thread"] = 1
    except ImportError:
        pass


def _process_worker_init() -> None:
    """A loky worker: one ImageMagick thread, and Ctrl-C left to the main process, which stops the workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    limit_imagemagick_threads()


class _Serial:
    """An executor running each task at once in this process (``-j 1``): same code path, no workers."""

    def submit(self, func, *args, **kwargs) -> cf.Future:
        future: cf.Future = cf.Future()
        try:
            future.set_result(func(*args, **kwargs))
        except BaseException as exc:  # handed back like a worker's failure
            if isinstance(exc, KeyboardInterrupt):
                raise
            future.set_exception(exc)
        return future

    def shutdown(self, wait=True, kill_workers=False):
        pass


class _Threads(cf.ThreadPoolExecutor):
    """Threads of this process, for engines whose kernels release the GIL: no start-up, nothing pickled."""

    def shutdown(self, wait=True, kill_workers=False):
        super().shutdown(wait=wait, cancel_futures=kill_workers)


def executor(jobs: int, threads: bool = False) -> Any:
    """An executor for ``jobs`` workers: this process for 1; threads when ``threads``; else joblib's
    reusable loky pool of processes."""
    if jobs <= 1:
        return _Serial()
    if threads:
        return _Threads(max_workers=jobs, thread_name_prefix="magicmask")
    from joblib.externals.loky import get_reusable_executor

    return get_reusable_executor(max_workers=jobs, initializer=_process_worker_init, timeout=300)


def run_tasks(
    func: Callable,
    items: Iterable,
    jobs: int | None = None,
    in_flight: int | None = None,
    threads: bool = False,
) -> Iterator[tuple[Any, Any, BaseException | None]]:
    """Run ``func(item)`` for every item and yield ``(item, result, error)`` as each one completes.

    Items are submitted as the iterable produces them (it may block, e.g. waiting for ffmpeg), with
    at most ``in_flight`` tasks outstanding (default: twice the workers) so memory stays bounded. An
    error raised by ``func`` is handed back, not raised, so the other items still complete. On
    interruption (Ctrl-C, SIGTERM as KeyboardInterrupt/SystemExit) the workers are killed at once
    (threads finish the task in hand, which writes nothing, and take no other).
    """
    jobs = resolve_jobs(jobs)
    in_flight = in_flight or 2 * jobs
    pool = executor(jobs, threads)
    pending: dict[cf.Future, Any] = {}

    def finished(future) -> tuple[Any, Any, BaseException | None]:
        item = pending.pop(future)
        error = future.exception()
        return item, (None if error else future.result()), error

    try:
        for item in items:
            pending[pool.submit(func, item)] = item
            for future in [f for f in pending if f.done()]:
                yield finished(future)
            while len(pending) >= in_flight:
                done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    yield finished(future)
        while pending:
            done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for future in done:
                yield finished(future)
        if threads:
            pool.shutdown()
    except BaseException:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=False, kill_workers=True)
        raise


def counter(progress: Callable[[str, int, int], None] | None, stage: str, total: int) -> Callable[..., None]:
    """A per-file callback ``step(path=None)`` that reports ``progress(stage, done, total)`` as files are
    done (a no-op without ``progress``), for the library functions that call back once per file."""
    done = 0
    if progress is not None:
        progress(stage, 0, total)

    def step(_path=None):
        nonlocal done
        done += 1
        if progress is not None:
            progress(stage, done, total)

    return step


def as_magicmask_error(error: BaseException, path=None) -> MagicmaskError:
    """A worker's error as magicmask's error type, naming ``path``."""
    if isinstance(error, MagicmaskError):
        return error
    kind = type(error).__name__
    if kind == "TerminatedWorkerError":
        return MagicmaskError("a worker died while processing this file (out of memory?)", path, "re-run; try fewer --jobs")
    return MagicmaskError(f"unexpected {kind}: {error}", path, "please report this with the file")
