"""Batch runs over many videos, the record of each run, and re-verifying a folder from its record."""

import hashlib
import json
import shutil
import time

import pytest
from typer.testing import CliRunner

from conftest import GOLDEN, golden_frames, leftovers
from magicmask.job import expand, plan, run_jobs
from magicmask.options import Options
from magicmask.cli import app
from magicmask.compare import compare_files
from magicmask.files import RECORD_NAME
from magicmask.provenance.verify import verify

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def takes(tmp_path_factory):
    """Two good videos with the same stem, a truncated one, one with no video stream, a text file."""
    folder = tmp_path_factory.mktemp("takes")
    (folder / "a").mkdir()
    (folder / "b").mkdir()
    shutil.copy(GOLDEN / "walk.mp4", folder / "a" / "take.mp4")
    shutil.copy(GOLDEN / "walk10.mp4", folder / "b" / "take.mp4")
    (folder / "broken.mp4").write_bytes((GOLDEN / "walk.mp4").read_bytes()[:20000])
    (folder / "notes.mp4").write_text("not a video\n")
    return folder


def mtimes(folder):
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.iterdir()) if not p.name.startswith(".")}


def test_batch_runs_every_video_and_reports_the_broken_one(takes, tmp_path):
    result = invoke("run", takes / "a" / "take.mp4", takes / "broken.mp4", takes / "b" / "take.mp4", takes / "notes.mp4", "-o", tmp_path, "-j", "2", "-q")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "2 of 4 videos failed" in result.output
    # one line per finished video, then the table
    assert f"done       {takes / 'a' / 'take.mp4'} -> {tmp_path / 'take'}: 5 keyframes" in result.output
    assert f"done       {takes / 'b' / 'take.mp4'} -> {tmp_path / 'take-2'}: 3 keyframes" in result.output
    assert "broken.mp4" in result.output and "notes.mp4" in result.output and "failed" in result.output
    # the same stem twice: distinct folders, said in the output
    assert f"note: {takes / 'b' / 'take.mp4'} -> {tmp_path / 'take-2'}" in result.output
    for name, video, count in (("take", "walk", 5), ("take-2", "walk10", 3)):
        folder = tmp_path / name
        for frame in golden_frames(video):
            for suffix in ("-mask.tiff", "-clean.jpg"):
                output = frame.stem + suffix
                assert compare_files(folder / output, GOLDEN / video / "first" / output).identical
        assert (folder / RECORD_NAME).exists() and (folder / "sheet.jpg").exists()
        assert len(list(folder.glob("t??.tiff"))) == count
    assert not (tmp_path / "broken" / RECORD_NAME).exists()
    assert leftovers(tmp_path) == []


def test_rerun_skips_finished_videos_and_redoes_only_what_is_missing(takes, tmp_path):
    videos = [takes / "a" / "take.mp4", takes / "b" / "take.mp4"]
    assert invoke("run", *videos, "-o", tmp_path, "-j", "2", "-q").exit_code == 0
    first, second = mtimes(tmp_path / "take"), mtimes(tmp_path / "take-2")
    time.sleep(0.01)
    again = invoke("run", *videos, "-o", tmp_path, "-j", "2", "-q")
    assert again.exit_code == 0 and again.output.count("up to date") >= 2
    assert mtimes(tmp_path / "take") == first and mtimes(tmp_path / "take-2") == second
    # a lost output: only that video runs again, and only that frame is made again (both its outputs)
    mask = (tmp_path / "take-2" / "t02-mask.tiff").read_bytes()
    (tmp_path / "take-2" / "t02-clean.jpg").unlink()
    third = invoke("run", *videos, "-o", tmp_path, "-j", "2", "-q")
    assert third.exit_code == 0, third.output
    assert mtimes(tmp_path / "take") == first
    after = mtimes(tmp_path / "take-2")
    changed = sorted(name for name in after if after[name] != second.get(name))
    assert changed == [RECORD_NAME, "sheet.jpg", "t02-clean.jpg", "t02-mask.tiff"]
    assert (tmp_path / "take-2" / "t02-mask.tiff").read_bytes() == mask
    # in reverse order the folders stay with their videos (the records say whose they are)
    reverse = invoke("run", *reversed(videos), "-o", tmp_path, "-q")
    assert reverse.exit_code == 0 and reverse.output.count("up to date") >= 2


