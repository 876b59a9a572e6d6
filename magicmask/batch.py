"""Many videos in one run: the blog's recipe for each, in ``ROOT/STEM/``, on one pool of workers.

Every video goes through the same steps as :func:`magicmask.pipeline.run` (:class:`~magicmask.keyframes.Keyframes`,
:func:`~magicmask.background.lighten_background`, :func:`magicmask.masks.render`), but the frames of all
videos feed one :func:`~magicmask.execute.run_tasks`: the workers go on with one video's masks while
ffmpeg extracts the next one's keyframes. A video that fails (unreadable, no video stream, no keyframe,
a bad frame) is reported and the others go on. Each finished folder gets its contact sheet
(``sheet.jpg``) and its record (``magicmask.json``); a re-run skips videos whose record still stands
and, within the others, frames already done.
"""

from __future__ import annotations

import glob
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from magicmask import record as records
from magicmask.background import lighten_background
from magicmask.engines import DEFAULT_ENGINE, get_engine
from magicmask.errors import MagicmaskError
from magicmask.execute import as_magicmask_error, run_tasks
from magicmask.files import BACKGROUND_NAME, CLEAN_SUFFIX, MASK_SUFFIX, check_tiff, iter_frames, output_paths, write_atomic
from magicmask.keyframes import Keyframes, keyframe_count
from magicmask.masks import FrameJob, _Resume, render
from magicmask.params import MaskParams
from magicmask.pipeline import BACKGROUNDS, _newer_than_all, _warm_up
from magicmask.statistics import DEFAULT_SAMPLES, check_options, make_backgrounds

STATISTICS = ("darken", "mean", "median")  # the backgrounds magicmask.statistics makes (lighten is the seed's)

Progress = Callable[[str, int, int], None]
"""``progress("frames", done, total)`` over the keyframes of every video (the total is an estimate, from
the videos' keyframe packets counted while the work goes on, until each video is finished)."""

DONE, UP_TO_DATE, FAILED = "done", "up to date", "failed"


@dataclass
class VideoRun:
    """One video of a batch: where its outputs go and, once run, how it went."""

    video: Path
    folder: Path
    note: str = ""
    """Why the folder is not simply ``ROOT/STEM`` (a stem used by another video), else empty."""
    status: str = "pending"
    keyframes: int = 0
    seconds: float = 0.0
    error: MagicmaskError | None = None
    """Why the video failed as a whole (unreadable, no keyframe, ...)."""
    frame_errors: list[MagicmaskError] = field(default_factory=list)
    background: Path | None = None
    record: Path | None = None
    sheet: Path | None = None

    @property
    def failed(self) -> bool:
        return self.status == FAILED

    @property
    def message(self) -> str:
        """What went wrong, in one line (empty when nothing did)."""
        if self.error is not None:
            return str(self.error)
        if self.frame_errors:
            more = f" (and {len(self.frame_errors) - 1} more)" if len(self.frame_errors) > 1 else ""
            return f"{len(self.frame_errors)} frame(s) failed: {self.frame_errors[0]}{more}"
        return ""


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


def plan(videos: Iterable[str | os.PathLike], root: str | os.PathLike) -> list[VideoRun]:
    """A folder for each video: ``ROOT/STEM``, and ``ROOT/STEM-2``, ``-3``... for a stem already taken.

    A stem is taken by an earlier video of the list, or by another video whose record (or keyframes)
    is in ``ROOT/STEM`` from an earlier run; so the same list always maps to the same folders, and a
    folder is reused only by its own video.
    """
    root = Path(root)
    runs: list[VideoRun] = []
    taken: set[Path] = set()
    for video in expand(videos):
        mine = os.fspath(video.resolve())
        for number in itertools.count(1):
            folder = root / (video.stem if number == 1 else f"{video.stem}-{number}")
            owner = records.recorded_video(folder)
            if folder not in taken and owner in (None, mine):
                break
        taken.add(folder)
        note = "" if number == 1 else f"{root / video.stem} holds another video called {video.stem}"
        runs.append(VideoRun(video, folder, note))
    return runs


class _Video:
    """A video being run: its keyframe stream, the frames handed to the workers, and what came back."""

    def __init__(self, run: VideoRun, estimate: int):
        self.run = run
        self.estimate = estimate
        self.started = time.perf_counter()
        self.keyframes: Keyframes | None = None
        self.outstanding = 0
        self.counted = 0  # frames done (written, up to date, or failed)
        self.submitted = False  # the stream has ended: every frame was handed out
        self.finished = False


