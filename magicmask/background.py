"""Backgrounds and the keyframe display: ``-compose lighten|darken -flatten`` over frames, as a fold."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from magicmask.engines import DEFAULT_ENGINE, get_engine
from magicmask.errors import MagicmaskError
from magicmask.files import select_frames, write_atomic

METHODS = {"lighten": "black", "darken": "white"}  # -compose OP: the -background colour the seed uses


def flatten(
    frames: Iterable[str | os.PathLike],
    output: str | os.PathLike,
    compose: str = "lighten",
    background: str | None = None,
    progress: Callable[[Path], None] | None = None,
    engine: str = DEFAULT_ENGINE,
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
        The ``-background`` colour; ``black`` for lighten and ``white`` for darken, as in the seed.
    progress : callable, optional
        Called with each frame once it is folded in.
    engine : str
        The image engine (see :mod:`magicmask.engines`).
    """
    if compose not in METHODS:
        raise MagicmaskError(f"unknown compose method {compose!r}", hint=f"use one of {', '.join(METHODS)}")
    frames = select_frames(frames)
    if not frames:
        raise MagicmaskError("no frames to flatten", hint="pass TIFF frames, e.g. t*.tiff")
    output = Path(output)
    fold = get_engine(engine).Fold(compose, background or METHODS[compose])
    try:
        for frame in frames:
            fold.add_file(frame)
            if progress is not None:
                progress(frame)
        data = fold.encode("jpeg" if output.suffix.lower() in (".jpg", ".jpeg") else "tiff")
    finally:
        fold.close()
    return write_atomic(output, data)


def lighten_background(frames, output="background.tiff", progress=None, engine: str = DEFAULT_ENGINE) -> Path:
    """The seed's adaptive background: the per-pixel lightest value over all frames.

    Reproduces::

        convert *.tiff -background black -compose lighten -flatten background.tiff
    """
    return flatten(frames, output, "lighten", "black", progress, engine)


def keyframe_display(frames, output="keyframes.jpg", progress=None, engine: str = DEFAULT_ENGINE) -> Path:
    """The author's multi-exposure keyframe display: the per-pixel darkest value over all frames.

    Reproduces::

        convert *.tiff -background white -compose darken -flatten keyframes.jpg
    """
    return flatten(frames, output, "darken", "white", progress, engine)
