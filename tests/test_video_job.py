"""One video job: the defects a new user hit, one test each (numbered as in the issue that reported them)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

import magicmask
from conftest import GOLDEN, leftovers, visible
from magicmask.cli import app
from magicmask.errors import MagicmaskError
from magicmask.files import RECORD_NAME
from magicmask.provenance.record import load
from magicmask.provenance.verify import verify
from magicmask.sheet import sheet_frames

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def mtimes(folder):
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.iterdir()) if not p.name.startswith(".")}


@pytest.fixture(scope="module")
def many_keyframes(tmp_path_factory):
    """105 keyframes (one per frame) of a tiny clip: names past t99."""
    from magicmask.sample import make_sample_video

    folder = tmp_path_factory.mktemp("many")
    return make_sample_video(folder / "many.mp4", width=48, height=36, count=105, keyint=1)


@pytest.fixture(scope="module")
def truncated(tmp_path_factory):
    """The first 20 KB of an AVI: ffmpeg decodes one keyframe and reports the damage (exit 0)."""
    folder = tmp_path_factory.mktemp("truncated")
    whole = folder / "take.avi"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=3", "-c:v", "mpeg4", "-g", "25", str(whole)], check=True)
    cut = folder / "cut.avi"
    cut.write_bytes(whole.read_bytes()[:20000])
    return cut


# 1 ----------------------------------------------------------------------------------------------------


def test_1_another_video_into_a_finished_folder_is_refused_and_force_replaces_it(tmp_path):
    out = tmp_path / "out"
    assert invoke("run", GOLDEN / "walk.mp4", "-o", out, "-q").exit_code == 0
    before = mtimes(out)
    refused = invoke("run", GOLDEN / "walk10.mp4", "-o", out, "-q")
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert f"holds the outputs of another video, {GOLDEN / 'walk.mp4'}" in refused.output and "--force" in refused.output
    assert len(refused.output.strip().splitlines()) == 1
    assert mtimes(out) == before  # nothing touched
    forced = invoke("run", GOLDEN / "walk10.mp4", "-o", out, "-q", "--force")
    assert forced.exit_code == 0, forced.output
    _, record = load(out)
    assert record["video"]["path"] == os.fspath(GOLDEN / "walk10.mp4")
    assert record["keyframes"] == ["t01.tiff", "t02.tiff", "t03.tiff"]
    assert set(visible(out)) == set(record["outputs"]) | {RECORD_NAME}  # walk's t04, t05 outputs are gone
    assert [p.name for p in sheet_frames(out)] == record["keyframes"]


# 2 ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("options, remade", [(["-b", "median", "--from", "video", "--window", "0.8"], 15), (["-b", "lighten", "--match-exposure"], 16)])
def test_2_per_keyframe_backgrounds_are_in_the_recorded_commands_and_check_reruns_them(options, remade, tmp_path):
    out = tmp_path / "out"
    assert invoke("run", GOLDEN / "walk.mp4", "-o", out, *options, "-q").exit_code == 0
    _, record = load(out)
    own = sorted(p.name for p in out.glob("t*-background.tiff"))
    assert own, "each keyframe has its own background"
    for frame, background in record["backgrounds"].items():
        mask = frame.replace(".tiff", "-mask.tiff")
        assert f"convert {background} {frame} -compose difference" in record["outputs"][mask]["made_by"]
        assert (out / background).is_file()
    assert set(own) <= set(record["outputs"])
    rows = {row.name: row for row in verify(out)}
    assert all(row.ok for row in rows.values()), [row for row in rows.values() if not row.ok]
    masks = [name for name in rows if name.endswith(("-mask.tiff", "-clean.jpg"))]
    assert len(masks) == 10 and all(rows[name].rerun == "identical" for name in masks)
    checked = invoke("check", out, "-q")
    assert checked.exit_code == 0 and f"{remade} files made again by their commands, identical" in checked.output


# 3 ----------------------------------------------------------------------------------------------------


def test_3_more_than_99_keyframes_with_windows_name_every_background_as_its_keyframe(many_keyframes, tmp_path):
    out = tmp_path / "out"
    result = magicmask.run(many_keyframes, out, background="median", source="video", window=0.4, jobs=2, sheet=False)
    assert result.status == "done" and len(result.keyframes) == 105
    assert result.keyframes[0].name == "t001.tiff" and result.keyframes[-1].name == "t105.tiff"
    backgrounds = sorted(p.name for p in out.glob("*-background.tiff"))
    assert backgrounds == [f"t{i:03d}-background.tiff" for i in range(1, 106)]
    assert {path.name for path in result.backgrounds.values()} == set(backgrounds)
    _, record = load(out)
    assert set(backgrounds) <= set(record["outputs"])
    assert set(visible(out)) == set(record["outputs"]) | {RECORD_NAME}
    assert all(row.ok for row in verify(out, rerun=False))


# 4 ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["median", "mean"])
def test_4_resuming_a_statistic_run_redoes_only_what_is_missing(method, tmp_path):
    out = tmp_path / "out"
    first = magicmask.run(GOLDEN / "walk.mp4", out, background=method, source="video", jobs=2)
    assert first.status == "done"
    before = mtimes(out)
    assert magicmask.run(GOLDEN / "walk.mp4", out, background=method, source="video").status == "up to date"
    assert mtimes(out) == before
    (out / "t03-clean.jpg").unlink()
    time.sleep(0.01)
    again = magicmask.run(GOLDEN / "walk.mp4", out, background=method, source="video", jobs=2)
    assert again.status == "done"
    after = mtimes(out)
    changed = sorted(name for name in after if after[name] != before.get(name))
    assert changed == [RECORD_NAME, "sheet.jpg", "t03-clean.jpg", "t03-mask.tiff"]


# 5 ----------------------------------------------------------------------------------------------------


def test_5_outputs_an_earlier_run_made_and_this_one_does_not_are_removed(tmp_path):
    out = tmp_path / "out"
    magicmask.run(GOLDEN / "walk.mp4", out, background="median", source="video", window=0.8, display=True)
    assert len(list(out.glob("t*-background.tiff"))) == 5 and (out / "keyframes.jpg").exists()
    magicmask.run(GOLDEN / "walk.mp4", out, background="first")
    assert not list(out.glob("*-background.tiff")) and not (out / "keyframes.jpg").exists()
    _, record = load(out)
    assert set(visible(out)) == set(record["outputs"]) | {RECORD_NAME}
    assert set(record["backgrounds"].values()) == {"t01.tiff"}


# 6 ----------------------------------------------------------------------------------------------------


def test_6_demo_library_and_command_line_make_the_same_folder_and_it_checks(tmp_path):
    from magicmask.demo import demo

    video, result = demo(tmp_path / "demo")
    assert (result.folder / RECORD_NAME).exists() and result.display.exists() and result.sheet.exists()
    checked = invoke("check", result.folder, "-q")
    assert checked.exit_code == 0, checked.output
    library = magicmask.run(video, tmp_path / "library")
    assert invoke("run", video, "-o", tmp_path / "cli", "-q").exit_code == 0
    assert visible(tmp_path / "library") == visible(tmp_path / "cli")
    assert visible(tmp_path / "library") == sorted(set(visible(result.folder)) - {"keyframes.jpg", "motion.png"})
    assert result.plot.is_file()  # the demo plots its motion data when matplotlib is there
    for name in visible(tmp_path / "library"):
        if name not in (RECORD_NAME, "sheet.jpg"):  # the sheet's title names its folder
            assert (tmp_path / "library" / name).read_bytes() == (tmp_path / "cli" / name).read_bytes(), name
    assert library.record == tmp_path / "library" / RECORD_NAME


# 9 ----------------------------------------------------------------------------------------------------


def test_9_a_mistyped_background_method_is_named_with_the_choices(tmp_path):
    for command in (["run", GOLDEN / "walk.mp4", "-o", tmp_path / "out"], ["video", GOLDEN / "walk.mp4", "-o", tmp_path / "clean.mp4"]):
        result = invoke(*command, "--background", "bogus", "-q")
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert "--background 'bogus' is neither a method nor a file" in result.output
        assert "first, lighten, darken, mean, median, or the path of a TIFF file" in result.output
    missing = invoke("run", GOLDEN / "walk.mp4", "-o", tmp_path / "out", "--background", tmp_path / "nothing.tiff")
    assert missing.exit_code == 1 and "background file not found" in missing.output
    assert not (tmp_path / "out").exists()


def test_9_video_takes_every_background_method(tmp_path):
    from magicmask.engines import native
    from magicmask.statistics import read_frame
    from magicmask.video import background_picture

    result = invoke("video", GOLDEN / "walk.mp4", "-o", tmp_path / "clean.mp4", "--background", "median", "--from", "video", "-q")
    assert result.exit_code == 0, result.output
    run = magicmask.run(GOLDEN / "walk.mp4", tmp_path / "run", background="median", source="video")
    picture = background_picture(GOLDEN / "walk.mp4", "median", source="video")
    assert (picture.samples == read_frame(run.background)).all()  # what run writes to background.tiff
    assert isinstance(picture, native.Picture)


# 10 ---------------------------------------------------------------------------------------------------


def test_10_a_truncated_video_is_reported_damaged_not_a_clean_success(truncated, tmp_path):
    result = invoke("run", truncated, "-o", tmp_path / "out", "-q")
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output and "ffmpeg reported decoding errors (the video may be damaged or truncated)" in result.output
    assert "1 keyframe," in result.output and "1 keyframes" not in result.output
    _, record = load(tmp_path / "out")
    assert record["warnings"] and record["warnings"][0].startswith("ffmpeg reported decoding errors")
    again = invoke("run", truncated, "-o", tmp_path / "out", "-q")  # up to date: the warning is still said
    assert again.exit_code == 0 and "up to date" in again.output and "warning:" in again.output
    batch = invoke("run", truncated, GOLDEN / "walk.mp4", "-o", tmp_path / "batch", "-q")
    assert batch.exit_code == 0 and "(warnings)" in batch.output and "damaged" in batch.output


# 11 ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("options", [dict(source="video"), dict(source="video", window=0.8)])
def test_11_progress_is_reported_while_a_background_is_made(options, tmp_path):
    seen = []
    magicmask.run(GOLDEN / "walk.mp4", tmp_path, background="median", progress=lambda *event: seen.append(event), **options)
    background = [event for event in seen if event[0] == "background"]
    assert len(background) > 10 and background[-1][1] == background[-1][2] > 0
    assert seen.index(background[-1]) < max(i for i, event in enumerate(seen) if event[0] == "frames")


# 12 ---------------------------------------------------------------------------------------------------


def test_12_messages_say_what_happened(tmp_path):
    out = tmp_path / "out"
    assert invoke("run", GOLDEN / "walk.mp4", "-o", out, "-q").exit_code == 0
    frames = sorted(str(p) for p in out.glob("t0?.tiff"))
    masks = invoke("masks", *frames, "--background", out / "t01.tiff", "-q")
    assert masks.exit_code == 0 and "5 frames already up to date" in masks.output and "written" not in masks.output
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    failed = invoke("run", text, tmp_path / "missing.mp4", "-o", tmp_path / "batch", "-q")
    assert failed.exit_code == 1 and "all 2 videos failed" in failed.output and "the others are done" not in failed.output


def test_12_interrupting_video_does_not_promise_kept_files(tmp_path, monkeypatch):
    import magicmask.video

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(magicmask.video, "foreground_video", interrupted)
    result = invoke("video", GOLDEN / "walk.mp4", "-o", tmp_path / "clean.mp4", "-q")
    assert result.exit_code == 130 and "nothing was written" in result.output and "finished files are kept" not in result.output


# 13 ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["-j", "-3"], "--jobs -3 is not a number of workers"),
        (["--samples", "0", "-b", "median"], "--samples 0 is below 2"),
        (["--from", "video"], "--from video makes a background from every frame, but --background first is not made from frames"),
        (["--from", "video", "-b", "GOLDEN"], "--from video makes a background from every frame, but a background file is not made from frames"),
        (["--window", "-1", "-b", "median"], "--window -1.0 is not a number of seconds"),
        (["--from", "disk", "-b", "median"], "--from 'disk' is not a source of frames"),
        (["--engine", "gpu"], "--engine 'gpu' is not an engine"),
    ],
)
def test_13_bad_options_are_refused_in_one_line_before_any_work(args, message, tmp_path):
    args = [str(GOLDEN / "walk" / "frames" / "t01.tiff") if a == "GOLDEN" else a for a in args]
    result = invoke("run", GOLDEN / "walk.mp4", "-o", tmp_path / "out", *args)
    assert result.exit_code == 1 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
    with pytest.raises(MagicmaskError):
        magicmask.Options(**{"jobs": -3} if "-j" in args else {"samples": 0} if "--samples" in args else {"background": "first", "source": "video"} if args[:2] == ["--from", "video"] else {"window": -1.0} if "--window" in args else {"source": "disk"} if "disk" in args else {"engine": "gpu"} if "gpu" in args else {"source": "video", "background": args[-1]})


# 14 ---------------------------------------------------------------------------------------------------

HOLD = """
import sys, time
from magicmask.lock import FolderLock
with FolderLock(sys.argv[1], "magicmask run other.mp4"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_14_a_folder_in_use_is_refused_naming_the_run_and_a_killed_run_does_not_block(tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        refused = invoke("run", GOLDEN / "walk.mp4", "-o", out, "-q")
        assert refused.exit_code == 1 and "Traceback" not in refused.output
        assert f"pid {holder.pid}" in refused.output and "magicmask run other.mp4" in refused.output
        assert not list(out.glob("t*.tiff"))
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    after = invoke("run", GOLDEN / "walk.mp4", "-o", out, "-q")  # the killed holder's lock is stale
    assert after.exit_code == 0, after.output
    assert leftovers(tmp_path) == [] and not (out / ".magicmask-lock.json").exists()


# the library --------------------------------------------------------------------------------------------


def test_the_public_api_is_in_the_package():
    assert set(magicmask.__all__) >= {"run", "run_many", "masks", "backgrounds", "display", "check", "verify", "Options", "RunResult", "MagicmaskError"}
    for name in magicmask.__all__:
        assert getattr(magicmask, name) is not None
    assert subprocess.run([sys.executable, "-m", "magicmask", "--version"], capture_output=True, text=True).stdout.startswith("magicmask ")


def test_run_many_is_the_batch_and_run_its_single_case(tmp_path):
    results = magicmask.run_many([GOLDEN / "walk.mp4", GOLDEN / "walk10.mp4"], tmp_path, sheet=False)
    assert [r.status for r in results] == ["done", "done"] and [r.folder.name for r in results] == ["walk", "walk10"]
    assert all(set(r.timings) >= {"keyframes", "masks", "complete"} for r in results)
    again = magicmask.run(GOLDEN / "walk.mp4", tmp_path / "walk", sheet=False)
    assert again.status == "up to date" and again.outputs == results[0].outputs
    with pytest.raises(MagicmaskError, match="unknown option 'thresold'"):
        magicmask.run(GOLDEN / "walk.mp4", tmp_path / "x", thresold="8%")
    assert json.loads((tmp_path / "walk" / RECORD_NAME).read_text())["options"]["sheet"] is False


def test_help_texts_show_their_defaults_and_speak_of_the_blog():
    for command, text in [("keyframes", "[default: a folder named after the video]"), ("masks", "[default: beside each frame]"), ("background", "lighten (the blog's")]:
        result = invoke(command, "--help")
        assert result.exit_code == 0 and text in " ".join(result.output.replace("│", " ").split()), (command, result.output)
    for command in ("run", "masks", "video", "background", "check", "demo", "keyframes", "display", "sheet"):
        assert "seed" not in invoke(command, "--help").output.lower(), command


def test_learned_thresholds_are_said_and_refused_where_they_cannot_work(tmp_path):
    result = invoke("run", GOLDEN / "walk.mp4", "-o", tmp_path / "out", "-b", "median", "--from", "video", "--threshold", "auto", "-q")
    assert result.exit_code == 0 and "--threshold auto: -threshold " in result.output
    adaptive = invoke("run", GOLDEN / "walk.mp4", "-o", tmp_path / "a", "-b", "median", "--threshold", "adaptive", "-q")
    assert adaptive.exit_code == 0 and "--threshold adaptive: 1 threshold map (threshold.tiff)" in adaptive.output
    frames = sorted((tmp_path / "out").glob("t0?.tiff"))
    checked = invoke("check", *frames, "-b", tmp_path / "out" / "background.tiff", "--threshold", "auto")
    assert checked.exit_code == 1 and "check compares given thresholds, not --threshold auto" in checked.output
    mapped = invoke("check", frames[1], "-b", tmp_path / "a" / "background.tiff", "--threshold-map", tmp_path / "a" / "threshold.tiff", "-q")
    assert mapped.exit_code == 0 and "identical to convert's" in mapped.output, mapped.output


def test_video_of_an_odd_size_says_it_pads(tmp_path):
    clip = tmp_path / "odd.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=160x120:r=25:d=0.4", "-vf", "scale=97:73", "-c:v", "libx264", "-pix_fmt", "yuv444p", str(clip)], check=True)
    result = invoke("video", clip, "-o", tmp_path / "clean.mp4", "-q")
    assert result.exit_code == 0 and "note: 97x73 frames are padded to 98x74 with black" in result.output, result.output
    lossless = invoke("video", clip, "-o", tmp_path / "clean.mkv", "--lossless", "-q")
    assert lossless.exit_code == 0 and "padded" not in lossless.output


