"""Keyframes out of a video with ffmpeg: the seed's first command.

All use of ffmpeg goes through this module. Commands are built as data (ffmpeg-python), so they
can be shown and tested without running ffmpeg, and then run with ffmpeg's stderr kept for errors.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import ffmpeg

from magicmask.errors import MagicmaskError
from magicmask.files import TEMP_PREFIX

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


def _run(args: list[str], video, what: str, **kwargs) -> subprocess.CompletedProcess:
    args = [ffmpeg_binary(), *args[1:]] if args and args[0] == "ffmpeg" else args
    try:
        done = subprocess.run(args, capture_output=True, **kwargs)
    except FileNotFoundError:
        raise MagicmaskError("ffmpeg is not installed", hint=_INSTALL_HINT) from None
    if done.returncode != 0:
        raise MagicmaskError(f"ffmpeg failed to {what}: {_tail(done.stderr)}", video, "check that the file is a complete video")
    return done


def extract_keyframes(
    video: str | os.PathLike,
    out_dir: str | os.PathLike,
    progress: Callable[[Path], None] | None = None,
) -> list[Path]:
    """Write the keyframes of ``video`` as ``out_dir/t01.tiff``, ``t02.tiff``, ... and return them.

    Reproduces the seed's first command (see :func:`keyframes_command`). ffmpeg writes into a
    temporary folder inside ``out_dir``; each finished frame is then renamed into place, so
    ``out_dir`` never holds a half-written keyframe.

    Raises
    ------
    MagicmaskError
        When the video is missing or unreadable, has no video stream, or no keyframe decodes.
    """
    video = _check_video_path(video)
    stream = probe(video)
    pix_fmt = keyframe_pix_fmt(stream.get("pix_fmt"))
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX + "keyframes-", dir=out_dir))
    except OSError as exc:
        raise MagicmaskError(f"cannot write here: {exc.strerror}", out_dir, "choose a folder you can write to") from None
    try:
        _run(keyframes_command(video, work / "%09d.tiff", pix_fmt), video, "extract keyframes")
        made = sorted(work.glob("*.tiff"))
        if not made:
            raise MagicmaskError("ffmpeg found no keyframe in the video", video, "check that the video decodes (ffplay), or re-encode it")
        paths = []
        for source, name in zip(made, frame_names(len(made))):
            target = out_dir / name
            os.replace(source, target)
            paths.append(target)
            if progress is not None:
                progress(target)
        return paths
    finally:
        shutil.rmtree(work, ignore_errors=True)


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
