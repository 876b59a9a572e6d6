"""Thresholds from the video's own noise: an automatic ``-threshold`` and a per-pixel threshold map.

The blog's chain starts with ``-threshold 5%`` on the intensity of ``|frame - background|``. On real
footage, camera noise, compression and moving leaves pass 5% and become foreground. Both thresholds here
measure that noise on the same quantity the chain thresholds, the **difference's intensity**::

    g = ClampToQuantum(0.212656*|R| + 0.715158*|G| + 0.072186*|B|)     (of frame - background, in Quantum)

which is what ``convert BG FRAME -compose difference -composite -colorspace gray`` stores. The
background is the frames' centre, so ``g`` is an absolute deviation and its median a median absolute
deviation (MAD): a robust noise level that moving objects, covering a pixel less than half of the time,
do not sway. Both thresholds are ``K`` times a MAD (:data:`K` = 4, about 2.7 standard deviations of
Gaussian noise, whose MAD is 0.6745 sigma):

- **auto** (:func:`auto_threshold`): one number for the run, ``K`` times the median of ``g`` over every
  pixel of the keyframes against their backgrounds, given to ``-threshold`` as an absolute Quantum value
  (``-threshold 3084``: an integer, parsed identically by ``convert``, Wand and the native engine), or the
  blog's ``5%`` itself when that is higher. The rest of the blog's commands are unchanged.
- **adaptive** (:func:`threshold_map`): per pixel, ``K`` times the median over the (sampled) frames of the
  video of that pixel's ``g``, floored by ``K`` times the median of ``g`` over all pixels of those frames
  (a pixel that never moves in the samples still gets the camera's noise level), and never below the
  blog's 5% (noise only raises the threshold; an 8-bit map's lowest value, 13, stands for 5.1%, so on a clean
  8-bit video the masks are the blog's but for pixels whose difference lies between 5% and 5.1%), in the frames' sample
  units (``g`` scaled to 8 bits with ScaleQuantumToChar for 8-bit frames), clipped to the range; then each
  pixel takes the largest value of its 3x3 neighbourhood. A moving background moves in space: a leaf or an
  edge that a shaking camera shifts by a pixel passes over the pixels next to where it was seen, so a pixel's
  own history understates its spread where the background moves, and nowhere else (a still neighbourhood keeps
  its noise level). The neighbourhood is the smallest there is. It is
  written beside the background as ``threshold.tiff`` (``NAME-threshold.tiff`` per keyframe with a
  window): a gray TIFF of the keyframes' size, depth and compression. The masks are then what::

      convert BG FRAME -compose difference -composite -colorspace gray threshold.tiff \\
          -compose minus_src -composite -threshold 0 -blur 0x3 -threshold 20% -blur 0x3 NAME-mask.tiff
      convert FRAME NAME-mask.tiff -compose multiply -flatten NAME-clean.jpg

  write: a pixel is foreground when ``g`` exceeds the map's value there (``257 * m`` for an 8-bit map);
  ``MaskParams(threshold_map=...)`` gives exactly these masks on both engines.

Cost. The map rides along with the median background (:func:`median_and_map`): it is computed from the
frames the median already holds (the same evenly sampled frames, no second pass over the video), as one
more lower median, of one channel instead of three (counted, for 8-bit frames, by the same kernel).
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from magicmask.errors import MagicmaskError
from magicmask.files import MAP_NAME, MAP_SUFFIX  # noqa: F401  (part of this module's API)

from magicmask.statistics import BAND_BYTES, DEFAULT_SAMPLES, lower_median, read_frame, taken, window_statistics, write_background

K = 4
"""The multiple of the median absolute deviation both thresholds use."""

DEFAULT_FLOOR = "5%"
"""Neither threshold goes below the blog's own: noise only raises it."""


