"""Motion data from the masks: how much of each frame is foreground, where, and how much it changed.

For every mask (a keyframe's ``NAME-mask.tiff``, or every frame of ``magicmask video``), one row of
``motion.tsv``::

    frame   time      area      x        y        left  top  right  bottom  motion
    t01     0.000000  0.031512  512.204  301.877  470   210  553    395
    t02     0.400000  0.030877  560.910  300.112  518   209  601    394     0.014530

- ``area``: the mask-weighted share of the frame, 0-1 (the mean of the mask, white = 1);
- ``x``, ``y``: the mask-weighted centroid, in pixels from the top left pixel's centre (empty when the
  mask is black everywhere);
- ``left top right bottom``: the bounding box of the pixels where the mask is at least 50%, first and
  last column and row, inclusive (empty when there are none);
- ``motion``: the quantity of motion, the mean absolute change of the mask from the previous row, 0-1
  (empty on the first row).

The numbers are measured where the mask is made (in the engine's pass over each frame), on the mask's own
samples (8- or 16-bit); only the part of the mask that is not black is kept until the next row's motion is
known. :func:`plot` draws ``motion.png`` and :func:`motiongram` the motiongrams (with matplotlib, the
``plot`` extra).
"""

from __future__ import annotations

import io
import math
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from magicmask.errors import MagicmaskError

MOTION_NAME = "motion.tsv"
PLOT_NAME = "motion.png"
COLUMNS = ("frame", "time", "area", "x", "y", "left", "top", "right", "bottom", "motion")
PLOT_HINT = "pip install 'magicmask[plot]' (or pip install matplotlib)"


@dataclass(frozen=True)
class Measure:
    """One mask's numbers, and the part of it that is not black (kept for the next row's motion)."""

    size: tuple[int, int]
    """``(rows, columns)`` of the mask."""
    top: int
    """The mask's white: 255 for 8-bit masks, 65535 for 16-bit ones."""
    total: int
    """The sum of the mask's samples."""
    x: float | None
    y: float | None
    box: tuple[int, int, int, int] | None
    """``(left, top, right, bottom)`` of the pixels at 50% or more, inclusive; None when there are none."""
    origin: tuple[int, int] = (0, 0)
    """``(row, column)`` of ``crop``'s first sample in the mask."""
    crop: np.ndarray | None = None
    """The mask inside the bounding box of its non-zero samples (2-D); None when black, or once let go."""

    @property
    def area(self) -> float:
        rows, columns = self.size
        return self.total / (self.top * rows * columns)


def gray(mask: np.ndarray) -> np.ndarray:
    """A mask's samples as one 2-D plane: the gray channel, or the rounded mean of an RGB mask's channels
    (a chain without ``-threshold`` keeps colour); an alpha channel (gray+alpha, RGBA) is not part of it."""
    if mask.ndim == 2:
        return mask
    if mask.shape[2] in (1, 2):
        return mask[:, :, 0]
    return np.round(mask[:, :, :3].mean(axis=2)).astype(mask.dtype)


def _span(values: np.ndarray) -> tuple[int, int] | None:
    """``(first, last + 1)`` of the non-zero entries of a 1-D array, or None."""
    found = np.flatnonzero(values)
    return (int(found[0]), int(found[-1]) + 1) if found.size else None