# what the review of the video job found ------------------------------------------------------------------


def test_a_users_own_files_in_the_folder_are_never_removed(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    (out / "background.tiff").write_bytes((GOLDEN / "walk" / "frames" / "t02.tiff").read_bytes())
    refused = invoke("run", GOLDEN / "walk.mp4", "-o", out, "-q")
    assert refused.exit_code == 1 and "files named as magicmask's outputs that no run of it made (background.tiff)" in refused.output
    forced = invoke("run", GOLDEN / "walk.mp4", "-o", out, "-q", "--force")
    assert forced.exit_code == 0, forced.output
    assert (out / "notes.txt").read_text() == "mine\n" and (out / "background.tiff").exists()  # a first-keyframe run writes no background.tiff
    _, record = load(out)
    assert "background.tiff" not in record["outputs"] and "notes.txt" not in record["outputs"]
    again = invoke("run", GOLDEN / "walk.mp4", "-o", out, "-q", "-b", "median")  # now the run makes background.tiff: its own
    assert again.exit_code == 0 and (out / "notes.txt").exists()


def test_a_background_tiff_given_from_inside_the_folder_stays_an_input(tmp_path):
    out = tmp_path / "out"
    assert invoke("run", GOLDEN / "walk.mp4", "-o", out, "-b", "lighten", "-q").exit_code == 0
    given = invoke("run", GOLDEN / "walk.mp4", "-o", out, "-b", out / "background.tiff", "-q")
    assert given.exit_code == 0 and "Traceback" not in given.output, given.output
    assert (out / "background.tiff").exists()
    _, record = load(out)
    assert "background.tiff" not in record["outputs"]
    assert record["inputs"]["background"]["path"] == os.fspath((out / "background.tiff").resolve())
    assert invoke("check", out, "-q").exit_code == 0


def test_a_changed_background_tiff_is_not_up_to_date(tmp_path):
    import shutil

    given = tmp_path / "bg.tiff"
    shutil.copy(GOLDEN / "walk" / "frames" / "t01.tiff", given)
    assert invoke("run", GOLDEN / "walk.mp4", "-o", tmp_path / "out", "-b", given, "-q").exit_code == 0
    time.sleep(0.01)
    shutil.copy(GOLDEN / "walk" / "frames" / "t02.tiff", given)
    checked = invoke("check", tmp_path / "out", "-q")
    assert checked.exit_code == 1 and "the background TIFF given to the run has changed since" in " ".join(checked.output.replace("│", " ").split())
    again = invoke("run", GOLDEN / "walk.mp4", "-o", tmp_path / "out", "-b", given, "-q")
    assert again.exit_code == 0 and "up to date" not in again.output
    assert invoke("check", tmp_path / "out", "-q").exit_code == 0


def test_an_interrupted_run_leaves_a_folder_check_calls_unfinished_and_a_rerun_finishes(tmp_path):
    out = tmp_path / "out"
    magicmask.run(GOLDEN / "walk.mp4", out)

    def interrupt(stage, done, total):
        if stage == "frames" and done >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        magicmask.run(GOLDEN / "walk.mp4", out, background="median", source="video", force=True, progress=interrupt)
    checked = invoke("check", out, "-q")
    assert checked.exit_code == 1 and "a run into this folder did not finish" in checked.output
    assert len(checked.output.strip().splitlines()) == 1
    assert magicmask.run(GOLDEN / "walk.mp4", out, background="median", source="video").status == "done"
    assert invoke("check", out, "-q").exit_code == 0
    assert not (out / ".magicmask-lock.json").exists()


def test_a_file_that_is_no_video_claims_no_folder(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    assert invoke("run", text, "-o", tmp_path / "out", "-q").exit_code == 1
    assert invoke("run", GOLDEN / "walk.mp4", "-o", tmp_path / "out", "-q").exit_code == 0


@pytest.mark.parametrize("name", ["msl:background.tiff", "-write", "@list.tiff", "../t01.tiff", "/etc/passwd"])
def test_a_record_naming_strange_backgrounds_is_refused(name, tmp_path):
    out = tmp_path / "out"
    magicmask.run(GOLDEN / "walk.mp4", out, sheet=False)
    record = json.loads((out / RECORD_NAME).read_text())
    record["backgrounds"]["t02.tiff"] = name
    (out / RECORD_NAME).write_text(json.dumps(record))
    checked = invoke("check", out, "-q")
    assert checked.exit_code == 1 and "not one of its folder's files" in checked.output and "Traceback" not in checked.output


def test_keyframes_into_another_videos_folder_are_refused(tmp_path):
    out = tmp_path / "out"
    magicmask.run(GOLDEN / "walk.mp4", out, sheet=False)
    before = (out / "t01.tiff").read_bytes()
    refused = invoke("keyframes", GOLDEN / "walk10.mp4", "-o", out, "-q")
    assert refused.exit_code == 1 and "holds the outputs of another video" in refused.output
    assert (out / "t01.tiff").read_bytes() == before


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(spans=((5, 2),), source="video", background="median"), "the end after the start"),
        (dict(spans=((float("nan"), 1),), source="video", background="median"), "the end after the start"),
        (dict(sheet="no"), "sheet='no' is not True or False"),
        (dict(samples="abc"), "--samples 'abc' is not a whole number"),
        (dict(threshold="AUTO"), "may also be auto or adaptive"),
    ],
)
def test_library_options_are_checked_as_the_command_line_checks_them(options, message):
    with pytest.raises(MagicmaskError, match=message):
        magicmask.Options(**options)
