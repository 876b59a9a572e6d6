"""The whole seed, as the blog runs it: keyframes, a background, then masks for every keyframe."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from magicmask.background import lighten_background
from magicmask.engines import DEFAULT_ENGINE
from magicmask.errors import MagicmaskError
from magicmask.files import BACKGROUND_NAME, check_tiff
from magicmask.keyframes import extract_keyframes
from magicmask.masks import mask_frames
from magicmask.params import MaskParams

BACKGROUNDS = ("first", "lighten")

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: stage is ``keyframes``, ``background`` or ``masks``."""


@dataclass
class RunResult:
    """What :func:`run` wrote."""

    out_dir: Path
    keyframes: list[Path]
    background: Path
    outputs: list[tuple[Path, Path]] = field(default_factory=list)
    errors: list[MagicmaskError] = field(default_factory=list)


def _stage(progress: Progress | None, stage: str, total: int):
    done = 0
    if progress is not None:
        progress(stage, 0, total)

    def step(_path=None):
        nonlocal done
        done += 1
        if progress is not None:
            progress(stage, done, total)

    return step


def run(
    video: str | os.PathLike,
    out_dir: str | os.PathLike,
    background: str | os.PathLike = "first",
    params: MaskParams = MaskParams(),
    engine: str = DEFAULT_ENGINE,
    progress: Progress | None = None,
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
    background : {'first', 'lighten'} or path
        ``first``: the first keyframe, ``out_dir/t01.tiff``, as in the blog. ``lighten``: the
        per-pixel lightest of all keyframes, written as ``out_dir/background.tiff``. A path: that TIFF.
    params : MaskParams
        The thresholds and blurs of the mask chain.
    engine : str
        The image engine.
    progress : callable, optional
        ``progress(stage, done, total)``.

    Returns
    -------
    RunResult
        Keyframes, background and outputs; ``errors`` holds frames that failed (the others are done).
    """
    out_dir = Path(out_dir)
    custom = os.fspath(background) not in BACKGROUNDS
    if custom:
        check_tiff(background, "background")
    step = _stage(progress, "keyframes", 0)
    frames = extract_keyframes(video, out_dir, progress=step)
    if custom:
        background_path = Path(background)
    elif background == "first":
        background_path = frames[0]
    else:
        step = _stage(progress, "background", len(frames))
        background_path = lighten_background(frames, out_dir / BACKGROUND_NAME, progress=step, engine=engine)
    result = RunResult(out_dir, frames, background_path)
    step = _stage(progress, "masks", len(frames))
    result.outputs = mask_frames(frames, background_path, out_dir, params, progress=step, on_error=result.errors.append, engine=engine)
    return result
