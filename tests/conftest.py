from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
VIDEOS = ("walk", "walk10")


def pytest_report_header(config):
    from magicmask.engines import wand
    from magicmask.media.ffmpeg import version

    return [f"ImageMagick (Wand): {wand.version()}", f"ffmpeg: {version()}"]


@pytest.fixture(scope="session")
def golden() -> Path:
    return GOLDEN


def golden_frames(video: str) -> list[Path]:
    return sorted((GOLDEN / video / "frames").glob("t*.tiff"))


@pytest.fixture(scope="session")
def sample_frames(tmp_path_factory) -> list[Path]:
    """Keyframes of a freshly made sample video (not golden data): 6 frames of 96x72."""
    from magicmask.media.extract import extract_keyframes
    from magicmask.sample import make_sample_video

    folder = tmp_path_factory.mktemp("sample")
    video = make_sample_video(folder / "sample.mp4", width=96, height=72, count=30, keyint=5)
    return extract_keyframes(video, folder / "frames")


def visible(folder) -> list[str]:
    """The names in ``folder`` a user sees (magicmask's hidden records left out), sorted."""
    return sorted(p.name for p in Path(folder).iterdir() if not p.name.startswith("."))


def leftovers(folder) -> list[str]:
    """Temporary files or folders magicmask left anywhere under ``folder`` (there must be none)."""
    return sorted(str(p) for p in Path(folder).rglob(".magicmask-tmp-*"))


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """30 frames of 96x72 with a keyframe every 5: most frames are not keyframes (the foreground video's tests).
    A test module may define its own ``clip``."""
    from magicmask.sample import make_sample_video

    folder = tmp_path_factory.mktemp("clip")
    return make_sample_video(folder / "clip.mp4", width=96, height=72, count=30, keyint=5)
