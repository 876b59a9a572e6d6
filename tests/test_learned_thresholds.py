"""--threshold auto and adaptive through the video job, the command line and the foreground video: masks made
by the recorded convert commands, records that check, and real footage scored by CDnet's rule."""

import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import magicmask
from conftest import GOLDEN, visible
from magicmask.cli import app
from magicmask.errors import MagicmaskError
from magicmask.files import RECORD_NAME
from magicmask.provenance.record import load
from magicmask.provenance.verify import verify

runner = CliRunner()
CDNET = Path(__file__).resolve().parent.parent / "bench" / "data" / "cdnet"


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def f_measure(masks: dict[int, np.ndarray], labels: np.ndarray) -> float:
    """CDnet's rule: 85 and 170 not scored, shadow (50) is background, a mask pixel >= 50% is foreground."""
    tp = fp = fn = 0
    for index, mask in masks.items():
        truth, scored = labels[index] == 255, ~np.isin(labels[index], (85, 170))
        found = mask >= 128
        tp += int(np.sum(found & truth & scored))
        fp += int(np.sum(found & ~truth & scored))
        fn += int(np.sum(~found & truth & scored))
    precision, recall = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    return 2 * precision * recall / max(precision + recall, 1e-12)


@pytest.mark.parametrize("window", [0.0, 0.8])
def test_adaptive_run_records_its_maps_and_check_remakes_every_mask_with_convert(window, tmp_path):
    out = tmp_path / "out"
    result = magicmask.run(GOLDEN / "walk.mp4", out, background="median", source="video", window=window, threshold="adaptive")
    maps = sorted(p.name for p in out.glob("*threshold.tiff"))
    assert maps == (["threshold.tiff"] if not window else [f"t0{i}-threshold.tiff" for i in range(1, 6)])
    assert {Path(value).name for value in result.thresholds.values()} == set(maps)
    _, record = load(out)
    assert set(record["thresholds"].values()) == set(maps) and set(maps) <= set(record["outputs"])
    for frame, value in record["thresholds"].items():
        mask = frame.replace(".tiff", "-mask.tiff")
        assert f"-colorspace gray {value} -compose minus_src -composite -threshold 0" in record["outputs"][mask]["made_by"]
    rows = {row.name: row for row in verify(out)}
    assert all(row.ok for row in rows.values()), [row for row in rows.values() if not row.ok]
    assert all(rows[name].rerun == "identical" for name in rows if name.endswith(("-mask.tiff", "-clean.jpg")))
    assert set(visible(out)) == set(record["outputs"]) | {RECORD_NAME}


def test_auto_records_the_value_it_used_in_the_commands(tmp_path):
    out = tmp_path / "out"
    result = magicmask.run(CDNET / "traffic.mp4", out, background="median", source="video", threshold="auto")
    value = set(result.thresholds.values())
    assert len(value) == 1
    value = value.pop()
    assert value.isdigit() and int(value) > 3277  # above the blog's 5%: the camera shakes
    _, record = load(out)
    assert record["options"]["threshold"] == "auto" and set(record["thresholds"].values()) == {value}
    assert f"-composite -threshold {value} -blur 0x3" in record["commands"][1]
    assert all(row.ok for row in verify(out))
    again = magicmask.run(CDNET / "traffic.mp4", out, background="median", source="video", threshold="auto")
    assert again.status == "up to date" and set(again.thresholds.values()) == {value}


def test_adaptive_needs_a_median_and_says_so(tmp_path):
    result = invoke("run", GOLDEN / "walk.mp4", "-o", tmp_path / "out", "--threshold", "adaptive")
    assert result.exit_code == 1 and "--threshold adaptive learns its map with a median background" in result.output
    with pytest.raises(MagicmaskError, match="median"):
        magicmask.Options(threshold="adaptive", background="lighten")


