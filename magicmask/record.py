"""The record of a run: ``magicmask.json`` beside the outputs, to cite and to re-verify later.

It holds the versions (magicmask, ImageMagick, ffmpeg, the engine), the exact options, the video
(path, size, sha256), the seed-equivalent commands that make the folder (run inside it), and the size
and sha256 of every output. :func:`verify` checks a folder against its record: the hashes, and the
literal commands run again (ffmpeg and the real ``convert``) with every output compared exactly.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from magicmask import __version__
from magicmask.errors import MagicmaskError
from magicmask.execute import resolve_jobs
from magicmask.files import BACKGROUND_NAME, BACKGROUND_SUFFIX, check_tiff, output_paths, write_atomic
from magicmask.params import MaskParams

RECORD_NAME = "magicmask.json"
FORMAT = "magicmask-record/1"
BACKGROUND_MODES = ("first", "lighten", "darken", "mean", "median")
FOLDS = {"lighten": "black", "darken": "white"}  # -compose OP: the -background colour, as the seed's lighten
STATISTICS = ("mean", "median")  # made by magicmask.statistics: no convert command of the seed's
_KEYFRAME_NAME = re.compile(r"t\d{2,}\.tiff")


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


def hash_soon(path: str | os.PathLike) -> None:
    """Start hashing a finished output in a background thread, so that :func:`sha256` (and the record
    written at the end of a run) need not read it again. hashlib releases the GIL while it works."""
    key = os.path.abspath(path)
    try:
        identity = _identity(os.stat(key))
    except OSError:
        return
    with _LOCK:
        if key in _DIGESTS and _DIGESTS[key][0] == identity:
            return
        _DIGESTS[key] = (identity, _HASHER.submit(_digest, key))


_LOCK = threading.Lock()
_DIGESTS: dict[str, tuple[tuple[int, int, int], str | Future]] = {}
_HASHER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="magicmask-hash")


def _identity(stat: os.stat_result) -> tuple[int, int, int]:
    """What says a file is the one hashed: a new file (an atomic rename) has a new inode."""
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def _digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def options_of(background: str | os.PathLike, params: MaskParams, engine: str, sheet: bool, *, source: str = "keyframes", window: float = 0.0, match_exposure: bool = False, samples: int | None = None, spans=()) -> dict:
    """The options that decide a run's outputs, as recorded (a custom background as an absolute path;
    the better backgrounds' options only when they are used)."""
    mode = os.fspath(background)
    if mode not in BACKGROUND_MODES:
        mode = os.fspath(Path(mode).resolve())
    options = {"background": mode, "threshold": params.threshold, "blur": params.blur, "threshold2": params.threshold2, "blur2": params.blur2, "engine": engine, "sheet": sheet}
    from magicmask.statistics import DEFAULT_SAMPLES

    if samples == DEFAULT_SAMPLES or mode != "median":
        samples = None  # only a median's sample count changes what is made
    better = {"from": source, "window": window, "match_exposure": match_exposure, "samples": samples, "spans": [[a, b if b != float("inf") else None] for a, b in spans] or None}
    options.update({key: value for key, value in better.items() if value not in ("keyframes", 0, 0.0, False, None)})
    return options


@dataclass(frozen=True)
class Recipe:
    """The seed-equivalent commands that make a folder, run inside it: ffmpeg, then an optional
    background command, then two ``convert`` lines per keyframe (they depend only on the first two)."""

    keyframes: list[str]
    background: list[str] | None
    frames: list[tuple[list[str], list[str]]]

    def lines(self) -> list[str]:
        """Every command as a shell line, in order."""
        commands = [self.keyframes, *([self.background] if self.background else [])]
        commands += [command for pair in self.frames for command in pair]
        return [shlex.join(command) for command in commands]


