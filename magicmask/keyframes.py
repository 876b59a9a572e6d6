"""Keyframes out of a video with ffmpeg: the seed's first command.

All use of ffmpeg goes through this module. Commands are built as data (ffmpeg-python), so they
can be shown and tested without running ffmpeg, and then run with ffmpeg's stderr kept for errors.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from stat import S_ISREG

import ffmpeg

from magicmask.errors import MagicmaskError
from magicmask.files import TEMP_PREFIX, sweep_stale, temp_prefix, write_atomic

SEED_COMMAND = "ffmpeg -skip_frame nokey -i *.mp4 -vsync 0 -r 30 -f image2 t%02d.tiff"
_INSTALL_HINT = "install it: apt-get install ffmpeg"


def ffmpeg_binary(name: str = "ffmpeg") -> str:
    """The path of ``ffmpeg`` (or ``ffprobe``), or an error saying which package to install."""
    found = shutil.which(name)
    if found is None:
        raise MagicmaskError(f"{name} is not installed", hint=_INSTALL_HINT)
    return found


def file_url(path: str | os.PathLike, pattern: bool = False) -> str:
    """``path`` as an ffmpeg ``file:`` URL: a name starting with ``-`` or holding ``:`` stays a file name.

    With ``pattern`` (an image2 output such as ``DIR/%09d.tiff``), ``%`` in the folder part is escaped
    so that only the file name's number pattern is expanded.
    """
    path = os.path.abspath(os.fspath(path))
    if pattern:
        folder, name = os.path.split(path)
        path = os.path.join(folder.replace("%", "%%"), name)
    return "file:" + path


_FILE_URL = re.compile(r"""(^|[\s'"(\[])file:(?=/)""", re.M)  # the ``file:`` that file_url adds, which users never typed
_ADDRESS = re.compile(r"\[(\S+) @ 0x[0-9a-f]+\]")  # "[mpeg4 @ 0x5572afaf5f00]": the decoder's address in memory


def _tail(stderr: bytes | str, lines: int = 2) -> str:
    """The last ``lines`` useful lines of ffmpeg's ``stderr`` on one line, without ``file:`` prefixes and addresses."""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    text = _ADDRESS.sub(r"[\1]", _FILE_URL.sub(r"\1", text))
    useful = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith(("  ", "ffmpeg version", "built with", "configuration:", "lib"))]
    return " / ".join(useful[-lines:]) if useful else "no message"


def damage_warning(stderr: bytes | str) -> str | None:
    """The one-line warning for what ffmpeg printed while decoding successfully, or None when it printed nothing.

    ffmpeg runs with ``-loglevel error``: a healthy file prints nothing, so any message is an error it
    decoded past (a damaged or truncated file: ``Error at MB: 662``, ``overread 8``), never chatter.
    """
    if not stderr or not stderr.strip():
        return None
    return f"ffmpeg reported decoding errors (the video may be damaged or truncated): {_tail(stderr)}"


def check_video_path(video) -> Path:
    video = Path(video)
    if not video.exists():
        raise MagicmaskError("video not found", video, "check the path")
    if video.is_dir():
        raise MagicmaskError("video is a folder", video, "pass a video file")
    if not os.access(video, os.R_OK):
        raise MagicmaskError("cannot read video", video, "check its permissions")
    return video


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
    return {**streams[0], "format_name": info.get("format", {}).get("format_name", "")}


def _probe_command(video: Path) -> list[str]:
    """What :func:`ffmpeg.probe` runs: the container and every stream, as JSON."""
    return [ffmpeg_binary("ffprobe"), "-show_format", "-show_streams", "-of", "json", file_url(video)]


def _probe_info(video: Path) -> dict:
    """ffprobe's JSON for ``video`` (a checked path), from :func:`probe_soon`'s process when it was started."""
    return _probe_json(_probe_command(video), video, started=_started_probe(video), failed="ffmpeg cannot read this as a video", hint="pass a video file (e.g. MP4)", lines=1)


def _probe_json(args: list[str], video, *, started: subprocess.Popen | None = None, failed: str = "ffprobe failed", hint: str = "check that the file is a complete video", lines: int = 2) -> dict:
    """Run ffprobe's ``args`` (or read ``started``, the same command already running) and parse its JSON;
    a failure says ``failed``, the last ``lines`` of ffprobe's message, and ``hint``."""
    process = started
    if process is None:
        args = [ffmpeg_binary("ffprobe"), *args[1:]] if args and args[0] == "ffprobe" else args
        try:
            process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except FileNotFoundError:
            raise MagicmaskError("ffprobe is not installed", hint=_INSTALL_HINT) from None
    out, err = process.communicate()
    if process.returncode != 0:
        raise MagicmaskError(f"{failed}: {_tail(err, lines)}", video, hint)
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
    return (os.path.realpath(video), stat.st_size, stat.st_mtime_ns) if S_ISREG(stat.st_mode) else None


def probe_soon(video: str | os.PathLike) -> None:
    """Start ffprobe on ``video`` now (for example while the command line's modules load); the next
    :func:`probe` of the same, unchanged file reads its answer instead of starting another.

    Does nothing when ``video`` is not a file or ffprobe is missing: :func:`probe` then says why.
    """
    key = _identity_of(Path(video))
    if key is None or shutil.which("ffprobe") is None:
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


def keyframes_command(video: str | os.PathLike, pattern: str | os.PathLike, pix_fmt: str = "rgb24", discard: bool = False) -> list[str]:
    """The ffmpeg command line writing the keyframes of ``video`` to ``pattern`` (e.g. ``t%02d.tiff``).

    Reproduces the seed's::

        ffmpeg -skip_frame nokey -i *.mp4 -vsync 0 -r 30 -f image2 t%02d.tiff

    with ``-fps_mode passthrough`` in place of the deprecated ``-vsync 0 -r 30`` (same frames, no
    duplicates) and an RGB pixel format (see :func:`keyframe_pix_fmt`). ``discard`` adds ``-discard
    nokey`` (for :data:`INDEXED_CONTAINERS`; see :func:`discards_safely`): same frames, decoded sooner.
    """
    options = {"skip_frame": "nokey", "discard": "nokey"} if discard else {"skip_frame": "nokey"}
    stream = ffmpeg.input(file_url(video), **options)
    stream = stream.output(file_url(pattern, pattern=True), f="image2", fps_mode="passthrough", pix_fmt=pix_fmt)
    return _with_quiet(stream.compile(cmd="ffmpeg"))


def _with_quiet(args: list[str], *extra: str) -> list[str]:
    """``args`` with ffmpeg's global options for quiet, non-interactive runs placed first."""
    return [args[0], "-hide_banner", "-nostdin", "-loglevel", "error", *extra, *args[1:]]


def frame_names(count: int) -> list[str]:
    """Keyframe names for ``count`` frames: ``t01.tiff`` .. ``t99.tiff``, widened past 99 so they keep sorting."""
    width = max(2, len(str(count)))
    return [f"t{index:0{width}d}.tiff" for index in range(1, count + 1)]


def _binary(args: list[str]) -> list[str]:
    """``args`` with ``ffmpeg`` replaced by the installed binary's path."""
    return [ffmpeg_binary(), *args[1:]] if args and args[0] == "ffmpeg" else args


def _run(args: list[str], video, what: str, **kwargs) -> subprocess.CompletedProcess:
    args = _binary(args)
    try:
        done = subprocess.run(args, capture_output=True, **kwargs)
    except FileNotFoundError:
        raise MagicmaskError("ffmpeg is not installed", hint=_INSTALL_HINT) from None
    if done.returncode != 0:
        raise MagicmaskError(f"ffmpeg failed to {what}: {_tail(done.stderr)}", video, "check that the file is a complete video")
    return done


MARKER_NAME = TEMP_PREFIX + "keyframes.json"


def _same_bytes(a: Path, b: Path) -> bool:
    try:
        if a.stat().st_size != b.stat().st_size:
            return False
    except FileNotFoundError:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            chunk = fa.read(1 << 20)
            if chunk != fb.read(1 << 20):
                return False
            if not chunk:
                return True


class Keyframes:
    """The keyframes of a video, written as ``out_dir/t01.tiff``, ``t02.tiff``, ... as ffmpeg makes them.

    Iterating runs ffmpeg (see :func:`keyframes_command`) into a temporary folder inside
    ``out_dir`` and yields each keyframe as soon as it is whole (ffmpeg has begun the next one, or
    has ended), renamed into place: work on early keyframes can start while ffmpeg still runs, and
    ``out_dir`` never holds a half-written keyframe. A keyframe identical to the file already there is
    not replaced, so a re-run leaves it (and its modification time) as it was. When an earlier
    complete extraction of the same video is recorded in ``out_dir``, its keyframes are used as they are.

    ffmpeg exits 0 on a damaged or truncated file it decoded past; what it printed then becomes
    :attr:`warnings` (one line each, see :func:`damage_warning`), kept in the extraction's record so that
    a re-run using its keyframes says it too.

    Names keep the seed's two digits up to 99 keyframes; :meth:`finish` widens them all (``t001``...)
    when there are more, renaming outputs made from them too, so names keep sorting.
    """

    def __init__(self, video: str | os.PathLike, out_dir: str | os.PathLike):
        self.video = check_video_path(video)
        self.stream = probe(self.video)
        self.pix_fmt = keyframe_pix_fmt(self.stream.get("pix_fmt"))
        self.out_dir = Path(out_dir)
        self.paths: list[Path] = []
        self.warnings: list[str] = []
        """One-line warnings (see :func:`damage_warning`), complete once iteration has ended."""
        self._recorded = self._read_marker()
        self._width = max(2, len(str(self._recorded["count"]))) if self._recorded else 2

    def _identity(self) -> dict:
        stat = self.video.stat()
        return {"video": os.fspath(self.video.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "pix_fmt": self.pix_fmt}

    def _read_marker(self) -> dict | None:
        try:
            recorded = json.loads((self.out_dir / MARKER_NAME).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(recorded, dict) or {k: recorded.get(k) for k in self._identity()} != self._identity():
            return None
        names = frame_names(int(recorded.get("count", 0)))
        if not names or not all((self.out_dir / name).is_file() for name in names):
            return None
        return recorded

    def _name(self, index: int) -> str:
        return f"t{index:0{self._width}d}.tiff"

    def __iter__(self) -> Iterator[Path]:
        self._generator = self._generate()
        return self._generator

    def close(self) -> None:
        """Stop ffmpeg and remove the temporary folder, if an iteration is still under way."""
        generator = getattr(self, "_generator", None)
        if generator is not None:
            generator.close()

    def _generate(self) -> Iterator[Path]:
        sweep_stale(self.out_dir)  # what a killed run left here (its keyframe folder, half-written outputs)
        if self._recorded:
            self.warnings = [str(w) for w in self._recorded.get("warnings", []) if isinstance(w, str)]
            for name in frame_names(self._recorded["count"]):
                self.paths.append(self.out_dir / name)
                yield self.out_dir / name
            return
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=temp_prefix() + "keyframes-", dir=self.out_dir))
        except OSError as exc:
            raise MagicmaskError(f"cannot write here: {exc.strerror}", self.out_dir, "choose a folder you can write to") from None
        args = _binary(keyframes_command(self.video, work / "%09d.tiff", self.pix_fmt, discard=discards_safely(self.stream)))
        errors = tempfile.TemporaryFile()
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors)
        try:
            index = 1
            while True:
                current, following = work / f"{index:09d}.tiff", work / f"{index + 1:09d}.tiff"
                ended = process.poll() is not None
                if following.exists() or (ended and current.exists()):
                    if ended and process.returncode != 0:
                        break
                    yield self._place(current, index)
                    index += 1
                elif ended:
                    break
                else:
                    time.sleep(0.01)
            errors.seek(0)
            printed = errors.read()
            said = f": {_tail(printed)}" if process.returncode != 0 else ""
            if index == 1:
                raise MagicmaskError(f"ffmpeg found no keyframe in the video{said}", self.video, "check that the video plays, or re-encode it with keyframes")
            if process.returncode != 0:
                raise MagicmaskError(f"ffmpeg failed to extract keyframes{said}", self.video, "check that the file is a complete video")
            warning = damage_warning(printed)
            if warning is not None:
                self.warnings.append(warning)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            errors.close()
            shutil.rmtree(work, ignore_errors=True)

    def _place(self, source: Path, index: int) -> Path:
        target = self.out_dir / self._name(index)
        if _same_bytes(source, target):
            source.unlink()
        else:
            os.replace(source, target)
        self.paths.append(target)
        return target

    def finish(self, output_suffixes: tuple[str, ...] = ()) -> list[Path]:
        """Widen the names when there are more than 99 keyframes, record the extraction, return the keyframes.

        ``output_suffixes`` (e.g. ``("-mask.tiff", "-clean.jpg")``) are files made from the keyframes
        in ``out_dir`` that are renamed with them.
        """
        final = [self.out_dir / name for name in frame_names(len(self.paths))]
        if final != self.paths:
            for old, new in zip(self.paths, final):
                os.replace(old, new)
                for suffix in output_suffixes:
                    made = old.with_name(old.stem + suffix)
                    if made.exists():
                        os.replace(made, new.with_name(new.stem + suffix))
            self.paths = final
        if not self._recorded:
            write_atomic(self.out_dir / MARKER_NAME, json.dumps({**self._identity(), "count": len(final), "warnings": self.warnings}).encode())
        return list(self.paths)


