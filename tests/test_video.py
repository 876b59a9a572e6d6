"""The foreground video: every decoded frame through the seed's chain, streamed back into H.264."""

import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from conftest import GOLDEN, leftovers
from magicmask.check import find_convert, seed_commands
from magicmask.engines import native, wand
from magicmask.errors import MagicmaskError
from magicmask.media.decode import iter_frames
from magicmask.media.extract import extract_keyframes
from magicmask.media.ffmpeg import ffmpeg_binary
from magicmask.media.probe import probe, video_info
from magicmask.params import MaskParams
from magicmask.background import lighten_background
from magicmask.cli import app
from magicmask.video import background_picture, foreground_frames, foreground_video

runner = CliRunner()


@pytest.fixture(scope="module")
def clip_with_audio(clip, tmp_path_factory):
    path = tmp_path_factory.mktemp("audio") / "with-audio.mp4"
    args = [ffmpeg_binary(), "-v", "error", "-i", str(clip), "-f", "lavfi", "-i", "sine=frequency=440:duration=1.2", "-c:v", "copy", "-c:a", "aac", "-shortest", "-y", str(path)]
    subprocess.run(args, check=True)
    return path


def stream_facts(path):
    """(frames, duration, codec) of the first video stream, as ffprobe reports them."""
    stream = probe(path)
    return int(stream["nb_frames"]), float(stream["duration"]), stream["codec_name"]


def dump_tiff(samples, path):
    """A decoded frame as the TIFF the seed's loop would read (native writer: ImageMagick's layout)."""
    samples = np.ascontiguousarray(samples)
    path.write_bytes(native.tiff_bytes(samples, native.Picture(samples)))
    return path


def wand_chain(background_tiff, frame_tiff):
    """The seed's two commands on one frame with the reference engine: (mask samples, 8-bit clean samples)."""
    with wand.read_tiff(background_tiff) as bg, wand.read_tiff(frame_tiff) as fr:
        with wand.mask_image(bg, fr) as mask, wand.as_read_back(mask) as read_back, wand.clean_image(fr, read_back) as clean:
            width, height = mask.size
            depth = 16 if mask.depth > 8 else 8
            mask.depth = depth
            mask_samples = np.frombuffer(mask.make_blob("gray"), dtype=np.uint8 if depth == 8 else "<u2").reshape(height, width, 1)
            clean.depth = 8
            clean_samples = np.frombuffer(clean.make_blob("rgb"), dtype=np.uint8).reshape(height, width, 3)
    return mask_samples, clean_samples


@pytest.mark.parametrize("video", ["clip", "walk10"])
def test_frames_before_encoding_match_the_wand_engine(video, clip, tmp_path):
    """Every frame, keyframe or not (8-bit, and 16-bit from a 10-bit video), as the reference engine computes it."""
    path = clip if video == "clip" else GOLDEN / "walk10.mp4"
    info = video_info(path)
    background = background_picture(path, "first", info)
    bg_tiff = dump_tiff(background.samples, tmp_path / "bg.tiff")
    picked = {1, 7, 13, 22}
    frames = iter_frames(path, info=info)
    decoded = []

    def keep():
        for index, samples in enumerate(frames):
            if index in picked:
                decoded.append(np.array(samples))
            yield samples

    results = [result for index, result in enumerate(foreground_frames(keep(), background, jobs=2)) if index in picked]
    assert len(results) == len(decoded) == len(picked)
    for index, ((mask, clean), samples) in enumerate(zip(results, decoded)):
        theirs_mask, theirs_clean = wand_chain(bg_tiff, dump_tiff(samples, tmp_path / f"f{index}.tiff"))
        assert mask.dtype == theirs_mask.dtype and np.array_equal(mask, theirs_mask)
        assert np.array_equal(clean, theirs_clean)
    assert any(mask.any() for mask, _ in results), "the figure must show in some mask"


