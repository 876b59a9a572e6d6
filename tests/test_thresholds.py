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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


from magicmask import thresholds
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


# --------------------------------------------------------------------------------------------------
# the kernels against the test's own arithmetic (no convert): every depth, gray and RGB


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), deep=st.booleans(), gray=st.booleans())
def test_map_kernel_is_rounded_intensity_above_the_map(seed, deep, gray):
    rng = np.random.default_rng(seed)
    background, frame, limit = boundary_case(rng, int(rng.integers(1, 9)), int(rng.integers(1, 9)), deep)
    if gray:
        background, frame = background[:, :, :1], frame[:, :, :1]
    wide = lambda a: a if a.shape[2] == 3 else np.repeat(a, 3, axis=2)  # noqa: E731
    scale = 257 if limit.dtype == np.uint8 else 1
    quantum = limit.astype(np.uint16) * np.uint16(scale)
    out = np.empty(quantum.shape, np.uint16)
    native.difference_map_threshold(native.Picture(background), native.Picture(frame), quantum, out)
    expected = np.where(quantum_intensity(wide(background), wide(frame)) > quantum, 65535, 0)
    np.testing.assert_array_equal(out, expected)
    intensity = thresholds.difference_intensity(frame, background)[:, :, 0]
    gray_quantum = quantum_intensity(wide(background), wide(frame))
    np.testing.assert_array_equal(intensity, native.to_char(gray_quantum.astype(np.uint16)) if scale == 257 else gray_quantum)


# --------------------------------------------------------------------------------------------------
# learning the map and the automatic threshold