def test_masks_learns_or_takes_a_map_and_convert_agrees(tmp_path):
    out = tmp_path / "run"
    magicmask.run(GOLDEN / "walk.mp4", out, background="median", source="video", sheet=False)
    frames = sorted(out.glob("t0?.tiff"))
    learned = invoke("masks", *frames, "-b", out / "background.tiff", "-o", tmp_path / "a", "--threshold", "adaptive", "-q")
    assert learned.exit_code == 0, learned.output
    assert (tmp_path / "a" / "threshold.tiff").exists()
    given = invoke("masks", *frames, "-b", out / "background.tiff", "-o", tmp_path / "b", "--threshold-map", tmp_path / "a" / "threshold.tiff", "-q")
    assert given.exit_code == 0, given.output
    for frame in frames:
        name = frame.stem + "-mask.tiff"
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    from magicmask.check import run_seed_loop
    from magicmask.compare import compare_files
    from magicmask.params import MaskParams

    params = MaskParams(threshold_map=str(tmp_path / "a" / "threshold.tiff"))
    mask, clean = run_seed_loop([frames[2]], out / "background.tiff", tmp_path / "convert", params)[0]
    assert compare_files(tmp_path / "a" / mask.name, mask).identical
    assert (tmp_path / "a" / clean.name).read_bytes() == clean.read_bytes()
    both = invoke("masks", *frames, "-b", out / "background.tiff", "--threshold", "auto", "--threshold-map", tmp_path / "a" / "threshold.tiff")
    assert both.exit_code == 1 and "drop --threshold auto" in both.output


@pytest.mark.parametrize("threshold", ["auto", "adaptive"])
def test_video_masks_are_runs_masks_at_the_keyframes(threshold, tmp_path):
    """The foreground video learns the same threshold as run: its lossless masks at the keyframes are the
    keyframes' mask files."""
    from magicmask.media.decode import iter_frames

    run = magicmask.run(GOLDEN / "walk.mp4", tmp_path / "run", background="median", source="video", threshold=threshold, sheet=False)
    result = invoke("video", GOLDEN / "walk.mp4", "-o", tmp_path / "clean.mkv", "--masks", tmp_path / "masks.mkv", "--lossless", "-b", "median", "--from", "video", "--threshold", threshold, "-q")
    assert result.exit_code == 0, result.output
    assert f"--threshold {threshold}" in result.output
    from magicmask.statistics import read_frame

    decoded = list(iter_frames(tmp_path / "masks.mkv", "rgb24"))
    assert len(run.outputs) == 5
    keyframes = [0, 8, 16, 24, 32]  # walk.mp4: a keyframe every 8 frames
    for index, (mask, _) in zip(keyframes, run.outputs):
        assert np.array_equal(decoded[index][..., 0], read_frame(mask)[..., 0]), mask.name


def test_adaptive_holds_up_on_real_footage_where_the_default_does_not(tmp_path):
    """traffic (CDnet 2014, camera jitter): scored on its 21 keyframes."""
    labels = np.load(CDNET / "traffic-groundtruth.npz")["labels"]
    from magicmask.statistics import read_frame

    scores = {}
    for threshold in ("5%", "auto", "adaptive"):
        result = magicmask.run(CDNET / "traffic.mp4", tmp_path / threshold.strip("%"), background="median", source="video", threshold=threshold, sheet=False)
        scores[threshold] = f_measure({5 * i: read_frame(mask)[..., 0] for i, (mask, _) in enumerate(result.outputs)}, labels)
    assert scores["adaptive"] >= 0.70 > scores["5%"]
    assert scores["adaptive"] > scores["auto"] > scores["5%"]


def test_a_black_leader_and_a_moving_camera_are_warned_about_in_the_summary_and_the_record(tmp_path):
    leader = tmp_path / "leader.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=black:s=160x120:r=25:d=0.4", "-f", "lavfi", "-i", "testsrc2=s=160x120:r=25:d=1.6",
         "-filter_complex", "[0:v][1:v]concat=n=2:v=1[v]", "-map", "[v]", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "10", str(leader)],
        check=True,
    )
    result = invoke("run", leader, "-o", tmp_path / "leader", "-q")
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output and "the background t01.tiff is nearly uniform (a black or blank leader?)" in result.output
    assert any("nearly uniform" in line for line in load(tmp_path / "leader")[1]["warnings"])
    shaking = invoke("run", CDNET / "traffic.mp4", "-o", tmp_path / "traffic", "-q")
    assert shaking.exit_code == 0 and "masks cover most of the frame" in shaking.output and "--threshold adaptive" in shaking.output
    steady = invoke("run", GOLDEN / "walk.mp4", "-o", tmp_path / "walk", "-q")
    assert steady.exit_code == 0 and "warning" not in steady.output and "warnings" not in load(tmp_path / "walk")[1]
