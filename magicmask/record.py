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
from magicmask.files import BACKGROUND_NAME, BACKGROUND_SUFFIX, DISPLAY_NAME, MAP_NAME, RECORD_NAME, TEMP_PREFIX, check_tiff, output_paths, write_atomic
from magicmask.params import MaskParams

FORMAT = "magicmask-record/1"
OWNER_NAME = TEMP_PREFIX + "video.json"
"""The video a folder belongs to, written when a run starts in it (before any output)."""
_KEYFRAME_NAME = re.compile(r"t\d{2,}\.tiff")
_OUTPUT_NAME = re.compile(r"t\d{2,}(?:\.tiff|-mask\.tiff|-clean\.jpg|-background\.tiff|-threshold\.tiff)")
_OUTPUT_NAMES = (BACKGROUND_NAME, MAP_NAME, DISPLAY_NAME, "sheet.jpg", RECORD_NAME)


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


def shell_line(command: list[str]) -> str:
    """One command as a shell line."""
    return shlex.join(command)


@dataclass(frozen=True)
class Recipe:
    """The blog's commands that make a folder, run inside it: ffmpeg, then an optional fold making
    ``background.tiff``, then two ``convert`` lines per keyframe (each against that keyframe's background),
    then an optional display. Files that no command makes (a statistic's background) are their inputs."""

    keyframes: list[str]
    background: list[str] | None
    frames: list[tuple[list[str], list[str]]]
    display: list[str] | None = None

    def commands(self) -> list[list[str]]:
        """Every command, in order."""
        commands = [self.keyframes, *([self.background] if self.background else [])]
        commands += [command for pair in self.frames for command in pair]
        return commands + ([self.display] if self.display else [])

    def lines(self) -> list[str]:
        """Every command as a shell line, in order."""
        return [shell_line(command) for command in self.commands()]

    def makers(self) -> dict[str, str]:
        """``{file name: the shell line that writes it}`` (keyframes: the ffmpeg line)."""
        return {command[-1]: shell_line(command) for command in self.commands()[1:]}


def recipe(
    video: str | os.PathLike,
    keyframes: list[str],
    backgrounds: dict[str, str],
    params: MaskParams | dict[str, MaskParams],
    pix_fmt: str,
    fold: str | None = None,
    display: bool = False,
    convert: str = "convert",
) -> Recipe:
    """The commands of the blog post, as magicmask reproduces them, for a folder of ``keyframes`` names.

    ::

        ffmpeg -skip_frame nokey -i VIDEO -fps_mode passthrough -pix_fmt rgb24 -f image2 t%02d.tiff
        convert t01.tiff ... -background black -compose lighten -flatten background.tiff      # fold only
        convert BG t01.tiff -compose difference -composite -threshold 5% -blur 0x3 -threshold 20% -blur 0x3 t01-mask.tiff
        convert t01.tiff t01-mask.tiff -compose multiply -flatten t01-clean.jpg
        ...
        convert t01.tiff ... -background white -compose darken -flatten keyframes.jpg        # display only

    Parameters
    ----------
    backgrounds : dict
        ``{keyframe name: its background}``: a file name in the folder, or an absolute path.
    params : MaskParams or dict
        The chain, or ``{keyframe name: its chain}`` when the first threshold was learned per keyframe.
    fold : {'lighten', 'darken'}, optional
        ``background.tiff`` is that fold of the keyframes, made by a ``convert`` command.
    display : bool
        The folder has the keyframe display ``keyframes.jpg``.
    """
    from magicmask.check import seed_commands
    from magicmask.media.extract import keyframes_command
    from magicmask.options import METHODS

    if not keyframes:
        raise MagicmaskError("a recipe needs at least one keyframe")
    width = len(keyframes[0]) - len("t.tiff")
    pattern = f"t%0{width}d.tiff"
    extract = keyframes_command(os.fspath(video), pattern, pix_fmt)
    extract[-1] = pattern  # the output, relative: the commands run inside the folder
    made = None
    if fold is not None:
        made = [convert, *keyframes, "-background", METHODS[fold].colour, "-compose", fold, "-flatten", BACKGROUND_NAME]
    frames = []
    for name in keyframes:
        mask, clean = (path.name for path in output_paths(name))
        chain = params[name] if isinstance(params, dict) else params
        frames.append(tuple(seed_commands(convert, backgrounds[name], name, mask, clean, chain)))
    shown = [convert, *keyframes, "-background", "white", "-compose", "darken", "-flatten", DISPLAY_NAME] if display else None
    return Recipe(extract, made, frames, shown)


