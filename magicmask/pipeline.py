"""The whole seed, as the blog runs it: keyframes, a background, then masks for every keyframe."""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from magicmask.background import lighten_background
from magicmask.engines import DEFAULT_ENGINE, get_engine
from magicmask.errors import MagicmaskError
from magicmask.execute import counter
from magicmask.files import BACKGROUND_NAME, CLEAN_SUFFIX, MASK_SUFFIX, check_tiff, output_paths
from magicmask.keyframes import Keyframes
from magicmask.masks import mask_frames
from magicmask.params import MaskParams

BACKGROUNDS = ("first", "lighten", "darken", "mean", "median")

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: stage is ``keyframes``, ``background`` or ``masks``."""


@dataclass
class RunResult:
    """What :func:`run` wrote."""

    out_dir: Path
    keyframes: list[Path]
    background: Path | None  # None when every keyframe has its own (see ``backgrounds``)
    outputs: list[tuple[Path, Path]] = field(default_factory=list)
    errors: list[MagicmaskError] = field(default_factory=list)
    backgrounds: dict[Path, Path] = field(default_factory=dict)  # each keyframe's background, when they differ


def run(
    video: str | os.PathLike,
    out_dir: str | os.PathLike,
    background: str | os.PathLike = "first",
    params: MaskParams = MaskParams(),
    engine: str = DEFAULT_ENGINE,
    progress: Progress | None = None,
    jobs: int | None = None,
    force: bool = False,
    *,
    scheduler=None,
    source: str = "keyframes",
    window: float = 0.0,
    match_exposure: bool = False,
    samples: int | None = None,
    spans: Sequence[tuple[float, float]] = (),
) -> RunResult:
    """Run the blog's whole recipe on one video.

    Reproduces::

        ffmpeg -skip_frame nokey -i VIDEO -vsync 0 -r 30 -f image2 t%02d.tiff
        convert *.tiff -background black -compose lighten -flatten background.tiff   # lighten only
        for i in *.tiff; do ... NAME-mask.tiff ... NAME-clean.jpg; done

    Parameters
    ----------
    video : path
        The video file.
    out_dir : path
        Where keyframes (``t01.tiff``...), the background and the outputs go.
    background : {'first', 'lighten', 'darken', 'mean', 'median'} or path
        ``first``: the first keyframe, ``out_dir/t01.tiff``, as in the blog. ``lighten``: the
        per-pixel lightest of all keyframes, written as ``out_dir/background.tiff``, as in the blog.
        ``darken``, ``mean``, ``median``: those statistics per pixel (see :mod:`magicmask.statistics`).
        A path: that TIFF.
    params : MaskParams
        The thresholds and blurs of the mask chain.
    engine : str
        The image engine.
    progress : callable, optional
        ``progress(stage, done, total)``.
    jobs : int, optional
        Worker processes; all cores by default.
    force : bool
        Redo frames whose outputs are up to date (by default a re-run only does what is missing).
    scheduler : str or distributed.Client, optional
        Run the background and the masks on this Dask cluster (``tcp://HOST:8786``); ffmpeg runs
        here and workers get the keyframes' bytes. Needs the ``dask`` extra.
    source : {'keyframes', 'video'}
        Which frames feed the background's statistic: the keyframes (as in the blog) or every decoded
        frame of the video, streamed from ffmpeg.
    window : float
        Seconds. 0: one background for the run. Otherwise each keyframe gets its own background
        (``NAME-background.tiff``) from the frames within ``window/2`` of it.
    match_exposure : bool
        Shift the background's brightness to each keyframe's (per-channel median offset) before the mask.
    samples : int, optional
        The most frames a median holds (evenly sampled); bounds memory (see :mod:`magicmask.statistics`).
    spans : sequence of (start, end)
        With ``source="video"``: only the frames in these spans (seconds from the video's start) feed the
        statistic, e.g. the parts of a take where nobody stands still.

    Whatever the background, each mask is what the seed's ``convert`` chain makes from the frame and the
    background file written for it.

    Notes
    -----
    With the first keyframe as background, masks start while ffmpeg is still extracting the
    following keyframes; a lighten background needs every keyframe first.

    Returns
    -------
    RunResult
        Keyframes, background and outputs; ``errors`` holds frames that failed (the others are done).
    """
    out_dir = Path(out_dir)
    _warm_up(engine)
    custom = os.fspath(background) not in BACKGROUNDS
    if custom:
        background_path = check_tiff(background, "background")
    seed_like = source == "keyframes" and not window and not match_exposure and not spans
    if not seed_like or background in ("darken", "mean", "median"):
        return _run_with_statistics(video, out_dir, background, params, engine, progress, jobs, force, scheduler, source, window, match_exposure, samples, tuple(spans))
    keyframes = Keyframes(video, out_dir)
    extracted = counter(progress, "keyframes", 0)

    def stream():
        for path in keyframes:
            extracted()
            yield path

    if background == "lighten":
        try:
            frames = list(stream())
        finally:
            keyframes.close()
        target = out_dir / BACKGROUND_NAME
        if force or not _newer_than_all(target, frames):
            lighten_background(frames, target, counter(progress, "background", len(frames)), engine, jobs, scheduler=scheduler)
        background_path, source = target, frames
    elif custom:
        source = stream()
    else:  # the first keyframe, as soon as ffmpeg has written it; the masks start while it goes on
        source = stream()
        try:
            background_path = next(source)
        except BaseException:
            keyframes.close()
            raise
        source = itertools.chain([background_path], source)
    errors: list[MagicmaskError] = []
    try:
        mask_frames(source, background_path, out_dir, params, counter(progress, "masks", 0), errors.append, engine, jobs, force, scheduler=scheduler)
    finally:
        keyframes.close()  # on interruption: ffmpeg stopped, its temporary folder removed
    frames = keyframes.finish((MASK_SUFFIX, CLEAN_SUFFIX))
    if background == "first":
        background_path = frames[0]
    failed = {error.path for error in errors}
    outputs = [output_paths(frame, out_dir) for frame in frames if os.fspath(frame) not in failed]
    return RunResult(out_dir, frames, background_path, outputs, errors)


def _run_with_statistics(video, out_dir, background, params, engine, progress, jobs, force, scheduler, source, window, match_exposure, samples, spans=()) -> RunResult:
    """:func:`run` with a background from :func:`magicmask.statistics.make_backgrounds`: every keyframe is
    extracted first, then the backgrounds are made (one, or one per keyframe), then the masks."""
    from magicmask.statistics import DEFAULT_SAMPLES, make_backgrounds

    keyframes = Keyframes(video, out_dir)
    extracted = counter(progress, "keyframes", 0)
    try:
        for _ in keyframes:
            extracted()
    finally:
        keyframes.close()
    frames = keyframes.finish()

    def step(done, total):
        if progress is not None:
            progress("background", done, total)

    backgrounds = make_backgrounds(video, frames, out_dir, background, source, window, match_exposure, samples or DEFAULT_SAMPLES, step, engine=engine, jobs=jobs, spans=spans)
    errors: list[MagicmaskError] = []
    mask_frames(frames, backgrounds, out_dir, params, counter(progress, "masks", len(frames)), errors.append, engine, jobs, force, scheduler=scheduler)
    distinct = set(backgrounds.values())
    failed = {error.path for error in errors}
    outputs = [output_paths(frame, out_dir) for frame in frames if os.fspath(frame) not in failed]
    return RunResult(out_dir, frames, distinct.pop() if len(distinct) == 1 else None, outputs, errors, backgrounds)


def _warm_up(engine: str) -> None:
    """Let the engine load what it needs (Numba's kernels) in a thread while ffmpeg starts."""
    warm_up = getattr(get_engine(engine), "warm_up", None)
    if warm_up is not None:
        threading.Thread(target=_quietly, args=(warm_up,), name="magicmask-warm-up", daemon=True).start()


def _quietly(function) -> None:
    try:
        function()
    except Exception:  # only a head start: any real problem shows on the first frame
        pass


def _newer_than_all(target: Path, inputs: list[Path]) -> bool:
    """True when ``target`` exists and is at least as new as every input."""
    try:
        made = target.stat().st_mtime_ns
    except FileNotFoundError:
        return False
    return all(made >= path.stat().st_mtime_ns for path in inputs)
