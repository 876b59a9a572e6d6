"""Hostile and broken input, full disks, interruptions: one-line errors naming the file, nothing lost.

Every hostile file is made here. Each case checks: a clear message with the file's name and what to
do, a non-zero exit, no traceback, no half-written or temporary file, and the good frames still done.
"""

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from typer.testing import CliRunner

from conftest import GOLDEN, golden_frames, leftovers, visible
from magicmask.cli import app
from magicmask.compare import compare_files
from magicmask.engines import ENGINES

runner = CliRunner()
CLI = [sys.executable, "-m", "magicmask.cli"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, *needles):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors, result.output
    assert any(all(n in line for n in needles) for line in errors), result.output


def copy_frames(folder: Path, names=None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    frames = golden_frames("walk")
    names = names or [f.name for f in frames]
    out = []
    for src, name in zip(frames, names):
        shutil.copyfile(src, folder / name)
        out.append(folder / name)
    return out


def assert_good_frames_done(out_dir: Path, names, reference="first"):
    for name in names:
        for suffix in ("-mask.tiff", "-clean.jpg"):
            assert compare_files(out_dir / f"{name}{suffix}", GOLDEN / "walk" / reference / f"{name}{suffix}").identical


# --- files that are not what their name says ----------------------------------------------------

SVG = """<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="160" height="120">
<image xlink:href="{secret}" width="160" height="120"/><text x="10" y="20">pwned</text></svg>"""
MVG = "push graphic-context\nviewbox 0 0 160 120\nimage over 0,0 160,120 '{secret}'\npop graphic-context\n"


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("kind, text, label", [("svg", SVG, "SVG"), ("mvg", MVG, "MVG")])
def test_a_document_named_tiff_is_refused_not_rendered(kind, text, label, engine, tmp_path):
    frames = copy_frames(tmp_path / "in")
    secret = tmp_path / "secret.png"
    shutil.copyfile(GOLDEN / "walk" / "keyframes.jpg", secret)
    hostile = tmp_path / "in" / "t00.tiff"
    hostile.write_text(text.format(secret=secret))
    result = invoke("masks", hostile, *frames[1:3], "-b", frames[0], "-o", tmp_path / "out", "--engine", engine, "-q")
    assert_one_line_error(result, "t00.tiff", label, "TIFF")
    assert visible(tmp_path / "out") == ["t02-clean.jpg", "t02-mask.tiff", "t03-clean.jpg", "t03-mask.tiff"]
    assert_good_frames_done(tmp_path / "out", ["t02", "t03"])
    as_background = invoke("masks", *frames[1:3], "-b", hostile, "-o", tmp_path / "out2", "--engine", engine)
    assert_one_line_error(as_background, "t00.tiff", "background")
    assert not (tmp_path / "out2").exists() or visible(tmp_path / "out2") == []
    background = invoke("background", hostile, *frames, "-o", tmp_path / "bg.tiff", "--engine", engine)
    assert_one_line_error(background, "t00.tiff")
    assert not (tmp_path / "bg.tiff").exists()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("cut", ["directory", "pixels"])
def test_a_truncated_tiff_among_good_ones(cut, engine, tmp_path):
    frames = copy_frames(tmp_path / "in")
    data = frames[2].read_bytes()
    if cut == "directory":  # ffmpeg writes the directory last: cut it off
        frames[2].write_bytes(data[: len(data) // 2])
    else:  # directory first (as many writers do), pixel data cut short
        import tifffile

        with tifffile.TiffFile(frames[1]) as tif:
            pixels = tif.asarray()
        tifffile.imwrite(frames[2], pixels, photometric="rgb")
        frames[2].write_bytes(frames[2].read_bytes()[: len(data) // 3])
    result = invoke("masks", *frames, "-b", frames[0], "-o", tmp_path / "out", "--engine", engine, "-q")
    assert_one_line_error(result, "t03.tiff", "damaged")
    assert "t03-mask.tiff" not in visible(tmp_path / "out")
    assert_good_frames_done(tmp_path / "out", ["t01", "t02", "t04", "t05"])
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("engine", ENGINES)
def test_a_frame_of_another_size_is_refused_with_both_sizes(engine, tmp_path):
    import tifffile

    frames = copy_frames(tmp_path / "in")
    tifffile.imwrite(frames[3], np.zeros((100, 150, 3), np.uint8), photometric="rgb")
    result = invoke("masks", *frames, "-b", frames[0], "-o", tmp_path / "out", "--engine", engine, "-q")
    assert_one_line_error(result, "t04.tiff", "150x100", "160x120")
    assert_good_frames_done(tmp_path / "out", ["t01", "t02", "t03", "t05"])
    background = invoke("background", *frames, "-o", tmp_path / "bg.tiff", "--engine", engine)
    assert_one_line_error(background, "t04.tiff", "150x100", "160x120")


# --- names -------------------------------------------------------------------------------------

STRANGE = ["take one.tiff", "take.2.final.tiff", "-dash.tiff", "dänse ø.tiff", "a;b&c$(x)'q\".tiff"]
STRANGER = ["x[0].tiff", "pct%d.tiff", "star*.tiff", "coder:colon.tiff"]


@pytest.mark.parametrize("engine", ENGINES)
def test_strange_file_names(engine, tmp_path):
    names = STRANGE + STRANGER[:0]
    frames = copy_frames(tmp_path / "in", ["bg.tiff"] + names[:4])
    result = invoke("masks", "--background", frames[0], "-o", tmp_path / "out", "--engine", engine, "-q", "--", *frames)
    assert result.exit_code == 0, result.output
    stems = ["bg", "take one", "take.2.final", "-dash", "dänse ø"]
    assert_good_frames_done(tmp_path / "out", [], "first")
    for stem, golden in zip(stems, ["t01", "t02", "t03", "t04", "t05"]):
        for suffix in ("-mask.tiff", "-clean.jpg"):
            assert compare_files(tmp_path / "out" / f"{stem}{suffix}", GOLDEN / "walk" / "first" / f"{golden}{suffix}").identical


@pytest.mark.parametrize("engine", ENGINES)
def test_names_imagemagick_and_shells_would_parse(engine, tmp_path):
    names = ["bg.tiff", STRANGE[4], *STRANGER]
    frames = copy_frames(tmp_path / "in", names)
    result = invoke("masks", "-b", frames[0], "--engine", engine, "-q", "--", *frames)
    assert result.exit_code == 0, result.output
    for frame, golden in zip(frames, ["t01", "t02", "t03", "t04", "t05"]):
        stem = frame.name.rsplit(".", 1)[0]
        assert compare_files(frame.parent / f"{stem}-mask.tiff", GOLDEN / "walk" / "first" / f"{golden}-mask.tiff").identical
        assert (frame.parent / f"{stem}-clean.jpg").read_bytes() == (GOLDEN / "walk" / "first" / f"{golden}-clean.jpg").read_bytes()


@pytest.mark.parametrize("name", ["-dash.mp4", "a:b.mp4", "sp ace ü;$x.mp4", "pct%d.mp4"])
def test_strange_video_and_folder_names(name, tmp_path):
    video = tmp_path / name
    shutil.copyfile(GOLDEN / "walk.mp4", video)
    out = tmp_path / f"out %02d {name}"
    result = invoke("run", "-o", out, "-q", "--", video)
    assert result.exit_code == 0, result.output
    assert_good_frames_done(out, ["t01", "t02", "t03", "t04", "t05"])


# --- re-runs over the same folder --------------------------------------------------------------


def test_rerun_over_the_same_glob_makes_no_masks_of_masks(tmp_path):
    frames = copy_frames(tmp_path)
    assert invoke("background", *frames, "-q").exit_code == 0
    assert invoke("masks", *frames, "-b", tmp_path / "background.tiff", "-q").exit_code == 0
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.iterdir() if not p.name.startswith(".")}
    everything = sorted(tmp_path.glob("*.tiff"))  # now also *-mask.tiff and background.tiff
    assert invoke("background", *everything, "-q").exit_code == 0
    assert invoke("masks", *everything, "-b", tmp_path / "background.tiff", "-q").exit_code == 0
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.iterdir() if not p.name.startswith(".")}
    assert sorted(after) == sorted(before)
    assert not any("mask-mask" in name or name.startswith("background-") for name in after)
    masks_and_cleans = [n for n in after if n.endswith(("-mask.tiff", "-clean.jpg"))]
    assert all(after[n] == before[n] for n in masks_and_cleans)
    assert after["background.tiff"][0] == before["background.tiff"][0]
    assert_good_frames_done(tmp_path, ["t01", "t02", "t03", "t04", "t05"], "lighten")


# --- videos ------------------------------------------------------------------------------------


def test_missing_video(tmp_path):
    assert_one_line_error(invoke("run", tmp_path / "gone.mp4", "-o", tmp_path / "o"), "gone.mp4", "not found")


def test_text_file_named_mp4(tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("a shopping list\n")
    result = invoke("run", fake, "-o", tmp_path / "o")
    assert_one_line_error(result, "notes.mp4", "ffmpeg cannot read this as a video")
    assert "Invalid data" in result.output  # the tail of ffmpeg's own message


def test_video_without_a_video_stream(tmp_path):
    audio = tmp_path / "song.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=0.5", str(audio)], check=True)
    assert_one_line_error(invoke("run", audio, "-o", tmp_path / "o"), "song.mp4", "no video stream")


def test_video_whose_decoder_finds_no_keyframe(tmp_path):
    full, cut = tmp_path / "full.h264", tmp_path / "nokey.h264"
    quiet = ["ffmpeg", "-loglevel", "error", "-y"]
    subprocess.run([*quiet, "-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-t", "2", "-c:v", "libx264", "-g", "1000", "-bf", "0", "-f", "h264", str(full)], check=True)
    subprocess.run([*quiet, "-i", str(full), "-c", "copy", "-bsf:v", "filter_units=remove_types=5", "-f", "h264", str(cut)], check=True)
    result = invoke("run", cut, "-o", tmp_path / "o")
    assert_one_line_error(result, "nokey.h264", "no keyframe")
    assert leftovers(tmp_path) == [] and not list((tmp_path / "o").glob("*.tiff"))


# --- output that cannot be written -------------------------------------------------------------


def test_output_folder_that_cannot_be_made(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    frames = golden_frames("walk")
    result = invoke("masks", *frames, "-b", frames[0], "-o", blocker / "out")
    assert_one_line_error(result, "cannot write")


def _limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000))


def test_disk_full_stops_with_a_clear_error_and_no_partial_file(tmp_path):
    """A file size limit makes every write past 3000 bytes fail, as a full disk does."""
    frames = golden_frames("walk")
    args = [*CLI, "masks", *map(str, frames), "-b", str(frames[0]), "-q"]
    # a first run without the limit compiles Python's bytecode and Numba's cache, which must not be
    # written under the limit (Python would leave truncated .pyc files behind)
    subprocess.run([*args, "-o", str(tmp_path / "warm")], check=True, capture_output=True)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([*args, "-o", str(tmp_path / "out")], capture_output=True, text=True, preexec_fn=_limit_file_size, env=env)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "cannot write" in done.stderr and "-mask.tiff" in done.stderr
    assert "unexpected" not in done.stderr
    assert leftovers(tmp_path) == []
    for path in (tmp_path / "out").glob("*"):  # whatever was written is whole
        assert path.name.startswith(".") or compare_files(path, GOLDEN / "walk" / "first" / path.name).identical


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mount)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root); the file size limit test covers a full disk")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_real_full_disk(small_disk):
    frames = golden_frames("walk")
    result = invoke("masks", *frames, "-b", frames[0], "-o", small_disk, "-q", "-j", "1")
    assert_one_line_error(result, "cannot write", "No space left on device")
    assert leftovers(small_disk) == []
    for path in small_disk.glob("t*-*"):
        assert compare_files(path, GOLDEN / "walk" / "first" / path.name).identical