def _fold_of(options: dict) -> str | None:
    """The fold a ``convert`` command makes ``background.tiff`` with, for these recorded options (else None)."""
    from magicmask.options import METHODS

    method = METHODS.get(options.get("background"))
    if method is None or method.kind != "fold" or options.get("from", "keyframes") != "keyframes" or options.get("window"):
        return None
    return method.name


def backgrounds_of(record: dict) -> dict[str, str]:
    """``{keyframe name: background}`` of a record (its ``backgrounds``; derived from the options in records
    that predate it)."""
    names = record["keyframes"]
    if isinstance(record.get("backgrounds"), dict):
        return dict(record["backgrounds"])
    mode = record["options"]["background"]
    if mode == "first":
        return {name: names[0] for name in names}
    if Path(mode).is_absolute():
        return {name: mode for name in names}
    outputs = record.get("outputs", {})
    own = {name: f"{Path(name).stem}{BACKGROUND_SUFFIX}" for name in names}
    return {name: own[name] if own[name] in outputs else BACKGROUND_NAME for name in names}


def thresholds_of(record: dict) -> dict[str, str]:
    """``{keyframe name: its first threshold}`` of a record: a ``-threshold`` value, or a threshold map's file
    name (``.tiff``); the recorded option for records that predate learned thresholds."""
    if isinstance(record.get("thresholds"), dict):
        return dict(record["thresholds"])
    return {name: record["options"]["threshold"] for name in record["keyframes"]}


def chains_of(record: dict) -> dict[str, MaskParams]:
    """Each keyframe's mask chain, as the record's options and learned thresholds give it."""
    options = record["options"]
    chains = {}
    for name, value in thresholds_of(record).items():
        if value.endswith(".tiff"):  # a threshold map, in place of the first -threshold
            chains[name] = MaskParams("5%", options["blur"], options["threshold2"], options["blur2"], value)
        else:
            chains[name] = MaskParams(value, options["blur"], options["threshold2"], options["blur2"])
    return chains


def _description(options: dict, name: str) -> str:
    """What made a background file that no command makes."""
    how = {"from": options.get("from", "keyframes"), "window": options.get("window"), "spans": options.get("spans"), "samples": options.get("samples")}
    what = f"magicmask: {options['background']} of the {'video' if how['from'] == 'video' else 'keyframes'}"
    if how["window"]:
        what += f" within a {how['window']:g} s window"
    if how["spans"]:
        what += " (spans " + ", ".join(f"{a:g}-{'' if b is None else f'{b:g}'}" for a, b in how["spans"]) + ")"
    if options.get("match_exposure") and name.endswith(BACKGROUND_SUFFIX):
        what += ", shifted to the keyframe's exposure"
    if name.endswith("threshold.tiff"):
        what = what.replace(f"magicmask: {options['background']} of", "magicmask: threshold map (--threshold adaptive) learned with the median of")
    return what + " (no convert command: checked by hash, the input of the convert lines)"
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