def extract_keyframes(
    video: str | os.PathLike,
    out_dir: str | os.PathLike,
    progress: Callable[[Path], None] | None = None,
) -> list[Path]:
    """Write the keyframes of ``video`` as ``out_dir/t01.tiff``, ``t02.tiff``, ... and return them.

    Reproduces the seed's first command (see :func:`keyframes_command` and :class:`Keyframes`).

    Raises
    ------
    MagicmaskError
        When the video is missing or unreadable, has no video stream, or no keyframe decodes.
    """
    keyframes = Keyframes(video, out_dir)
    for path in keyframes:
        if progress is not None:
            progress(path)
    return keyframes.finish()


def encode_raw_video(raw, path, width: int, height: int, pix_fmt: str, fps: int, keyint: int, deep: bool = False) -> Path:
    """Encode raw frames to an H.264 MP4 with a keyframe every ``keyint`` frames (10-bit when ``deep``).

    ``raw`` is the frames' bytes, or an iterable of byte strings (e.g. one per frame) streamed to ffmpeg.
    """
    source = ffmpeg.input("pipe:", f="rawvideo", pix_fmt=pix_fmt, s=f"{width}x{height}", r=fps)
    options = dict(vcodec="libx264", g=keyint, keyint_min=keyint, sc_threshold=0, bf=0, crf=18, preset="medium")
    options["pix_fmt"] = "yuv420p10le" if deep else "yuv420p"
    args = _binary(_with_quiet(source.output(file_url(path), **options).compile(cmd="ffmpeg"), "-y"))
    chunks = [raw] if isinstance(raw, (bytes, bytearray, memoryview)) else raw
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors)
        try:
            for chunk in chunks:
                process.stdin.write(chunk)
            process.stdin.close()
        except BrokenPipeError:
            pass
        finally:
            if process.wait() != 0:
                errors.seek(0)
                raise MagicmaskError(f"ffmpeg failed to encode the video: {_tail(errors.read())}", path)
    return Path(path)