# --- interruptions -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slow_video(tmp_path_factory):
    from magicmask.sample import make_sample_video

    return make_sample_video(tmp_path_factory.mktemp("slow") / "slow.mp4", width=640, height=360, count=160, keyint=2)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("signame, status", [("SIGINT", 130), ("SIGTERM", 143)])
def test_interrupted_run_stops_promptly_leaves_no_temporary_file_and_resumes(signame, status, engine, slow_video, tmp_path):
    out = tmp_path / "out"
    process = subprocess.Popen([*CLI, "run", str(slow_video), "-o", str(out), "--engine", engine, "-j", "2", "-q"], stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while not (out / "t02-mask.tiff").exists():
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before it could be interrupted"
        time.sleep(0.02)
    family = psutil.Process(process.pid).children(recursive=True)
    sent = time.monotonic()
    os.killpg(process.pid, getattr(signal, signame))  # as a terminal's Ctrl-C reaches the whole group
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == status, stderr
    assert time.monotonic() - sent < 10
    assert "Traceback" not in stderr and "run the same command again" in stderr
    time.sleep(0.2)
    alive = [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == []
    assert leftovers(tmp_path) == []
    finished = sorted(p.name for p in out.glob("*-mask.tiff"))
    assert len(finished) < 80
    rerun = subprocess.run([*CLI, "run", str(slow_video), "-o", str(out), "-q"], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    reference = subprocess.run([*CLI, "run", str(slow_video), "-o", str(tmp_path / "ref"), "-q"], capture_output=True, text=True)
    assert reference.returncode == 0
    for path in sorted((tmp_path / "ref").glob("t*-*")):
        assert compare_files(out / path.name, path).identical, path.name


def test_a_run_killed_outright_is_swept_up_by_the_next(slow_video, tmp_path):
    """SIGKILL gives magicmask no chance to clean up: ffmpeg's keyframe folder stays behind. The next
    run in the folder removes it (its process is gone) and finishes with the same files as a clean run."""
    out = tmp_path / "out"
    process = subprocess.Popen([*CLI, "run", str(slow_video), "-o", str(out), "-j", "2", "-q"], stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while not (out / "t02-mask.tiff").exists():
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)  # the whole group: ffmpeg too
    process.wait()
    assert any("keyframes" in name for name in leftovers(out))
    rerun = subprocess.run([*CLI, "run", str(slow_video), "-o", str(out), "-q"], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert leftovers(tmp_path) == []
    reference = subprocess.run([*CLI, "run", str(slow_video), "-o", str(tmp_path / "ref"), "-q"], capture_output=True, text=True)
    assert reference.returncode == 0
    for path in sorted((tmp_path / "ref").glob("t*-*")):
        assert compare_files(out / path.name, path).identical, path.name


# --- tools missing -----------------------------------------------------------------------------


def test_without_ffmpeg_the_message_names_the_package(tmp_path, monkeypatch):
    """No ffmpeg on the PATH and none bundled (imageio-ffmpeg's is used when there is one: test_install_anywhere)."""
    from magicmask.media import ffmpeg

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(ffmpeg, "bundled_ffmpeg", lambda: None)
    result = invoke("run", GOLDEN / "walk.mp4", "-o", tmp_path / "o")
    assert_one_line_error(result, "ffmpeg", "apt-get install ffmpeg")


def test_without_magickwand_the_message_names_the_packages(tmp_path):
    """Wand raises ImportError when libMagickWand is not installed: a stand-in package does the same."""
    fake = tmp_path / "site" / "wand"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('MagickWand shared library not found.')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    frames = golden_frames("walk")
    done = subprocess.run([*CLI, "masks", *map(str, frames[:2]), "-b", str(frames[0]), "-o", str(tmp_path / "o"), "--engine", "wand", "-j", "1"], capture_output=True, text=True, env=env)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "apt-get install libmagickwand-dev imagemagick" in done.stderr
