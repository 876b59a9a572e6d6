"""The built-in sample: a generated video run through the whole pipeline, nothing downloaded."""

from __future__ import annotations

import os
from pathlib import Path

from magicmask.background import keyframe_display
from magicmask.engines import DEFAULT_ENGINE
from magicmask.pipeline import Progress, RunResult, run
from magicmask.sample import make_sample_video
from magicmask.sheet import contact_sheet

SAMPLE_NAME = "sample.mp4"


def demo(out_dir: str | os.PathLike = "magicmask-demo", engine: str = DEFAULT_ENGINE, progress: Progress | None = None, jobs: int | None = None) -> tuple[Path, RunResult, Path]:
    """Make the sample video in ``out_dir`` and run the blog's recipe on it.

    Writes ``out_dir/sample.mp4`` (a dark figure walking over a stone wall, 320x240, 6 keyframes),
    its keyframes ``out_dir/frames/t01.tiff``..., their masks and clean images beside them (the
    first keyframe is the background, as in the blog), the multi-exposure display
    ``out_dir/frames/keyframes.jpg`` and the contact sheet ``out_dir/frames/sheet.jpg``.

    Returns
    -------
    (Path, RunResult, Path)
        The video, what :func:`magicmask.pipeline.run` wrote, and the display.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    video = make_sample_video(out_dir / SAMPLE_NAME)
    result = run(video, out_dir / "frames", "first", engine=engine, progress=progress, jobs=jobs)
    display = keyframe_display(result.keyframes, out_dir / "frames" / "keyframes.jpg", engine=engine, jobs=jobs)
    contact_sheet(out_dir / "frames")  # frames/sheet.jpg: frame | mask | clean per keyframe
    return video, result, display
