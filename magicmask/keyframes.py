"""Keyframes out of a video with ffmpeg: the seed's first command.

All use of ffmpeg goes through this module. Commands are built as data (ffmpeg-python), so they
can be shown and tested without running ffmpeg, and then run with ffmpeg's stderr kept for errors.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import ffmpeg

from magicmask.errors import MagicmaskError
from magicmask.files import TEMP_PREFIX, write_atomic

SEED_COMMAND = "ffmpeg -skip_frame nokey -i *.mp4 -vsync 0 -r 30 -f image2 t%02d.tiff"
_INSTALL_HINT = "install it: apt-get install ffmpeg"


def ffmpeg_binary(name: str = "ffmpeg") -> str:
    """The path of ``ffmpeg`` (or ``ffprobe``), or an error saying which package to install."""
    found = shutil.which(name)
    if found is None:
        raise MagicmaskError(f"{name} is not installed", hint=_INSTALL_HINT)
    return found


def _tail(stderr: bytes | str, lines: int = 2) -> str:
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    useful = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith(("  ", "ffmpeg version", "built with", "configuration:", "lib"))]
    return " / ".join(useful[-lines:]) if useful else "no message"


def _check_video_path(video) -> Path:
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
    video = _check_video_path(video)
    try:
        info = ffmpeg.probe(os.fspath(video), cmd=ffmpeg_binary("ffprobe"))
    except ffmpeg.Error as exc:
        raise MagicmaskError(f"ffmpeg cannot read this as a video: {_tail(exc.stderr, 1)}", video, "pass a video file (e.g. MP4)") from None
    streams = [s for s in info.get("streams", []) if s.get("codec_type") == "video" and s.get("disposition", {}).get("attached_pic", 0) == 0]
    if not streams:
        raise MagicmaskError("the file has no video stream", video, "pass a video file with pictures in it")
    return streams[0]


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


def keyframes_command(video: str | os.PathLike, pattern: str | os.PathLike, pix_fmt: str = "rgb24") -> list[str]:
    """The ffmpeg command line writing the keyframes of ``video`` to ``pattern`` (e.g. ``t%02d.tiff``).

    Reproduces the seed's::

        ffmpeg -skip_frame nokey -i *.mp4 -vsync 0 -r 30 -f image2 t%02d.tiff

    with ``-fps_mode passthrough`` in place of the deprecated ``-vsync 0 -r 30`` (same frames, no
    duplicates) and an RGB pixel format (see :func:`keyframe_pix_fmt`).
    """
    stream = ffmpeg.input(os.fspath(video), skip_frame="nokey")
    stream = stream.output(os.fspath(pattern), f="image2", fps_mode="passthrough", pix_fmt=pix_fmt)
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

    Names keep the seed's two digits up to 99 keyframes; :meth:`finish` widens them all (``t001``...)
    when there are more, renaming outputs made from them too, so names keep sorting.
    """

    def __init__(self, video: str | os.PathLike, out_dir: str | os.PathLike):
        self.video = _check_video_path(video)
        self.stream = probe(self.video)
        self.pix_fmt = keyframe_pix_fmt(self.stream.get("pix_fmt"))
        self.out_dir = Path(out_dir)
        self.paths: list[Path] = []
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
        if self._recorded:
            for name in frame_names(self._recorded["count"]):
                self.paths.append(self.out_dir / name)
                yield self.out_dir / name
            return
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX + "tmp-keyframes-", dir=self.out_dir))
        except OSError as exc:
            raise MagicmaskError(f"cannot write here: {exc.strerror}", self.out_dir, "choose a folder you can write to") from None
        args = _binary(keyframes_command(self.video, work / "%09d.tiff", self.pix_fmt))
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
            if process.returncode != 0:
                errors.seek(0)
                raise MagicmaskError(f"ffmpeg failed to extract keyframes: {_tail(errors.read())}", self.video, "check that the file is a complete video")
            if index == 1:
                raise MagicmaskError("ffmpeg found no keyframe in the video", self.video, "check that the video decodes (ffplay), or re-encode it")
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
            write_atomic(self.out_dir / MARKER_NAME, json.dumps({**self._identity(), "count": len(final)}).encode())
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


def encode_raw_video(raw: bytes, path, width: int, height: int, pix_fmt: str, fps: int, keyint: int, deep: bool = False) -> Path:
    """Encode raw frames to an H.264 MP4 with a keyframe every ``keyint`` frames (10-bit when ``deep``)."""
    source = ffmpeg.input("pipe:", f="rawvideo", pix_fmt=pix_fmt, s=f"{width}x{height}", r=fps)
    options = dict(vcodec="libx264", g=keyint, keyint_min=keyint, sc_threshold=0, bf=0, crf=18, preset="medium")
    options["pix_fmt"] = "yuv420p10le" if deep else "yuv420p"
    args = _with_quiet(source.output(os.fspath(path), **options).compile(cmd="ffmpeg"), "-y")
    _run(args, path, "encode the sample video", input=raw)
    return Path(path)


def version() -> str:
    """ffmpeg's version line."""
    done = subprocess.run([ffmpeg_binary(), "-version"], capture_output=True, text=True)
    return done.stdout.splitlines()[0] if done.stdout else "unknown"
