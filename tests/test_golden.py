"""Golden tests: magicmask's outputs against those the real ffmpeg and convert commands wrote.

golden/regenerate.sh made every reference file with the blog's literal commands; here each output
must be identical: pixels, bit depth and channels, and for JPEGs the bytes.
"""

import shutil
import subprocess

import pytest

from conftest import GOLDEN, VIDEOS, golden_frames
from magicmask.background import keyframe_display, lighten_background
from magicmask.check import find_convert, run_seed_loop
from magicmask.compare import compare_files
from magicmask.engines import ENGINES
from magicmask.media.extract import extract_keyframes
from magicmask.masks import make_clean, make_mask, mask_frames
from magicmask import run


@pytest.fixture(params=ENGINES)
def engine(request):
    """Every golden test runs on every engine."""
    return request.param


def assert_identical(ours, reference):
    result = compare_files(ours, reference)
    assert result.identical, f"{ours} vs {reference}: {result.differing_pixels} pixels differ; {result.note}"


def assert_same_outputs(out_dir, reference_dir, frames):
    for frame in frames:
        for suffix in ("-mask.tiff", "-clean.jpg"):
            name = frame.stem + suffix
            assert_identical(out_dir / name, reference_dir / name)
            if suffix == "-clean.jpg":
                assert (out_dir / name).read_bytes() == (reference_dir / name).read_bytes()


@pytest.mark.parametrize("video", VIDEOS)
def test_keyframes_match_ffmpeg(video, tmp_path):
    frames = extract_keyframes(GOLDEN / f"{video}.mp4", tmp_path)
    reference = golden_frames(video)
    assert [f.name for f in frames] == [f.name for f in reference]
    for ours, theirs in zip(frames, reference):
        assert_identical(ours, theirs)


@pytest.mark.parametrize("video", VIDEOS)
def test_masks_match_convert_first_frame_background(video, engine, tmp_path):
    frames = golden_frames(video)
    mask_frames(frames, frames[0], tmp_path, engine=engine)
    assert_same_outputs(tmp_path, GOLDEN / video / "first", frames)


@pytest.mark.parametrize("video", VIDEOS)
def test_lighten_background_matches_convert(video, engine, tmp_path):
    frames = golden_frames(video)
    background = lighten_background(frames, tmp_path / "background.tiff", engine=engine)
    assert_identical(background, GOLDEN / video / "lighten" / "background.tiff")


@pytest.mark.parametrize("video", VIDEOS)
def test_masks_match_convert_lighten_background(video, engine, tmp_path):
    frames = golden_frames(video)
    mask_frames(frames, GOLDEN / video / "lighten" / "background.tiff", tmp_path, engine=engine)
    assert_same_outputs(tmp_path, GOLDEN / video / "lighten", frames)


@pytest.mark.parametrize("video", VIDEOS)
def test_display_matches_convert(video, engine, tmp_path):
    display = keyframe_display(golden_frames(video), tmp_path / "keyframes.jpg", engine=engine)
    assert display.read_bytes() == (GOLDEN / video / "keyframes.jpg").read_bytes()


@pytest.mark.parametrize("video", VIDEOS)
@pytest.mark.parametrize("mode", ["first", "lighten"])
def test_run_matches_the_seed(video, mode, engine, tmp_path):
    result = run(GOLDEN / f"{video}.mp4", tmp_path, background=mode, engine=engine)
    assert not result.errors
    assert_same_outputs(tmp_path, GOLDEN / video / mode, golden_frames(video))
    if mode == "lighten":
        assert_identical(tmp_path / "background.tiff", GOLDEN / video / "lighten" / "background.tiff")


def test_single_commands_match_convert(tmp_path):
    frames = golden_frames("walk")
    mask = make_mask(frames[0], frames[2], tmp_path / "t03-mask.tiff")
    clean = make_clean(frames[2], mask, tmp_path / "t03-clean.jpg")
    assert_identical(mask, GOLDEN / "walk" / "first" / "t03-mask.tiff")
    assert clean.read_bytes() == (GOLDEN / "walk" / "first" / "t03-clean.jpg").read_bytes()


def test_mask_files_are_8_bit_gray_for_8_bit_frames_and_16_bit_for_16_bit(engine, tmp_path):
    from magicmask.compare import image_facts

    for video, depth in (("walk", 8), ("walk10", 16)):
        frames = golden_frames(video)
        (mask, _), = mask_frames(frames[1:2], frames[0], tmp_path / video, engine=engine)
        facts = image_facts(mask)
        assert (facts.depth, facts.colorspace, facts.alpha) == (depth, "gray", False)


def test_live_convert_agrees_on_fresh_frames(sample_frames, engine, tmp_path):
    """The real convert, run now (not golden files), on frames made now: no stale reference can hide a change."""
    convert = find_convert()
    reference = tmp_path / "convert"
    run_seed_loop(sample_frames, sample_frames[0], reference, convert=convert)
    mask_frames(sample_frames, sample_frames[0], tmp_path / "ours", engine=engine)
    assert_same_outputs(tmp_path / "ours", reference, sample_frames)
    subprocess.run([convert, *map(str, sample_frames), "-background", "black", "-compose", "lighten", "-flatten", str(tmp_path / "bg.tiff")], check=True)
    assert_identical(lighten_background(sample_frames, tmp_path / "ours-bg.tiff", engine=engine), tmp_path / "bg.tiff")
    subprocess.run([convert, *map(str, sample_frames), "-background", "white", "-compose", "darken", "-flatten", str(tmp_path / "kf.jpg")], check=True)
    assert keyframe_display(sample_frames, tmp_path / "ours-kf.jpg", engine=engine).read_bytes() == (tmp_path / "kf.jpg").read_bytes()


def test_golden_versions_are_recorded():
    text = (GOLDEN / "VERSIONS.txt").read_text()
    assert "ImageMagick 6.9.11" in text and "ffmpeg version" in text
    assert shutil.which("ffmpeg")
