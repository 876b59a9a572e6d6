"""The foreground video: the blog's mask chain and multiply on every frame of a video, streamed.

For every decoded frame ``F`` (not only the keyframes), the two commands of the blog's loop::

    convert BG F -compose difference -composite -threshold 5% -blur 0x3 -threshold 20% -blur 0x3 F-mask.tiff
    convert F F-mask.tiff -compose multiply -flatten F-clean.jpg

computed by the native engine on the decoded samples (the same functions as for keyframes, without the
TIFF and JPEG codecs), and the clean frames (and, optionally, the masks) encoded back into H.264 videos.
Frames come from ffmpeg's raw pipe and go to ffmpeg's standard input: nothing is written to disk but
the videos, and only a few frames are in memory at once.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from magicmask.engines import native
from magicmask.errors import MagicmaskError
from magicmask.execute import resolve_jobs
from magicmask.files import atomic_path
from magicmask.media.decode import iter_frames
from magicmask.media.encode import ALPHA_CODECS, Encoder, alpha_command, encode_command
from magicmask.media.probe import VideoInfo, frame_rate, frame_times, has_audio, video_info
from magicmask.options import DEFAULT_SAMPLES, Options
from magicmask.params import MaskParams

DEFAULT_PRESET = "veryfast"
"""x264 preset of the clean video: fast enough that the encoder keeps up with the masks on two cores."""

Progress = Callable[[str, int, int], None]


@dataclass
class VideoResult:
    """What :func:`foreground_video` wrote."""

    output: Path
    masks: Path | None
    frames: int
    seconds: float
    audio: bool
    warnings: list[str] = field(default_factory=list)
    """What ffmpeg reported about damage in the video while decoding it."""
    threshold: str | None = None
    """The first threshold learned (``--threshold auto``: its value; ``adaptive``: a map), else None."""
    size: tuple[int, int] = (0, 0)
    """The frames' size: the video's, or one more column or row where H.264 4:2:0 needs an even size."""
    source_size: tuple[int, int] = (0, 0)
    """The video's own frame size."""
    data: Path | None = None
    """The motion data, one row per frame (``--data``)."""
    motiongram: Path | None = None
    """The motiongrams' picture (``--motiongram``)."""
    alpha: Path | None = None
    """The video with the mask as alpha (``--alpha``)."""

    @property
    def fps(self) -> float:
        """Frames processed per second of wall time, decoding and encoding included."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def _frame_format(video: Path, info: VideoInfo) -> str:
    """The raw format frames are read in: the keyframes' format, which must be opaque."""
    if info.frame_pix_fmt not in ("rgb24", "rgb48le", "gray", "gray16le"):
        raise MagicmaskError(
            f"the video has an alpha channel ({info.pix_fmt}); the blog's chain is for opaque frames",
            video,
            "remove the alpha channel first (ffmpeg -pix_fmt yuv420p)",
        )
    return info.frame_pix_fmt


