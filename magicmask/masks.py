"""The seed's loop body: for every frame, ``NAME-mask.tiff`` and ``NAME-clean.jpg``.

::

    for i in *.tiff; do
      name=`echo $i | cut -d'.' -f1`
      convert BG $i -compose difference -composite -threshold 5% -blur 0x3 -threshold 20% -blur 0x3 "$name-mask.tiff"
      convert $i "$name-mask.tiff" -compose multiply -flatten "$name-clean.jpg"
    done
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from magicmask.engines import DEFAULT_ENGINE, get_engine
from magicmask.engines import wand
from magicmask.errors import MagicmaskError
from magicmask.files import atomic_path, output_paths, select_frames, write_atomic
from magicmask.params import MaskParams


def make_mask(background, frame, mask_path, params: MaskParams = MaskParams()) -> Path:
    """Write the foreground mask of one frame, with ImageMagick.

    Reproduces::

        convert BG FRAME -compose difference -composite -threshold 5% -blur 0x3 -threshold 20% -blur 0x3 NAME-mask.tiff

    Parameters
    ----------
    background, frame : path
        TIFF files of the same size.
    mask_path : path
        Where to write the mask (a grayscale TIFF of the background's depth).
    params : MaskParams
        The thresholds and blurs of the chain.
    """
    with wand.read_tiff(background, "background") as bg, wand.read_tiff(frame) as fr:
        wand.check_same_size(bg, fr, frame, background)
        with wand.mask_image(bg, fr, params) as mask, atomic_path(mask_path) as tmp:
            wand.save_tiff(mask, tmp)
    return Path(mask_path)


def make_clean(frame, mask, clean_path) -> Path:
    """Write the masked image of one frame from its mask file, with ImageMagick.

    Reproduces::

        convert FRAME NAME-mask.tiff -compose multiply -flatten NAME-clean.jpg
    """
    with wand.read_tiff(frame) as fr, wand.read_tiff(mask, "mask") as mk:
        wand.check_same_size(fr, mk, mask, frame)
        with wand.clean_image(fr, mk) as clean, atomic_path(clean_path) as tmp:
            wand.save_jpeg(clean, tmp)
    return Path(clean_path)


def mask_frame(background, frame, out_dir=None, params: MaskParams = MaskParams(), background_path=None, engine: str = DEFAULT_ENGINE) -> tuple[Path, Path]:
    """Both of the loop's commands for one frame, reading the frame once.

    The mask is quantised in memory exactly as the second command reads it back from the file, so
    ``NAME-clean.jpg`` is what the loop writes, without reading ``NAME-mask.tiff`` again. Both files
    are written atomically.

    Parameters
    ----------
    background : engine background
        The background, from ``get_engine(engine).load_background(path)``, loaded once for all frames.
    frame : path
        The frame's TIFF file.
    out_dir : path, optional
        Where to write; beside the frame by default.

    Returns
    -------
    (Path, Path)
        The mask and clean image written.
    """
    mask_path, clean_path = output_paths(frame, out_dir)
    mask_bytes, clean_bytes = get_engine(engine).render_frame(background, frame, params, background_path)
    write_atomic(mask_path, mask_bytes)
    write_atomic(clean_path, clean_bytes)
    return mask_path, clean_path


def mask_frames(
    frames: Iterable[str | os.PathLike],
    background: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    params: MaskParams = MaskParams(),
    progress: Callable[[Path], None] | None = None,
    on_error: Callable[[MagicmaskError], None] | None = None,
    engine: str = DEFAULT_ENGINE,
) -> list[tuple[Path, Path]]:
    """The seed's loop over frames: ``NAME-mask.tiff`` and ``NAME-clean.jpg`` for every frame.

    Earlier outputs among ``frames`` (``*-mask.tiff``, ``background.tiff``) are skipped.

    Parameters
    ----------
    frames : iterable of paths
        The frames (TIFF files).
    background : path
        The background TIFF, e.g. the first frame or ``background.tiff``.
    out_dir : path, optional
        Where to write; beside each frame by default.
    params : MaskParams
        The thresholds and blurs of the chain.
    progress : callable, optional
        Called with each frame once it is done (written or failed).
    on_error : callable, optional
        Called with the error of a frame that fails; the other frames are still processed. Without
        it, the first error is raised once every other frame is done.
    engine : str
        The image engine (see :mod:`magicmask.engines`).

    Returns
    -------
    list of (Path, Path)
        The outputs written, in frame order.
    """
    frames = select_frames(frames)
    if not frames:
        raise MagicmaskError("no frames to mask", hint="pass TIFF frames, e.g. t*.tiff")
    module = get_engine(engine)
    written, errors = [], []
    handle = module.load_background(background)
    try:
        for frame in frames:
            try:
                written.append(mask_frame(handle, frame, out_dir, params, background, engine))
            except MagicmaskError as exc:
                if on_error is None:
                    errors.append(exc)
                else:
                    on_error(exc)
            if progress is not None:
                progress(frame)
    finally:
        if hasattr(handle, "close"):
            handle.close()
    if errors:
        raise errors[0]
    return written