def recipe(video: str | os.PathLike, keyframes: list[str], background: str, params: MaskParams, pix_fmt: str, convert: str = "convert") -> Recipe:
    """The commands of the blog post, as magicmask reproduces them, for a folder of ``keyframes`` names.

    ::

        ffmpeg -skip_frame nokey -i VIDEO -fps_mode passthrough -pix_fmt rgb24 -f image2 t%02d.tiff
        convert t01.tiff ... -background black -compose lighten -flatten background.tiff      # lighten only
        convert BG t01.tiff -compose difference -composite -threshold 5% -blur 0x3 -threshold 20% -blur 0x3 t01-mask.tiff
        convert t01.tiff t01-mask.tiff -compose multiply -flatten t01-clean.jpg
        ...
    """
    from magicmask.check import seed_commands
    from magicmask.keyframes import keyframes_command

    if not keyframes:
        raise MagicmaskError("a recipe needs at least one keyframe")
    width = len(keyframes[0]) - len("t.tiff")
    pattern = f"t%0{width}d.tiff"
    extract = keyframes_command(os.fspath(video), pattern, pix_fmt)
    extract[-1] = "file:" + pattern  # the output, relative: the commands run inside the folder
    fold = None
    if background in FOLDS:
        fold = [convert, *keyframes, "-background", FOLDS[background], "-compose", background, "-flatten", BACKGROUND_NAME]
        base = BACKGROUND_NAME
    elif background in STATISTICS:  # background.tiff, made by magicmask.statistics, is an input of the loop
        base = BACKGROUND_NAME
    elif background == "first":
        base = keyframes[0]
    else:
        base = background
    frames = []
    for name in keyframes:
        mask, clean = (path.name for path in output_paths(name))
        first, second = seed_commands(convert, base, name, mask, clean, params)
        frames.append((first, second))
    return Recipe(extract, fold, frames)


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
    from magicmask.keyframes import version as ffmpeg_version

    try:
        imagemagick = wand.version()
    except MagicmaskError:
        imagemagick = "not installed"
    return {"magicmask": __version__, "imagemagick": imagemagick, "ffmpeg": ffmpeg_version(), "python": platform.python_version()}


def build(
    video: str | os.PathLike,
    folder: str | os.PathLike,
    keyframes: list[Path],
    options: dict,
    pix_fmt: str,
    extra: list[Path] = (),
) -> dict:
    """The record of a finished run in ``folder`` (see the module's description).

    ``extra`` are outputs made by no seed command (the contact sheet), recorded with their hashes.
    """
    from magicmask.engines import get_engine

    video, folder = Path(video).resolve(), Path(folder)
    names = [path.name for path in keyframes]
    params = MaskParams(options["threshold"], options["blur"], options["threshold2"], options["blur2"])
    made = recipe(video, names, options["background"], params, pix_fmt)
    outputs = list(names)
    if (folder / BACKGROUND_NAME).is_file() and options["background"] in (*FOLDS, *STATISTICS):
        outputs.append(BACKGROUND_NAME)
    for name in names:
        outputs += [path.name for path in output_paths(name)]
        own = folder / f"{Path(name).stem}{BACKGROUND_SUFFIX}"  # a keyframe's own background (windows, exposure)
        if own.is_file():
            outputs.append(own.name)
    outputs += [Path(path).name for path in extra]
    stat = video.stat()
    record = {
        "format": FORMAT,
        **tool_versions(),
        "engine": {"name": options["engine"], "version": get_engine(options["engine"]).version()},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "video": {"path": os.fspath(video), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256(video), "keyframe_pix_fmt": pix_fmt},
        "options": options,
        "keyframes": names,
        "commands": made.lines(),
        "outputs": {name: {"size": (folder / name).stat().st_size, "sha256": sha256(folder / name)} for name in outputs},
    }
    if options["background"] not in BACKGROUND_MODES:
        path = Path(options["background"])
        record["inputs"] = {"background": {"path": os.fspath(path), "size": path.stat().st_size, "sha256": sha256(path)}}
    return record


def write(folder: str | os.PathLike, record: dict) -> Path:
    """Write ``folder/magicmask.json`` atomically."""
    return write_atomic(Path(folder) / RECORD_NAME, (json.dumps(record, indent=2) + "\n").encode())


def load(path: str | os.PathLike) -> tuple[Path, dict]:
    """``(folder, record)`` from a folder holding ``magicmask.json`` or from the file itself.

    Raises
    ------
    MagicmaskError
        When there is no record, or it is not one magicmask wrote (or it names files outside its folder).
    """
    path = Path(path)
    file = path / RECORD_NAME if path.is_dir() else path
    try:
        record = json.loads(file.read_text())
    except FileNotFoundError:
        raise MagicmaskError("no magicmask.json here", path, "run magicmask run VIDEO -o FOLDER (finished frames are not redone) to write one") from None
    except (OSError, ValueError) as exc:
        raise MagicmaskError(f"cannot read the record: {exc}", file, "restore magicmask.json or run magicmask run again") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise MagicmaskError("not a magicmask record (format field)", file, f"expected {FORMAT}")
    try:
        names = list(record["outputs"]) + list(record["keyframes"])
        record["options"]["background"], record["video"]["path"]
    except (KeyError, TypeError):
        raise MagicmaskError("the record lacks outputs, keyframes, options or video", file, "restore magicmask.json or run magicmask run again") from None
    for name in names:
        if not isinstance(name, str) or Path(name).name != name or name in (".", ".."):
            raise MagicmaskError(f"the record names a file outside its folder: {name!r}", file, "restore magicmask.json")
    if not all(_KEYFRAME_NAME.fullmatch(name) for name in record["keyframes"]):
        raise MagicmaskError("the record's keyframes are not named t01.tiff ...", file, "restore magicmask.json")
    return file.parent, record