def background_picture(
    video,
    background: str | os.PathLike = "first",
    info: VideoInfo | None = None,
    *,
    source: str = "keyframes",
    samples: int = DEFAULT_SAMPLES,
    spans=(),
    progress: Progress | None = None,
    jobs: int | None = None,
    maps: list | None = None,
) -> native.Picture:
    """The background of the mask chain for ``video``, as the native engine holds it (no file is written).

    ``first``: the first keyframe (the blog's ``t01.tiff``); ``lighten``, ``darken``, ``mean``, ``median``: that
    statistic of the keyframes (``lighten`` is the blog's ``convert *.tiff -background black -compose lighten
    -flatten background.tiff``) or, with ``source="video"``, of every decoded frame (or of ``spans`` of the
    video), the same values ``magicmask run`` writes to ``background.tiff``; a path: that TIFF, of the video's size.
    With ``maps`` (a list) and a median, the threshold map of ``--threshold adaptive`` learned with it (the
    array ``run`` writes to ``threshold.tiff``) is appended to ``maps``.

    Raises
    ------
    MagicmaskError
        For an unknown method (named, with the choices), options that do not fit it, a TIFF of another
        size, or a video without keyframes.
    """
    from magicmask.statistics import video_statistic

    video = Path(video)
    options = Options(os.fspath(background), source, samples=samples, spans=tuple(spans))  # one-line errors for bad values
    info = info or video_info(video)
    pix_fmt = _frame_format(video, info)
    if options.method is None:
        picture = native.load_background(options.background)
        if picture.size != (info.width, info.height):
            width, height = picture.size
            raise MagicmaskError(f"background is {width}x{height} but the video is {info.width}x{info.height}", options.background, "use a background made from this video")
        return picture
    if options.background == "first":
        with contextlib.closing(iter_frames(video, pix_fmt, info=info, keyframes_only=True)) as keyframes:
            for samples_ in keyframes:
                return native.Picture(np.array(samples_), path=f"{video} (first keyframe)")
        raise MagicmaskError("ffmpeg found no keyframe in the video", video, "check that the video plays, or re-encode it with keyframes")
    total = info.frames if options.source == "video" else 0
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress("background", done, max(total, done))

    found = video_statistic(video, options.background, keyframes_only=options.source == "keyframes", samples=options.samples, spans=options.spans, info=info, threads=resolve_jobs(jobs), tick=tick, with_map=maps is not None)
    pixels = found[0] if maps is not None else found
    if maps is not None:
        maps.append(found[1])
    return native.Picture(np.ascontiguousarray(pixels), path=f"{video} ({options.background} of the {options.source})")


@dataclass(frozen=True)
class FrameData:
    """What a frame's pass makes besides its mask and clean samples, when asked (see :func:`foreground_frames`)."""

    measure: object = None
    """The mask's :class:`magicmask.motion.Measure`."""
    lines: tuple | None = None
    """The mask's motiongram lines (:meth:`magicmask.motion.Motiongram.lines`)."""
    frame: np.ndarray | None = None
    """The frame's samples (for the video with alpha)."""


def _foreground_and(background: native.Picture, picture: native.Picture, params: MaskParams, measure: bool, motiongram: bool, keep: bool):
    from magicmask.motion import Motiongram, measure as measure_mask

    mask, clean = native.foreground(background, picture, params)
    return mask, clean, FrameData(measure_mask(mask) if measure else None, Motiongram.lines(mask) if motiongram else None, picture.samples if keep else None)


def foreground_frames(frames, background: native.Picture, params: MaskParams = MaskParams(), jobs: int | None = None, *, measure: bool = False, motiongram: bool = False, keep: bool = False):
    """``(mask, clean)`` samples for every frame of ``frames`` (arrays), in order, computed on ``jobs`` threads.

    The work is :func:`magicmask.engines.native.foreground` (GIL-free kernels); at most ``2 * jobs + 2``
    frames are in flight, so memory does not grow with the video. With ``measure``, ``motiongram`` or
    ``keep``, ``(mask, clean, FrameData)``: the mask measured, its motiongram lines, the frame's samples,
    made in the same thread as the mask.
    """
    threads = resolve_jobs(jobs)
    pending: list[Future] = []
    extra = measure or motiongram or keep
    with ThreadPoolExecutor(threads, thread_name_prefix="magicmask-frame") as pool:
        try:
            for samples in frames:
                if extra:
                    pending.append(pool.submit(_foreground_and, background, native.Picture(samples), params, measure, motiongram, keep))
                else:
                    pending.append(pool.submit(native.foreground, background, native.Picture(samples), params))
                if len(pending) >= 2 * threads + 2:
                    yield pending.pop(0).result()
            while pending:
                yield pending.pop(0).result()
        finally:
            for future in pending:
                future.cancel()


def _channels(samples: np.ndarray, pix_fmt: str) -> np.ndarray:
    """8-bit samples as the encoder's raw format wants them: gray replicated into R, G and B for rgb24."""
    if pix_fmt == "rgb24" and samples.shape[2] == 1:
        return np.repeat(samples, 3, axis=2)
    return samples


