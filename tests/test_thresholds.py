"""Thresholds from the video's own noise: the per-pixel threshold map and the automatic threshold.

The map's mask chain is checked against the real ``convert`` (ImageMagick 6.9.11 Q16) running::

    convert BG FRAME -compose difference -composite -colorspace gray MAP -compose minus_src -composite \\
        -threshold 0 -blur 0x3 -threshold 20% -blur 0x3 NAME-mask.tiff
    convert FRAME NAME-mask.tiff -compose multiply -flatten NAME-clean.jpg

on 8- and 16-bit frames: mask pixels and form exact (bytes too), clean JPEG bytes exact, for both engines.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import tifffile


from magicmask.engines import native
from magicmask.engines import wand as wand_engine
from magicmask.errors import MagicmaskError
from magicmask.params import MaskParams

CONVERT = "/usr/bin/convert"
WEIGHTS = (0.212656, 0.715158, 0.072186)


def convert(*args) -> None:
    done = subprocess.run([CONVERT, *map(str, args)], capture_output=True, text=True)
    assert done.returncode == 0, f"convert {' '.join(map(str, args))} failed: {done.stderr}"


def seed_mask_and_clean(background, frame, folder: Path, params: MaskParams) -> tuple[bytes, bytes]:
    mask, clean = folder / "ref-mask.tiff", folder / "ref-clean.jpg"
    convert(background, frame, "-compose", "difference", "-composite", *params.convert_options(), mask)
    convert(frame, mask, "-compose", "multiply", "-flatten", clean)
    return mask.read_bytes(), clean.read_bytes()


def write_tiff(path, pixels, compression=None):
    photometric = "minisblack" if pixels.ndim == 2 or pixels.shape[2] == 1 else "rgb"
    tifffile.imwrite(path, pixels, photometric=photometric, compression=compression, metadata=None, resolution=(72, 72), resolutionunit="INCH")
    return Path(path)


def quantum_intensity(background: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """ClampToQuantum of the difference's Rec. 709 luma, in plain NumPy (the test's own arithmetic)."""
    scale = 257 if background.dtype == np.uint8 else 1
    d = np.abs(background.astype(np.int64) - frame.astype(np.int64)).astype(np.float64) * scale
    intensity = WEIGHTS[0] * d[..., 0] + WEIGHTS[1] * d[..., 1] + WEIGHTS[2] * d[..., 2]
    return np.where(intensity <= 0, 0, np.where(intensity >= 65535, 65535, np.floor(intensity + 0.5))).astype(np.int64)


def boundary_case(rng, width, height, deep):
    """A background, a frame and a map whose values sit on, just below and just above the rounded
    intensity of the difference (gray differences make the intensity a multiple of 257 exactly)."""
    top = 65535 if deep else 255
    dtype = np.uint16 if deep else np.uint8
    background = rng.integers(0, top + 1, (height, width, 3))
    step = rng.integers(-top // 8, top // 8 + 1, (height, width, 1))
    colour = rng.integers(-top // 8, top // 8 + 1, (height, width, 3))
    delta = np.where(rng.random((height, width, 1)) < 0.5, step, colour)  # half gray differences
    frame = np.clip(background + delta, 0, top).astype(dtype)
    background = background.astype(dtype)
    gray = quantum_intensity(background, frame)
    if deep:
        limit = gray + rng.integers(-2, 3, gray.shape)
    else:
        limit = gray // 257 + rng.integers(-1, 2, gray.shape)
    limit = np.where(rng.random(gray.shape) < 0.2, rng.integers(0, top + 1, gray.shape), limit)
    return background, frame, np.clip(limit, 0, top).astype(dtype)


@pytest.fixture(scope="module", params=[False, True], ids=["8-bit", "16-bit"])
def boundary_files(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("boundary")
    rng = np.random.default_rng(15 + request.param)
    background, frame, limit = boundary_case(rng, 67, 45, request.param)
    return write_tiff(folder / "bg.tiff", background), write_tiff(folder / "t01.tiff", frame), write_tiff(folder / "threshold.tiff", limit), (background, frame, limit)


def test_map_threshold_is_intensity_rounded_to_quantum_above_the_map(boundary_files, tmp_path):
    """The first step alone, by convert: white exactly where ClampToQuantum(luma) > the map's Quantum."""
    bg, frame, limit_path, (background, pixels, limit) = boundary_files
    out = tmp_path / "first.tiff"
    convert(bg, frame, "-compose", "difference", "-composite", "-colorspace", "gray", limit_path, "-compose", "minus_src", "-composite", "-threshold", "0", "-depth", "16", out)
    scale = 257 if limit.dtype == np.uint8 else 1
    expected = np.where(quantum_intensity(background, pixels) > limit.astype(np.int64) * scale, 65535, 0)
    got = tifffile.imread(out)
    assert got.ndim == 2
    np.testing.assert_array_equal(got, expected)
    assert 0 < (expected > 0).mean() < 1


@pytest.mark.parametrize("engine", ["native", "wand"])
def test_mask_with_map_matches_convert(boundary_files, engine, tmp_path):
    bg, frame, limit_path, _ = boundary_files
    params = MaskParams(threshold_map=str(limit_path))
    module = native if engine == "native" else wand_engine
    background = module.load_background(bg)
    try:
        mask, clean = module.render_frame(background, frame, params)
    finally:
        if engine == "wand":
            background.close()
    ref_mask, ref_clean = seed_mask_and_clean(bg, frame, tmp_path, params)
    assert_same_tiff(mask, ref_mask)
    assert clean == ref_clean


def assert_same_tiff(ours: bytes, reference: bytes) -> None:
    forms = []
    for data in (ours, reference):
        with tifffile.TiffFile(__import__("io").BytesIO(data)) as tif:
            page = tif.pages[0]
            forms.append(((page.bitspersample, page.samplesperpixel, int(page.photometric), int(page.compression)), page.asarray()))
    assert forms[0][0] == forms[1][0]
    np.testing.assert_array_equal(forms[0][1], forms[1][1])
    assert ours == reference
