"""`pip install magicmask` alone works on a machine with no ffmpeg and no ImageMagick.

In a mount namespace where Debian's ffmpeg, ffprobe, convert and the MagickWand/MagickCore libraries are
hidden (bind mounts of /dev/null over them), a fresh virtual environment with `pip install .` runs the demo
and `run` with the first, lighten and median backgrounds (ffmpeg then comes from imageio-ffmpeg, probing
from ffmpeg alone). Outside it, the real convert makes the same masks, clean images and lighten background
from those keyframes, byte for byte.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

from magicmask.params import MaskParams

ROOT = Path(__file__).resolve().parent.parent
WALK = ROOT / "golden" / "walk.mp4"
CONVERT = "/usr/bin/convert"


def hidden() -> list[str]:
    """The files to hide: the ffmpeg and ffprobe on the PATH, convert (and a stand-in for it), ImageMagick's libraries."""
    files = {os.path.realpath(found) for name in ("ffmpeg", "ffprobe", "convert") if (found := shutil.which(name))}
    files.add(os.path.realpath(CONVERT))
    for pattern in ("/usr/lib/*/libMagickWand-6*.so*", "/usr/lib/*/libMagickCore-6*.so*", "/usr/lib/*/libMagickWand-7*.so*", "/usr/lib/*/libMagickCore-7*.so*"):
        files.update(os.path.realpath(path) for path in glob.glob(pattern))
    return sorted(path for path in files if os.path.isfile(path))


def can_unshare() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(not can_unshare(), reason="needs root and unshare -m (a mount namespace) to hide ffmpeg and ImageMagick")


def convert(*args) -> None:
    done = subprocess.run([CONVERT, *map(str, args)], capture_output=True, text=True)
    assert done.returncode == 0, f"convert {' '.join(map(str, args))} failed: {done.stderr}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtual environment with `pip install .` of this tree (not editable)."""
    home = tmp_path_factory.mktemp("venv") / "env"
    venv.EnvBuilder(with_pip=True).create(home)
    done = subprocess.run([home / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check", str(ROOT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return home


def test_pip_install_runs_without_ffmpeg_and_imagemagick_and_convert_agrees(installed, tmp_path):
    out = tmp_path / "out"
    tool = installed / "bin" / "magicmask"
    hide = "".join(f"mount --bind /dev/null '{path}' && " for path in hidden())
    steps = [
        "! command -v ffmpeg && ! command -v ffprobe && ! command -v convert",
        f"'{installed / 'bin' / 'python'}' -c 'from magicmask.engines import wand; assert not wand.available()'",
        f"'{installed / 'bin' / 'python'}' -c 'import sys, magicmask.cli, magicmask.job; assert not [m for m in sys.modules if m.startswith(\"wand\")]'",
        f"'{tool}' demo -o '{out / 'demo'}'",
        f"'{tool}' run '{WALK}' -o '{out / 'first'}'",
        f"'{tool}' run '{WALK}' -o '{out / 'lighten'}' --background lighten",
        f"'{tool}' run '{WALK}' -o '{out / 'median'}' --background median --from video",
    ]
    script = hide + " && ".join(steps)
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    record = (out / "median" / "magicmask.json").read_text()
    assert "imageio_ffmpeg" in record and '"imagemagick": "not installed"' in record

    # outside the namespace: the blog's commands, by the real convert, on the keyframes magicmask extracted there
    frames_of = {"first": out / "first", "lighten": out / "lighten", "median": out / "median", "demo": out / "demo" / "frames"}
    for name, folder in frames_of.items():
        frames = sorted(folder.glob("t[0-9][0-9].tiff"))
        assert len(frames) >= 3, name
        background = frames[0] if name in ("first", "demo") else folder / "background.tiff"
        if name == "lighten":
            convert(*frames, "-background", "black", "-compose", "lighten", "-flatten", tmp_path / "lighten.tiff")
            assert (tmp_path / "lighten.tiff").read_bytes() == background.read_bytes(), "lighten background"
        for frame in frames:
            mask, clean = tmp_path / "ref-mask.tiff", tmp_path / "ref-clean.jpg"
            convert(background, frame, "-compose", "difference", "-composite", *MaskParams().convert_options(), mask)
            convert(frame, mask, "-compose", "multiply", "-flatten", clean)
            stem = frame.stem
            assert (folder / f"{stem}-mask.tiff").read_bytes() == mask.read_bytes(), f"{name} {stem} mask"
            assert (folder / f"{stem}-clean.jpg").read_bytes() == clean.read_bytes(), f"{name} {stem} clean"