def build(
    video: str | os.PathLike,
    folder: str | os.PathLike,
    keyframes: list[Path],
    options,
    pix_fmt: str,
    backgrounds: dict[Path, Path],
    extra: list[Path] = (),
    warnings: list[str] = (),
    thresholds: dict[Path, str] | None = None,
) -> dict:
    """The record of a finished run in ``folder`` (see the module's description).

    Lists exactly the files the run made, each with what made it: the command (``made_by``: its shell
    line) or, for files no command of the blog's makes (a statistic's background, the contact sheet), a
    description. ``backgrounds`` maps each keyframe to its background; ``extra`` are the sheet and display.
    """
    from magicmask.engines import get_engine

    video, folder = Path(video).resolve(), Path(folder)
    recorded = options.recorded()
    names = [path.name for path in keyframes]
    mapped = {frame.name: (background.name if background.parent == folder else os.fspath(background)) for frame, background in backgrounds.items()}
    learned = {Path(frame).name: (Path(value).name if value.endswith(".tiff") else value) for frame, value in (thresholds or {}).items()}
    if options.threshold_mode is None:
        learned = {}
    chains = chains_of({"options": recorded, "keyframes": names, **({"thresholds": learned} if learned else {})})
    made = recipe(video, names, mapped, chains, pix_fmt, _fold_of(recorded), DISPLAY_NAME in {Path(p).name for p in extra})
    makers = made.makers()
    extract = made.lines()[0]
    outputs: dict[str, str] = {name: extract for name in names}
    for name in dict.fromkeys([*mapped.values(), *(value for value in learned.values() if value.endswith(".tiff"))]):
        if not Path(name).is_absolute() and name not in outputs:
            outputs[name] = makers.get(name) or _description(recorded, name)
    for name in names:
        for path in output_paths(name):
            outputs[path.name] = makers[path.name]
    for path in extra:
        outputs[Path(path).name] = makers.get(Path(path).name, "magicmask: the contact sheet (frame | mask | clean per keyframe)")
    stat = video.stat()
    record = {
        "format": FORMAT,
        **tool_versions(),
        "engine": {"name": options.engine, "version": get_engine(options.engine).version()},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "video": {"path": os.fspath(video), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256(video), "keyframe_pix_fmt": pix_fmt},
        "options": recorded,
        "keyframes": names,
        "backgrounds": mapped,
        **({"thresholds": learned} if learned else {}),
        "commands": made.lines(),
        "outputs": {name: {"size": (folder / name).stat().st_size, "sha256": sha256(folder / name), "made_by": maker} for name, maker in outputs.items()},
    }
    if warnings:
        record["warnings"] = list(warnings)
    if options.method is None:
        path = Path(options.background)
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
    if "backgrounds" in record:
        mapped = record["backgrounds"]
        custom = record.get("inputs", {}).get("background", {}).get("path")
        if not isinstance(mapped, dict) or set(mapped) != set(record["keyframes"]):
            raise MagicmaskError("the record's backgrounds do not name one per keyframe", file, "restore magicmask.json")
        for name in mapped.values():
            inside = isinstance(name, str) and Path(name).name == name and name not in (".", "..")
            if not inside and not (isinstance(name, str) and name == custom):
                raise MagicmaskError(f"the record names a background outside its folder: {name!r}", file, "restore magicmask.json")
    if "thresholds" in record:
        learned = record["thresholds"]
        if not isinstance(learned, dict) or set(learned) != set(record["keyframes"]) or not all(isinstance(v, str) for v in learned.values()):
            raise MagicmaskError("the record's thresholds do not name one per keyframe", file, "restore magicmask.json")
        for value in learned.values():
            if value.endswith(".tiff") and (Path(value).name != value or value in (".", "..")):
                raise MagicmaskError(f"the record names a threshold map outside its folder: {value!r}", file, "restore magicmask.json")
            if not value.endswith(".tiff"):
                MaskParams(value)  # a -threshold value, or the error naming it
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


