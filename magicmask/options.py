"""What a video job is asked to do: one options object, validated once, and the one table of background methods.

The command line, :func:`magicmask.run`, :func:`magicmask.run_many` and the demo all build an
:class:`Options`; every value is checked when it is made, and a bad one is refused with one line naming
the option as the command line spells it (``--background``, ``--samples``, ...).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from magicmask.engines import DEFAULT_ENGINE, ENGINES
from magicmask.errors import MagicmaskError
from magicmask.params import MaskParams


@dataclass(frozen=True)
class Method:
    """One way of making the background a keyframe's mask is computed against."""

    name: str
    kind: str
    """``keyframe`` (a keyframe itself), ``fold`` (``-compose OP -flatten``: exact per-pixel max/min, a
    ``convert`` command makes it) or ``statistic`` (computed by magicmask, no ``convert`` command)."""
    summary: str
    colour: str | None = None
    """For folds: the ``-background`` colour of the canvas (the blog's lighten uses black)."""

    @property
    def from_video(self) -> bool:
        """Whether the method can take every frame of the video (``--from video``), not only the keyframes."""
        return self.kind != "keyframe"


METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        Method("first", "keyframe", "the first keyframe, as in the blog"),
        Method("lighten", "fold", "the per-pixel lightest value, as in the blog (convert -background black -compose lighten -flatten)", "black"),
        Method("darken", "fold", "the per-pixel darkest value (convert -background white -compose darken -flatten)", "white"),
        Method("mean", "statistic", "the per-pixel mean, rounded half up"),
        Method("median", "statistic", "the per-pixel lower median of evenly sampled frames (--samples)"),
    )
}
"""The background methods, by name; any other ``--background`` value is the path of a TIFF file."""

SOURCES = ("keyframes", "video")
DEFAULT_SAMPLES = 100
THRESHOLD_MODES = ("auto", "adaptive")
"""``--threshold`` values that learn the first threshold from the video (see :mod:`magicmask.thresholds`)."""
_TIFF_SUFFIXES = (".tif", ".tiff")


def method_choices() -> str:
    """The valid ``--background`` values, for messages and help texts."""
    return ", ".join(METHODS) + ", or the path of a TIFF file"


def background_method(value: str | os.PathLike) -> Method | Path:
    """The :class:`Method` called ``value``, or ``value`` as the path of a background TIFF.

    Raises
    ------
    MagicmaskError
        When ``value`` is neither a method nor an existing file: a mistyped method is named as such,
        with the valid choices; a path that names no file says so.
    """
    text = os.fspath(value)
    if text in METHODS:
        return METHODS[text]
    path = Path(text)
    if path.exists():
        from magicmask.files import check_tiff

        return check_tiff(path, "background")
    if os.sep in text or (os.altsep and os.altsep in text) or path.suffix.lower() in _TIFF_SUFFIXES:
        raise MagicmaskError("background file not found", path, "check the path, or use a method: " + ", ".join(METHODS))
    raise MagicmaskError(f"--background {text!r} is neither a method nor a file", hint=f"use {method_choices()}")


def parse_span(text: str) -> tuple[float, float]:
    """``"START-END"`` in seconds from the video's start (``"8-"``: to its end) as ``(start, end)``.

    Raises
    ------
    MagicmaskError
        For anything else, or an end not after the start.
    """
    start, dash, end = str(text).strip().partition("-")
    try:
        span = (float(start), float(end) if end.strip() else math.inf)
    except ValueError:
        span = None
    if not dash or span is None or span[0] != span[0] or not (0 <= span[0] < span[1]):
        raise MagicmaskError(f"--span {text!r} is not START-END in seconds, the end after the start", hint="use e.g. --span 0-2, or --span 8- for 8 s to the end")
    return span


def _span(span) -> tuple[float, float]:
    """A ``(start, end)`` pair given as numbers, checked as :func:`parse_span` checks text."""
    try:
        start, end = (float(value) for value in span)
    except (TypeError, ValueError):
        raise MagicmaskError(f"span {span!r} is not (start, end) in seconds", hint="e.g. (0, 2), or (8, math.inf) for 8 s to the end") from None
    if not (0 <= start < end):  # also refuses NaN
        raise MagicmaskError(f"span {span!r} is not (start, end) in seconds, the end after the start", hint="e.g. (0, 2), or (8, math.inf) for 8 s to the end")
    return start, end


