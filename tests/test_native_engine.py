"""The native engine against the real ``convert`` and against the Wand engine: exact comparisons only.

Masks are compared by their decoded pixels and their form (bits per sample, samples per pixel,
photometric, compression) and, for uncompressed and PackBits files, by their bytes; JPEGs by their
bytes. The reference binary is /usr/bin/convert (ImageMagick 6.9.11 Q16).
"""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from magicmask import sample
from magicmask.media import extract as keyframes
from magicmask.engines import native
from magicmask.engines import wand as wand_engine
from magicmask.errors import MagicmaskError
from magicmask.params import MaskParams

CONVERT = "/usr/bin/convert"  # the real ImageMagick; /usr/local/bin/convert may be a stand-in


def convert(*args, cwd=None) -> None:
    done = subprocess.run([CONVERT, *map(str, args)], capture_output=True, text=True, cwd=cwd)
    assert done.returncode == 0, f"convert {' '.join(map(str, args))} failed: {done.stderr}"


def seed_mask_and_clean(background, frame, folder: Path, params: MaskParams = MaskParams()) -> tuple[bytes, bytes]:
    """The seed's two loop commands, run by the real convert; returns the files' bytes."""
    mask, clean = folder / "ref-mask.tiff", folder / "ref-clean.jpg"
    convert(background, frame, "-compose", "difference", "-composite", *params.convert_options(), mask)
    convert(frame, mask, "-compose", "multiply", "-flatten", clean)
    return mask.read_bytes(), clean.read_bytes()


def tiff_form_and_pixels(data: bytes):
    """``((bits, samples, photometric, compression, shape, dtype), pixels)`` of a TIFF file's first image."""
    with tempfile.NamedTemporaryFile(suffix=".tiff") as handle:
        handle.write(data)
        handle.flush()
        with tifffile.TiffFile(handle.name) as tif:
            page = tif.pages[0]
            pixels = page.asarray()
            form = (page.bitspersample, page.samplesperpixel, int(page.photometric), int(page.compression), pixels.shape, pixels.dtype.str)
    return form, pixels


def assert_same_tiff(ours: bytes, reference: bytes, bytes_too: bool = True) -> None:
    our_form, our_pixels = tiff_form_and_pixels(ours)
    ref_form, ref_pixels = tiff_form_and_pixels(reference)
    assert our_form == ref_form
    np.testing.assert_array_equal(our_pixels, ref_pixels)
    if bytes_too:
        assert ours == reference


# --------------------------------------------------------------------------------------------------
# sample keyframes (8-bit and 10-bit clips, as the pipeline extracts them)


@pytest.fixture(scope="module", params=[False, True], ids=["8-bit", "16-bit"])
def sample_frames(request, tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("deep" if request.param else "plain")
    video = sample.make_sample_video(folder / "clip.mp4", width=160, height=120, count=40, keyint=10, deep=request.param)
    frames = keyframes.extract_keyframes(video, folder / "frames")
    assert len(frames) == 4
    depth = tifffile.TiffFile(frames[0]).pages[0].bitspersample
    assert depth == (16 if request.param else 8)
    return frames


def test_mask_and_clean_match_convert_on_sample_keyframes(sample_frames, tmp_path):
    background = native.load_background(sample_frames[0])
    for frame in sample_frames:  # the first frame against itself gives an all-black mask and a gray JPEG
        mask, clean = native.render_frame(background, frame)
        ref_mask, ref_clean = seed_mask_and_clean(sample_frames[0], frame, tmp_path)
        assert_same_tiff(mask, ref_mask)
        assert clean == ref_clean


def test_mask_and_clean_match_convert_with_the_lighten_background(sample_frames, tmp_path):
    """The pipeline's adaptive case: convert's own background.tiff as the background of every frame."""
    background_path = tmp_path / "background.tiff"
    convert(*sample_frames, "-background", "black", "-compose", "lighten", "-flatten", background_path)
    background = native.load_background(background_path)
    for frame in sample_frames:
        mask, clean = native.render_frame(background, frame, background_path=background_path)
        ref_mask, ref_clean = seed_mask_and_clean(background_path, frame, tmp_path)
        assert_same_tiff(mask, ref_mask)
        assert clean == ref_clean


def test_native_matches_wand_engine_on_sample_keyframes(sample_frames):
    ours_background = native.load_background(sample_frames[0])
    with wand_engine.load_background(sample_frames[0]) as theirs_background:
        for frame in sample_frames:
            assert native.render_frame(ours_background, frame) == wand_engine.render_frame(theirs_background, frame)


def test_frames_rendered_in_threads_match_serial_rendering(sample_frames):
    background = native.load_background(sample_frames[0])
    serial = [native.render_frame(background, frame) for frame in sample_frames]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda frame: native.render_frame(background, frame), sample_frames))
    assert threaded == serial


