"""`run` with the better backgrounds: whatever background is used for a frame, its mask is what convert makes from it."""

import pytest

from conftest import GOLDEN
from magicmask.check import find_convert, run_seed_loop
from magicmask.compare import compare_files
from magicmask.errors import MagicmaskError
from magicmask import run


def assert_masks_match_convert(result, tmp_path):
    convert = find_convert()
    for frame in result.keyframes:
        background = result.backgrounds.get(frame, result.background)
        mask, clean = run_seed_loop([frame], background, tmp_path / "convert" / frame.stem, convert=convert)[0]
        assert compare_files(result.folder / mask.name, mask).identical, frame.name
        assert (result.folder / clean.name).read_bytes() == clean.read_bytes(), frame.name


@pytest.mark.parametrize(
    "background, options",
    [
        ("median", dict(source="video")),
        ("mean", dict(source="keyframes")),
        ("darken", dict(source="video")),
        ("median", dict(source="video", window=0.8)),
        ("median", dict(source="video", match_exposure=True)),
        ("median", dict(source="video", spans=[(0.0, 0.5), (1.0, float("inf"))])),
        ("lighten", dict(source="keyframes", window=0.8, match_exposure=True)),
    ],
)
def test_masks_are_convert_s_for_the_background_used(background, options, tmp_path):
    result = run(GOLDEN / "walk.mp4", tmp_path / "out", background=background, **options)
    assert not result.errors and len(result.outputs) == 5
    per_keyframe = options.get("window") or options.get("match_exposure")
    if per_keyframe:
        assert result.backgrounds and all(path.exists() for path in result.backgrounds.values())
    else:
        assert result.background == tmp_path / "out" / "background.tiff"
    assert_masks_match_convert(result, tmp_path)


def test_median_of_every_frame_removes_the_walking_figure(tmp_path):
    """On the sample the figure never stays: the median of every frame is the empty scene (the first
    frame, up to the codec's noise), while the figure covers far more of any keyframe."""
    import numpy as np

    from magicmask.compare import image_facts

    def far_from_empty(path):
        empty = image_facts(tmp_path / "t01.tiff").pixels[..., :3].astype(int)
        pixels = image_facts(path).pixels[..., :3].astype(int)
        return float(np.mean(np.abs(pixels - empty).max(axis=-1) > 20 * 257))

    median = run(GOLDEN / "walk.mp4", tmp_path, background="median", source="video").background
    assert far_from_empty(median) < 0.001
    assert far_from_empty(tmp_path / "t03.tiff") > 0.02


def test_a_window_longer_than_the_video_is_refused(tmp_path):
    with pytest.raises(MagicmaskError, match="longer than the video"):
        run(GOLDEN / "walk.mp4", tmp_path, background="median", source="video", window=60)


def test_cli_run_with_better_backgrounds_writes_a_record_that_checks(tmp_path):
    from typer.testing import CliRunner

    from magicmask.cli import app

    runner = CliRunner()
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(GOLDEN / "walk.mp4"), "-o", str(out), "-b", "median", "--from", "video", "-q"])
    assert result.exit_code == 0, result.output
    assert (out / "background.tiff").exists() and (out / "sheet.jpg").exists()
    import json

    options = json.loads((out / "magicmask.json").read_text())["options"]
    assert options["background"] == "median" and options["from"] == "video"
    checked = runner.invoke(app, ["check", str(out), "-q"])
    assert checked.exit_code == 0, checked.output
    windowed = runner.invoke(app, ["run", str(GOLDEN / "walk.mp4"), "-o", str(tmp_path / "w"), "-b", "median", "--from", "video", "--window", "0.8", "--match-exposure", "-q"])
    assert windowed.exit_code == 0, windowed.output
    assert len(list((tmp_path / "w").glob("t*-background.tiff"))) >= 1
    bad = runner.invoke(app, ["run", str(GOLDEN / "walk.mp4"), "-o", str(tmp_path / "b"), "-b", "first", "--window", "2"])
    assert bad.exit_code == 1 and "--window makes a background per keyframe, but --background first is not made from frames" in bad.output
    spanned = runner.invoke(app, ["run", str(GOLDEN / "walk.mp4"), "-o", str(tmp_path / "s"), "-b", "median", "--from", "video", "--span", "0-0.5", "--span", "1-", "-q"])
    assert spanned.exit_code == 0, spanned.output
    assert json.loads((tmp_path / "s" / "magicmask.json").read_text())["options"]["spans"] == [[0.0, 0.5], [1.0, None]]
    assert runner.invoke(app, ["check", str(tmp_path / "s"), "-q"]).exit_code == 0
    for args, message in [(["--span", "2-1", "--from", "video"], "not START-END"), (["--span", "0-1"], "add --from video")]:
        refused = runner.invoke(app, ["run", str(GOLDEN / "walk.mp4"), "-o", str(tmp_path / "r"), "-b", "median", *args])
        assert refused.exit_code == 1 and message in refused.output, refused.output


@pytest.mark.parametrize("method", ["mean", "median"])
def test_background_command_mean_and_median_of_frames(method, tmp_path):
    import numpy as np
    from typer.testing import CliRunner

    from conftest import golden_frames
    from magicmask.cli import app
    from magicmask.compare import image_facts
    from magicmask.statistics import read_frame

    frames = golden_frames("walk")
    result = CliRunner().invoke(app, ["background", *map(str, frames), "-o", str(tmp_path / "bg.tiff"), "--method", method, "-q"])
    assert result.exit_code == 0, result.output
    stack = np.stack([read_frame(f).astype(np.int64) for f in frames])
    expected = np.sort(stack, axis=0)[(len(frames) - 1) // 2] if method == "median" else (2 * stack.sum(axis=0) + len(frames)) // (2 * len(frames))
    assert np.array_equal(read_frame(tmp_path / "bg.tiff"), expected.astype(np.uint8))
    facts, first = image_facts(tmp_path / "bg.tiff"), image_facts(frames[0])
    assert (facts.depth, facts.colorspace, facts.size) == (first.depth, first.colorspace, first.size)
    single = CliRunner().invoke(app, ["background", str(frames[0]), "-o", str(tmp_path / "one.tiff"), "--method", "median"])
    assert single.exit_code == 1 and "single frame" in single.output