def version() -> str:
    """ffmpeg's version line."""
    done = subprocess.run([ffmpeg_binary(), "-version"], capture_output=True, text=True)
    return done.stdout.splitlines()[0] if done.stdout else "unknown"


# --- Every decoded frame: timestamps and the raw pipe (issue 9) --------------------------------------
#
# ``--from video`` computes backgrounds over every decoded frame. Frames come through ffmpeg's raw pipe
# (``-f rawvideo -pix_fmt rgb24 pipe:``) one at a time: nothing is written to disk and the video is
# never held whole. Timestamps come from ffprobe: packets for every frame (no decoding), and the
# keyframes decoded as :func:`extract_keyframes` decodes them (``-skip_frame nokey``).

import collections  # noqa: E402  (kept with the code that uses them)
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402

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
    entries = _probe_json(frame_times_command(video), video).get("packets", [])
    return _times(entries, ("pts_time", "dts_time"), _rate(stream.get("avg_frame_rate")) or _rate(stream.get("r_frame_rate")))


def keyframe_times(video: str | os.PathLike) -> np.ndarray:
    """The presentation time (seconds) of each keyframe :func:`extract_keyframes` writes, in order (``t01`` first)."""
    video = check_video_path(video)
    stream = probe(video)
    entries = _probe_json(keyframe_times_command(video), video).get("frames", [])
    return _times(entries, ("best_effort_timestamp_time", "pts_time"), _rate(stream.get("avg_frame_rate")) or _rate(stream.get("r_frame_rate")))


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
    fps = _rate(stream.get("avg_frame_rate")) or _rate(stream.get("r_frame_rate"))
    step = float(np.median(np.diff(times))) if len(times) > 1 else (1.0 / fps if fps > 0 else 0.0)
    duration = float(times[-1] - times[0]) + step
    if fps <= 0:
        fps = len(times) / duration if duration > 0 else 0.0
    source = stream.get("pix_fmt") or ""
    return VideoInfo(int(stream["width"]), int(stream["height"]), fps, len(times), duration, source, keyframe_pix_fmt(source))


