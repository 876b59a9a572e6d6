"""magicmask video's research outputs: --data (every column against the masks, decoded from the lossless masks
video), --motiongram, --alpha (an alpha pixel format, alpha equal to the mask), and their errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import leftovers
from magicmask.cli import app
from magicmask.errors import MagicmaskError
from magicmask.media.decode import iter_frames
from magicmask.motion import Motiongram, read_tsv
from magicmask.sample import make_sample_video
from magicmask.video import foreground_video
from test_motion import assert_rows_match, expected_rows

runner = CliRunner()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """30 frames of 96x72 with a keyframe every 5."""
    folder = tmp_path_factory.mktemp("clip")
    return make_sample_video(folder / "clip.mp4", width=96, height=72, count=30, keyint=5)


@pytest.fixture(scope="module")
def made(clip, tmp_path_factory):
    """The clean video with every extra, the masks exactly (lossless)."""
    folder = tmp_path_factory.mktemp("made")
    result = foreground_video(
        clip, folder / "clean.mkv", masks=folder / "masks.mkv", lossless=True, jobs=2,
        data=folder / "motion.tsv", motiongram=folder / "motiongram.png", alpha=folder / "alpha.mov",
    )
    masks = [np.array(frame[:, :, 0]) for frame in iter_frames(folder / "masks.mkv", "rgb24")]
    return result, masks


def frame_times(video) -> list[float]:
    printed = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=best_effort_timestamp_time", "-of", "json", str(video)],
        capture_output=True, check=True,
    ).stdout
    return sorted(float(frame["best_effort_timestamp_time"]) for frame in json.loads(printed)["frames"])


def test_data_has_a_row_per_frame_and_every_column_matches_the_masks(clip, made, tmp_path):
    result, masks = made
    rows = read_tsv(result.data)
    assert len(rows) == result.frames == len(masks) == 30
    files = []
    for index, mask in enumerate(masks):  # the masks as files, for the same independent computation as run's
        import tifffile

        files.append(tmp_path / f"{index}.tiff")
        tifffile.imwrite(files[-1], mask)
    expected = expected_rows(files, [str(index) for index in range(30)], frame_times(clip))
    assert_rows_match(rows, expected)
    assert sum(row["left"] is not None for row in rows) > 10


def test_alpha_video_has_an_alpha_pixel_format_and_the_mask_as_alpha(made):
    result, masks = made
    stream = json.loads(subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(result.alpha)], capture_output=True, check=True).stdout)["streams"][0]
    assert stream["codec_name"] == "prores" and stream["pix_fmt"].startswith("yuva")
    decoded = list(iter_frames(result.alpha, "rgba"))
    assert len(decoded) == 30
    for frame, mask in zip(decoded, masks):
        assert np.abs(frame[:, :, 3].astype(int) - mask).max() <= 1
    assert any(mask.any() for mask in masks) and any((mask == 0).any() for mask in masks)


def test_alpha_webm_is_vp9_with_alpha(clip, tmp_path):
    foreground_video(clip, tmp_path / "clean.mp4", alpha=tmp_path / "alpha.webm", jobs=2)
    printed = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(tmp_path / "alpha.webm")], capture_output=True, check=True).stdout
    stream = json.loads(printed)["streams"][0]
    assert stream["codec_name"] == "vp9" and stream["tags"].get("alpha_mode", stream["tags"].get("ALPHA_MODE")) == "1"
    decoded = subprocess.run(["ffmpeg", "-v", "error", "-c:v", "libvpx-vp9", "-i", str(tmp_path / "alpha.webm"), "-frames:v", "1", "-f", "null", "-"], capture_output=True)
    assert decoded.returncode == 0


def test_motiongram_is_the_masks_means_stacked_along_time(made):
    result, masks = made
    picture = Image.open(result.motiongram)
    assert picture.format == "PNG" and picture.size == (1100, 700)
    gram = Motiongram()
    for mask in masks:
        gram.add(Motiongram.lines(mask))
    horizontal, vertical = gram.arrays()
    stack = np.stack(masks).astype(np.float64) / 255
    assert np.allclose(horizontal, stack.mean(axis=1), atol=1e-6)  # (frames, width): the mean over each column
    assert np.allclose(vertical, stack.mean(axis=2).T, atol=1e-6)  # (height, frames): the mean over each row


def test_a_long_motiongram_is_binned_in_bounded_memory():
    gram = Motiongram(limit=4)
    values = [np.full((3, 2), value, np.uint8) for value in range(20)]
    for mask in values:
        gram.add(Motiongram.lines(mask))
    horizontal, _ = gram.arrays()
    assert gram.frames == 20 and len(horizontal) <= 8
    assert np.allclose(horizontal.mean(), np.mean(range(20)) / 255, atol=1e-6)


@pytest.mark.parametrize(
    "args, words",
    [
        (["--alpha", "{out}/alpha.mp4"], ["alpha.mp4", ".mov", ".webm"]),
        (["--data", "{out}/clean.mp4"], ["--data", "same file"]),
        (["--motiongram", "{clip}"], ["overwrite the video"]),
    ],
)
def test_bad_outputs_are_refused_in_one_line_and_nothing_is_written(args, words, clip, tmp_path):
    values = dict(out=tmp_path, clip=clip)
    result = runner.invoke(app, ["video", str(clip), "-o", str(tmp_path / "clean.mp4"), "-q", *[a.format(**values) for a in args]])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and all(word in result.output for word in words), result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [] and leftovers(tmp_path) == []


def test_motiongram_without_matplotlib_is_a_one_line_error(clip, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    result = runner.invoke(app, ["video", str(clip), "-o", str(tmp_path / "clean.mp4"), "--motiongram", str(tmp_path / "m.png"), "-q"])
    assert result.exit_code == 1 and "pip install 'magicmask[plot]'" in result.output and list(tmp_path.iterdir()) == []
    with pytest.raises(MagicmaskError, match="matplotlib"):
        foreground_video(clip, tmp_path / "clean.mp4", motiongram=tmp_path / "m.png")