def difference_intensity(frame: np.ndarray, background: np.ndarray) -> np.ndarray:
    """The intensity of ``|frame - background|`` per pixel, ``(height, width, 1)`` in the frames' dtype.

    ``ClampToQuantum(0.212656*|R| + 0.715158*|G| + 0.072186*|B|)`` on Quantum values, as
    ``-compose difference -composite -colorspace gray`` stores it; scaled to 8 bits (ScaleQuantumToChar)
    for 8-bit frames. Gray frames stand for R = G = B; alpha is ignored.

    Raises
    ------
    MagicmaskError
        When the two differ in size, channels or dtype.
    """
    if frame.shape != background.shape or frame.dtype != background.dtype:
        raise MagicmaskError(
            f"frame is {frame.shape[1]}x{frame.shape[0]}x{frame.shape[2]} {frame.dtype} but the background is "
            f"{background.shape[1]}x{background.shape[0]}x{background.shape[2]} {background.dtype}",
            hint="use a background of the frames' size, depth and channels",
        )
    from magicmask.engines.native import kernels as _load_kernels

    eight = frame.dtype == np.uint8
    out = np.empty(frame.shape[:2], dtype=frame.dtype)
    scale = 257 if eight else 1
    _load_kernels().difference_intensity(np.ascontiguousarray(background), scale, np.ascontiguousarray(frame), scale, eight, out)
    return out[:, :, None]


def _histogram(values: Iterable[np.ndarray], bins: int) -> np.ndarray:
    counts = np.zeros(bins, dtype=np.int64)
    for value in values:
        counts += np.bincount(value.ravel(), minlength=bins)
    return counts