def test_frames_before_encoding_match_convert(clip, tmp_path):
    """The literal convert commands on two dumped frames: same mask samples, and the same JPEG bytes from our samples."""
    import tifffile

    convert = find_convert()
    info = video_info(clip)
    background = background_picture(clip, "first", info)
    bg_tiff = dump_tiff(background.samples, tmp_path / "t01.tiff")
    frames = [np.array(f) for i, f in zip(range(20), iter_frames(clip, info=info))]
    results = list(foreground_frames(iter(frames), background, jobs=1))
    for index in (8, 17):
        frame_tiff = dump_tiff(frames[index], tmp_path / f"f{index}.tiff")
        mask_file, clean_file = tmp_path / f"f{index}-mask.tiff", tmp_path / f"f{index}-clean.jpg"
        for args in seed_commands(convert, bg_tiff, frame_tiff, mask_file, clean_file):
            subprocess.run(args, check=True, capture_output=True)
        mask, clean = results[index]
        assert np.array_equal(tifffile.imread(mask_file), mask[:, :, 0])
        gray = (clean[:, :, 0] == clean[:, :, 1]).all() and (clean[:, :, 1] == clean[:, :, 2]).all()
        ours = native.jpeg_bytes(clean[:, :, :1] if gray else clean, native.Picture(frames[index]))
        assert ours == clean_file.read_bytes()


def test_clean_video_has_the_input_frame_count_and_duration(clip, tmp_path):
    result = foreground_video(clip, tmp_path / "clean.mp4", masks=tmp_path / "masks.mp4", jobs=2)
    frames, duration, codec = stream_facts(clip)
    assert result.frames == frames == 30
    for output in (tmp_path / "clean.mp4", tmp_path / "masks.mp4"):
        assert stream_facts(output) == (frames, duration, "h264")
    assert leftovers(tmp_path) == []


def test_lossless_video_holds_the_computed_frames_exactly(clip, tmp_path):
    foreground_video(clip, tmp_path / "clean.mp4", masks=tmp_path / "masks.mp4", lossless=True, jobs=2)
    info = video_info(clip)
    computed = list(foreground_frames(iter_frames(clip, info=info), background_picture(clip, "first", info)))
    clean = list(iter_frames(tmp_path / "clean.mp4", "rgb24"))
    masks = list(iter_frames(tmp_path / "masks.mp4", "rgb24"))
    assert len(computed) == len(clean) == len(masks) == 30
    for (mask, ours), theirs, their_mask in zip(computed, clean, masks):
        assert np.array_equal(ours, theirs)
        assert np.array_equal(np.repeat(mask, 3, axis=2), their_mask)


def test_audio_is_copied(clip_with_audio, tmp_path):
    result = foreground_video(clip_with_audio, tmp_path / "clean.mp4", jobs=2)
    assert result.audio
    import ffmpeg

    streams = ffmpeg.probe(str(tmp_path / "clean.mp4"))["streams"]
    source = ffmpeg.probe(str(clip_with_audio))["streams"]
    audio = [s for s in streams if s["codec_type"] == "audio"]
    assert len(audio) == 1 and audio[0]["codec_name"] == "aac"
    assert audio[0]["nb_frames"] == next(s for s in source if s["codec_type"] == "audio")["nb_frames"]
    assert stream_facts(tmp_path / "clean.mp4")[0] == stream_facts(clip_with_audio)[0]


def test_lighten_background_is_the_keyframes_lighten(clip, tmp_path):
    """--background lighten folds the decoded keyframes exactly as background.tiff is made from t*.tiff."""
    frames = extract_keyframes(clip, tmp_path / "kf")
    reference = native.read_picture(lighten_background(frames, tmp_path / "background.tiff", jobs=1))
    ours = background_picture(clip, "lighten")
    assert ours.samples.dtype == reference.samples.dtype and np.array_equal(ours.samples, reference.samples)
    first = background_picture(clip, "first")
    assert np.array_equal(first.samples, native.read_picture(frames[0]).samples)


def test_a_failure_midway_leaves_no_output(clip, tmp_path, monkeypatch):
    calls = []
    original = native.foreground

    def failing(background, frame, params):
        calls.append(1)
        if len(calls) == 12:
            raise MagicmaskError("boom", "frame 12")
        return original(background, frame, params)

    monkeypatch.setattr(native, "foreground", failing)
    with pytest.raises(MagicmaskError, match="boom"):
        foreground_video(clip, tmp_path / "clean.mp4", masks=tmp_path / "masks.mp4", jobs=2)
    assert not (tmp_path / "clean.mp4").exists() and not (tmp_path / "masks.mp4").exists()
    assert leftovers(tmp_path) == []