def measure(mask: np.ndarray) -> Measure:
    """The :class:`Measure` of a mask's samples (``(rows, columns)`` or ``(rows, columns, channels)``, 8 or 16 bits).

    Sums over rows first, then over the columns of the rows that are not black, and the rest on the
    bounding box of what is not black: a few milliseconds for a 1080p mask.

    Raises
    ------
    MagicmaskError
        For samples that are not 8- or 16-bit.
    """
    plane = gray(np.asarray(mask))
    if plane.dtype not in (np.uint8, np.uint16):
        raise MagicmaskError(f"cannot measure a mask of {plane.dtype} samples", hint="masks are 8- or 16-bit")
    top = 255 if plane.dtype == np.uint8 else 65535
    size = (int(plane.shape[0]), int(plane.shape[1]))
    by_row = plane.sum(axis=1, dtype=np.uint64)
    rows = _span(by_row)
    if rows is None:
        return Measure(size, top, 0, None, None, None)
    (r0, r1) = rows
    band = plane[r0:r1]
    by_column = band.sum(axis=0, dtype=np.uint64)
    c0, c1 = _span(by_column)
    crop = np.array(band[:, c0:c1])  # a copy: the mask itself is not kept
    total = int(by_row.sum())
    # exact integer moments, no BLAS call; they are at most top * rows * columns * max(rows, columns), which
    # fits 64 bits up to about 8K frames: beyond, floating point (as near as the float sums get)
    exact = top * size[0] * size[1] * max(size) < 2**63
    kind = np.uint64 if exact else np.float64
    x = (by_column[c0:c1].astype(kind) * np.arange(c0, c1, dtype=kind)).sum().item() / total
    y = (by_row[r0:r1].astype(kind) * np.arange(r0, r1, dtype=kind)).sum().item() / total
    half = (top + 1) // 2  # 128 of 255, 32768 of 65535: at least 50%
    inside_rows = _span(crop.max(axis=1) >= half)
    box = None
    if inside_rows is not None:
        inside_columns = _span(crop.max(axis=0) >= half)
        box = (c0 + inside_columns[0], r0 + inside_rows[0], c0 + inside_columns[1] - 1, r0 + inside_rows[1] - 1)
    return Measure(size, top, total, x, y, box, (r0, c0), crop)


def motion_between(before: Measure, after: Measure) -> float:
    """The quantity of motion from ``before`` to ``after``: the mean absolute change of the mask, 0-1.

    ``|a - b| = a + b - 2 min(a, b)``: the sums are known, and ``min`` is not zero only where both
    masks' non-black parts overlap, so only that overlap is read.
    """
    if before.size != after.size:
        raise MagicmaskError(f"masks of different sizes ({before.size[1]}x{before.size[0]}, {after.size[1]}x{after.size[0]})", hint="measure the masks of one video")
    if before.top != after.top:
        raise MagicmaskError(f"masks of different depths ({before.top.bit_length()}- and {after.top.bit_length()}-bit)", hint="measure the masks of one video")
    if (before.total and before.crop is None) or (after.total and after.crop is None):
        raise MagicmaskError("a mask's samples were let go before its motion was measured", hint="measure the masks in order (see Track)")
    common = 0
    if before.crop is not None and after.crop is not None:
        (ar, ac), (br, bc) = before.origin, after.origin
        r0, c0 = max(ar, br), max(ac, bc)
        r1 = min(ar + before.crop.shape[0], br + after.crop.shape[0])
        c1 = min(ac + before.crop.shape[1], bc + after.crop.shape[1])
        if r0 < r1 and c0 < c1:
            a = before.crop[r0 - ar : r1 - ar, c0 - ac : c1 - ac]
            b = after.crop[r0 - br : r1 - br, c0 - bc : c1 - bc]
            common = int(np.minimum(a, b).sum(dtype=np.uint64))
    rows, columns = before.size
    return (before.total + after.total - 2 * common) / (before.top * rows * columns)


class Track:
    """Measures arriving in any order (frames finish out of order), each row's motion computed as soon as
    the row before it is there; a mask's kept part is let go once the next row's motion is known."""

    def __init__(self):
        self.measures: dict[int, Measure] = {}
        self.motion: dict[int, float] = {}
        self._next = 1
        self._lock = threading.Lock()

    def add(self, index: int, found: Measure) -> None:
        with self._lock:
            self.measures[index] = found
            while self._next in self.measures and self._next - 1 in self.measures:
                before = self.measures[self._next - 1]
                self.motion[self._next] = motion_between(before, self.measures[self._next])
                self.measures[self._next - 1] = replace(before, crop=None)
                self._next += 1

    def __contains__(self, index: int) -> bool:
        return index in self.measures

    def rows(self, names: Sequence[str], times: Sequence[float] | None) -> list[dict]:
        """One row per measure, in order, named ``names`` (one per measure)."""
        if len(names) != len(self.measures) or set(self.measures) != set(range(len(names))):
            raise MagicmaskError(f"motion data for {len(self.measures)} of {len(names)} frames", hint="every frame must be measured")
        return [row(name, None if times is None or index >= len(times) else times[index], self.measures[index], self.motion.get(index)) for index, name in enumerate(names)]


