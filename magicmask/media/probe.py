"""What a video holds, asked of ffprobe: its video stream, pixel format, frame times, keyframes and audio.

Where ffprobe is not installed (imageio-ffmpeg's bundled ffmpeg comes without it), the same answers come
from one ffmpeg run over the video stream's packets (:mod:`magicmask.media.packets`).
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG

import numpy as np

from magicmask.errors import MagicmaskError
from magicmask.media import packets
from magicmask.media.ffmpeg import INSTALL_HINT, check_video_path, ffmpeg_binary, file_url, tail

def _probe_command(video: Path) -> list[str]:
    """What :func:`ffmpeg.probe` runs: the container and every stream, as JSON."""
    return [ffmpeg_binary("ffprobe"), "-show_format", "-show_streams", "-of", "json", file_url(video)]


def _has_ffprobe() -> bool:
    return shutil.which("ffprobe") is not None


def _probe_info(video: Path) -> dict:
    """ffprobe's JSON for ``video`` (a checked path), from :func:`probe_soon`'s process when it was started;
    kept for the next call about the same unchanged file (a run asks several times: keyframes, their times)."""
    key = _probed_key(_identity_of(video))
    with _PROBED_LOCK:
        known = _PROBED.get(key)
    if known is not None:
        return known
    if not _has_ffprobe():
        info = packets.read(video).info
    else:
        info = _probe_json(_probe_command(video), video, started=_started_probe(video), failed="ffmpeg cannot read this as a video", hint="pass a video file (e.g. MP4)", lines=1)
    if key is not None:
        with _PROBED_LOCK:
            while len(_PROBED) >= _PROBED_KEPT:
                _PROBED.pop(next(iter(_PROBED)))
            _PROBED[key] = info
    return info


_PROBED: dict[tuple, dict] = {}
_PROBED_LOCK = threading.Lock()
_PROBED_KEPT = 64


def _probed_key(identity: tuple | None) -> tuple | None:
    """The key of a file's answer in ``_PROBED``: the file, and the ffprobe that answered (None: packets.py)."""
    return None if identity is None else (*identity, shutil.which("ffprobe"))


def _probe_json(args: list[str], video, *, started: subprocess.Popen | None = None, failed: str = "ffprobe failed", hint: str = "check that the file is a complete video", lines: int = 2) -> dict:
    """Run ffprobe's ``args`` (or read ``started``, the same command already running) and parse its JSON;
    a failure says ``failed``, the last ``lines`` of ffprobe's message, and ``hint``."""
    process = started
    if process is None:
        args = [ffmpeg_binary("ffprobe"), *args[1:]] if args and args[0] == "ffprobe" else args
        try:
            process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except FileNotFoundError:
            raise MagicmaskError("ffprobe is not installed", hint=INSTALL_HINT) from None
    out, err = process.communicate()
    if process.returncode != 0:
        raise MagicmaskError(f"{failed}: {tail(err, lines)}", video, hint)
    try:
        return json.loads(out or b"{}")
    except ValueError:
        raise MagicmaskError("ffprobe printed no readable answer", video, hint) from None


_EARLY: dict[tuple, subprocess.Popen] = {}


_EARLY_LOCK = threading.Lock()


def _identity_of(video: Path) -> tuple | None:
    try:
        stat = video.stat()
    except OSError:
        return None
    # the inode and the change time too: a file replaced by one of the same size and modification time
    # (cp -p, rsync -t) is another file
    return (os.path.realpath(video), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns) if S_ISREG(stat.st_mode) else None