# --------------------------------------------------------------------------------------------------
# folds: the adaptive background and the keyframe display


def test_lighten_fold_matches_convert_flatten(sample_frames, tmp_path):
    reference = tmp_path / "background.tiff"
    convert(*sample_frames, "-background", "black", "-compose", "lighten", "-flatten", reference)
    fold = native.Fold("lighten", "black")
    for frame in sample_frames:
        fold.add_file(frame)
    assert fold.count == len(sample_frames)
    assert_same_tiff(fold.encode("tiff"), reference.read_bytes())
    fold.close()


def test_darken_fold_matches_convert_flatten(sample_frames, tmp_path):
    jpeg, tiff = tmp_path / "keyframes.jpg", tmp_path / "keyframes.tiff"
    convert(*sample_frames, "-background", "white", "-compose", "darken", "-flatten", jpeg)
    convert(*sample_frames, "-background", "white", "-compose", "darken", "-flatten", tiff)
    fold = native.Fold("darken", "white")
    for frame in sample_frames:
        fold.add_file(frame)
    assert fold.encode("jpeg") == jpeg.read_bytes()
    assert_same_tiff(fold.encode("tiff"), tiff.read_bytes())


@pytest.mark.parametrize("compose, colour", [("lighten", "black"), ("darken", "white")])
def test_partial_folds_combine_to_the_whole_fold(sample_frames, compose, colour):
    whole = native.Fold(compose, colour)
    for frame in sample_frames:
        whole.add_file(frame)
    first, second, empty = native.Fold(compose, colour), native.Fold(compose, colour), native.Fold(compose, colour)
    for frame in sample_frames[:1]:
        first.add_file(frame)
    for frame in sample_frames[1:]:
        second.add_file(frame)
    empty.combine(first)
    empty.combine(second)
    assert empty.count == whole.count == len(sample_frames)
    assert empty.encode("tiff") == whole.encode("tiff")
    assert empty.encode("jpeg") == whole.encode("jpeg")


# --------------------------------------------------------------------------------------------------
# generated frames: odd sizes, flat and noisy, 8 and 16 bits, gray and RGB, every compression