def row(frame: str, time: float | None, found: Measure, motion: float | None) -> dict:
    """One row of ``motion.tsv`` as a dict of :data:`COLUMNS`."""
    left, top, right, bottom = found.box if found.box is not None else (None,) * 4
    return {"frame": frame, "time": time, "area": found.area, "x": found.x, "y": found.y, "left": left, "top": top, "right": right, "bottom": bottom, "motion": motion}


_FORMATS = {"time": "{:.6f}", "area": "{:.6f}", "x": "{:.3f}", "y": "{:.3f}", "motion": "{:.6f}"}


def tsv_bytes(rows: Iterable[dict]) -> bytes:
    """``motion.tsv``: a header of :data:`COLUMNS`, then one tab-separated line per row (empty cells for None)."""
    lines = ["\t".join(COLUMNS)]
    for values in rows:
        cells = []
        for column in COLUMNS:
            value = values[column]
            if value is None or (isinstance(value, float) and math.isnan(value)):
                cells.append("")
            else:
                cells.append(_FORMATS[column].format(value) if column in _FORMATS else str(value))
        lines.append("\t".join(cells))
    return ("\n".join(lines) + "\n").encode()


def read_tsv(path: str | os.PathLike) -> list[dict]:
    """The rows of a ``motion.tsv`` (numbers as float or int, empty cells as None)."""
    text = Path(path).read_text()
    lines = text.splitlines()
    if not lines or tuple(lines[0].split("\t")) != COLUMNS:
        raise MagicmaskError("not a motion table (its header is not " + " ".join(COLUMNS) + ")", path, "pass a motion.tsv magicmask wrote")
    rows = []
    for line in lines[1:]:
        cells = line.split("\t")
        values: dict = {}
        for column, cell in zip(COLUMNS, cells):
            if column == "frame":
                values[column] = cell
            elif cell == "":
                values[column] = None
            elif column in ("left", "top", "right", "bottom"):
                values[column] = int(cell)
            else:
                values[column] = float(cell)
        rows.append(values)
    return rows


# --------------------------------------------------------------------------------------------------
# pictures (matplotlib: the plot extra)


