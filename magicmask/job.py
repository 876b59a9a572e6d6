"""The video job: keyframes -> backgrounds -> frame jobs -> outputs -> sheet and record, for one video or many.

Every entry point runs this one orchestration: the command line's ``run`` (one video or a batch),
:func:`magicmask.run` and :func:`magicmask.run_many`, and the demo. One video is a batch of one, so every
finished folder holds the same files whichever entry point made it::

    FOLDER/t01.tiff ...            the keyframes (ffmpeg -skip_frame nokey ... t%02d.tiff)
    FOLDER/background.tiff         the background, for lighten, darken, mean and median
    FOLDER/tNN-background.tiff     a keyframe's own background (--window, --match-exposure)
    FOLDER/tNN-mask.tiff, tNN-clean.jpg   the blog's loop, for every keyframe
    FOLDER/tNN-cutout.png          the keyframe with its mask as alpha (with ``cutout``)
    FOLDER/motion.tsv              motion data measured on the masks, one row per keyframe
    FOLDER/motion.png              its plot (with ``plot``)
    FOLDER/keyframes.jpg           the multi-exposure display (with ``display``)
    FOLDER/sheet.jpg               the contact sheet (unless ``sheet`` is false)
    FOLDER/magicmask.json          the record: versions, options, the commands that make each file, hashes

The frames of all videos feed one pool of workers (:func:`magicmask.execute.run_tasks`): masks of one
video are made while ffmpeg extracts the next one's keyframes, and with the first keyframe (or a TIFF)
as background the masks start while ffmpeg is still extracting. A folder belongs to one video: another
video's folder is refused (``force`` replaces it), a folder in use by a running magicmask is refused, and
outputs of an earlier run that this run does not make are removed, so the folder and its record always
describe one run. A video that fails is reported; the others go on.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from magicmask.provenance import record as records
from magicmask.provenance.hashing import hash_soon, versions_soon
from magicmask.engines import get_engine
from magicmask.errors import MagicmaskError
from magicmask.execute import as_magicmask_error, run_tasks
from magicmask.cutout import CUTOUT_SUFFIX
from magicmask.files import BACKGROUND_NAME, CLEAN_SUFFIX, DISPLAY_NAME, MASK_SUFFIX, frame_name, iter_frames, output_paths, write_atomic
from magicmask.media.extract import Keyframes
from magicmask.media.ffmpeg import check_video_path
from magicmask.media.probe import keyframe_count, keyframe_packet_times, keyframe_times
from magicmask.motion import MOTION_NAME, PLOT_NAME, Track, plot, tsv_bytes
from magicmask.sheet import INDEX_NAME, THUMBNAIL_WIDTH, Thumbnails
from magicmask.masks import FrameJob, Resume, extras, render
from magicmask.options import Options
from magicmask.params import MaskParams

DONE, UP_TO_DATE, FAILED = "done", "up to date", "failed"
THUMBNAILS_KEPT = 400
"""The keyframes of a video whose sheet thumbnails are made while rendering and kept to the end (about
230 KB each at 1080p: 90 MB for 400); the sheet reads the files of any further ones."""

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: ``frames`` counts the keyframes of every video (the total is an estimate,
from the videos' keyframe packets counted while the work goes on, until each video is finished);
``background`` counts the frames read for a background while one is made."""


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``1 keyframe``, ``2 keyframes``."""
    return f"{count} {noun if count == 1 else (plural_form or noun + 's')}"


@dataclass
class RunResult:
    """What a video job made: the folder, its files, the record, and how long each step took."""

    video: Path
    folder: Path
    note: str = ""
    """Why the folder is not simply ``ROOT/STEM`` (a stem used by another video), else empty."""
    status: str = "pending"
    """``done``, ``up to date`` or ``failed``."""
    keyframes: list[Path] = field(default_factory=list)
    background: Path | None = None
    """The background every mask was made against; None when each keyframe has its own (``backgrounds``)."""
    backgrounds: dict[Path, Path] = field(default_factory=dict)
    """Each keyframe's background."""
    thresholds: dict[Path, str] = field(default_factory=dict)
    """Each keyframe's first threshold: the ``-threshold`` value used (learned with ``threshold="auto"``), or
    its threshold map file (``threshold="adaptive"``)."""
    outputs: list[tuple[Path, Path]] = field(default_factory=list)
    """``(mask, clean)`` of every keyframe that succeeded, in keyframe order."""
    errors: list[MagicmaskError] = field(default_factory=list)
    """Keyframes that failed (the others were written)."""
    error: MagicmaskError | None = None
    """Why the video failed as a whole (unreadable, no keyframe, a folder in use, ...)."""
    warnings: list[str] = field(default_factory=list)
    """What went wrong without stopping the run (e.g. ffmpeg reported damage in the video)."""
    record: Path | None = None
    sheet: Path | None = None
    display: Path | None = None
    motion: Path | None = None
    """``motion.tsv``: per keyframe the mask's area, centroid, bounding box and quantity of motion."""
    plot: Path | None = None
    """``motion.png``, the plot of ``motion.tsv`` (with ``plot``)."""
    cutouts: list[Path] = field(default_factory=list)
    """``NAME-cutout.png`` of every keyframe (with ``cutout``)."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds from the job's start to the end of each step: ``keyframes``, ``backgrounds``, ``masks``, ``complete``."""
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.status == FAILED

    @property
    def message(self) -> str:
        """What went wrong, in one line (empty when nothing did)."""
        if self.error is not None:
            return str(self.error)
        if self.errors:
            more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
            return f"{plural(len(self.errors), 'keyframe')} failed: {self.errors[0]}{more}"
        return ""

    def __repr__(self) -> str:
        return f"<RunResult {self.status}: {self.video} -> {self.folder}, {plural(len(self.keyframes), 'keyframe')}>"

    def _repr_html_(self) -> str:
        """In a notebook (Jupyter, VS Code): what was made, the contact sheet and the motion plot, shown inline
        (scaled to at most :data:`SHOWN_WIDTH` pixels wide, embedded as JPEG/PNG)."""
        import html

        rows = [("video", self.video), ("folder", self.folder), ("status", self.status), ("keyframes", len(self.keyframes))]
        if self.background is not None:
            rows.append(("background", self.background))
        rows += [(name, path) for name, path in (("motion data", self.motion), ("motion plot", self.plot), ("record", self.record)) if path is not None]
        if self.cutouts:
            rows.append(("cut-outs", f"{self.cutouts[0].name} ... ({len(self.cutouts)})"))
        rows += [("error", self.message)] if self.message else []
        rows += [("warning", warning) for warning in self.warnings]
        table = "".join(f"<tr><th style='text-align:left'>{html.escape(name)}</th><td style='text-align:left'>{html.escape(str(value))}</td></tr>" for name, value in rows)
        pictures = "".join(_inline(path) for path in (self.sheet, self.plot) if path is not None)
        return f"<div><table>{table}</table>{pictures}</div>"


