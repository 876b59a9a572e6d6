"""Keyframes out of a video with ffmpeg: the blog's first command, ``t01.tiff``, ``t02.tiff``, ..."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import ffmpeg

from magicmask.errors import MagicmaskError
from magicmask.files import TEMP_PREFIX, sweep_stale, temp_prefix, write_atomic
from magicmask.media.ffmpeg import binary_args, check_video_path, damage_warning, file_url, quiet_args, tail
from magicmask.media.probe import discards_safely, keyframe_pix_fmt, probe

def keyframes_command(video: str | os.PathLike, pattern: str | os.PathLike, pix_fmt: str = "rgb24", discard: bool = False) -> list[str]:
    """The ffmpeg command line writing the keyframes of ``video`` to ``pattern`` (e.g. ``t%02d.tiff``).

    Reproduces the blog's::

        ffmpeg -skip_frame nokey -i *.mp4 -vsync 0 -r 30 -f image2 t%02d.tiff

    with ``-fps_mode passthrough`` in place of the deprecated ``-vsync 0 -r 30`` (same frames, no
    duplicates) and an RGB pixel format (see :func:`keyframe_pix_fmt`). ``discard`` adds ``-discard
    nokey`` (for :data:`INDEXED_CONTAINERS`; see :func:`discards_safely`): same frames, decoded sooner.
    """
    options = {"skip_frame": "nokey", "discard": "nokey"} if discard else {"skip_frame": "nokey"}
    stream = ffmpeg.input(file_url(video), **options)
    stream = stream.output(file_url(pattern, pattern=True), f="image2", fps_mode="passthrough", pix_fmt=pix_fmt)
    return quiet_args(stream.compile(cmd="ffmpeg"))


def frame_names(count: int) -> list[str]:
    """Keyframe names for ``count`` frames: ``t01.tiff`` .. ``t99.tiff``, widened past 99 so they keep sorting."""
    width = max(2, len(str(count)))
    return [f"t{index:0{width}d}.tiff" for index in range(1, count + 1)]


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

    Names keep the blog's two digits up to 99 keyframes; :meth:`finish` widens them all (``t001``...)
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
        args = binary_args(keyframes_command(self.video, work / "%09d.tiff", self.pix_fmt, discard=discards_safely(self.stream)))
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
            said = f": {tail(printed)}" if process.returncode != 0 else ""
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

    Reproduces the blog's first command (see :func:`keyframes_command` and :class:`Keyframes`).

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
