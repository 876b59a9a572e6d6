"""The regression check: run the seed's literal ``convert`` commands and compare with magicmask."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from magicmask.compare import Comparison, compare_files
from magicmask.engines import DEFAULT_ENGINE
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
    """The seed's two ``convert`` lines for one frame, as argument lists."""
    return [
        [convert, os.fspath(background), os.fspath(frame), "-compose", "difference", "-composite", *params.convert_options(), os.fspath(mask)],
        [convert, os.fspath(frame), os.fspath(mask), "-compose", "multiply", "-flatten", os.fspath(clean)],
    ]


def run_seed_loop(frames: Iterable, background, out_dir, params: MaskParams = MaskParams(), convert: str | None = None) -> list[tuple[Path, Path]]:
    """Run the seed's loop with the real ``convert`` into ``out_dir``; return the outputs per frame."""
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
    engine: str = DEFAULT_ENGINE,
    progress: Callable[[Path], None] | None = None,
    jobs: int | None = None,
) -> list[Comparison]:
    """Compare magicmask's masks and clean images with those of the literal ``convert`` commands.

    Both run on the same frames in a temporary folder; nothing is written beside the frames.

    Returns
    -------
    list of Comparison
        One row per output file (mask and clean image per frame).
    """
    frames = select_frames(frames)
    if not frames:
        raise MagicmaskError("no frames to check", hint="pass TIFF frames, e.g. t*.tiff")
    check_tiff(background, "background")
    convert = find_convert()
    for frame in frames:
        check_tiff(frame)
    rows = []
    with tempfile.TemporaryDirectory(prefix="magicmask-check-") as folder:
        ours_dir, ref_dir = Path(folder) / "magicmask", Path(folder) / "convert"
        ours = mask_frames(frames, background, ours_dir, params, engine=engine, jobs=jobs)
        for frame, mine in zip(frames, ours):
            reference = run_seed_loop([frame], background, ref_dir, params, convert)[0]
            for output, theirs in zip(mine, reference):
                rows.append(compare_files(output, theirs))
            if progress is not None:
                progress(frame)
    return rows
