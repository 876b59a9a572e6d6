"""Running ffmpeg: finding it, its file names, its arguments, its messages.

Every ffmpeg and ffprobe process of magicmask is started through this package (:mod:`magicmask.media`):
commands are built as data (ffmpeg-python), so they can be shown and tested without running ffmpeg, and
run with ffmpeg's messages kept for errors.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from magicmask.errors import MagicmaskError

SEED_COMMAND = "ffmpeg -skip_frame nokey -i *.mp4 -vsync 0 -r 30 -f image2 t%02d.tiff"


INSTALL_HINT = "install it: apt-get install ffmpeg (or pip install imageio-ffmpeg for a bundled one)"


def ffmpeg_binary(name: str = "ffmpeg") -> str:
    """The path of ``ffmpeg`` (or ``ffprobe``), or an error saying which package to install.

    The one on the PATH (the user's own, as the blog's commands use it); else, for ``ffmpeg``, the binary
    the imageio-ffmpeg package carries (it has no ffprobe: :mod:`magicmask.media.probe` then asks ffmpeg).
    """
    found = shutil.which(name) or (bundled_ffmpeg() if name == "ffmpeg" else None)
    if found is None:
        raise MagicmaskError(f"{name} is not installed", hint=INSTALL_HINT)
    return found


def bundled_ffmpeg() -> str | None:
    """The ffmpeg binary of the imageio-ffmpeg package, or None when that is not installed or has none."""
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    try:
        path = imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:  # no binary for this platform, and none named by IMAGEIO_FFMPEG_EXE
        return None
    return path if path and os.path.isfile(path) else None


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


def tail(stderr: bytes | str, lines: int = 2) -> str:
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
    return f"ffmpeg reported decoding errors (the video may be damaged or truncated): {tail(stderr)}"


def check_video_path(video) -> Path:
    video = Path(video)
    if not video.exists():
        raise MagicmaskError("video not found", video, "check the path")
    if video.is_dir():
        raise MagicmaskError("video is a folder", video, "pass a video file")
    if not os.access(video, os.R_OK):
        raise MagicmaskError("cannot read video", video, "check its permissions")
    return video


def quiet_args(args: list[str], *extra: str) -> list[str]:
    """``args`` with ffmpeg's global options for quiet, non-interactive runs placed first."""
    return [args[0], "-hide_banner", "-nostdin", "-loglevel", "error", *extra, *args[1:]]


def binary_args(args: list[str]) -> list[str]:
    """``args`` with ``ffmpeg`` replaced by the installed binary's path."""
    return [ffmpeg_binary(), *args[1:]] if args and args[0] == "ffmpeg" else args


def run(args: list[str], video, what: str, **kwargs) -> subprocess.CompletedProcess:
    args = binary_args(args)
    try:
        done = subprocess.run(args, capture_output=True, **kwargs)
    except FileNotFoundError:
        raise MagicmaskError("ffmpeg is not installed", hint=INSTALL_HINT) from None
    if done.returncode != 0:
        raise MagicmaskError(f"ffmpeg failed to {what}: {tail(done.stderr)}", video, "check that the file is a complete video")
    return done


def version() -> str:
    """ffmpeg's version line and which binary it is (``... (/usr/bin/ffmpeg)``)."""
    binary = ffmpeg_binary()
    done = subprocess.run([binary, "-version"], capture_output=True, text=True)
    return f"{done.stdout.splitlines()[0] if done.stdout else 'unknown'} ({binary})"


# --- Every decoded frame: timestamps and the raw pipe (issue 9) --------------------------------------
#
# ``--from video`` computes backgrounds over every decoded frame. Frames come through ffmpeg's raw pipe
# (``-f rawvideo -pix_fmt rgb24 pipe:``) one at a time: nothing is written to disk and the video is
# never held whole. Timestamps come from ffprobe: packets for every frame (no decoding), and the
# keyframes decoded as :func:`extract_keyframes` decodes them (``-skip_frame nokey``).


def widen_pipe(pipe) -> None:
    """Give a pipe to or from ffmpeg a 1 MiB buffer (Linux; 64 KiB by default): frames of megabytes then
    cross it in far fewer wake-ups. Silently does nothing where the system does not allow it."""
    try:
        import fcntl

        fcntl.fcntl(pipe.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError, ValueError):
        pass