def raw_frames_command(video: str | os.PathLike, pix_fmt: str = "rgb24", start: float | None = None, duration: float | None = None, keyframes_only: bool = False) -> list[str]:
    """The ffmpeg command writing every decoded frame of ``video`` to its standard output, raw.

    ::

        ffmpeg [-ss START] [-t DURATION] -i VIDEO -f rawvideo -fps_mode passthrough -pix_fmt rgb24 pipe:

    ``-fps_mode passthrough`` passes each decoded frame once (no duplicates, none dropped), as for keyframes.
    ``keyframes_only`` adds ``-skip_frame nokey`` before ``-i``: the keyframes, decoded as :func:`keyframes_command` decodes them.
    """
    options = {"skip_frame": "nokey"} if keyframes_only else {}
    if start is not None:
        options["ss"] = start
    if duration is not None:
        options["t"] = duration
    stream = ffmpeg.input(file_url(video), **options)
    stream = stream.output("pipe:", f="rawvideo", fps_mode="passthrough", pix_fmt=pix_fmt)
    return _with_quiet(stream.compile(cmd="ffmpeg"))


def iter_frames(
    video: str | os.PathLike,
    pix_fmt: str | None = None,
    start: float | None = None,
    duration: float | None = None,
    info: VideoInfo | None = None,
    keyframes_only: bool = False,
    *,
    warnings: list[str] | None = None,
) -> Iterator[np.ndarray]:
    """Yield the decoded frames of ``video`` one at a time, as ``(height, width, channels)`` arrays.

    The frames come from ffmpeg's raw pipe (:func:`raw_frames_command`): nothing is written to
    disk and only the frame being read is held here. Arrays are read-only views of the bytes read;
    ``uint8`` for 8-bit formats, ``uint16`` for 16-bit ones.

    Parameters
    ----------
    video : path
        The video file.
    pix_fmt : str, optional
        One of :data:`RAW_FORMATS`; by default the keyframes' format (:func:`keyframe_pix_fmt`).
    start, duration : float, optional
        Seconds: decode only from ``start`` (``-ss``), for ``duration`` (``-t``).
    info : VideoInfo, optional
        :func:`video_info` of the video, when already known.
    keyframes_only : bool
        Only the keyframes (``-skip_frame nokey``), the frames :func:`extract_keyframes` writes.
    warnings : list, optional
        Once the last frame is read, a one-line warning is appended to it when ffmpeg reported
        decoding errors but went on (a damaged or truncated file; see :func:`damage_warning`).

    Raises
    ------
    MagicmaskError
        When the video cannot be read, or ffmpeg fails or stops in the middle of a frame.
    """
    video = check_video_path(video)
    if info is None:
        stream = probe(video)
        width, height = int(stream["width"]), int(stream["height"])
        pix_fmt = pix_fmt or keyframe_pix_fmt(stream.get("pix_fmt"))
    else:
        width, height = info.width, info.height
        pix_fmt = pix_fmt or info.frame_pix_fmt
    if pix_fmt not in RAW_FORMATS:
        raise MagicmaskError(f"unknown raw pixel format {pix_fmt!r}", hint=f"use one of: {', '.join(RAW_FORMATS)}")
    channels, dtype = RAW_FORMATS[pix_fmt]
    dtype = np.dtype(dtype)
    size = width * height * channels * dtype.itemsize
    args = raw_frames_command(video, pix_fmt, start, duration, keyframes_only)
    args = [ffmpeg_binary(), *args[1:]]
    try:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=size)
    except FileNotFoundError:
        raise MagicmaskError("ffmpeg is not installed", hint=_INSTALL_HINT) from None
    widen_pipe(process.stdout)
    errors: collections.deque[bytes] = collections.deque(maxlen=50)
    drain = threading.Thread(target=lambda: errors.extend(process.stderr), daemon=True)  # a full stderr pipe would block ffmpeg
    drain.start()
    finished = False
    try:
        while True:
            data = process.stdout.read(size)
            if not data:
                break
            if len(data) != size:
                process.wait()
                drain.join()
                raise MagicmaskError(f"ffmpeg stopped in the middle of a frame: {_tail(b''.join(errors))}", video, "check that the file is a complete video")
            yield np.frombuffer(data, dtype=dtype).reshape(height, width, channels)
        process.wait()
        drain.join()
        finished = True
        if process.returncode != 0:
            raise MagicmaskError(f"ffmpeg failed to decode the video: {_tail(b''.join(errors))}", video, "check that the file is a complete video")
        warning = damage_warning(b"".join(errors))
        if warning is not None and warnings is not None:
            warnings.append(warning)
    finally:
        if not finished and process.poll() is None:
            process.kill()  # the caller stopped early (or failed): stop decoding
        process.stdout.close()
        process.wait()
        drain.join(timeout=5)