def folder_owner(folder: str | os.PathLike) -> str | None:
    """The video (absolute path) whose outputs ``folder`` holds, from the mark a run leaves when it starts,
    its record, or its keyframes' mark; None when none of them names one."""
    from magicmask.media.extract import MARKER_NAME

    for name in (OWNER_NAME, RECORD_NAME, MARKER_NAME):
        try:
            data = json.loads((Path(folder) / name).read_text())
            found = data["video"]["path"] if name == RECORD_NAME else data["video"]
            if isinstance(found, str):
                return found
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def output_names(folder: str | os.PathLike) -> list[str]:
    """The files in ``folder`` named as magicmask names its outputs (keyframes, masks, backgrounds, sheet, record...)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return sorted(name for name in names if _OUTPUT_NAME.fullmatch(name) or name in _OUTPUT_NAMES)


def remove_outputs(folder: str | os.PathLike, keep: set[str] | None = None) -> list[str]:
    """Remove magicmask's outputs from ``folder``, except the names in ``keep``.

    Without ``keep`` every output goes, and with them the folder's hidden marks (its video, its keyframes'
    extraction, the masks' settings): the folder is then as if magicmask had never run in it.
    """
    from magicmask.media.extract import MARKER_NAME
    from magicmask.masks import SETTINGS_NAME

    removed = [name for name in output_names(folder) if keep is None or name not in keep]
    if keep is None:
        removed += [name for name in (OWNER_NAME, MARKER_NAME, SETTINGS_NAME) if (Path(folder) / name).exists()]
    for name in removed:
        try:
            os.unlink(Path(folder) / name)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise MagicmaskError(f"cannot remove an earlier output: {exc.strerror}", Path(folder) / name, "check the folder's permissions") from None
    return removed


def claim(folder: str | os.PathLike, video: str | os.PathLike, force: bool = False) -> None:
    """Make ``folder`` the folder of ``video`` before a run writes anything in it.

    A folder holding another video's outputs (or keyframes no run recorded) is refused, or with ``force``
    emptied of them first. The folder's record is removed: until the run completes and writes a new one,
    no record describes a folder that is being changed.

    Raises
    ------
    MagicmaskError
        Naming the video the folder holds, when it is another one and ``force`` is false.
    """
    folder = Path(folder)
    mine = os.fspath(Path(video).resolve())
    owner = folder_owner(folder)
    strangers = owner is None and any(_KEYFRAME_NAME.fullmatch(name) for name in output_names(folder))
    if (owner is not None and owner != mine) or strangers:
        if not force:
            held = f"the outputs of another video, {owner}" if owner else "keyframes that no magicmask run recorded"
            raise MagicmaskError(f"this folder holds {held}", folder, "choose another folder, or add --force to replace them")
        remove_outputs(folder)
    try:
        (folder / RECORD_NAME).unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise MagicmaskError(f"cannot replace the record: {exc.strerror}", folder / RECORD_NAME, "check the folder's permissions") from None
    stat = Path(video).stat()
    write_atomic(folder / OWNER_NAME, json.dumps({"video": mine, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}).encode())


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

    Every recorded output's SHA-256 is compared with the record. With ``rerun``, the commands run again
    in a temporary folder: ffmpeg's keyframe command on the recorded video (when it is still there)
    compared with the folder's keyframes, then the real ``convert`` lines (each keyframe against its own
    background; files that no command makes, such as a median background, are checked by hash and are
    the inputs), each output compared exactly (pixels, depth, channels; JPEG bytes) with the folder's.
    The commands run are rebuilt from the recorded options and backgrounds (a row named ``commands`` says
    when the record's command text differs), never taken from the file as they stand.

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
        ``rerun`` says ``identical``, ``differs``, ``failed``, or ``not re-run`` with the reason in ``note``.
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
            chains = chains_of(record)
        except (KeyError, TypeError, AttributeError):
            raise MagicmaskError("the record's options are incomplete", folder / RECORD_NAME, "restore magicmask.json") from None
        convert = find_convert()
        keyframes = record["keyframes"]
        video = record["video"]["path"]
        pix_fmt = record["video"].get("keyframe_pix_fmt", "rgb24")
        mapped = backgrounds_of(record)
        ours = recipe(video, keyframes, mapped, chains, pix_fmt, _fold_of(options), DISPLAY_NAME in outputs)
        if ours.lines() != record.get("commands"):
            extra.append(Verdict("commands", "differs", "not re-run", "the record's command text differs from its options; magicmask's own commands were run"))
        with tempfile.TemporaryDirectory(prefix="magicmask-verify-") as work:
            work = Path(work)
            reruns = _rerun_keyframes(ours, video, record, folder, work / "ffmpeg", compare_files)
            for name in reruns:
                report(name)
            reruns.update(_rerun_convert(ours, keyframes, mapped, record, folder, work / "convert", convert, jobs, compare_files, report))
        for name, (status, note) in reruns.items():
            if name in verdicts:
                old = verdicts[name]
                verdicts[name] = Verdict(name, old.hash, status, "; ".join(filter(None, (old.note, note))))
        for name, old in verdicts.items():
            if name not in reruns:
                verdicts[name] = Verdict(name, old.hash, old.rerun, old.note or "made by no command: checked by hash")
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
    from magicmask.media.ffmpeg import run as _run

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


def _rerun_convert(ours: Recipe, keyframes: list[str], mapped: dict[str, str], record: dict, folder: Path, work: Path, convert: str, jobs, compare_files, progress) -> dict:
    """The recipe's ``convert`` lines run again in ``work`` on copies of the folder's inputs: its keyframes,
    and the backgrounds that no command makes (checked by hash first)."""
    results: dict[str, tuple[str, str]] = {}
    outputs = record["outputs"]
    work.mkdir(parents=True)
    for name in keyframes:  # the folder's keyframes are the inputs; convert chooses a decoder by content
        source = folder / name
        try:
            check_tiff(source)
        except MagicmaskError as exc:
            results[name] = ("failed", exc.message)
            return results
        shutil.copyfile(source, work / name)
    made = ours.makers()
    custom = record.get("inputs", {}).get("background", {})
    maps = [value for value in thresholds_of(record).values() if value.endswith(".tiff")]
    for name in dict.fromkeys([*mapped.values(), *maps]):
        if name in made or name in keyframes:
            continue
        if Path(name).is_absolute():  # the TIFF given as background, outside the folder
            if not Path(name).is_file() or sha256(name) != custom.get("sha256"):
                return {output: ("not re-run", "the background TIFF is gone or changed; checked by hash only") for output in outputs}
            check_tiff(name, "background")
            continue
        try:
            check_tiff(folder / name, "threshold map" if name in maps else "background")
        except MagicmaskError as exc:
            return {name: ("failed", exc.message)}
        if sha256(folder / name) != outputs.get(name, {}).get("sha256"):
            results[name] = ("not re-run", "differs from the record, so the masks made from it were not re-made")
            continue
        shutil.copyfile(folder / name, work / name)
        results[name] = ("not re-run", "made by magicmask's statistics, no command: checked by hash, then the input of the convert lines")
    unusable = {name for name, (status, _) in results.items() if status == "not re-run" and "differs" in results[name][1]}
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
        if set(first) & unusable:
            return first[-1], None, second[-1], None
        failure = run(first)
        return first[-1], failure, second[-1], failure or run(second)

    with ThreadPoolExecutor(threads) as pool:
        for (first, _), (mask, mask_failure, clean, clean_failure) in zip(ours.frames, pool.map(frame, ours.frames)):
            if set(first) & unusable:
                for name in (mask, clean):
                    results[name] = ("not re-run", f"its input {sorted(set(first) & unusable)[0]} differs from the record")
                continue
            compare(mask, mask_failure)
            compare(clean, clean_failure)
    if ours.display is not None:
        compare(DISPLAY_NAME, run(ours.display))
    return results
