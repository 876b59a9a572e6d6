"""Transparent cut-outs: NAME-cutout.png holds the keyframe's own samples and its mask as alpha, at its depth."""

import imagecodecs
import numpy as np
import pytest
import tifffile

import magicmask
from conftest import GOLDEN
from magicmask.provenance.record import load


def planes(path):
    samples = tifffile.imread(path)
    return samples if samples.ndim == 3 else samples[:, :, None]


@pytest.mark.parametrize("video, engine", [("walk", "native"), ("walk10", "native"), ("walk", "wand")])
def test_cutout_is_the_frame_with_its_mask_as_alpha(video, engine, tmp_path):
    result = magicmask.run(GOLDEN / f"{video}.mp4", tmp_path / video, cutout=True, engine=engine)
    assert len(result.cutouts) == len(result.keyframes) > 1
    _, record = load(result.folder)
    for frame, (mask, _), cutout in zip(result.keyframes, result.outputs, result.cutouts):
        assert cutout.name == f"{frame.stem}-cutout.png" and cutout.read_bytes().startswith(b"\x89PNG")
        shown = imagecodecs.png_decode(cutout.read_bytes())
        keyframe, alpha = planes(frame), planes(mask)
        assert shown.dtype == keyframe.dtype == alpha.dtype  # the frame's depth: 8 bits, or 16 for walk10
        assert shown.shape == keyframe.shape[:2] + (keyframe.shape[2] + 1,)
        assert np.array_equal(shown[:, :, :-1], keyframe)
        assert np.array_equal(shown[:, :, -1], alpha[:, :, 0])
        assert record["outputs"][cutout.name]["made_by"].startswith("magicmask: the keyframe's colours")
    assert any(planes(mask).any() for mask, _ in result.outputs)


def test_asking_for_cutouts_later_makes_them_for_frames_already_done(tmp_path):
    out = tmp_path / "walk"
    magicmask.run(GOLDEN / "walk.mp4", out)
    assert not list(out.glob("*-cutout.png"))
    again = magicmask.run(GOLDEN / "walk.mp4", out, cutout=True)
    assert again.status == "done" and all(path.is_file() for path in again.cutouts) and len(again.cutouts) == 5
    third = magicmask.run(GOLDEN / "walk.mp4", out)  # without: the cut-outs are this run's no more, so they go
    assert third.status == "done" and not list(out.glob("*-cutout.png"))


def test_cutout_samples_convert_the_mask_to_the_frames_depth():
    from magicmask.cutout import cutout_samples

    frame = np.arange(2 * 3 * 3, dtype=np.uint16).reshape(2, 3, 3) * 1000
    mask = np.array([[0, 128, 255], [1, 2, 254]], dtype=np.uint8)
    out = cutout_samples(frame, mask)
    assert out.dtype == np.uint16 and np.array_equal(out[:, :, 3], mask.astype(np.uint16) * 257)
    deep = np.array([[0, 32768, 65535]], dtype=np.uint16)
    assert cutout_samples(np.zeros((1, 3, 1), np.uint8), deep)[0, :, 1].tolist() == [0, 128, 255]