SHOWN_WIDTH = 1600
"""The widest picture :meth:`RunResult._repr_html_` embeds (a sheet of 400 keyframes is about 11,000 pixels wide)."""


def _inline(path: Path) -> str:
    """An ``<img>`` of ``path`` scaled to :data:`SHOWN_WIDTH`, embedded (empty when it cannot be read)."""
    import base64
    import html
    import io

    from PIL import Image

    try:
        with Image.open(path) as image:
            image.thumbnail((SHOWN_WIDTH, SHOWN_WIDTH * 4))
            buffer = io.BytesIO()
            kind = "png" if path.suffix.lower() == ".png" else "jpeg"
            image.convert("RGB").save(buffer, format=kind.upper(), **({"quality": 85} if kind == "jpeg" else {}))
    except (OSError, ValueError):
        return ""
    data = base64.b64encode(buffer.getvalue()).decode()
    return f"<div><img src='data:image/{kind};base64,{data}' alt='{html.escape(path.name)}' style='max-width:100%'></div>"


def expand(videos: Iterable[str | os.PathLike]) -> list[Path]:
    """The videos named, with glob patterns that name no file expanded (``'takes/*.mp4'`` quoted from the shell).

    The same file named twice is kept once. A pattern that matches nothing is kept as it is, so that it
    is reported as missing.
    """
    found: list[Path] = []
    seen: set[str] = set()
    for video in videos:
        text = os.fspath(video)
        matches = sorted(glob.glob(text)) if glob.has_magic(text) and not os.path.exists(text) else []
        for path in map(Path, matches or [text]):
            key = os.path.realpath(path)
            if key not in seen:
                seen.add(key)
                found.append(path)
    return found