def is_current(folder: str | os.PathLike, video: str | os.PathLike, options: dict) -> dict | None:
    """The record of ``folder`` when it says the run is finished and still stands: the same video (path,
    size, modification time), options and magicmask version, and every output present, of its recorded
    size and no newer than the record. None otherwise."""
    try:
        folder, record = load(folder)
        file = folder / RECORD_NAME
        made = file.stat().st_mtime_ns
        stat = Path(video).stat()
        same = (
            record["video"]["path"] == os.fspath(Path(video).resolve())
            and record["video"]["size"] == stat.st_size
            and record["video"]["mtime_ns"] == stat.st_mtime_ns
            and record["options"] == options
            and record.get("magicmask") == __version__
        )
        if not same:
            return None
        for name, facts in record["outputs"].items():
            output = (folder / name).stat()
            if output.st_size != facts["size"] or output.st_mtime_ns > made:
                return None
        return record
    except (MagicmaskError, OSError, KeyError, TypeError):
        return None


def recorded_video(folder: str | os.PathLike) -> str | None:
    """The video path a folder's record (or its keyframes marker) names, if any."""
    from magicmask.keyframes import MARKER_NAME

    for name in (RECORD_NAME, MARKER_NAME):
        try:
            data = json.loads((Path(folder) / name).read_text())
            found = data["video"]["path"] if name == RECORD_NAME else data["video"]
            if isinstance(found, str):
                return found
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


# --------------------------------------------------------------------------------------------------
# verification


@dataclass(frozen=True)
class Verdict:
    """One file of a record, checked: its hash against the record, and the re-run command's output against it."""

    name: str
    hash: str  # matches | differs | missing
    rerun: str  # identical | differs | failed | not re-run
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.hash == "matches" and self.rerun in ("identical", "not re-run")


def verify(path: str | os.PathLike, rerun: bool = True, jobs: int | None = None, progress: Callable[[str], None] | None = None) -> list[Verdict]:
    """Check a folder against its ``magicmask.json``.

    Every recorded output's SHA-256 is compared with the record. With ``rerun``, the seed-equivalent
    commands run again in a temporary folder: ffmpeg's keyframe command on the recorded video (when it
    is still there) compared with the folder's keyframes, then the real ``convert`` lines on the
    folder's keyframes, each output compared exactly (pixels, depth, channels; JPEG bytes) with the
    folder's. The commands run are rebuilt from the recorded options (a note says when the record's
    command text differs), never taken from the file as they stand.

    Parameters
    ----------
    path : path
        The folder, or its ``magicmask.json``.
    rerun : bool
        Run the commands again (else hashes only).
    jobs : int, optional
        ``convert`` processes at once; every core by default.
    progress : callable, optional
        Called with each file name once it is checked.

    Returns
    -------
    list of Verdict
        One per recorded output (and one named ``commands`` when the recorded command text differs).
    """
    from magicmask.check import find_convert
    from magicmask.compare import compare_files

    folder, record = load(path)
    outputs = record["outputs"]
    reported: set[str] = set()

    def report(name: str) -> None:
        if progress is not None and name in outputs and name not in reported:
            reported.add(name)
            progress(name)

    hashes = {}
    for name, facts in outputs.items():
        file = folder / name
        if not file.is_file():
            hashes[name] = ("missing", "not in the folder")
        elif sha256(file) != facts.get("sha256"):
            hashes[name] = ("differs", f"sha256 differs from the record ({file.stat().st_size} bytes, recorded {facts.get('size')})")
        else:
            hashes[name] = ("matches", "")
    verdicts: dict[str, Verdict] = {name: Verdict(name, status, "not re-run", note) for name, (status, note) in hashes.items()}
    extra: list[Verdict] = []
    if rerun:
        options = record["options"]
        try:
            params = MaskParams(options["threshold"], options["blur"], options["threshold2"], options["blur2"])
        except (KeyError, TypeError):
            raise MagicmaskError("the record's options are incomplete", folder / RECORD_NAME, "restore magicmask.json") from None
        convert = find_convert()
        keyframes = record["keyframes"]
        video = record["video"]["path"]
        pix_fmt = record["video"].get("keyframe_pix_fmt", "rgb24")
        ours = recipe(video, keyframes, options["background"], params, pix_fmt)
        if ours.lines() != record.get("commands"):
            extra.append(Verdict("commands", "differs", "not re-run", "the record's command text differs from its options; magicmask's own commands were run"))
        with tempfile.TemporaryDirectory(prefix="magicmask-verify-") as work:
            work = Path(work)
            reruns = _rerun_keyframes(ours, video, record, folder, work / "ffmpeg", compare_files)
            for name in reruns:
                report(name)
            reruns.update(_rerun_convert(ours, keyframes, options["background"], record, folder, work / "convert", convert, jobs, compare_files, report))
        for name, (status, note) in reruns.items():
            if name in verdicts:
                old = verdicts[name]
                verdicts[name] = Verdict(name, old.hash, status, "; ".join(filter(None, (old.note, note))))
        for name, old in verdicts.items():
            if name not in reruns:
                verdicts[name] = Verdict(name, old.hash, old.rerun, old.note or "made by no seed command: checked by hash")
    for name in outputs:
        report(name)
    return extra + list(verdicts.values())


