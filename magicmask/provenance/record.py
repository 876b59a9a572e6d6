"""The record of a run: ``magicmask.json`` beside the outputs, to cite and to re-verify later.

It holds the versions (magicmask, ImageMagick, ffmpeg, the engine), the exact options, the video (path,
size, sha256), each keyframe's background and first threshold, the commands of the blog's recipe that make
the folder (run inside it), and every output with its size, sha256 and what made it. A folder belongs to
one video: :func:`claim` marks it before a run writes, :func:`folder_owner` reads the mark. Verifying a
folder against its record is :mod:`magicmask.provenance.verify`.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from magicmask import __version__
from magicmask.errors import MagicmaskError
from magicmask.files import BACKGROUND_NAME, BACKGROUND_SUFFIX, DISPLAY_NAME, RECORD_NAME, TEMP_PREFIX, output_paths, write_atomic
from magicmask.params import MaskParams
from magicmask.provenance.hashing import sha256, tool_versions

FORMAT = "magicmask-record/1"
OWNER_NAME = TEMP_PREFIX + "video.json"
"""The video a folder belongs to, written when a run starts in it (before any output)."""
_KEYFRAME_NAME = re.compile(r"t\d{2,}\.tiff")
_BACKGROUND_FILE = re.compile(r"(?:background|t\d{2,}-background)\.tiff")
_MAP_FILE = re.compile(r"(?:threshold|t\d{2,}-threshold)\.tiff")
_OUTPUT_NAME = re.compile(r"t\d{2,}(?:\.tiff|-mask\.tiff|-clean\.jpg|-cutout\.png|-background\.tiff|-threshold\.tiff)|background\.tiff|threshold\.tiff|keyframes\.jpg|sheet\.jpg|motion\.tsv|motion\.png|magicmask\.json")
"""Names magicmask gives its outputs: a folder holding such files that no run recorded is not claimed silently."""


_MADE_BY = {
    "sheet.jpg": "magicmask: the contact sheet (frame | mask | clean per keyframe)",
    "motion.tsv": "magicmask: per keyframe, measured on its mask: area, centroid, bounding box of mask >= 50%, quantity of motion",
    "motion.png": "magicmask: the plot of motion.tsv (area and quantity of motion over time, centroid path)",
}
"""What made the files no command of the blog's makes (checked by hash)."""
_CUTOUT = "magicmask: the keyframe's colours with its mask as alpha, at the keyframe's depth"


def _made_by(name: str) -> str:
    return _CUTOUT if name.endswith("-cutout.png") else _MADE_BY.get(name, "magicmask")


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


