import os

import pytest

from magicmask.errors import MagicmaskError
from magicmask.files import check_tiff, frame_name, output_paths, select_frames, write_atomic
from magicmask.params import MaskParams, parse_blur, parse_threshold


@pytest.mark.parametrize(
    "text, expected",
    [("5%", 0.05), ("20%", 0.2), ("0%", 0.0), ("100%", 1.0), ("3276.8", 0.05), ("0", 0.0), (" 7.5% ", 0.075)],
)
def test_threshold_reads_imagemagick_syntax(text, expected):
    assert parse_threshold(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "five", "-5%", "101%", "5%%", "70000"])
def test_bad_threshold_is_refused_with_its_value(text):
    with pytest.raises(MagicmaskError, match="threshold"):
        parse_threshold(text)


@pytest.mark.parametrize("text, expected", [("0x3", (0.0, 3.0)), ("5", (5.0, 1.0)), ("2x0.5", (2.0, 0.5)), ("x2", (0.0, 2.0))])
def test_blur_reads_imagemagick_geometry(text, expected):
    assert parse_blur(text) == expected


@pytest.mark.parametrize("text", ["", "3y4", "axb", "0x0"])
def test_bad_blur_is_refused(text):
    with pytest.raises(MagicmaskError, match="blur"):
        parse_blur(text)


def test_mask_params_give_the_seeds_convert_options():
    assert MaskParams().convert_options() == ["-threshold", "5%", "-blur", "0x3", "-threshold", "20%", "-blur", "0x3"]
    with pytest.raises(MagicmaskError):
        MaskParams(threshold2="lots")


def test_frame_name_drops_the_last_extension_only():
    assert frame_name("t01.tiff") == "t01"
    assert frame_name("dir/take.2.tiff") == "take.2"
    assert frame_name(".hidden") == ".hidden"
    assert [str(p) for p in output_paths("a/t01.tiff")] == [os.path.join("a", "t01-mask.tiff"), os.path.join("a", "t01-clean.jpg")]
    mask, clean = output_paths("a/t01.tiff", "out")
    assert (str(mask), str(clean)) == (os.path.join("out", "t01-mask.tiff"), os.path.join("out", "t01-clean.jpg"))


def test_earlier_outputs_are_not_frames():
    paths = ["t01.tiff", "t01-mask.tiff", "background.tiff", "t02.tiff", "t01.tiff", ".magicmask-t03-x.tiff", "t02-background.tiff"]
    assert [p.name for p in select_frames(paths)] == ["t01.tiff", "t02.tiff"]


def test_tiff_is_recognised_by_content_not_name(tmp_path):
    svg = tmp_path / "frame.tiff"
    svg.write_text("<?xml version='1.0'?><svg></svg>")
    with pytest.raises(MagicmaskError, match="SVG"):
        check_tiff(svg)
    mvg = tmp_path / "drawing.tiff"
    mvg.write_text("push graphic-context\nviewbox 0 0 10 10\nimage over 0,0 0,0 '/etc/passwd'\n")
    with pytest.raises(MagicmaskError, match="MVG"):
        check_tiff(mvg)
    empty = tmp_path / "empty.tiff"
    empty.write_bytes(b"")
    with pytest.raises(MagicmaskError, match="empty"):
        check_tiff(empty)
    with pytest.raises(MagicmaskError, match="not found"):
        check_tiff(tmp_path / "missing.tiff")
    good = tmp_path / "good.tiff"
    good.write_bytes(b"II*\x00" + b"\x00" * 8)
    assert check_tiff(good) == good


def test_atomic_write_leaves_no_temporary_file(tmp_path):
    target = write_atomic(tmp_path / "out" / "x.tiff", b"data")
    assert target.read_bytes() == b"data"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["x.tiff"]


def test_writing_where_no_folder_can_be_made_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    with pytest.raises(MagicmaskError, match="cannot write") as info:
        write_atomic(blocker / "out" / "x.tiff", b"data")
    assert "file" in str(info.value)


def test_sweep_removes_only_what_a_gone_process_of_this_machine_left(tmp_path):
    import subprocess
    import sys

    from magicmask.files import sweep_stale, temp_prefix

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # reaped: its PID no longer runs
    ours = temp_prefix()
    theirs = ours.replace(f"-{os.getpid()}@", f"-{gone.pid}@")
    stale_file = tmp_path / f"{theirs}t01-mask-0123456789abcdef.tiff"
    stale_dir = tmp_path / f"{theirs}keyframes-abc"
    stale_file.write_bytes(b"half")
    stale_dir.mkdir()
    (stale_dir / "000000001.tiff").write_bytes(b"II*\x00")
    running = tmp_path / f"{ours}t02-mask-0123456789abcdef.tiff"  # this process: still writing
    other_host = tmp_path / f".magicmask-tmp-{gone.pid}@00000000-t03-mask-0123456789abcdef.tiff"
    unowned = tmp_path / ".magicmask-tmp-t04-mask-0123456789abcdef.tiff"  # no owner in the name
    records = tmp_path / ".magicmask-masks.json"
    for path in (running, other_host, unowned, records):
        path.write_bytes(b"x")
    assert sorted(sweep_stale(tmp_path)) == sorted([stale_file, stale_dir])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (running, other_host, unowned, records))
    assert sweep_stale(tmp_path / "missing") == []
