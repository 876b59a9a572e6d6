"""Exact comparison of two image files: pixels and form (size, depth, channels) and, for JPEGs, bytes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from magicmask.errors import MagicmaskError

_CODERS = {b"II*\x00": "tiff", b"MM\x00*": "tiff", b"\xff\xd8\xff": "jpeg", b"\x89PNG": "png"}


@dataclass(frozen=True)
class ImageFacts:
    """What identity is judged on: size, depth, channels, and the pixels at 16 bits."""

    size: tuple[int, int]
    depth: int
    colorspace: str
    alpha: bool
    pixels: np.ndarray  # (height, width, 4) uint16

    @property
    def form(self) -> str:
        kind = "gray" if self.colorspace == "gray" else self.colorspace
        return f"{self.size[0]}x{self.size[1]} {self.depth}-bit {kind}{'+alpha' if self.alpha else ''}"


def _coder(path: Path) -> str:
    head = path.read_bytes()[:4]
    for magic, coder in _CODERS.items():
        if head.startswith(magic):
            return coder
    raise MagicmaskError("not a TIFF, JPEG or PNG image", path, "compare image files only")


def image_facts(path: str | os.PathLike) -> ImageFacts:
    """Decode ``path`` (TIFF, JPEG or PNG, chosen by its first bytes) with ImageMagick."""
    from wand.image import Image

    path = Path(path)
    with Image(blob=path.read_bytes(), format=_coder(path)) as image:
        facts = dict(size=tuple(image.size), depth=image.depth, colorspace=image.colorspace, alpha=bool(image.alpha_channel))
        with image.clone() as copy:
            copy.depth = 16
            raw = copy.make_blob("rgba")
    width, height = facts["size"]
    pixels = np.frombuffer(raw, dtype="<u2").reshape(height, width, 4)
    return ImageFacts(pixels=pixels, **facts)


@dataclass(frozen=True)
class Comparison:
    """The result of comparing one output with its reference."""

    name: str
    identical: bool
    differing_pixels: int
    total_pixels: int
    note: str = ""
    engine: str = ""
    readable: bool = True
    """False when either file could not be decoded (``note`` then says which, and why)."""

    @property
    def status(self) -> str:
        return "identical" if self.identical else "differs"


def _unreadable(label: str, exc: BaseException) -> str:
    """Why a file cannot be decoded, in one short line (ImageMagick's reason without its source location)."""
    if isinstance(exc, MagicmaskError):
        reason = exc.message
    elif isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
    else:
        reason = str(exc).split(" `")[0]  # "Not enough data for scanline 0. `PackBitsDecode' @ error/tiff.c/..."
    reason = " ".join(reason.split()).rstrip(".") or type(exc).__name__
    return f"{label}: {reason[:160]}"


def _facts_or_reason(path: Path, label: str) -> ImageFacts | str:
    from wand.exceptions import WandException

    try:
        return image_facts(path)
    except (MagicmaskError, WandException, OSError, ValueError) as exc:  # ValueError: pixels of the wrong length
        return _unreadable(label, exc)


def compare_files(ours: str | os.PathLike, reference: str | os.PathLike, name: str | None = None) -> Comparison:
    """Compare ``ours`` with ``reference`` exactly.

    Identical means: same size, bit depth, colour space and alpha, the same pixels, and for JPEG
    files the same bytes. ``differing_pixels`` counts pixels where any channel differs.

    A file that cannot be decoded (damaged, truncated, not an image) is never raised: the result is
    not identical, ``readable`` is False and ``note`` says ``cannot read: REASON`` (``ours``) or
    ``cannot read the reference: REASON``.
    """
    ours, reference = Path(ours), Path(reference)
    name = name or ours.name
    if not ours.exists():
        return Comparison(name, False, 0, 0, "magicmask wrote no file")
    if not reference.exists():
        return Comparison(name, False, 0, 0, "convert wrote no file")
    a, b = _facts_or_reason(ours, "cannot read"), _facts_or_reason(reference, "cannot read the reference")
    reasons = [facts for facts in (a, b) if isinstance(facts, str)]
    if reasons:
        return Comparison(name, False, 0, 0, "; ".join(reasons), readable=False)
    total = b.size[0] * b.size[1]
    if a.size != b.size:
        return Comparison(name, False, total, total, f"size {a.form} vs {b.form}")
    differing = int(np.any(a.pixels != b.pixels, axis=-1).sum())
    notes = []
    if a.form != b.form:
        notes.append(f"form {a.form} vs {b.form}")
    if reference.read_bytes()[:3] == b"\xff\xd8\xff" and ours.read_bytes() != reference.read_bytes():
        notes.append("JPEG bytes differ")
    return Comparison(name, differing == 0 and not notes, differing, total, "; ".join(notes))
