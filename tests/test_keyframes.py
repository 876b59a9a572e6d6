import pytest
from conftest import leftovers, visible

from magicmask.errors import MagicmaskError
from magicmask.media.extract import extract_keyframes, frame_names, keyframes_command
from magicmask.media.probe import keyframe_pix_fmt, probe
from magicmask.sample import make_sample_video


@pytest.mark.parametrize(
    "source, expected",
    [
        ("yuv420p", "rgb24"), ("yuvj420p", "rgb24"), ("yuv444p", "rgb24"), ("nv12", "rgb24"), ("rgb24", "rgb24"),
        ("yuv420p10le", "rgb48le"), ("yuv422p12be", "rgb48le"), ("p010le", "rgb48le"), ("rgb48le", "rgb48le"),
        ("yuva420p", "rgba"), ("rgba", "rgba"), ("yuva444p10le", "rgba64le"),
        ("gray", "gray"), ("gray10le", "gray16le"), ("ya8", "ya8"), ("ya16le", "ya16le"), (None, "rgb24"),
    ],
)
def test_keyframes_are_written_as_rgb_of_the_sources_depth(source, expected):
    assert keyframe_pix_fmt(source) == expected


def test_keyframes_command_is_the_seeds_with_passthrough_and_rgb(tmp_path):
    args = keyframes_command(tmp_path / "in put.mp4", tmp_path / "t%02d.tiff", "rgb24")
    assert args[0] == "ffmpeg"
    joined = " ".join(args)
    assert f"-skip_frame nokey -i file:{tmp_path}/in put.mp4" in joined
    assert "-fps_mode passthrough" in joined and "-pix_fmt rgb24" in joined and "-f image2" in joined
    assert args[-1] == f"file:{tmp_path}/t%02d.tiff"
    assert "-r" not in args and "-vsync" not in args


@pytest.mark.parametrize("container, discards", [("mp4", True), ("mkv", True), ("mov", True), ("ts", False), ("avi", False)])
def test_keyframes_are_the_seed_commands_in_every_container(tmp_path, container, discards):
    """Where the container indexes keyframes, ffmpeg also drops the other packets before decoding
    (-discard nokey, frame-threaded); elsewhere the seed's command alone. Same files either way."""
    import subprocess

    from magicmask import sample
    from magicmask.media.extract import extract_keyframes
    from magicmask.media.probe import discards_safely, probe

    made = sample.make_sample_video(tmp_path / "clip.mp4", width=96, height=64, count=45, keyint=10)
    video = tmp_path / f"clip.{container}"
    if container != "mp4":
        subprocess.run(["ffmpeg", "-v", "error", "-i", made, "-c", "copy", video], check=True)
    assert discards_safely(probe(video)) == discards
    ours = extract_keyframes(video, tmp_path / "ours")
    seed = tmp_path / "seed"
    seed.mkdir()
    subprocess.run(["ffmpeg", "-v", "error", "-skip_frame", "nokey", "-i", video, "-fps_mode", "passthrough", "-pix_fmt", "rgb24", "-f", "image2", seed / "t%02d.tiff"], check=True)
    assert [p.name for p in ours] == sorted(p.name for p in seed.iterdir()) == [f"t{i:02d}.tiff" for i in range(1, 6)]
    assert all(p.read_bytes() == (seed / p.name).read_bytes() for p in ours)


def test_ffmpeg_names_are_file_urls_with_percent_escaped_in_folders():
    from magicmask.media.ffmpeg import file_url

    assert file_url("/v/-dash.mp4") == "file:/v/-dash.mp4"
    assert file_url("/v/a:b.mp4") == "file:/v/a:b.mp4"
    assert file_url("/v%d/x/%09d.tiff", pattern=True) == "file:/v%%d/x/%09d.tiff"


def test_names_keep_the_seeds_two_digits_up_to_99_then_widen():
    assert frame_names(3) == ["t01.tiff", "t02.tiff", "t03.tiff"]
    assert frame_names(99)[-1] == "t99.tiff"
    names = frame_names(120)
    assert names[0] == "t001.tiff" and names[-1] == "t120.tiff"
    assert names == sorted(names)


def test_more_than_99_keyframes_get_wider_names_that_sort(tmp_path):
    video = make_sample_video(tmp_path / "many.mp4", width=32, height=24, count=101, keyint=1)
    frames = extract_keyframes(video, tmp_path / "kf")
    assert len(frames) == 101
    assert frames[0].name == "t001.tiff" and frames[-1].name == "t101.tiff"
    assert visible(tmp_path / "kf") == [f.name for f in frames]


def test_extraction_leaves_no_temporary_folder(tmp_path):
    video = make_sample_video(tmp_path / "v.mp4", width=32, height=24, count=10, keyint=5)
    extract_keyframes(video, tmp_path / "kf")
    assert visible(tmp_path / "kf") == ["t01.tiff", "t02.tiff"]
    assert leftovers(tmp_path) == []


def test_missing_video_names_the_file(tmp_path):
    with pytest.raises(MagicmaskError, match="not found") as info:
        extract_keyframes(tmp_path / "gone.mp4", tmp_path / "kf")
    assert "gone.mp4" in str(info.value)


def test_text_file_named_mp4_is_not_a_video(tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_text("hello\n")
    with pytest.raises(MagicmaskError, match="cannot read this as a video"):
        probe(fake)


def test_audio_only_file_has_no_video_stream(tmp_path):
    import subprocess

    audio = tmp_path / "tone.m4a"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=0.5", str(audio)], check=True)
    with pytest.raises(MagicmaskError, match="no video stream"):
        extract_keyframes(audio, tmp_path / "kf")


def test_probe_soon_answers_the_next_probe_of_the_same_file(tmp_path, monkeypatch):
    """``run`` starts ffprobe while the program loads; the probe reads that process's answer (the same
    as a fresh one), and keeps it for the next probes of the unchanged file; a file changed since, or
    another file, gets a fresh ffprobe."""
    import os
    import subprocess

    from magicmask.media import probe as keyframes

    video = make_sample_video(tmp_path / "clip.mp4", width=64, height=48, count=4, keyint=2)
    fresh = probe(video)
    monkeypatch.setattr(keyframes, "_PROBED", {})  # as in a new process
    started = []
    real_popen = subprocess.Popen
    monkeypatch.setattr(keyframes.subprocess, "Popen", lambda args, **kw: started.append(args) or real_popen(args, **kw))
    keyframes.probe_soon(video)
    assert len(started) == 1 and len(keyframes._EARLY) == 1
    assert probe(video) == fresh and len(started) == 1  # the early answer, no second ffprobe
    assert probe(video) == fresh and len(started) == 1  # kept
    keyframes.probe_soon(video)  # known: nothing to start
    assert len(started) == 1 and not keyframes._EARLY
    os.utime(video, ns=(1, 1))  # changed since: asked again
    keyframes.probe_soon(video)
    assert probe(video) == fresh and len(started) == 2
    keyframes._reap_early()
    assert not keyframes._EARLY
    keyframes.probe_soon(tmp_path)  # a folder, a missing file: nothing started, probe says what is wrong
    keyframes.probe_soon(tmp_path / "gone.mp4")
    assert len(started) == 2
    fake = tmp_path / "fake.mp4"
    fake.write_text("hello\n")
    keyframes.probe_soon(fake)
    with pytest.raises(MagicmaskError, match="cannot read this as a video"):
        probe(fake)
