"""Image engines: the arithmetic of the blog's ``convert`` commands.

Every engine offers the same functions: ``load_background(path)``, ``render_frame(background,
frame, params, background_path)`` returning the mask TIFF and clean JPEG bytes, ``Fold(compose,
colour)`` for lighten/darken flattens, and ``version()``.

``wand`` runs ImageMagick itself through MagickWand and is the reference. ``native`` (the default)
reproduces ImageMagick's arithmetic in NumPy/Numba, exactly (checked against ``wand`` and
``convert`` by the tests), at about twelve times the speed.
"""

from __future__ import annotations

import importlib
import os
from typing import Any, Protocol, cast

from magicmask.errors import MagicmaskError
from magicmask.params import MaskParams

ENGINES = ("native", "wand")
DEFAULT_ENGINE = "native"


class Fold(Protocol):
    """A running ``-compose lighten|darken -flatten`` over frames, one frame in memory at a time."""

    compose: str

    def add_file(self, path: str | os.PathLike) -> None: ...
    def encode(self, format: str = "tiff") -> bytes: ...
    def close(self) -> None: ...


class Engine(Protocol):
    """What an engine module offers: the arithmetic of the blog's ``convert`` commands."""

    THREADS: bool
    """True when its work releases the GIL (frames are rendered in threads), else in worker processes."""

    def load_background(self, path: str | os.PathLike) -> Any:
        """The background, read once and kept for every frame masked against it."""

    def render_frame(self, background: Any, frame: str | os.PathLike, params: MaskParams = MaskParams(), background_path: str | os.PathLike | None = None) -> tuple[bytes, bytes]:
        """``(NAME-mask.tiff bytes, NAME-clean.jpg bytes)`` of one frame: both commands of the blog's loop."""

    def Fold(self, compose: str, colour: str) -> Fold:  # noqa: N802  (a class in each engine)
        """A lighten/darken fold on a canvas of ``colour``."""

    def warm_up(self) -> None:
        """Load what the first frame would otherwise wait for (may do nothing)."""

    def version(self) -> str:
        """The engine's libraries and their versions, for the record."""


def get_engine(name: str = DEFAULT_ENGINE) -> Engine:
    """The engine module called ``name`` (imported on first use)."""
    if name not in ENGINES:
        raise MagicmaskError(f"unknown engine {name!r}", hint=f"use one of: {', '.join(ENGINES)}")
    return cast(Engine, importlib.import_module(f"magicmask.engines.{name}"))