def _lower_median_of(counts: np.ndarray) -> int:
    """``sorted(values)[(n - 1) // 2]`` of the values a histogram counts."""
    total = int(counts.sum())
    if total == 0:
        raise MagicmaskError("no pixels to measure the noise on")
    return int(np.searchsorted(np.cumsum(counts), (total - 1) // 2 + 1))


def noise_level(pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> int:
    """The median absolute deviation of the difference's intensity, in Quantum (0..65535).

    ``pairs`` are ``(frame, background)`` arrays; the lower median of ``g`` (see the module's notes, in
    Quantum for every depth) over all their pixels.
    """
    from magicmask.engines.native import kernels as _load_kernels

    kernels = _load_kernels()

    def quanta() -> Iterator[np.ndarray]:
        for frame, background in pairs:
            if frame.shape != background.shape or frame.dtype != background.dtype:
                difference_intensity(frame, background)  # raises the error naming both
            out = np.empty(frame.shape[:2], dtype=np.uint16)
            scale = 257 if frame.dtype == np.uint8 else 1
            kernels.difference_intensity(np.ascontiguousarray(background), scale, np.ascontiguousarray(frame), scale, False, out)
            yield out

    return _lower_median_of(_histogram(quanta(), 65536))


def threshold_text(quantum: int | float) -> str:
    """A ``-threshold`` value in Quantum as ImageMagick's syntax: an integer, or ``100%`` at the top."""
    quantum = int(round(quantum))
    return "100%" if quantum >= 65536 else str(max(quantum, 0))


def floor_quantum(floor: str) -> float:
    """The floor (a ``-threshold`` value, e.g. the blog's ``5%``) in Quantum, as convert parses it."""
    from magicmask.engines.native import threshold_quantum
    from magicmask.params import parse_threshold

    parse_threshold(floor)  # validates, with a message naming the value
    return threshold_quantum(floor)


def auto_threshold(backgrounds: Mapping[str | os.PathLike, str | os.PathLike], k: float = K, floor: str = DEFAULT_FLOOR) -> str:
    """The first threshold for a run, from the noise of its keyframes against their backgrounds.

    ``k`` times :func:`noise_level` of every keyframe against its background, as ``-threshold``'s value
    (``"3084"``, an absolute Quantum value: ``convert ... -threshold 3084 ...`` replays it literally).

    Parameters
    ----------
    backgrounds : mapping
        ``{keyframe: background TIFF}``, as :func:`magicmask.statistics.make_backgrounds` returns it.
    k : float
        The multiple of the median absolute deviation.
    floor : str
        The lowest threshold (``-threshold`` syntax): when ``k`` times the noise is not above it, the
        floor itself is returned (the blog's ``5%`` by default), so a clean video keeps the blog's chain.

    Returns
    -------
    str
        For :class:`magicmask.params.MaskParams` ``threshold`` and the recorded command.

    Examples
    --------
    >>> backgrounds = make_backgrounds("in.mp4", frames, "out", "median", "video")   # doctest: +SKIP
    >>> params = MaskParams(threshold=auto_threshold(backgrounds))                   # doctest: +SKIP
    """
    if not backgrounds:
        raise MagicmaskError("no keyframes to measure the noise on", hint="extract keyframes first")
    held: dict[Path, np.ndarray] = {}

    def pairs() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for frame, background in backgrounds.items():
            background = Path(background)
            if background not in held:
                held.clear()
                held[background] = read_frame(background, "background")
            yield read_frame(frame), held[background]

    return threshold_of(pairs(), k, floor)


def threshold_of(pairs: Iterable[tuple[np.ndarray, np.ndarray]], k: float = K, floor: str = DEFAULT_FLOOR) -> str:
    """The automatic threshold (see :func:`auto_threshold`) of ``(frame, background)`` arrays: ``k`` times
    their :func:`noise_level` as ``-threshold``'s value, or ``floor`` when that is not above it."""
    lowest = floor_quantum(floor)
    value = k * noise_level(pairs)
    return threshold_text(value) if value > lowest else floor


def learn_map(frames: Iterable[str | os.PathLike], background: str | os.PathLike, output: str | os.PathLike, samples: int = DEFAULT_SAMPLES, threads: int | None = None, k: float = K, floor: str = DEFAULT_FLOOR) -> Path:
    """Learn the threshold map of TIFF ``frames`` against a ``background`` TIFF and write it to ``output``.

    What ``magicmask masks FRAME... --background BG --threshold adaptive`` does: :func:`threshold_map` of at
    most ``samples`` evenly sampled frames (:func:`~magicmask.statistics.taken`), in the form of the first
    frame (gray, its depth and compression).

    Raises
    ------
    MagicmaskError
        For no frames, or frames of another size or depth than the background.
    """
    frames = [Path(frame) for frame in frames]
    if not frames:
        raise MagicmaskError("no frames to learn a threshold map from", hint="pass TIFF frames, e.g. t*.tiff")
    held = [read_frame(frame) for index, frame in enumerate(frames) if taken(index, len(frames), samples)]
    limit = threshold_map(held, read_frame(background, "background"), k, threads, floor)
    return write_threshold_map(limit, output, frames[0])


def threshold_map(frames: Sequence[np.ndarray], background: np.ndarray, k: float = K, threads: int | None = None, floor: str = DEFAULT_FLOOR) -> np.ndarray:
    """The per-pixel threshold map of ``frames`` against ``background``: ``(height, width, 1)``, their dtype.

    The largest over each pixel's 3x3 neighbourhood (:func:`neighbourhood_max`) of
    ``min(top, max(lowest, round(k * max(spread, noise))))``, with ``spread`` the per-pixel lower median
    over ``frames`` of the difference's intensity (:func:`difference_intensity`, in the frames' sample
    units), ``noise`` the lower median of it over every pixel of every frame, and ``lowest`` the smallest
    map value whose threshold is at least ``floor`` (the blog's ``5%``: 3276 for 16-bit maps, which is ``-threshold
    5%`` exactly; ``ceil(3276.8 / 257) = 13`` for 8-bit maps, 13 * 257 = 3341 in Quantum, 5.1%). Written with :func:`write_threshold_map`, it is the
    ``MAP`` of ``-colorspace gray MAP -compose minus_src -composite -threshold 0``.

    Raises
    ------
    MagicmaskError
        For no frames, or frames of another size, channels or depth than the background.
    """
    if not frames:
        raise MagicmaskError("no frames for a threshold map")
    _, spread, counts = _spread(frames, background, threads)
    return _limit(spread, counts, k, floor)


def _spread(frames: Sequence[np.ndarray], background: np.ndarray | None, threads: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(background, spread, counts)`` of ``frames``, in bands of rows, in ``threads`` threads.

    ``background`` (the frames' per-pixel lower median when None) and, per pixel, the lower median over
    the frames of the difference's intensity against it (``spread``, ``(height, width, 1)``), with the
    histogram of every intensity (``counts``). Each band of rows of every frame is read once, while it is in
    the cache: its median, its intensities and their median.
    """
    first = frames[0]
    for frame in frames:
        if frame.shape != first.shape or frame.dtype != first.dtype or (background is not None and frame.shape != background.shape):
            difference_intensity(frame, first if background is None else background)  # raises the error naming both
    if background is not None and background.dtype != first.dtype:
        difference_intensity(first, background)
    from magicmask.engines.native import intensity_fixed_tables, kernels as _load_kernels
    from magicmask.execute import default_jobs

    kernels, fixed = _load_kernels(), intensity_fixed_tables()

    n = len(frames)
    height = first.shape[0]
    rows = max(1, min(height, BAND_BYTES // max(first[0].nbytes * n, 1)))
    bins = np.iinfo(first.dtype).max + 1
    centre = np.empty_like(first) if background is None else background
    spread = np.empty(first.shape[:2] + (1,), dtype=first.dtype)

    def band(top: int) -> np.ndarray:
        bottom = min(height, top + rows)
        counts = np.zeros(bins, dtype=np.int64)
        if first.dtype == np.uint8 and first.shape[2] == 3:  # 8-bit RGB: the band stacked once; counting kernels
            stack = np.stack([frame[top:bottom] for frame in frames])
            if background is None:
                found = np.empty(stack[0].size, dtype=np.uint8)
                kernels.lower_median_8bit(stack.reshape(n, -1), (n - 1) // 2, found)
                centre[top:bottom] = found.reshape(stack.shape[1:])
            found = np.empty(stack[0].size // 3, dtype=np.uint8)
            kernels.difference_spread_8bit(np.ascontiguousarray(centre[top:bottom]).reshape(-1, 3), stack.reshape(n, -1, 3), *fixed, (n - 1) // 2, found, counts)
            spread[top:bottom] = found.reshape(bottom - top, -1, 1)
            return counts
        if background is None:
            centre[top:bottom] = lower_median([frame[top:bottom] for frame in frames], 1)
        diffs = [difference_intensity(frame[top:bottom], centre[top:bottom]) for frame in frames]
        for diff in diffs:
            counts += np.bincount(diff.ravel(), minlength=bins)
        spread[top:bottom] = lower_median(diffs, 1) if n > 1 else diffs[0]
        return counts

    tops = range(0, height, rows)
    threads = max(1, min(threads or default_jobs(), len(tops)))
    if threads == 1:
        parts = [band(top) for top in tops]
    else:
        with cf.ThreadPoolExecutor(threads) as pool:
            parts = list(pool.map(band, tops))
    return centre, spread, sum(parts[1:], parts[0])


def _limit(spread: np.ndarray, counts: np.ndarray, k: float, floor: str) -> np.ndarray:
    """The map of :func:`threshold_map` from the per-pixel ``spread`` and the histogram of every intensity."""
    dtype = spread.dtype
    top = np.iinfo(dtype).max
    noise = _lower_median_of(counts)
    scale = 257 if dtype == np.uint8 else 1
    # the smallest map value m with "g > m * scale" never true where "g > floor" is false: for 16-bit maps the
    # floor itself (g > 3276 is g > 3276.8 for integer g: the blog's 5% exactly); 8-bit maps step by 257
    lowest = min(top, math.floor(floor_quantum(floor)) if scale == 1 else math.ceil(floor_quantum(floor) / scale))
    limit = np.floor(np.maximum(spread, noise).astype(np.float64) * k + 0.5)
    return neighbourhood_max(np.minimum(np.maximum(limit, lowest), top).astype(dtype))


def neighbourhood_max(values: np.ndarray) -> np.ndarray:
    """The largest of each pixel's 3x3 neighbourhood (itself and its eight neighbours; fewer at the edges).

    ``values`` is ``(height, width, ...)``; the result has its shape and dtype. Separable: the largest of
    three along the rows, then of three along the columns.
    """
    rows = values.copy()
    np.maximum(rows[1:], values[:-1], out=rows[1:])
    np.maximum(rows[:-1], values[1:], out=rows[:-1])
    out = rows.copy()
    np.maximum(out[:, 1:], rows[:, :-1], out=out[:, 1:])
    np.maximum(out[:, :-1], rows[:, 1:], out=out[:, :-1])
    return out


def median_and_map(frames: Iterable[np.ndarray], count: int | None = None, samples: int = DEFAULT_SAMPLES, threads: int | None = None, k: float = K, floor: str = DEFAULT_FLOOR) -> tuple[np.ndarray, np.ndarray]:
    """``(median background, threshold map)`` of ``frames`` in one pass, from the same sampled frames.

    The background is :func:`magicmask.statistics.statistic` ``(frames, "median", count, samples)``, the
    map :func:`threshold_map` of the frames that median holds against it.

    Raises
    ------
    MagicmaskError
        For no frame, or a single one (a median of one frame is that frame).
    """
    kept = [frame for index, frame in enumerate(frames) if count is None or taken(index, count, samples)]
    if not kept:
        raise MagicmaskError("no frames for a background")
    if len(kept) == 1:
        raise MagicmaskError("a median of a single frame is that frame", hint="use more frames (--from video), or --background first")
    background, spread, counts = _spread(kept, None, threads)
    return background, _limit(spread, counts, k, floor)


def window_medians_and_maps(
    frames: Iterable[np.ndarray],
    ranges: list[tuple[int, int]],
    samples: int = DEFAULT_SAMPLES,
    tick: Callable[[], None] = lambda: None,
    threads: int | None = None,
    k: float = K,
    floor: str = DEFAULT_FLOOR,
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield ``(k, median, threshold map)`` for each window ``ranges[k]``, in one pass over ``frames``.

    The medians are those of :func:`magicmask.statistics.window_statistics` (the same code makes them);
    each map is :func:`threshold_map` of the frames that window's median holds, kept here by the same rule
    (frame ``i`` of the window when :func:`~magicmask.statistics.taken` ``(i, longest window, samples)``),
    as references to the same arrays.
    """
    longest = max(i1 - i0 for i0, i1 in ranges)
    held: collections.deque[tuple[int, np.ndarray]] = collections.deque()
    start = ranges[0][0]  # the first frame of the oldest window not yet done

    def keep(source: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for index, frame in enumerate(source):
            if index >= start and taken(index, longest, samples):
                held.append((index, frame))
            yield frame

    for window, background in window_statistics(keep(frames), ranges, "median", samples, tick, threads):
        i0, i1 = ranges[window]
        chosen = [frame for index, frame in held if i0 <= index < i1]
        yield window, background, threshold_map(chosen, background, k, threads, floor)
        del chosen
        start = ranges[window + 1][0] if window + 1 < len(ranges) else i1
        while held and held[0][0] < start:
            held.popleft()


def write_threshold_map(limit: np.ndarray, path: str | os.PathLike, template: str | os.PathLike) -> Path:
    """Write a threshold map (``(height, width, 1)``) as a gray TIFF in the form of ``template`` (a keyframe).

    Same size, depth and compression as the keyframe; one gray channel (ImageMagick writes an image whose
    R = G = B everywhere as gray). Written atomically.
    """
    channels = read_frame(template).shape[2]
    gray = limit[:, :, :1]
    if channels in (1, 3):
        pixels = np.repeat(gray, channels, axis=2)
    else:
        opaque = np.full_like(gray, np.iinfo(gray.dtype).max)
        pixels = np.concatenate([np.repeat(gray, channels - 1, axis=2), opaque], axis=2)
    return write_background(pixels, path, template)


def map_path(frame: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """``out_dir/NAME-threshold.tiff``: where the threshold map of one keyframe's window is written."""
    from magicmask.files import frame_name

    return Path(out_dir) / f"{frame_name(frame)}{MAP_SUFFIX}"
