"""Better backgrounds: statistics over frames, per run or per keyframe window, and exposure matching.

The blog post ends on a wish: "It is possible to get a better result by creating an average image from the
entire video (and not only the keyframes), but this would also take very much longer." This module
computes such backgrounds, exactly and in bounded memory, and hands them to the blog's own mask chain
unchanged: given the background a frame is masked with, its mask is what
``convert BG FRAME -compose difference -composite -threshold 5% -blur 0x3 -threshold 20% -blur 0x3``
makes from that file.

Statistics (``method``), per channel and per pixel, on the stored integer values:

- ``lighten`` / ``darken``: maximum / minimum (``-compose lighten|darken -flatten``). From keyframes this
  is :func:`magicmask.background.flatten` itself; from the video a NumPy fold.
- ``mean``: ``(2 * sum + n) // (2 * n)``, the mean rounded half up, exact in integers.
- ``median``: the lower median, ``sorted(values)[(n - 1) // 2]``: an exact integer, a value that occurs.
- ``first``: the first keyframe, as in the blog; or a PATH: that TIFF.

Frames (``source``): the ``keyframes`` (as the blog does) or every decoded frame of the ``video``,
streamed from ffmpeg's raw pipe (:func:`magicmask.media.decode.iter_frames`): never written to disk, never
held whole.

Memory. ``lighten``, ``darken`` and ``mean`` over a whole run are folds: one accumulator of
``W * H * C`` values (the frame's dtype for lighten/darken; 4 bytes for the mean of 8-bit frames, 8 for
16-bit), whatever the length. ``median`` is exact over **evenly sampled frames**: of ``n`` frames, frame
``i`` (from 0) is taken when ``(i * samples) % n < samples``, which takes exactly ``min(n, samples)``
frames, evenly spread, the first one included; every frame when ``n <= samples``. Peak memory of a median::

    F * (samples + 1)  +  threads * min(8 MB, F * samples)  +  about 4 F

with ``F = W * H * C * B`` the bytes of one frame (``B`` = 1 for 8-bit frames, 2 for 16-bit ones): the
sampled frames, the bands being worked on (a few rows of every sample, 8 MB at most, one per thread),
and the frame being read plus the background being written. For 1080p 8-bit video (F = 6.2 MB) and the
default ``samples=100``: about 0.67 GB (1.3 GB for 16-bit), whatever the length of the video.

Windows (``window`` seconds > 0): each keyframe gets its own background from the frames within
``[t - window/2, t + window/2)`` of its time ``t``, the window slid to stay inside the video at its start
and end (so every window holds ``window`` seconds of frames, and a window longer than the video is an
error). From the video, one pass serves every window: a sliding buffer keeps the sampled frames (the rule
above with ``n`` = frames per window) between the start of the oldest unfinished window and the current
frame, so at most ``samples + 1`` frames, and each statistic of a window is computed over its sampled
frames when its last frame arrives. With a window, ``lighten``, ``darken`` and ``mean`` are therefore over
the sampled frames too (all frames when a window holds no more than ``samples``).

Exposure matching (``match_exposure``): before differencing, the background of each keyframe is shifted
per channel by the lower median of ``frame - background`` over all its pixels (alpha left alone), a
robust offset that a moving figure covering less than half of the frame does not sway; the shifted
background is written as ``NAME-background.tiff`` and fed to the unchanged chain.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from magicmask.media.decode import iter_frames
from magicmask.media.probe import VideoInfo, frame_times, keyframe_count, keyframe_times, video_info
from magicmask.engines import DEFAULT_ENGINE
from magicmask.errors import MagicmaskError
from magicmask.execute import default_jobs, resolve_jobs
from magicmask.files import BACKGROUND_NAME, BACKGROUND_SUFFIX, check_tiff, frame_name, select_frames, write_atomic
from magicmask.options import DEFAULT_SAMPLES, METHODS, Options, parse_span  # noqa: F401  (parse_span: part of this module's API)
from magicmask.params import MaskParams

STATISTICS = tuple(name for name, method in METHODS.items() if method.from_video)
"""The methods computed from frames (every method but ``first``)."""

Progress = Callable[[int, int], None]
"""``progress(done, total)``: frames read so far (and per-keyframe backgrounds written), of ``total``."""

BAND_BYTES = 8 << 20  # bytes of one working band of a median (all samples of a few rows)
_EPS = 1e-6  # seconds: timestamps from ffprobe have microsecond resolution


# --- Frames as arrays, backgrounds as TIFF files ------------------------------------------------------


def _layout(image) -> tuple[int, int, str, int, int]:
    """``(width, height, raw format, channels, depth)`` in which magicmask holds a Wand image's pixels."""
    gray, alpha = image.colorspace == "gray", bool(image.alpha_channel)
    raw_format, channels = {(True, False): ("gray", 1), (True, True): ("graya", 2), (False, False): ("rgb", 3), (False, True): ("rgba", 4)}[(gray, alpha)]
    return *image.size, raw_format, channels, 16 if image.depth > 8 else 8


