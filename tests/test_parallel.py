"""Parallel and resumable runs: the same files whatever the number of workers, and re-runs redo only what changed."""

import os
import subprocess
import time

import pytest

from conftest import GOLDEN, golden_frames, leftovers, visible
from magicmask.background import keyframe_display, lighten_background
from magicmask.check import find_convert
from magicmask.compare import compare_files
from magicmask.media.extract import extract_keyframes
from magicmask.masks import mask_frames
from magicmask.params import MaskParams
from magicmask import run
from magicmask.sample import make_sample_video


def outputs(folder):
    return {name: (folder / name).read_bytes() for name in visible(folder) if name.endswith(("-mask.tiff", "-clean.jpg", "background.tiff"))}


@pytest.mark.parametrize("mode", ["first", "lighten"])
def test_one_and_two_workers_write_identical_files(mode, tmp_path):
    one = run(GOLDEN / "walk.mp4", tmp_path / "one", background=mode, jobs=1)
    two = run(GOLDEN / "walk.mp4", tmp_path / "two", background=mode, jobs=2)
    assert not one.errors and not two.errors
    assert outputs(tmp_path / "one") == outputs(tmp_path / "two")
    for name in visible(tmp_path / "two"):
        if name.endswith(("-mask.tiff", "-clean.jpg")):
            assert compare_files(tmp_path / "two" / name, GOLDEN / "walk" / mode / name).identical


@pytest.fixture(scope="module")
def many_frames(tmp_path_factory):
    """20 keyframes: enough for the folds to split the work between workers."""
    folder = tmp_path_factory.mktemp("many")
    video = make_sample_video(folder / "many.mp4", width=48, height=36, count=40, keyint=2)
    return extract_keyframes(video, folder / "frames")


def test_parallel_folds_match_convert(many_frames, tmp_path):
    assert len(many_frames) == 20
    convert = find_convert()
    names = list(map(str, many_frames))
    subprocess.run([convert, *names, "-background", "black", "-compose", "lighten", "-flatten", str(tmp_path / "ref.tiff")], check=True)
    subprocess.run([convert, *names, "-background", "white", "-compose", "darken", "-flatten", str(tmp_path / "ref.jpg")], check=True)
    for jobs in (1, 2):
        ours = lighten_background(many_frames, tmp_path / f"bg{jobs}.tiff", jobs=jobs)
        assert compare_files(ours, tmp_path / "ref.tiff").identical
        display = keyframe_display(many_frames, tmp_path / f"kf{jobs}.jpg", jobs=jobs)
        assert display.read_bytes() == (tmp_path / "ref.jpg").read_bytes()


def test_progress_reports_every_frame_once(many_frames, tmp_path):
    seen = []
    mask_frames(many_frames, many_frames[0], tmp_path, progress=seen.append, jobs=2)
    assert sorted(seen) == sorted(many_frames)
    folded = []
    lighten_background(many_frames, tmp_path / "bg.tiff", progress=folded.append, jobs=2)
    assert sorted(folded) == sorted(many_frames)


def mtimes(folder):
    return {name: (folder / name).stat().st_mtime_ns for name in visible(folder)}


def test_rerun_skips_finished_frames_and_keeps_files_as_they_are(tmp_path):
    run(GOLDEN / "walk.mp4", tmp_path, background="lighten", jobs=2)
    before = mtimes(tmp_path)
    time.sleep(0.01)
    result = run(GOLDEN / "walk.mp4", tmp_path, background="lighten", jobs=2)
    assert not result.errors
    assert mtimes(tmp_path) == before
    assert leftovers(tmp_path) == []


def test_force_redoes_every_frame_with_the_same_bytes(tmp_path):
    run(GOLDEN / "walk.mp4", tmp_path, jobs=1)
    before, content = mtimes(tmp_path), outputs(tmp_path)
    time.sleep(0.01)
    run(GOLDEN / "walk.mp4", tmp_path, jobs=1, force=True)
    after = mtimes(tmp_path)
    assert all(after[name] > before[name] for name in content)
    assert outputs(tmp_path) == content


def test_a_changed_frame_or_changed_settings_are_redone(tmp_path):
    frames = [tmp_path / f.name for f in golden_frames("walk")]
    for src, dst in zip(golden_frames("walk"), frames):
        dst.write_bytes(src.read_bytes())
    mask_frames(frames, frames[0], jobs=1)
    before = mtimes(tmp_path)
    time.sleep(0.01)
    os.utime(frames[2])  # the frame is newer than its outputs now
    mask_frames(frames, frames[0], jobs=1)
    after = mtimes(tmp_path)
    changed = sorted(name for name in before if after[name] != before[name])
    assert changed == ["t03-clean.jpg", "t03-mask.tiff", "t03.tiff"]
    mask_frames(frames, frames[0], params=MaskParams(threshold="7%"), jobs=1)
    redone = mtimes(tmp_path)
    assert all(redone[name] > after[name] for name in after if name.endswith(("-mask.tiff", "-clean.jpg")))


def test_an_interrupted_run_completes_on_rerun(tmp_path):
    """Outputs of a finished frame survive; a missing one is made again; nothing half-written is left."""
    run(GOLDEN / "walk.mp4", tmp_path, jobs=1)
    (tmp_path / "t04-mask.tiff").unlink()
    (tmp_path / "t05-clean.jpg").unlink()
    (tmp_path / ".magicmask-tmp-t05-clean-x.jpg").write_bytes(b"half")  # as a killed writer leaves it
    before = mtimes(tmp_path)
    run(GOLDEN / "walk.mp4", tmp_path, jobs=2)
    after = mtimes(tmp_path)
    for name in ("t01-mask.tiff", "t02-clean.jpg", "t03-mask.tiff"):
        assert after[name] == before[name]
    for name in ("t04-mask.tiff", "t05-clean.jpg"):
        assert compare_files(tmp_path / name, GOLDEN / "walk" / "first" / name).identical
