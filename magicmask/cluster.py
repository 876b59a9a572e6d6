"""The per-frame work on a Dask cluster (``dask.distributed``): the frames travel, the user's files stay here.

Workers never open the user's files: every task carries the bytes of its frames, and a worker writes
them to a private temporary folder, runs the same engine functions as a local run on them, and
returns the output bytes. This process (the client) reads every frame and writes every output
(atomically, in :func:`magicmask.masks.mask_frames` and :func:`magicmask.background.flatten`), so the
outputs are those of a local run, byte for byte.

Resilience: a task's arguments stay with its spec on the scheduler, so when a worker dies Dask runs
its tasks again elsewhere. Nothing is ``scatter``-ed (scattered data dies with its worker): the
background is the result of a task (:func:`hold`), which the scheduler can run again, and it travels
to each worker once. Folds return their partial results here and each combination is a new task
carrying its two inputs, so no task's lineage grows with the number of frames (a dead worker costs
only the tasks it was running) and the scheduler holds the data of the tasks in flight only.

Needs the ``dask`` extra (``pip install 'magicmask[dask]'``); see :func:`require`.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from magicmask.engines import get_engine
from magicmask.errors import MagicmaskError
from magicmask.execute import as_magicmask_error, limit_imagemagick_threads
from magicmask.files import check_tiff
from magicmask.params import MaskParams

INSTALL_HINT = "install it with: pip install 'magicmask[dask]'"
CHUNK = 8  # frames a worker folds in one task (as the local folds do)
CHUNK_BYTES = 32 << 20  # and at most this many bytes of frames per task, so task specs stay small
WAIT_FOR_WORKERS = 60  # seconds to wait for a first worker on a cluster that has none


def require():
    """The ``distributed`` module, or a one-line error saying how to install it.

    Raises
    ------
    MagicmaskError
        When ``dask.distributed`` is not installed.
    """
    try:
        import distributed
    except ImportError:
        raise MagicmaskError("the dask backend needs dask.distributed, which is not installed", hint=INSTALL_HINT) from None
    return distributed


@contextlib.contextmanager
def connect(scheduler) -> Iterator[Any]:
    """A ``distributed.Client`` for ``scheduler``: an address (``tcp://HOST:8786``), a cluster object, or
    a client (used as it is and left open)."""
    distributed = require()
    if isinstance(scheduler, distributed.Client):
        yield scheduler
        return
    try:
        client = distributed.Client(scheduler, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise MagicmaskError(
            f"cannot connect to the Dask scheduler: {exc}", os.fspath(scheduler) if isinstance(scheduler, str) else None, "start one with `dask scheduler` and pass its address, e.g. tcp://HOST:8786"
        ) from None
    try:
        yield client
    finally:
        client.close()


def _threads(client) -> int:
    """The worker threads of the cluster, waiting a while for a first worker."""
    threads = sum(client.nthreads().values())
    if threads == 0:
        try:
            client.wait_for_workers(1, timeout=WAIT_FOR_WORKERS)
        except TimeoutError:
            raise MagicmaskError(f"the Dask scheduler has no workers after {WAIT_FOR_WORKERS} s", client.scheduler.address, "start some with: dask worker tcp://HOST:8786") from None
        threads = sum(client.nthreads().values())
    return max(1, threads)


def _submit(client, func, *args):
    """``client.submit(func, *args, pure=False)``; frames travel in the task spec by design, so Dask's
    warning about large graphs is not shown."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning)
        return client.submit(func, *args, pure=False)


def _read(path) -> bytes:
    """The bytes of a frame, checked to be a TIFF first (as every engine does)."""
    path = check_tiff(path)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise MagicmaskError(f"cannot read frame: {exc.strerror}", path, "check its permissions") from None


def _as_error(future, path) -> MagicmaskError:
    """The error of a failed or lost task, as magicmask's error naming ``path``."""
    if future.status == "cancelled":
        return MagicmaskError("the Dask scheduler dropped this task (lost connection?)", path, "check the scheduler and re-run; finished files are kept")
    error = future.exception()
    if type(error).__name__ == "KilledWorker":
        return MagicmaskError("Dask workers kept dying while processing this file (out of memory?)", path, "check the workers' memory and logs")
    return as_magicmask_error(error, path)


def _cancel(client, futures) -> None:
    futures = [future for future in futures if future is not None]
    if futures:
        with contextlib.suppress(Exception):
            client.cancel(futures)


# --------------------------------------------------------------------------------------------------
# on the workers


_LOCAL = threading.local()  # per worker thread: the loaded background (engine handles are not shared between threads)
_READY = False


def _prepare_worker() -> None:
    global _READY
    if not _READY:
        limit_imagemagick_threads()
        _READY = True


@contextlib.contextmanager
def _as_files(named: list[tuple[str, bytes]]) -> Iterator[tuple[list[Path], dict[str, str]]]:
    """Write each ``(name, data)`` to a private temporary folder under the name's file name.

    Yields the paths and a map from each temporary path back to the user's name, for error messages.
    """
    with tempfile.TemporaryDirectory(prefix="magicmask-") as folder:
        paths, names = [], {}
        for number, (name, data) in enumerate(named):
            path = Path(folder) / str(number) / (Path(name).name or "frame.tiff")
            path.parent.mkdir()
            path.write_bytes(data)
            paths.append(path)
            names[os.fspath(path)] = name
        yield paths, names


def _renamed(error: Exception, names: dict[str, str], path: str) -> MagicmaskError:
    """``error`` as magicmask's error, naming the user's files instead of the worker's temporary ones."""
    error = as_magicmask_error(error, path)
    message, where, hint = error.message, error.path, error.hint
    for temporary, original in names.items():
        message = message.replace(temporary, original)
        hint = hint.replace(temporary, original) if hint else hint
        if where == temporary:
            where = original
    return MagicmaskError(message, where, hint)


def hold(data: bytes) -> bytes:
    """The background's bytes, as the result of a task: held by a worker, fetched once by every other
    worker, and made again by the scheduler if the worker holding it dies."""
    return data


def _background(engine: str, key: str, data: bytes, name: str):
    """The background loaded by ``engine``, kept for the following frames of this worker thread."""
    cached = getattr(_LOCAL, "background", None)
    if cached is not None and cached[0] == (engine, key):
        return cached[1], cached[2]
    if cached is not None and hasattr(cached[1], "close"):
        cached[1].close()
    _LOCAL.background = None
    with _as_files([(name, data)]) as ([path], names):
        try:
            handle = get_engine(engine).load_background(path)
        except Exception as exc:
            raise _renamed(exc, names, name) from None
    _LOCAL.background = ((engine, key), handle, names)
    return handle, names


def render_task(engine: str, background: bytes, key: str, background_name: str, frame: bytes, frame_name: str, params: MaskParams) -> tuple[bytes, bytes]:
    """On a worker: ``(NAME-mask.tiff, NAME-clean.jpg)`` bytes of one frame given as bytes (see
    :func:`magicmask.masks.render`); errors name ``frame_name`` and ``background_name``."""
    _prepare_worker()
    handle, background_names = _background(engine, key, background, background_name)
    with _as_files([(frame_name, frame)]) as ([path], names):
        try:
            return get_engine(engine).render_frame(handle, path, params, background_name)
        except Exception as exc:
            raise _renamed(exc, {**background_names, **names}, frame_name) from None


def fold_task(engine: str, compose: str, colour: str, images: list[tuple[str, bytes]], format: str = "tiff") -> bytes:
    """On a worker: fold TIFF images given as ``(name, bytes)`` (frames, or partial folds) in order and
    encode the result; errors name the user's files."""
    _prepare_worker()
    with _as_files(images) as (paths, names):
        fold = get_engine(engine).Fold(compose, colour)
        try:
            for path in paths:
                fold.add_file(path)
            return fold.encode(format)
        except Exception as exc:
            raise _renamed(exc, names, images[0][0]) from None
        finally:
            fold.close()


# --------------------------------------------------------------------------------------------------
# in this process


def render_frames(
    jobs: Iterable,
    background: str | os.PathLike,
    params: MaskParams,
    engine: str,
    scheduler,
    in_flight: int | None = None,
) -> Iterator[tuple[Any, tuple[bytes, bytes] | None, MagicmaskError | None]]:
    """Render frames on the cluster and yield ``(job, (mask bytes, clean bytes), error)`` as each completes.

    The same contract as :func:`magicmask.execute.run_tasks` over :func:`magicmask.masks.render`: jobs
    (anything with a ``frame`` path) are submitted as the iterable produces them, at most
    ``in_flight`` at a time (default: twice the cluster's threads), and a failed frame is handed back
    with its error, naming the frame, while the others go on.
    """
    background = Path(background)
    with connect(scheduler) as client:
        in_flight = in_flight or 2 * _threads(client)
        distributed = require()
        name = os.fspath(background)
        held = _submit(client, hold, _read_background(background))
        pending: dict = {}
        done = distributed.as_completed(loop=client.loop)

        def finished(future):
            job = pending.pop(future)
            if future.status == "finished":
                return job, future.result(), None
            error = _as_error(future, job.frame)
            if future.status == "cancelled":
                raise error
            return job, None, error

        try:
            for job in jobs:
                try:
                    data = _read(job.frame)
                except MagicmaskError as error:
                    yield job, None, error
                    continue
                future = _submit(client, render_task, engine, held, held.key, name, data, os.fspath(job.frame), params)
                pending[future] = job
                done.add(future)
                del data
                if done.has_ready():
                    for future in done.next_batch(block=False):
                        yield finished(future)
                while len(pending) >= in_flight:
                    yield finished(next(done))
            for future in done:
                yield finished(future)
        finally:
            _cancel(client, [*pending, held])


def _read_background(path: Path) -> bytes:
    path = check_tiff(path, "background")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise MagicmaskError(f"cannot read background: {exc.strerror}", path, "check its permissions") from None


class _Part:
    """A run of consecutive frames being folded: a task in flight, or its result (TIFF bytes)."""

    def __init__(self, level: int, name: str):
        self.level, self.name = level, name
        self.future = None
        self.data: bytes | None = None


def _chunks(frames: list[Path], threads: int) -> Iterator[list[Path]]:
    """Runs of at most CHUNK consecutive frames (fewer to feed every thread) and about CHUNK_BYTES."""
    size = max(1, min(CHUNK, math.ceil(len(frames) / threads)))
    chunk: list[Path] = []
    total = 0
    for frame in frames:
        try:
            length = frame.stat().st_size
        except OSError:
            length = 0  # reported by _read
        if chunk and (len(chunk) == size or total + length > CHUNK_BYTES):
            yield chunk
            chunk, total = [], 0
        chunk.append(frame)
        total += length
    if chunk:
        yield chunk


def flatten_frames(
    frames: list[Path],
    compose: str,
    colour: str,
    format: str,
    engine: str,
    scheduler,
    progress: Callable[[Path], None] | None = None,
    in_flight: int | None = None,
) -> bytes:
    """``-background COLOUR -compose OP -flatten`` over frames, as a tree reduction on the cluster.

    Workers fold runs of consecutive frames; two adjacent partial results of the same size are
    combined by another task as soon as both are back, and the last one is encoded as ``format``
    (``tiff`` or ``jpeg``) on a worker. Combinations keep the frames' order, so the result carries the
    first frame's attributes, as the local fold's does (lighten/darken themselves are associative).

    Returns
    -------
    bytes
        The encoded result, for the caller to write.

    Raises
    ------
    MagicmaskError
        The first frame that cannot be read or folded, by name.
    """
    with connect(scheduler) as client:
        threads = _threads(client)
        in_flight = in_flight or 2 * threads
        distributed = require()
        done = distributed.as_completed(loop=client.loop)
        parts: list[_Part] = []
        tasks: dict = {}  # future -> (part, frames of a first fold, for progress)

        def submit(part: _Part, images: list[tuple[str, bytes]], chunk: list[Path] | None, format: str = "tiff"):
            part.future = _submit(client, fold_task, engine, compose, colour, images, format)
            tasks[part.future] = (part, chunk)
            done.add(part.future)

        def combine(last: bool = False):
            i = 0
            while i + 1 < len(parts):
                left, right = parts[i], parts[i + 1]
                if left.data is not None and right.data is not None and (last or left.level == right.level):
                    joined = _Part(max(left.level, right.level) + 1, left.name)
                    submit(joined, [(left.name, left.data), (right.name, right.data)], None)
                    parts[i : i + 2] = [joined]
                i += 1

        def collect(future):
            part, chunk = tasks.pop(future)
            if future.status != "finished":
                raise _as_error(future, part.name)
            part.data, part.future = future.result(), None
            if progress is not None and chunk:
                for frame in chunk:
                    progress(frame)

        try:
            for chunk in _chunks(frames, threads):
                images = [(os.fspath(frame), _read(frame)) for frame in chunk]
                part = _Part(0, images[0][0])
                parts.append(part)
                submit(part, images, chunk)
                del images
                while len(tasks) >= in_flight or done.has_ready():
                    collect(next(done))
                    combine()
            combine(last=True)
            while len(parts) > 1 or parts[0].data is None:
                collect(next(done))
                combine(last=True)
            final = _Part(parts[0].level + 1, parts[0].name)
            submit(final, [(parts[0].name, parts[0].data)], None, format)
            parts = []
            collect(next(done))
            return final.data
        finally:
            _cancel(client, list(tasks))
