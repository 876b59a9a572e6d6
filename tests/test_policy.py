"""ImageMagick's resource limits: the command line raises Debian's with magicmask's own policy, the library
changes nothing in the process, and frames too large are refused up front."""

import os
import subprocess
import sys



SETTINGS = "from magicmask.cli import _process_settings; _process_settings(); "


def test_importing_magicmask_changes_no_environment_variable():
    code = "import os, json; before = dict(os.environ); import magicmask, magicmask.job, magicmask.engines.wand; print(json.dumps(dict(os.environ) == before))"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAGICK_", "WAND_"))}
    assert subprocess.check_output([sys.executable, "-c", code], env=env, text=True).strip() == "true"


def test_the_command_line_raises_imagemagicks_default_limits():
    code = SETTINGS + "from wand.resource import limits; print(limits['memory'], limits['disk'])"
    env = {k: v for k, v in os.environ.items() if k != "MAGICK_CONFIGURE_PATH"}
    memory, disk = map(int, subprocess.check_output([sys.executable, "-c", code], env=env, text=True).split())
    assert memory >= 2 * 2**30 and disk >= 16 * 2**30


def test_a_users_configure_path_is_respected(tmp_path):
    code = SETTINGS + "import os; print(os.environ['MAGICK_CONFIGURE_PATH'])"
    env = {**os.environ, "MAGICK_CONFIGURE_PATH": str(tmp_path)}
    assert subprocess.check_output([sys.executable, "-c", code], env=env, text=True).strip() == str(tmp_path)


def test_frames_too_large_for_the_limits_are_refused_with_a_hint():
    code = SETTINGS + "from magicmask.engines.wand import check_limits; check_limits(7680, 4320); check_limits(15000, 15000)"
    env = {k: v for k, v in os.environ.items() if k != "MAGICK_CONFIGURE_PATH"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 1 and "15000x15000" in done.stderr and "MAGICK_CONFIGURE_PATH" in done.stderr  # 8K fits, 15000x15000 does not