class _Writer(threading.Thread):
    """Writes one output's frames to its encoder, in order, while the next ones are computed."""

    def __init__(self, encoder: Encoder, pick: Callable, on_frame: Callable[[], None] | None, depth: int):
        super().__init__(daemon=True, name=f"magicmask-writer-{encoder.output.name}")
        self.encoder = encoder
        self.pick = pick
        self.on_frame = on_frame
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.stop = threading.Event()

    def run(self):
        while True:
            result = self.queue.get()
            if result is None:
                return
            if self.error is not None or self.stop.is_set():
                continue  # drain, so that the producer never blocks
            try:
                self.encoder.write(self.pick(result))
                if self.on_frame is not None:
                    self.on_frame()
            except BaseException as exc:  # handed to the main thread
                self.error = exc


def foreground_video(
    video: str | os.PathLike,
    output: str | os.PathLike,
    masks: str | os.PathLike | None = None,
    background: str | os.PathLike = "first",
    params: MaskParams = MaskParams(),
    crf: float = 18,
    lossless: bool = False,
    preset: str = DEFAULT_PRESET,
    jobs: int | None = None,
    progress: Progress | None = None,
    *,
    source: str = "keyframes",
    samples: int = DEFAULT_SAMPLES,
    spans=(),
    threshold: str | None = None,
    data: str | os.PathLike | None = None,
    motiongram: str | os.PathLike | None = None,
    alpha: str | os.PathLike | None = None,
) -> VideoResult:
    """Write the clean (foreground) video of ``video``: every frame multiplied by its mask, as the blog does.

    Reproduces, for every decoded frame ``F`` (the keyframes' RGB or gray format)::

        convert BG F -compose difference -composite -threshold 5% -blur 0x3 -threshold 20% -blur 0x3 F-mask.tiff
        convert F F-mask.tiff -compose multiply -flatten F-clean.jpg

    and encodes the clean frames (before any JPEG compression) with H.264; audio streams are copied.
    A video of odd width or height gains one black column (right) and/or row (bottom) in the default
    4:2:0 encoding, which holds even sizes only; the lossless one keeps the size (see
    :func:`~magicmask.media.encode.encoded_size`).

    Parameters
    ----------
    video : path
        The video file.
    output : path
        The clean video (e.g. ``clean.mp4``), written through a temporary name and renamed when complete.
    masks : path, optional
        Also write the masks as a (gray) video.
    background : {'first', 'lighten', 'darken', 'mean', 'median'} or path
        See :func:`background_picture`; ``source``, ``samples`` and ``spans`` choose its frames as there.
    threshold : {'auto', 'adaptive'}, optional
        Learn the first threshold from the video, as ``magicmask run --threshold`` does: ``auto`` from the
        noise of the keyframes against the background, ``adaptive`` a per-pixel map learned with a median
        background (see :mod:`magicmask.thresholds`); ``params.threshold`` is then not used.
    params : MaskParams
        The thresholds and blurs of the chain.
    crf : float
        x264's constant rate factor (0..51, lower is better) for the lossy encoding.
    lossless : bool
        Encode every sample exactly (``libx264rgb -qp 0``, gray frames and masks as R = G = B); large files.
    preset : str
        x264's preset (``ultrafast`` .. ``veryslow``).
    jobs : int, optional
        Threads computing masks; every core by default.
    progress : callable, optional
        ``progress("video", done, total)``, called from a writer thread as frames are encoded.
    data : path, optional
        Also write the motion data of every frame, tab-separated (``motion.tsv``'s columns, see
        :mod:`magicmask.motion`; ``frame`` is the frame's index from 0, ``time`` its timestamp).
    motiongram : path, optional
        Also write the horizontal and vertical motiongrams of the masks as one PNG (needs matplotlib).
    alpha : path, optional
        Also write the video with the mask as alpha channel: ``.mov`` (ProRes 4444) or ``.webm`` (VP9);
        the frames' own colours, no audio.

    Returns
    -------
    VideoResult

    Raises
    ------
    MagicmaskError
        For a missing or unreadable video, a video with alpha, a background of another size, or when
        ffmpeg fails to decode or encode.
    """
    video = Path(video)
    output = Path(output)
    masks = Path(masks) if masks is not None else None
    data, motiongram, alpha = (Path(path) if path is not None else None for path in (data, motiongram, alpha))
    started = time.perf_counter()
    if motiongram is not None:
        from magicmask.motion import require_matplotlib

        require_matplotlib("--motiongram")
    if alpha is not None and alpha.suffix.lower() not in ALPHA_CODECS:
        raise MagicmaskError("a video with alpha is written as .mov (ProRes 4444) or .webm (VP9)", alpha, "end the name with .mov or .webm")
    times = frame_times(video)
    info = video_info(video, times)
    pix_fmt = _frame_format(video, info)
    named = {"the output": output, "--masks": masks, "--data": data, "--motiongram": motiongram, "--alpha": alpha}
    seen: dict[Path, str] = {}
    for option, target in named.items():
        if target is None:
            continue
        if target.resolve() == video.resolve():
            raise MagicmaskError("the output would overwrite the video", target, "choose another output name")
        if target.resolve() in seen:
            raise MagicmaskError(f"{option} and {seen[target.resolve()]} are the same file", target, f"choose another name for {option}")
        seen[target.resolve()] = option
    rate = frame_rate(video)
    audio = has_audio(video)
    if threshold is not None:
        Options(os.fspath(background), source, samples=samples, spans=tuple(spans), threshold=threshold)  # adaptive needs a median: said in one line
    maps: list | None = [] if threshold == "adaptive" else None
    picture = background_picture(video, background, info, source=source, samples=samples, spans=spans, progress=progress, jobs=jobs, maps=maps)
    warnings: list[str] = []
    learned = None
    if threshold == "auto":
        from magicmask.thresholds import threshold_of

        with contextlib.closing(iter_frames(video, pix_fmt, info=info, keyframes_only=True)) as keyframes:
            learned = threshold_of((samples_, picture.samples) for samples_ in keyframes)
        params = replace(params, threshold=learned, threshold_map=None)
    encode = dict(crf=crf, lossless=lossless, preset=preset)
    clean_fmt = "gray" if info.channels == 1 and not lossless else "rgb24"
    threads = resolve_jobs(jobs)
    depth = 4  # finished frames waiting for the encoder: enough to keep it busy
    done = 0

    def frame_done():
        nonlocal done
        done += 1
        if progress is not None:
            progress("video", done, info.frames)

    if progress is not None:
        progress("video", 0, info.frames)
    with contextlib.ExitStack() as stack:
        if maps:  # the learned map, as the file the chain reads (a temporary folder, gone after the run)
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="magicmask-map-")))
            (folder / "threshold.tiff").write_bytes(native.tiff_bytes(np.ascontiguousarray(maps[0][:, :, :1]), picture, chromaticities=False))
            params = replace(params, threshold_map=os.fspath(folder / "threshold.tiff"))
            learned = "a per-pixel threshold map"
        clean_tmp = stack.enter_context(atomic_path(output))
        masks_tmp = stack.enter_context(atomic_path(masks)) if masks is not None else None
        alpha_tmp = stack.enter_context(atomic_path(alpha)) if alpha is not None else None
        data_tmp = stack.enter_context(atomic_path(data)) if data is not None else None
        gram_tmp = stack.enter_context(atomic_path(motiongram)) if motiongram is not None else None
        measured = Measured(data is not None, motiongram is not None, alpha is not None)
        writers: list[_Writer] = []
        try:
            args = encode_command(clean_tmp, info.width, info.height, clean_fmt, rate, audio_from=video if audio else None, **encode)
            writers.append(_Writer(Encoder(args, output), lambda result: _channels(result[1], clean_fmt), frame_done, depth))
            if masks_tmp is not None:
                masks_fmt = "rgb24" if lossless else "gray"
                args = encode_command(masks_tmp, info.width, info.height, masks_fmt, rate, **encode)
                writers.append(_Writer(Encoder(args, masks), lambda result: _channels(native.to_char(result[0]), masks_fmt), None, depth))
            if alpha_tmp is not None:
                alpha_fmt = "rgba" if info.dtype == np.uint8 else "rgba64le"
                writers.append(_Writer(Encoder(alpha_command(alpha_tmp, info.width, info.height, alpha_fmt, rate), alpha), lambda result: _rgba(result[2].frame, result[0]), None, depth))
            for writer in writers:
                writer.start()
            count = _stream(video, pix_fmt, info, picture, params, threads, writers, warnings, measured)
            for writer in writers:
                writer.queue.put(None)
            for writer in writers:
                writer.join()
            for writer in writers:
                if writer.error is not None:
                    raise writer.error
            for writer in writers:
                writer.encoder.close()
            if data_tmp is not None:
                from magicmask.motion import tsv_bytes

                names = [str(index) for index in range(count)]
                data_tmp.write_bytes(tsv_bytes(measured.track.rows(names, [float(t) for t in times])))
            if gram_tmp is not None and count:
                title = f"{video.name}: motiongrams of the masks, {count} frames"
                gram_tmp.write_bytes(measured.gram.picture(float(times[0]) if len(times) else 0.0, info.duration, title))
        except BaseException:
            for writer in writers:
                writer.stop.set()
                writer.encoder.kill()
                with contextlib.suppress(queue.Full):
                    writer.queue.put_nowait(None)
            for writer in writers:
                writer.join(timeout=10)
            raise
    if count == 0:
        raise MagicmaskError("ffmpeg decoded no frame", video, "check that the video decodes (ffplay)")
    from magicmask.media.encode import encoded_size

    size = encoded_size(info.width, info.height, lossless)
    return VideoResult(output, masks, count, time.perf_counter() - started, audio, list(dict.fromkeys(warnings)), learned, size, (info.width, info.height), data, motiongram, alpha)