# --- Batches and the foreground video (issue 10) ------------------------------------------------------
#
# A batch sizes its progress bar from the keyframe packets (counted without decoding). ``magicmask video``
# streams decoded frames in (:func:`iter_frames`) and computed frames out to an H.264 encoder through
# its standard input (:class:`Encoder`): no frame is written to disk and the video is never held whole.


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
    args = [ffmpeg_binary("ffprobe"), *keyframe_count_command(video)[1:]]
    done = subprocess.run(args, capture_output=True)
    if done.returncode != 0:
        raise MagicmaskError(f"ffprobe failed: {_tail(done.stderr)}", video, "check that the file is a complete video")
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


def widen_pipe(pipe) -> None:
    """Give a pipe to or from ffmpeg a 1 MiB buffer (Linux; 64 KiB by default): frames of megabytes then
    cross it in far fewer wake-ups. Silently does nothing where the system does not allow it."""
    try:
        import fcntl

        fcntl.fcntl(pipe.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError, ValueError):
        pass


PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
"""libx264's presets, fastest first."""


def encoded_size(width: int, height: int, lossless: bool = False) -> tuple[int, int]:
    """The size of the video :func:`encode_command` writes from ``width`` x ``height`` frames.

    4:2:0 video (the default) holds an even number of columns and rows (H.264's chroma samples and
    cropping both come in pairs), so an odd size gains one black column on the right and/or one black row
    at the bottom; every computed pixel keeps its place. Lossless video (RGB 4:4:4) keeps any size.
    """
    if lossless:
        return width, height
    return width + width % 2, height + height % 2


