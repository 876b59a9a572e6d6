"""Files: frames are TIFFs and nothing else, outputs appear whole or not at all, and their names."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import secrets
import shutil
import socket
from collections.abc import Iterable, Iterator
from pathlib import Path

from magicmask.errors import MagicmaskError

TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic TIFF and BigTIFF
MASK_SUFFIX = "-mask.tiff"
CLEAN_SUFFIX = "-clean.jpg"
BACKGROUND_NAME = "background.tiff"
BACKGROUND_SUFFIX = "-background.tiff"  # a keyframe's own background (windows, exposure matching)
DISPLAY_NAME = "keyframes.jpg"  # the multi-exposure display of a run's keyframes
MAP_NAME = "threshold.tiff"  # the threshold map of --threshold adaptive
MAP_SUFFIX = "-threshold.tiff"  # a keyframe's own threshold map (windows)
RECORD_NAME = "magicmask.json"  # the record of a run
TEMP_PREFIX = ".magicmask-"


def _sniff(head: bytes) -> str:
    text = head.lstrip().lower()
    if text.startswith((b"<?xml", b"<svg", b"<!doctype svg")) or b"<svg" in text:
        return "an SVG document"
    if text.startswith((b"push ", b"viewbox", b"fill ", b"image ")):
        return "an MVG drawing"
    if head.startswith(b"\xff\xd8\xff"):
        return "a JPEG image"
    if head.startswith(b"\x89PNG"):
        return "a PNG image"
    if not head:
        return "empty"
    return "not a TIFF image"


def check_tiff(path: str | os.PathLike, role: str = "frame") -> Path:
    """Check that ``path`` is a readable TIFF file by its first bytes, never by its name.

    ImageMagick picks a decoder by content, so an SVG or MVG document named ``x.tiff`` would be
    rendered (and could pull other local files in). magicmask reads frames as TIFF only.

    Raises
    ------
    MagicmaskError
        When the file is missing, unreadable, or not a TIFF.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(64)
    except FileNotFoundError:
        raise MagicmaskError(f"{role} not found", path, "check the path") from None
    except IsADirectoryError:
        raise MagicmaskError(f"{role} is a folder, not a TIFF file", path, "pass the TIFF files inside it") from None
    except OSError as exc:
        raise MagicmaskError(f"cannot read {role}: {exc.strerror}", path, "check its permissions") from None
    if not head.startswith(TIFF_MAGIC):
        what = _sniff(head)
        what = what if what.startswith("not") or what == "empty" else f"{what}, not a TIFF"
        raise MagicmaskError(f"{role} is {what}", path, "magicmask reads TIFF frames only; remove or convert this file")
    return path


def is_output_name(path: str | os.PathLike) -> bool:
    """True for the names magicmask writes (``*-mask.tiff``, ``background.tiff``, ``*-background.tiff``,
    ``threshold.tiff``, ``*-threshold.tiff``), which are never frames."""
    name = Path(path).name
    return name.endswith((MASK_SUFFIX, BACKGROUND_SUFFIX, MAP_SUFFIX)) or name in (BACKGROUND_NAME, MAP_NAME) or name.startswith(TEMP_PREFIX)


def iter_frames(paths: Iterable[str | os.PathLike]) -> Iterator[Path]:
    """The frames among ``paths``, lazily: earlier outputs (``*-mask.tiff``, ``background.tiff``) left out.

    A re-run over a folder whose glob now also matches magicmask's own outputs makes no masks of masks.
    Order is kept; repeated paths are kept once.
    """
    seen: set[Path] = set()
    for path in map(Path, paths):
        if is_output_name(path) or path in seen:
            continue
        seen.add(path)
        yield path