def make_pair(rng, width, height, deep=False, gray=False, kind="noisy"):
    """A background and a frame that differs from it in a random region."""
    top = 65535 if deep else 255
    shape = (height, width) if gray else (height, width, 3)
    if kind == "flat":
        background = np.full(shape, int(rng.integers(0, top + 1)))
    elif kind == "smooth":
        background = np.clip(rng.normal(top / 2, top / 5, shape), 0, top)
    else:
        background = rng.integers(0, top + 1, shape)
    background = background.astype(np.uint16 if deep else np.uint8)
    if kind == "sparse":  # a few small moving patches: most of a wide frame stays exactly 0 in the mask
        moved = np.zeros((height, width), dtype=bool)
        for _ in range(int(rng.integers(0, 4))):
            y, x = int(rng.integers(0, height)), int(rng.integers(0, width))
            moved[y : y + int(rng.integers(1, 6)), x : x + int(rng.integers(1, 6))] = True
    else:
        moved = rng.random((height, width)) < rng.uniform(0.05, 0.9)
    if not gray:
        moved = moved[:, :, None]
    shifted = np.clip(background.astype(np.int64) + rng.integers(-top // 2, top // 2 + 1, shape), 0, top)
    frame = np.where(moved, shifted, background).astype(background.dtype)
    return background, frame


def write_tiff(path, pixels, compression=None, resolution=((72, 72), "INCH"), description=None):
    options = dict(photometric="minisblack" if pixels.ndim == 2 else "rgb", compression=compression, metadata=None, description=description)
    if resolution is not None:
        options.update(resolution=resolution[0], resolutionunit=resolution[1])
    tifffile.imwrite(path, pixels, **options)
    return Path(path)


ODD_CASES = [
    # width, height, deep, gray, kind, compression, resolution, description
    (1, 1, False, False, "noisy", None, None, None),
    (1, 1, True, False, "flat", "packbits", ((72, 72), "INCH"), None),
    (7, 5, False, False, "noisy", "packbits", ((72, 72), "INCH"), None),
    (7, 5, True, False, "noisy", None, ((300, 300), "CENTIMETER"), None),
    (7, 5, False, True, "noisy", None, ((1, 1), "NONE"), None),
    (1, 30, False, False, "smooth", "packbits", ((72.7, 72.7), "INCH"), "a description"),
    (40, 1, True, True, "noisy", "packbits", ((96, 300), "INCH"), None),
    (40, 30, False, False, "flat", None, None, "flat frames"),
    (40, 30, True, False, "smooth", "packbits", ((72, 72), "INCH"), None),
    (33, 17, False, False, "noisy", "lzw", ((72, 72), "INCH"), None),
    (33, 17, True, False, "noisy", "zlib", ((72, 72), "INCH"), None),
    (13, 11, False, True, "smooth", "zlib", None, None),
    (30, 20, False, False, "noisy", 32946, None, None),  # old-style Deflate: convert writes it as Adobe Deflate (8)
]


@pytest.mark.parametrize("width, height, deep, gray, kind, compression, resolution, description", ODD_CASES)
def test_generated_frames_match_convert(tmp_path, width, height, deep, gray, kind, compression, resolution, description):
    rng = np.random.default_rng(width * 1000 + height + deep)
    pixels = make_pair(rng, width, height, deep, gray, kind)
    background_path, frame_path = (write_tiff(tmp_path / name, p, compression, resolution, description) for name, p in zip(("bg.tif", "frame.tif"), pixels))
    for params in (MaskParams(), MaskParams("1%", "2x1", "50%", "0x0.5")):
        mask, clean = native.render_frame(native.load_background(background_path), frame_path, params)
        ref_mask, ref_clean = seed_mask_and_clean(background_path, frame_path, tmp_path, params)
        # LZW and Deflate: same pixels and form; the encoders' bytes may differ from libtiff's
        assert_same_tiff(mask, ref_mask, bytes_too=compression in (None, "packbits"))
        assert clean == ref_clean
    reference = tmp_path / "lighten.tiff"
    convert(background_path, frame_path, "-background", "black", "-compose", "lighten", "-flatten", reference)
    fold = native.Fold("lighten", "black")
    fold.add_file(background_path)
    fold.add_file(frame_path)
    assert_same_tiff(fold.encode("tiff"), reference.read_bytes(), bytes_too=compression in (None, "packbits"))
    reference = tmp_path / "darken.jpg"
    convert(background_path, frame_path, "-background", "white", "-compose", "darken", "-flatten", reference)
    fold = native.Fold("darken", "white")
    fold.add_file(background_path)
    fold.add_file(frame_path)
    assert fold.encode("jpeg") == reference.read_bytes()


class Chain:
    """A chain other than MaskParams' four steps (the engine reads only ``steps``)."""

    def __init__(self, *options: str):
        self.options = list(options)
        self.steps = []
        for flag, value in zip(options[::2], options[1::2]):
            if flag == "-threshold":
                self.steps.append(("threshold", float(value.rstrip("%")) / 100.0))
            else:
                radius, sigma = value.split("x")
                self.steps.append(("blur", (float(radius), float(sigma))))

    def convert_options(self) -> list[str]:
        return self.options


@pytest.mark.parametrize(
    "options",
    [("-blur", "0x1"), ("-blur", "0x1", "-threshold", "10%", "-blur", "0x2"), ("-threshold", "10%"), ("-blur", "2x1", "-blur", "0x0.5")],
    ids=["blur only", "blur first", "threshold only", "two blurs"],
)
def test_other_chains_match_convert(tmp_path, options):
    """Chains that blur before thresholding keep RGB masks: written as RGB TIFFs, multiplied per channel."""
    background, frame = make_pair(np.random.default_rng(5), 23, 19, kind="smooth")
    background_path, frame_path = write_tiff(tmp_path / "bg.tif", background, "packbits"), write_tiff(tmp_path / "frame.tif", frame, "packbits")
    chain = Chain(*options)
    mask, clean = native.render_frame(native.load_background(background_path), frame_path, chain)
    ref_mask, ref_clean = seed_mask_and_clean(background_path, frame_path, tmp_path, chain)
    assert_same_tiff(mask, ref_mask)
    assert clean == ref_clean


@pytest.mark.parametrize("geometry", ["0x3", "0x0.5", "0x1", "0x2", "0x7.5", "2x1", "0.5x2", "4x0.5"])
def test_blur_kernel_width_matches_convert(tmp_path, geometry):
    done = subprocess.run([CONVERT, "xc:black", "-define", "showkernel=1", "-blur", geometry, "null:"], capture_output=True, text=True)
    line = next(line for line in done.stderr.splitlines() if line.startswith("Kernel #0"))
    width = int(line.split(" of size ")[1].split("x")[0])
    radius, sigma = (float(part) for part in geometry.split("x"))
    kernel = native.blur_kernel(radius, sigma)
    assert len(kernel) == width
    printed = [float(value) for value in done.stderr.split("Kernel #0")[1].splitlines()[2].split(":")[1].split()]
    np.testing.assert_allclose(kernel, printed, rtol=1e-5, atol=1e-6)


def test_sigma_3_kernel_has_width_25():
    kernel = native.blur_kernel(0.0, 3.0)
    assert len(kernel) == 25
    assert kernel.sum() == pytest.approx(1.0, abs=1e-15)


def test_gray_mask_samples_equal_the_quantum_for_every_value():
    """ClampToQuantum(GetPixelLuma(v, v, v)) with float constants is v for all 65,536 values."""
    from magicmask.engines import _native_kernels as kernels

    values = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    out = np.empty_like(values)
    kernels.gray_luma_quantum(values, out)
    np.testing.assert_array_equal(out, values)


def test_8bit_multiply_is_rounded_integer_product_for_all_pairs():
    """For 8-bit frames and masks the multiply-flatten equals (f*m + 127) // 255 on all 65,536 pairs."""
    from magicmask.engines import _native_kernels as kernels

    f, m = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    out = np.empty((256, 256, 1), dtype=np.uint8)
    kernels.multiply_flatten(f.astype(np.uint8)[:, :, None], 257, (m * 257).astype(np.uint16), out)
    np.testing.assert_array_equal(out[:, :, 0], (f * m + 127) // 255)


def dense_blur_rows(image, kernel):
    """The horizontal blur pass on every pixel, in NumPy, summing in the kernels' order (u = 0 up)."""
    n = len(kernel)
    padded = np.pad(image.astype(np.float64), ((0, 0), (n // 2, n // 2)), mode="edge")
    acc = np.zeros(image.shape, dtype=np.float64)
    for u in range(n):
        acc += kernel[n - 1 - u] * padded[:, u : u + image.shape[1]]
    return clamp_to_quantum(acc)


def dense_blur_columns(image, kernel):
    return dense_blur_rows(image.T, kernel).T


def clamp_to_quantum(values):
    """ClampToQuantum on an array: <= 0 -> 0, >= 65535 -> 65535, else trunc(v + 0.5)."""
    out = np.trunc(values + 0.5)
    out[values <= 0] = 0
    out[values >= 65535] = 65535
    return out.astype(np.uint16)


@pytest.mark.parametrize("sigma", [0.5, 3, 40])
@pytest.mark.parametrize("kind", ["zeros", "specks", "blobs", "full", "noise"])
def test_blur_passes_skip_only_blocks_that_are_exactly_zero(sigma, kind):
    """The blur kernels skip blocks of columns whose window is all zero; every sample still equals the
    dense sum, on widths that are and are not multiples of the block, near edges and with wide kernels."""
    from magicmask.engines import _native_kernels as kernels

    rng = np.random.default_rng(int(sigma * 10) + len(kind))
    kernel = native.blur_kernel(0, sigma)
    for rows, columns in [(1, 1), (70, 64), (53, 130), (97, 300)]:
        image = np.zeros((rows, columns), dtype=np.uint16)
        if kind == "specks":
            image[rng.integers(0, rows, 5), rng.integers(0, columns, 5)] = 65535
            image[rows - 1, columns - 1] = image[0, 0] = 65535
        elif kind == "blobs":
            for _ in range(3):
                top, left = rng.integers(0, rows), rng.integers(0, columns)
                image[top : top + 9, left : left + 40] = rng.integers(1, 65536)
        elif kind == "full":
            image[:] = 65535
        elif kind == "noise":
            image[:] = rng.integers(0, 65536, (rows, columns)) * (rng.random((rows, columns)) < 0.3)
        out = np.empty_like(image)
        kernels.blur_rows(image, kernel, out)
        np.testing.assert_array_equal(out, dense_blur_rows(image, kernel))
        kernels.blur_columns(image, kernel, out)
        np.testing.assert_array_equal(out, dense_blur_columns(image, kernel))


def blur_both_ways(image, kernel):
    """Both blur kernels on ``image``, each compared sample by sample with the dense reference."""
    from magicmask.engines import _native_kernels as kernels

    out = np.empty_like(image)
    kernels.blur_rows(image, kernel, out)
    np.testing.assert_array_equal(out, dense_blur_rows(image, kernel))
    kernels.blur_columns(image, kernel, out)
    np.testing.assert_array_equal(out, dense_blur_columns(image, kernel))


UNIFORM_VALUES = [1, 2, 127, 255, 257, 128 * 257, 254 * 257, 12345, 32768, 65534, 65535]  # 8-bit style: k * 257


@pytest.mark.parametrize("sigma", [0.5, 3, 40])
@pytest.mark.parametrize("value", UNIFORM_VALUES)
def test_blur_passes_fill_uniform_windows_with_the_dense_sum(sigma, value):
    """Blocks whose window holds one value v get the dense sum of v: whole frames of v, and blobs of v
    (wider and taller than the kernel, so their inside is uniform) on zeros and on another value."""
    kernel = native.blur_kernel(0, sigma)
    for rows, columns in [(1, 1), (3, 5), (70, 64), (53, 130), (97, 300)]:
        blur_both_ways(np.full((rows, columns), value, dtype=np.uint16), kernel)
    for ground in [0, 65535 - value, 7]:
        image = np.full((160, 333), ground, dtype=np.uint16)
        image[20:150, 40:300] = value
        image[0:50, 0:70] = value  # touching the top left corner: repeated edge pixels of v
        blur_both_ways(image, kernel)


@pytest.mark.parametrize("value", [0, 65535, 257 * 200, 40000])
def test_blur_passes_see_one_odd_pixel_anywhere_in_the_window(value):
    """A frame of v with one pixel of another value: wherever it is (a block's first or last column,
    just inside or just beyond a window's reach, at the frame's edges), every sample is the dense one."""
    kernel = native.blur_kernel(0, 3)
    half = len(kernel) // 2
    rows, columns = 40, 200  # blocks of 64: 0..63, 64..127, 128..191, 192..199
    places = {0, 1, columns - 2, columns - 1}
    for edge in (64, 128, 192):
        places |= {edge + d for d in (-half - 1, -half, -half + 1, -1, 0, half - 1, half, half + 1)}
    odd = 0 if value else 1
    for x in sorted(x for x in places if x < columns):
        image = np.full((rows, columns), value, dtype=np.uint16)
        image[rows // 2, x] = odd
        blur_both_ways(image, kernel)
    for y in [0, 1, half - 1, half, half + 1, rows // 2, rows - half - 2, rows - half - 1, rows - 1]:
        image = np.full((rows, columns), value, dtype=np.uint16)
        image[y, 70] = odd
        blur_both_ways(image, kernel)
        blur_both_ways(image.T.copy(), kernel)


@pytest.mark.parametrize("columns", [1, 2, 11, 12, 13, 25, 63, 64, 65, 76, 77, 100, 127, 129])
def test_blur_passes_on_narrow_frames(columns):
    """Frames narrower than a block, or a block and a bit: windows cut by both edges at once."""
    rng = np.random.default_rng(columns)
    kernel = native.blur_kernel(0, 3)
    for value in [0, 65535, 257 * 17]:
        image = np.full((37, columns), value, dtype=np.uint16)
        blur_both_ways(image, kernel)
        image[rng.integers(0, 37), rng.integers(0, columns)] = 65535 - value
        blur_both_ways(image, kernel)
        blur_both_ways(image.T.copy(), kernel)


@pytest.mark.parametrize("seed", range(12))
def test_blur_passes_on_random_mixes_of_uniform_areas(seed):
    """Rectangles of a few values (some wider than a block, some thinner than the kernel), sparse noise
    and thresholded blobs, blurred twice as the chain does: every sample as the dense sum."""
    rng = np.random.default_rng(seed)
    kernel = native.blur_kernel(0, [0.5, 3, 3, 8][seed % 4])
    rows, columns = int(rng.integers(1, 150)), int(rng.integers(1, 400))
    values = rng.choice([0, 65535, 257 * int(rng.integers(0, 256)), int(rng.integers(0, 65536))], 3)
    image = np.full((rows, columns), values[0], dtype=np.uint16)
    for _ in range(int(rng.integers(0, 12))):
        top, left = rng.integers(0, rows), rng.integers(0, columns)
        image[top : top + rng.integers(1, 120), left : left + rng.integers(1, 200)] = rng.choice(values)
    if seed % 3 == 0:
        speck = rng.random((rows, columns)) < 0.001
        image[speck] = rng.integers(0, 65536, speck.sum())
    blur_both_ways(image, kernel)
    once = dense_blur_columns(dense_blur_rows(image, kernel), kernel)  # gradients, plateaus of one value
    blur_both_ways(once, kernel)
    blur_both_ways(np.where(once > 20000, 65535, 0).astype(np.uint16), kernel)


def test_blur_rows_fill_every_uniform_value_with_the_dense_sum():
    """All 65,536 values, each a row of its own: the sum computed once per value is the dense one."""
    kernel = native.blur_kernel(0, 3)
    image = np.repeat(np.arange(65536, dtype=np.uint16)[:, None], 70, axis=1)
    blur_both_ways(image, kernel)


@pytest.mark.parametrize("deep", [False, True])
@pytest.mark.parametrize("gray", [False, True])
@pytest.mark.parametrize("compression, rowsperstrip", [("packbits", None), ("packbits", 1), (None, 7), (None, None)])
def test_strip_reader_decodes_as_tifffile(tmp_path, deep, gray, compression, rowsperstrip):
    """Uncompressed and PackBits TIFFs (ffmpeg's keyframes are PackBits, one row per strip) decode in
    one kernel to the samples tifffile reads."""
    rng = np.random.default_rng(7)
    top = 65535 if deep else 255
    shape = (37, 45) if gray else (37, 45, 3)
    pixels = np.where(rng.random(shape) < 0.5, rng.integers(0, top + 1, shape), 3).astype(np.uint16 if deep else np.uint8)
    path = tmp_path / "frame.tiff"
    tifffile.imwrite(path, pixels, photometric="minisblack" if gray else "rgb", compression=compression, rowsperstrip=rowsperstrip, metadata=None)
    with tifffile.TiffFile(path) as tif:
        samples = native._strip_samples(path, tif.pages.first, tif.byteorder)
    np.testing.assert_array_equal(samples, pixels.reshape(37, 45, -1))
    assert samples.dtype == pixels.dtype
    np.testing.assert_array_equal(native.read_picture(path).samples, pixels.reshape(37, 45, -1))


@pytest.mark.parametrize(
    "stream, size, decoded",
    [
        ([2, 7, 8, 9, 0xFE, 4, 0x80, 0, 5], 7, [7, 8, 9, 4, 4, 4, 5]),  # literal, run, no-op, literal
        ([2, 7, 8], 3, None),  # a literal longer than the strip's data
        ([0xFE, 4], 2, None),  # a run past the strip's size
        ([1, 7, 8], 3, None),  # too little data for the size
        ([0xFE], 3, None),  # a run without its byte
    ],
)
def test_packbits_strip_decoding(stream, size, decoded):
    from magicmask.engines import _native_kernels as kernels

    data = np.array([9, 9, *stream], dtype=np.uint8)  # the strip at offset 2
    out = np.zeros(size, dtype=np.uint8)
    ok = kernels.unpack_strips(data, np.array([2]), np.array([len(stream)]), np.array([size]), True, out)
    assert ok == (decoded is not None)
    if decoded is not None:
        assert out.tolist() == decoded


@pytest.mark.parametrize("threshold_percent", [5, 0, 1, 20, 50, 99.99])
def test_8bit_difference_threshold_tables_match_the_arithmetic_for_all_differences(threshold_percent):
    """Every (|dR|, |dG|, |dB|) of 8-bit RGB, both signs: the table kernel sets the same pixels and box."""
    from magicmask.engines import _native_kernels as kernels

    d = np.arange(256, dtype=np.uint8)
    r, g, b = np.meshgrid(d, d, d, indexing="ij")
    frame = np.stack([r, g, b], axis=2).reshape(4096, 4096, 3)
    rng = np.random.default_rng(3)
    background = np.where(rng.random(frame.shape) < 0.5, 0, 255).astype(np.uint8)
    frame = np.where(background == 0, frame, 255 - frame).astype(np.uint8)  # |b - f| is d either way
    threshold = threshold_percent * 65536 / 100
    expected, ours = np.empty((4096, 4096), np.uint16), np.empty((4096, 4096), np.uint16)
    box = kernels.difference_threshold(background, 257, frame, 257, threshold, expected)
    assert kernels.difference_threshold_8bit(background, frame, *kernels.intensity_tables(), threshold, ours) == box
    np.testing.assert_array_equal(ours, expected)


def test_8bit_difference_spread_in_fixed_point_matches_the_arithmetic_for_all_differences():
    """The threshold map's kernel, one frame deep (its spread is the intensity itself), on every
    (|dR|, |dG|, |dB|) of 8-bit RGB, both signs: the 8-bit difference intensity of the Quantum arithmetic,
    and every value counted."""
    from magicmask.engines import _native_kernels as kernels

    d = np.arange(256, dtype=np.uint8)
    r, g, b = np.meshgrid(d, d, d, indexing="ij")
    frame = np.stack([r, g, b], axis=2).reshape(4096, 4096, 3)
    background = np.where(np.random.default_rng(4).random(frame.shape) < 0.5, 0, 255).astype(np.uint8)
    frame = np.where(background == 0, frame, 255 - frame).astype(np.uint8)
    expected = np.empty((4096, 4096), np.uint8)
    kernels.difference_intensity(background, 257, frame, 257, True, expected)
    ours, total = np.empty(4096 * 4096, np.uint8), np.zeros(256, np.int64)
    kernels.difference_spread_8bit(background.reshape(-1, 3), frame.reshape(1, -1, 3), *kernels.intensity_fixed_tables(), 0, ours, total)
    np.testing.assert_array_equal(ours, expected.ravel())
    np.testing.assert_array_equal(total, np.bincount(expected.ravel(), minlength=256))


def test_8bit_multiply_tables_match_the_arithmetic_for_all_pairs():
    """The look-up used for 8-bit frames and masks gives multiply_flatten's samples and gray verdict."""
    from magicmask.engines import _native_kernels as kernels

    f, m = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    frame = np.stack([f, np.roll(f, 1, axis=1), f], axis=2).astype(np.uint8)
    quantum, char = kernels.multiply_tables(257)
    for pixels in (frame, frame[:, :, :1], np.repeat(frame[:, :, :1], 3, axis=2)):
        pixels = np.ascontiguousarray(pixels)
        expected, ours = np.empty(pixels.shape, np.uint8), np.empty(pixels.shape, np.uint8)
        gray = kernels.multiply_flatten(pixels, 257, (m * 257).astype(np.uint16), expected)
        assert kernels.multiply_flatten_8bit(pixels, m.astype(np.uint8), quantum, char, ours) == gray
        np.testing.assert_array_equal(ours, expected)


# --------------------------------------------------------------------------------------------------
# property: native == Wand engine on small random images and chains


def blur_geometry():
    return st.builds(lambda r, s: f"{r:g}x{s:g}", st.sampled_from([0, 0, 0.5, 1, 2, 4]), st.sampled_from([0.5, 1, 2, 3]))


@st.composite
def render_cases(draw):
    width = draw(st.sampled_from([st.integers(1, 40), st.integers(60, 200)]).flatmap(lambda widths: widths))
    height = draw(st.integers(1, 30))
    deep = draw(st.booleans())
    gray = draw(st.sampled_from([False, False, False, True]))
    kind = draw(st.sampled_from(["noisy", "flat", "smooth", "sparse"]))
    seed = draw(st.integers(0, 2**32 - 1))
    compression = draw(st.sampled_from([None, "packbits"]))
    params = MaskParams(
        draw(st.sampled_from(["5%", "1%", "2.5%", "12.5%", "33%", "50%", "0%", "3276.8"])),
        draw(blur_geometry()),
        draw(st.sampled_from(["20%", "5%", "10%", "50%", "75%", "99%"])),
        draw(blur_geometry()),
    )
    return width, height, deep, gray, kind, seed, compression, params


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(render_cases())
def test_native_matches_wand_engine_on_random_images(case):
    width, height, deep, gray, kind, seed, compression, params = case
    background_pixels, frame_pixels = make_pair(np.random.default_rng(seed), width, height, deep, gray, kind)
    with tempfile.TemporaryDirectory(prefix="magicmask-test-") as folder:
        background_path = write_tiff(Path(folder) / "bg.tif", background_pixels, compression)
        frame_path = write_tiff(Path(folder) / "frame.tif", frame_pixels, compression)
        mask, clean = native.render_frame(native.load_background(background_path), frame_path, params)
        with wand_engine.load_background(background_path) as background:
            ref_mask, ref_clean = wand_engine.render_frame(background, frame_path, params)
    assert_same_tiff(mask, ref_mask)
    assert clean == ref_clean


# --------------------------------------------------------------------------------------------------
# errors


def test_frame_of_another_size_names_both_sizes(tmp_path):
    rng = np.random.default_rng(1)
    background_path = write_tiff(tmp_path / "bg.tif", make_pair(rng, 16, 12)[0])
    frame_path = write_tiff(tmp_path / "frame.tif", make_pair(rng, 15, 12)[0])
    with pytest.raises(MagicmaskError) as caught:
        native.render_frame(native.load_background(background_path), frame_path, background_path=background_path)
    message = str(caught.value)
    assert "15x12" in message and "16x12" in message and str(frame_path) in message and str(background_path) in message
    fold = native.Fold("lighten", "black")
    fold.add_file(background_path)
    with pytest.raises(MagicmaskError, match="15x12.*16x12"):
        fold.add_file(frame_path)


def test_svg_named_tiff_is_refused(tmp_path):
    background_path = write_tiff(tmp_path / "bg.tif", make_pair(np.random.default_rng(2), 8, 8)[0])
    svg = tmp_path / "frame.tiff"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><image href="/etc/passwd"/></svg>')
    with pytest.raises(MagicmaskError, match="SVG") as caught:
        native.render_frame(native.load_background(background_path), svg)
    assert caught.value.path == str(svg)
    with pytest.raises(MagicmaskError, match="SVG"):
        native.load_background(svg)
    with pytest.raises(MagicmaskError, match="SVG"):
        native.Fold("darken", "white").add_file(svg)


@pytest.mark.parametrize("keep", [40, 300, 2000])
def test_truncated_tiff_is_refused_in_one_line(tmp_path, keep):
    rng = np.random.default_rng(3)
    background_path = write_tiff(tmp_path / "bg.tif", make_pair(rng, 40, 30)[0])
    whole = write_tiff(tmp_path / "whole.tif", make_pair(rng, 40, 30)[0]).read_bytes()
    broken = tmp_path / "broken.tiff"
    broken.write_bytes(whole[:keep])
    with pytest.raises(MagicmaskError) as caught:
        native.render_frame(native.load_background(background_path), broken)
    assert caught.value.path == str(broken)
    assert "\n" not in str(caught.value)


def test_tiff_with_alpha_is_refused_with_a_hint(tmp_path):
    background_path = write_tiff(tmp_path / "bg.tif", make_pair(np.random.default_rng(4), 8, 8)[0])
    rgba = tmp_path / "rgba.tif"
    tifffile.imwrite(rgba, np.zeros((8, 8, 4), np.uint8), photometric="rgb", extrasamples=[2], metadata=None)
    with pytest.raises(MagicmaskError, match="alpha") as caught:
        native.render_frame(native.load_background(background_path), rgba)
    assert caught.value.hint and "wand" in caught.value.hint


def test_background_in_a_compression_the_engine_cannot_write_is_refused_first(tmp_path):
    jpeg_tiff = tmp_path / "bg.tif"
    tifffile.imwrite(jpeg_tiff, make_pair(np.random.default_rng(6), 16, 16, gray=True)[0], photometric="minisblack", compression="jpeg", metadata=None)
    with pytest.raises(MagicmaskError, match="JPEG-compressed") as caught:
        native.load_background(jpeg_tiff)
    assert caught.value.path == str(jpeg_tiff) and "wand" in caught.value.hint
    with pytest.raises(MagicmaskError, match="JPEG-compressed"):
        native.Fold("lighten", "black").add_file(jpeg_tiff)


def test_empty_fold_has_nothing_to_encode():
    with pytest.raises(MagicmaskError, match="no frames"):
        native.Fold("lighten", "black").encode("tiff")


# --------------------------------------------------------------------------------------------------
# the module itself


def test_importing_the_engine_does_not_load_numba():
    code = "import sys, magicmask.engines.native; print('numba' in sys.modules, 'PIL' in sys.modules, 'tifffile' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False", "False"]


def test_version_names_the_libraries():
    text = native.version()
    assert "numba" in text and "numpy" in text and "Pillow" in text
