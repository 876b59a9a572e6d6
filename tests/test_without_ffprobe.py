"""Without ffprobe (imageio-ffmpeg's bundled ffmpeg has none): the same answers from one ffmpeg run over the
packets, and ffmpeg itself from imageio-ffmpeg when none is on the PATH."""

import subprocess
from pathlib import Path

import numpy as np
import pytest

from magicmask.errors import MagicmaskError
from magicmask.media import ffmpeg, packets, probe

GOLDEN = Path(__file__).resolve().parent.parent / "golden"


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    """The golden videos, and the walk in other containers and codecs: B-frames, 10 bits, 29.97 fps with
    audio, a transport stream whose clock starts at 1.4 s."""
    folder = tmp_path_factory.mktemp("containers")
    walk = GOLDEN / "walk.mp4"
    made = {"walk.mp4": walk, "walk10.mp4": GOLDEN / "walk10.mp4"}
    recipes = {
        "copy.mkv": ["-c", "copy"],
        "mpeg4.avi": ["-c:v", "mpeg4", "-g", "5"],
        "copy.ts": ["-c", "copy"],
        "bframes-10bit.mkv": ["-c:v", "libx264", "-bf", "2", "-g", "6", "-pix_fmt", "yuv420p10le"],
        "ntsc-audio.mp4": ["-f", "lavfi", "-i", "sine=d=1.6", "-c:v", "libx264", "-g", "7", "-r", "30000/1001", "-c:a", "aac", "-shortest"],
    }
    for name, options in recipes.items():
        out = folder / name
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(walk), *options, str(out)], check=True)
        made[name] = out
    # a transport stream cut between keyframes: its first packets are not keyframes
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(walk), "-c:v", "libx264", "-g", "12", "-f", "mpegts", str(folder / "gop12.ts")], check=True)
    subprocess.run(["ffmpeg", "-v", "quiet", "-y", "-i", str(folder / "gop12.ts"), "-map", "0:v", "-c", "copy", "-ss", "0.45", "-copyinkf", str(folder / "mid-gop.ts")], check=True)
    made["mid-gop.ts"] = folder / "mid-gop.ts"
    return made


def answers(video: Path) -> dict:
    info = probe.video_info(video)
    stream = probe.probe(video)
    return {
        "info": info,
        "frame_times": probe.frame_times(video),
        "keyframe_times": probe.keyframe_times(video),
        "keyframe_packet_times": probe.keyframe_packet_times(video),
        "keyframe_count": probe.keyframe_count(video),
        "has_audio": probe.has_audio(video),
        "frame_rate": probe.frame_rate(video),
        "stream": {key: stream.get(key) for key in ("width", "height", "pix_fmt", "codec_name", "format_name")},
    }


@pytest.mark.parametrize("name", ["walk.mp4", "walk10.mp4", "copy.mkv", "mpeg4.avi", "copy.ts", "bframes-10bit.mkv", "ntsc-audio.mp4", "mid-gop.ts"])
def test_probing_without_ffprobe_gives_ffprobes_answers(videos, name, monkeypatch):
    video = videos[name]
    expected = answers(video)
    monkeypatch.setattr(probe, "_has_ffprobe", lambda: False)
    packets.clear()
    ours = answers(video)
    for key, value in expected.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_allclose(ours[key], value, rtol=0, atol=5.1e-7, err_msg=key)  # ffprobe prints 6 decimals
        else:
            assert ours[key] == value, key
    assert len(ours["keyframe_times"]) >= 1 and ours["keyframe_count"] == len(ours["keyframe_packet_times"])


def test_without_ffprobe_a_file_that_is_no_video_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(probe, "_has_ffprobe", lambda: False)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 50)
    with pytest.raises(MagicmaskError, match="ffmpeg cannot read this as a video"):
        probe.probe(text)
    sound = tmp_path / "sound.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=d=1", "-c:a", "aac", str(sound)], check=True)
    with pytest.raises(MagicmaskError, match="no video stream"):
        probe.probe(sound)