def require_matplotlib(what: str = "the motion plot"):
    """matplotlib's ``Figure`` (drawn without pyplot: no window, no global state), or the one-line error
    saying what to install."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise MagicmaskError(f"{what} needs matplotlib, which is not installed", hint=PLOT_HINT) from None
    return Figure


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def plot(rows: Sequence[dict], size: tuple[int, int], title: str = "") -> bytes:
    """``motion.png``: the area and quantity of motion over time, and the path of the centroid, as PNG bytes.

    ``size`` is the frames' ``(width, height)`` (the centroid's frame).
    """
    Figure = require_matplotlib()
    times = np.array([r["time"] if r["time"] is not None else index for index, r in enumerate(rows)], dtype=np.float64)
    unit = "s" if all(r["time"] is not None for r in rows) else "frame"
    area = np.array([r["area"] for r in rows], dtype=np.float64)
    motion = np.array([np.nan if r["motion"] is None else r["motion"] for r in rows], dtype=np.float64)
    xs = np.array([np.nan if r["x"] is None else r["x"] for r in rows], dtype=np.float64)
    ys = np.array([np.nan if r["y"] is None else r["y"] for r in rows], dtype=np.float64)
    figure = Figure(figsize=(11, 5), layout="constrained")
    grid = figure.add_gridspec(2, 2, width_ratios=(1.5, 1))
    top = figure.add_subplot(grid[0, 0])
    top.plot(times, area, color="tab:blue", marker="." if len(rows) <= 200 else None)
    top.set_ylabel("area (share of frame)")
    top.set_ylim(bottom=0)
    top.grid(alpha=0.3)
    bottom = figure.add_subplot(grid[1, 0], sharex=top)
    bottom.plot(times, motion, color="tab:red", marker="." if len(rows) <= 200 else None)
    bottom.set_ylabel("quantity of motion")
    bottom.set_xlabel(f"time ({unit})")
    bottom.set_ylim(bottom=0)
    bottom.grid(alpha=0.3)
    path = figure.add_subplot(grid[:, 1])
    width, height = size
    path.set_xlim(0, width)
    path.set_ylim(height, 0)  # image coordinates: y down
    path.set_aspect("equal")
    path.plot(xs, ys, color="0.6", linewidth=1)
    shown = path.scatter(xs, ys, c=times, cmap="viridis", s=14, zorder=2)
    figure.colorbar(shown, ax=path, label=f"time ({unit})", shrink=0.8)
    path.set_title("centroid path", fontsize=10)
    path.set_xlabel("x (pixels)")
    path.set_ylabel("y (pixels)")
    if title:
        figure.suptitle(title, fontsize=11)
    return _png(figure)


class Motiongram:
    """The horizontal and vertical motiongrams of a stream of masks, in bounded memory.

    For each frame: the mean of the mask over its rows (one value per column: the horizontal motiongram)
    and over its columns (one value per row: the vertical one), 0-1, stacked along time. When more than
    ``2 * limit`` frames are held, neighbouring frames are averaged in pairs, so a long video keeps at
    most ``2 * limit`` lines (each then the mean of a run of frames).
    """

    def __init__(self, limit: int = 2048):
        self.limit = limit
        self.columns: list[np.ndarray] = []
        self.rows: list[np.ndarray] = []
        self.per_line = 1  # frames per line
        self.frames = 0
        self._partial: list[tuple[np.ndarray, np.ndarray]] = []

    @staticmethod
    def lines(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(mean over rows, mean over columns)`` of one mask, 0-1 (float32)."""
        plane = gray(np.asarray(mask))
        top = 255.0 if plane.dtype == np.uint8 else 65535.0
        return (plane.mean(axis=0, dtype=np.float64) / top).astype(np.float32), (plane.mean(axis=1, dtype=np.float64) / top).astype(np.float32)

    def add(self, lines: tuple[np.ndarray, np.ndarray]) -> None:
        self.frames += 1
        self._partial.append(lines)
        if len(self._partial) < self.per_line:
            return
        self.columns.append(np.mean([c for c, _ in self._partial], axis=0, dtype=np.float32))
        self.rows.append(np.mean([r for _, r in self._partial], axis=0, dtype=np.float32))
        self._partial = []
        if len(self.columns) >= 2 * self.limit:
            self.columns = [(a + b) / 2 for a, b in zip(self.columns[::2], self.columns[1::2])]
            self.rows = [(a + b) / 2 for a, b in zip(self.rows[::2], self.rows[1::2])]
            self.per_line *= 2

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``(horizontal, vertical)``: ``(lines, width)`` and ``(height, lines)``, time growing down, resp. right."""
        columns, rows = list(self.columns), list(self.rows)
        if self._partial:
            columns.append(np.mean([c for c, _ in self._partial], axis=0, dtype=np.float32))
            rows.append(np.mean([r for _, r in self._partial], axis=0, dtype=np.float32))
        if not columns:
            raise MagicmaskError("no frame for a motiongram", hint="check that the video decodes")
        return np.stack(columns), np.stack(rows, axis=1)

    def picture(self, start: float, duration: float, title: str = "", unit: str = "s") -> bytes:
        """The two motiongrams as one PNG (matplotlib), time along the x axis of both: ``duration`` seconds from
        ``start`` (with ``unit="frame"``, ``duration`` frames: when the frames' times are not known)."""
        Figure = require_matplotlib("the motiongram")
        horizontal, vertical = self.arrays()
        width, height = horizontal.shape[1], vertical.shape[0]
        figure = Figure(figsize=(11, 7), layout="constrained")
        axes = figure.subplots(2, 1, sharex=True, height_ratios=(width, height))
        extent = (start, start + duration, width, 0)
        shown = axes[0].imshow(horizontal.T, aspect="auto", cmap="magma", vmin=0, extent=extent, interpolation="antialiased")
        axes[0].set_ylabel("x (pixels)")
        axes[0].set_title("horizontal motiongram: the mask's mean over each column", fontsize=10)
        lower = axes[1].imshow(vertical, aspect="auto", cmap="magma", vmin=0, extent=(start, start + duration, height, 0), interpolation="antialiased")
        axes[1].set_ylabel("y (pixels)")
        axes[1].set_xlabel("time (s)" if unit == "s" else unit)
        axes[1].set_title("vertical motiongram: the mask's mean over each row", fontsize=10)
        for image, axis in ((shown, axes[0]), (lower, axes[1])):  # each panel on its own scale, with its own bar
            figure.colorbar(image, ax=axis, label="mean of the mask (0-1)", shrink=0.9)
        if title:
            figure.suptitle(title, fontsize=11)
        return _png(figure)
