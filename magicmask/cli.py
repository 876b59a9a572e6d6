"""The ``magicmask`` command: parse options, call one library function, print one-line errors.

Process-wide settings are made here and nowhere else: ImageMagick's policy folder and library name
(environment variables, read when MagickWand loads), glibc's handling of freed memory, the garbage
collector at exit, and quiet threads after an interruption.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import signal
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from magicmask import __version__
from magicmask.errors import MagicmaskError
from magicmask.execute import counter, keep_freed_memory

app = typer.Typer(
    name="magicmask",
    help="Foreground masks from video keyframes, identical to the blog's ImageMagick commands.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
err = Console(stderr=True, highlight=False)
out = Console(highlight=False)

# Options shared by several commands, spelled as ImageMagick spells them.
Threshold = Annotated[str, typer.Option("--threshold", help="First -threshold of the mask chain: ImageMagick syntax (5% or an absolute value), auto (one value from the video's noise) or adaptive (a per-pixel map from the video's spread; needs --background median).")]
Blur = Annotated[str, typer.Option("--blur", help="First -blur geometry RADIUSxSIGMA.")]
Threshold2 = Annotated[str, typer.Option("--threshold2", help="Second -threshold of the mask chain.")]
Blur2 = Annotated[str, typer.Option("--blur2", help="Second -blur geometry.")]
Engine = Annotated[str, typer.Option("--engine", help="Image engine: native (exact, fast) or wand (ImageMagick itself, the reference).")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
Jobs = Annotated[int, typer.Option("--jobs", "-j", help="Workers (threads for the native engine, processes for wand); 0 = every core, 1 = no workers.")]
Force = Annotated[bool, typer.Option("--force", help="Redo frames whose outputs are already up to date.")]
BackgroundMethod = Annotated[str, typer.Option("--background", "-b", help="first (the first keyframe, as in the blog), lighten (as in the blog), darken, mean, median, or the path of a TIFF.")]
Source = Annotated[str, typer.Option("--from", help="Frames a lighten/darken/mean/median background is made from: keyframes (as in the blog) or video (every decoded frame, streamed).")]
Samples = Annotated[int, typer.Option("--samples", help="The most frames a median holds (evenly sampled): memory is about SAMPLES frames.")]
Backend = Annotated[str, typer.Option("--backend", help="Where the work runs: loky (worker processes here) or dask (a Dask cluster; needs --scheduler and pip install 'magicmask\\[dask]').")]
Scheduler = Annotated[Optional[str], typer.Option("--scheduler", help="With --backend dask: the Dask scheduler's address, e.g. tcp://HOST:8786.", show_default=False)]
SchedulerFile = Annotated[Optional[Path], typer.Option("--scheduler-file", help="With --backend dask: the file a Dask scheduler wrote its address in (dask scheduler --scheduler-file FILE), e.g. on a shared home.", show_default=False)]
Storage = Annotated[str, typer.Option("--storage", help="With --backend dask: shared (workers read the videos and write the folders in place: NFS, Lustre), send (videos travel to the workers, outputs come back), or auto (shared when the workers see the same files).")]
Frames = Annotated[list[Path], typer.Argument(help="TIFF frames, e.g. t*.tiff (earlier *-mask.tiff outputs and background.tiff are skipped).", show_default=False)]


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that every ``finally`` (workers, temporary files) runs."""


def _on_sigterm(signum, frame):
    raise Terminated()


KEPT = "finished files are kept; run the same command again to do the rest"


def _friendly(command=None, *, interrupted: str = KEPT):
    """Turn magicmask's errors into one line on stderr and exit 1; Ctrl-C exits 130, SIGTERM 143.

    On an interruption the workers are killed, ffmpeg is stopped and temporary files are removed
    before exiting; ``interrupted`` says what is left (every complete file stays, by default).
    """
    if command is None:
        return functools.partial(_friendly, interrupted=interrupted)

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            return command(*args, **kwargs)
        except MagicmaskError as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}", markup=True, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            _quiet_threads()
            err.print(f"interrupted: {interrupted}", soft_wrap=True)
            raise typer.Exit(130) from None
        except Terminated:
            _quiet_threads()
            err.print(f"terminated: {interrupted}", soft_wrap=True)
            raise typer.Exit(143) from None
        finally:
            signal.signal(signal.SIGTERM, previous)

    return wrapper


def _quiet_threads() -> None:
    """After an interruption, worker pools' manager threads may fail on the killed workers' pipes while the
    process exits: their errors are expected, and not for the user's screen."""
    threading.excepthook = lambda args: None


