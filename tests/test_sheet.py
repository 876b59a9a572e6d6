"""The contact sheet: a row of frame | mask | clean per keyframe, named, in one image."""

import shutil

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import GOLDEN, golden_frames
from magicmask.cli import app
from magicmask.engines import native
from magicmask.errors import MagicmaskError
from magicmask.masks import mask_frames
from magicmask.sheet import BACKGROUND, contact_sheet

runner = CliRunner()


def find(sheet: np.ndarray, tile: np.ndarray, right_of: int = -1):
    """(x, y) of an exact copy of ``tile`` in ``sheet`` (left of it ``right_of`` excluded), or None."""
    th, tw = tile.shape[:2]
    ys, xs = np.nonzero((sheet[: sheet.shape[0] - th + 1, : sheet.shape[1] - tw + 1] == tile[0, 0]).all(axis=-1))
    for y, x in zip(ys, xs):
        if x > right_of and np.array_equal(sheet[y : y + th, x : x + tw], tile):
            return int(x), int(y)
    return None


def runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of True."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8), [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def rgb(samples: np.ndarray) -> np.ndarray:
    samples = native.to_char(np.ascontiguousarray(samples))
    return np.repeat(samples, 3, axis=2) if samples.shape[2] == 1 else samples


@pytest.fixture
def folder(sample_frames, tmp_path):
    """A folder as ``magicmask run`` leaves it: 6 keyframes of 96x72 with their masks and clean images."""
    for frame in sample_frames:
        shutil.copy(frame, tmp_path / frame.name)
    frames = sorted(tmp_path.glob("t*.tiff"))
    mask_frames(frames, frames[0], jobs=1)
    return tmp_path


def test_sheet_shows_frame_mask_and_clean_of_every_keyframe_in_reading_order(folder):
    path = contact_sheet(folder, folder / "sheet.png", width=96)
    sheet = np.asarray(Image.open(path).convert("RGB"))
    frames = sorted(p for p in folder.glob("t??.tiff"))
    assert len(frames) == 6
    cells = []
    for frame in frames:
        tiles = [
            rgb(native.read_picture(frame).samples),
            rgb(native.read_picture(folder / f"{frame.stem}-mask.tiff").samples),
            np.asarray(Image.open(folder / f"{frame.stem}-clean.jpg").convert("RGB")),
        ]
        found = [find(sheet, tiles[0])]
        for tile in tiles[1:]:  # left to right: a black mask and a black clean image look the same
            found.append(find(sheet, tile, found[-1][0] if found[-1] else -1))
        assert None not in found, f"{frame.name}: a thumbnail is missing from the sheet"
        (x0, y0), (x1, y1), (x2, y2) = found
        assert y0 == y1 == y2 and x0 < x1 < x2 and x2 - x0 < 3 * 96 + 3 * 6, "frame | mask | clean, side by side"
        cells.append((y0, x0))
        label = sheet[y0 - 18 : y0 - 2, x0 : x0 + 60]
        assert (label.max(axis=-1) > 200).any(), "each keyframe carries its name above it"
    assert cells == sorted(cells) and len(set(cells)) == 6, "keyframes in reading order, row by row"
    assert len({y for y, _ in cells}) < 6, "a grid: several keyframes on a row"


def test_thumbnails_are_scaled_to_the_width_asked(folder):
    sheet = Image.open(contact_sheet(folder, folder / "small.jpg", width=48))
    big = Image.open(contact_sheet(folder, folder / "big.jpg", width=200))
    assert sheet.format == "JPEG" and big.width > 2 * sheet.width and big.height > 1.5 * sheet.height


@pytest.mark.parametrize("count", [4, 68, 400])
def test_the_grid_stays_screen_shaped_and_thumbnails_keep_their_width(count, tmp_path):
    """4, 68 and 400 keyframes (of 320x240): the sheet's shape near 16:9 (4 keyframes can only be one column,
    0.8, or two, 3.1), thumbnails 240 pixels wide as asked (the sheet is a whole number of cells of that width), every
    keyframe drawn, within JPEG's limits."""
    import tifffile

    from magicmask.sheet import GAP, PAD

    frame = np.zeros((240, 320, 3), np.uint8)
    frame[60:180, 100:200] = (200, 120, 40)
    for number in range(1, count + 1):
        tifffile.imwrite(tmp_path / f"t{number:0{max(2, len(str(count)))}d}.tiff", frame, photometric="rgb")
    drawn = []
    sheet = Image.open(contact_sheet(tmp_path, tmp_path / "sheet.jpg", progress=drawn.append))
    aspect = sheet.width / sheet.height
    assert len(drawn) == count
    assert (0.8 <= aspect <= 3.2) if count == 4 else (1.2 <= aspect <= 2.4), f"{sheet.width}x{sheet.height}"
    cell = 3 * (240 + PAD) - PAD
    columns, rest = divmod(sheet.width - 2 * PAD + GAP, cell + GAP)
    assert rest == 0 and columns >= (1 if count == 4 else 4), f"{sheet.width} is not a whole number of 240-pixel cells"
    assert max(sheet.size) <= 65500


