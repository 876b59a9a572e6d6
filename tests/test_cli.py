"""The command line: every command through typer's CliRunner, including its error exits."""

import pytest
from typer.testing import CliRunner

from conftest import GOLDEN, golden_frames, visible
from magicmask import __version__
from magicmask.cli import app
from magicmask.compare import compare_files

runner = CliRunner()
COMMANDS = ["keyframes", "background", "masks", "run", "display", "check", "demo", "video", "sheet"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and __version__ in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0
    summary = result.output.split("Usage:")[1].split("Options")[0]
    assert len(summary.strip().splitlines()) >= 2, "the command needs a help text"
    assert invoke(command, "-h").exit_code == 0


def test_keyframes_writes_t01_and_following(tmp_path):
    result = invoke("keyframes", GOLDEN / "walk.mp4", "-o", tmp_path / "kf", "-q")
    assert result.exit_code == 0, result.output
    assert visible(tmp_path / "kf") == [f"t0{i}.tiff" for i in range(1, 6)]


def test_keyframes_default_folder_is_named_after_the_video(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert invoke("keyframes", GOLDEN / "walk.mp4", "-q").exit_code == 0
    assert (tmp_path / "walk" / "t01.tiff").exists()


def test_keyframes_missing_video_names_the_file(tmp_path):
    result = invoke("keyframes", tmp_path / "nope.mp4", "-o", tmp_path / "kf")
    assert result.exit_code == 1
    assert "nope.mp4" in result.output and "not found" in result.output
    assert "Traceback" not in result.output


def test_keyframes_text_file_named_mp4_is_refused(tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video\n")
    result = invoke("keyframes", fake, "-o", tmp_path / "kf")
    assert result.exit_code == 1 and "notes.mp4" in result.output and "Traceback" not in result.output
    assert not list((tmp_path).glob("kf/*.tiff"))


def test_background_writes_background_tiff_beside_the_frames(tmp_path):
    frames = [tmp_path / f.name for f in golden_frames("walk")]
    for src, dst in zip(golden_frames("walk"), frames):
        dst.write_bytes(src.read_bytes())
    result = invoke("background", *frames, "-q")
    assert result.exit_code == 0, result.output
    assert compare_files(tmp_path / "background.tiff", GOLDEN / "walk" / "lighten" / "background.tiff").identical
    # a re-run over the same glob, which now matches background.tiff, gives the same file
    before = (tmp_path / "background.tiff").read_bytes()
    assert invoke("background", *sorted(tmp_path.glob("*.tiff")), "-q").exit_code == 0
    assert (tmp_path / "background.tiff").read_bytes() == before


def test_background_darken_method(tmp_path):
    result = invoke("background", *golden_frames("walk"), "-o", tmp_path / "dark.jpg", "--method", "darken", "-q")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "dark.jpg").read_bytes() == (GOLDEN / "walk" / "keyframes.jpg").read_bytes()


def test_background_unknown_method_is_an_error(tmp_path):
    result = invoke("background", *golden_frames("walk"), "-o", tmp_path / "b.tiff", "--method", "average")
    assert result.exit_code == 1 and "average" in result.output


def test_masks_writes_outputs_and_skips_earlier_masks(tmp_path):
    frames = golden_frames("walk")
    result = invoke("masks", *frames, GOLDEN / "walk" / "first" / "t02-mask.tiff", "--background", frames[0], "-o", tmp_path, "-q")
    assert result.exit_code == 0, result.output
    names = visible(tmp_path)
    assert names == sorted([f"{f.stem}-mask.tiff" for f in frames] + [f"{f.stem}-clean.jpg" for f in frames])
    for name in names:
        assert compare_files(tmp_path / name, GOLDEN / "walk" / "first" / name).identical


def test_masks_takes_imagemagick_syntax_options(tmp_path):
    frames = golden_frames("walk")
    args = ["masks", frames[3], "-b", frames[0], "-q"]
    assert invoke(*args, "-o", tmp_path / "a", "--threshold", "5%", "--blur", "0x3").exit_code == 0
    assert invoke(*args, "-o", tmp_path / "b", "--threshold", "30%", "--blur2", "0x1").exit_code == 0
    assert (tmp_path / "a" / "t04-mask.tiff").read_bytes() != (tmp_path / "b" / "t04-mask.tiff").read_bytes()
    bad = invoke(*args, "-o", tmp_path / "c", "--threshold", "five")
    assert bad.exit_code == 1 and "five" in bad.output and "Traceback" not in bad.output


def test_masks_bad_frame_is_reported_and_the_others_done(tmp_path):
    frames = golden_frames("walk")
    evil = tmp_path / "evil.tiff"
    evil.write_text('<svg xmlns="http://www.w3.org/2000/svg"><image href="/etc/passwd"/></svg>')
    result = invoke("masks", evil, *frames[1:3], "-b", frames[0], "-o", tmp_path / "out", "-q")
    assert result.exit_code == 1
    assert "evil.tiff" in result.output and "SVG" in result.output and "Traceback" not in result.output
    assert visible(tmp_path / "out") == ["t02-clean.jpg", "t02-mask.tiff", "t03-clean.jpg", "t03-mask.tiff"]


def test_masks_missing_background_is_an_error(tmp_path):
    result = invoke("masks", *golden_frames("walk"), "-b", tmp_path / "bg.tiff", "-o", tmp_path)
    assert result.exit_code == 1 and "bg.tiff" in result.output and "not found" in result.output


@pytest.mark.parametrize("mode", ["first", "lighten"])
def test_run_writes_the_whole_seed(mode, tmp_path):
    result = invoke("run", GOLDEN / "walk.mp4", "-o", tmp_path, "--background", mode, "-q")
    assert result.exit_code == 0, result.output
    for frame in golden_frames("walk"):
        for suffix in ("-mask.tiff", "-clean.jpg"):
            name = frame.stem + suffix
            assert compare_files(tmp_path / name, GOLDEN / "walk" / mode / name).identical
    assert (tmp_path / "background.tiff").exists() == (mode == "lighten")


def test_run_with_a_background_path(tmp_path):
    background = GOLDEN / "walk" / "lighten" / "background.tiff"
    result = invoke("run", GOLDEN / "walk.mp4", "-o", tmp_path, "--background", background, "-q")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "t04-clean.jpg").read_bytes() == (GOLDEN / "walk" / "lighten" / "t04-clean.jpg").read_bytes()


def test_run_missing_video_is_an_error(tmp_path):
    result = invoke("run", tmp_path / "missing.mp4", "-o", tmp_path / "out")
    assert result.exit_code == 1 and "missing.mp4" in result.output and "Traceback" not in result.output


def test_run_shows_progress_unless_quiet(tmp_path):
    loud = invoke("run", GOLDEN / "walk.mp4", "-o", tmp_path / "a")
    assert loud.exit_code == 0 and "masks" in loud.output
    quiet = invoke("run", GOLDEN / "walk.mp4", "-o", tmp_path / "b", "-q")
    assert "━" not in quiet.output


def test_display_writes_the_multi_exposure(tmp_path):
    result = invoke("display", *golden_frames("walk"), "-o", tmp_path / "keyframes.jpg", "-q")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "keyframes.jpg").read_bytes() == (GOLDEN / "walk" / "keyframes.jpg").read_bytes()