def test_one_video_keeps_writing_straight_into_the_folder(tmp_path):
    result = invoke("run", GOLDEN / "walk.mp4", "-o", tmp_path, "--no-sheet", "-q")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "t05-clean.jpg").exists() and (tmp_path / RECORD_NAME).exists()
    assert not (tmp_path / "sheet.jpg").exists()
    assert json.loads((tmp_path / RECORD_NAME).read_text())["options"]["sheet"] is False


def test_progress_counts_every_frame_of_every_video(takes, tmp_path):
    seen = []
    finished = []
    runs = plan([takes / "a" / "take.mp4", takes / "b" / "take.mp4", takes / "broken.mp4"], tmp_path)
    run_jobs(runs, Options("lighten", jobs=2, sheet=False), progress=lambda stage, done, total: seen.append((stage, done, total)), on_video=finished.append)
    assert [r.status for r in runs] == ["done", "done", "failed"]
    assert sorted(r.video.name for r in finished) == ["broken.mp4", "take.mp4", "take.mp4"]
    assert seen[-1] == ("frames", 8, 8)
    assert all(done <= total for _, done, total in seen)
    for frame in golden_frames("walk"):
        for suffix in ("-mask.tiff", "-clean.jpg"):
            name = frame.stem + suffix
            assert compare_files(tmp_path / "take" / name, GOLDEN / "walk" / "lighten" / name).identical
    assert compare_files(tmp_path / "take" / "background.tiff", GOLDEN / "walk" / "lighten" / "background.tiff").identical


def test_quoted_globs_are_expanded_and_duplicates_kept_once(takes):
    found = expand([str(takes / "*" / "take.mp4"), takes / "a" / "take.mp4", takes / "missing*.mp4"])
    assert found == [takes / "a" / "take.mp4", takes / "b" / "take.mp4", takes / "missing*.mp4"]


