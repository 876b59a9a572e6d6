"""Backgrounds and the keyframe display: ``-compose lighten|darken -flatten`` over frames, as a fold."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from magicmask.engines import DEFAULT_ENGINE, get_engine
from magicmask.errors import MagicmaskError
from magicmask.execute import as_magicmask_error, resolve_jobs, run_tasks
from magicmask.files import select_frames, write_atomic

METHODS = {"lighten": "black", "darken": "white"}  # -compose OP: the -background colour the blog uses


def flatten(
    frames: Iterable[str | os.PathLike],
    output: str | os.PathLike,
    compose: str = "lighten",
    background: str | None = None,
    progress: Callable[[Path], None] | None = None,
    engine: str = DEFAULT_ENGINE,
    jobs: int | None = None,
    *,
    scheduler=None,
) -> Path:
    """Flatten frames with a per-pixel compose operator, one frame in memory at a time.

    Reproduces::

        convert *.tiff -background COLOUR -compose OP -flatten OUTPUT

    The output format follows the extension of ``output``: ``.jpg``/``.jpeg`` JPEG, anything else TIFF.

    Parameters
    ----------
    frames : iterable of paths
        TIFF frames of one size. Earlier outputs (``*-mask.tiff``, ``background.tiff``) are skipped.
    output : path
        The file to write.
    compose : {'lighten', 'darken'}
        Per-channel maximum or minimum.
    background : str, optional
        The ``-background`` colour; ``black`` for lighten and ``white`` for darken, as in the blog.
    progress : callable, optional
        Called with each frame once it is folded in.
    engine : str
        The image engine (see :mod:`magicmask.engines`).
    jobs : int, optional
        Worker processes; all cores by default. Each worker folds a run of frames; their partial
        results are combined here as they arrive (lighten and darken are associative), so memory
        does not grow with the number of frames.
    scheduler : str or distributed.Client, optional
        Run on this Dask cluster (``tcp://HOST:8786``) instead (``jobs`` is then unused): a tree
        reduction of partial folds on the workers, fed with the frames' bytes. Needs the ``dask`` extra.
    """
    if compose not in METHODS:
        raise MagicmaskError(f"unknown compose method {compose!r}", hint=f"use one of {', '.join(METHODS)}")
    frames = select_frames(frames)
    if not frames:
        raise MagicmaskError("no frames to flatten", hint="pass TIFF frames, e.g. t*.tiff")
    output = Path(output)
    colour = background or METHODS[compose]
    if scheduler is not None:
        from magicmask.cluster import flatten_frames

        get_engine(engine).Fold(compose, colour).close()  # a bad colour is refused here, not on every worker
        data = flatten_frames(frames, compose, colour, "jpeg" if output.suffix.lower() in (".jpg", ".jpeg") else "tiff", engine, scheduler, progress)
        return write_atomic(output, data)
    jobs = resolve_jobs(jobs)
    fold = get_engine(engine).Fold(compose, colour)
    try:
        if jobs == 1 or len(frames) < 2 * CHUNK:
            for frame in frames:
                fold.add_file(frame)
                if progress is not None:
                    progress(frame)
        else:
            _fold_in_parallel(fold, frames, engine, colour, jobs, progress)
        data = fold.encode("jpeg" if output.suffix.lower() in (".jpg", ".jpeg") else "tiff")
    finally:
        fold.close()
    return write_atomic(output, data, keep_identical=True)


CHUNK = 8  # frames a worker folds before handing its partial result back


def fold_chunk(task: tuple[str, str, str, list[Path]]) -> bytes:
    """Fold a run of frames in a worker; the partial result as TIFF bytes."""
    engine, compose, colour, frames = task
    fold = get_engine(engine).Fold(compose, colour)
    try:
        for frame in frames:
            fold.add_file(frame)
        return fold.encode("tiff")
    finally:
        fold.close()


def _fold_in_parallel(fold, frames: list[Path], engine: str, colour: str, jobs: int, progress) -> None:
    size = max(1, min(CHUNK, math.ceil(len(frames) / jobs)))
    chunks = [(engine, fold.compose, colour, frames[i : i + size]) for i in range(0, len(frames), size)]
    with tempfile.TemporaryDirectory(prefix="magicmask-fold-") as folder:
        partial = Path(folder) / "partial.tiff"
        for task, data, error in run_tasks(fold_chunk, chunks, jobs, threads=get_engine(engine).THREADS):
            if error is not None:
                raise as_magicmask_error(error, task[3][0])
            partial.write_bytes(data)
            fold.add_file(partial)
            if progress is not None:
                for frame in task[3]:
                    progress(frame)


def lighten_background(frames, output="background.tiff", progress=None, engine: str = DEFAULT_ENGINE, jobs: int | None = None, *, scheduler=None) -> Path:
    """The blog's adaptive background: the per-pixel lightest value over all frames.

    Reproduces::

        convert *.tiff -background black -compose lighten -flatten background.tiff
    """
    return flatten(frames, output, "lighten", "black", progress, engine, jobs, scheduler=scheduler)


def keyframe_display(frames, output="keyframes.jpg", progress=None, engine: str = DEFAULT_ENGINE, jobs: int | None = None, *, scheduler=None) -> Path:
    """The author's multi-exposure keyframe display: the per-pixel darkest value over all frames.

    Reproduces::

        convert *.tiff -background white -compose darken -flatten keyframes.jpg
    """
    return flatten(frames, output, "darken", "white", progress, engine, jobs, scheduler=scheduler)
