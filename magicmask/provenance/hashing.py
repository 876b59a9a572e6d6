"""Hashes of files and the versions of the tools, found in a background thread while a run goes on."""

from __future__ import annotations

import hashlib
import os
import platform
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from magicmask import __version__
from magicmask.errors import MagicmaskError


def sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file, in hex (from :func:`hash_soon`'s work when the file has not changed since)."""
    key = os.path.abspath(path)
    with _LOCK:
        known = _DIGESTS.get(key)
    if known is not None:
        identity, digest = known
        try:
            if isinstance(digest, Future):
                digest = digest.result()
            if identity == _identity(os.stat(key)):
                return digest
        except OSError:  # gone or replaced since: hashed again below (or the error said there)
            pass
    return _digest(key)


def hash_soon(path: str | os.PathLike, data: bytes | None = None) -> None:
    """Start hashing a finished output in a background thread, so that :func:`sha256` (and the record
    written at the end of a run) need not read it again. hashlib releases the GIL while it works.

    ``data``: the bytes just written to ``path`` (hashed as they are, the file not read back).
    """
    key = os.path.abspath(path)
    try:
        identity = _identity(os.stat(key))
    except OSError:
        return
    with _LOCK:
        if key in _DIGESTS and _DIGESTS[key][0] == identity:
            return
        _DIGESTS[key] = (identity, _HASHER.submit(_digest, key) if data is None else _HASHER.submit(_digest_bytes, data))


_LOCK = threading.Lock()
_DIGESTS: dict[str, tuple[tuple[int, int, int], str | Future]] = {}
_HASHER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="magicmask-hash")


def _identity(stat: os.stat_result) -> tuple[int, int, int]:
    """What says a file is the one hashed: a new file (an atomic rename) has a new inode."""
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def _digest_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def tool_versions() -> dict:
    """The versions a record names: magicmask, ImageMagick (MagickWand), ffmpeg, Python (found once
    per process; :func:`versions_soon` starts the search in the background)."""
    versions_soon()
    return dict(_VERSIONS[0].result())


def versions_soon() -> None:
    """Start finding :func:`tool_versions` in the background thread that hashes outputs."""
    with _LOCK:
        if not _VERSIONS:
            _VERSIONS.append(_HASHER.submit(_tool_versions))


_VERSIONS: list[Future] = []


def _tool_versions() -> dict:
    from magicmask.engines import wand
    from magicmask.media.ffmpeg import version as ffmpeg_version

    try:
        imagemagick = wand.version()
    except MagicmaskError:
        imagemagick = "not installed"
    return {"magicmask": __version__, "imagemagick": imagemagick, "ffmpeg": ffmpeg_version(), "python": platform.python_version()}