def probe_soon(video: str | os.PathLike) -> None:
    """Start ffprobe on ``video`` now (for example while the command line's modules load); the next
    :func:`probe` of the same, unchanged file reads its answer instead of starting another. Nothing is
    started for a file already probed.

    Does nothing when ``video`` is not a file or ffprobe is missing: :func:`probe` then says why.
    """
    key = _identity_of(Path(video))
    if key is None or shutil.which("ffprobe") is None:
        return
    with _PROBED_LOCK:
        if _probed_key(key) in _PROBED:
            return
    with _EARLY_LOCK:
        if key not in _EARLY:
            if not _EARLY:
                atexit.register(_reap_early)
            _EARLY[key] = subprocess.Popen(_probe_command(Path(key[0])), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _started_probe(video: Path) -> subprocess.Popen | None:
    key = _identity_of(video)
    with _EARLY_LOCK:
        return _EARLY.pop(key, None) if key is not None else None


def _reap_early() -> None:
    """Stop the probes :func:`probe_soon` started that nothing read (e.g. an up-to-date run)."""
    with _EARLY_LOCK:
        for process in _EARLY.values():
            if process.poll() is None:
                process.kill()
            process.communicate()
        _EARLY.clear()


def probe(video: str | os.PathLike) -> dict:
    """The first video stream of ``video`` as ffprobe reports it.

    Raises
    ------
    MagicmaskError
        When the file is missing, not a video ffmpeg can read, or has no video stream.
    """
    video = check_video_path(video)
    info = _probe_info(video)
    streams = [s for s in info.get("streams", []) if s.get("codec_type") == "video" and s.get("disposition", {}).get("attached_pic", 0) == 0]
    if not streams:
        raise MagicmaskError("the file has no video stream", video, "pass a video file with pictures in it")
    if not int(streams[0].get("width") or 0) or not int(streams[0].get("height") or 0):
        raise MagicmaskError("ffmpeg finds no frame size in the video stream", video, "check that the video decodes (ffplay), or re-encode it")
    return {**streams[0], "format_name": info.get("format", {}).get("format_name", "")}


def discards_safely(stream: dict) -> bool:
    """Whether keyframes of a stream from :func:`probe` can be extracted with ``-discard nokey`` (its
    container indexes keyframes, see :data:`INDEXED_CONTAINERS`)."""
    return bool(set(stream.get("format_name", "").split(",")) & set(INDEXED_CONTAINERS))


_DEEP = re.compile(r"(?:p|gray|ya|bayer_\w+?)(9|10|12|14|16|32)(?:le|be|f32le|f32be)?$|^(?:rgb48|bgr48|rgba64|bgra64|x2rgb10|x2bgr10|p010|p016|p210|p216|p410|p416|y210|xv30|xv36|grayf32)")


_ALPHA = re.compile(r"^(?:yuva|rgba|bgra|argb|abgr|gbrap|ya|rgba64|bgra64|pal8)")


def keyframe_pix_fmt(source_pix_fmt: str | None) -> str:
    """The pixel format keyframes are written in, for a source of ``source_pix_fmt``.

    ffmpeg's TIFF encoder would pick YCbCr 4:2:0 for ordinary video, which ImageMagick 6.9.11
    misreads (green, striped frames); so keyframes are RGB: ``rgb24`` for 8-bit sources,
    ``rgb48le`` for deeper ones, keeping gray and alpha where the source has them.
    """
    name = (source_pix_fmt or "").lower()
    deep = bool(_DEEP.search(name))
    if name.startswith(("gray", "ya", "monow", "monob")):
        if name.startswith("ya"):
            return "ya16le" if deep else "ya8"
        return "gray16le" if deep else "gray"
    if _ALPHA.match(name) and name != "pal8":
        return "rgba64le" if deep else "rgba"
    return "rgb48le" if deep else "rgb24"


# Containers whose demuxer marks keyframe packets from the file's own index of sync samples (MP4's
# stss, Matroska's key flags): there, dropping the other packets before the decoder
# (-discard nokey) keeps exactly the frames -skip_frame nokey decodes, and lets ffmpeg decode
# keyframes on several threads (with -skip_frame alone it uses one).
INDEXED_CONTAINERS = ("mov", "mp4", "matroska", "webm")


RAW_FORMATS = {
    "rgb24": (3, "u1"), "rgb48le": (3, "<u2"),
    "gray": (1, "u1"), "gray16le": (1, "<u2"),
    "rgba": (4, "u1"), "rgba64le": (4, "<u2"),
    "ya8": (2, "u1"), "ya16le": (2, "<u2"),
}
"""The raw pixel formats frames are read in (those :func:`keyframe_pix_fmt` picks): channels and NumPy dtype."""


@dataclass(frozen=True)
class VideoInfo:
    """What the statistics need to know about a video before decoding it.

    ``frames`` counts the video stream's packets (one per frame, read without decoding);
    ``duration`` is the span the frames cover, ``frames / fps`` for a constant frame rate.
    """

    width: int
    height: int
    fps: float
    frames: int
    duration: float
    pix_fmt: str
    """The source's pixel format (e.g. ``yuv420p``)."""
    frame_pix_fmt: str
    """The RGB(A)/gray format frames are read in, the keyframes' format (see :func:`keyframe_pix_fmt`)."""

    @property
    def channels(self) -> int:
        return RAW_FORMATS[self.frame_pix_fmt][0]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(RAW_FORMATS[self.frame_pix_fmt][1])

    @property
    def frame_bytes(self) -> int:
        """Bytes of one decoded frame: ``width * height * channels * bytes per sample``."""
        return self.width * self.height * self.channels * self.dtype.itemsize


def _rate(text: str | None) -> float:
    try:
        num, _, den = (text or "0/0").partition("/")
        return float(num) / float(den or 1)
    except (ValueError, ZeroDivisionError):
        return 0.0


def frame_times_command(video: str | os.PathLike) -> list[str]:
    """The ffprobe command listing the timestamp of every packet of the first video stream (no decoding)."""
    return ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time,dts_time", "-of", "json", file_url(video)]


def keyframe_times_command(video: str | os.PathLike) -> list[str]:
    """The ffprobe command listing the timestamps of the keyframes, decoded as :func:`keyframes_command` decodes them."""
    return ["ffprobe", "-v", "error", "-skip_frame", "nokey", "-select_streams", "v:0", "-show_entries", "frame=best_effort_timestamp_time,pts_time", "-of", "json", file_url(video)]


def _filled(times: np.ndarray, fps: float, index: np.ndarray | None = None) -> np.ndarray:
    """``times`` with each missing one (NaN) at its frame's ``index / fps`` (by default its position), as
    :func:`_times` fills them, sorted."""
    index = np.arange(len(times), dtype=np.float64) if index is None else index.astype(np.float64)
    return np.sort(np.where(np.isnan(times), index / fps if fps > 0 else index, times))


def _fps(stream: dict) -> float:
    """The stream's frame rate in frames per second (its average, else its base rate; 0 when unknown)."""
    return _rate(stream.get("avg_frame_rate")) or _rate(stream.get("r_frame_rate"))


def _times(entries: list[dict], keys: tuple[str, ...], fps: float) -> np.ndarray:
    values = []
    for index, entry in enumerate(entries):
        found = next((entry[key] for key in keys if entry.get(key) not in (None, "N/A")), None)
        values.append(float(found) if found is not None else (index / fps if fps > 0 else float(index)))
    return np.sort(np.asarray(values, dtype=np.float64))


def frame_times(video: str | os.PathLike) -> np.ndarray:
    """The presentation time (seconds) of every frame of ``video``, in display order.

    Read from the packets (fast: nothing is decoded); a packet without a timestamp gets
    ``index / fps``. One time per frame that :func:`iter_frames` yields.
    """
    video = check_video_path(video)
    stream = probe(video)
    fps = _fps(stream)
    if not _has_ffprobe():
        return _filled(packets.read(video).times, fps)
    entries = _probe_json(frame_times_command(video), video).get("packets", [])
    return _times(entries, ("pts_time", "dts_time"), fps)


def keyframe_times(video: str | os.PathLike) -> np.ndarray:
    """The presentation time (seconds) of each keyframe :func:`extract_keyframes` writes, in order (``t01`` first)."""
    video = check_video_path(video)
    stream = probe(video)
    fps = _fps(stream)
    if not _has_ffprobe():
        return _filled(packets.keyframe_times(video), fps)
    entries = _probe_json(keyframe_times_command(video), video).get("frames", [])
    return _times(entries, ("best_effort_timestamp_time", "pts_time"), fps)


def keyframe_packet_times(video: str | os.PathLike) -> np.ndarray:
    """The presentation times (seconds) of the keyframe packets of ``video``, in order: read without decoding
    (the keyframes :func:`extract_keyframes` writes, unless the file is damaged: compare the counts)."""
    video = check_video_path(video)
    stream = probe(video)
    if not _has_ffprobe():
        read = packets.read(video)
        return _filled(read.times[read.keys], _fps(stream), np.flatnonzero(read.keys))
    command = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time,dts_time,flags", "-of", "json", file_url(video)]
    entries = [entry for entry in _probe_json(command, video).get("packets", []) if "K" in str(entry.get("flags", ""))]
    return _times(entries, ("pts_time", "dts_time"), _fps(stream))


def video_info(video: str | os.PathLike, times: np.ndarray | None = None) -> VideoInfo:
    """Size, frame rate, frame count, duration and pixel formats of ``video``'s first video stream.

    Parameters
    ----------
    video : path
        The video file.
    times : array, optional
        :func:`frame_times` of the video, when already known (saves one ffprobe run).

    Raises
    ------
    MagicmaskError
        When the file is missing, not a video, or has no frame.
    """
    video = check_video_path(video)
    stream = probe(video)
    times = frame_times(video) if times is None else times
    if len(times) == 0:
        raise MagicmaskError("the video has no frame", video, "check that the video decodes (ffplay), or re-encode it")
    fps = _fps(stream)
    step = float(np.median(np.diff(times))) if len(times) > 1 else (1.0 / fps if fps > 0 else 0.0)
    duration = float(times[-1] - times[0]) + step
    if fps <= 0:
        fps = len(times) / duration if duration > 0 else 0.0
    source = stream.get("pix_fmt") or ""
    return VideoInfo(int(stream["width"]), int(stream["height"]), fps, len(times), duration, source, keyframe_pix_fmt(source))


def keyframe_count_command(video: str | os.PathLike) -> list[str]:
    """The ffprobe command printing the flags of every packet of the first video stream (``K`` = keyframe)."""
    return ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=flags", "-of", "csv=p=0", file_url(video)]


def keyframe_count(video: str | os.PathLike) -> int:
    """The number of keyframe packets of ``video``: what :func:`extract_keyframes` will write, read without
    decoding (an estimate for progress bars; a damaged file can yield fewer).

    Raises
    ------
    MagicmaskError
        When the file is missing or ffprobe cannot read it.
    """
    video = check_video_path(video)
    if not _has_ffprobe():
        return int(packets.read(video).keys.sum())
    args = [ffmpeg_binary("ffprobe"), *keyframe_count_command(video)[1:]]
    done = subprocess.run(args, capture_output=True)
    if done.returncode != 0:
        raise MagicmaskError(f"ffprobe failed: {tail(done.stderr)}", video, "check that the file is a complete video")
    return sum(1 for line in done.stdout.splitlines() if line.strip().startswith(b"K"))


def has_audio(video: str | os.PathLike) -> bool:
    """True when ``video`` has an audio stream."""
    video = check_video_path(video)
    info = _probe_info(video)
    return any(s.get("codec_type") == "audio" for s in info.get("streams", []))


def frame_rate(video: str | os.PathLike) -> str:
    """The frame rate of ``video``'s first video stream as ffprobe gives it, a fraction (``25/1``, ``30000/1001``)."""
    stream = probe(video)
    for key in ("avg_frame_rate", "r_frame_rate"):
        if _rate(stream.get(key)) > 0:
            return stream[key]
    raise MagicmaskError("the video stream has no frame rate", video, "re-encode it with a constant frame rate")