def read_frame(path: str | os.PathLike, role: str = "frame") -> np.ndarray:
    """The pixels of a TIFF frame as ImageMagick reads them: ``(height, width, channels)``.

    ``uint8`` for frames of 8 bits or fewer, ``uint16`` for deeper ones; channels are gray (1),
    gray+alpha (2), RGB (3) or RGBA (4), the same layouts :data:`magicmask.media.probe.RAW_FORMATS` reads.
    Gray and RGB TIFFs of 8 or 16 bits are read by the native engine's reader (the samples ImageMagick
    reads, tested; no ImageMagick needed); others (alpha, other depths, palette) by ImageMagick through Wand.
    """
    from magicmask.engines import native, wand

    try:
        return native.read_picture(path, role).samples
    except native.UnsupportedImage:
        pass
    with wand.read_tiff(path, role) as image:
        width, height, raw_format, channels, depth = _layout(image)
        with image.clone() as copy:
            copy.depth = depth
            copy.options["endian"] = "LSB"
            raw = copy.make_blob(raw_format)
    return np.frombuffer(raw, dtype="<u2" if depth == 16 else np.uint8).reshape(height, width, channels)


def write_background(pixels: np.ndarray, path: str | os.PathLike, template: str | os.PathLike) -> Path:
    """Write ``pixels`` as a TIFF in the form of ``template`` (a keyframe): same size, depth, channels, compression.

    The image is a clone of the template with every pixel replaced (``-compose copy``), as the blog's
    ``-flatten`` makes ``background.tiff`` a clone of the first frame; the file is written atomically.

    Without ImageMagick, a gray or RGB template of 8 or 16 bits in a compression the native engine writes
    gets the native engine's TIFF writer: the same samples and form; the same bytes too, but for LZW and
    Deflate templates, whose encoders' bytes may differ from libtiff's (as for the native engine's masks).

    Raises
    ------
    MagicmaskError
        When ``pixels`` does not have the template's size and channels.
    """
    from magicmask.engines import native, wand

    if not wand.available():
        try:
            form = native.read_picture(template)
        except native.UnsupportedImage:
            form = None
        if form is not None and native.writable(form):
            _check_shape(pixels, form.samples.shape, template)
            return write_atomic(path, native.image_tiff(pixels, form), keep_identical=True)
    with wand.read_tiff(template) as image:  # without ImageMagick: says what to install
        from wand.image import Image

        width, height, raw_format, channels, depth = _layout(image)
        _check_shape(pixels, (height, width, channels), template)
        data = np.ascontiguousarray(pixels, dtype="<u2" if depth == 16 else np.uint8).tobytes()
        with Image() as raw:
            raw.options["endian"] = "LSB"
            raw.read(blob=data, format=raw_format, width=width, height=height, depth=depth)
            with image.clone() as out:
                out.composite(raw, left=0, top=0, operator="copy")
                blob = _zero_alignment_byte(out.make_blob("tiff"))
    return write_atomic(path, blob, keep_identical=True)


def _check_shape(pixels: np.ndarray, shape: tuple[int, int, int], template) -> None:
    """Refuse background ``pixels`` that do not have the frames' ``(height, width, channels)``."""
    if pixels.shape != tuple(shape):
        raise MagicmaskError(f"background is {pixels.shape[1]}x{pixels.shape[0]}x{pixels.shape[2]} but the frames are {shape[1]}x{shape[0]}x{shape[2]}", template, "use frames of one video")


def _zero_alignment_byte(blob: bytes) -> bytes:
    """``blob`` with the byte that word-aligns its IFD after odd-length image data set to 0.

    libtiff skips that byte rather than writing it: in a file it is a hole, read as 0; in the memory
    ImageMagick's ``make_blob`` writes to, it is whatever that memory held (a different byte from run to run).
    """
    import io

    import tifffile

    if len(blob) < 8 or blob[:4] not in (b"II*\x00", b"MM\x00*"):
        return blob
    ifd = int.from_bytes(blob[4:8], "little" if blob[:2] == b"II" else "big")
    if ifd <= 8 or ifd % 2:
        return blob
    with tifffile.TiffFile(io.BytesIO(blob)) as tif:
        page = tif.pages.first
        end = max((offset + count for offset, count in zip(page.dataoffsets, page.databytecounts)), default=0)
    if end != ifd - 1:
        return blob
    return blob[: ifd - 1] + b"\x00" + blob[ifd:]  # a re-run's same background keeps its time: its masks stay up to date