@dataclass(frozen=True)
class Options:
    """Everything that decides what a video job makes, and how it runs. Validated on creation.

    Parameters
    ----------
    background : str or path
        ``first``, ``lighten``, ``darken``, ``mean``, ``median`` (see :data:`METHODS`) or a TIFF file.
    source : {'keyframes', 'video'}
        The frames a fold or statistic is made from (``--from``): the keyframes, as in the blog, or every
        decoded frame of the video.
    window : float
        Seconds; above 0, each keyframe gets its own background from the frames within ``window / 2`` of it.
    match_exposure : bool
        Shift each keyframe's background per channel to the keyframe's brightness before the difference.
    samples : int
        The most frames a median (or a windowed statistic) holds, evenly sampled (at least 2).
    spans : tuple of (start, end)
        With ``source="video"``: only the frames in these parts of the video (seconds) feed the statistic.
    threshold, blur, threshold2, blur2 : str
        The mask chain, in ImageMagick's syntax (``5%``, ``0x3``, ``20%``, ``0x3``). ``threshold`` may also be
        ``auto`` (one value from the noise of the keyframes against their backgrounds) or ``adaptive`` (a
        per-pixel map learned with a median background, ``threshold.tiff``): see :mod:`magicmask.thresholds`.
    engine : {'native', 'wand'}
        The image engine.
    jobs : int
        Workers (threads for the native engine, processes for wand): 0 = every core, 1 = none.
    force : bool
        Redo what is up to date, and replace the outputs of another video in the folder.
    sheet : bool
        Write the contact sheet ``sheet.jpg``.
    display : bool
        Write the multi-exposure display ``keyframes.jpg`` (``convert t*.tiff -background white -compose
        darken -flatten keyframes.jpg``).
    scheduler : str or distributed.Client, optional
        Run each video's job on a worker of this Dask cluster instead of here: an address
        (``tcp://HOST:8786``), a cluster object (``SLURMCluster``, ``LocalCluster``) or a client.
    cutout : bool
        Also write ``NAME-cutout.png`` per keyframe: its colours with the mask as alpha, at its depth.
    plot : bool
        Also write ``motion.png``, the plot of ``motion.tsv`` (needs matplotlib: the ``plot`` extra).
    storage : {'auto', 'shared', 'send'}
        With ``scheduler``: whether the workers read the videos and write the folders in place (``shared``:
        NFS, Lustre, GPFS; checked, never assumed), get the videos' bytes and send the outputs back
        (``send``), or the first when they see the same files, else the second (``auto``).
    """

    background: str = "first"
    source: str = "keyframes"
    window: float = 0.0
    match_exposure: bool = False
    samples: int = DEFAULT_SAMPLES
    spans: tuple[tuple[float, float], ...] = ()
    threshold: str = "5%"
    blur: str = "0x3"
    threshold2: str = "20%"
    blur2: str = "0x3"
    engine: str = DEFAULT_ENGINE
    jobs: int = 0
    force: bool = False
    sheet: bool = True
    display: bool = False
    scheduler: object = field(default=None, compare=False)
    cutout: bool = False
    plot: bool = False
    storage: str = "auto"

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731  (frozen)
        method = background_method(self.background)
        set_("background", method.name if isinstance(method, Method) else os.fspath(Path(method).resolve()))
        spans = tuple(parse_span(span) if isinstance(span, str) else _span(span) for span in self.spans or ())
        set_("spans", spans)
        for name in ("match_exposure", "force", "sheet", "display", "cutout", "plot"):
            if not isinstance(getattr(self, name), bool):
                raise MagicmaskError(f"{name}={getattr(self, name)!r} is not True or False", hint=f"pass {name}=True or {name}=False")
        if self.source not in SOURCES:
            raise MagicmaskError(f"--from {self.source!r} is not a source of frames", hint=f"use one of: {', '.join(SOURCES)}")
        if isinstance(self.window, bool) or not isinstance(self.window, (int, float)) or not (self.window >= 0) or math.isinf(self.window):
            raise MagicmaskError(f"--window {self.window!r} is not a number of seconds >= 0", hint="use e.g. --window 4, or 0 for one background")
        if isinstance(self.samples, bool) or not isinstance(self.samples, int):
            raise MagicmaskError(f"--samples {self.samples!r} is not a whole number", hint="use e.g. --samples 100")
        if self.samples < 2:
            raise MagicmaskError(f"--samples {self.samples!r} is below 2", hint="a median needs at least 2 frames: use e.g. --samples 100")
        if isinstance(self.jobs, bool) or not isinstance(self.jobs, int) or self.jobs < 0:
            raise MagicmaskError(f"--jobs {self.jobs!r} is not a number of workers", hint="use 0 for every core, 1 for no workers, or N")
        if self.engine not in ENGINES:
            raise MagicmaskError(f"--engine {self.engine!r} is not an engine", hint=f"use one of: {', '.join(ENGINES)}")
        if self.engine == "wand":
            from magicmask.engines import wand

            if not wand.available():
                raise MagicmaskError("--engine wand needs ImageMagick's MagickWand library, which is not installed", hint="install it: apt-get install libmagickwand-dev imagemagick (macOS: brew install imagemagick), or use --engine native")
        self.chain()  # the chain's values, in ImageMagick's syntax
        if self.plot:
            from magicmask.motion import require_matplotlib

            require_matplotlib("--plot (motion.png)")
        kind = method.kind if isinstance(method, Method) else "file"
        what = f"--background {method.name}" if isinstance(method, Method) else "a background file"
        if self.source == "video" and kind in ("keyframe", "file"):
            raise MagicmaskError(f"--from video makes a background from every frame, but {what} is not made from frames", hint="use --background lighten, darken, mean or median with --from video")
        if self.window and kind in ("keyframe", "file"):
            raise MagicmaskError(f"--window makes a background per keyframe, but {what} is not made from frames", hint="use --background lighten, darken, mean or median with --window")
        if self.spans:
            if self.source != "video":
                raise MagicmaskError("--span picks parts of the video", hint="add --from video")
            if self.window:
                raise MagicmaskError("--span and --window both choose the frames of a background", hint="use one of them")
        from magicmask.cluster import STORAGE

        if self.storage not in STORAGE:
            raise MagicmaskError(f"--storage {self.storage!r} is not a storage mode", hint=f"use one of: {', '.join(STORAGE)}")
        if self.threshold == "adaptive" and self.background != "median":
            raise MagicmaskError(f"--threshold adaptive learns its map with a median background, not {what}", hint="add --background median (with --from video for every frame)")

    @property
    def threshold_mode(self) -> str | None:
        """``auto`` or ``adaptive`` when the first threshold is learned from the video, else None."""
        return self.threshold if self.threshold in THRESHOLD_MODES else None

    @property
    def params(self) -> MaskParams:
        """The mask chain's thresholds and blurs (for a learned threshold, see :meth:`chain`)."""
        if self.threshold_mode is not None:
            raise MagicmaskError(f"--threshold {self.threshold} is learned from the video", hint="use Options.chain(threshold=...) with the value learned")
        return self.chain()

    def chain(self, threshold: str | None = None, threshold_map: str | os.PathLike | None = None) -> MaskParams:
        """The mask chain with the first threshold learned (``threshold``, or a map file), or as given."""
        first = threshold if threshold is not None else ("5%" if self.threshold_mode else self.threshold)
        return MaskParams(first, self.blur, self.threshold2, self.blur2, os.fspath(threshold_map) if threshold_map is not None else None)

    @property
    def method(self) -> Method | None:
        """The background method, or None for a background file."""
        return METHODS.get(self.background)

    @property
    def per_keyframe(self) -> bool:
        """Whether each keyframe may get a background of its own (``NAME-background.tiff``)."""
        return bool(self.window) or self.match_exposure

    @property
    def streams(self) -> bool:
        """Whether masks can start while ffmpeg still extracts keyframes (the background is known early)."""
        return not self.per_keyframe and self.threshold_mode is None and self.background not in ("lighten", "darken", "mean", "median")

    def replace(self, **changes) -> "Options":
        """A copy with ``changes``, validated again."""
        return replace(self, **changes)

    def recorded(self) -> dict:
        """The options that decide a folder's outputs, as ``magicmask.json`` records them (those of the
        better backgrounds only when used)."""
        options = {"background": self.background, "threshold": self.threshold, "blur": self.blur, "threshold2": self.threshold2, "blur2": self.blur2, "engine": self.engine, "sheet": self.sheet}
        if self.display:
            options["display"] = True
        if self.cutout:
            options["cutout"] = True
        if self.plot:
            options["plot"] = True
        samples = self.samples if self.background == "median" and self.samples != DEFAULT_SAMPLES else None
        better = {"from": self.source, "window": self.window, "match_exposure": self.match_exposure, "samples": samples, "spans": [[a, None if math.isinf(b) else b] for a, b in self.spans] or None}
        options.update({key: value for key, value in better.items() if value not in ("keyframes", 0, 0.0, False, None)})
        return options

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The keyword arguments :func:`magicmask.run` accepts."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def of(cls, options: "Options | None" = None, **changes) -> "Options":
        """``options`` (or the defaults) with ``changes``; unknown names are refused in one line."""
        unknown = sorted(set(changes) - set(cls.names()))
        if unknown:
            raise MagicmaskError(f"unknown option {unknown[0]!r}", hint=f"use one of: {', '.join(cls.names())}")
        base = options if options is not None else cls()
        return replace(base, **changes) if changes else base
