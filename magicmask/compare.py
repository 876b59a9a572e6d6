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

    @property
    def status(self) -> str:
        return "identical" if self.identical else "differs"


def compare_files(ours: str | os.PathLike, reference: str | os.PathLike, name: str | None = None) -> Comparison:
    """Compare ``ours`` with ``reference`` exactly.

    Identical means: same size, bit depth, colour space and alpha, the same pixels, and for JPEG
    files the same bytes. ``differing_pixels`` counts pixels where any channel differs.
    """
    ours, reference = Path(ours), Path(reference)
    name = name or ours.name
    if not ours.exists():
        return Comparison(name, False, 0, 0, "magicmask wrote no file")
    if not reference.exists():
        return Comparison(name, False, 0, 0, "convert wrote no file")
    a, b = image_facts(ours), image_facts(reference)
    total = b.size[0] * b.size[1]
    if a.size != b.size:
        return Comparison(name, False, total, total, f"size {a.form} vs {b.form}")
    differing = int(np.any(a.pixels != b.pixels, axis=-1).sum())
    notes = []
    if a.form != b.form:
        notes.append(f"form {a.form} vs {b.form}")
    if _coder(reference) == "jpeg" and ours.read_bytes() != reference.read_bytes():
        notes.append("JPEG bytes differ")
    return Comparison(name, differing == 0 and not notes, differing, total, "; ".join(notes))