def plan(videos: Iterable[str | os.PathLike], root: str | os.PathLike) -> list[RunResult]:
    """A folder for each video: ``ROOT/STEM``, and ``ROOT/STEM-2``, ``-3``... for a stem already taken.

    A stem is taken by an earlier video of the list, or by another video whose outputs are in
    ``ROOT/STEM`` from an earlier run; so the same list always maps to the same folders, and a folder is
    reused only by its own video.
    """
    root = Path(root)
    runs: list[RunResult] = []
    taken: set[Path] = set()
    for video in expand(videos):
        mine = os.fspath(video.resolve())
        for number in itertools.count(1):
            folder = root / (video.stem if number == 1 else f"{video.stem}-{number}")
            owner = records.folder_owner(folder)
            if folder not in taken and owner in (None, mine):
                break
        taken.add(folder)
        note = "" if number == 1 else f"{root / video.stem} holds another video called {video.stem}"
        runs.append(RunResult(video, folder, note))
    return runs


class VideoJob:
    """One video through every step, in its folder (see the module's description).

    The runner calls :meth:`start`, hands the jobs of :meth:`frame_jobs` to its workers, calls
    :meth:`frame_done` for each frame back, and :meth:`complete` once all are done; :meth:`close` always.
    """

    def __init__(self, result: RunResult, options: Options, progress: Progress | None = None):
        self.result = result
        self.options = options
        self.progress = progress
        self.keyframes: Keyframes | None = None
        self.estimate = 0
        self.outstanding = 0
        self.counted = 0  # frames done: written, up to date, or failed
        self.submitted = False  # every frame was handed out (or the video failed before)
        self.finished = False
        self.started = time.perf_counter()
        self._exit = contextlib.ExitStack()
        self._lock = None
        self.decoding: list[str] = []  # what ffmpeg reported while decoding every frame for a background
        self.track = Track()  # the masks' measures, for motion.tsv
        self.index: dict[Path, int] = {}  # each keyframe's row
        self.thumbnails: dict[Path, Thumbnails] = {}  # the sheet's, made as each keyframe was rendered
        self._times = None  # the keyframes' timestamps, read by ffprobe while the work goes on

    # --- the steps ---------------------------------------------------------------------------------------

    def start(self) -> bool:
        """Claim the folder; False when the folder already holds this run, finished and unchanged.

        Raises
        ------
        MagicmaskError
            When the folder holds another video's outputs (without ``force``) or is in use by a running
            magicmask.
        """
        from magicmask.lock import FolderLock

        result, options = self.result, self.options
        self.started = time.perf_counter()
        check_video_path(result.video)
        hash_soon(result.video)
        done = self.current()
        if done is not None:
            self._up_to_date(done)
            return False
        self.keyframes = Keyframes(result.video, result.folder)  # probed first: a file that is no video claims no folder
        self._times = _soon(keyframe_packet_times, result.video)
        self._lock = self._exit.enter_context(FolderLock(result.folder, f"magicmask run {result.video}"))
        records.claim(result.folder, result.video, force=options.force)
        return True

    def current(self) -> dict | None:
        """The folder's record when it already holds this run, finished and unchanged (never with ``force``)."""
        result, options = self.result, self.options
        done = None if options.force else records.is_current(result.folder, result.video, options.recorded())
        return done if done is not None and MOTION_NAME in done["outputs"] else None  # a folder made before motion data gets it now

    def _up_to_date(self, record: dict) -> None:
        result, folder = self.result, self.result.folder
        result.keyframes = [folder / name for name in record["keyframes"]]
        result.backgrounds = {folder / frame: _resolve(folder, name) for frame, name in records.backgrounds_of(record).items()}
        distinct = set(result.backgrounds.values())
        result.background = distinct.pop() if len(distinct) == 1 else None
        result.outputs = [output_paths(frame, folder) for frame in result.keyframes]
        result.thresholds = {folder / frame: (os.fspath(folder / value) if value.endswith(".tiff") else value) for frame, value in records.thresholds_of(record).items()}
        result.warnings = list(record.get("warnings", []))
        result.record = folder / records.RECORD_NAME
        result.sheet = folder / "sheet.jpg" if record["options"].get("sheet") else None
        result.display = folder / DISPLAY_NAME if record["options"].get("display") else None
        result.motion = folder / MOTION_NAME if MOTION_NAME in record["outputs"] else None
        result.plot = folder / PLOT_NAME if PLOT_NAME in record["outputs"] else None
        result.cutouts = [cutout_path(frame) for frame in result.keyframes] if record["options"].get("cutout") else []
        self.counted = len(result.keyframes)

    def frame_jobs(self, frame_done: Callable[[], None], threads: int | None = None) -> Iterator[FrameJob]:
        """The keyframes still to do, as jobs for the workers, extracting and making backgrounds on the way.

        With the first keyframe or a TIFF as background, jobs start while ffmpeg still extracts; every
        other background needs all keyframes first. Backgrounds are made here: folds in this process (the
        pool is busy with other videos' frames), medians in ``threads`` threads.
        """
        from magicmask.statistics import check_background_size, make_backgrounds

        result, options = self.result, self.options
        keyframes = self.keyframes
        own: dict[Path, Path] = {}
        chains: dict[Path, MaskParams] = {}  # each keyframe's chain, when the first threshold is learned
        if options.streams:
            source = iter(keyframes)
            first = next(source)  # Keyframes raises when ffmpeg finds no keyframe
            if options.method is None:
                base = check_background_size(Path(options.background), first)
            else:
                base = first
            source = itertools.chain([first], source)
        else:
            list(keyframes)
            frames = keyframes.finish()  # final names (t001... past 99) before anything is made from them
            self._mark("keyframes")

            def step(done: int, total: int) -> None:
                if self.progress is not None:
                    self.progress("background", done, total)

            maps: dict[Path, Path] | None = {} if options.threshold_mode == "adaptive" else None
            own = make_backgrounds(
                result.video, frames, result.folder, options.background, options.source, options.window, options.match_exposure, options.samples, step,
                engine=options.engine, jobs=1, threads=threads, spans=options.spans, warnings=self.decoding, maps=maps,
            )
            self._mark("backgrounds")
            distinct = set(own.values())
            base = distinct.pop() if len(distinct) == 1 else None
            source = iter(frames)
            if maps is not None:
                chains = {frame: options.chain(threshold_map=maps[frame]) for frame in frames}
            elif options.threshold_mode == "auto":
                from magicmask.thresholds import auto_threshold

                value = auto_threshold(own)
                chains = {frame: options.chain(threshold=value) for frame in frames}
        chain = None if chains else options.params
        result.background = base
        resume = Resume(sorted(set(own.values())) or [base], list(chains.values()) or chain, options.force)
        for index, frame in enumerate(iter_frames(source)):
            mask, clean = output_paths(frame, result.folder)
            result.backgrounds[frame] = own.get(frame, base)
            params = chains.get(frame, chain)
            result.thresholds[frame] = params.threshold_map or params.threshold
            thumbnails = THUMBNAIL_WIDTH if options.sheet and index < THUMBNAILS_KEPT else None
            job = FrameJob(frame, mask, clean, own.get(frame, base), params, options.engine, True, cutout_path(frame) if options.cutout else None, thumbnails)
            self.index[frame] = index
            if resume.done(job) and self._measured(index, job):
                frame_done()
            else:
                yield job
        self._mark("keyframes")
        self._mark("backgrounds")

    def complete(self) -> str:
        """A video whose frames are all done: final names, stale outputs removed, display, sheet, record."""
        from magicmask.background import keyframe_display
        from magicmask.sheet import SHEET_NAME, contact_sheet

        result, options = self.result, self.options
        self._mark("masks")
        if result.error is not None or self.keyframes is None:
            return FAILED
        old = list(self.keyframes.paths)
        frames = self.keyframes.finish((MASK_SUFFIX, CLEAN_SUFFIX, CUTOUT_SUFFIX))
        renamed = dict(zip(old, frames))
        result.keyframes = frames
        result.backgrounds = {renamed.get(frame, frame): renamed.get(background, background) for frame, background in result.backgrounds.items()}
        if result.background is not None:
            result.background = renamed.get(result.background, result.background)
        result.thresholds = {renamed.get(frame, frame): value for frame, value in result.thresholds.items()}
        result.warnings = list(dict.fromkeys([*self.keyframes.warnings, *self.decoding]))
        result.errors = [MagicmaskError(error.message, renamed.get(Path(error.path), error.path), error.hint) if error.path else error for error in result.errors]
        failed = {os.fspath(error.path) for error in result.errors}
        result.outputs = [output_paths(frame, result.folder) for frame in frames if os.fspath(frame) not in failed]
        if result.errors:
            return FAILED  # the folder's mark still says a run is under way: not up to date, and check says so
        folder = result.folder.resolve()
        inside = lambda path: Path(path).resolve().parent == folder  # noqa: E731
        made = {path.name for path in frames}
        made |= {path.name for pair in result.outputs for path in pair}
        made.add(MOTION_NAME)
        if options.cutout:
            result.cutouts = [cutout_path(frame) for frame in frames]
            made |= {path.name for path in result.cutouts}
        if options.plot:
            made.add(PLOT_NAME)
        if options.method is not None:  # a background file given by the user is an input, never an output
            made |= {path.name for path in result.backgrounds.values() if inside(path)}
            if options.method.kind != "keyframe" and not options.window and (result.folder / BACKGROUND_NAME).is_file():
                made.add(BACKGROUND_NAME)  # the run's background, also when each keyframe's is shifted from it
        made |= {Path(value).name for value in result.thresholds.values() if inside(value)}
        if options.display:
            made.add(DISPLAY_NAME)
        if options.sheet:
            made.add(SHEET_NAME)
        made.add(records.RECORD_NAME)
        keep = made | ({Path(options.background).name} if options.method is None and inside(options.background) else set())
        self._check_lock()
        records.note_made(result.folder, result.video, made)  # known as this run's before anything older goes
        records.remove_made(result.folder, keep=keep)
        result.warnings += background_warnings(result, options)
        extra = [*result.cutouts]
        rows = self.track.rows([frame_name(frame) for frame in frames], self._keyframe_times(len(frames)))
        result.motion = write_atomic(result.folder / MOTION_NAME, tsv_bytes(rows), keep_identical=True)
        extra.append(result.motion)
        if options.plot:
            height, width = self.track.measures[0].size
            result.plot = write_atomic(result.folder / PLOT_NAME, plot(rows, (width, height), f"{result.video.name}: motion of the masks, {plural(len(frames), 'keyframe')}"))
            extra.append(result.plot)
        if options.display:
            result.display = keyframe_display(frames, result.folder / DISPLAY_NAME, engine=options.engine, jobs=1)
            extra.append(result.display)
        if options.sheet:
            thumbnails = {renamed.get(frame, frame): made for frame, made in self.thumbnails.items()}
            self.thumbnails.clear()
            result.sheet = contact_sheet(result.folder, frames=frames, title=f"{result.video.name}: {plural(len(frames), 'keyframe')} ({result.folder.name})", thumbnails=thumbnails)
            extra.append(result.sheet)
        shared = [BACKGROUND_NAME] if BACKGROUND_NAME in made else []
        record = records.build(result.video, result.folder, frames, options, self.keyframes.pix_fmt, result.backgrounds, extra, result.warnings, result.thresholds, shared)
        self._check_lock()
        self._publish(record, made)
        self._mark("complete")
        return DONE

    def _publish(self, record: dict, made: set[str]) -> None:
        """Write the record and mark the folder finished (on a Dask worker, the client does: see
        :mod:`magicmask.cluster`)."""
        self.result.record = records.write(self.result.folder, record)
        records.release(self.result.folder, self.result.video, made)

    def _measured(self, index: int, job: FrameJob) -> bool:
        """A frame already done, measured from its mask file; False when that file cannot be read (made again)."""
        try:
            self.track.add(index, extras(replace(job, cutout=None)).measure)
        except MagicmaskError:
            return False
        return True

    def _keyframe_times(self, count: int) -> list[float] | None:
        """The keyframes' timestamps (seconds), from their packets, else decoded as ffmpeg decodes them; None
        when neither gives one per keyframe.

        The times are optional (motion.tsv's time cells are left empty): any error reading them (the video
        moved or changed while the work went on, a damaged file) is a warning, never the run's failure.
        """
        failures = []
        times = []
        try:
            times = self._times.result() if self._times is not None else []
        except Exception as exc:
            failures.append(exc)
        if len(times) != count:
            try:
                times = keyframe_times(self.result.video)
            except Exception as exc:
                failures.append(exc)
                times = []
        if len(times) == count:
            return [float(t) for t in times]
        if failures:
            reason = failures[-1].message if isinstance(failures[-1], MagicmaskError) else f"{type(failures[-1]).__name__}: {failures[-1]}"
            self.result.warnings.append(f"the keyframes' times could not be read ({reason}): {MOTION_NAME} is written without them")
        return None

    def _check_lock(self) -> None:
        if self._lock is not None and self._lock.lost:
            raise MagicmaskError("another magicmask run took this folder over while this one ran (its lock was not refreshed for a minute)", self.result.folder, "run again once the other run is finished")

    def close(self) -> None:
        """Stop ffmpeg and remove its temporary folder (if still running), release the folder, and let the
        sheet's thumbnails go (a video that failed keeps none while the batch goes on)."""
        self.thumbnails.clear()
        try:
            if self.keyframes is not None:
                self.keyframes.close()
        finally:
            self._exit.close()

    def _mark(self, step: str) -> None:
        self.result.timings.setdefault(step, round(time.perf_counter() - self.started, 3))


