"""The record's shape (pytest-regressions' data_regression): what magicmask.json names and how, for the
background and threshold modes. Hashes, sizes, dates and versions are left out; the video's path is VIDEO.
The pixels themselves are checked against the real convert elsewhere (test_golden, test_video_job)."""

import os

import pytest

import magicmask
from conftest import GOLDEN
from magicmask.provenance.record import load


def shape(folder) -> dict:
    _, record = load(folder)
    video = record["video"]["path"]

    def plain(text: str) -> str:
        return text.replace("file:" + video, "VIDEO").replace(video, "VIDEO")

    return {
        "format": record["format"],
        "options": record["options"],
        "keyframes": record["keyframes"],
        "backgrounds": record["backgrounds"],
        "thresholds": record.get("thresholds"),
        "commands": [plain(line) for line in record["commands"]],
        "outputs": {name: plain(facts["made_by"]) for name, facts in sorted(record["outputs"].items())},
        "video": sorted(record["video"]),
        "keys": sorted(record),
    }


@pytest.mark.parametrize(
    "name, options",
    [
        ("first", {}),
        ("lighten-display", dict(background="lighten", display=True)),
        ("median-window-exposure", dict(background="median", source="video", window=0.8, match_exposure=True)),
        ("median-adaptive", dict(background="median", source="video", threshold="adaptive")),
    ],
)
def test_the_record_names_every_file_with_what_makes_it(name, options, tmp_path, data_regression):
    magicmask.run(GOLDEN / "walk.mp4", tmp_path / name, **options)
    data_regression.check(shape(tmp_path / name), basename=f"record-{name}")
    assert os.path.isfile(tmp_path / name / "magicmask.json")
