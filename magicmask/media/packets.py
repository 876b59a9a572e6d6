"""Probing a video with ffmpeg alone, for machines without ffprobe (imageio-ffmpeg's bundled ffmpeg has none).

One ffmpeg run copies the first video stream's packets (not an attached picture) to ffmpeg's ``framecrc``
muxer, decoding nothing::

    ffmpeg -hide_banner -nostdin -i VIDEO -map 0:V:0? -c copy -copyinkf -copyts -f framecrc -

Its header gives the stream's time base (``#tb 0: 1/12800``), each following line one packet: stream,
dts, pts, duration, size, checksum, and ``F=0x..`` when its flags are not "keyframe" alone. ffmpeg's
message describes the container and every stream as ``ffmpeg -i`` prints them (``Input #0, mov,mp4,...``,
``Stream #0:0...: Video: h264 (High) ..., yuv420p(progressive), 320x240 [SAR 1:1 DAR 4:3], ..., 25 fps``).
:func:`read` turns both into what :mod:`magicmask.media.probe` asks of ffprobe: the streams in ffprobe's
JSON shape (the fields magicmask reads), every packet's presentation time, and which packets are keyframes.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from magicmask.errors import MagicmaskError
from magicmask.media.ffmpeg import INSTALL_HINT, ffmpeg_binary, file_url, tail

NO_PTS = -(2**63)
"""How framecrc prints a missing timestamp (AV_NOPTS_VALUE)."""


@dataclass(frozen=True)
class Packets:
    """What one ffmpeg run tells of a video: ``info`` (ffprobe's shape: ``format.format_name`` and
    ``streams``, each with ``codec_type``, ``codec_name``, ``disposition.attached_pic`` and, for video,
    ``width``, ``height``, ``pix_fmt``, ``avg_frame_rate``, ``r_frame_rate``), and per packet of the first
    video stream, in file order, its presentation time in seconds (NaN when it has none) and whether it is a
    keyframe."""

    info: dict
    times: np.ndarray
    keys: np.ndarray


def command(video: str | os.PathLike) -> list[str]:
    """The ffmpeg command :func:`read` runs."""
    return ["ffmpeg", "-hide_banner", "-nostdin", "-i", file_url(video), "-map", "0:V:0?", "-c", "copy", "-copyinkf", "-copyts", "-f", "framecrc", "-"]


def read(video: str | os.PathLike) -> Packets:
    """:class:`Packets` of ``video`` (a checked path), read once per unchanged file.

    Raises
    ------
    MagicmaskError
        When ffmpeg is missing or cannot read the file as a video.
    """
    stat = os.stat(video)
    return _read(os.path.realpath(video), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _read(video: str, size: int, mtime_ns: int) -> Packets:
    args = [ffmpeg_binary(), *command(video)[1:]]
    try:
        done = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True)
    except FileNotFoundError:
        raise MagicmaskError("ffmpeg is not installed", hint=INSTALL_HINT) from None
    message = done.stderr.decode("utf-8", "replace")
    info = parse_streams(message)
    if info is None:
        raise MagicmaskError(f"ffmpeg cannot read this as a video: {tail(done.stderr, 1)}", video, "pass a video file (e.g. MP4)")
    if done.returncode != 0 and any(s["codec_type"] == "video" and not s["disposition"]["attached_pic"] for s in info["streams"]):
        raise MagicmaskError(f"ffmpeg failed reading the video's packets: {tail(done.stderr)}", video, "check that the file is a complete video")
    base, times, keys, durations = parse_framecrc(done.stdout.decode("ascii", "replace"))
    first = True
    for stream in info["streams"]:
        fps, tbr = stream.pop("_fps", None), stream.pop("_tbr", None)
        if first and stream["codec_type"] == "video" and not stream["disposition"]["attached_pic"]:
            stream["avg_frame_rate"] = _fraction_text(_exact_rate(fps, base, durations))
            stream["r_frame_rate"] = _fraction_text(_exact_rate(tbr, base, durations))
            first = False
    return Packets(info, times, keys)


_INPUT = re.compile(r"^Input #0, (.+?), from '", re.M)
_STREAM = re.compile(r"^\s*Stream #0:\d+(?:\[0x[0-9a-fA-F]+\])?(?:\([^)]*\))?: (\w+): (.*)$", re.M)
_SIZE = re.compile(r"^(\d+)x(\d+)")
_RATE = re.compile(r"^([\d.]+)(k?) (fps|tbr)$")


def _top_level_parts(text: str) -> list[str]:
    """``text`` split at the commas outside parentheses and brackets."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char in "([":
            depth += 1
        elif char in ")]":
            depth = max(0, depth - 1)
        elif char == "," and depth == 0:
            parts.append(text[start:index].strip())
            start = index + 1
    parts.append(text[start:].strip())
    return parts


def parse_streams(message: str) -> dict | None:
    """The container and streams of ffmpeg's ``Input #0`` description, in ffprobe's JSON shape; None when
    ffmpeg printed none (it could not open the file as media)."""
    found = _INPUT.search(message)
    if found is None:
        return None
    block = message[found.start():]
    end = re.search(r"^(?:Stream mapping:|Output #0|\[\w+ @ )", block, re.M)
    block = block[: end.start()] if end else block
    streams = []
    for kind, description in _STREAM.findall(block):
        parts = _top_level_parts(description)
        stream: dict = {
            "codec_type": kind.lower(),
            "codec_name": parts[0].split()[0] if parts and parts[0] else "",
            "disposition": {"attached_pic": int("(attached pic)" in description)},
        }
        if kind == "Video":
            if len(parts) > 1 and re.fullmatch(r"[a-z0-9_]+", parts[1].split("(")[0].strip()):
                stream["pix_fmt"] = parts[1].split("(")[0].strip()
            for part in parts[1:]:
                size = _SIZE.match(part)
                if size and "width" not in stream:
                    stream["width"], stream["height"] = int(size.group(1)), int(size.group(2))
                rate = _RATE.match(part.split(" (")[0])
                if rate:
                    value = float(rate.group(1)) * (1000 if rate.group(2) else 1)
                    stream["_fps" if rate.group(3) == "fps" else "_tbr"] = value
        streams.append(stream)
    return {"format": {"format_name": found.group(1)}, "streams": streams}


def parse_framecrc(text: str) -> tuple[Fraction, np.ndarray, np.ndarray, list[int]]:
    """``(time base, pts seconds, keyframe flags, durations in the time base)`` of the packets of stream 0
    in framecrc's output."""
    base = Fraction(1, 1)
    times, keys, durations = [], [], []
    for line in text.splitlines():
        if line.startswith("#tb 0:"):
            num, _, den = line.split(":", 1)[1].strip().partition("/")
            base = Fraction(int(num), int(den or 1))
            continue
        if not line or line.startswith("#"):
            continue
        fields = [field.strip() for field in line.split(",")]
        if fields[0] != "0" or len(fields) < 6:
            continue
        dts, pts = int(fields[1]), int(fields[2])
        stamp = pts if pts != NO_PTS else dts
        times.append(float(stamp * base) if stamp != NO_PTS else float("nan"))
        flags = next((int(field[2:], 16) for field in fields[6:] if field.startswith("F=")), 1)
        keys.append(bool(flags & 1))
        durations.append(int(fields[3]))
    return base, np.asarray(times, dtype=np.float64), np.asarray(keys, dtype=bool), durations


_STANDARD = [Fraction(n * 1000, 1001) for n in (24, 30, 48, 60, 120, 240)]


def _exact_rate(printed: float | None, base: Fraction, durations: list[int]) -> Fraction | None:
    """The frame rate as a fraction: the packets' most common duration when it agrees with the rate ffmpeg
    printed (two decimals), else the NTSC rate or the fraction that prints so."""
    if not printed:
        return None
    positive = [d for d in durations if d > 0]
    if positive:
        values, counts = np.unique(positive, return_counts=True)
        exact = 1 / (int(values[np.argmax(counts)]) * base)
        if abs(float(exact) - printed) < 0.006:
            return exact
    for rate in _STANDARD:
        if abs(float(rate) - printed) < 0.006:
            return rate
    return Fraction(printed).limit_denominator(1001)


def _fraction_text(rate: Fraction | None) -> str:
    return "0/0" if rate is None else f"{rate.numerator}/{rate.denominator}"


def keyframe_times(video: str | os.PathLike) -> np.ndarray:
    """The presentation times (seconds, NaN where a frame has none) of the keyframes ffmpeg decodes with
    ``-skip_frame nokey`` (what keyframe extraction writes), in output order, from ffmpeg's ``showinfo``
    filter: the frames ffprobe's ``-skip_frame nokey -show_entries frame=...`` lists.

    Raises
    ------
    MagicmaskError
        When ffmpeg is missing or fails on the video.
    """
    args = [ffmpeg_binary(), "-hide_banner", "-nostdin", "-skip_frame", "nokey", "-i", file_url(video), "-map", "0:V:0", "-an", "-sn", "-copyts", "-fps_mode", "passthrough", "-vf", "showinfo", "-f", "null", "-"]
    try:
        done = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True)
    except FileNotFoundError:
        raise MagicmaskError("ffmpeg is not installed", hint=INSTALL_HINT) from None
    if done.returncode != 0:
        raise MagicmaskError(f"ffmpeg failed decoding the keyframes: {tail(done.stderr)}", video, "check that the file is a complete video")
    base, times = None, []
    for line in done.stderr.decode("utf-8", "replace").splitlines():
        if "Parsed_showinfo" not in line:
            continue
        if base is None and (found := _TIME_BASE.search(line)):
            base = Fraction(int(found.group(1)), int(found.group(2)))
        elif " n:" in line:  # the integer pts in the filter's time base: exact (pts_time is rounded to 6 digits)
            found = _PTS.search(line)
            times.append(float(int(found.group(1)) * base) if found and base else float("nan"))
    return np.asarray(times, dtype=np.float64)


_TIME_BASE = re.compile(r"config in time_base: (\d+)/(\d+)")
_PTS = re.compile(r" pts:\s*(-?\d+)\b")


def clear() -> None:
    """Forget what :func:`read` has read (for tests)."""
    _read.cache_clear()