def run_videos(
    runs: list[VideoRun],
    background: str | os.PathLike = "first",
    params: MaskParams = MaskParams(),
    engine: str = DEFAULT_ENGINE,
    progress: Progress | None = None,
    jobs: int | None = None,
    force: bool = False,
    sheet: bool = True,
    on_video: Callable[[VideoRun], None] | None = None,
    *,
    scheduler=None,
    source: str = "keyframes",
    window: float = 0.0,
    match_exposure: bool = False,
    samples: int | None = None,
    spans: Sequence[tuple[float, float]] = (),
) -> list[VideoRun]:
    """Run the blog's recipe on every video of ``runs`` (see :func:`plan`), all frames on one pool of workers.

    For each video, in its folder: the keyframes ``t01.tiff``..., the background (``first``: ``t01.tiff``;
    ``lighten``: ``background.tiff``; or the TIFF given), ``NAME-mask.tiff`` and ``NAME-clean.jpg`` for
    every keyframe, then ``sheet.jpg`` (unless ``sheet`` is false) and ``magicmask.json``. Reproduces,
    per video, the commands of :func:`magicmask.pipeline.run`.

    Parameters
    ----------
    runs : list of VideoRun
        Videos and their folders, e.g. from :func:`plan`; updated in place and returned.
    background : {'first', 'lighten', 'darken', 'mean', 'median'} or path
        As for :func:`magicmask.pipeline.run` (the statistics over the keyframes, one per video).
    params : MaskParams
        The thresholds and blurs of the chain.
    engine : str
        The image engine.
    progress : callable, optional
        ``progress("frames", done, total)`` over all videos' keyframes.
    jobs : int, optional
        Worker processes for all videos together; every core by default.
    force : bool
        Redo videos and frames that are done.
    sheet : bool
        Write each folder's contact sheet.
    on_video : callable, optional
        Called with each :class:`VideoRun` as soon as it is finished (done, up to date, or failed).
    scheduler : str or distributed.Client, optional
        Render the masks on this Dask cluster (see :func:`magicmask.cluster.render_frames`), one video
        after the other; keyframes and backgrounds are made here.
    source, window, match_exposure, samples, spans
        The better backgrounds, as for :func:`magicmask.pipeline.run`: statistics over every frame of the
        video (or of its spans), per-keyframe windows, exposure matching (see
        :func:`magicmask.statistics.make_backgrounds`).

    Returns
    -------
    list of VideoRun
        ``runs``, each with its status (``done``, ``up to date`` or ``failed``), keyframe count, seconds
        and error.

    Raises
    ------
    MagicmaskError
        For options that concern every video (an unknown engine, a custom background that is not a
        TIFF), or an output that cannot be written (a full disk): the batch stops there. A failing video
        does not stop it.
    """
    module = get_engine(engine)
    _warm_up(engine)  # Numba's kernels load in a thread while ffmpeg starts, as for one run
    custom = os.fspath(background) not in BACKGROUNDS
    if custom:
        background = check_tiff(background, "background")
    spans = tuple(spans)
    options = records.options_of(background, params, engine, sheet, source=source, window=window, match_exposure=match_exposure, samples=samples, spans=spans)
    better = dict(source=source, window=window, match_exposure=match_exposure, samples=samples, spans=spans)
    if source != "keyframes" or window or match_exposure or spans:  # options that concern every video: refused up front
        check_options(background if custom else os.fspath(background), source, window, samples or DEFAULT_SAMPLES, spans)
    videos = [_Video(run, 0) for run in runs]
    owner: dict[Path, _Video] = {}
    stop = threading.Event()

    def estimate():  # keyframe counts for the progress bar, read while the work already goes on
        for video in videos:
            if stop.is_set():
                return
            video.estimate = _estimate(video.run.video)

    if progress is not None:
        threading.Thread(target=estimate, daemon=True, name="magicmask-estimate").start()

    def report():
        if progress is not None:
            total = sum(v.counted if v.finished else max(v.estimate, v.counted) for v in videos)
            progress("frames", sum(v.counted for v in videos), total)

    def finish(video: _Video, status: str | None = None) -> None:
        if video.finished or (status is None and (not video.submitted or video.outstanding)):
            return
        run = video.run
        try:
            if status is None:
                status = _complete(video, options, sheet)
        except MagicmaskError as exc:
            run.error, status = exc, FAILED
        finally:
            if video.keyframes is not None:
                video.keyframes.close()
        run.status = FAILED if (run.error or run.frame_errors) else status
        run.seconds = time.perf_counter() - video.started
        video.finished = True
        report()
        if on_video is not None:
            on_video(run)

    def frame_done(video: _Video, error: MagicmaskError | None = None) -> None:
        video.counted += 1
        if error is not None:
            video.run.frame_errors.append(error)
        report()

    def pending() -> Iterator[FrameJob]:
        report()
        for video in videos:
            video.started = time.perf_counter()
            records.hash_soon(video.run.video)
            if not force and (done := records.is_current(video.run.folder, video.run.video, options)) is not None:
                video.run.keyframes = video.counted = len(done["keyframes"])
                video.run.background = {"first": video.run.folder / done["keyframes"][0], "lighten": video.run.folder / BACKGROUND_NAME}.get(options["background"], background)
                video.run.record = video.run.folder / records.RECORD_NAME
                video.run.sheet = video.run.folder / "sheet.jpg" if sheet else None
                finish(video, UP_TO_DATE)
                continue
            try:
                for job in _frame_jobs(video, background, params, engine, force, frame_done, **better, threads=jobs):
                    records.hash_soon(job.frame)  # hashed for the record while the frames are made
                    owner[job.frame] = video
                    video.outstanding += 1
                    yield job
                    records.versions_soon()  # for the record; started once ffmpeg is under way, not competing with its start
            except MagicmaskError as exc:
                video.run.error = exc
            video.submitted = True
            finish(video, FAILED if video.run.error and not video.outstanding else None)

    if scheduler is None:
        results = run_tasks(render, pending(), jobs, threads=getattr(module, "THREADS", False))
    else:
        results = _on_cluster(pending(), params, engine, scheduler)
    try:
        for job, result, error in results:
            video = owner.pop(job.frame)
            if error is None:  # written here, by this process, so an interruption never leaves half a file
                records.hash_soon(write_atomic(job.mask, result[0]))
                records.hash_soon(write_atomic(job.clean, result[1]))
            video.outstanding -= 1
            frame_done(video, None if error is None else as_magicmask_error(error, job.frame))
            finish(video, FAILED if video.run.error and video.submitted and not video.outstanding else None)
    finally:
        stop.set()
        for video in videos:
            if video.keyframes is not None:
                video.keyframes.close()  # on interruption: ffmpeg stopped, its temporary folder removed
    return runs