def noisy_frames(rng, count, deep=False, width=23, height=17):
    """Frames of a still scene with per-pixel noise of varying strength and a square moving across."""
    top = 65535 if deep else 255
    scene = rng.integers(top // 4, 3 * top // 4, (height, width, 3))
    strength = np.where(np.arange(width) < width // 2, top // 100, top // 12)[None, :, None]
    frames = []
    for i in range(count):
        frame = scene + np.rint(rng.normal(0.0, 1.0, (height, width, 1)) * strength).astype(np.int64)
        x = (2 * i) % (width - 4)
        frame[5:9, x : x + 4] = top - 3
        frames.append(np.clip(frame, 0, top).astype(np.uint16 if deep else np.uint8))
    return frames


def reference_map(frames, background, k=thresholds.K):
    """The map by sorting, in plain NumPy."""
    deep = background.dtype == np.uint16
    wide = lambda a: np.repeat(a, 3 // a.shape[2], axis=2)  # noqa: E731
    quanta = np.stack([quantum_intensity(wide(background), wide(frame)) for frame in frames])
    values = quanta if deep else ((quanta + 128) - ((quanta + 128) >> 8)) >> 8
    n = len(frames)
    spread = np.sort(values, axis=0)[(n - 1) // 2]
    floor = np.sort(values.ravel())[(values.size - 1) // 2]
    top = 65535 if deep else 255
    lowest = 3276 if deep else 13  # the blog's 5% (g > 3276.8 is g > 3276 for integer g); 8-bit maps step by 257
    limit = np.minimum(np.maximum(k * np.maximum(spread, floor), lowest), top)
    padded = np.pad(limit, 1, mode="edge")  # the largest of each 3x3 neighbourhood, by looking at all nine
    return np.max([padded[1 + dy : 1 + dy + limit.shape[0], 1 + dx : 1 + dx + limit.shape[1]] for dy in (-1, 0, 1) for dx in (-1, 0, 1)], axis=0)[:, :, None]


@pytest.mark.parametrize("band_rows", [None, 1, 3], ids=["one band", "bands of 1 row", "bands of 3 rows"])
@pytest.mark.parametrize("deep", [False, True], ids=["8-bit", "16-bit"])
def test_threshold_map_is_k_times_the_median_deviation_floored_by_the_global_one(deep, band_rows, monkeypatch):
    rng = np.random.default_rng(3)
    frames = noisy_frames(rng, 12, deep)
    if band_rows:  # the map is made band by band of rows: the same map whatever the bands
        monkeypatch.setattr(thresholds, "BAND_BYTES", frames[0][0].nbytes * len(frames) * band_rows)
    background, limit = thresholds.median_and_map(frames, threads=2)
    np.testing.assert_array_equal(thresholds.threshold_map(frames, background, threads=1), limit)
    np.testing.assert_array_equal(background, np.sort(np.stack(frames), axis=0)[5])
    np.testing.assert_array_equal(limit, reference_map(frames, background))
    assert limit.dtype == frames[0].dtype and limit.shape == frames[0].shape[:2] + (1,)
    # the noisy half gets a higher threshold than the quiet half; the moving square does not count
    assert np.median(limit[:, 12:]) > 3 * np.median(limit[:, :11])


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (4, 1), (5, 7)])
def test_neighbourhood_max_is_the_largest_of_each_3x3_window(shape):
    values = np.random.default_rng(sum(shape)).integers(0, 65536, (*shape, 1)).astype(np.uint16)
    got = thresholds.neighbourhood_max(values)
    assert got.dtype == values.dtype and got.shape == values.shape
    for y in range(shape[0]):
        for x in range(shape[1]):
            assert got[y, x, 0] == values[max(0, y - 1) : y + 2, max(0, x - 1) : x + 2].max(), (y, x)


def test_one_pixel_of_spread_raises_its_neighbours_only():
    """A pixel whose difference swings on every frame lifts the threshold of the eight around it, not further."""
    rng = np.random.default_rng(6)
    frames = [np.full((9, 9, 3), 100, np.uint8) for _ in range(7)]
    for i, frame in enumerate(frames):
        frame[4, 4] = 100 + 60 * (i % 3 - 1) + int(rng.integers(0, 3))  # below, at and above its median in turn
    _, limit = thresholds.median_and_map(frames)
    high = limit[..., 0] > 13
    expected = np.zeros((9, 9), bool)
    expected[3:6, 3:6] = True
    np.testing.assert_array_equal(high, expected)


def test_median_and_map_use_the_sampled_frames_of_the_median():
    from magicmask.statistics import statistic

    frames = noisy_frames(np.random.default_rng(4), 9)
    background, limit = thresholds.median_and_map(iter(frames), count=9, samples=4)
    kept = [frame for i, frame in enumerate(frames) if (i * 4) % 9 < 4]
    np.testing.assert_array_equal(background, statistic(iter(frames), "median", 9, 4))
    np.testing.assert_array_equal(limit, reference_map(kept, background))
    with pytest.raises(MagicmaskError, match="single frame"):
        thresholds.median_and_map(frames[:1])


def test_window_maps_come_from_each_window_medians_frames():
    from magicmask.statistics import window_statistics

    frames = noisy_frames(np.random.default_rng(5), 14)
    ranges = [(0, 6), (3, 9), (3, 9), (8, 14)]
    expected = list(window_statistics(iter(frames), ranges, "median", 4, lambda: None))
    got = list(thresholds.window_medians_and_maps(iter(frames), ranges, samples=4))
    assert [k for k, *_ in got] == [0, 1, 2, 3]
    for (k, background), (_, ours, limit) in zip(expected, got):
        i0, i1 = ranges[k]
        np.testing.assert_array_equal(ours, background)
        kept = [frames[i] for i in range(i0, i1) if (i * 4) % 6 < 4]
        np.testing.assert_array_equal(limit, reference_map(kept, background))


def test_auto_threshold_is_k_times_the_median_deviation_as_a_quantum_value(tmp_path):
    frames = noisy_frames(np.random.default_rng(6), 6)
    background = np.sort(np.stack(frames), axis=0)[2]
    bg = write_tiff(tmp_path / "background.tiff", background)
    paths = [write_tiff(tmp_path / f"t{i + 1:02d}.tiff", frame) for i, frame in enumerate(frames)]
    text = thresholds.auto_threshold({path: bg for path in paths}, floor="1%")
    quanta = np.concatenate([quantum_intensity(background, frame).ravel() for frame in frames])
    value = thresholds.K * int(np.sort(quanta)[(quanta.size - 1) // 2])
    assert value > 655.36 and text == str(value)
    assert thresholds.auto_threshold({path: bg for path in paths}) == ("5%" if value <= 3276.8 else text)
    assert MaskParams(text).steps[0] == ("threshold", int(text) / 65536)
    assert thresholds.auto_threshold({path: bg for path in paths}, floor="50%") == "50%"  # never below the floor
    assert thresholds.threshold_text(70000) == "100%"


@pytest.mark.parametrize("deep", [False, True], ids=["8-bit", "16-bit"])
def test_written_map_is_gray_in_the_keyframes_form(deep, tmp_path):
    frames = noisy_frames(np.random.default_rng(7), 5, deep)
    template = write_tiff(tmp_path / "t01.tiff", frames[0], compression="packbits")
    background, limit = thresholds.median_and_map(frames)
    path = thresholds.write_threshold_map(limit, tmp_path / thresholds.MAP_NAME, template)
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        assert (page.bitspersample, page.samplesperpixel, int(page.photometric), int(page.compression)) == (16 if deep else 8, 1, 1, 32773)
        np.testing.assert_array_equal(page.asarray(), limit[:, :, 0])


# --------------------------------------------------------------------------------------------------
# end to end on a video: the map learned from its frames, masks by both engines against convert


@pytest.fixture(scope="module", params=[False, True], ids=["8-bit", "16-bit"])
def learned(request, tmp_path_factory):
    from magicmask.media.decode import iter_frames
    from magicmask.media.extract import extract_keyframes
    from magicmask.media.probe import video_info
    from magicmask.sample import make_sample_video
    from magicmask.statistics import write_background

    folder = tmp_path_factory.mktemp("learned")
    video = make_sample_video(folder / "clip.mp4", width=64, height=48, count=20, keyint=10, deep=request.param)
    frames = extract_keyframes(video, folder / "frames")
    info = video_info(video)
    background, limit = thresholds.median_and_map(iter_frames(video, info=info), info.frames)
    bg = write_background(background, folder / "background.tiff", frames[0])
    limit_path = thresholds.write_threshold_map(limit, folder / thresholds.MAP_NAME, frames[0])
    return frames, bg, limit_path


@pytest.mark.parametrize("mode", ["adaptive", "auto"])
@pytest.mark.parametrize("engine", ["native", "wand"])
def test_masks_with_learned_thresholds_match_convert(learned, engine, mode, tmp_path):
    from magicmask.check import run_seed_loop
    from magicmask.compare import compare_files
    from magicmask.masks import mask_frames

    frames, bg, limit_path = learned
    params = MaskParams(threshold_map=str(limit_path))
    if mode == "auto":
        params = MaskParams(thresholds.auto_threshold({frame: bg for frame in frames}, floor="0.5%"))
        assert params.threshold.isdigit()
    ours = mask_frames(frames, bg, tmp_path / engine, params, engine=engine, jobs=1)
    theirs = run_seed_loop(frames, bg, tmp_path / "convert", params)
    assert any(tifffile.imread(mask).any() for mask, _ in theirs)  # something moved
    for pair, reference in zip(ours, theirs):
        for output, expected in zip(pair, reference):
            assert compare_files(output, expected).identical
            assert output.read_bytes() == expected.read_bytes()


def test_map_of_another_size_or_not_gray_names_the_file(learned, tmp_path):
    frames, bg, _ = learned
    small = write_tiff(tmp_path / "small.tiff", np.zeros((5, 4), np.uint8))
    rgb = write_tiff(tmp_path / "rgb.tiff", np.zeros((48, 64, 3), np.uint8))
    for engine in (native, wand_engine):
        background = engine.load_background(bg)
        with pytest.raises(MagicmaskError, match="4x5") as error:
            engine.render_frame(background, frames[1], MaskParams(threshold_map=str(small)))
        assert error.value.path.endswith("small.tiff")
        with pytest.raises(MagicmaskError, match="not a gray image"):
            engine.render_frame(background, frames[1], MaskParams(threshold_map=str(rgb)))


def test_convert_options_with_a_map():
    params = MaskParams(threshold_map="out/threshold.tiff")
    assert params.convert_options() == ["-colorspace", "gray", "out/threshold.tiff", "-compose", "minus_src", "-composite", "-threshold", "0", "-blur", "0x3", "-threshold", "20%", "-blur", "0x3"]
    assert MaskParams().convert_options() == ["-threshold", "5%", "-blur", "0x3", "-threshold", "20%", "-blur", "0x3"]
    with pytest.raises(MagicmaskError):
        MaskParams(threshold_map=" ")


def test_a_16_bit_map_at_the_floor_is_the_blogs_5_percent_exactly(tmp_path):
    """g > 3276 is g > 3276.8 for integer g: with 16-bit frames the map's lowest value gives -threshold 5%'s masks."""
    from conftest import golden_frames
    from magicmask.compare import image_facts

    frames = golden_frames("walk10")
    limit = np.full((*image_facts(frames[0]).pixels.shape[:2], 1), 3276, dtype=np.uint16)
    limit_path = thresholds.write_threshold_map(limit, tmp_path / "threshold.tiff", frames[0])
    for frame in frames[1:]:
        with_map, _ = seed_mask_and_clean(frames[0], frame, tmp_path, MaskParams(threshold_map=str(limit_path)))
        (tmp_path / "map-mask.tiff").write_bytes(with_map)
        blog, _ = seed_mask_and_clean(frames[0], frame, tmp_path, MaskParams())
        (tmp_path / "blog-mask.tiff").write_bytes(blog)
        assert np.array_equal(image_facts(tmp_path / "map-mask.tiff").pixels, image_facts(tmp_path / "blog-mask.tiff").pixels), frame.name


def test_threshold_map_of_frames_of_another_size_says_so():
    frames = noisy_frames(np.random.default_rng(7), 5)
    background = frames[0]
    with pytest.raises(MagicmaskError, match="frame is 23x16x3 uint8 but the background is 23x17x3"):
        thresholds.threshold_map(frames[:2] + [frames[2][:16]], background)
    with pytest.raises(MagicmaskError, match="frame is 23x16x3"):
        thresholds.median_and_map(frames[:2] + [frames[2][:16]])
