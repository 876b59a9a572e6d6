"""Motion data: every column of motion.tsv against values computed here, independently, from the mask files
(tifffile, plain NumPy) and the keyframes' timestamps (ffprobe, decoding the keyframes)."""

import json
import subprocess

import numpy as np
import pytest
import tifffile

import magicmask
from conftest import GOLDEN
from magicmask.errors import MagicmaskError
from magicmask.motion import COLUMNS, Measure, Motiongram, Track, measure, motion_between, read_tsv


def expected_rows(masks: list, names: list[str], times) -> list[dict]:
    """Each column computed the slow, obvious way from the mask samples."""
    rows, previous = [], None
    for name, time, path in zip(names, times, masks):
        samples = tifffile.imread(path)
        plane = samples if samples.ndim == 2 else samples[..., 0]
        top = 255.0 if plane.dtype == np.uint8 else 65535.0
        weights = plane.astype(np.float64) / top
        total = weights.sum()
        ys, xs = np.mgrid[0 : plane.shape[0], 0 : plane.shape[1]]
        inside = np.argwhere(plane.astype(np.float64) >= top / 2)
        row = {"frame": name, "time": time, "area": weights.mean()}
        row["x"] = (weights * xs).sum() / total if total else None
        row["y"] = (weights * ys).sum() / total if total else None
        box = (inside[:, 1].min(), inside[:, 0].min(), inside[:, 1].max(), inside[:, 0].max()) if len(inside) else (None,) * 4
        row.update(zip(("left", "top", "right", "bottom"), box))
        row["motion"] = None if previous is None else np.abs(weights - previous).mean()
        previous = weights
        rows.append(row)
    return rows


def keyframe_times(video) -> list[float]:
    """The keyframes' timestamps as ffprobe gives them when it decodes them (not the packets magicmask reads)."""
    printed = subprocess.run(
        ["ffprobe", "-v", "error", "-skip_frame", "nokey", "-select_streams", "v:0", "-show_entries", "frame=best_effort_timestamp_time", "-of", "json", str(video)],
        capture_output=True, check=True,
    ).stdout
    return sorted(float(frame["best_effort_timestamp_time"]) for frame in json.loads(printed)["frames"])


def assert_rows_match(found: list[dict], expected: list[dict]) -> None:
    assert len(found) == len(expected)
    for got, want in zip(found, expected):
        assert got["frame"] == want["frame"]
        for column in ("left", "top", "right", "bottom"):
            assert got[column] == want[column], (want["frame"], column)
        for column, tolerance in (("time", 1e-6), ("area", 1e-3), ("x", 1e-3), ("y", 1e-3), ("motion", 1e-5)):
            if want[column] is None:
                assert got[column] is None, (want["frame"], column)
            else:
                assert got[column] == pytest.approx(want[column], abs=tolerance), (want["frame"], column)


@pytest.mark.parametrize("video", ["walk", "walk10"])  # 8-bit masks, and 16-bit ones (10-bit video)
def test_every_column_of_motion_tsv_matches_the_mask_files(video, tmp_path):
    result = magicmask.run(GOLDEN / f"{video}.mp4", tmp_path / video)
    rows = read_tsv(result.motion)
    names = [frame.stem for frame in result.keyframes]
    assert [row["frame"] for row in rows] == names  # one row per keyframe, in order
    assert tuple(result.motion.read_text().splitlines()[0].split("\t")) == COLUMNS
    expected = expected_rows([mask for mask, _ in result.outputs], names, keyframe_times(GOLDEN / f"{video}.mp4"))
    assert_rows_match(rows, expected)
    assert any(row["motion"] for row in rows[1:]) and any(row["left"] is not None for row in rows)


def test_the_record_lists_motion_tsv(tmp_path):
    from magicmask.provenance.hashing import sha256
    from magicmask.provenance.record import load

    result = magicmask.run(GOLDEN / "walk.mp4", tmp_path / "walk")
    _, record = load(result.folder)
    facts = record["outputs"]["motion.tsv"]
    assert facts["sha256"] == sha256(result.motion) and "quantity of motion" in facts["made_by"]