def _on_cluster(jobs: Iterator[FrameJob], params: MaskParams, engine: str, scheduler):
    """:func:`magicmask.cluster.render_frames` for each video's run of jobs (it holds one background at a time)."""
    from magicmask.cluster import render_frames

    for background, group in itertools.groupby(jobs, key=lambda job: job.background):
        yield from render_frames(group, background, params, engine, scheduler)


def _estimate(video: Path) -> int:
    try:
        return keyframe_count(video)
    except MagicmaskError:
        return 0  # reported when the video is run


def _frame_jobs(video: _Video, background, params: MaskParams, engine: str, force: bool, frame_done, source="keyframes", window=0.0, match_exposure=False, samples=None, spans=(), threads=None) -> Iterator[FrameJob]:
    """The frames of one video still to do, as jobs for the workers (as :func:`magicmask.pipeline.run` picks them).

    Backgrounds are made here, before the video's first job: folds in this process, medians in ``threads``
    threads (this video's frames wait for them)."""
    run = video.run
    keyframes = video.keyframes = Keyframes(run.video, run.folder)
    own: dict[Path, Path] = {}
    if source != "keyframes" or window or match_exposure or spans:  # better backgrounds: every keyframe first
        frames = list(keyframes)
        own = make_backgrounds(run.video, frames, run.folder, background, source, window, match_exposure, samples or DEFAULT_SAMPLES, engine=engine, jobs=1, threads=threads, spans=spans)
        distinct = set(own.values())
        base, source = (distinct.pop() if len(distinct) == 1 else run.folder), iter(frames)
    elif background == "lighten":
        frames = list(keyframes)
        target = run.folder / BACKGROUND_NAME
        if force or not _newer_than_all(target, frames):
            lighten_background(frames, target, engine=engine, jobs=1)  # in this process: the pool is busy with frames
        base, source = target, iter(frames)
    elif background in STATISTICS:  # the statistic of the keyframes, made once they are all extracted
        frames = list(keyframes)
        made = make_backgrounds(run.video, frames, run.folder, background, "keyframes", engine=engine, jobs=1, threads=threads)
        base, source = next(iter(made.values())), iter(frames)
    elif os.fspath(background) not in BACKGROUNDS:
        base, source = Path(background), iter(keyframes)
    else:  # the first keyframe, as soon as ffmpeg has written it; the masks start while it goes on
        source = iter(keyframes)
        base = next(source, None)
        if base is None:  # Keyframes raises first; kept for safety
            raise MagicmaskError("ffmpeg found no keyframe in the video", run.video, "check that the video decodes (ffplay), or re-encode it")
        source = itertools.chain([base], source)
    run.background = base
    resume = _Resume(sorted(set(own.values())) or [base], params, force)
    for frame in iter_frames(source):
        mask, clean = output_paths(frame, run.folder)
        job = FrameJob(frame, mask, clean, own.get(frame, base), params, engine)
        if resume.done(job):
            frame_done(video)
        else:
            yield job


def _complete(video: _Video, options: dict, sheet: bool) -> str:
    """A video whose frames are all done: final names, sheet, record."""
    from magicmask.sheet import contact_sheet

    run = video.run
    if run.error is not None or video.keyframes is None:
        return FAILED
    frames = video.keyframes.finish((MASK_SUFFIX, CLEAN_SUFFIX))
    run.keyframes = len(frames)
    if options["background"] == "first":
        run.background = frames[0]
    if run.frame_errors:
        return FAILED
    extra = []
    if sheet:
        run.sheet = contact_sheet(run.folder)
        extra.append(run.sheet)
    record = records.build(run.video, run.folder, frames, options, video.keyframes.pix_fmt, extra)
    run.record = records.write(run.folder, record)
    return DONE
