"""Backgrounds from statistics over frames (issue 9): exact results, bounded memory, windows, exposure, errors."""

import dataclasses
import re
import tracemalloc
import weakref
from pathlib import Path

import numpy as np
import pytest

from magicmask.media.decode import iter_frames, raw_frames_command
from magicmask.media.probe import frame_times, keyframe_times, video_info
from magicmask import statistics as st
from magicmask.background import lighten_background
from magicmask.check import run_seed_loop
from magicmask.compare import compare_files, image_facts
from magicmask.errors import MagicmaskError
from magicmask.media.extract import extract_keyframes
from magicmask.masks import mask_frames
from magicmask.sample import make_sample_video
from magicmask.scenes import SCENES

CONVERT = "/usr/bin/convert"  # ImageMagick's own


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 96x72 sample video of 30 frames (keyframe every 5), its keyframes and all its frames in memory."""
    folder = tmp_path_factory.mktemp("clip")
    video = make_sample_video(folder / "clip.mp4", width=96, height=72, count=30, keyint=5)
    frames = extract_keyframes(video, folder / "frames")
    return video, frames, np.stack(list(iter_frames(video)))


@pytest.fixture(scope="module")
def deep_clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("deep")
    video = make_sample_video(folder / "deep.mp4", width=64, height=48, count=10, keyint=5, deep=True)
    return video, extract_keyframes(video, folder / "frames")


def lower_median(stack):
    return np.quantile(stack, 0.5, axis=0, method="lower").astype(stack.dtype)


REFERENCES = {
    "mean": lambda s: ((s.astype(np.uint64).sum(axis=0) * 2 + len(s)) // (2 * len(s))).astype(s.dtype),
    "median": lower_median,
    "lighten": lambda s: s.max(axis=0),
    "darken": lambda s: s.min(axis=0),
}


# --- the raw pipe -------------------------------------------------------------------------------------


def test_raw_frames_are_the_keyframes_pixels(clip):
    video, frames, stack = clip
    assert stack.shape == (30, 72, 96, 3) and stack.dtype == np.uint8
    for index, frame in enumerate(frames):
        assert np.array_equal(stack[index * 5], st.read_frame(frame))


def test_raw_frames_of_a_deep_video_are_16_bit_keyframes(deep_clip):
    video, frames = deep_clip
    decoded = list(iter_frames(video))
    assert decoded[0].dtype == np.uint16 and len(decoded) == 10
    assert np.array_equal(decoded[5], st.read_frame(frames[1]))


def test_video_info_and_times(clip):
    video, frames, _ = clip
    info = video_info(video)
    assert (info.width, info.height, info.frames, info.frame_pix_fmt) == (96, 72, 30, "rgb24")
    assert info.fps == 25 and info.duration == pytest.approx(1.2)
    assert info.frame_bytes == 96 * 72 * 3
    assert np.allclose(frame_times(video), np.arange(30) / 25)
    assert np.allclose(keyframe_times(video), [0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert len(keyframe_times(video)) == len(frames)


def test_raw_frames_command_is_data():
    args = raw_frames_command("in.mp4", "rgb48le", start=1.5, duration=2)
    joined = " ".join(args)
    assert re.search(r"-ss 1.5 -t 2 -i \S*in.mp4 ", joined)
    assert "-f rawvideo" in joined and "-fps_mode passthrough" in joined and "-pix_fmt rgb48le" in joined and args[-1] == "pipe:"


def test_part_of_a_video_from_start_for_duration(clip):
    video, _, stack = clip
    part = list(iter_frames(video, start=0.4, duration=0.2))
    assert len(part) == 5 and all(np.array_equal(a, b) for a, b in zip(part, stack[10:15]))


def test_stopping_early_stops_ffmpeg(clip):
    frames = iter_frames(clip[0])
    next(frames)
    frames.close()  # no hang, no error


# --- exact statistics ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["mean", "median", "lighten", "darken"])
def test_statistic_of_every_frame_is_exact(clip, method, tmp_path):
    video, frames, stack = clip
    backgrounds = st.make_backgrounds(video, frames, tmp_path, method, "video")
    assert set(backgrounds.values()) == {tmp_path / "background.tiff"}
    assert np.array_equal(st.read_frame(tmp_path / "background.tiff"), REFERENCES[method](stack))


@pytest.mark.parametrize("method", ["mean", "median", "darken"])
def test_statistic_of_keyframes_is_exact(clip, method, tmp_path):
    video, frames, stack = clip
    st.make_backgrounds(video, frames, tmp_path, method, "keyframes")
    assert np.array_equal(st.read_frame(tmp_path / "background.tiff"), REFERENCES[method](stack[::5]))


def test_lighten_of_keyframes_is_the_seeds_flatten(clip, tmp_path):
    video, frames, _ = clip
    backgrounds = st.make_backgrounds(None, frames, tmp_path / "a", "lighten", "keyframes")
    seed = lighten_background(frames, tmp_path / "b" / "background.tiff")
    assert compare_files(backgrounds[frames[0]], seed).identical


def test_median_over_evenly_sampled_frames(clip, tmp_path):
    video, frames, stack = clip
    taken = [i for i in range(30) if st.taken(i, 30, 7)]
    assert len(taken) == 7 and taken[0] == 0
    st.make_backgrounds(video, frames, tmp_path, "median", "video", samples=7)
    assert np.array_equal(st.read_frame(tmp_path / "background.tiff"), lower_median(stack[taken]))


@pytest.mark.parametrize("count, samples", [(30, 7), (100, 100), (101, 100), (3000, 100), (250, 64), (5, 9)])
def test_sampling_takes_exactly_samples_of_any_run_of_count_frames(count, samples):
    picked = [st.taken(i, count, samples) for i in range(3 * count)]
    assert picked[0]
    for start in (0, 1, count // 3, count):
        assert sum(picked[start : start + count]) == min(count, samples)


def test_background_has_the_keyframes_form(clip, deep_clip, tmp_path):
    for video, frames in (clip[:2], deep_clip):
        out = tmp_path / Path(video).stem
        background = st.make_backgrounds(video, frames, out, "median", "video")[frames[0]]
        ours, keyframe = image_facts(background), image_facts(frames[0])
        assert ours.form == keyframe.form  # size, depth (8 or 16), channels


def test_lower_median_in_bands_and_threads_is_exact(monkeypatch):
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 65536, size=(37, 11, 3), dtype=np.uint16) for _ in range(8)]
    monkeypatch.setattr(st, "BAND_BYTES", 8 * 11 * 3 * 2 * 3)  # 3 rows per band
    assert np.array_equal(st.lower_median(frames, threads=2), lower_median(np.stack(frames)))


# --- bounded memory -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """120 frames of 320x240 (27.6 MB decoded), keyframe every 30 frames."""
    folder = tmp_path_factory.mktemp("long")
    video = make_sample_video(folder / "long.mp4", width=320, height=240, count=120, keyint=30)
    return video, extract_keyframes(video, folder / "frames")


@pytest.mark.parametrize("method, window", [("median", 0), ("mean", 0), ("median", 1.0)])
def test_streaming_holds_a_bounded_number_of_frames(long_clip, method, window, tmp_path):
    video, frames = long_clip
    frame_bytes = 320 * 240 * 3
    samples = 6
    tracemalloc.start()
    try:
        st.make_backgrounds(video, frames, tmp_path, method, "video", window=window, samples=samples)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the sampled frames (samples + 1), one band of them being partitioned (at this small size one band holds
    # every sample: bands are capped at 8 MB), the frame being read and the background being written; the
    # whole video is 120 frames
    assert peak < (2 * samples + 10) * frame_bytes, f"peak {peak / frame_bytes:.1f} frames"


def test_windows_hold_at_most_samples_plus_one_frames():
    live = most = 0

    def gone():
        nonlocal live
        live -= 1

    def frames():
        nonlocal live, most
        for index in range(600):  # 24 s at 25 fps
            frame = np.full((2, 2, 3), index % 256, np.uint8)
            weakref.finalize(frame, gone)
            live += 1
            most = max(most, live)
            yield frame
            del frame

    ranges = st.window_ranges(np.arange(600) / 25, [0, 4, 8, 12, 16, 20], 4.0)  # 100 frames each
    done = [k for k, _ in st.window_statistics(frames(), ranges, "median", 100, lambda: None, threads=1)]
    assert done == list(range(6))
    assert most <= 101 + 1  # the sampled frames of one window, plus the frame being read


# --- windows ------------------------------------------------------------------------------------------


def test_windows_slide_to_stay_inside_the_video():
    assert st.window_bounds(5.0, 4.0, 0.0, 10.0) == (3.0, 7.0)
    assert st.window_bounds(0.5, 4.0, 0.0, 10.0) == (0.0, 4.0)
    assert st.window_bounds(9.8, 4.0, 0.0, 10.0) == (6.0, 10.0)
    times = np.arange(250) / 25
    assert st.window_ranges(times, [0.0, 5.0, 9.6], 4.0) == [(0, 100), (75, 175), (150, 250)]


def test_each_keyframe_gets_the_median_of_its_window(clip, tmp_path):
    video, frames, stack = clip
    backgrounds = st.make_backgrounds(video, frames, tmp_path, "median", "video", window=0.4)
    # keyframes at 0, .2, ... 1.0 s; 25 fps: windows of 10 frames slid inside the 30 frames
    starts = [0, 0, 5, 10, 15, 20]
    for frame, start in zip(frames, starts):
        assert backgrounds[frame] == tmp_path / f"{frame.stem}-background.tiff"
        assert np.array_equal(st.read_frame(backgrounds[frame]), lower_median(stack[start : start + 10])), frame


def test_windows_over_keyframes(clip, tmp_path):
    video, frames, stack = clip
    backgrounds = st.make_backgrounds(video, frames, tmp_path, "mean", "keyframes", window=0.6)
    keys = stack[::5]  # keyframes at 0, .2 ... 1.0; windows of .6 s hold 3 keyframes
    for index, frame in enumerate(frames):
        first = min(max(index - 1, 0), 3)
        assert np.array_equal(st.read_frame(backgrounds[frame]), REFERENCES["mean"](keys[first : first + 3]))


# --- exposure -----------------------------------------------------------------------------------------


def test_exposure_offset_is_not_swayed_by_a_figure():
    rng = np.random.default_rng(1)
    background = rng.integers(30, 200, size=(60, 80, 3), dtype=np.uint8)
    frame = background + np.array([7, 5, 9], dtype=np.uint8)
    frame[10:40, 20:50] = rng.integers(0, 256, size=(30, 30, 3), dtype=np.uint8)  # a figure on 19% of the frame
    shifted, offset = st.exposure_matched(background, frame)
    assert offset.tolist() == [7, 5, 9]
    assert np.array_equal(shifted, background + np.array([7, 5, 9], dtype=np.uint8))


def test_exposure_offset_leaves_alpha_alone():
    background = np.full((4, 4, 4), 100, np.uint8)
    frame = np.full((4, 4, 4), 90, np.uint8)
    assert st.exposure_offset(frame, background).tolist() == [-10, -10, -10, 0]


def test_masks_from_an_exposure_matched_background_are_converts(tmp_path):
    scene = dataclasses.replace(SCENES["drift"], width=128, height=72, seconds=4.0, keyint=25)
    video = scene.write(tmp_path / "drift.mp4")
    frames = extract_keyframes(video, tmp_path / "frames")
    backgrounds = st.make_backgrounds(video, frames, tmp_path / "out", "median", "video", match_exposure=True)
    frame = frames[0]  # t = 0: brightness +0%, the median of 4 s about +4%
    median = st.read_frame(tmp_path / "out" / "background.tiff")
    expected, offset = st.exposure_matched(median, st.read_frame(frame))
    assert offset.max() < -3
    assert backgrounds[frame] == tmp_path / "out" / "t01-background.tiff"
    assert np.array_equal(st.read_frame(backgrounds[frame]), expected)
    ours = st.mask_with_backgrounds({frame: backgrounds[frame]}, tmp_path / "ours", jobs=1)
    theirs = run_seed_loop([frame], backgrounds[frame], tmp_path / "convert", convert=CONVERT)
    for mine, reference in zip(ours[0], theirs[0]):
        assert compare_files(mine, reference).identical, mine
    assert ours[0][1].read_bytes() == theirs[0][1].read_bytes()


def test_one_background_for_all_masks_like_mask_frames(clip, tmp_path):
    video, frames, _ = clip
    backgrounds = st.make_backgrounds(video, frames, tmp_path, "median", "video")
    ours = st.mask_with_backgrounds(backgrounds, tmp_path / "a", jobs=1)
    reference = mask_frames(frames, backgrounds[frames[0]], tmp_path / "b", jobs=1)
    for (mask, clean), (mask2, clean2) in zip(ours, reference):
        assert mask.read_bytes() == mask2.read_bytes() and clean.read_bytes() == clean2.read_bytes()


def test_first_and_path_backgrounds_are_used_as_they_are(clip, tmp_path):
    video, frames, _ = clip
    assert set(st.make_backgrounds(video, frames, tmp_path, "first").values()) == {frames[0]}
    assert set(st.make_backgrounds(None, frames, tmp_path, frames[2]).values()) == {frames[2]}


def test_progress_counts_frames_up_to_the_total(clip, tmp_path):
    video, frames, _ = clip
    seen = []
    st.make_backgrounds(video, frames, tmp_path, "median", "video", window=0.4, progress=lambda done, total: seen.append((done, total)))
    assert seen[0] == (0, 36) and seen[-1] == (36, 36)
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))


# --- errors -------------------------------------------------------------------------------------------


def one_line(error) -> str:
    text = str(error.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_a_window_longer_than_the_video_is_an_error(clip, tmp_path):
    video, frames, _ = clip
    with pytest.raises(MagicmaskError, match=r"window of 5 s is longer than the video \(1.2 s\)") as error:
        st.make_backgrounds(video, frames, tmp_path, "median", "video", window=5)
    assert "clip.mp4" in one_line(error)


def test_a_median_of_a_single_frame_is_an_error(tmp_path):
    video = make_sample_video(tmp_path / "one.mp4", width=32, height=24, count=5, keyint=5)
    frames = extract_keyframes(video, tmp_path / "frames")
    assert len(frames) == 1
    with pytest.raises(MagicmaskError, match="median of a single frame") as error:
        st.make_backgrounds(video, frames, tmp_path, "median", "keyframes")
    one_line(error)


def test_a_window_holding_one_keyframe_cannot_give_a_median(clip, tmp_path):
    video, frames, _ = clip
    with pytest.raises(MagicmaskError, match="median of a single frame"):
        st.make_backgrounds(video, frames, tmp_path, "median", "keyframes", window=0.2)


def test_a_path_background_of_another_size_is_an_error(clip, tmp_path):
    video, frames, _ = clip
    other = make_sample_video(tmp_path / "other.mp4", width=48, height=36, count=5, keyint=5)
    wrong = extract_keyframes(other, tmp_path / "other")[0]
    with pytest.raises(MagicmaskError, match="background is 48x36 but the frames are 96x72") as error:
        st.make_backgrounds(video, frames, tmp_path, wrong)
    assert str(wrong) in one_line(error)


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(source="disk"), "--from 'disk' is not a source of frames"),
        (dict(window=-1), "window -1"),
        (dict(samples=1), "samples 1 is below 2"),
        (dict(method="first", window=2), "--window makes a background per keyframe, but --background first is not made from frames"),
        (dict(method="nothing-here.tiff"), "background file not found"),
    ],
)
def test_bad_options_are_one_line_errors(clip, tmp_path, options, message):
    video, frames, _ = clip
    with pytest.raises(MagicmaskError, match=message) as error:
        st.make_backgrounds(video, frames, tmp_path, **{"method": "median", **options})
    one_line(error)


def test_scenes_frames_are_their_background_outside_the_truth():
    scene = dataclasses.replace(SCENES["linger"], width=160, height=90)
    frame, truth, background = scene.frame(30), scene.truth(30), scene.background(30)
    assert truth.any() and np.array_equal(frame[~truth], background[~truth])
    assert np.abs(frame[truth].astype(int) - background[truth]).mean() > 20


@pytest.mark.parametrize("count", [2, 3, 4, 7, 100, 101])
def test_lower_median_of_8bit_frames_counts_exactly(monkeypatch, count):
    """8-bit medians come from a counting kernel: the same values as sorting, for even and odd counts,
    flat and noisy samples, the extremes 0 and 255, in bands and threads."""
    rng = np.random.default_rng(count)
    noisy = [rng.integers(0, 256, size=(13, 9, 3), dtype=np.uint8) for _ in range(count)]
    flat = [np.full((13, 9, 3), 200, np.uint8) + rng.integers(0, 2, size=(13, 9, 3), dtype=np.uint8) for _ in range(count)]
    extremes = [np.full((13, 9, 3), 255 * (i % 2), np.uint8) for i in range(count)]
    gray = [rng.integers(0, 256, size=(13, 9, 1), dtype=np.uint8) for _ in range(count)]
    monkeypatch.setattr(st, "BAND_BYTES", 9 * 3 * count * 4)  # 4 rows per band
    for frames in (noisy, flat, extremes, gray):
        assert np.array_equal(st.lower_median(frames, threads=2), lower_median(np.stack(frames)))


# --- spans --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, span", [("0-2", (0.0, 2.0)), ("8-", (8.0, float("inf"))), (" 1.5-3.25 ", (1.5, 3.25))])
def test_spans_read_start_dash_end_in_seconds(text, span):
    assert st.parse_span(text) == span


@pytest.mark.parametrize("text", ["", "2", "3-1", "2-2", "-2", "a-b", "nan-3", "1-2-3"])
def test_a_span_that_is_not_start_dash_end_is_refused(text):
    with pytest.raises(MagicmaskError, match="not START-END"):
        st.parse_span(text)


@pytest.mark.parametrize("method", ["median", "mean", "lighten"])
def test_statistic_of_the_frames_in_spans_is_exact(clip, method, tmp_path):
    """Only the frames whose time lies in a span feed the background (seconds from the first frame)."""
    video, frames, stack = clip
    times = frame_times(video)
    spans = [(0.0, 0.2), (0.8, float("inf"))]
    chosen = st.in_spans(times, spans)
    offset = times - times[0]
    assert np.array_equal(chosen, (offset < 0.2 - 1e-6) | (offset >= 0.8 - 1e-6)) and 0 < chosen.sum() < len(times)
    st.make_backgrounds(video, frames, tmp_path, method, "video", spans=spans)
    assert np.array_equal(st.read_frame(tmp_path / "background.tiff"), REFERENCES[method](stack[chosen]))


def test_spans_are_refused_where_they_mean_nothing(clip, tmp_path):
    video, frames, _ = clip
    cases = [
        (dict(method="median", source="keyframes"), "add --from video"),
        (dict(method="median", source="video", window=0.4), "--span and --window"),
        (dict(method="first", source="video"), "--from video makes a background from every frame, but --background first is not made from frames"),
        (dict(method="median", source="video", spans=[(30.0, 40.0)]), "no frame of the video lies in 30-40 s"),
    ]
    for options, message in cases:
        options.setdefault("spans", [(0.0, 0.4)])
        with pytest.raises(MagicmaskError, match=message):
            st.make_backgrounds(video, frames, tmp_path, **options)
