"""magicmask's own JPEG encoder (magicmask.engines._jpeg) against libjpeg-turbo through Pillow, byte for byte.

Pillow's bytes are convert's bytes for clean images (tests/test_golden.py compares them with /usr/bin/convert);
the encoder must give the same for every size, content, gray or colour, density and comment.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import tifffile

from magicmask.engines import _jpeg, native

RNG = np.random.default_rng(20261204)


@pytest.fixture(scope="module")
def clip_frames(tmp_path_factory):
    """The keyframes of a 320x240 sample clip (ffmpeg's TIFFs)."""
    from magicmask.media.extract import extract_keyframes
    from magicmask.sample import make_sample_video

    folder = tmp_path_factory.mktemp("jpeg")
    video = make_sample_video(folder / "clip.mp4", width=320, height=240, count=40, keyint=10)
    return extract_keyframes(video, folder / "frames")
SHAPES = [(1, 1), (8, 8), (7, 13), (9, 17), (16, 24), (37, 100), (64, 64), (120, 161)]


def contents(rows: int, columns: int, channels: int) -> dict[str, np.ndarray]:
    shape = (rows, columns, channels)
    masked = np.zeros(shape, dtype=np.uint8)
    masked[rows // 4 : 3 * rows // 4 + 1, columns // 3 : 2 * columns // 3 + 1] = RNG.integers(0, 256, masked[rows // 4 : 3 * rows // 4 + 1, columns // 3 : 2 * columns // 3 + 1].shape)
    return {
        "noise": RNG.integers(0, 256, shape, dtype=np.uint8),
        "black": np.zeros(shape, dtype=np.uint8),
        "white": np.full(shape, 255, dtype=np.uint8),
        "one colour": np.broadcast_to(RNG.integers(0, 256, channels, dtype=np.uint8), shape).copy(),
        "gradient": np.linspace(0, 255, rows * columns * channels).reshape(shape).astype(np.uint8),
        "masked": masked,
        "blocks": np.kron(RNG.integers(0, 256, (-(-rows // 5), -(-columns // 5), channels)), np.ones((5, 5, 1)))[:rows, :columns].astype(np.uint8),
        "extremes": RNG.choice(np.array([0, 1, 254, 255], dtype=np.uint8), shape),
    }


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_the_encoder_writes_libjpeg_turbos_bytes(shape, channels):
    encoder = native._jpeg_encoder()
    for name, samples in contents(*shape, channels).items():
        for density, comment in [((0, 1, 1), b""), ((1, 72, 72), b"a description"), ((2, 300, 118), bytes(range(1, 200)))]:
            assert encoder.encode(samples, density, comment) == native.pillow_jpeg_bytes(samples, density, comment), (name, density, comment)


@pytest.mark.skipif(shutil.which("convert") is None, reason="needs ImageMagick's convert")
def test_noise_pillow_cannot_write_matches_convert(tmp_path):
    """Noise: many symbols, some rare (long codes before the 16-bit limit), and more bytes than pixels, which
    Pillow's buffer for optimised tables cannot hold ("Suspension not allowed here"): jpeg_bytes then uses
    magicmask's encoder, and writes what convert writes."""
    samples = np.clip(RNG.normal(128, 40, (270, 480, 3)), 0, 255).astype(np.uint8)
    samples[RNG.integers(0, 270, 50), RNG.integers(0, 480, 50)] = 255
    frame = tmp_path / "noise.tiff"
    tifffile.imwrite(frame, samples, photometric="rgb")
    subprocess.run(["convert", str(frame), str(tmp_path / "noise.jpg")], check=True)
    assert native.jpeg_bytes(samples, native.read_picture(frame)) == (tmp_path / "noise.jpg").read_bytes()


def test_when_pillow_cannot_write_a_jpeg_magicmask_s_encoder_does(monkeypatch):
    busy = RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    picture = native.Picture(busy)
    expected = native.pillow_jpeg_bytes(busy, native._jfif_density(picture), b"")

    def fails(*args):
        raise OSError("broken data stream when writing image file")

    monkeypatch.setattr(native, "pillow_jpeg_bytes", fails)
    assert native.jpeg_bytes(busy, picture) == expected


def test_optimal_tables_keep_codes_to_16_bits():
    """Counts growing like Fibonacci's numbers make a Huffman tree deeper than 16; JPEG allows 16 bits."""
    counts = np.zeros(257, dtype=np.int64)
    a, b = 1, 1
    for symbol in range(40):
        counts[symbol] = a
        a, b = b, a + b
    bits = np.zeros(17, dtype=np.int64)
    values = np.zeros(256, dtype=np.int64)
    used = _jpeg.optimal_table(counts, bits, values)
    assert used == 40 == bits.sum()
    assert sorted(values[:used]) == list(range(40))
    kraft = sum(bits[length] * 2.0 ** -length for length in range(1, 17))
    assert kraft <= 1 - 2.0**-16  # the all-ones code stays free
    assert counts[0] == 1  # the caller's counts are left as they were


def test_clean_images_of_a_clip_match_pillow_on_both_paths(clip_frames):
    """Clean images of real renders (mostly black: magicmask's encoder) and whole frames (busy: Pillow)."""
    background = native.load_background(clip_frames[0])
    shares = []
    for frame in clip_frames[1:]:
        picture = native.read_picture(frame)
        _, clean, gray = native._foreground(background, picture, native.MaskParams())
        for samples in (clean[:, :, :1] if gray else clean, picture.samples):
            samples = np.ascontiguousarray(samples)
            marks = np.empty((samples.shape[0] // 8, samples.shape[1] // 8), dtype=np.uint8)
            shares.append(_jpeg.alike_blocks(samples, marks) / marks.size)
            density = native._jfif_density(picture)
            ours = native._jpeg_encoder().encode(samples, density, picture.description or b"")
            assert ours == native.pillow_jpeg_bytes(samples, density, picture.description or b"") == native.jpeg_bytes(samples, picture)
    assert min(shares[0::2]) >= native.ALIKE_SHARE > max(shares[1::2])  # clean images: own encoder; frames: Pillow


def test_jpeg_bytes_chooses_by_the_share_of_alike_blocks(monkeypatch):
    picture = native.Picture(np.zeros((64, 64, 3), dtype=np.uint8))
    mostly_black = np.zeros((64, 64, 3), dtype=np.uint8)
    mostly_black[:16, :16] = RNG.integers(0, 256, (16, 16, 3))  # 4 of 64 blocks busy
    busy = RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    expected = {id(a): native.pillow_jpeg_bytes(a, native._jfif_density(picture), b"") for a in (mostly_black, busy)}
    marks = np.empty((8, 8), dtype=np.uint8)
    assert _jpeg.alike_blocks(mostly_black, marks) == 60 and marks[:2, :2].sum() == 0 and marks.sum() == 60
    assert _jpeg.alike_blocks(busy, marks) == 0
    calls = []
    real = native.pillow_jpeg_bytes
    monkeypatch.setattr(native, "pillow_jpeg_bytes", lambda *args: calls.append(args) or real(*args))
    assert native.jpeg_bytes(mostly_black, picture) == expected[id(mostly_black)]
    assert calls == []
    assert native.jpeg_bytes(busy, picture) == expected[id(busy)]
    assert len(calls) == 1
