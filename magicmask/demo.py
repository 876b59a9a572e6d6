"""The built-in sample: a generated video run through the whole recipe, nothing downloaded."""

from __future__ import annotations

import os
from pathlib import Path

from magicmask.engines import DEFAULT_ENGINE
from magicmask.job import Progress, RunResult, run
from magicmask.sample import make_sample_video

SAMPLE_NAME = "sample.mp4"


def demo(out_dir: str | os.PathLike = "magicmask-demo", engine: str = DEFAULT_ENGINE, progress: Progress | None = None, jobs: int | None = None) -> tuple[Path, RunResult]:
    """Make the sample video in ``out_dir`` and run the blog's recipe on it, as ``magicmask run`` does.

    Writes ``out_dir/sample.mp4`` (a dark figure walking over a stone wall, 320x240, 6 keyframes) and, in
    ``out_dir/frames``, what :func:`magicmask.run` writes with the first keyframe as background (as in the
    blog) and the keyframe display: ``t01.tiff``..., ``NAME-mask.tiff``, ``NAME-clean.jpg``,
    ``keyframes.jpg``, ``motion.tsv``, ``sheet.jpg`` and the record ``magicmask.json``; and the plot
    ``motion.png`` when matplotlib is installed (the ``plot`` extra).

    Returns
    -------
    (Path, RunResult)
        The video, and what the run made.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    video = make_sample_video(out_dir / SAMPLE_NAME)
    result = run(video, out_dir / "frames", engine=engine, jobs=jobs or 0, display=True, progress=progress, plot=_can_plot())
    return video, result


def _can_plot() -> bool:
    try:
        import matplotlib.figure  # noqa: F401
    except ImportError:
        return False
    return True
