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
from magicmask.media.probe import frame_times as frame_times_of_packets
from magicmask.motion import Motiongram, read_tsv
from magicmask.video import foreground_video
from test_motion import assert_rows_match, expected_rows

runner = CliRunner()


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


def colour_indices(path) -> np.ndarray:
    """For each pixel of a picture, the index of the magma colour it is (as matplotlib makes its 8-bit
    colours: truncated), or -1 for any other colour (axes, text, the white around)."""
    from matplotlib import colormaps

    pixels = np.asarray(Image.open(path).convert("RGB")).astype(np.int64)
    lut = (colormaps["magma"](np.arange(256))[:, :3] * 255).astype(np.int64)
    keys = (pixels[..., 0] << 16) | (pixels[..., 1] << 8) | pixels[..., 2]
    lut_keys = (lut[:, 0] << 16) | (lut[:, 1] << 8) | lut[:, 2]
    order = np.argsort(lut_keys)
    at = np.clip(np.searchsorted(lut_keys[order], keys), 0, 255)
    return np.where(lut_keys[order][at] == keys, order[at], -1)


def runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of True."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8), [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


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
    # The picture itself, read back: the two motiongrams are the two large areas of colormap colours (the
    # narrow ones at the right are their colour bars, one each), time along x; each cell's colour is its mean,
    # 0 to its panel's largest value.
    shown = colour_indices(result.motiongram)
    columns = max(runs((shown >= 0).any(axis=0)), key=lambda run: run[1] - run[0])
    areas = runs((shown[:, columns[0] : columns[1]] >= 0).all(axis=1))
    assert len(areas) == 2, areas
    for (top, bottom), values in zip(areas, (horizontal.T, vertical)):  # (pixels, frames) both
        step = values.max() / 255
        assert values.max() > 0.2
        frames = columns[0] + ((np.arange(values.shape[1]) + 0.5) * (columns[1] - columns[0]) / values.shape[1]).astype(int)
        read = shown[top:bottom, frames] * step  # every pixel row of the middle column of each frame
        assert np.allclose(read.mean(axis=0), values.mean(axis=0), atol=2 * step)  # each frame's mean
        rows = top + ((np.arange(values.shape[0]) + 0.5) * (bottom - top) / values.shape[0]).astype(int)
        cells = shown[np.ix_(rows, frames)] * step  # each cell's colour, within a pixel of its row
        padded = np.pad(values, ((1, 1), (0, 0)), mode="edge")
        low = np.minimum(np.minimum(padded[:-2], padded[1:-1]), padded[2:])
        high = np.maximum(np.maximum(padded[:-2], padded[1:-1]), padded[2:])
        assert ((cells >= low - 2 * step) & (cells <= high + 2 * step)).all()


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


def test_a_video_cut_mid_gop_gets_no_wrong_times(clip, tmp_path):
    """Its first packets need a keyframe it does not hold: ffmpeg decodes fewer frames than there are packets,
    so the packets' times are not the frames' (which frames are missing is not known)."""
    cut = tmp_path / "cut.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip), "-c:v", "copy", "-bsf:v", "noise=drop=lt(n\\,3)", str(cut)], check=True)
    packets = len(frame_times_of_packets(cut))
    result = foreground_video(cut, tmp_path / "clean.mp4", data=tmp_path / "motion.tsv", motiongram=tmp_path / "motiongram.png", jobs=2)
    assert 0 < result.frames < packets  # the case: the frames before the first keyframe are not output
    rows = read_tsv(result.data)
    assert len(rows) == result.frames and all(row["time"] is None for row in rows)
    assert any(f"decoded {result.frames} frames but the video has {packets}" in warning and "--data without times" in warning for warning in result.warnings), result.warnings
    assert Image.open(result.motiongram).format == "PNG"


def test_a_video_decoding_to_no_frame_leaves_no_output(clip, tmp_path, monkeypatch):
    import magicmask.video

    monkeypatch.setattr(magicmask.video, "_stream", lambda *args, **kwargs: 0)  # every packet undecodable
    with pytest.raises(MagicmaskError, match="decoded no frame"):
        foreground_video(clip, tmp_path / "clean.mp4", masks=tmp_path / "masks.mp4", data=tmp_path / "motion.tsv", motiongram=tmp_path / "motiongram.png", jobs=2)
    assert list(tmp_path.iterdir()) == [] and leftovers(tmp_path) == []