def _process_settings() -> None:
    """The settings of this process (and the workers it starts), made once before any work."""
    from magicmask import POLICY_FOLDER

    # ImageMagick reads its policy when MagickWand loads: magicmask's own resource limits unless the user
    # chose a configuration path. Wand finds Debian's ImageMagick 6 Q16 at once instead of asking ldconfig
    # and gcc for a dozen names (0.25 s per process, workers included).
    os.environ.setdefault("MAGICK_CONFIGURE_PATH", POLICY_FOLDER)
    os.environ.setdefault("WAND_MAGICK_LIBRARY_SUFFIX", "-6.Q16")
    keep_freed_memory()
    _quiet_pool_threads()


POOL_THREADS = ("ExecutorManagerThread", "QueueFeederThread")
"""The threads by which a loky worker pool manages its processes."""


def _quiet_pool_threads() -> None:
    """A worker pool's manager threads fail on the pipes of workers that died (a Ctrl-C or SIGTERM reaches the
    whole process group, possibly before this process handles it; a worker that crashes): the main thread
    reports that in one line, so their own tracebacks are not printed. Other threads keep Python's hook."""
    default = threading.excepthook

    def hook(args):
        if args.thread is not None and args.thread.name in POOL_THREADS:
            return
        default(args)

    threading.excepthook = hook


def _params(threshold, blur, threshold2, blur2):
    from magicmask.params import MaskParams

    return MaskParams(threshold, blur, threshold2, blur2)


@contextlib.contextmanager
def _progress(quiet: bool):
    """A ``progress(stage, done, total)`` callback drawing a rich progress bar on stderr."""
    if quiet:
        yield None
        return
    columns = [TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=err, transient=False) as bar:
        tasks = {}

        def update(stage: str, done: int, total: int):
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total or None)
            bar.update(tasks[stage], completed=done, total=total or None)

        yield update


def _beside(frames: list[Path], name: str) -> Path:
    """The default output ``name``: beside the first frame (no frames: here, and the library says why)."""
    return frames[0].parent / name if frames else Path(name)


def _report_errors(errors, total: int | None = None) -> None:
    from magicmask.job import plural

    for exc in errors:
        err.print(f"[red]error:[/red] {escape(str(exc))}", markup=True, soft_wrap=True)
    if errors:
        if total is not None and len(errors) >= total:
            err.print(f"{'the frame' if total == 1 else f'all {total} frames'} failed", soft_wrap=True)
        else:
            err.print(f"{plural(len(errors), 'frame')} failed; the others were written", soft_wrap=True)
        raise typer.Exit(1)


def _scheduler(backend: str, scheduler: Optional[str], scheduler_file: Optional[Path] = None) -> Optional[str]:
    """The Dask scheduler to run on (None: local workers), checked before any work starts."""
    from magicmask.execute import BACKENDS

    if backend not in BACKENDS:
        raise MagicmaskError(f"unknown backend {backend!r}", hint=f"use one of: {', '.join(BACKENDS)}")
    if backend != "dask":
        if scheduler or scheduler_file:
            raise MagicmaskError(f"--scheduler{'-file' if scheduler_file else ''} is for the dask backend", hint="add --backend dask")
        return None
    from magicmask.cluster import require, scheduler_address

    require()
    if scheduler and scheduler_file:
        raise MagicmaskError("--scheduler and --scheduler-file both name the Dask scheduler", hint="use one of them")
    if scheduler_file:
        return scheduler_address(scheduler_file)
    if not scheduler:
        raise MagicmaskError("--backend dask needs --scheduler", hint="the address of a running `dask scheduler`, e.g. tcp://HOST:8786, or --scheduler-file FILE")
    return scheduler


def _version(value: bool):
    if value:
        out.print(f"magicmask {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")] = None,
):
    """Foreground masks from video keyframes, identical to the blog's ImageMagick commands."""
    _process_settings()


@app.command()
@_friendly
def keyframes(
    video: Annotated[Path, typer.Argument(help="The video file.", show_default=False)],
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Folder for t01.tiff, t02.tiff, ... \\[default: a folder named after the video]")] = None,
    quiet: Quiet = False,
):
    """Extract the keyframes as RGB TIFFs (ffmpeg -skip_frame nokey ... t%02d.tiff)."""
    from magicmask.media.extract import extract_keyframes

    import os

    from magicmask.lock import FolderLock
    from magicmask.provenance.record import folder_owner

    folder = output or Path(video.stem)
    owner = folder_owner(folder)
    if owner is not None and owner != os.fspath(video.resolve()):
        raise MagicmaskError(f"this folder holds the outputs of another video, {owner}", folder, "choose another folder")
    with _progress(quiet) as update, FolderLock(folder, f"magicmask keyframes {video}"):
        frames = extract_keyframes(video, folder, progress=counter(update, "keyframes", 0))
    from magicmask.job import plural

    out.print(f"{plural(len(frames), 'keyframe')} in {folder}", soft_wrap=True)


@app.command()
@_friendly
def background(
    frames: Frames,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="The background file \\[default: background.tiff beside the frames]")] = None,
    method: Annotated[str, typer.Option("--method", help="lighten (the blog's, on a black canvas), darken (on white), mean or median.")] = "lighten",
    samples: Annotated[int, typer.Option("--samples", help="The most frames a median holds (evenly sampled).")] = 100,
    engine: Engine = "native",
    jobs: Jobs = 0,
    quiet: Quiet = False,
    backend: Backend = "loky",
    scheduler: Scheduler = None,
):
    """Build a background: convert *.tiff -background black -compose lighten -flatten background.tiff."""
    from magicmask.background import flatten
    from magicmask.errors import MagicmaskError
    from magicmask.files import BACKGROUND_NAME, select_frames

    cluster = _scheduler(backend, scheduler)
    chosen = select_frames(frames)
    target = output or _beside(chosen, BACKGROUND_NAME)
    with _progress(quiet) as update:
        step = counter(update, "background", len(chosen))
        if method in ("mean", "median"):
            from magicmask.statistics import frames_background

            if cluster is not None:
                raise MagicmaskError(f"--method {method} runs on this machine only", hint="drop --backend dask, or use lighten or darken")
            written = frames_background(chosen, target, method, samples, step, jobs)
        else:
            written = flatten(chosen, target, method, progress=step, engine=engine, jobs=jobs, scheduler=cluster)
    out.print(f"background written to {written}", soft_wrap=True)


@app.command()
@_friendly
def masks(
    frames: Frames,
    background_file: Annotated[Path, typer.Option("--background", "-b", help="The background TIFF (e.g. t01.tiff or background.tiff).", show_default=False)],
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Folder for NAME-mask.tiff and NAME-clean.jpg \\[default: beside each frame]")] = None,
    threshold: Threshold = "5%",
    blur: Blur = "0x3",
    threshold2: Threshold2 = "20%",
    blur2: Blur2 = "0x3",
    threshold_map: Annotated[Optional[Path], typer.Option("--threshold-map", help="A threshold map (threshold.tiff, from run or masks --threshold adaptive) in place of the first threshold.", show_default=False)] = None,
    engine: Engine = "native",
    jobs: Jobs = 0,
    force: Force = False,
    quiet: Quiet = False,
    backend: Backend = "loky",
    scheduler: Scheduler = None,
):
    """Write NAME-mask.tiff and NAME-clean.jpg for every frame, as the blog's two convert lines do.

    With --threshold auto the first threshold is learned from the noise of the frames against the background;
    with --threshold adaptive a per-pixel threshold map (threshold.tiff in the output folder) from their
    spread, or give one made earlier with --threshold-map.
    """
    from magicmask.files import check_tiff, select_frames
    from magicmask.job import plural
    from magicmask.masks import mask_frames
    from magicmask.options import THRESHOLD_MODES, Options

    mode = threshold if threshold in THRESHOLD_MODES else None  # learned here, from the frames and the background
    options = Options(threshold="5%" if mode else threshold, blur=blur, threshold2=threshold2, blur2=blur2, engine=engine, jobs=jobs)
    chosen = select_frames(frames)
    if threshold_map is not None:
        if mode is not None:
            raise MagicmaskError(f"--threshold-map replaces the first threshold: drop --threshold {threshold}")
        params = options.chain(threshold_map=check_tiff(threshold_map, "threshold map"))
    elif mode == "auto":
        from magicmask.thresholds import auto_threshold

        check_tiff(background_file, "background")
        params = options.chain(threshold=auto_threshold({frame: background_file for frame in chosen}))
        out.print(f"--threshold auto: -threshold {params.threshold}", soft_wrap=True)
    elif mode == "adaptive":
        from magicmask.thresholds import MAP_NAME, learn_map

        check_tiff(background_file, "background")
        target = (output or (chosen[0].parent if chosen else Path("."))) / MAP_NAME
        params = options.chain(threshold_map=learn_map(chosen, background_file, target))
        out.print(f"--threshold adaptive: threshold map {target}", soft_wrap=True)
    else:
        params = options.params
    cluster = _scheduler(backend, scheduler)
    errors = []
    folders = sorted({output} if output is not None else {frame.parent for frame in chosen})
    with contextlib.ExitStack() as held:
        from magicmask.lock import FolderLock
        from magicmask.provenance.record import folder_owner

        for folder in folders:  # no run of magicmask writes there meanwhile
            held.enter_context(FolderLock(folder, "magicmask masks"))
            if (folder / "magicmask.json").exists() and folder_owner(folder) is not None:
                err.print(f"note: {folder} holds a run's record: these masks replace what it lists (magicmask check {folder} shows where they differ; magicmask run remakes them)", soft_wrap=True)
        with _progress(quiet) as update:
            written = mask_frames(chosen, background_file, output, params, counter(update, "masks", len(chosen)), errors.append, engine, jobs, force, scheduler=cluster)
    parts = []
    if written.written or not written.up_to_date:
        parts.append(f"{plural(written.written, 'mask')} and {'clean image' if written.written == 1 else 'clean images'} written")
    if written.up_to_date:
        parts.append(f"{plural(written.up_to_date, 'frame')} already up to date{'' if force else ' (--force redoes them)'}")
    if written or not errors:
        out.print("; ".join(parts), soft_wrap=True)
    _report_errors(errors, len(chosen))


@app.command()
@_friendly
def run(
    video: Annotated[list[Path], typer.Argument(help="The video file(s); several (or a glob) make a batch, one folder each.", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for keyframes, background and outputs; with several videos, the ROOT of one folder per video (ROOT/STEM).", show_default=False)],
    background_choice: BackgroundMethod = "first",
    source: Source = "keyframes",
    window: Annotated[float, typer.Option("--window", help="Seconds: each keyframe gets its own background from the frames within WINDOW/2 of it (0: one background).")] = 0.0,
    match_exposure: Annotated[bool, typer.Option("--match-exposure", help="Shift the background's brightness to each keyframe's before the mask.")] = False,
    samples: Samples = 100,
    span: Annotated[Optional[list[str]], typer.Option("--span", help="START-END in seconds (8- means to the end); with --from video only these parts of the video feed the background, e.g. where nobody stands still. Repeatable.", show_default=False)] = None,
    threshold: Threshold = "5%",
    blur: Blur = "0x3",
    threshold2: Threshold2 = "20%",
    blur2: Blur2 = "0x3",
    engine: Engine = "native",
    jobs: Jobs = 0,
    force: Annotated[bool, typer.Option("--force", help="Redo what is up to date; with one video, replace the outputs of another video in its folder (a batch puts such a video in ROOT/STEM-2).")] = False,
    sheet: Annotated[bool, typer.Option("--sheet/--no-sheet", help="Write the contact sheet sheet.jpg in each folder.")] = True,
    display_: Annotated[bool, typer.Option("--display", help="Also write keyframes.jpg, the multi-exposure display (convert t*.tiff -background white -compose darken -flatten).")] = False,
    cutout: Annotated[bool, typer.Option("--cutout", help="Also write NAME-cutout.png per keyframe: its colours with the mask as alpha (transparent background), at its depth.")] = False,
    plot: Annotated[bool, typer.Option("--plot", help="Also write motion.png, the plot of motion.tsv (needs matplotlib: pip install 'magicmask\\[plot]').")] = False,
    quiet: Quiet = False,
    backend: Backend = "loky",
    scheduler: Scheduler = None,
    scheduler_file: SchedulerFile = None,
    storage: Storage = "auto",
):
    """The whole blog recipe: keyframes, background, then a mask and clean image for every keyframe.

    Each folder also gets motion.tsv (per keyframe: the mask's area, centroid, bounding box and quantity
    of motion), sheet.jpg (frame | mask | clean per keyframe) and magicmask.json (versions,
    options, the commands that make each file, every output's sha256: magicmask check FOLDER re-verifies
    it). A re-run skips finished videos and frames; a folder holding another video is refused.
    """
    from magicmask.media.probe import probe_soon

    probe_soon(video[0])  # ffmpeg needs its answer: ask while the rest of the program loads
    from magicmask.options import Options

    options = Options(
        background_choice, source, window, match_exposure, samples, tuple(span or ()), threshold, blur, threshold2, blur2,
        engine, jobs, force, sheet, display_, scheduler=_scheduler(backend, scheduler, scheduler_file), storage=storage, cutout=cutout, plot=plot,
    )
    _run_videos(video, output, options, quiet)


def _run_videos(videos, output, options, quiet: bool) -> None:
    """``run``: one video straight into OUTPUT, or a batch into OUTPUT/STEM with a line per video and a table."""
    from magicmask.job import expand, plan, plural, run_jobs, RunResult
    from magicmask.sheet import INDEX_NAME

    found = expand(videos)
    results = [RunResult(found[0], output)] if len(found) == 1 else plan(found, output)
    for item in results:
        if item.note:
            out.print(f"note: {item.video} -> {item.folder} ({item.note})", soft_wrap=True)

    def finished(item):
        if len(results) == 1:
            return
        if item.failed:
            message = item.message if item.message.startswith(str(item.video)) else f"{item.video}: {item.message}"
            out.print(f"[red]failed[/red]     {escape(message)}", soft_wrap=True)
        else:
            out.print(f"{item.status:<10} {item.video} -> {item.folder}: {plural(len(item.keyframes), 'keyframe')}, {item.seconds:.1f} s", soft_wrap=True)
        for warning in item.warnings:
            err.print(f"[yellow]warning:[/yellow] {escape(str(item.video))}: {escape(warning)}", markup=True, soft_wrap=True)

    batch_warnings: list[str] = []
    with _progress(quiet) as update:
        results = run_jobs(results, options, update, finished, None if len(found) == 1 else output / INDEX_NAME, batch_warnings)
    if len(results) == 1:
        item = results[0]
        if item.error is not None:
            raise item.error
        for warning in item.warnings:
            err.print(f"[yellow]warning:[/yellow] {escape(str(item.video))}: {escape(warning)}", markup=True, soft_wrap=True)
        done = len(item.outputs)
        made = "up to date: " if item.status == "up to date" else ""
        background = item.background if item.background is not None else "one per keyframe (tNN-background.tiff)"
        out.print(f"{made}{plural(len(item.keyframes), 'keyframe')}, background {background}, {plural(done, 'mask')} and {'clean image' if done == 1 else 'clean images'} in {item.folder}", soft_wrap=True)
        learned = sorted(set(item.thresholds.values()))
        if options.threshold_mode == "auto" and learned:
            out.print(f"--threshold auto: -threshold {', '.join(learned)}" + (" (the blog's 5%: the video's noise is below it)" if learned == ["5%"] else ""), soft_wrap=True)
        elif options.threshold_mode == "adaptive" and learned:
            out.print(f"--threshold adaptive: {plural(len(learned), 'threshold map')} ({', '.join(Path(name).name for name in learned[:3])}{' ...' if len(learned) > 3 else ''})", soft_wrap=True)
        if item.record is not None:
            extras = [f"motion data {item.motion}"] if item.motion else []
            extras += [f"plot {item.plot}"] if item.plot else []
            extras += [f"sheet {item.sheet}"] if item.sheet else []
            extras += [f"display {item.display}"] if item.display else []
            out.print(f"record {item.record}" + "".join(f", {extra}" for extra in extras), soft_wrap=True)
        _report_errors(item.errors, len(item.keyframes))
        return
    table = Table("video", "folder", "keyframes", "seconds", "status")
    for item in results:
        reason = item.error.message if item.error is not None else f"{plural(len(item.errors), 'keyframe')} failed"
        status = f"[red]failed[/red]: {escape(reason)}" if item.failed else item.status + (" [yellow](warnings)[/yellow]" if item.warnings else "")
        table.add_row(escape(str(item.video)), escape(str(item.folder)), str(len(item.keyframes)), f"{item.seconds:.1f}", status)
    out.print(table)
    if options.sheet and (output / INDEX_NAME).is_file() and not batch_warnings:
        out.print(f"index sheet {output / INDEX_NAME}", soft_wrap=True)
    for warning in batch_warnings:
        err.print(f"[yellow]warning:[/yellow] {escape(warning)}", markup=True, soft_wrap=True)
    failed = [item for item in results if item.failed]
    if failed:
        rest = "" if len(failed) == len(results) else "; the others are done"
        which = f"all {len(results)} videos failed" if len(failed) == len(results) else f"{len(failed)} of {len(results)} videos failed"
        err.print(f"{which}{rest} (run the same command again to retry)", soft_wrap=True)
        raise typer.Exit(1)


@app.command()
@_friendly
def display(
    frames: Frames,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="The display image \\[default: keyframes.jpg beside the frames]")] = None,
    engine: Engine = "native",
    jobs: Jobs = 0,
    quiet: Quiet = False,
    backend: Backend = "loky",
    scheduler: Scheduler = None,
):
    """The keyframe multi-exposure display: convert *.tiff -background white -compose darken -flatten keyframes.jpg."""
    from magicmask.background import keyframe_display
    from magicmask.files import select_frames

    cluster = _scheduler(backend, scheduler)
    chosen = select_frames(frames)
    target = output or _beside(chosen, "keyframes.jpg")
    with _progress(quiet) as update:
        written = keyframe_display(chosen, target, counter(update, "display", len(chosen)), engine, jobs, scheduler=cluster)
    out.print(f"display written to {written}", soft_wrap=True)


@app.command()
@_friendly
def check(
    frames: Annotated[list[Path], typer.Argument(help="TIFF frames, e.g. t*.tiff; or a folder magicmask run wrote (or its magicmask.json) to re-verify.", show_default=False)],
    background_file: Annotated[Optional[Path], typer.Option("--background", "-b", help="The background TIFF the masks are made against (for frames).", show_default=False)] = None,
    threshold: Threshold = "5%",
    blur: Blur = "0x3",
    threshold2: Threshold2 = "20%",
    blur2: Blur2 = "0x3",
    threshold_map: Annotated[Optional[Path], typer.Option("--threshold-map", help="A threshold map (threshold.tiff) in place of the first threshold.", show_default=False)] = None,
    engine: Annotated[str, typer.Option("--engine", help="The engine to check: native, wand, or all.")] = "all",
    jobs: Jobs = 0,
    hashes_only: Annotated[bool, typer.Option("--hashes-only", help="With a folder: compare sha256 with its record, run no command.")] = False,
    quiet: Quiet = False,
):
    """Run the literal convert commands on the frames and compare every engine's outputs with them, exactly.

    magicmask check FOLDER re-verifies a folder from its magicmask.json: every output's sha256, and the
    recorded ffmpeg and convert commands run again with each output compared exactly.
    """
    if background_file is None:
        return _check_record(frames, hashes_only, jobs, quiet)
    from magicmask.options import THRESHOLD_MODES

    if threshold in THRESHOLD_MODES:
        raise MagicmaskError(f"check compares given thresholds, not --threshold {threshold}", hint="give the value or --threshold-map a run learned (its magicmask.json has them), or check the run's FOLDER")
    from magicmask.check import check as run_check
    from magicmask.engines import ENGINES
    from magicmask.files import select_frames

    params = _params(threshold, blur, threshold2, blur2)
    if threshold_map is not None:
        from dataclasses import replace

        from magicmask.files import check_tiff

        params = replace(params, threshold_map=str(check_tiff(threshold_map, "threshold map")))
    chosen = select_frames(frames)
    engines = ENGINES if engine == "all" else (engine,)
    with _progress(quiet) as update:
        rows = run_check(chosen, background_file, params, engines, counter(update, "check", len(chosen)), jobs)
    table = Table("file", "engine", "result", "differing pixels", "note")
    for row in rows:
        colour = "green" if row.identical else "red"
        table.add_row(row.name, row.engine, f"[{colour}]{row.status}[/{colour}]", f"{row.differing_pixels} / {row.total_pixels}", row.note)
    out.print(table)
    differing = [row for row in rows if not row.identical]
    if differing:
        which = ", ".join(sorted({row.engine for row in differing}))
        err.print(f"{len(differing)} of {len(rows)} files differ from convert's (engine: {which})", soft_wrap=True)
        raise typer.Exit(1)
    out.print(f"all {len(rows)} files identical to convert's ({', '.join(engines)})", soft_wrap=True)


@app.command("video")
@_friendly(interrupted="nothing was written (the unfinished video was removed); run the same command again")
def video_command(
    video: Annotated[Path, typer.Argument(help="The video file.", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="The clean (foreground) video, e.g. clean.mp4.", show_default=False)],
    masks: Annotated[Optional[Path], typer.Option("--masks", help="Also write the masks as a video, e.g. masks.mp4.", show_default=False)] = None,
    data: Annotated[Optional[Path], typer.Option("--data", help="Also write the motion data of every frame, e.g. motion.tsv: frame, time, area, x, y, left, top, right, bottom, motion (tab-separated).", show_default=False)] = None,
    motiongram: Annotated[Optional[Path], typer.Option("--motiongram", help="Also write the horizontal and vertical motiongrams of the masks, e.g. motiongram.png (needs matplotlib).", show_default=False)] = None,
    alpha: Annotated[Optional[Path], typer.Option("--alpha", help="Also write the video with the mask as alpha channel: NAME.mov (ProRes 4444, for editors: Premiere, Final Cut, Resolve) or NAME.webm (VP9, for browsers); no audio.", show_default=False)] = None,
    background_choice: BackgroundMethod = "first",
    source: Source = "keyframes",
    samples: Samples = 100,
    span: Annotated[Optional[list[str]], typer.Option("--span", help="START-END in seconds (8- means to the end); with --from video only these parts feed the background. Repeatable.", show_default=False)] = None,
    threshold: Threshold = "5%",
    blur: Blur = "0x3",
    threshold2: Threshold2 = "20%",
    blur2: Blur2 = "0x3",
    crf: Annotated[float, typer.Option("--crf", help="x264 quality, 0 (best) to 51 (smallest).")] = 18,
    lossless: Annotated[bool, typer.Option("--lossless", help="Encode every sample exactly (libx264rgb -qp 0; large files, not every player).")] = False,
    preset: Annotated[str, typer.Option("--preset", help="x264 preset, ultrafast .. veryslow.")] = "veryfast",
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Threads computing masks; 0 = every core.")] = 0,
    quiet: Quiet = False,
):
    """Every frame (not only keyframes) through the blog's mask chain and multiply, streamed back into H.264.

    Frames come from ffmpeg's raw pipe and go to ffmpeg's encoder: nothing is written to disk but the
    outputs asked for; audio is copied. --data, --motiongram and --alpha add the motion data of every
    frame, the masks' motiongrams and a video with the mask as alpha. Each frame of the clean video is what the blog's two convert lines compute
    for that decoded frame (before JPEG), encoded with --crf, or exactly with --lossless. The background
    is made as run makes it (--background, --from, --samples, --span), in memory. H.264 4:2:0 needs an even
    width and height: a video of odd size gets one black column (right) and/or row (bottom); --lossless
    keeps the size.
    """
    from magicmask.options import Options
    from magicmask.video import foreground_video

    options = Options(background_choice, source, samples=samples, spans=tuple(span or ()), threshold=threshold, blur=blur, threshold2=threshold2, blur2=blur2, jobs=jobs)
    with _progress(quiet) as update:
        result = foreground_video(
            video, output, masks, options.background, options.chain(), crf, lossless, preset, jobs, update,
            source=options.source, samples=options.samples, spans=options.spans, threshold=options.threshold_mode,
            data=data, motiongram=motiongram, alpha=alpha,
        )
    made = [path for path in (result.masks, result.alpha, result.data, result.motiongram) if path is not None]
    written = f"{result.output}" + "".join(f", {path}" for path in made[:-1]) + (f" and {made[-1]}" if made else "")
    audio = ", audio copied" if result.audio else ""
    learned = f", --threshold {options.threshold}: {result.threshold if result.threshold.startswith('a ') else '-threshold ' + result.threshold}" if result.threshold else ""
    out.print(f"{result.frames} frames in {result.seconds:.1f} s ({result.fps:.1f} fps){audio}{learned}: {written}", soft_wrap=True)
    if result.size != result.source_size:
        (w, h), (pw, ph) = result.source_size, result.size
        out.print(f"note: {w}x{h} frames are padded to {pw}x{ph} with black (H.264 4:2:0 needs an even width and height; --lossless keeps the size)", soft_wrap=True)
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/yellow] {escape(str(video))}: {escape(warning)}", markup=True, soft_wrap=True)


@app.command()
@_friendly
def sheet(
    folder: Annotated[Path, typer.Argument(help="A folder magicmask run wrote (keyframes, masks, clean images).", show_default=False)],
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="The sheet (.jpg or .png) \\[default: FOLDER/sheet.jpg]")] = None,
    width: Annotated[int, typer.Option("--width", help="Width of each thumbnail in pixels.")] = 240,
    quiet: Quiet = False,
):
    """A contact sheet: every keyframe's frame, mask and clean image, named, in a grid; of a batch's ROOT, its index sheet."""
    from magicmask.sheet import INDEX_NAME, contact_sheet, index_sheet, sheet_frames, video_folders

    if folder.is_dir() and not sheet_frames(folder) and (folders := video_folders(folder)):
        written = index_sheet(folders, output or folder / INDEX_NAME)
        out.print(f"index sheet of {len(folders)} videos written to {written}", soft_wrap=True)
        return
    with _progress(quiet) as update:
        written = contact_sheet(folder, output, width, counter(update, "sheet", len(sheet_frames(folder)) if folder.is_dir() else 0))
    out.print(f"sheet written to {written}", soft_wrap=True)


def _check_record(paths, hashes_only, jobs, quiet) -> None:
    """``check FOLDER``: a folder's outputs against its magicmask.json."""
    from magicmask.errors import MagicmaskError
    from magicmask.files import RECORD_NAME
    from magicmask.provenance.record import load
    from magicmask.provenance.verify import verify

    if len(paths) != 1 or not (paths[0].is_dir() or paths[0].name.endswith(".json")):
        raise MagicmaskError("--background is needed to check frames", hint="magicmask check t*.tiff --background t01.tiff, or magicmask check FOLDER")
    folder, record = load(paths[0])
    with _progress(quiet) as update:
        rows = verify(folder, rerun=not hashes_only, jobs=jobs, progress=counter(update, "check", len(record["outputs"])))
    table = Table("file", "sha256", "command re-run", "note")
    for row in rows:
        hash_colour = "green" if row.hash == "matches" else "red"
        rerun_colour = "green" if row.rerun == "identical" else ("red" if row.rerun in ("differs", "failed") else "default")
        table.add_row(row.name, f"[{hash_colour}]{row.hash}[/{hash_colour}]", f"[{rerun_colour}]{row.rerun}[/{rerun_colour}]", row.note)
    out.print(table)
    bad = [row for row in rows if not row.ok]
    if bad:
        err.print(f"{len(bad)} of {len(rows)} entries differ from {folder / RECORD_NAME}: {', '.join(row.name for row in bad[:5])}{' ...' if len(bad) > 5 else ''}", soft_wrap=True)
        raise typer.Exit(1)
    from magicmask.job import plural

    if hashes_only:
        how = "sha256 checked; no command re-run"
    else:
        rerun = [row for row in rows if row.rerun == "identical"]
        by_hash = [row for row in rows if row.rerun != "identical"]
        parts = ["sha256 checked"]
        if rerun:
            parts.append(f"{plural(len(rerun), 'file')} made again by {'its command' if len(rerun) == 1 else 'their commands'}, identical")
        if by_hash:
            reasons = sorted({row.note.split(":")[0].split(";")[0] for row in by_hash if row.note})
            parts.append(f"{plural(len(by_hash), 'file')} checked by hash only ({'; '.join(reasons) or 'no command makes them'})")
        how = "; ".join(parts)
    out.print(f"all {plural(len(rows), 'file')} of {folder} match the record ({how})", soft_wrap=True)


