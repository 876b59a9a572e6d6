"""A folder checked against its record: every output's hash, and the commands run again with each output
compared exactly (ffmpeg's keyframe command, the real ``convert``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from magicmask.errors import MagicmaskError
from magicmask.execute import resolve_jobs
from magicmask.files import BACKGROUND_NAME, DISPLAY_NAME, RECORD_NAME, check_tiff
from magicmask.provenance.hashing import sha256
from magicmask.provenance.record import Recipe, backgrounds_of, chains_of, fold_of, in_progress, load, recipe, thresholds_of


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
    if in_progress(folder):
        raise MagicmaskError("a run into this folder did not finish (interrupted, or a keyframe failed): its record describes an earlier run", folder, "run the same magicmask run command again to finish it, then check")
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
    given = record.get("inputs", {}).get("background")
    if isinstance(given, dict) and isinstance(given.get("path"), str):  # the TIFF given as background: an input the masks depend on
        path = Path(given["path"])
        if not path.is_file():
            extra.append(Verdict(os.fspath(path), "missing", "not re-run", "the background TIFF given to the run is gone; its masks cannot be made again"))
        elif sha256(path) != given.get("sha256"):
            extra.append(Verdict(os.fspath(path), "differs", "not re-run", "the background TIFF given to the run has changed since; its masks were not made again"))
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
        ours = recipe(video, keyframes, mapped, chains, pix_fmt, fold_of(options), DISPLAY_NAME in outputs)
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
        made = set(ours.makers())
        stopped = any(status == "failed" for status, _ in reruns.values())
        for name, old in verdicts.items():
            if name not in reruns:
                why = "not re-run: an input of its command failed (see the failed row)" if stopped and name in made else "made by no command: checked by hash"
                verdicts[name] = Verdict(name, old.hash, old.rerun, old.note or why)
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
    unusable: set[str] = set()  # inputs that differ from the record: the masks made from them are not re-made
    for name in dict.fromkeys([*mapped.values(), *maps]):
        if name in made or name in keyframes:
            continue
        if Path(name).is_absolute():  # the TIFF given as background, outside the folder
            if not Path(name).is_file() or sha256(name) != custom.get("sha256"):
                unusable.add(name)  # said by verify's row for the input
                continue
            check_tiff(name, "background")
            continue
        try:
            check_tiff(folder / name, "threshold map" if name in maps else "background")
        except MagicmaskError as exc:
            return {name: ("failed", exc.message)}
        if sha256(folder / name) != outputs.get(name, {}).get("sha256"):
            unusable.add(name)
            results[name] = ("not re-run", "differs from the record, so the masks made from it were not re-made")
            continue
        shutil.copyfile(folder / name, work / name)
        results[name] = ("not re-run", "made by magicmask's statistics, no command: checked by hash, then the input of the convert lines")
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