def encode_command(
    output: str | os.PathLike,
    width: int,
    height: int,
    pix_fmt: str,
    rate: str,
    *,
    crf: float = 18,
    lossless: bool = False,
    preset: str = "medium",
    audio_from: str | os.PathLike | None = None,
) -> list[str]:
    """The ffmpeg command encoding raw frames read from its standard input into an H.264 ``output``.

    ::

        ffmpeg -f rawvideo -pix_fmt rgb24 -s WxH -framerate RATE -i pipe: [-i VIDEO -map 0:v -map 1:a -c:a copy]
               [-filter_complex format=yuv420p,pad=W2:H2:0:0:black] -c:v libx264 -crf CRF -preset PRESET -pix_fmt yuv420p OUTPUT

    4:2:0 needs an even width and height: frames of an odd size are padded with one black column on
    the right and/or one black row at the bottom (``pad``; see :func:`encoded_size`), black being what
    the clean video shows where there is no foreground and the masks video where there is no mask. The
    computed pixels keep their places: crop the decoded frames to ``WxH`` to get them back.

    ``lossless`` encodes every sample exactly: ``libx264rgb -qp 0`` (RGB 4:4:4; decoded back with
    ``-pix_fmt rgb24``, the samples are those written), for rgb24 frames only (libx264's 4:0:0 gray
    comes back from ffmpeg's decoder as limited-range YUV, not exactly). Not every player plays these;
    the default is ordinary 4:2:0 video. ``audio_from``: a video whose audio streams are copied as they are.
    """
    if pix_fmt not in ("rgb24", "gray") or (lossless and pix_fmt != "rgb24"):
        raise MagicmaskError(f"cannot encode raw {pix_fmt!r} frames{' losslessly' if lossless else ''}", hint="encode rgb24 frames (or gray ones, lossy)")
    if preset not in PRESETS:
        raise MagicmaskError(f"unknown x264 preset {preset!r}", hint=f"use one of: {', '.join(PRESETS)}")
    if not lossless and not 0 <= crf <= 51:
        raise MagicmaskError(f"--crf {crf} is outside 0..51", hint="use 0 (best) to 51 (smallest); 18 looks lossless to most eyes")
    source = ffmpeg.input("pipe:", f="rawvideo", pix_fmt=pix_fmt, s=f"{width}x{height}", framerate=rate)
    video = source.video
    if encoded_size(width, height, lossless) != (width, height):
        padded_width, padded_height = encoded_size(width, height, lossless)
        # padded after the conversion to 4:2:0, where black is Y=16 (pad's "black" on gray frames would be
        # 16 on a full-range scale, dark gray once converted), and no chroma sample mixes black with the picture
        video = video.filter("format", "yuv420p").filter("pad", padded_width, padded_height, 0, 0, "black")
    if lossless:
        options = dict(vcodec="libx264rgb", qp=0, preset=preset, pix_fmt="rgb24")
    else:
        options = dict(vcodec="libx264", crf=crf, preset=preset, pix_fmt="yuv420p")
    streams = [video]
    if audio_from is not None:
        streams.append(ffmpeg.input(file_url(audio_from)).audio)
        options["acodec"] = "copy"
    return _with_quiet(ffmpeg.output(*streams, file_url(output), **options).compile(cmd="ffmpeg"), "-y")