def test_wand_engine_and_resumed_frames_give_the_same_table(tmp_path):
    """The wand engine's masks are measured from their bytes; frames already done, from their files."""
    native = magicmask.run(GOLDEN / "walk.mp4", tmp_path / "native").motion.read_text()
    assert magicmask.run(GOLDEN / "walk.mp4", tmp_path / "wand", engine="wand").motion.read_text() == native
    again = magicmask.run(GOLDEN / "walk.mp4", tmp_path / "native", display=True)  # other options: frames resumed
    assert again.status == "done" and again.motion.read_text() == native


def test_track_computes_motion_in_order_whatever_the_arrival_order():
    rng = np.random.default_rng(1)
    masks = [np.zeros((40, 50), np.uint8) for _ in range(6)]
    for index, mask in enumerate(masks[1:], 1):
        mask[5 + index : 20 + index, 3 * index : 10 + 4 * index] = rng.integers(0, 256, (15, 10 + index), dtype=np.uint8)
    track = Track()
    for index in (3, 0, 5, 1, 4, 2):
        track.add(index, measure(masks[index]))
    for index in range(1, 6):
        expected = np.abs(masks[index].astype(float) - masks[index - 1]).mean() / 255
        assert track.motion[index] == pytest.approx(expected, abs=1e-12)
    assert all(track.measures[index].crop is None for index in range(5))  # only the last mask's part is kept
    assert motion_between(measure(masks[0]), measure(masks[0])) == 0.0


def test_a_black_mask_has_no_centroid_and_no_box():
    found = measure(np.zeros((4, 5, 1), np.uint16))
    assert isinstance(found, Measure) and found.area == 0 and found.x is None and found.box is None
    assert measure(np.full((4, 5), 127, np.uint8)).box is None  # below 50%
    assert measure(np.full((4, 5), 128, np.uint8)).box == (0, 0, 4, 3)



def test_an_alpha_channel_is_not_part_of_the_mask():
    rng = np.random.default_rng(2)
    plane = rng.integers(0, 256, (12, 16), dtype=np.uint8)
    opaque = np.full_like(plane, 255)
    alone = measure(plane)
    for mask in (np.stack([plane, opaque], axis=2), np.stack([plane, plane, plane, opaque], axis=2)):  # gray+alpha, RGBA
        found = measure(mask)
        assert (found.total, found.x, found.y, found.box) == (alone.total, alone.x, alone.y, alone.box)
        assert np.array_equal(Motiongram.lines(mask)[0], Motiongram.lines(plane)[0])


def test_motion_between_masks_of_different_depths_is_refused():
    plane = np.zeros((4, 5), np.uint8)
    plane[1:3, 1:4] = 255
    with pytest.raises(MagicmaskError, match="different depths"):
        motion_between(measure(plane), measure(plane.astype(np.uint16) * 257))

def test_plot_writes_motion_png_beside_motion_tsv(tmp_path):
    from PIL import Image

    from magicmask.provenance.record import load

    result = magicmask.run(GOLDEN / "walk.mp4", tmp_path / "walk", plot=True)
    assert result.plot == result.folder / "motion.png"
    picture = Image.open(result.plot)
    assert picture.format == "PNG" and picture.size == (1100, 500)
    assert np.asarray(picture.convert("L")).std() > 10  # something is drawn
    _, record = load(result.folder)
    assert "motion.png" in record["outputs"] and record["options"]["plot"] is True


def test_without_matplotlib_plot_is_refused_in_one_line_before_any_work(tmp_path, monkeypatch):
    import sys

    from typer.testing import CliRunner

    from magicmask.cli import app

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # as if matplotlib were not installed
    with pytest.raises(magicmask.MagicmaskError, match=r"pip install 'magicmask\[plot\]'"):
        magicmask.run(GOLDEN / "walk.mp4", tmp_path / "lib", plot=True)
    result = CliRunner().invoke(app, ["run", str(GOLDEN / "walk.mp4"), "-o", str(tmp_path / "cli"), "--plot", "-q"])
    assert result.exit_code == 1 and "matplotlib" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "cli").exists() and not (tmp_path / "lib").exists()