def test_sixteen_bit_frames_are_shown_as_imagemagick_scales_them(tmp_path):
    for frame in golden_frames("walk10"):
        shutil.copy(frame, tmp_path / frame.name)
        for suffix in ("-mask.tiff", "-clean.jpg"):
            shutil.copy(GOLDEN / "walk10" / "first" / f"{frame.stem}{suffix}", tmp_path)
    picture = native.read_picture(tmp_path / "t02.tiff")
    assert picture.depth == 16
    sheet = np.asarray(Image.open(contact_sheet(tmp_path, tmp_path / "s.png", width=picture.size[0])).convert("RGB"))
    assert find(sheet, rgb(picture.samples)) is not None
    assert find(sheet, rgb(native.read_picture(tmp_path / "t02-mask.tiff").samples)) is not None


def test_a_missing_clean_image_leaves_a_gap_not_a_failure(folder):
    (folder / "t03-clean.jpg").unlink()
    sheet = np.asarray(Image.open(contact_sheet(folder, folder / "s.png", width=96)).convert("RGB"))
    assert find(sheet, rgb(native.read_picture(folder / "t03.tiff").samples)) is not None


def test_sheet_command_writes_folder_sheet_jpg_by_default(folder):
    result = runner.invoke(app, ["sheet", str(folder), "-q"])
    assert result.exit_code == 0, result.output
    assert (folder / "sheet.jpg").exists() and Image.open(folder / "sheet.jpg").format == "JPEG"


def test_sheet_of_a_folder_without_keyframes_is_a_one_line_error(tmp_path):
    result = runner.invoke(app, ["sheet", str(tmp_path)])
    assert result.exit_code == 1 and "no keyframes" in result.output and str(tmp_path) in result.output
    assert "Traceback" not in result.output
    with pytest.raises(MagicmaskError, match="not a folder"):
        contact_sheet(tmp_path / "missing")


def test_pillow_reads_eight_bit_tiffs_as_tifffile_does(folder):
    """The sheet reads 8-bit RGB and gray TIFFs with Pillow (fast) and the rest with tifffile: same thumbnails."""
    from magicmask import sheet

    for path in (folder / "t03.tiff", folder / "t03-mask.tiff"):
        data = path.read_bytes()
        fast, general = sheet._pillow_tiff(data), sheet._tifffile_image(data)
        assert fast is not None and fast.mode == general.mode
        assert np.array_equal(np.asarray(fast), np.asarray(general))
        for image in (fast, general):
            image.thumbnail((40, 30), Image.Resampling.LANCZOS, reducing_gap=sheet.REDUCING_GAP)
        assert np.array_equal(np.asarray(fast.convert("RGB")), np.asarray(general.convert("RGB")))
    deep = golden_frames("walk10")[1].read_bytes()
    assert sheet._pillow_tiff(deep) is None  # 16-bit: tifffile's path, scaled as ImageMagick does