def background_path(frame: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """``out_dir/NAME-background.tiff``: where the background of one keyframe is written."""
    return Path(out_dir) / f"{frame_name(frame)}{BACKGROUND_SUFFIX}"


# --- The statistics -----------------------------------------------------------------------------------


def taken(index: int, count: int, samples: int) -> bool:
    """Whether frame ``index`` of ``count`` is among the ``samples`` evenly sampled ones.

    Frame ``i`` is taken when ``(i * samples) % count < samples``: exactly ``min(count, samples)`` of any
    ``count`` consecutive frames, evenly spread, frame 0 included.
    """
    return count <= samples or (index * samples) % count < samples


def lower_median(frames: Sequence[np.ndarray], threads: int | None = None) -> np.ndarray:
    """The per-pixel, per-channel lower median of ``frames``: ``sorted(values)[(n - 1) // 2]``.

    Exact, in the frames' dtype. Computed in bands of rows (at most ``BAND_BYTES`` of samples each) in
    ``threads`` threads (all cores by default): 8-bit samples counted by a Numba kernel, 16-bit ones
    partitioned by NumPy; both release the GIL.
    """
    if not frames:
        raise MagicmaskError("no frames for a median")
    n = len(frames)
    first = frames[0]
    if n == 1:
        return first.copy()
    kth = (n - 1) // 2
    height = first.shape[0]
    row_bytes = first[0].nbytes * n
    rows = max(1, min(height, BAND_BYTES // max(row_bytes, 1)))
    out = np.empty_like(first)

    counting = first.dtype == np.uint8
    if counting:
        from magicmask.engines.native import kernels as _load_kernels

        kernels = _load_kernels()

    def band(top: int) -> None:
        bottom = min(height, top + rows)
        stack = np.stack([frame[top:bottom] for frame in frames])
        if counting:  # 8-bit: a histogram per sample, 3.5x faster than partitioning (same values)
            found = np.empty(stack[0].size, dtype=np.uint8)
            kernels.lower_median_8bit(stack.reshape(n, -1), kth, found)
            out[top:bottom] = found.reshape(stack.shape[1:])
        else:
            stack.partition(kth, axis=0)
            out[top:bottom] = stack[kth]

    threads = threads or default_jobs()
    tops = range(0, height, rows)
    if threads <= 1 or len(tops) == 1:
        for top in tops:
            band(top)
    else:
        with cf.ThreadPoolExecutor(threads) as pool:
            list(pool.map(band, tops))
    return out


class Fold:
    """A running ``lighten``, ``darken`` or ``mean`` over frames, in constant memory.

    ``lighten``/``darken`` keep the per-channel maximum/minimum; ``mean`` keeps the sum (``uint32`` for
    8-bit frames, enough for 16 million frames; ``uint64`` for 16-bit ones) and rounds half up at the end.
    """

    def __init__(self, method: str):
        if method not in ("lighten", "darken", "mean"):
            raise MagicmaskError(f"{method!r} is not a fold", hint="use lighten, darken or mean")
        self.method = method
        self.value: np.ndarray | None = None
        self.dtype: np.dtype | None = None
        self.count = 0

    def add(self, frame: np.ndarray) -> None:
        if self.value is None:
            self.dtype = frame.dtype
            if self.method == "mean":
                self.value = frame.astype(np.uint32 if frame.dtype.itemsize == 1 else np.uint64)
            else:
                self.value = frame.copy()
        elif frame.shape != self.value.shape:
            raise MagicmaskError(f"frame is {frame.shape[1]}x{frame.shape[0]} but the first frame is {self.value.shape[1]}x{self.value.shape[0]}", hint="use frames of one video")
        elif self.method == "lighten":
            np.maximum(self.value, frame, out=self.value)
        elif self.method == "darken":
            np.minimum(self.value, frame, out=self.value)
        else:
            np.add(self.value, frame, out=self.value)
        self.count += 1

    def result(self) -> np.ndarray:
        if self.value is None:
            raise MagicmaskError("no frames for a background")
        if self.method != "mean":
            return self.value.copy()
        n = np.uint64(self.count)
        out = np.empty(self.value.shape, self.dtype)
        for top in range(0, out.shape[0], 64):  # in bands of rows: no full-size 64-bit temporaries
            band = self.value[top : top + 64].astype(np.uint64)
            band *= 2
            band += n
            band //= 2 * n
            out[top : top + 64] = band
        return out


def statistic(frames: Iterable[np.ndarray], method: str, count: int | None = None, samples: int = DEFAULT_SAMPLES, threads: int | None = None) -> np.ndarray:
    """One background from ``frames``: their ``lighten``, ``darken``, ``mean`` or ``median``.

    Folds see every frame; the median sees the evenly sampled ones (:func:`taken`, with ``count`` the
    number of frames, or every frame when ``count`` is not given: hold them in memory yourself then).

    Raises
    ------
    MagicmaskError
        For an unknown method, no frame, or a median of a single frame.
    """
    if method not in STATISTICS:
        raise MagicmaskError(f"unknown statistic {method!r}", hint=f"use one of: {', '.join(STATISTICS)}")
    if method != "median":
        fold = Fold(method)
        for frame in frames:
            fold.add(frame)
        return fold.result()
    kept = [frame for index, frame in enumerate(frames) if count is None or taken(index, count, samples)]
    if not kept:
        raise MagicmaskError("no frames for a background")
    if len(kept) == 1:
        raise MagicmaskError("a median of a single frame is that frame", hint="use more frames (--from video), or --background first")
    return lower_median(kept, threads)


def frames_background(
    frames: Iterable[str | os.PathLike],
    output: str | os.PathLike,
    method: str = "median",
    samples: int = DEFAULT_SAMPLES,
    progress: Callable[[Path], None] | None = None,
    jobs: int | None = None,
) -> Path:
    """The ``mean`` or ``median`` (or ``lighten``/``darken``) of TIFF frames, written as a TIFF of their form.

    What ``magicmask background FRAME... --method median`` writes: the frames are read one at a time;
    the median holds at most ``samples`` of them, evenly sampled. Earlier outputs among ``frames`` are
    skipped.

    Raises
    ------
    MagicmaskError
        For no frames, frames of different sizes, a median of a single frame, or an unreadable frame.
    """
    frames = select_frames(frames)
    if not frames:
        raise MagicmaskError("no frames for a background", hint="pass TIFF frames, e.g. t*.tiff")

    def read() -> Iterator[np.ndarray]:
        shape = None
        for path in frames:
            pixels = read_frame(path)
            if shape is None:
                shape = pixels.shape
            elif pixels.shape != shape:
                raise MagicmaskError(f"frame is {pixels.shape[1]}x{pixels.shape[0]} but {frames[0].name} is {shape[1]}x{shape[0]}", path, "use frames of one video")
            if progress is not None:
                progress(path)
            yield pixels

    pixels = statistic(read(), method, len(frames), samples, resolve_jobs(jobs))
    return write_background(pixels, output, frames[0])


# --- Spans: the parts of the video a background is made from ---------------------------------------------


def in_spans(times: np.ndarray, spans: Sequence[tuple[float, float]]) -> np.ndarray:
    """Which frames, at ``times`` (sorted, seconds), lie in any of ``spans`` (``[start, end)``, in seconds from
    the first frame's time)."""
    times = np.asarray(times, dtype=np.float64)
    offset = times - times[0]
    chosen = np.zeros(len(times), dtype=bool)
    for start, end in spans:
        chosen |= (offset >= start - _EPS) & (offset < end - _EPS)
    return chosen


def _only(frames: Iterable[np.ndarray], chosen: np.ndarray) -> Iterator[np.ndarray]:
    """The frames whose index is ``chosen``; stops reading after the last one."""
    last = int(np.flatnonzero(chosen)[-1])
    for index, frame in enumerate(frames):
        if chosen[index]:
            yield frame
        if index >= last:
            return


def _describe(spans: Sequence[tuple[float, float]]) -> str:
    return ", ".join(f"{a:g}-{'' if b == float('inf') else f'{b:g}'} s" for a, b in spans)


# --- Windows ------------------------------------------------------------------------------------------


def window_bounds(centre: float, window: float, start: float, end: float) -> tuple[float, float]:
    """The window ``[centre - window/2, centre + window/2)``, slid to lie within ``[start, end)``."""
    lower = min(max(centre - window / 2.0, start), end - window)
    return lower, lower + window


def window_ranges(
    times: np.ndarray,
    centres: Iterable[float],
    window: float,
    start: float | None = None,
    end: float | None = None,
) -> list[tuple[int, int]]:
    """For each centre, the indices ``[i0, i1)`` of the ``times`` within its window (see :func:`window_bounds`).

    ``times`` are sorted frame times; the video spans ``[start, end)``: by default from the first time to
    the last time plus the median frame step.
    """
    times = np.asarray(times, dtype=np.float64)
    start = float(times[0]) if start is None else start
    if end is None:
        step = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
        end = float(times[-1]) + step
    ranges = []
    for centre in centres:
        lower, upper = window_bounds(float(centre), window, start, end)
        ranges.append((int(np.searchsorted(times, lower - _EPS)), int(np.searchsorted(times, upper - _EPS))))
    return ranges


def window_statistics(
    frames: Iterable[np.ndarray],
    ranges: list[tuple[int, int]],
    method: str,
    samples: int,
    tick: Callable[[], None],
    threads: int | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(k, background)`` for each window ``ranges[k]`` (sorted) as its last frame arrives, in one pass.

    A sliding buffer holds the sampled frames from the start of the oldest unfinished window up to the
    current frame: at most ``samples + 1`` of them. Decoding stops once the last window is done.
    """
    longest = max(i1 - i0 for i0, i1 in ranges)
    buffer: collections.deque[tuple[int, np.ndarray]] = collections.deque()
    k = 0
    last: tuple[tuple[int, int], np.ndarray] | None = None
    for index, frame in enumerate(frames):
        tick()
        if index >= ranges[k][0] and taken(index, longest, samples):
            buffer.append((index, frame))
        while k < len(ranges) and ranges[k][1] - 1 <= index:
            if last is not None and last[0] == ranges[k]:
                yield k, last[1]
            else:
                i0, i1 = ranges[k]
                chosen = [f for i, f in buffer if i0 <= i < i1]
                if method == "median" and len(chosen) == 1:
                    raise MagicmaskError("a median of a single frame is that frame: the window holds one frame", hint="use a longer --window")
                last = (ranges[k], statistic(chosen, method, threads=threads))
                del chosen  # or its frames would outlive the buffer until the next window
                yield k, last[1]
            k += 1
            while buffer and k < len(ranges) and buffer[0][0] < ranges[k][0]:
                buffer.popleft()
        if k == len(ranges):
            return
    raise MagicmaskError(f"the video ended before window {k + 1} of {len(ranges)}: ffmpeg decoded fewer frames than ffprobe listed", hint="re-encode the video")


# --- Exposure -----------------------------------------------------------------------------------------


def exposure_offset(frame: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Per channel, the lower median of ``frame - background`` over all pixels (0 for alpha).

    A robust brightness offset: pixels a moving figure covers are outliers, and do not sway it while
    they are fewer than half of the frame.
    """
    if frame.shape != background.shape or frame.dtype != background.dtype:
        raise MagicmaskError(
            f"frame is {frame.shape[1]}x{frame.shape[0]}x{frame.shape[2]} {frame.dtype} but the background is "
            f"{background.shape[1]}x{background.shape[0]}x{background.shape[2]} {background.dtype}",
            hint="exposure matching needs a background of the frames' size, depth and channels",
        )
    channels = frame.shape[2]
    diff = (frame.astype(np.int32) - background.astype(np.int32)).reshape(-1, channels)
    kth = (diff.shape[0] - 1) // 2
    offset = np.partition(diff, kth, axis=0)[kth].astype(np.int64)
    if channels in (2, 4):
        offset[-1] = 0
    return offset


def exposure_matched(background: np.ndarray, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(shifted background, offset)``: ``background + exposure_offset(frame, background)``, clipped to the range."""
    offset = exposure_offset(frame, background)
    top = np.iinfo(background.dtype).max
    shifted = np.clip(background.astype(np.int64) + offset, 0, top).astype(background.dtype)
    return shifted, offset


# --- The entry points ---------------------------------------------------------------------------------


def check_background_size(path: Path, first: Path) -> Path:
    """``path``, a background TIFF, when it has the size of ``first``, a keyframe.

    Raises
    ------
    MagicmaskError
        When it is not a TIFF, or both sizes when they differ.
    """
    check_tiff(path, "background")
    from magicmask.engines import wand

    with wand.read_tiff(path, "background") as background, wand.read_tiff(first) as frame:
        if background.size != frame.size:
            (bw, bh), (fw, fh) = background.size, frame.size
            raise MagicmaskError(f"background is {bw}x{bh} but the frames are {fw}x{fh}", path, "use a background of the video's size")
    return path


def make_backgrounds(
    video: str | os.PathLike | None,
    keyframes: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    method: str | os.PathLike = "median",
    source: str = "keyframes",
    window: float = 0.0,
    match_exposure: bool = False,
    samples: int = DEFAULT_SAMPLES,
    progress: Progress | None = None,
    *,
    engine: str = DEFAULT_ENGINE,
    jobs: int | None = None,
    threads: int | None = None,
    spans: Sequence[tuple[float, float]] = (),
    warnings: list[str] | None = None,
    maps: dict[Path, Path] | None = None,
) -> dict[Path, Path]:
    """The background of every keyframe: one for the run, one per keyframe window, exposure-matched or not.

    Parameters
    ----------
    video : path or None
        The video the keyframes come from. Needed for ``source='video'`` and for windows (keyframe times).
    keyframes : sequence of paths
        The keyframes (``t01.tiff``...) as :func:`magicmask.media.extract.extract_keyframes` wrote them; the
        first one is the template of the backgrounds' form (depth, channels, compression).
    out_dir : path
        Where backgrounds are written: ``background.tiff`` for one background, ``NAME-background.tiff`` for
        a keyframe's own (windowed or exposure-matched) background.
    method : {'first', 'lighten', 'darken', 'mean', 'median'} or path
        The statistic (see the module's notes), ``first`` (the first keyframe, as the blog), or a TIFF file.
    source : {'keyframes', 'video'}
        Which frames feed the statistic: the keyframes (as the blog's lighten), or every decoded frame of
        the video.
    window : float
        Seconds. 0: one background for the run. Otherwise each keyframe's own background, from the
        frames within ``window/2`` of it (the window slid to stay inside the video).
    match_exposure : bool
        Shift each keyframe's background per channel by the median of ``frame - background``.
    samples : int
        The most frames a median (or a windowed statistic) holds; see the memory formula in the module notes.
    progress : callable, optional
        ``progress(done, total)``: frames read, then per-keyframe backgrounds written.
    engine, jobs
        For ``lighten``/``darken`` of keyframes (:func:`magicmask.background.flatten`); ``jobs`` also bounds
        the threads of a median.
    threads : int, optional
        The threads of a median, when they differ from ``jobs`` (e.g. ``jobs=1`` to keep the folds in this
        process while the median uses every core); all cores by default.
    spans : sequence of (start, end)
        With ``source="video"`` and no window: only the frames in these spans (seconds from the video's
        start, ``[start, end)``, see :func:`parse_span`) feed the statistic, e.g. the parts of a take where
        nobody stands still (a clean plate).
    warnings : list, optional
        Gets what ffmpeg reports about damage in the video while decoding its frames.
    maps : dict, optional
        With a median: also learn the threshold map of ``--threshold adaptive`` from the frames the median
        holds (:func:`magicmask.thresholds.median_and_map`), write it as ``threshold.tiff`` (or
        ``NAME-threshold.tiff`` per keyframe window) and put ``{keyframe: map file}`` into this dict.

    Returns
    -------
    dict
        ``{keyframe: background file}`` for every keyframe, in keyframe order.

    Raises
    ------
    MagicmaskError
        For a window longer than the video, a median of a single frame, a PATH background of another
        size, or anything ffmpeg or ImageMagick cannot read.

    Examples
    --------
    >>> frames = extract_keyframes("in.mp4", "out")                                   # doctest: +SKIP
    >>> backgrounds = make_backgrounds("in.mp4", frames, "out", "median", "video", window=4)  # doctest: +SKIP
    >>> mask_with_backgrounds(backgrounds, "out")                                      # doctest: +SKIP
    """
    keyframes = select_frames(keyframes)
    if not keyframes:
        raise MagicmaskError("no keyframes to make backgrounds for", hint="extract keyframes first")
    custom = os.fspath(method) not in METHODS
    options = Options(os.fspath(method), source, window, match_exposure, samples, tuple(spans))  # validated: one-line errors
    method, spans = options.background, options.spans
    out_dir = Path(out_dir)
    threads = resolve_jobs(jobs if threads is None else threads)
    first = keyframes[0]
    if custom:
        check_background_size(Path(method), first)
    needs_video = (not custom and method != "first" and source == "video") or window > 0
    if needs_video and video is None:
        raise MagicmaskError("this background needs the video", hint="pass the video the keyframes come from")

    info = times = None
    if needs_video:
        times = frame_times(video)
        info = video_info(video, times)
        if window > info.duration + _EPS:
            raise MagicmaskError(f"window of {window:g} s is longer than the video ({info.duration:g} s)", video, f"use a window of at most {info.duration:g} s, or 0 for one background")

    per_keyframe = window > 0 or match_exposure
    if custom or method == "first":
        reads = 0
    else:
        reads = info.frames if source == "video" else len(keyframes)
    total = reads + (len(keyframes) if per_keyframe else 0)
    done = 0

    def tick(_path=None) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(min(done, total), total)

    if progress is not None:
        progress(0, total)

    backgrounds: dict[Path, Path] = {}
    held: dict[Path, np.ndarray] = {}  # a background file's pixels, read once for exposure matching

    def settle(frame: Path, pixels: np.ndarray | None = None, path: Path | None = None) -> None:
        """Record (and write) the background of one keyframe, shifted to its exposure if asked."""
        if match_exposure:
            if pixels is None:
                if path not in held:
                    held.clear()
                    held[path] = read_frame(path, "background")
                pixels = held[path]
            shifted, offset = exposure_matched(pixels, read_frame(frame))
            if offset.any() or path is None:
                path = write_background(shifted, background_path(frame, out_dir), first)
        elif path is None:
            path = write_background(pixels, background_path(frame, out_dir), first)
        backgrounds[frame] = path
        if per_keyframe:
            tick()

    def mapped(frame: Path, limit: np.ndarray | None, shared: bool = False) -> None:
        """Write the threshold map learned with a keyframe's median (one for the run when ``shared``)."""
        if maps is not None and limit is not None:
            from magicmask.thresholds import MAP_NAME, map_path, write_threshold_map

            path = write_threshold_map(limit, out_dir / MAP_NAME if shared else map_path(frame, out_dir), first)
            for each in (keyframes if shared else [frame]):
                maps[each] = path

    learn = maps is not None
    if learn and method != "median":
        raise MagicmaskError(f"a threshold map is learned with a median background, not {method}", hint="use --background median with --threshold adaptive")
    if window == 0:
        if custom:
            base = Path(method)
        elif method == "first":
            base = first
        elif source == "keyframes" and method in ("lighten", "darken"):
            from magicmask.background import flatten

            base = flatten(keyframes, out_dir / BACKGROUND_NAME, method, progress=tick, engine=engine, jobs=jobs)
        else:
            limit = None
            if source == "keyframes":
                with contextlib.closing(_ticking((read_frame(path) for path in keyframes), tick)) as frames:
                    if learn:
                        from magicmask.thresholds import median_and_map

                        pixels, limit = median_and_map(frames, len(keyframes), samples, threads)
                    else:
                        pixels = statistic(frames, method, len(keyframes), samples, threads)
            else:
                found = video_statistic(video, method, samples=samples, spans=spans, info=info, times=times, threads=threads, tick=tick, warnings=warnings, with_map=learn)
                pixels, limit = found if learn else (found, None)
            base = write_background(pixels, out_dir / BACKGROUND_NAME, first)
            mapped(first, limit, shared=True)
        for frame in keyframes:
            settle(frame, path=base)
    else:
        centres = keyframe_times(video)
        if len(centres) != len(keyframes):
            raise MagicmaskError(f"the video has {len(centres)} keyframes but {len(keyframes)} were given", video, "pass the keyframes of this video, all of them")
        start, end = float(times[0]), float(times[0]) + info.duration
        if source == "keyframes":
            for frame, (i0, i1) in zip(keyframes, window_ranges(centres, centres, window, start, end)):
                chosen = keyframes[i0:i1]
                if method == "median" and len(chosen) == 1:
                    raise MagicmaskError(f"a median of a single frame is that frame: the window holds only {chosen[0].name}", frame, "use a longer --window, or --from video")
                if method in ("lighten", "darken"):
                    from magicmask.background import flatten

                    settle(frame, path=flatten(chosen, background_path(frame, out_dir), method, engine=engine, jobs=1))
                elif learn:
                    from magicmask.thresholds import median_and_map

                    pixels, limit = median_and_map([read_frame(path) for path in chosen], len(chosen), samples, threads)
                    settle(frame, pixels=pixels)
                    mapped(frame, limit)
                else:
                    arrays = (read_frame(path) for path in chosen)
                    settle(frame, pixels=statistic(arrays, method, len(chosen), samples, threads))
                tick()
        else:
            ranges = window_ranges(times, centres, window, start, end)
            empty = [frame.name for frame, (i0, i1) in zip(keyframes, ranges) if i1 <= i0]
            if empty:
                raise MagicmaskError(f"the window around {empty[0]} holds no frame", video, "use a window of at least one frame's duration")
            with contextlib.closing(iter_frames(video, info=info, warnings=warnings)) as frames:
                if learn:
                    from magicmask.thresholds import window_medians_and_maps

                    for k, result, limit in window_medians_and_maps(frames, ranges, samples, tick, threads):
                        settle(keyframes[k], pixels=result)
                        mapped(keyframes[k], limit)
                else:
                    for k, result in window_statistics(frames, ranges, method, samples, tick, threads):
                        settle(keyframes[k], pixels=result)
    if progress is not None:
        progress(total, total)
    return {frame: backgrounds[frame] for frame in keyframes}


def video_statistic(
    video: str | os.PathLike,
    method: str,
    *,
    keyframes_only: bool = False,
    samples: int = DEFAULT_SAMPLES,
    spans: Sequence[tuple[float, float]] = (),
    info: VideoInfo | None = None,
    times: np.ndarray | None = None,
    threads: int | None = None,
    tick: Callable[[], None] | None = None,
    warnings: list[str] | None = None,
    with_map: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """The ``lighten``, ``darken``, ``mean`` or ``median`` of the decoded frames of ``video`` (all of them, its
    keyframes with ``keyframes_only``, or those in ``spans``), streamed from ffmpeg's raw pipe.

    ``tick`` is called for every frame read. The median takes :func:`taken`'s evenly sampled frames
    (``with_map``: returns ``(median, threshold map)``, see :func:`magicmask.thresholds.median_and_map`). What
    ffmpeg reports about damage in the video is appended to ``warnings`` (see :func:`magicmask.media.decode.iter_frames`).

    Raises
    ------
    MagicmaskError
        For spans holding no frame, a median of a single frame, or a video ffmpeg cannot decode.
    """
    if keyframes_only:
        if spans:
            raise MagicmaskError("spans pick frames of the whole video", hint="add --from video")
        count = keyframe_count(video)
        frames = iter_frames(video, keyframes_only=True, warnings=warnings)
    else:
        times = frame_times(video) if times is None else times
        info = video_info(video, times) if info is None else info
        count = info.frames
        frames = iter_frames(video, info=info, warnings=warnings)
    chosen = in_spans(times, spans) if spans else None
    with contextlib.closing(frames):  # stops ffmpeg if anything fails half-way
        if chosen is not None and not chosen.any():
            raise MagicmaskError(f"no frame of the video lies in {_describe(spans)} (it lasts {info.duration:g} s)", video, "use spans within the video")
        fed = _ticking(frames, tick or (lambda: None))
        if chosen is not None:
            fed, count = _only(fed, chosen), int(chosen.sum())
        if with_map:  # the median and the threshold map of --threshold adaptive, from the same sampled frames
            from magicmask.thresholds import median_and_map

            if method != "median":
                raise MagicmaskError(f"a threshold map is learned with a median background, not {method}", hint="use --background median with --threshold adaptive")
            return median_and_map(fed, count, samples, threads)
        return statistic(fed, method, count, samples, threads)


def _ticking(frames: Iterable[np.ndarray], tick: Callable[[], None]) -> Iterator[np.ndarray]:
    for frame in frames:
        tick()
        yield frame


def mask_with_backgrounds(
    backgrounds: Mapping[str | os.PathLike, str | os.PathLike],
    out_dir: str | os.PathLike | None = None,
    params: MaskParams = MaskParams(),
    progress: Callable[[Path], None] | None = None,
    on_error: Callable[[MagicmaskError], None] | None = None,
    engine: str = DEFAULT_ENGINE,
    jobs: int | None = None,
) -> list[tuple[Path, Path]]:
    """The blog's loop, each frame against its own background: ``NAME-mask.tiff`` and ``NAME-clean.jpg``.

    Every frame goes through the same chain as :func:`magicmask.masks.mask_frames` (one
    :class:`magicmask.masks.FrameJob` rendered by :func:`magicmask.masks.render` on every core, the files
    written by this process), so each mask is what::

        convert BACKGROUND FRAME -compose difference -composite -threshold 5% -blur 0x3 -threshold 20% -blur 0x3 NAME-mask.tiff

    writes with that frame's background. Outputs are always redone.

    Parameters
    ----------
    backgrounds : mapping
        ``{frame: background TIFF}``, as :func:`make_backgrounds` returns it.
    out_dir : path, optional
        Where to write; beside each frame by default.
    params, progress, on_error, engine, jobs
        As for :func:`magicmask.masks.mask_frames`.

    Returns
    -------
    list of (Path, Path)
        The outputs of every frame that succeeded, in frame order.
    """
    from magicmask.masks import mask_frames

    return mask_frames(list(backgrounds), backgrounds, out_dir, params, progress, on_error, engine, jobs, force=True)