def select_frames(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """The frames among ``paths`` as a list (see :func:`iter_frames`)."""
    return list(iter_frames(paths))


def frame_name(frame: str | os.PathLike) -> str:
    """NAME of a frame: its file name without the last extension, as the blog's ``cut -d'.' -f1`` meant."""
    path = Path(frame)
    return path.name.rsplit(".", 1)[0] if "." in path.name[1:] else path.name


def output_paths(frame: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """``(NAME-mask.tiff, NAME-clean.jpg)`` for a frame, in ``out_dir`` or beside the frame."""
    frame = Path(frame)
    folder = Path(out_dir) if out_dir is not None else frame.parent
    name = frame_name(frame)
    return folder / f"{name}{MASK_SUFFIX}", folder / f"{name}{CLEAN_SUFFIX}"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary name beside ``path``; rename it to ``path`` only when the block succeeds.

    The temporary file is removed on any error or interruption, so ``path`` is either the old file,
    absent, or the complete new one: never half-written. The file is flushed to the disk (fsync) before
    the rename, so that holds after a power cut too.
    """
    path = Path(path)
    folder = path.parent
    # The name is chosen before the file exists, so that an interruption at any point after it (even
    # inside the creation) is cleaned up by the ``finally`` below.
    tmp = folder / f"{temp_prefix()}{path.stem[:100]}-{secrets.token_hex(8)}{path.suffix}"
    created = False
    try:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            created = True
        except OSError as exc:
            raise MagicmaskError(f"cannot write here: {exc.strerror}", folder, "choose a folder you can write to") from None
        yield tmp
        _flush(tmp)  # on the disk before the name points at it: after a power cut, old or new, never empty
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        raise MagicmaskError(f"cannot write: {exc.strerror}", path, "check free space and permissions") from None
    finally:
        with contextlib.suppress(FileNotFoundError if created else OSError):
            tmp.unlink()


def write_atomic(path: str | os.PathLike, data: bytes, keep_identical: bool = False) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    With ``keep_identical``, a file that already holds exactly ``data`` is left as it is (and keeps
    its modification time, so outputs made from it stay up to date).
    """
    if keep_identical:
        try:
            if os.path.getsize(path) == len(data) and Path(path).read_bytes() == data:
                return Path(path)
        except OSError:
            pass
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def _flush(path: Path) -> None:
    """fsync a file that was written and closed (its data, before a rename makes it the output)."""
    descriptor = os.open(path, os.O_RDWR)  # Windows commits only a file open for writing
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# --------------------------------------------------------------------------------------------------
# temporary names, and what a killed process leaves behind

_OWNED = re.compile(r"^" + re.escape(TEMP_PREFIX) + r"tmp-(\d+)@([0-9a-f]{8})-")


@functools.cache
def _host_tag() -> str:
    return hashlib.blake2s(socket.gethostname().encode(), digest_size=4).hexdigest()


def temp_prefix() -> str:
    """The start of this process's temporary names: ``.magicmask-tmp-PID@HOST-`` (HOST: 8 hex digits
    of the host name), so that :func:`sweep_stale` can tell when their writer is gone."""
    return f"{TEMP_PREFIX}tmp-{os.getpid()}@{_host_tag()}-"


def pid_alive(pid: int) -> bool:
    """True when a process ``pid`` runs on this machine (this process counts; so does another user's)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, another user's
        return True
    return True


def sweep_stale(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files and folders that a killed process left in ``folder``.

    An interruption magicmask sees (Ctrl-C, SIGTERM) removes its own temporary files; SIGKILL or a
    power cut cannot, and a keyframe extraction then leaves a folder of ffmpeg's TIFFs behind. This
    removes ``.magicmask-tmp-PID@HOST-*`` entries of this machine whose process no longer runs; those of
    running processes, of other machines (a shared folder) and other hidden files (such as the folder's
    lock, ``.magicmask-lock.json``, see :mod:`magicmask.lock`) are left alone.
    Returns what was removed.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        owned = _OWNED.match(entry.name)
        if owned is None or owned.group(2) != _host_tag() or pid_alive(int(owned.group(1))):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed
