"""The ``magicmask`` command: parse options, call one library function, print one-line errors."""

from __future__ import annotations

import contextlib
import functools
import signal
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from magicmask import __version__
from magicmask.errors import MagicmaskError

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
Threshold = Annotated[str, typer.Option("--threshold", help="First -threshold of the mask chain (ImageMagick syntax: 5% or an absolute value).")]
Blur = Annotated[str, typer.Option("--blur", help="First -blur geometry RADIUSxSIGMA.")]
Threshold2 = Annotated[str, typer.Option("--threshold2", help="Second -threshold of the mask chain.")]
Blur2 = Annotated[str, typer.Option("--blur2", help="Second -blur geometry.")]
Engine = Annotated[str, typer.Option("--engine", help="Image engine: native (exact, fast) or wand (ImageMagick itself, the reference).")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
Jobs = Annotated[int, typer.Option("--jobs", "-j", help="Worker processes; 0 = every core, 1 = no workers.")]
Force = Annotated[bool, typer.Option("--force", help="Redo frames whose outputs are already up to date.")]
Backend = Annotated[str, typer.Option("--backend", help="Where the work runs: loky (worker processes here) or dask (a Dask cluster; needs --scheduler and pip install 'magicmask\\[dask]').")]
Scheduler = Annotated[Optional[str], typer.Option("--scheduler", help="With --backend dask: the Dask scheduler's address, e.g. tcp://HOST:8786.", show_default=False)]
Frames = Annotated[list[Path], typer.Argument(help="TIFF frames, e.g. t*.tiff (earlier *-mask.tiff outputs and background.tiff are skipped).", show_default=False)]


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that every ``finally`` (workers, temporary files) runs."""


def _on_sigterm(signum, frame):
    raise Terminated()


def _friendly(command):
    """Turn magicmask's errors into one line on stderr and exit 1; Ctrl-C exits 130, SIGTERM 143.

    On an interruption the workers are killed, ffmpeg is stopped and temporary files are removed
    before exiting; every file already complete stays, so a re-run does the rest.
    """

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            return command(*args, **kwargs)
        except MagicmaskError as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}", markup=True, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("interrupted: finished files are kept; run the same command again to do the rest", soft_wrap=True)
            raise typer.Exit(130) from None
        except Terminated:
            err.print("terminated: finished files are kept; run the same command again to do the rest", soft_wrap=True)
            raise typer.Exit(143) from None
        finally:
            signal.signal(signal.SIGTERM, previous)

    return wrapper


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


def _counter(update, stage: str, total: int):
    """A per-file callback for library functions that report each file done."""
    if update is None:
        return None
    done = 0
    update(stage, 0, total)

    def step(_path=None):
        nonlocal done
        done += 1
        update(stage, done, total)

    return step


def _report_errors(errors) -> None:
    for exc in errors:
        err.print(f"[red]error:[/red] {escape(str(exc))}", markup=True, soft_wrap=True)
    if errors:
        err.print(f"{len(errors)} frame(s) failed; the others were written", soft_wrap=True)
        raise typer.Exit(1)


def _scheduler(backend: str, scheduler: Optional[str]) -> Optional[str]:
    """The Dask scheduler to run on (None: local workers), checked before any work starts."""
    from magicmask.execute import BACKENDS

    if backend not in BACKENDS:
        raise MagicmaskError(f"unknown backend {backend!r}", hint=f"use one of: {', '.join(BACKENDS)}")
    if backend != "dask":
        if scheduler:
            raise MagicmaskError("--scheduler is for the dask backend", hint="add --backend dask")
        return None
    from magicmask.cluster import require

    require()
    if not scheduler:
        raise MagicmaskError("--backend dask needs --scheduler", hint="the address of a running `dask scheduler`, e.g. tcp://HOST:8786")
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


@app.command()
@_friendly
def keyframes(
    video: Annotated[Path, typer.Argument(help="The video file.", show_default=False)],
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Folder for t01.tiff, t02.tiff, ... [default: a folder named after the video]")] = None,
    quiet: Quiet = False,
):
    """Extract the keyframes as RGB TIFFs (ffmpeg -skip_frame nokey ... t%02d.tiff)."""
    from magicmask.keyframes import extract_keyframes

    folder = output or Path(video.stem)
    with _progress(quiet) as update:
        frames = extract_keyframes(video, folder, progress=_counter(update, "keyframes", 0))
    out.print(f"{len(frames)} keyframes in {folder}", soft_wrap=True)


@app.command()
@_friendly
def background(
    frames: Frames,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="The background file [default: background.tiff beside the frames]")] = None,
    method: Annotated[str, typer.Option("--method", help="lighten (the seed's, on a black canvas) or darken (on white).")] = "lighten",
    engine: Engine = "native",
    jobs: Jobs = 0,
    quiet: Quiet = False,
    backend: Backend = "loky",
    scheduler: Scheduler = None,
):
    """Build a background: convert *.tiff -background black -compose lighten -flatten background.tiff."""
    from magicmask.background import flatten
    from magicmask.files import BACKGROUND_NAME, select_frames

    cluster = _scheduler(backend, scheduler)
    chosen = select_frames(frames)
    target = output or (chosen[0].parent / BACKGROUND_NAME if chosen else Path(BACKGROUND_NAME))
    with _progress(quiet) as update:
        written = flatten(chosen, target, method, progress=_counter(update, "background", len(chosen)), engine=engine, jobs=jobs, scheduler=cluster)
    out.print(f"background written to {written}", soft_wrap=True)


@app.command()
@_friendly
def masks(
    frames: Frames,
    background_file: Annotated[Path, typer.Option("--background", "-b", help="The background TIFF (e.g. t01.tiff or background.tiff).", show_default=False)],
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Folder for NAME-mask.tiff and NAME-clean.jpg [default: beside each frame]")] = None,
    threshold: Threshold = "5%",
    blur: Blur = "0x3",
    threshold2: Threshold2 = "20%",
    blur2: Blur2 = "0x3",
    engine: Engine = "native",
    jobs: Jobs = 0,
    force: Force = False,
    quiet: Quiet = False,
    backend: Backend = "loky",
    scheduler: Scheduler = None,
):
    """Write NAME-mask.tiff and NAME-clean.jpg for every frame, as the blog's two convert lines do."""
    from magicmask.files import select_frames
    from magicmask.masks import mask_frames

    params = _params(threshold, blur, threshold2, blur2)
    cluster = _scheduler(backend, scheduler)
    chosen = select_frames(frames)
    errors = []
    with _progress(quiet) as update:
        written = mask_frames(chosen, background_file, output, params, _counter(update, "masks", len(chosen)), errors.append, engine, jobs, force, scheduler=cluster)
    out.print(f"{len(written)} masks and clean images written", soft_wrap=True)
    _report_errors(errors)


@app.command()
@_friendly
def run(
    video: Annotated[Path, typer.Argument(help="The video file.", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for keyframes, background and outputs.", show_default=False)],
    background_choice: Annotated[str, typer.Option("--background", "-b", help="first (the first keyframe, as in the blog), lighten (writes background.tiff), or the path of a TIFF.")] = "first",
    threshold: Threshold = "5%",
    blur: Blur = "0x3",
    threshold2: Threshold2 = "20%",
    blur2: Blur2 = "0x3",
    engine: Engine = "native",
    jobs: Jobs = 0,
    force: Force = False,
    quiet: Quiet = False,
    backend: Backend = "loky",
    scheduler: Scheduler = None,
):
    """The whole blog recipe: keyframes, background, then a mask and clean image for every keyframe."""
    from magicmask.pipeline import run as run_pipeline

    params = _params(threshold, blur, threshold2, blur2)
    cluster = _scheduler(backend, scheduler)
    with _progress(quiet) as update:
        result = run_pipeline(video, output, background_choice, params, engine, update, jobs, force, scheduler=cluster)
    out.print(f"{len(result.keyframes)} keyframes, background {result.background}, {len(result.outputs)} masks and clean images in {result.out_dir}", soft_wrap=True)
    _report_errors(result.errors)


@app.command()
@_friendly
def display(
    frames: Frames,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="The display image [default: keyframes.jpg beside the frames]")] = None,
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
    target = output or (chosen[0].parent / "keyframes.jpg" if chosen else Path("keyframes.jpg"))
    with _progress(quiet) as update:
        written = keyframe_display(chosen, target, _counter(update, "display", len(chosen)), engine, jobs, scheduler=cluster)
    out.print(f"display written to {written}", soft_wrap=True)


@app.command()
@_friendly
def check(
    frames: Frames,
    background_file: Annotated[Path, typer.Option("--background", "-b", help="The background TIFF the masks are made against.", show_default=False)],
    threshold: Threshold = "5%",
    blur: Blur = "0x3",
    threshold2: Threshold2 = "20%",
    blur2: Blur2 = "0x3",
    engine: Annotated[str, typer.Option("--engine", help="The engine to check: native, wand, or all.")] = "all",
    jobs: Jobs = 0,
    quiet: Quiet = False,
):
    """Run the literal convert commands on the frames and compare every engine's outputs with them, exactly."""
    from magicmask.check import check as run_check
    from magicmask.engines import ENGINES
    from magicmask.files import select_frames

    params = _params(threshold, blur, threshold2, blur2)
    chosen = select_frames(frames)
    engines = ENGINES if engine == "all" else (engine,)
    with _progress(quiet) as update:
        rows = run_check(chosen, background_file, params, engines, _counter(update, "check", len(chosen)), jobs)
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

    with _progress(quiet) as update:
        video, result, display_path = run_demo(output, engine, update, jobs)
    out.print(f"sample video:   {video}", soft_wrap=True)
    out.print(f"keyframes:      {result.out_dir}/t01.tiff ... {result.keyframes[-1].name}", soft_wrap=True)
    out.print(f"masks, cleans:  {result.out_dir}/NAME-mask.tiff, NAME-clean.jpg ({len(result.outputs)} each)", soft_wrap=True)
    out.print(f"background:     {result.background}", soft_wrap=True)
    out.print(f"display:        {display_path}", soft_wrap=True)
    _report_errors(result.errors)


def main():
    app()


if __name__ == "__main__":
    main()
