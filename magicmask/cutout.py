"""Transparent cut-outs: a frame's own colours with its mask as the alpha channel.

``NAME-cutout.png`` (``run --cutout``) holds the keyframe's samples as they are (gray or RGB, 8 or 16 bits:
the frame's depth) and the mask as alpha, at that depth: where the mask is white the figure is opaque,
where it is black transparent, and the blurred edge is a soft one. The clean image multiplies by the
mask onto black instead; editors and compositing tools expect this.
"""

from __future__ import annotations

import io
import os

import numpy as np

from magicmask.errors import MagicmaskError
from magicmask.motion import gray

CUTOUT_SUFFIX = "-cutout.png"


def at_depth(plane: np.ndarray, dtype) -> np.ndarray:
    """A mask plane at another depth: 8 -> 16 bits times 257 (exact), 16 -> 8 bits as ImageMagick scales
    Quantum to char (rounded)."""
    dtype = np.dtype(dtype)
    if plane.dtype == dtype:
        return plane
    if dtype == np.uint16:
        return plane.astype(np.uint16) * 257
    wide = plane.astype(np.uint32)
    return ((wide + 128 - ((wide + 128) >> 8)) >> 8).astype(np.uint8)


def colour(samples: np.ndarray) -> np.ndarray:
    """A frame's colour channels (gray or RGB), without any alpha it has: ``(rows, columns, 1 or 3)``."""
    if samples.ndim == 2:
        return samples[:, :, None]
    return samples[:, :, :1] if samples.shape[2] in (1, 2) else samples[:, :, :3]


def cutout_samples(frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The frame's colour samples with the mask, at the frame's depth, as a last (alpha) channel.

    Raises
    ------
    MagicmaskError
        When the frame and the mask differ in size, or the frame is not 8- or 16-bit.
    """
    frame = colour(np.asarray(frame))
    if frame.dtype not in (np.uint8, np.uint16):
        raise MagicmaskError(f"cannot cut out a frame of {frame.dtype} samples", hint="frames are 8- or 16-bit")
    plane = gray(np.asarray(mask))
    if plane.shape != frame.shape[:2]:
        raise MagicmaskError(f"the mask is {plane.shape[1]}x{plane.shape[0]} but the frame {frame.shape[1]}x{frame.shape[0]}")
    out = np.empty(frame.shape[:2] + (frame.shape[2] + 1,), dtype=frame.dtype)
    out[:, :, :-1] = frame
    out[:, :, -1] = at_depth(plane, frame.dtype)
    return out


def png_bytes(samples: np.ndarray) -> bytes:
    """PNG bytes of gray+alpha or RGBA samples, 8 or 16 bits (fast settings: zlib level 1, RLE, the Sub filter)."""
    import imagecodecs

    return imagecodecs.png_encode(np.ascontiguousarray(samples), level=1, strategy=3, filter=16)


def cutout_png(frame: np.ndarray, mask: np.ndarray) -> bytes:
    """``NAME-cutout.png``'s bytes (see :func:`cutout_samples`)."""
    return png_bytes(cutout_samples(frame, mask))


def read_samples(path: str | os.PathLike, data: bytes | None = None) -> np.ndarray:
    """The first image of a TIFF file (or of its bytes) as ``(rows, columns, channels)`` samples."""
    import tifffile

    try:
        samples = np.asarray(tifffile.imread(io.BytesIO(data) if data is not None else path, key=0))
    except Exception as exc:
        raise MagicmaskError(f"cannot read: {exc}", path, "check that the file is a complete TIFF") from None
    if samples.ndim not in (2, 3) or samples.dtype not in (np.uint8, np.uint16):
        raise MagicmaskError(f"cannot read: not an image of 8- or 16-bit samples ({samples.dtype}, {samples.ndim} dimensions)", path, "check that the file is a complete TIFF")
    if samples.ndim == 3 and samples.shape[0] in (3, 4) and samples.shape[-1] not in (1, 2, 3, 4):
        samples = np.moveaxis(samples, 0, -1)  # planar
    return samples if samples.ndim == 3 else samples[:, :, None]
