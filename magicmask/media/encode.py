"""Frames into video files with ffmpeg's encoders: the sample and test videos, and the foreground video."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import ffmpeg

from magicmask.errors import MagicmaskError
from magicmask.media.ffmpeg import INSTALL_HINT, binary_args, file_url, quiet_args, tail, widen_pipe

def encode_raw_video(raw, path, width: int, height: int, pix_fmt: str, fps: int, keyint: int, deep: bool = False) -> Path:
    """Encode raw frames to an H.264 MP4 with a keyframe every ``keyint`` frames (10-bit when ``deep``).

    ``raw`` is the frames' bytes, or an iterable of byte strings (e.g. one per frame) streamed to ffmpeg.
    """
    source = ffmpeg.input("pipe:", f="rawvideo", pix_fmt=pix_fmt, s=f"{width}x{height}", r=fps)
    options = dict(vcodec="libx264", g=keyint, keyint_min=keyint, sc_threshold=0, bf=0, crf=18, preset="medium")
    options["pix_fmt"] = "yuv420p10le" if deep else "yuv420p"
    args = binary_args(quiet_args(source.output(file_url(path), **options).compile(cmd="ffmpeg"), "-y"))
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
                raise MagicmaskError(f"ffmpeg failed to encode the video: {tail(errors.read())}", path)
    return Path(path)


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
    return quiet_args(ffmpeg.output(*streams, file_url(output), **options).compile(cmd="ffmpeg"), "-y")


ALPHA_CODECS = {
    ".mov": ("ProRes 4444", dict(vcodec="prores_ks", profile="4444", pix_fmt="yuva444p10le", vendor="apl0")),
    ".webm": ("VP9", dict(vcodec="libvpx-vp9", pix_fmt="yuva420p", crf=30, **{"b:v": 0, "deadline": "good", "cpu-used": 4, "row-mt": 1})),
}
"""Containers and codecs of videos with an alpha channel, by the output's suffix: ProRes 4444 in QuickTime
(editors: Premiere, Final Cut, Resolve, After Effects) and VP9 in WebM (browsers, some editors)."""


def alpha_command(output: str | os.PathLike, width: int, height: int, pix_fmt: str, rate: str) -> list[str]:
    """The ffmpeg command encoding raw frames with alpha (``rgba`` or ``rgba64le``) read from its standard input
    into ``output``: ProRes 4444 (``.mov``) or VP9 with alpha (``.webm``), see :data:`ALPHA_CODECS`::

        ffmpeg -f rawvideo -pix_fmt rgba -s WxH -framerate RATE -i pipe: -c:v prores_ks -profile:v 4444 -pix_fmt yuva444p10le OUTPUT.mov

    Raises
    ------
    MagicmaskError
        For another suffix (naming the two), or another raw format.
    """
    suffix = Path(output).suffix.lower()
    if suffix not in ALPHA_CODECS:
        raise MagicmaskError("a video with alpha is written as .mov (ProRes 4444) or .webm (VP9)", output, "end the name with .mov or .webm")
    if pix_fmt not in ("rgba", "rgba64le"):
        raise MagicmaskError(f"cannot encode raw {pix_fmt!r} frames with alpha", hint="encode rgba or rgba64le frames")
    source = ffmpeg.input("pipe:", f="rawvideo", pix_fmt=pix_fmt, s=f"{width}x{height}", framerate=rate)
    return quiet_args(source.output(file_url(output), **ALPHA_CODECS[suffix][1]).compile(cmd="ffmpeg"), "-y")


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
            self.process = subprocess.Popen(binary_args(args), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self.errors)
        except FileNotFoundError:
            self.errors.close()
            raise MagicmaskError("ffmpeg is not installed", hint=INSTALL_HINT) from None
        widen_pipe(self.process.stdin)

    def _failure(self) -> MagicmaskError:
        self.process.wait()
        self.errors.seek(0)
        printed = self.errors.read().replace(self._written, os.fsencode(self.output)) if self._written else self.errors.read()
        return MagicmaskError(f"ffmpeg failed to encode the video: {tail(printed)}", self.output, encode_hint(printed))

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