def test_video_command(clip, tmp_path):
    result = runner.invoke(app, ["video", str(clip), "-o", str(tmp_path / "clean.mp4"), "--masks", str(tmp_path / "masks.mp4"), "--crf", "23", "-q"])
    assert result.exit_code == 0, result.output
    assert "30 frames" in result.output and "fps" in result.output
    assert stream_facts(tmp_path / "clean.mp4")[0] == 30


@pytest.mark.parametrize(
    "args, words",
    [
        (["{missing}", "-o", "{out}"], ["missing.mp4", "not found"]),
        (["{clip}", "-o", "{out}", "--crf", "99"], ["--crf 99", "0..51"]),
        (["{clip}", "-o", "{out}", "--background", "{bg}"], ["bg.tiff", "160x120", "96x72"]),
        (["{clip}", "-o", "{clip}"], ["overwrite the video"]),
        (["{clip}", "-o", "{out}", "--preset", "warp"], ["warp", "ultrafast"]),
    ],
)
def test_video_command_errors_are_one_line(args, words, clip, tmp_path):
    bg = tmp_path / "bg.tiff"
    bg.write_bytes((GOLDEN / "walk" / "lighten" / "background.tiff").read_bytes())
    values = dict(missing=tmp_path / "missing.mp4", out=tmp_path / "clean.mp4", clip=clip, bg=bg)
    result = runner.invoke(app, ["video", *[a.format(**values) for a in args]])
    assert result.exit_code == 1
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 2
    for word in words:
        assert word in result.output
    assert not (tmp_path / "clean.mp4").exists()


def whole_frame(background, frame, params):
    """The chain on the whole frame, with no region: mask_quantum, mask_samples, clean_samples."""
    samples, read_back = native.mask_samples(background, native.mask_quantum(background, frame, params))
    return samples, native.clean_samples(frame, read_back)[0]


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    shape=st.tuples(st.integers(1, 90), st.integers(1, 100)),
    deep=st.booleans(),
    channels=st.sampled_from([1, 3]),
    threshold=st.sampled_from(["5%", "0%", "50%", "99%", "1200"]),
    blur=st.sampled_from(["0x3", "0x1", "2x1", "0x0.5", "5x2"]),
    threshold2=st.sampled_from(["20%", "0", "70%"]),
    blur2=st.sampled_from(["0x3", "1x0.7", "0x2"]),
)
def test_working_on_the_moving_region_gives_the_whole_frame_samples(data, shape, deep, channels, threshold, blur, threshold2, blur2):
    """Spots of change anywhere (edges and corners too): the same mask and clean samples as the whole frame's chain."""
    rows, columns = shape
    dtype, top = (np.uint16, 65535) if deep else (np.uint8, 255)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    background = rng.integers(0, top + 1, size=(rows, columns, channels)).astype(dtype)
    frame = background.copy()
    for _ in range(data.draw(st.integers(0, 3))):
        y, x = data.draw(st.integers(0, rows - 1)), data.draw(st.integers(0, columns - 1))
        h, w = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
        frame[y : y + h, x : x + w] = rng.integers(0, top + 1, size=frame[y : y + h, x : x + w].shape)
    params = MaskParams(threshold, blur, threshold2, blur2)
    bg, fr = native.Picture(background), native.Picture(frame)
    mask, clean = native.foreground(bg, fr, params)
    expected_mask, expected_clean = whole_frame(bg, fr, params)
    assert mask.dtype == expected_mask.dtype and np.array_equal(mask, expected_mask)
    assert np.array_equal(clean, expected_clean)


def test_moving_region_on_real_frames(clip):
    """The walking figure enters at the left edge: every frame of the clip, region or whole frame, the same."""
    info = video_info(clip)
    background = background_picture(clip, "first", info)
    regions = 0
    for samples in iter_frames(clip, info=info):
        frame = native.Picture(np.array(samples))
        chain = native._chain(MaskParams())
        first = np.empty((info.height, info.width), dtype=np.uint16)
        native._kernels().difference_threshold(background.samples, 257, frame.samples, 257, chain[0][1], first)
        region = native.moving_region(first, chain)
        regions += region[1].stop - region[1].start < info.width
        mask, clean = native.foreground(background, frame)
        expected_mask, expected_clean = whole_frame(background, frame, MaskParams())
        assert np.array_equal(mask, expected_mask) and np.array_equal(clean, expected_clean)
    assert regions > 10, "most frames should be worked on a region only"