@app.command()
@_friendly
def demo(
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the sample video and its outputs.")] = Path("magicmask-demo"),
    engine: Engine = "native",
    jobs: Jobs = 0,
    quiet: Quiet = False,
):
    """Make a small sample video (a figure walking over a stone wall) and run the whole recipe on it."""
    from magicmask.demo import demo as run_demo
    from magicmask.job import plural

    with _progress(quiet) as update:
        video, result = run_demo(output, engine, update, jobs)
    if result.error is not None:
        raise result.error
    out.print(f"sample video:   {video}", soft_wrap=True)
    out.print(f"keyframes:      {result.folder}/{result.keyframes[0].name} ... {result.keyframes[-1].name}", soft_wrap=True)
    out.print(f"masks, cleans:  {result.folder}/NAME-mask.tiff, NAME-clean.jpg ({plural(len(result.outputs), 'keyframe')})", soft_wrap=True)
    out.print(f"background:     {result.background}", soft_wrap=True)
    out.print(f"display:        {result.display}", soft_wrap=True)
    out.print(f"motion data:    {result.motion}" + (f", plot {result.plot}" if result.plot else " (pip install 'magicmask[plot]' for its plot, motion.png)"), soft_wrap=True)
    out.print(f"sheet:          {result.sheet}", soft_wrap=True)
    out.print(f"record:         {result.record} (magicmask check {result.folder} re-runs its commands)", soft_wrap=True)
    _report_errors(result.errors, len(result.keyframes))


def main():
    try:
        app()
    finally:
        # At exit Python collects every object once more: after Numba has loaded, about 0.2 s of one
        # core spent on a process about to end. Frozen objects are left out of that collection
        # (atexit handlers, flushing and closing still run).
        gc.freeze()


if __name__ == "__main__":
    main()
