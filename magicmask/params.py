"""The tuning values of the blog's mask chain, in ImageMagick's own syntax.

``convert BG FRAME -compose difference -composite -threshold 5% -blur 0x3 -threshold 20% -blur 0x3``
has four values: two thresholds and two blur geometries. They are given and shown as ImageMagick
spells them (``5%``, ``0x3``) and parsed the way ImageMagick 6 parses them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from magicmask.errors import MagicmaskError

QUANTUM_RANGE = 65535  # ImageMagick Q16

_NUMBER = r"[+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"


def parse_threshold(text: str) -> float:
    """Parse a ``-threshold`` value into a fraction of QuantumRange+1.

    ``5%`` is 5% of (QuantumRange+1) = 3276.8 in Q16, as ImageMagick's ``StringToDoubleInterval``
    computes it; a plain number is an absolute quantum value (``3276.8``).

    Parameters
    ----------
    text : str
        ``N%`` or an absolute value ``N`` (0..65536).

    Returns
    -------
    float
        The threshold as a fraction of QuantumRange+1, the unit Wand's ``Image.threshold`` takes.
    """
    match = re.fullmatch(rf"\s*({_NUMBER})\s*(%?)\s*", str(text))
    if not match:
        raise MagicmaskError(f"threshold {text!r} is not a percentage or a number", hint="use ImageMagick's syntax, e.g. 5%; the first threshold may also be auto or adaptive")
    value = float(match.group(1))
    fraction = value / 100.0 if match.group(2) else value / (QUANTUM_RANGE + 1.0)
    if fraction > 1.0:
        raise MagicmaskError(f"threshold {text!r} is above 100%", hint="use a value between 0% and 100%")
    return fraction


def parse_blur(text: str) -> tuple[float, float]:
    """Parse a ``-blur`` geometry ``RADIUSxSIGMA`` (or ``RADIUS``) into ``(radius, sigma)``.

    As in ImageMagick 6, a missing sigma is 1.0 and radius 0 lets ImageMagick pick the kernel width.
    """
    match = re.fullmatch(rf"\s*({_NUMBER})?\s*(?:[xX]\s*({_NUMBER}))?\s*", str(text))
    if not match or (match.group(1) is None and match.group(2) is None):
        raise MagicmaskError(f"blur {text!r} is not a geometry", hint="use ImageMagick's syntax RADIUSxSIGMA, e.g. 0x3")
    radius = float(match.group(1)) if match.group(1) is not None else 0.0
    sigma = float(match.group(2)) if match.group(2) is not None else 1.0
    if sigma <= 0 and radius <= 0:
        raise MagicmaskError(f"blur {text!r} blurs nothing", hint="give a sigma above 0, e.g. 0x3")
    return radius, sigma


MAP_OPTIONS = ("-colorspace", "gray", "{map}", "-compose", "minus_src", "-composite", "-threshold", "0")
"""What replaces ``-threshold T1`` when a threshold map is given: the difference's intensity as a gray
image (``ClampToQuantum(0.212656*R + 0.715158*G + 0.072186*B)``), the map subtracted from it (clipped at
0), and every pixel still above 0, i.e. whose intensity exceeds the map's value there, set to white."""


@dataclass(frozen=True)
class MaskParams:
    """The blog's mask chain: ``-threshold T1 -blur B1 -threshold T2 -blur B2``.

    Values are kept in ImageMagick's syntax and validated on creation.

    ``threshold_map``, a gray TIFF of the frames' size (see :mod:`magicmask.thresholds`), replaces the
    first threshold by a per-pixel one (``threshold`` is then not used)::

        ... -compose difference -composite -colorspace gray MAP -compose minus_src -composite -threshold 0 -blur B1 ...

    A pixel of the difference is foreground when its intensity, rounded to Quantum, exceeds the map's
    value there (``257 * m`` for an 8-bit map).
    """

    threshold: str = "5%"
    blur: str = "0x3"
    threshold2: str = "20%"
    blur2: str = "0x3"
    threshold_map: str | None = None

    def __post_init__(self):
        parse_threshold(self.threshold)
        parse_threshold(self.threshold2)
        parse_blur(self.blur)
        parse_blur(self.blur2)
        if self.threshold_map is not None and not str(self.threshold_map).strip():
            raise MagicmaskError("the threshold map's path is empty", hint="give the map's TIFF file, e.g. threshold.tiff")

    @property
    def steps(self) -> list[tuple[str, object]]:
        """The chain after the difference, as ``[('threshold', fraction), ('blur', (radius, sigma)), ...]``.

        With a threshold map the first step is ``('threshold_map', path)``.
        """
        first = ("threshold_map", str(self.threshold_map)) if self.threshold_map is not None else ("threshold", parse_threshold(self.threshold))
        return [
            first,
            ("blur", parse_blur(self.blur)),
            ("threshold", parse_threshold(self.threshold2)),
            ("blur", parse_blur(self.blur2)),
        ]

    def convert_options(self) -> list[str]:
        """The chain as ``convert`` arguments."""
        if self.threshold_map is not None:
            first = [option.format(map=self.threshold_map) for option in MAP_OPTIONS]
        else:
            first = ["-threshold", self.threshold]
        return [*first, "-blur", self.blur, "-threshold", self.threshold2, "-blur", self.blur2]
