"""The blog's loop body: for every frame, ``NAME-mask.tiff`` and ``NAME-clean.jpg``.

::

    for i in *.tiff; do
      name=`echo $i | cut -d'.' -f1`
      convert BG $i -compose difference -composite -threshold 5% -blur 0x3 -threshold 20% -blur 0x3 "$name-mask.tiff"
      convert $i "$name-mask.tiff" -compose multiply -flatten "$name-clean.jpg"
    done
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from magicmask.engines import DEFAULT_ENGINE, get_engine
from magicmask.errors import MagicmaskError
from magicmask.execute import as_magicmask_error, run_tasks
from magicmask.files import TEMP_PREFIX, check_tiff, iter_frames, output_paths, sweep_stale, write_atomic
from magicmask.params import MaskParams

SETTINGS_NAME = TEMP_PREFIX + "masks.json"


def make_mask(background, frame, mask_path, params: MaskParams = MaskParams()) -> Path:
    """Write the foreground mask of one frame, with ImageMagick.

    Reproduces::

        convert BG FRAME -compose difference -composite -threshold 5% -blur 0x3 -threshold 20% -blur 0x3 NAME-mask.tiff

    Parameters
    ----------
    background, frame : path
        TIFF files of the same size.
    mask_path : path
        Where to write the mask (a grayscale TIFF of the background's depth).
    params : MaskParams
        The thresholds and blurs of the chain.
    """
    from magicmask.engines import wand

    with wand.read_tiff(background, "background") as bg, wand.read_tiff(frame) as fr:
        wand.check_same_size(bg, fr, frame, background)
        with wand.mask_image(bg, fr, params) as mask:
            data = wand.encode(mask, "tiff")
    return write_atomic(mask_path, data)


def make_clean(frame, mask, clean_path) -> Path:
    """Write the masked image of one frame from its mask file, with ImageMagick.

    Reproduces::

        convert FRAME NAME-mask.tiff -compose multiply -flatten NAME-clean.jpg
    """
    from magicmask.engines import wand

    with wand.read_tiff(frame) as fr, wand.read_tiff(mask, "mask") as mk:
        wand.check_same_size(fr, mk, mask, frame)
        with wand.clean_image(fr, mk) as clean:
            data = wand.encode(clean, "jpeg")
    return write_atomic(clean_path, data)


@dataclass(frozen=True)
class FrameJob:
    """One frame's work, as plain values that cross process boundaries."""

    frame: Path
    mask: Path
    clean: Path
    background: Path
    params: MaskParams
    engine: str
    measure: bool = False
    """Also measure the mask (:mod:`magicmask.motion`), in the same pass."""
    cutout: Path | None = None
    """Also make ``NAME-cutout.png`` (:mod:`magicmask.cutout`), to be written there."""
    sheet: int | None = None
    """Also make the contact sheet's thumbnails, this wide, from the samples in hand (engines that hand
    them over: the native engine)."""


@dataclass(frozen=True)
class Extras:
    """What a frame's pass makes besides its two files, when its job asks: the mask's measure, the
    cut-out's PNG bytes and the sheet's thumbnails."""

    measure: object = None
    """A :class:`magicmask.motion.Measure`, or None."""
    cutout: bytes | None = None
    thumbnails: object = None
    """The keyframe's :class:`magicmask.sheet.Thumbnails`, or None."""


_BACKGROUNDS: dict = {}
_BACKGROUNDS_LOCK = threading.Lock()  # the native engine renders in threads: one cache, changed by one at a time
_BACKGROUNDS_KEPT = 4  # a batch has frames of two videos (two backgrounds) in flight at once


def _background(engine: str, path: Path):
    """The background loaded by ``engine``, kept for the following frames of this process (the last few)."""
    stat = path.stat()
    key = (engine, os.fspath(path.resolve()), stat.st_mtime_ns, stat.st_size)
    with _BACKGROUNDS_LOCK:
        if key not in _BACKGROUNDS:
            while len(_BACKGROUNDS) >= _BACKGROUNDS_KEPT:  # the oldest goes (closed: Wand runs one frame per process)
                handle = _BACKGROUNDS.pop(next(iter(_BACKGROUNDS)))
                if hasattr(handle, "close"):
                    handle.close()
            _BACKGROUNDS[key] = get_engine(engine).load_background(path)
        return _BACKGROUNDS[key]


def render(job: FrameJob) -> tuple[bytes, bytes]:
    """Both of the loop's commands for one frame, reading the frame once: ``(mask TIFF, clean JPEG)`` bytes.

    The mask is quantised in memory exactly as the second command reads it back from the file, so
    the clean image is what the loop writes, without reading ``NAME-mask.tiff`` again. Nothing is
    written here: a worker can be killed at any moment without leaving a file behind.
    """
    background = _background(job.engine, job.background)
    engine = get_engine(job.engine)
    if not (job.measure or job.cutout or job.sheet):
        return engine.render_frame(background, job.frame, job.params, job.background)
    if hasattr(engine, "render_samples"):  # the samples the engine had in hand
        mask_bytes, clean_bytes, mask, frame = engine.render_samples(background, job.frame, job.params, job.background)
    else:
        mask_bytes, clean_bytes = engine.render_frame(background, job.frame, job.params, job.background)
        mask, frame = None, None
    return mask_bytes, clean_bytes, extras(job, mask_bytes, mask, frame, clean_bytes)


def extras(job: FrameJob, mask_bytes: bytes | None = None, mask=None, frame=None, clean_bytes: bytes | None = None) -> Extras:
    """The :class:`Extras` ``job`` asks for, from the samples in hand; the mask is decoded from its bytes
    (or read from its file) and the frame read from its file only when not given. Thumbnails are made only
    from samples and bytes in hand (else the sheet reads the files)."""
    from magicmask.cutout import cutout_png, read_samples
    from magicmask.motion import measure

    if mask is None and (job.measure or job.cutout):
        mask = read_samples(job.mask, mask_bytes)
    found = measure(mask) if job.measure else None
    cutout = None
    if job.cutout is not None:
        cutout = cutout_png(read_samples(job.frame, role="frame") if frame is None else frame, mask)
    thumbnails = None
    if job.sheet and frame is not None and mask is not None and clean_bytes is not None:
        from magicmask.sheet import frame_thumbnails

        thumbnails = frame_thumbnails(frame, mask, clean_bytes, job.sheet)
    return Extras(found, cutout, thumbnails)


class Resume:
    """Which frames' outputs are already done: present, newer than the frame, its background and its threshold
    map, and made with the same settings (recorded per output folder, with the time they were first used there)."""

    def __init__(self, backgrounds: list[Path], params: MaskParams | list[MaskParams], force: bool):
        names = sorted({os.fspath(path.resolve()) for path in backgrounds})
        chains = sorted({json.dumps(asdict(p), sort_keys=True) for p in (params if isinstance(params, list) else [params])})
        self.settings = {"background": names[0] if len(names) == 1 else names, "params": json.loads(chains[0]) if len(chains) == 1 else [json.loads(c) for c in chains]}
        self.force = force
        self.since: dict[Path, int] = {}

    def _since(self, folder: Path) -> int:
        if folder not in self.since:
            record = folder / SETTINGS_NAME
            try:
                recorded = json.loads(record.read_text())
                since = int(recorded["since_ns"]) if recorded.get("settings") == self.settings else None
            except (OSError, ValueError, KeyError, TypeError):
                since = None
            if since is None or self.force:
                since = time.time_ns()
                write_atomic(record, json.dumps({"settings": self.settings, "since_ns": since}).encode())
            self.since[folder] = since
        return self.since[folder]

    def done(self, job: FrameJob) -> bool:
        since = self._since(job.mask.parent)
        if self.force:
            return False
        try:
            inputs = [job.frame, job.background] + ([Path(job.params.threshold_map)] if job.params.threshold_map else [])
            newest_input = max(since, *(path.stat().st_mtime_ns for path in inputs))
            outputs = [job.mask, job.clean] + ([job.cutout] if job.cutout is not None else [])
            return min(path.stat().st_mtime_ns for path in outputs) >= newest_input
        except OSError:
            return False


class Outputs(list):
    """``[(mask, clean), ...]`` of every frame that succeeded, with how many were ``written`` now and how many
    were ``up_to_date`` already."""

    written: int = 0
    up_to_date: int = 0


def mask_frames(
    frames: Iterable[str | os.PathLike],
    background: str | os.PathLike | Mapping[str | os.PathLike, str | os.PathLike],
    out_dir: str | os.PathLike | None = None,
    params: MaskParams = MaskParams(),
    progress: Callable[[Path], None] | None = None,
    on_error: Callable[[MagicmaskError], None] | None = None,
    engine: str = DEFAULT_ENGINE,
    jobs: int | None = None,
    force: bool = False,
    *,
    scheduler=None,
) -> list[tuple[Path, Path]]:
    """The blog's loop over frames: ``NAME-mask.tiff`` and ``NAME-clean.jpg`` for every frame, on every core.

    Earlier outputs among ``frames`` (``*-mask.tiff``, ``background.tiff``) are skipped, and so are
    frames whose outputs are up to date: present, newer than the frame and the background, and
    made with the same settings (``force`` redoes them).

    Parameters
    ----------
    frames : iterable of paths
        The frames (TIFF files). May be a stream (e.g. keyframes as ffmpeg writes them): work on a
        frame starts as soon as the iterable yields it.
    background : path or mapping
        The background TIFF, e.g. the first frame or ``background.tiff``; or ``{frame: background}``,
        each frame against its own background (as :func:`magicmask.statistics.make_backgrounds` makes them).
    out_dir : path, optional
        Where to write; beside each frame by default.
    params : MaskParams
        The thresholds and blurs of the chain.
    progress : callable, optional
        Called with each frame once it is done (written, up to date, or failed).
    on_error : callable, optional
        Called with the error of a frame that fails; the other frames are still processed. Without
        it, the first error is raised once every other frame is done.
    engine : str
        The image engine (see :mod:`magicmask.engines`).
    jobs : int, optional
        Worker processes; all cores by default, 1 runs in this process. Workers compute; this
        process writes every file (temporary name, then rename).
    force : bool
        Redo frames whose outputs are up to date.
    scheduler : str or distributed.Client, optional
        Run on this Dask cluster (``tcp://HOST:8786``) instead of local workers (``jobs`` is then
        unused): each task carries its frame's bytes and returns the outputs' bytes, written here.
        Needs the ``dask`` extra.

    Returns
    -------
    Outputs
        The outputs of every frame that succeeded, in frame order (a list of ``(mask, clean)``), with the
        counts of those ``written`` and those already ``up_to_date``.

    Raises
    ------
    MagicmaskError
        For a bad background, or an output that cannot be written (full disk, no permission): the
        run stops there. Bad frames do not stop it (see ``on_error``).
    """
    if isinstance(background, Mapping):
        own = {Path(frame): check_tiff(path, "background") for frame, path in background.items()}
        if scheduler is not None and len(set(own.values())) > 1:
            raise MagicmaskError("per-keyframe backgrounds run on this machine only", hint="drop --backend dask, or use one background (--window 0, no --match-exposure)")
        background = next(iter(own.values()), None) if len(set(own.values())) == 1 else None
        if not own:
            raise MagicmaskError("no frames to mask", hint="pass TIFF frames, e.g. t*.tiff")
    else:
        background, own = check_tiff(background, "background"), {}
    module = get_engine(engine)
    resume = Resume(list(own.values()) or [background], params, force)
    order: list[Path] = []
    done: dict[Path, tuple[Path, Path]] = {}
    errors: list[MagicmaskError] = []

    def report(frame: Path, error: MagicmaskError | None = None):
        if error is not None:
            (errors.append if on_error is None else on_error)(error)
        if progress is not None:
            progress(frame)

    swept: set[Path] = set()
    counts = {"written": 0, "up_to_date": 0}

    def pending():
        for frame in iter_frames(frames):
            order.append(frame)
            mask, clean = output_paths(frame, out_dir)
            if mask.parent not in swept:  # what a killed run left in the folder the outputs go to
                swept.add(mask.parent)
                sweep_stale(mask.parent)
            job = FrameJob(frame, mask, clean, own.get(frame, background), params, engine)
            if resume.done(job):
                done[frame] = (mask, clean)
                counts["up_to_date"] += 1
                report(frame)
            else:
                yield job

    if scheduler is not None:
        from magicmask.cluster import render_frames

        results = render_frames(pending(), background, params, engine, scheduler)
    else:
        results = run_tasks(render, pending(), jobs, threads=module.THREADS)
    for job, result, error in results:
        if error is None:  # written here, by this process, so an interruption never leaves half a file
            write_atomic(job.mask, result[0])
            write_atomic(job.clean, result[1])
            done[job.frame] = (job.mask, job.clean)
            counts["written"] += 1
        report(job.frame, None if error is None else as_magicmask_error(error, job.frame))
    if not order:
        raise MagicmaskError("no frames to mask", hint="pass TIFF frames, e.g. t*.tiff")
    if errors:
        raise errors[0]
    outputs = Outputs(done[frame] for frame in order if frame in done)
    outputs.written, outputs.up_to_date = counts["written"], counts["up_to_date"]
    return outputs

