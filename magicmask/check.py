"""The regression check: run the blog's literal ``convert`` commands and compare with magicmask."""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import replace
from collections.abc import Callable, Iterable
from pathlib import Path

from magicmask.compare import Comparison, compare_files
from magicmask.engines import ENGINES
from magicmask.errors import MagicmaskError
from magicmask.files import check_tiff, output_paths, select_frames
from magicmask.masks import mask_frames
from magicmask.params import MaskParams

_INSTALL_HINT = "install ImageMagick: apt-get install imagemagick"


def find_convert() -> str:
    """ImageMagick's own ``convert``: ``$MAGICMASK_CONVERT``, else the first ``convert`` on PATH that
    says it is ImageMagick, else ``/usr/bin/convert``.

    Raises
    ------
    MagicmaskError
        When no ImageMagick ``convert`` is installed.
    """
    candidates = [os.environ.get("MAGICMASK_CONVERT")]
    candidates += [str(Path(folder) / "convert") for folder in os.environ.get("PATH", "").split(os.pathsep) if folder]
    candidates.append("/usr/bin/convert")
    for candidate in filter(None, candidates):
        if not (os.path.isfile(candidate) and os.access(candidate, os.X_OK)):
            continue
        try:
            done = subprocess.run([candidate, "-version"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            continue
        if done.stdout.startswith("Version: ImageMagick"):
            return candidate
    raise MagicmaskError("ImageMagick's convert is not installed", hint=_INSTALL_HINT)


def seed_commands(convert: str, background, frame, mask, clean, params: MaskParams = MaskParams()) -> list[list[str]]:
    """The blog's two ``convert`` lines for one frame, as argument lists."""
    return [
        [convert, os.fspath(background), os.fspath(frame), "-compose", "difference", "-composite", *params.convert_options(), os.fspath(mask)],
        [convert, os.fspath(frame), os.fspath(mask), "-compose", "multiply", "-flatten", os.fspath(clean)],
    ]


def run_seed_loop(frames: Iterable, background, out_dir, params: MaskParams = MaskParams(), convert: str | None = None) -> list[tuple[Path, Path]]:
    """Run the blog's loop with the real ``convert`` into ``out_dir``; return the outputs per frame."""
    convert = convert or find_convert()
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    outputs = []
    for frame in frames:
        mask, clean = output_paths(frame, out_dir)
        for args in seed_commands(convert, background, frame, mask, clean, params):
            done = subprocess.run(args, capture_output=True, text=True)
            if done.returncode != 0:
                raise MagicmaskError(f"convert failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}", frame)
        outputs.append((mask, clean))
    return outputs


def check(
    frames: Iterable[str | os.PathLike],
    background: str | os.PathLike,
    params: MaskParams = MaskParams(),
    engines: Iterable[str] = ENGINES,
    progress: Callable[[Path], None] | None = None,
    jobs: int | None = None,
) -> list[Comparison]:
    """Compare each engine's masks and clean images with those of the literal ``convert`` commands.

    Everything runs on the same frames in a temporary folder; nothing is written beside the frames.

    Returns
    -------
    list of Comparison
        One row per output file and engine (``Comparison.engine``), frame by frame.
    """
    frames = select_frames(frames)
    if not frames:
        raise MagicmaskError("no frames to check", hint="pass TIFF frames, e.g. t*.tiff")
    check_tiff(background, "background")
    for frame in frames:
        check_tiff(frame)
    engines = list(engines)
    convert = find_convert()
    rows = []
    with tempfile.TemporaryDirectory(prefix="magicmask-check-") as folder:
        ref_dir = Path(folder) / "convert"
        ours = {engine: mask_frames(frames, background, Path(folder) / engine, params, engine=engine, jobs=jobs) for engine in engines}
        for index, frame in enumerate(frames):
            reference = run_seed_loop([frame], background, ref_dir, params, convert)[0]
            for engine in engines:
                for output, theirs in zip(ours[engine][index], reference):
                    rows.append(replace(compare_files(output, theirs), engine=engine))
            if progress is not None:
                progress(frame)
    return rows
