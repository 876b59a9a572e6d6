"""ImageMagick is needed only by the wand engine and `check`: frames are read, and (without ImageMagick)
backgrounds and threshold maps written, by the native engine's TIFF code, with the samples ImageMagick has."""

import subprocess
from pathlib import Path

import numpy as np
import pytest

from magicmask import statistics, thresholds
from magicmask.engines import native, wand
from magicmask.errors import MagicmaskError
from magicmask.options import Options

WALK = Path(__file__).resolve().parent.parent / "golden" / "walk.mp4"
FORMATS = ("rgb24", "rgb48le", "gray", "gray16le")
COMPRESSIONS = ("None", "LZW", "Zip", "RLE")


@pytest.fixture(scope="module")
def tiffs(tmp_path_factory) -> dict[str, Path]:
    """A keyframe in each pixel format ffmpeg writes, and as convert rewrites it in each compression."""
    folder = tmp_path_factory.mktemp("forms")
    made = {}
    for pix_fmt in FORMATS:
        keyframe = folder / f"{pix_fmt}.tiff"
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(WALK), "-frames:v", "1", "-pix_fmt", pix_fmt, str(keyframe)], check=True)
        made[pix_fmt] = keyframe
        for compression in COMPRESSIONS:
            out = folder / f"{pix_fmt}-{compression}.tiff"
            subprocess.run(["/usr/bin/convert", str(keyframe), "-compress", compression, str(out)], check=True)
            made[f"{pix_fmt}-{compression}"] = out
    return made


def wand_samples(path: Path) -> np.ndarray:
    """The samples as ImageMagick reads them (the way read_frame read every frame before)."""
    with wand.read_tiff(path) as image:
        width, height, raw_format, channels, depth = statistics._layout(image)
        with image.clone() as copy:
            copy.depth = depth
            copy.options["endian"] = "LSB"
            raw = copy.make_blob(raw_format)
    return np.frombuffer(raw, dtype="<u2" if depth == 16 else np.uint8).reshape(height, width, channels)


@pytest.mark.parametrize("form", [*FORMATS, *(f"{f}-{c}" for f in FORMATS for c in COMPRESSIONS)])
def test_frames_are_read_with_the_samples_imagemagick_reads(tiffs, form):
    ours = statistics.read_frame(tiffs[form])
    expected = wand_samples(tiffs[form])
    assert ours.dtype == expected.dtype and ours.shape == expected.shape
    np.testing.assert_array_equal(ours, expected)


@pytest.mark.parametrize("form", [*FORMATS, *(f"{f}-{c}" for f in FORMATS for c in COMPRESSIONS)])
def test_backgrounds_without_imagemagick_hold_the_same_samples(tiffs, form, tmp_path, monkeypatch):
    template = tiffs[form]
    shape = statistics.read_frame(template).shape
    rng = np.random.default_rng(len(form))
    dtype = np.uint8 if "16" not in form and "48" not in form else np.uint16
    random = rng.integers(0, np.iinfo(dtype).max + 1, shape).astype(dtype)
    gray = np.repeat(random[:, :, :1], shape[2], axis=2)
    for name, pixels in (("random", random), ("gray", gray)):
        with_imagemagick = statistics.write_background(pixels, tmp_path / f"{name}-wand.tiff", template).read_bytes()
        monkeypatch.setattr(wand, "available", lambda: False)
        without = statistics.write_background(pixels, tmp_path / f"{name}-native.tiff", template)
        monkeypatch.undo()
        np.testing.assert_array_equal(wand_samples(without)[..., :1] if name == "gray" else wand_samples(without), pixels[..., :1] if name == "gray" else pixels)
        if not form.endswith(("-LZW", "-Zip")):  # the very bytes of ImageMagick's clone (LZW/Deflate: its encoders')
            assert without.read_bytes() == with_imagemagick


def test_a_threshold_map_without_imagemagick_is_the_same_map(tiffs, tmp_path, monkeypatch):
    limit = np.random.default_rng(9).integers(13, 256, (*statistics.read_frame(tiffs["rgb24"]).shape[:2], 1)).astype(np.uint8)
    expected = thresholds.write_threshold_map(limit, tmp_path / "wand.tiff", tiffs["rgb24"])
    monkeypatch.setattr(wand, "available", lambda: False)
    ours = thresholds.write_threshold_map(limit, tmp_path / "native.tiff", tiffs["rgb24"])
    assert ours.read_bytes() == expected.read_bytes()
    np.testing.assert_array_equal(native.read_picture(ours).samples, limit)


def test_the_wand_engine_without_imagemagick_says_what_to_install(monkeypatch):
    monkeypatch.setattr(wand, "available", lambda: False)
    with pytest.raises(MagicmaskError, match="--engine wand needs ImageMagick") as raised:
        Options(engine="wand")
    assert "--engine native" in str(raised.value)
    Options(engine="native")


def test_the_byte_aligning_imagemagicks_ifd_is_written_as_zero(tiffs, tmp_path):
    """ImageMagick's in-memory TIFF leaves the IFD's alignment byte as whatever memory held (runs of
    write_threshold_map differed there at random): it is set to 0, as in a file convert writes."""
    limit = np.random.default_rng(9).integers(13, 256, (*statistics.read_frame(tiffs["rgb24"]).shape[:2], 1)).astype(np.uint8)
    written = thresholds.write_threshold_map(limit, tmp_path / "map.tiff", tiffs["rgb24"]).read_bytes()
    ifd = int.from_bytes(written[4:8], "little")
    assert ifd % 2 == 0 and written[ifd - 1] == 0
    dirty = written[: ifd - 1] + b"\xab" + written[ifd:]
    assert statistics._zero_alignment_byte(dirty) == written
    assert [thresholds.write_threshold_map(limit, tmp_path / f"again{i}.tiff", tiffs["rgb24"]).read_bytes() for i in range(4)] == [written] * 4


@pytest.mark.parametrize("imagemagick", [True, False], ids=["through Wand", "native"])
def test_a_background_of_another_size_is_refused_naming_the_template(tiffs, tmp_path, monkeypatch, imagemagick):
    if not imagemagick:
        monkeypatch.setattr(wand, "available", lambda: False)
    small = np.zeros((10, 12, 3), np.uint8)
    with pytest.raises(MagicmaskError, match=r"background is 12x10x3 but the frames are 160x120x3") as raised:
        statistics.write_background(small, tmp_path / "background.tiff", tiffs["rgb24"])
    assert raised.value.path == str(tiffs["rgb24"]) and not (tmp_path / "background.tiff").exists()