def test_record_holds_versions_options_commands_and_hashes(tmp_path):
    assert invoke("run", GOLDEN / "walk.mp4", "-o", tmp_path, "--background", "lighten", "--threshold", "6%", "-q").exit_code == 0
    record = json.loads((tmp_path / RECORD_NAME).read_text())
    assert record["magicmask"] and record["imagemagick"].startswith("ImageMagick 6.9.11") and record["ffmpeg"].startswith("ffmpeg version")
    assert record["options"] == {"background": "lighten", "threshold": "6%", "blur": "0x3", "threshold2": "20%", "blur2": "0x3", "engine": "native", "sheet": True}
    assert record["video"]["sha256"] == hashlib.sha256((GOLDEN / "walk.mp4").read_bytes()).hexdigest()
    commands = record["commands"]
    assert commands[0].startswith("ffmpeg ") and "-skip_frame nokey" in commands[0] and commands[0].endswith("t%02d.tiff")
    assert commands[1] == "convert t01.tiff t02.tiff t03.tiff t04.tiff t05.tiff -background black -compose lighten -flatten background.tiff"
    assert "convert background.tiff t03.tiff -compose difference -composite -threshold 6% -blur 0x3 -threshold 20% -blur 0x3 t03-mask.tiff" in commands
    assert "convert t03.tiff t03-mask.tiff -compose multiply -flatten t03-clean.jpg" in commands
    assert len(commands) == 2 + 2 * 5
    names = {p.name for p in tmp_path.iterdir() if not p.name.startswith(".") and p.name != RECORD_NAME}
    assert set(record["outputs"]) == names
    for name, facts in record["outputs"].items():
        data = (tmp_path / name).read_bytes()
        assert (facts["size"], facts["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
        assert facts["made_by"] in commands or facts["made_by"].startswith(("magicmask: the contact sheet", "magicmask: per keyframe, measured on its mask")), name
    assert leftovers(tmp_path) == []


def test_check_folder_reruns_the_commands_and_finds_them_identical(tmp_path):
    assert invoke("run", GOLDEN / "walk.mp4", "-o", tmp_path, "--background", "lighten", "-q").exit_code == 0
    result = invoke("check", tmp_path, "-q")
    assert result.exit_code == 0, result.output
    assert "all 18 files" in result.output and "identical" in result.output
    rows = {row.name: row for row in verify(tmp_path / RECORD_NAME, jobs=2)}
    assert rows["background.tiff"].rerun == rows["t05-clean.jpg"].rerun == rows["t01.tiff"].rerun == "identical"
    assert rows["sheet.jpg"].hash == "matches" and rows["sheet.jpg"].rerun == "not re-run"


def test_check_folder_says_what_differs(tmp_path):
    assert invoke("run", GOLDEN / "walk.mp4", "-o", tmp_path, "-q").exit_code == 0
    shutil.copy(tmp_path / "t02-mask.tiff", tmp_path / "t03-mask.tiff")
    (tmp_path / "t05-clean.jpg").unlink()
    hashes = invoke("check", tmp_path, "--hashes-only", "-q")
    assert hashes.exit_code == 1 and "2 of 17 entries differ" in hashes.output
    result = invoke("check", tmp_path / RECORD_NAME, "-q")
    assert result.exit_code == 1
    rows = {row.name: row for row in verify(tmp_path, jobs=1)}
    assert (rows["t03-mask.tiff"].hash, rows["t03-mask.tiff"].rerun) == ("differs", "differs")
    assert "pixels differ" in rows["t03-mask.tiff"].note
    assert rows["t05-clean.jpg"].hash == "missing"
    assert rows["t04-mask.tiff"].ok


def test_check_runs_its_own_commands_not_the_records_text(tmp_path):
    assert invoke("run", GOLDEN / "walk.mp4", "-o", tmp_path, "--no-sheet", "-q").exit_code == 0
    record = json.loads((tmp_path / RECORD_NAME).read_text())
    canary = tmp_path / "canary"
    record["commands"][1] = f"touch {canary}"
    (tmp_path / RECORD_NAME).write_text(json.dumps(record))
    rows = verify(tmp_path, jobs=1)
    assert not canary.exists()
    assert rows[0].name == "commands" and not rows[0].ok
    assert all(row.ok for row in rows[1:])


def test_check_without_a_record_says_how_to_get_one(tmp_path):
    result = invoke("check", tmp_path)
    assert result.exit_code == 1 and "no magicmask.json" in result.output and "magicmask run" in result.output
    frames = invoke("check", *golden_frames("walk")[:2])
    assert frames.exit_code == 1 and "--background" in frames.output


def test_a_statistics_background_is_recorded_and_its_loop_rechecked(tmp_path):
    """--background mean (magicmask.statistics): background.tiff is checked by hash, the convert loop re-run on it."""
    assert invoke("run", GOLDEN / "walk.mp4", GOLDEN / "walk10.mp4", "-o", tmp_path, "-b", "mean", "--no-sheet", "-q").exit_code == 0
    record = json.loads((tmp_path / "walk" / RECORD_NAME).read_text())
    assert record["options"]["background"] == "mean" and "background.tiff" in record["outputs"]
    assert not any("-flatten background.tiff" in line for line in record["commands"])
    rows = {row.name: row for row in verify(tmp_path / "walk", jobs=2)}
    assert rows["background.tiff"].ok and rows["background.tiff"].rerun == "not re-run"
    assert all(row.ok for row in rows.values()) and rows["t03-mask.tiff"].rerun == "identical"