def test_a_run_result_shows_its_sheet_and_plot_in_a_notebook(tmp_path):
    import base64
    import io
    import re

    from PIL import Image

    result = magicmask.run(GOLDEN / "walk.mp4", tmp_path / "walk<&>", plot=True)
    shown = result._repr_html_()
    images = re.findall(r"data:image/(jpeg|png);base64,([A-Za-z0-9+/=]+)", shown)
    assert [kind for kind, _ in images] == ["jpeg", "png"]  # the sheet, then the motion plot
    sheet = Image.open(io.BytesIO(base64.b64decode(images[0][1])))
    assert sheet.size == Image.open(result.sheet).size  # small enough to embed as it is
    assert "walk&lt;&amp;&gt;" in shown and "motion.tsv" in shown and "<&>" not in shown
    failed = magicmask.job.RunResult(GOLDEN / "walk.mp4", tmp_path / "x", status="failed", error=magicmask.MagicmaskError("boom"))
    assert "<img" not in failed._repr_html_() and "boom" in failed._repr_html_()


def test_a_damaged_mask_of_a_frame_already_done_is_made_again(tmp_path):
    out = tmp_path / "walk"
    first = magicmask.run(GOLDEN / "walk.mp4", out).motion.read_text()
    mask = out / "t03-mask.tiff"
    stat = mask.stat()
    mask.write_bytes(mask.read_bytes()[:200])  # truncated, with its old time: it looks done
    import os

    os.utime(mask, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again = magicmask.run(GOLDEN / "walk.mp4", out, display=True)
    assert again.status == "done" and again.motion.read_text() == first
    assert tifffile.imread(mask).shape[:2] == (120, 160)


def test_a_folder_finished_before_motion_data_gets_it_on_the_next_run(tmp_path):
    import json

    out = tmp_path / "walk"
    first = magicmask.run(GOLDEN / "walk.mp4", out)
    table = first.motion.read_text()
    record = json.loads((out / "magicmask.json").read_text())
    del record["outputs"]["motion.tsv"]  # as an earlier version wrote it
    (out / "magicmask.json").write_text(json.dumps(record))
    first.motion.unlink()
    again = magicmask.run(GOLDEN / "walk.mp4", out)
    assert again.status == "done" and again.motion.read_text() == table
    assert magicmask.run(GOLDEN / "walk.mp4", out).status == "up to date"


@pytest.mark.parametrize("error", [OSError(2, "No such file or directory"), ValueError("could not convert string to float: 'N/A'")])
def test_keyframe_times_that_cannot_be_read_leave_the_time_cells_empty_with_a_warning(error, tmp_path, monkeypatch):
    """The times are optional: an error reading them (the video moved while the masks were made, a damaged
    file) must not fail the run after every mask is written."""
    import magicmask.job
    from magicmask.sample import make_sample_video

    def fail(video):
        raise error

    video = make_sample_video(tmp_path / "clip.mp4", width=96, height=72, count=15, keyint=5)
    monkeypatch.setattr(magicmask.job, "keyframe_packet_times", fail)
    monkeypatch.setattr(magicmask.job, "keyframe_times", fail)
    result = magicmask.run(video, tmp_path / "clip")
    rows = read_tsv(result.motion)
    assert len(rows) == len(result.keyframes) == 3 and all(row["time"] is None for row in rows)
    assert any(row["area"] for row in rows)
    assert any("keyframes' times could not be read" in warning and type(error).__name__ in warning for warning in result.warnings), result.warnings


def test_centroids_of_masks_too_large_for_64_bit_moments_are_computed_in_floating_point():
    """An 8K 16-bit mask, white but for a black band: past the bound measure checks for exact 64-bit moments
    (frames about 10K wide would wrap them), so they are summed in floating point."""
    from magicmask.motion import measure

    mask = np.full((4320, 7680), 65535, dtype=np.uint16)
    mask[:, :1000] = 0
    found = measure(mask)
    assert found.x == pytest.approx((1000 + 7679) / 2, abs=1e-6)
    assert found.y == pytest.approx(4319 / 2, abs=1e-6)
    small = measure(mask[::8, ::8])  # exact integer moments at this size
    assert small.x == pytest.approx((125 + 959) / 2, abs=1e-9)
