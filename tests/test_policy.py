"""ImageMagick's resource limits: magicmask's own policy raises Debian's, and frames too large are refused up front."""

import os
import subprocess
import sys

import pytest

from magicmask.errors import MagicmaskError


def test_magicmask_raises_imagemagicks_default_limits():
    code = "import magicmask; from wand.resource import limits; print(limits['memory'], limits['disk'])"
    env = {k: v for k, v in os.environ.items() if k != "MAGICK_CONFIGURE_PATH"}
    memory, disk = map(int, subprocess.check_output([sys.executable, "-c", code], env=env, text=True).split())
    assert memory >= 2 * 2**30 and disk >= 16 * 2**30


def test_a_users_configure_path_is_respected(tmp_path):
    code = "import magicmask, os; print(os.environ['MAGICK_CONFIGURE_PATH'])"
    env = {**os.environ, "MAGICK_CONFIGURE_PATH": str(tmp_path)}
    assert subprocess.check_output([sys.executable, "-c", code], env=env, text=True).strip() == str(tmp_path)


def test_frames_too_large_for_the_limits_are_refused_with_a_hint():
    from magicmask.engines.wand import check_limits

    check_limits(7680, 4320)  # 8K fits
    with pytest.raises(MagicmaskError, match="MAGICK_CONFIGURE_PATH"):
        check_limits(15000, 15000)
