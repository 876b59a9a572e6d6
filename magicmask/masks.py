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

from magicmask.engines import wand as engine
from magicmask.errors import MagicmaskError
from magicmask.files import atomic_path, output_paths, select_frames
from magicmask.params import MaskParams


def make_mask(background, frame, mask_path, params: MaskParams = MaskParams()) -> Path:
    """Write the foreground mask of one frame.

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
    with engine.read_tiff(background, "background") as bg, engine.read_tiff(frame) as fr:
        engine.check_same_size(bg, fr, frame, background)
        with engine.mask_image(bg, fr, params) as mask, atomic_path(mask_path) as tmp:
            engine.save_tiff(mask, tmp)
    return Path(mask_path)


def make_clean(frame, mask, clean_path) -> Path:
    """Write the masked image of one frame.

    Reproduces::

        convert FRAME NAME-mask.tiff -compose multiply -flatten NAME-clean.jpg
    """
    with engine.read_tiff(frame) as fr, engine.read_tiff(mask, "mask") as mk:
        engine.check_same_size(fr, mk, mask, frame)
        with engine.clean_image(fr, mk) as clean, atomic_path(clean_path) as tmp:
            engine.save_jpeg(clean, tmp)
    return Path(clean_path)


def mask_frame(background_image, frame, out_dir=None, params: MaskParams = MaskParams(), background_path=None) -> tuple[Path, Path]:
    """Both of the loop's commands for one frame, reading the frame once.

    The mask is quantised in memory exactly as the second command reads it back from the file, so
    ``NAME-clean.jpg`` is the same as the loop writes without reading ``NAME-mask.tiff`` again.

    Parameters
    ----------
    background_image : wand.image.Image
        The background, read once for all frames.
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
    with engine.read_tiff(frame) as fr:
        engine.check_same_size(background_image, fr, frame, background_path)
        with engine.mask_image(background_image, fr, params) as mask:
            with atomic_path(mask_path) as tmp:
                engine.save_tiff(mask, tmp)
            with engine.as_read_back(mask) as read_back, engine.clean_image(fr, read_back) as clean:
                with atomic_path(clean_path) as tmp:
                    engine.save_jpeg(clean, tmp)
    return mask_path, clean_path


def mask_frames(
    frames: Iterable[str | os.PathLike],
    background: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    params: MaskParams = MaskParams(),
    progress: Callable[[Path], None] | None = None,
    on_error: Callable[[MagicmaskError], None] | None = None,
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
        Called with each frame once its outputs are written.
    on_error : callable, optional
        Called with the error of a frame that fails; the other frames are still processed. Without
        it, the first error is raised once every other frame is done.

    Returns
    -------
    list of (Path, Path)
        The outputs written, in frame order.
    """
    frames = select_frames(frames)
    if not frames:
        raise MagicmaskError("no frames to mask", hint="pass TIFF frames, e.g. t*.tiff")
    written, errors = [], []
    with engine.read_tiff(background, "background") as bg:
        for frame in frames:
            try:
                written.append(mask_frame(bg, frame, out_dir, params, background))
            except MagicmaskError as exc:
                if on_error is None:
                    errors.append(exc)
                else:
                    on_error(exc)
            if progress is not None:
                progress(frame)
    if errors:
        raise errors[0]
    return written