_ENCODE_HINTS = (
    ("No space left on device", "free some space on the disk"),
    ("Permission denied", "choose a folder you can write to"),
    ("Read-only file system", "choose a folder you can write to"),
    ("Unable to find a suitable output format", "end the output name with .mp4 or .mkv"),
    ("Could not find tag for codec", "the video's audio cannot be copied into this container: write .mkv"),
    ("Only VP8 or VP9 or AV1", "WebM cannot hold H.264: write .mp4 or .mkv"),
)


def encode_hint(stderr: bytes | str) -> str:
    """What to do about an encoding failure, from what ffmpeg printed (searched whole: the telling line is
    often not among the last)."""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    for needle, hint in _ENCODE_HINTS:
        if needle in text:
            return hint
    return "check free space, and write .mp4 or .mkv"


class Encoder:
    """An ffmpeg process encoding the raw frames written to it (see :func:`encode_command`).

    ``write`` blocks while ffmpeg is busy (the pipe is the only buffer); ``close`` waits for the file to be
    finished; ``kill`` stops ffmpeg at once (its partial file is the caller's to remove).
    """

    def __init__(self, args: list[str], output: str | os.PathLike):
        self.output = Path(output)
        self._written = args[-1].removeprefix("file:").encode()  # the temporary name ffmpeg writes: quoted as the output
        self.errors = tempfile.TemporaryFile()
        try:
            self.process = subprocess.Popen(_binary(args), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self.errors)
        except FileNotFoundError:
            self.errors.close()
            raise MagicmaskError("ffmpeg is not installed", hint=_INSTALL_HINT) from None
        widen_pipe(self.process.stdin)

    def _failure(self) -> MagicmaskError:
        self.process.wait()
        self.errors.seek(0)
        printed = self.errors.read().replace(self._written, os.fsencode(self.output)) if self._written else self.errors.read()
        return MagicmaskError(f"ffmpeg failed to encode the video: {_tail(printed)}", self.output, encode_hint(printed))

    def write(self, data) -> None:
        try:
            self.process.stdin.write(data)
        except (BrokenPipeError, ValueError):  # ffmpeg ended (ValueError: the pipe was closed by kill)
            raise self._failure() from None

    def close(self) -> None:
        try:
            self.process.stdin.close()
        except BrokenPipeError:
            pass
        if self.process.wait() != 0:
            raise self._failure()
        self.errors.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        self.process.wait()
        self.errors.close()