def fold_of(options: dict) -> str | None:
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
    shared: list[str] = (),
) -> dict:
    """The record of a finished run in ``folder`` (see the module's description).

    Lists exactly the files the run made, each with what made it: the command (``made_by``: its shell
    line) or, for files no command of the blog's makes (a statistic's background, the contact sheet), a
    description. ``backgrounds`` maps each keyframe to its background; ``extra`` are the sheet, display, motion data and plot, and cut-outs;
    ``shared`` names a background file the run made that no keyframe uses directly (the one per-keyframe
    backgrounds are shifted from).
    """
    from magicmask.engines import get_engine

    video, folder = Path(video).resolve(), Path(folder)
    recorded = options.recorded()
    names = [path.name for path in keyframes]
    inside = folder.resolve()
    mapped = {  # a background file the user gave is an input: its absolute path, wherever it is
        frame.name: (background.name if options.method is not None and background.resolve().parent == inside else os.fspath(background.resolve()))
        for frame, background in backgrounds.items()
    }
    learned = {Path(frame).name: (Path(value).name if value.endswith(".tiff") else value) for frame, value in (thresholds or {}).items()}
    if options.threshold_mode is None:
        learned = {}
    chains = chains_of({"options": recorded, "keyframes": names, **({"thresholds": learned} if learned else {})})
    made = recipe(video, names, mapped, chains, pix_fmt, fold_of(recorded), DISPLAY_NAME in {Path(p).name for p in extra})
    makers = made.makers()
    extract = made.lines()[0]
    outputs: dict[str, str] = {name: extract for name in names}
    for name in dict.fromkeys([*shared, *mapped.values(), *(value for value in learned.values() if value.endswith(".tiff"))]):
        if not Path(name).is_absolute() and name not in outputs:
            outputs[name] = makers.get(name) or _description(recorded, name)
    for name in names:
        for path in output_paths(name):
            outputs[path.name] = makers[path.name]
    for path in extra:
        outputs[Path(path).name] = makers.get(Path(path).name) or _made_by(Path(path).name)
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
        stat = path.stat()
        record["inputs"] = {"background": {"path": os.fspath(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256(path)}}
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
        for name in mapped.values():  # names of the folder's own files, or the absolute path of the TIFF given
            ours = isinstance(name, str) and (_BACKGROUND_FILE.fullmatch(name) or name in record["keyframes"])
            given = isinstance(name, str) and isinstance(custom, str) and name == custom and Path(name).is_absolute()
            if not (ours or given):
                raise MagicmaskError(f"the record names a background that is not one of its folder's files: {name!r}", file, "restore magicmask.json")
    if "thresholds" in record:
        learned = record["thresholds"]
        if not isinstance(learned, dict) or set(learned) != set(record["keyframes"]) or not all(isinstance(v, str) for v in learned.values()):
            raise MagicmaskError("the record's thresholds do not name one per keyframe", file, "restore magicmask.json")
        for value in learned.values():
            if value.endswith(".tiff") and not _MAP_FILE.fullmatch(value):
                raise MagicmaskError(f"the record names a threshold map that is not one of its folder's files: {value!r}", file, "restore magicmask.json")
            if not value.endswith(".tiff"):
                _checked_chain(value, record, file)
    options = record["options"]
    learned = options.get("threshold") in ("auto", "adaptive")
    if learned and "thresholds" not in record:
        raise MagicmaskError(f"the record's --threshold {options['threshold']} has no learned thresholds", file, "restore magicmask.json")
    _checked_chain("5%" if learned else options.get("threshold"), record, file)
    return file.parent, record


def _checked_chain(threshold: str, record: dict, file: Path) -> None:
    """A recorded chain's values as ImageMagick reads them, or the one-line error naming the record."""
    options = record["options"]
    try:
        MaskParams(threshold, options["blur"], options["threshold2"], options["blur2"])
    except (MagicmaskError, KeyError, TypeError) as exc:
        raise MagicmaskError(f"the record's mask chain is not valid: {getattr(exc, 'message', exc)}", file, "restore magicmask.json") from None


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
        if not same or in_progress(folder):
            return None
        custom = record.get("inputs", {}).get("background")
        if custom is not None:
            given = Path(custom["path"]).stat()
            if given.st_size != custom["size"] or given.st_mtime_ns != custom.get("mtime_ns"):
                return None
        for name, facts in record["outputs"].items():
            output = (folder / name).stat()
            if output.st_size != facts["size"] or output.st_mtime_ns > made:
                return None
        return record
    except (MagicmaskError, OSError, KeyError, TypeError):
        return None


def _mark(folder: Path) -> dict:
    """The folder's mark (:data:`OWNER_NAME`): its video, the files magicmask made there, whether a run is under way."""
    try:
        mark = json.loads((folder / OWNER_NAME).read_text())
        return mark if isinstance(mark, dict) else {}
    except (OSError, ValueError):
        return {}


def _made_before(folder: Path, mark: dict) -> set[str]:
    """The files earlier runs made in ``folder``: those its record lists and those its mark lists (a run that
    did not finish), as plain names inside the folder."""
    names = set()
    try:
        names |= set(json.loads((folder / RECORD_NAME).read_text()).get("outputs", {}))
    except (OSError, ValueError, AttributeError):
        pass
    made = mark.get("made", [])
    names |= set(made) if isinstance(made, list) else set()
    return {name for name in names if isinstance(name, str) and Path(name).name == name and name not in (".", "..")} | ({RECORD_NAME} if names else set())


def folder_owner(folder: str | os.PathLike) -> str | None:
    """The video (absolute path) whose outputs ``folder`` holds, from the mark a run leaves when it starts,
    its record, or its keyframes' mark; None when none of them names one (a mark of a run that failed
    before making any file names none)."""
    from magicmask.media.extract import MARKER_NAME

    folder = Path(folder)
    mark = _mark(folder)
    if isinstance(mark.get("video"), str) and (_made_before(folder, mark) or (mark.get("running") and _has_keyframes(folder))):
        return mark["video"]
    for name in (RECORD_NAME, MARKER_NAME):
        try:
            data = json.loads((folder / name).read_text())
            found = data["video"]["path"] if name == RECORD_NAME else data["video"]
            if isinstance(found, str):
                return found
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def _has_keyframes(folder: Path) -> bool:
    try:
        return any(_KEYFRAME_NAME.fullmatch(name) for name in os.listdir(folder))
    except OSError:
        return False


def _strangers(folder: Path) -> list[str]:
    """Files named as magicmask's outputs in a folder that no run of magicmask claimed."""
    try:
        return sorted(name for name in os.listdir(folder) if _OUTPUT_NAME.fullmatch(name))
    except OSError:
        return []


def in_progress(folder: str | os.PathLike) -> bool:
    """Whether a run started in ``folder`` and did not finish (interrupted, or a keyframe failed): its record,
    if any, then describes an earlier run, not the files as they are."""
    return bool(_mark(Path(folder)).get("running"))


def remove_made(folder: str | os.PathLike, keep: set[str] = frozenset()) -> list[str]:
    """Remove from ``folder`` the files earlier runs made there (their record and the folder's mark list them),
    except ``keep``. Nothing else is touched: a file magicmask did not make stays, whatever its name."""
    folder = Path(folder)
    removed = sorted(_made_before(folder, _mark(folder)) - set(keep))
    for name in removed:
        try:
            os.unlink(folder / name)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise MagicmaskError(f"cannot remove an earlier output: {exc.strerror}", folder / name, "check the folder's permissions") from None
    return removed


def _write_mark(folder: Path, video: str | os.PathLike, made: set[str], running: bool) -> None:
    stat = Path(video).stat()
    mark = {"video": os.fspath(Path(video).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "made": sorted(made), "running": running}
    write_atomic(folder / OWNER_NAME, json.dumps(mark).encode())


def claim(folder: str | os.PathLike, video: str | os.PathLike, force: bool = False) -> None:
    """Make ``folder`` the folder of ``video`` before a run writes anything in it.

    A folder holding another video's outputs, or files named as magicmask's outputs that no run made, is
    refused; with ``force`` the files the other video's runs made there are removed first (never anything
    else: the others are overwritten where this run writes the same names). The folder's mark then
    says a run is under way (:func:`in_progress`) until :func:`release` records it finished: an interrupted
    run leaves a folder that ``check`` and the next run know to be unfinished, never one silently mixed.

    Raises
    ------
    MagicmaskError
        Naming the video the folder holds, when it is another one and ``force`` is false.
    """
    from magicmask.media.extract import MARKER_NAME
    from magicmask.masks import SETTINGS_NAME

    folder = Path(folder)
    mine = os.fspath(Path(video).resolve())
    owner = folder_owner(folder)
    strangers = _strangers(folder) if owner is None else []
    made = _made_before(folder, _mark(folder))
    if (owner is not None and owner != mine) or strangers:
        if not force:
            listed = ", ".join(strangers[:3]) + (" ..." if len(strangers) > 3 else "")
            held = f"the outputs of another video, {owner}" if owner else f"files named as magicmask's outputs that no run of it made ({listed})"
            raise MagicmaskError(f"this folder holds {held}", folder, "choose another folder, or add --force to replace them")
        remove_made(folder)
        for name in (MARKER_NAME, SETTINGS_NAME):
            (folder / name).unlink(missing_ok=True)
        made = set()
    _write_mark(folder, video, made, running=True)


def release(folder: str | os.PathLike, video: str | os.PathLike, made: set[str]) -> None:
    """Record that the run in ``folder`` finished, having made ``made`` (its record lists the same files)."""
    _write_mark(Path(folder), video, set(made), running=False)


def note_made(folder: str | os.PathLike, video: str | os.PathLike, made: set[str]) -> None:
    """Add ``made`` to the files the folder's mark lists while a run is still under way (so that files it writes
    are known as magicmask's even if it is interrupted before its record)."""
    folder = Path(folder)
    _write_mark(folder, video, _made_before(folder, _mark(folder)) | set(made), running=True)