class Measured:
    """What is gathered from every frame's pass, in order: the motion data's track and the motiongrams."""

    def __init__(self, measure: bool, motiongram: bool, keep: bool):
        from magicmask.motion import Motiongram, Track

        self.measure, self.motiongram, self.keep = measure, motiongram, keep
        self.track = Track()
        self.gram = Motiongram()

    def add(self, index: int, data: FrameData) -> None:
        if data.measure is not None:
            self.track.add(index, data.measure)
        if data.lines is not None:
            self.gram.add(data.lines)


def _rgba(frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """RGB(A) samples for the alpha video's raw input: the frame's colours (gray made R = G = B), the mask as alpha."""
    from magicmask.cutout import cutout_samples

    samples = cutout_samples(frame, mask)
    if samples.shape[2] == 2:
        samples = samples[:, :, [0, 0, 0, 1]]
    return np.ascontiguousarray(samples)


def _stream(video, pix_fmt, info, picture, params, threads, writers, warnings=None, measured: Measured | None = None) -> int:
    """Decode, compute on ``threads`` threads and hand every frame's ``(mask, clean)`` to each writer, in order
    (and its :class:`FrameData` to ``measured``)."""
    count = 0
    frames = iter_frames(video, pix_fmt, info=info, warnings=warnings)
    asked = dict(measure=measured.measure, motiongram=measured.motiongram, keep=measured.keep) if measured is not None else {}
    results = foreground_frames(frames, picture, params, threads, **asked)
    try:
        for result in results:
            if any(writer.error is not None for writer in writers):
                break
            for writer in writers:
                writer.queue.put(result)  # blocks while the writer is ``depth`` frames behind
            if len(result) > 2:
                measured.add(count, result[2])
            count += 1
    finally:
        results.close()
        frames.close()
    return count