def test_a_batch_gets_an_index_sheet_of_every_video(tmp_path):
    """run_many writes ROOT/index.jpg; ``magicmask sheet ROOT`` writes it again."""
    import magicmask
    from magicmask.sheet import INDEX_NAME

    results = magicmask.run_many([GOLDEN / "walk.mp4", GOLDEN / "walk10.mp4"], tmp_path / "out")
    index = tmp_path / "out" / INDEX_NAME
    assert all(r.status == "done" for r in results) and Image.open(index).format == "JPEG"
    shown = np.asarray(Image.open(index).convert("RGB"))
    assert shown.shape[1] > shown.shape[0] * 0.5
    # A band of thumbnails per video (the clean images are mostly black), one thumbnail per keyframe (5 and 3:
    # all shown), each its keyframe's clean image and no other's; between them the sheet's gray.
    pixels = shown.astype(np.int32)
    bands = runs((pixels.max(axis=2) < 25).sum(axis=1) > 100)
    assert len(bands) == len(results), bands
    for (top, bottom), result in zip(bands, results):
        backdrop = (np.abs(pixels[top:bottom] - np.array(BACKGROUND)).max(axis=2) <= 10).mean(axis=0)
        tiles = runs(backdrop < 0.5)
        cleans = [result.folder / f"{frame.stem}-clean.jpg" for frame in result.keyframes]
        assert len(tiles) == len(cleans) == len(result.keyframes), (result.video.name, tiles)
        for number, (left, right) in enumerate(tiles):
            tile = pixels[top:bottom, left:right]
            wanted = [np.asarray(Image.open(clean).convert("RGB").resize((right - left, bottom - top), Image.Resampling.LANCZOS)).astype(np.int32) for clean in cleans]
            differences = [np.abs(tile - want).mean() for want in wanted]
            assert differences[number] < 2 and int(np.argmin(differences)) == number, (result.video.name, number, differences)
    index.unlink()
    result = runner.invoke(app, ["sheet", str(tmp_path / "out")])
    assert result.exit_code == 0 and "index sheet of 2 videos" in result.output and index.is_file()


def test_an_index_sheet_that_cannot_be_written_is_a_warning_not_the_batch_s_failure(tmp_path):
    """Every video's outputs are written by then: the results and the summary table are not lost."""
    import magicmask
    from magicmask.sample import make_sample_video
    from magicmask.sheet import INDEX_NAME

    videos = [make_sample_video(tmp_path / f"{name}.mp4", width=96, height=72, count=10, keyint=5) for name in ("a", "b")]
    (tmp_path / "out" / INDEX_NAME).mkdir(parents=True)  # where the index sheet goes: it cannot be written
    result = runner.invoke(app, ["run", *map(str, videos), "-o", str(tmp_path / "out"), "-q"])
    assert result.exit_code == 0, result.output
    assert "status" in result.output and "Traceback" not in result.output  # the summary table
    assert "warning: the index sheet was not written" in result.output and "index sheet" + " " + str(tmp_path) not in result.output
    with pytest.warns(RuntimeWarning, match="the index sheet was not written"):
        results = magicmask.run_many(videos, tmp_path / "out")
    assert [r.status for r in results] == ["up to date", "up to date"]


def test_an_index_sheet_of_one_keyframe_per_video_shows_the_middle_one(folder):
    from magicmask.sheet import index_sheet

    sheet = np.asarray(Image.open(index_sheet([folder, folder], folder / "index.png", width=96, shown=1)).convert("RGB"))
    frames = sorted(p for p in folder.glob("t??.tiff"))
    middle = np.asarray(Image.open(folder / f"{frames[2].stem}-clean.jpg").convert("RGB"))
    assert middle.any()  # not a black clean image: found only where it is shown
    first = find(sheet, middle)
    assert first is not None and find(sheet, middle, first[0]) is not None  # once per video
    with pytest.raises(MagicmaskError, match="at least one keyframe"):
        index_sheet([folder], folder / "index.png", shown=0)


def test_keyframes_spread_over_a_video():
    from magicmask.sheet import spread

    assert spread(6, 1) == [2] and spread(1, 1) == [0] and spread(6, 2) == [0, 5] and spread(3, 6) == [0, 1, 2]
    assert spread(11, 6) == [0, 2, 4, 6, 8, 10] and spread(0, 6) == []


@pytest.mark.parametrize("deep", [False, True], ids=["8-bit", "16-bit"])
def test_a_run_makes_the_sheet_from_thumbnails_made_while_rendering_the_same_as_from_the_files(tmp_path, monkeypatch, deep):
    """``run`` makes each keyframe's thumbnails in its render thread, from the samples and bytes in hand: no
    file is read again for the sheet, and the sheet is the one ``magicmask sheet`` makes from the files."""
    import magicmask
    from magicmask import sheet
    from magicmask.sample import make_sample_video

    video = make_sample_video(tmp_path / "clip.mp4", width=500, height=282, count=30, keyint=10, deep=deep)  # shrunk: reduce, Lanczos, JPEG draft
    opened = []
    real_open = sheet._open
    monkeypatch.setattr(sheet, "_open", lambda path, box: opened.append(path) or real_open(path, box))
    result = magicmask.run(video, tmp_path / "out")
    assert result.sheet is not None and opened == []
    from_files = contact_sheet(result.folder, tmp_path / "from-files.jpg")
    assert len(opened) == 1 + 3 * len(result.keyframes)  # the first frame for its shape, then every cell
    assert from_files.read_bytes() == result.sheet.read_bytes()