def test_display_of_no_frames_is_an_error(tmp_path):
    result = invoke("display", GOLDEN / "walk" / "first" / "t01-mask.tiff", "-o", tmp_path / "k.jpg")
    assert result.exit_code == 1 and "no frames" in result.output


def test_check_reports_identical_files(tmp_path):
    frames = golden_frames("walk")[:2]
    result = invoke("check", *frames, "--background", frames[0], "-q")
    assert result.exit_code == 0, result.output
    assert "t02-mask.tiff" in result.output and "identical" in result.output
    assert "all 8 files identical to convert's (native, wand)" in result.output


def test_check_exits_1_when_outputs_differ(tmp_path, monkeypatch):
    import magicmask.engines.wand as wand

    original = wand.mask_image

    def off_by_one_threshold(background, frame, params):
        from magicmask.params import MaskParams

        return original(background, frame, MaskParams(threshold="6%"))

    monkeypatch.setattr(wand, "mask_image", off_by_one_threshold)
    frames = golden_frames("walk")
    result = invoke("check", frames[2], "--background", frames[0], "-q", "-j", "1")
    assert result.exit_code == 1
    assert "differs" in result.output and "(engine: wand)" in result.output


def test_check_without_convert_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("MAGICMASK_CONVERT", raising=False)
    monkeypatch.setattr("magicmask.check.os.path.isfile", lambda path: False)
    frames = golden_frames("walk")
    result = invoke("check", frames[1], "--background", frames[0])
    assert result.exit_code == 1
    assert "apt-get install imagemagick" in result.output


def test_demo_runs_the_recipe_on_the_sample(tmp_path):
    result = invoke("demo", "-o", tmp_path, "-q")
    assert result.exit_code == 0, result.output
    frames = sorted((tmp_path / "frames").glob("t??.tiff"))
    assert len(frames) == 6
    for frame in frames:
        assert (tmp_path / "frames" / f"{frame.stem}-mask.tiff").exists()
        assert (tmp_path / "frames" / f"{frame.stem}-clean.jpg").exists()
    assert (tmp_path / "frames" / "keyframes.jpg").exists()
    assert str(tmp_path) in result.output
