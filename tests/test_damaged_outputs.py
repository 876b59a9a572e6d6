"""``check`` on a folder whose files are damaged: each damaged file is a row of the table, never a traceback."""

import shutil
import struct

import pytest
from typer.testing import CliRunner

from magicmask.cli import app
from magicmask.compare import compare_files
from magicmask.provenance.verify import verify

runner = CliRunner()


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A folder made by ``magicmask run`` from a small sample video (3 keyframes)."""
    from magicmask.sample import make_sample_video

    folder = tmp_path_factory.mktemp("made")
    video = make_sample_video(folder / "take.mp4", width=96, height=72, count=15, keyint=5)
    result = runner.invoke(app, ["run", str(video), "-o", str(folder / "out"), "--no-sheet", "-q"])
    assert result.exit_code == 0, result.output
    return folder / "out"


def flip(path, position):
    data = bytearray(path.read_bytes())
    data[position] ^= 0xFF
    path.write_bytes(bytes(data))


def ifd(path):
    return struct.unpack("<I", path.read_bytes()[4:8])[0]


# where: the IFD offset in the header, the strip data just after the header, the IFD's entry count, an IFD entry
@pytest.mark.parametrize("where", [lambda p: 4, lambda p: 8, lambda p: ifd(p), lambda p: ifd(p) + 2 + 12 * 3 + 9], ids=["header", "strip", "ifd-count", "ifd-entry"])
def test_check_marks_a_damaged_mask_in_its_table(where, made, tmp_path):
    folder = tmp_path / "out"
    shutil.copytree(made, folder)
    mask = folder / "t02-mask.tiff"
    flip(mask, where(mask))
    rows = {row.name: row for row in verify(folder, jobs=1)}
    damaged = rows["t02-mask.tiff"]
    assert damaged.hash == "differs" and damaged.rerun in ("differs", "failed") and not damaged.ok
    assert all(row.ok for name, row in rows.items() if name != "t02-mask.tiff")
    result = runner.invoke(app, ["check", str(folder)])
    assert result.exit_code == 1 and isinstance(result.exception, (SystemExit, type(None))), repr(result.exception)
    assert "t02-mask.tiff" in result.output.splitlines()[-1]  # the summary under the table names it


def test_a_file_that_cannot_be_decoded_is_a_comparison_not_an_exception(made, tmp_path):
    damaged = tmp_path / "t02-mask.tiff"
    shutil.copy(made / "t02-mask.tiff", damaged)
    flip(damaged, 4)
    compared = compare_files(damaged, made / "t02-mask.tiff")
    assert not compared.identical and not compared.readable and compared.note.startswith("cannot read: ")
    assert "`" not in compared.note and "\n" not in compared.note  # ImageMagick's reason without its source location
    reference = compare_files(made / "t02-mask.tiff", damaged)
    assert not reference.identical and reference.note.startswith("cannot read the reference: ")
    (tmp_path / "text.tiff").write_text("not an image\n")
    assert compare_files(tmp_path / "text.tiff", made / "t02-mask.tiff").note == "cannot read: not a TIFF, JPEG or PNG image"