def test_framecrc_lines_are_read_with_their_flags_and_missing_times():
    text = "\n".join([
        "#tb 0: 1/12800",
        "#media_type 0: video",
        "0,      -1024,          0,      512,    12244, 0x10ba7baf",
        "0,       -512,       2048,      512,     7198, 0x00710f25, F=0x0",
        f"0,          0, {packets.NO_PTS},      512,     7128, 0x61a0e3dc, F=0x0",
        "0,        512,       1024,      512,     8083, 0xcfc4dae7, F=0x3",
        "1,          0,          0,     1024,      300, 0x00000001",
    ])
    base, times, keys, durations = packets.parse_framecrc(text)
    assert base == packets.Fraction(1, 12800)
    np.testing.assert_array_equal(times, [0.0, 0.16, 0.0, 0.08])  # the missing pts falls back to the dts
    assert keys.tolist() == [True, False, False, True] and durations == [512, 512, 512, 512]


def test_ffmpeg_comes_from_imageio_ffmpeg_when_none_is_on_the_path(monkeypatch):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    monkeypatch.setattr(ffmpeg.shutil, "which", lambda name: None)
    assert ffmpeg.ffmpeg_binary() == imageio_ffmpeg.get_ffmpeg_exe()
    assert ffmpeg.version().endswith(f"({imageio_ffmpeg.get_ffmpeg_exe()})")
    with pytest.raises(MagicmaskError, match="ffprobe is not installed"):
        ffmpeg.ffmpeg_binary("ffprobe")


def test_without_any_ffmpeg_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setattr(ffmpeg.shutil, "which", lambda name: None)
    monkeypatch.setattr(ffmpeg, "bundled_ffmpeg", lambda: None)
    with pytest.raises(MagicmaskError, match="ffmpeg is not installed") as raised:
        ffmpeg.ffmpeg_binary()
    assert "pip install imageio-ffmpeg" in str(raised.value)


def test_ffmpegs_stream_descriptions_are_read_as_ffprobe_names_them():
    message = """Input #0, mpegts, from 'file:/x/take.ts':
  Duration: 00:00:10.00, start: 1.400000, bitrate: 1200 kb/s
  Program 1
  Stream #0:0[0x100]: Audio: mp2 ([3][0][0][0] / 0x0003), 48000 Hz, stereo, fltp, 192 kb/s
  Stream #0:1[0x101](eng): Video: h264 (High) ([27][0][0][0] / 0x001B), yuv420p(tv, bt709, progressive), 1920x1080 [SAR 1:1 DAR 16:9], 29.97 fps, 29.97 tbr, 90k tbn
  Stream #0:2: Video: mjpeg (Baseline), yuvj420p(pc, bt470bg/unknown/unknown), 600x600 [SAR 1:1 DAR 1:1], 90k tbr, 90k tbn (attached pic)
  Stream #0:3: Video: h264, none, 90k tbr, 90k tbn
At least one output file must be specified"""
    info = packets.parse_streams(message)
    assert info["format"]["format_name"] == "mpegts"
    audio, video, cover, broken = info["streams"]
    assert audio["codec_type"] == "audio" and audio["codec_name"] == "mp2"
    assert (video["codec_name"], video["pix_fmt"], video["width"], video["height"]) == ("h264", "yuv420p", 1920, 1080)
    assert video["_fps"] == pytest.approx(29.97) and video["_tbr"] == pytest.approx(29.97)
    assert cover["disposition"]["attached_pic"] == 1 and video["disposition"]["attached_pic"] == 0
    assert "width" not in broken and broken["_tbr"] == 90000
    assert packets.parse_streams("file.mp4: Invalid data found when processing input") is None


def test_a_video_stream_without_a_frame_size_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(probe, "_probe_info", lambda video: {"format": {"format_name": "mpegts"}, "streams": [{"codec_type": "video", "codec_name": "h264", "disposition": {"attached_pic": 0}}]})
    video = tmp_path / "broken.ts"
    video.write_bytes(b"G" * 188)
    with pytest.raises(MagicmaskError, match="no frame size"):
        probe.probe(video)


def test_rates_are_exact_fractions():
    from fractions import Fraction

    assert packets._exact_rate(29.97, Fraction(1, 90000), [3003] * 5) == Fraction(30000, 1001)
    assert packets._exact_rate(25.0, Fraction(1, 12800), [512] * 5) == 25
    assert packets._exact_rate(29.97, Fraction(1, 1000), [33, 34, 33]) == Fraction(30000, 1001)  # millisecond clocks
    assert packets._exact_rate(12.5, Fraction(1, 1000), []) == Fraction(25, 2)
    assert packets._exact_rate(None, Fraction(1, 1000), [40]) is None