UNIFORM = 0.98
"""A background is nearly uniform when this share of its pixels lies within :data:`NEAR` of its median."""
NEAR = 2 / 255
MOST = 0.5
"""Masks "cover most of the frame" above this share, on more than this share of the keyframes looked at."""
LOOKED_AT = 8
"""Masks looked at for :func:`background_warnings` (evenly spread over the keyframes)."""


def _tips(options: Options | None) -> str:
    """The options a run did not use that may make its background work."""
    tips = []
    if options is None or not (options.background == "median" and options.source == "video"):
        tips.append("--background median --from video")
    if options is None or not options.window:
        tips.append("--window 4")
    if options is None or options.threshold != "adaptive":
        tips.append("--threshold adaptive")
    if not tips:
        return "a moving camera or cuts are beyond a background: cut the video where the camera moves, or use --span"
    return "try " + ", ".join(tips[:-1]) + (" or " if len(tips) > 1 else "") + tips[-1]


def background_warnings(result: RunResult, options: Options | None = None) -> list[str]:
    """One line for each sign that the background cannot work for this video, suggesting what may.

    - a nearly uniform background (e.g. the first keyframe of a black leader): everything that is not
      black becomes foreground;
    - masks covering most of the frame on most keyframes (a moving camera, cuts, a light switched on):
      the background is not what the keyframes show behind the figures.

    Reads the background(s) and at most :data:`LOOKED_AT` masks; never fails the run (an unreadable file is
    reported elsewhere).
    """
    from magicmask.engines.native import read_picture

    warnings = []
    try:
        for background in dict.fromkeys(result.backgrounds.values()):
            samples = read_picture(background, "background").samples[::4, ::4]  # every 16th pixel: enough to see uniformity
            top = 255 if samples.dtype == np.uint8 else 65535
            centre = np.median(samples.reshape(-1, samples.shape[2]), axis=0)
            near = np.all(np.abs(samples.astype(np.float32) - centre) <= NEAR * top, axis=2)
            if near.mean() >= UNIFORM:
                tip = "try --background median --from video" if options is None or options.source != "video" else "leave the blank part out with --span"
                warnings.append(f"the background {background.name} is nearly uniform (a black or blank leader?): most of every keyframe will be foreground; {tip}")
                break
        masks = [mask for mask, _ in result.outputs]
        looked = masks[:: max(1, -(-len(masks) // LOOKED_AT))]
        covered = 0
        for mask in looked:
            samples = read_picture(mask, "mask").samples
            half = 128 if samples.dtype == np.uint8 else 32768
            covered += np.count_nonzero(samples[..., 0] >= half) > MOST * samples[..., 0].size
        if looked and covered > MOST * len(looked):
            warnings.append(f"masks cover most of the frame on {covered} of the {len(looked)} keyframes looked at (a moving camera, cuts, a changing light?): {_tips(options)}")
    except MagicmaskError:
        pass
    return warnings


def cutout_path(frame: Path) -> Path:
    """``NAME-cutout.png`` beside keyframe ``NAME.tiff``."""
    return frame.with_name(frame_name(frame) + CUTOUT_SUFFIX)


def _resolve(folder: Path, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else folder / name


def _estimate(video: Path) -> int:
    try:
        return keyframe_count(video)
    except MagicmaskError:
        return 0  # reported when the video is run


def run_jobs(
    results: list[RunResult],
    options: Options,
    progress: Progress | None = None,
    on_video: Callable[[RunResult], None] | None = None,
    index: str | os.PathLike | None = None,
    warnings: list[str] | None = None,
    job_type: type[VideoJob] = VideoJob,
) -> list[RunResult]:
    """Run the video job of every ``results`` entry (video and folder), all frames on one pool of workers.

    ``results`` are updated in place and returned; ``on_video`` is called with each as soon as it is
    finished (done, up to date, or failed). With ``index`` (a batch's ``ROOT/index.jpg``) and the sheet
    option, the index sheet of all the videos is written there at the end; when it cannot be, the results
    are returned all the same and the reason is a line added to ``warnings`` (a Python warning without it).
    With ``options.scheduler``, each video job runs whole on a Dask worker
    (:func:`magicmask.cluster.run_videos`); ``job_type`` is what the worker runs there.

    Raises
    ------
    MagicmaskError
        For an output that cannot be written (a full disk): the batch stops there. A failing video does
        not stop it.
    """
    if options.scheduler is not None:
        from magicmask.cluster import run_videos

        return _index(run_videos(results, options, progress, on_video), options, index, warnings)
    module = get_engine(options.engine)
    _warm_up(module)  # Numba's kernels load in a thread while ffmpeg starts
    jobs = [job_type(result, options, progress) for result in results]
    owner: dict[Path, VideoJob] = {}
    stop = threading.Event()

    def estimate():  # keyframe counts for the progress bar, read while the work already goes on
        for job in jobs:
            if stop.is_set():
                return
            job.estimate = _estimate(job.result.video)

    if progress is not None:
        threading.Thread(target=estimate, daemon=True, name="magicmask-estimate").start()

    def report():
        if progress is not None:
            total = sum(j.counted if j.finished else max(j.estimate, j.counted) for j in jobs)
            progress("frames", sum(j.counted for j in jobs), total)

    def finish(job: VideoJob, status: str | None = None) -> None:
        if job.finished or (status is None and (not job.submitted or job.outstanding)):
            return
        result = job.result
        try:
            if status is None:
                status = job.complete()
        except Exception as exc:  # one video's failure, in one line; the others go on
            result.error, status = as_magicmask_error(exc, result.video), FAILED
        finally:
            job.close()
        result.status = FAILED if (result.error or result.errors) else status
        result.seconds = time.perf_counter() - job.started
        job.finished = True
        report()
        if on_video is not None:
            on_video(result)

    def frame_done(job: VideoJob, error: MagicmaskError | None = None) -> None:
        job.counted += 1
        if error is not None:
            job.result.errors.append(error)
        report()

    def pending() -> Iterator[FrameJob]:
        report()
        for job in jobs:
            try:
                if not job.start():
                    finish(job, UP_TO_DATE)
                    continue
                for frame_job in job.frame_jobs(lambda job=job: frame_done(job), threads=options.jobs):
                    hash_soon(frame_job.frame)  # hashed for the record while the frames are made
                    owner[frame_job.frame] = job
                    job.outstanding += 1
                    yield frame_job
                    versions_soon()  # for the record; started once ffmpeg is under way
            except Exception as exc:  # one video's failure, in one line; the others go on
                job.result.error = as_magicmask_error(exc, job.result.video)
            job.submitted = True
            finish(job, FAILED if job.result.error and not job.outstanding else None)

    outcomes = run_tasks(render, pending(), options.jobs, threads=module.THREADS)
    try:
        for frame_job, rendered, error in outcomes:
            job = owner.pop(frame_job.frame)
            if error is None:  # written here, by this process, so an interruption never leaves half a file
                hash_soon(write_atomic(frame_job.mask, rendered[0]), rendered[0])  # hashed from the bytes in hand
                hash_soon(write_atomic(frame_job.clean, rendered[1]), rendered[1])
                try:  # rendered on a cluster: measured and cut out here, from the bytes in hand
                    made = rendered[2] if len(rendered) > 2 else extras(frame_job, rendered[0])
                    if made.cutout is not None:
                        hash_soon(write_atomic(frame_job.cutout, made.cutout), made.cutout)
                    job.track.add(job.index[frame_job.frame], made.measure)
                    if made.thumbnails is not None:
                        job.thumbnails[frame_job.frame] = made.thumbnails
                except MagicmaskError as exc:
                    error = exc
            job.outstanding -= 1
            frame_done(job, None if error is None else as_magicmask_error(error, frame_job.frame))
            finish(job, FAILED if job.result.error and job.submitted and not job.outstanding else None)
    finally:
        stop.set()
        for job in jobs:
            job.close()  # on interruption: ffmpeg stopped, its temporary folder removed, the folder released
    return _index(results, options, index, warnings)


def _index(results: list[RunResult], options: Options, index: str | os.PathLike | None, warnings: list[str] | None = None) -> list[RunResult]:
    """With ``index`` and the sheet option, the index sheet of all the videos (or a line in ``warnings`` saying
    why it could not be written); ``results``."""
    if index is not None and options.sheet:
        from magicmask.sheet import index_sheet

        titles = [f"{r.video.name}: " + ("failed" if r.failed else plural(len(r.keyframes), "keyframe")) for r in results]
        try:  # an extra: every video's outputs are written, and its failure must not hide their results
            index_sheet([r.folder for r in results], index, titles=titles)
        except (MagicmaskError, OSError) as exc:
            reason = exc if isinstance(exc, MagicmaskError) else MagicmaskError(exc.strerror or str(exc), exc.filename or index)
            message = f"the index sheet was not written: {reason}"
            if warnings is not None:
                warnings.append(message)
            else:
                import warnings as python_warnings

                python_warnings.warn(message, RuntimeWarning, stacklevel=2)
    return results


def _soon(function, *args) -> Future:
    """``function(*args)`` in a thread, its result (or error) for later."""
    future: Future = Future()

    def work():
        try:
            future.set_result(function(*args))
        except BaseException as exc:  # handed over with the result
            future.set_exception(exc)

    threading.Thread(target=work, name="magicmask-soon", daemon=True).start()
    return future


def _warm_up(module) -> None:
    """Let the engine load what it needs (Numba's kernels) in a thread while ffmpeg starts."""
    threading.Thread(target=_quietly, args=(module.warm_up,), name="magicmask-warm-up", daemon=True).start()


def _quietly(function) -> None:
    try:
        function()
    except Exception:  # only a head start: any real problem shows on the first frame
        pass


# --- The library's entry points ---------------------------------------------------------------------------


def run(
    video: str | os.PathLike,
    folder: str | os.PathLike,
    *,
    options: Options | None = None,
    progress: Progress | None = None,
    **changes,
) -> RunResult:
    """Run the blog's whole recipe on one video, into ``folder``.

    Reproduces::

        ffmpeg -skip_frame nokey -i VIDEO -vsync 0 -r 30 -f image2 t%02d.tiff
        convert *.tiff -background black -compose lighten -flatten background.tiff   # --background lighten
        for i in *.tiff; do ... "$name-mask.tiff" ... "$name-clean.jpg"; done

    and writes the contact sheet and the record (see :mod:`magicmask.job`). This is :func:`run_many` with
    one video whose folder is ``folder`` itself.

    Parameters
    ----------
    video : path
        The video file.
    folder : path
        Where the keyframes, background(s), masks, clean images, sheet and record go.
    options : Options, optional
        The options; keyword arguments (``background="median"``, ``source="video"``, ``threshold="8%"``,
        ``jobs=2``, ... see :class:`magicmask.options.Options`) change them.
    progress : callable, optional
        ``progress(stage, done, total)``.

    Returns
    -------
    RunResult
        Its ``status`` is ``done``, ``up to date`` or ``failed``; ``errors`` holds the keyframes that
        failed (the others were written).

    Raises
    ------
    MagicmaskError
        When the video fails as a whole (unreadable, no keyframe, a folder holding another video or in use,
        a bad option), naming the file and what to do.

    Examples
    --------
    >>> import magicmask                                                     # doctest: +SKIP
    >>> result = magicmask.run("dance.mp4", "dance", background="lighten")    # doctest: +SKIP
    >>> result.outputs[0]                                                    # doctest: +SKIP
    (PosixPath('dance/t01-mask.tiff'), PosixPath('dance/t01-clean.jpg'))
    """
    options = Options.of(options, **changes)
    result = run_jobs([RunResult(Path(video), Path(folder))], options, progress)[0]
    if result.error is not None:
        raise result.error
    return result


def run_many(
    videos: Iterable[str | os.PathLike],
    root: str | os.PathLike,
    *,
    options: Options | None = None,
    progress: Progress | None = None,
    on_video: Callable[[RunResult], None] | None = None,
    **changes,
) -> list[RunResult]:
    """Run the recipe on every video, each in ``ROOT/STEM`` (see :func:`plan`), on one pool of workers.

    ``videos`` may hold glob patterns (``"takes/*.mp4"``). Options as for :func:`run`; ``on_video`` is
    called with each :class:`RunResult` as soon as that video is finished. With the sheet option,
    ``ROOT/index.jpg`` shows every video (a few keyframes each) once all are finished. A video that fails does not
    stop the others: look at each result's ``status``.
    """
    options = Options.of(options, **changes)
    return run_jobs(plan(videos, root), options, progress, on_video, Path(root) / INDEX_NAME)


__all__ = ["DONE", "FAILED", "UP_TO_DATE", "RunResult", "VideoJob", "expand", "plan", "plural", "run", "run_jobs", "run_many"]
