"""A damaged or truncated video that ffmpeg decodes past (exit 0) is reported, never a clean success."""

import subprocess

import pytest

from magicmask.errors import MagicmaskError
from magicmask.media.decode import iter_frames
from magicmask.media.extract import Keyframes
from magicmask.media.ffmpeg import tail as _tail
from magicmask.media.probe import probe


def make_clip(path, codec):
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=3", "-c:v", codec, "-g", "25", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    made = {name: make_clip(folder / name, codec) for name, codec in (("take.avi", "mpeg4"), ("take.mp4", "libx264"), ("take.mkv", "libx264"))}
    made["truncated.avi"] = folder / "truncated.avi"
    made["truncated.avi"].write_bytes(made["take.avi"].read_bytes()[:20000])
    made["truncated.mp4"] = folder / "truncated.mp4"
    made["truncated.mp4"].write_bytes(made["take.mp4"].read_bytes()[:20000])
    return made


def test_a_truncated_video_gives_its_keyframe_and_a_warning(videos, tmp_path):
    keyframes = Keyframes(videos["truncated.avi"], tmp_path)
    assert len(list(keyframes)) == 1
    assert len(keyframes.warnings) == 1
    warning = keyframes.warnings[0]
    assert warning.startswith("ffmpeg reported decoding errors (the video may be damaged or truncated): ") and "\n" not in warning
    assert "[mpeg4]" in warning and "@ 0x" not in warning
    keyframes.finish()
    again = Keyframes(videos["truncated.avi"], tmp_path)  # the recorded extraction is used: the warning stays
    assert len(list(again)) == 1 and again.warnings == keyframes.warnings


def test_decoding_every_frame_of_a_truncated_video_gives_a_warning(videos):
    warnings = []
    assert len(list(iter_frames(videos["truncated.avi"], warnings=warnings))) == 1
    assert len(warnings) == 1 and warnings[0].startswith("ffmpeg reported decoding errors")


@pytest.mark.parametrize("name", ["take.avi", "take.mp4", "take.mkv"])
def test_a_healthy_video_gives_no_warning(name, videos, tmp_path):
    keyframes = Keyframes(videos[name], tmp_path)
    assert len(list(keyframes)) == 3 and keyframes.warnings == []
    warnings = []
    assert sum(1 for _ in iter_frames(videos[name], warnings=warnings)) == 75 and warnings == []


def test_ffmpeg_messages_quoted_in_errors_name_the_file_as_the_user_typed_it(videos):
    with pytest.raises(MagicmaskError) as failed:
        probe(videos["truncated.mp4"])
    assert f"{videos['truncated.mp4']}: Invalid data found" in str(failed.value) and "file:" not in str(failed.value)
    assert _tail(b"[mov,mp4 @ 0x559f1a9679c0] moov atom not found\nfile:/a/b c.mp4: Invalid data\n") == "[mov,mp4] moov atom not found / /a/b c.mp4: Invalid data"
    assert _tail("Error opening output 'file:/out/x.mp4'") == "Error opening output '/out/x.mp4'"
    assert _tail("/data/profile:file:/x") == "/data/profile:file:/x"  # a file name's own "file:" stays