def _rerun_result(compared, counted: str) -> tuple[str, str]:
    """A re-run's verdict and note from a :class:`~magicmask.compare.Comparison`: ``counted`` says how many
    pixels differ; a file that cannot be decoded is ``differs`` (the folder's) or ``failed`` (the re-run's)."""
    if compared.identical:
        return "identical", ""
    if not compared.readable:
        return ("differs" if compared.note.startswith("cannot read:") else "failed"), compared.note
    return "differs", ", ".join(filter(None, (counted, compared.note)))


def _rerun_keyframes(ours: Recipe, video: str, record: dict, folder: Path, work: Path, compare_files) -> dict:
    from magicmask.keyframes import _run

    names = record["keyframes"]
    if not Path(video).is_file():
        return {name: ("not re-run", "the video is gone; keyframes checked by hash only") for name in names}
    if sha256(video) != record["video"].get("sha256"):
        return {name: ("not re-run", "the video has changed since the record; keyframes checked by hash only") for name in names}
    work.mkdir(parents=True)
    _run(ours.keyframes, video, "extract keyframes", cwd=work)
    results = {}
    for name in names:
        if not (folder / name).is_file():
            continue
        compared = compare_files(folder / name, work / name)
        results[name] = _rerun_result(compared, f"ffmpeg now: {compared.differing_pixels} pixels differ")
    made = sorted(p.name for p in work.glob("t*.tiff"))
    if made != sorted(names):
        for name in names:
            results.setdefault(name, ("differs", f"ffmpeg now writes {len(made)} keyframes, the record {len(names)}"))
    return results


def _rerun_convert(ours: Recipe, keyframes: list[str], background: str, record: dict, folder: Path, work: Path, convert: str, jobs, compare_files, progress) -> dict:
    options = record.get("options", {})
    if options.get("window") or options.get("match_exposure"):
        return {name: ("not re-run", "each keyframe has its own background; checked by hash only") for name in record["outputs"]}
    results: dict[str, tuple[str, str]] = {}
    work.mkdir(parents=True)
    for name in keyframes:  # the folder's keyframes are the inputs; convert chooses a decoder by content
        source = folder / name
        try:
            check_tiff(source)
        except MagicmaskError as exc:
            results[name] = ("failed", exc.message)
            return results
        shutil.copyfile(source, work / name)
    if background in STATISTICS:  # made by no convert command: the folder's file (checked by hash) is the input
        try:
            check_tiff(folder / BACKGROUND_NAME, "background")
        except MagicmaskError as exc:
            return {BACKGROUND_NAME: ("failed", exc.message)}
        shutil.copyfile(folder / BACKGROUND_NAME, work / BACKGROUND_NAME)
    elif background not in BACKGROUND_MODES:
        recorded = record.get("inputs", {}).get("background", {})
        if not Path(background).is_file() or sha256(background) != recorded.get("sha256"):
            return {name: ("not re-run", "the background TIFF is gone or changed; checked by hash only") for name in record["outputs"]}
        check_tiff(background, "background")
    env = dict(os.environ)
    threads = resolve_jobs(jobs)
    if threads > 1:
        env["MAGICK_THREAD_LIMIT"] = "1"  # results do not depend on it; processes share the cores instead

    def run(command: list[str]) -> str | None:
        args = [convert, *command[1:]]
        done = subprocess.run(args, cwd=work, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines()
            return f"convert failed: {lines[-1] if lines else done.returncode}"
        return None

    def compare(name: str, failure: str | None) -> None:
        if failure is not None:
            results[name] = ("failed", failure)
        elif not (folder / name).is_file():
            results[name] = ("not re-run", "")
        else:
            compared = compare_files(folder / name, work / name)
            results[name] = _rerun_result(compared, f"convert: {compared.differing_pixels} of {compared.total_pixels} pixels differ")
        if progress is not None:
            progress(name)

    if ours.background is not None:
        compare(BACKGROUND_NAME, run(ours.background))
        if results[BACKGROUND_NAME][0] == "failed":
            return results

    def frame(pair):
        first, second = pair
        failure = run(first)
        return first[-1], failure, second[-1], failure or run(second)

    with ThreadPoolExecutor(threads) as pool:
        for mask, mask_failure, clean, clean_failure in pool.map(frame, ours.frames):
            compare(mask, mask_failure)
            compare(clean, clean_failure)
    return results
