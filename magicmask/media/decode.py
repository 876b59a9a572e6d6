"""Every decoded frame of a video, as arrays, through ffmpeg's raw pipe: nothing written to disk, the video never
held whole (for backgrounds over every frame and the foreground video)."""

from __future__ import annotations

import collections
import os
import subprocess
import threading
from collections.abc import Iterator

import ffmpeg
import numpy as np

from magicmask.errors import MagicmaskError
from magicmask.media.ffmpeg import INSTALL_HINT, check_video_path, damage_warning, ffmpeg_binary, file_url, quiet_args, tail, widen_pipe
from magicmask.media.probe import RAW_FORMATS, VideoInfo, keyframe_pix_fmt, probe

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
    return quiet_args(stream.compile(cmd="ffmpeg"))


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
        raise MagicmaskError("ffmpeg is not installed", hint=INSTALL_HINT) from None
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
                raise MagicmaskError(f"ffmpeg stopped in the middle of a frame: {tail(b''.join(errors))}", video, "check that the file is a complete video")
            yield np.frombuffer(data, dtype=dtype).reshape(height, width, channels)
        process.wait()
        drain.join()
        finished = True
        if process.returncode != 0:
            raise MagicmaskError(f"ffmpeg failed to decode the video: {tail(b''.join(errors))}", video, "check that the file is a complete video")
        warning = damage_warning(b"".join(errors))
        if warning is not None and warnings is not None:
            warnings.append(warning)
    finally:
        if not finished and process.poll() is None:
            process.kill()  # the caller stopped early (or failed): stop decoding
        process.stdout.close()
        process.wait()
        drain.join(timeout=5)
