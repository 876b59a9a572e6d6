"""``magicmask video`` on clips of odd width or height, and the hint of an encoding that fails."""

import subprocess

import pytest

from conftest import leftovers
from magicmask.errors import MagicmaskError
from magicmask.media.decode import iter_frames
from magicmask.media.encode import encoded_size
from magicmask.media.ffmpeg import ffmpeg_binary
from magicmask.media.probe import probe
from magicmask.video import foreground_video


def odd_clip(path, width, height, audio=None):
    """20 frames of ``width`` x ``height`` (4:4:4, which allows odd sizes), a keyframe every 5."""
    args = [ffmpeg_binary(), "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=0.8"]
    if audio:
        args += ["-f", "lavfi", "-i", "sine=duration=0.8", "-c:a", audio]
    args += ["-vf", f"scale={width}:{height}", "-c:v", "libx264", "-pix_fmt", "yuv444p", "-g", "5", str(path)]
    subprocess.run(args, check=True)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("odd")
    return {size: odd_clip(folder / f"{size[0]}x{size[1]}.mp4", *size) for size in ((97, 73), (96, 73), (97, 72))}


@pytest.mark.parametrize("size", [(97, 73), (96, 73), (97, 72)], ids=str)
def test_an_odd_sized_clip_is_encoded_padded_to_even_with_black(size, clips, tmp_path):
    result = foreground_video(clips[size], tmp_path / "clean.mp4", masks=tmp_path / "masks.mp4", jobs=1)
    assert result.frames == 20
    width, height = size
    assert encoded_size(width, height) == (width + width % 2, height + height % 2)
    for output in (tmp_path / "clean.mp4", tmp_path / "masks.mp4"):
        stream = probe(output)
        assert (stream["width"], stream["height"], int(stream["nb_frames"])) == (*encoded_size(width, height), 20)
    masks = list(iter_frames(tmp_path / "masks.mp4", "gray"))
    assert masks[0].shape[:2] == (height + height % 2, width + width % 2)
    first = masks[0]  # the first frame is the background: no mask, all black, the padding too
    assert first[height:].max(initial=0) <= 2 and first[:, width:].max(initial=0) <= 2
    clean = list(iter_frames(tmp_path / "clean.mp4", "rgb24"))
    assert clean[0][height:].max(initial=0) <= 2 and clean[0][:, width:].max(initial=0) <= 2
    assert leftovers(tmp_path) == []


def test_a_lossless_odd_sized_clip_keeps_its_size(clips, tmp_path):
    foreground_video(clips[(97, 73)], tmp_path / "clean.mkv", lossless=True, jobs=1)
    stream = probe(tmp_path / "clean.mkv")
    assert (stream["width"], stream["height"]) == encoded_size(97, 73, lossless=True) == (97, 73)


def test_audio_a_container_cannot_hold_gets_the_right_hint(tmp_path):
    clip = odd_clip(tmp_path / "pcm.mov", 96, 72, audio="pcm_s16le")
    with pytest.raises(MagicmaskError) as failed:
        foreground_video(clip, tmp_path / "clean.mp4", jobs=1)
    assert "audio cannot be copied into this container: write .mkv" in str(failed.value)
    assert foreground_video(clip, tmp_path / "clean.mkv", jobs=1).audio


def test_an_output_name_ffmpeg_cannot_place_gets_the_right_hint(clips, tmp_path):
    with pytest.raises(MagicmaskError, match=r"clean\.foo: ffmpeg failed .* for '[^']*/clean\.foo'.*\(end the output name with \.mp4 or \.mkv\)"):
        foreground_video(clips[(96, 73)], tmp_path / "clean.foo", jobs=1)
    assert leftovers(tmp_path) == []
