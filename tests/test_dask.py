"""The dask backend: a real local cluster (scheduler and two worker processes on 127.0.0.1) writes the same
files as a local run, survives a worker killed mid-run, and names the frame when one fails."""

import os
import signal
import sys

import pytest

distributed = pytest.importorskip("distributed")

from typer.testing import CliRunner  # noqa: E402

from conftest import GOLDEN, leftovers, visible  # noqa: E402
from magicmask import cluster as cluster_module  # noqa: E402
from magicmask.background import keyframe_display, lighten_background  # noqa: E402
from magicmask.cli import app  # noqa: E402
from magicmask.compare import compare_files  # noqa: E402
from magicmask.errors import MagicmaskError  # noqa: E402
from magicmask.media.extract import extract_keyframes  # noqa: E402
from magicmask.masks import mask_frames  # noqa: E402
from magicmask import run  # noqa: E402
from magicmask.sample import make_sample_video  # noqa: E402


@pytest.fixture(scope="module")
def client():
    """Two single-threaded worker processes, each under a nanny that restarts it when it dies."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None, worker_dashboard_address=None
    ) as cluster, distributed.Client(cluster, set_as_default=False) as client:
        yield client


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """24 keyframes of 480x360: enough work for a worker to be killed while the others go on."""
    folder = tmp_path_factory.mktemp("dask-frames")
    video = make_sample_video(folder / "sample.mp4", width=480, height=360, count=48, keyint=2)
    return extract_keyframes(video, folder / "frames")


def written(folder):
    """The files a run wrote, its record and contact sheet left out (only ``magicmask run`` writes them)."""
    return {name: (folder / name).read_bytes() for name in visible(folder) if name not in ("magicmask.json", "sheet.jpg")}


@pytest.mark.parametrize("engine", ["native", "wand"])
def test_masks_on_a_cluster_are_the_local_runs_bytes(client, sample_frames, engine, tmp_path):
    local = mask_frames(sample_frames, sample_frames[0], tmp_path / "local", engine=engine, jobs=1)
    seen = []
    remote = mask_frames(sample_frames, sample_frames[0], tmp_path / "dask", progress=seen.append, engine=engine, scheduler=client)
    assert [(m.name, c.name) for m, c in remote] == [(m.name, c.name) for m, c in local]
    assert written(tmp_path / "dask") == written(tmp_path / "local")
    assert len(written(tmp_path / "dask")) == 2 * len(sample_frames)
    assert sorted(seen) == sorted(sample_frames)
    assert leftovers(tmp_path) == []


def test_backgrounds_are_a_tree_of_partial_folds_with_the_local_bytes(client, frames, tmp_path, monkeypatch):
    assert len(frames) == 24
    lighten_background(frames, tmp_path / "local.tiff", jobs=1)
    keyframe_display(frames, tmp_path / "local.jpg", jobs=1)
    folded = []
    lighten_background(frames, tmp_path / "dask.tiff", progress=folded.append, scheduler=client)
    keyframe_display(frames, tmp_path / "dask.jpg", scheduler=client)
    assert (tmp_path / "dask.tiff").read_bytes() == (tmp_path / "local.tiff").read_bytes()
    assert (tmp_path / "dask.jpg").read_bytes() == (tmp_path / "local.jpg").read_bytes()
    assert sorted(folded) == sorted(frames)
    # one frame per fold: 24 leaves combined pairwise, in uneven order
    monkeypatch.setattr(cluster_module, "CHUNK", 1)
    lighten_background(frames[:13], tmp_path / "tree.tiff", scheduler=client)
    lighten_background(frames[:13], tmp_path / "tree-local.tiff", jobs=1)
    assert (tmp_path / "tree.tiff").read_bytes() == (tmp_path / "tree-local.tiff").read_bytes()


@pytest.mark.parametrize("video", ["walk", "walk10"])
def test_run_on_a_cluster_from_the_command_line_matches_the_seed(client, video, tmp_path):
    address = client.scheduler.address
    result = CliRunner().invoke(app, ["run", str(GOLDEN / f"{video}.mp4"), "-o", str(tmp_path / "dask"), "-b", "lighten", "--cutout", "--backend", "dask", "--scheduler", address, "-q"])
    assert result.exit_code == 0, result.output
    run(GOLDEN / f"{video}.mp4", tmp_path / "local", background="lighten", jobs=1, cutout=True)
    assert written(tmp_path / "dask") == written(tmp_path / "local")
    made = visible(tmp_path / "dask")  # measured and cut out on the workers: the same bytes
    assert "motion.tsv" in made and sum(name.endswith("-cutout.png") for name in made) == sum(name.endswith("-mask.tiff") for name in made) > 1
    for name in visible(tmp_path / "dask"):
        if name.endswith(("-mask.tiff", "-clean.jpg")) or name == "background.tiff":
            assert compare_files(tmp_path / "dask" / name, GOLDEN / video / "lighten" / name).identical, name


@pytest.mark.parametrize("options", [["-b", "median", "--from", "video", "--window", "0.8"], ["-b", "median", "--threshold", "auto"]])
def test_a_background_or_threshold_per_keyframe_on_a_cluster_matches_a_local_run(client, options, tmp_path):
    address = client.scheduler.address
    result = CliRunner().invoke(app, ["run", str(GOLDEN / "walk.mp4"), "-o", str(tmp_path / "dask"), *options, "--backend", "dask", "--scheduler", address, "-q"])
    assert result.exit_code == 0, result.output
    local = CliRunner().invoke(app, ["run", str(GOLDEN / "walk.mp4"), "-o", str(tmp_path / "local"), *options, "-j", "1", "-q"])
    assert local.exit_code == 0, local.output
    assert written(tmp_path / "dask") == written(tmp_path / "local")


def test_a_worker_killed_mid_run_loses_no_frame(client, frames, tmp_path):
    mask_frames(frames, frames[0], tmp_path / "local", engine="wand", jobs=1)
    killed = []

    def kill_a_busy_worker(frame):
        if killed:
            return
        busy = [address for address, keys in client.processing().items() if keys]
        pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
        os.kill(pid, signal.SIGKILL)
        killed.append((pid, len(done)))

    done = []
    mask_frames(frames, frames[0], tmp_path / "dask", progress=lambda f: (done.append(f), kill_a_busy_worker(f)), engine="wand", scheduler=client)
    pid, finished_then = killed[0]
    assert finished_then < len(frames), "the worker must die mid-run"
    assert sorted(done) == sorted(frames)
    assert written(tmp_path / "dask") == written(tmp_path / "local")
    assert leftovers(tmp_path) == []
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it, for the following tests
    assert pid not in client.run(os.getpid).values()


def test_a_bad_frame_on_a_worker_is_named_and_the_others_are_written(client, sample_frames, tmp_path):
    bad = tmp_path / "frames" / "t99.tiff"
    bad.parent.mkdir()
    bad.write_bytes(sample_frames[1].read_bytes()[:300])  # a TIFF header, then nothing
    errors = []
    done = mask_frames([*sample_frames, bad], sample_frames[0], tmp_path / "out", on_error=errors.append, scheduler=client)
    assert len(done) == len(sample_frames)
    assert [error.path for error in errors] == [str(bad)]
    assert "\n" not in str(errors[0]) and "magicmask-" not in str(errors[0])
    assert str(errors[0]).startswith(f"{bad}: cannot decode frame as TIFF")
    with pytest.raises(MagicmaskError) as folding:
        lighten_background([*sample_frames, bad], tmp_path / "bg.tiff", scheduler=client)
    assert folding.value.path == str(bad) and "magicmask-" not in str(folding.value)


def test_without_the_dask_extra_the_backend_says_how_to_install_it(sample_frames, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(MagicmaskError, match=r"pip install 'magicmask\[dask\]'"):
        mask_frames(sample_frames, sample_frames[0], tmp_path, scheduler="tcp://127.0.0.1:8786")
    frames = [str(frame) for frame in sample_frames]
    for command in (["masks", *frames, "-b", frames[0]], ["background", *frames], ["display", *frames], ["run", str(GOLDEN / "walk.mp4"), "-o", str(tmp_path / "run")]):
        result = CliRunner().invoke(app, [*command, "--backend", "dask", "--scheduler", "tcp://127.0.0.1:8786", "-q"])
        assert result.exit_code == 1
        assert result.output == "error: the dask backend needs dask.distributed, which is not installed (install it with: pip install 'magicmask[dask]')\n"
    assert not (tmp_path / "run").exists(), "refused before any work"


def test_backend_and_scheduler_go_together(sample_frames):
    frame = str(sample_frames[0])
    result = CliRunner().invoke(app, ["masks", frame, "-b", frame, "--backend", "dask", "-q"])
    assert result.exit_code == 1 and "--backend dask needs --scheduler" in result.output
    result = CliRunner().invoke(app, ["masks", frame, "-b", frame, "--scheduler", "tcp://127.0.0.1:8786", "-q"])
    assert result.exit_code == 1 and "add --backend dask" in result.output
    result = CliRunner().invoke(app, ["masks", frame, "-b", frame, "--backend", "spark", "-q"])
    assert result.exit_code == 1 and "use one of: loky, dask" in result.output


# --- the video job, whole, on the workers ---------------------------------------------------------------

import contextlib  # noqa: E402
import json  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import magicmask  # noqa: E402
from magicmask.cluster import PROGRESS_TOPIC  # noqa: E402
from magicmask.provenance.verify import verify  # noqa: E402

BATCH = ("walk", "walk10")


@pytest.fixture(scope="module")
def local_batch(tmp_path_factory):
    """The batch run here, with no cluster: what every cluster run must write, byte for byte."""
    root = tmp_path_factory.mktemp("local-batch")
    results = magicmask.run_many([GOLDEN / f"{name}.mp4" for name in BATCH], root, background="lighten", jobs=1)
    assert [result.status for result in results] == ["done", "done"]
    return root


def broken_video(folder):
    """A file named as a video that ffmpeg cannot read."""
    path = folder / "broken.mp4"
    path.write_bytes((GOLDEN / "walk.mp4").read_bytes()[:100])
    return path


def recorded_right(folder) -> bool:
    """Whether the folder's record describes its files (sizes, hashes, names), by hash."""
    verdicts = verify(folder, rerun=False)
    return bool(verdicts) and all(verdict.ok for verdict in verdicts)


def record_of(folder) -> dict:
    """The folder's record, its creation time left out."""
    record = json.loads((folder / "magicmask.json").read_text())
    del record["created"]
    return record


def assert_same_as_local(root, local_batch):
    for name in BATCH:
        assert written(root / name) == written(local_batch / name), name
        assert recorded_right(root / name), name  # the record written here describes the files, hashes included
        assert record_of(root / name) == record_of(local_batch / name), name  # paths, commands, hashes: the client's


@pytest.mark.parametrize("storage", ["shared", "send"])
def test_a_batch_runs_whole_on_the_workers_with_the_local_runs_bytes(client, storage, local_batch, tmp_path):
    client.get_events(PROGRESS_TOPIC)
    before = len(client.get_events(PROGRESS_TOPIC))
    videos = [GOLDEN / f"{name}.mp4" for name in BATCH] + [broken_video(tmp_path)]
    seen = []
    results = magicmask.run_many(videos, tmp_path / "out", background="lighten", scheduler=client, storage=storage, progress=lambda *a: seen.append(a))
    assert [result.status for result in results] == ["done", "done", "failed"]
    assert results[2].message.startswith(f"{videos[2]}: ffmpeg cannot read this as a video")
    assert_same_as_local(tmp_path / "out", local_batch)
    record = json.loads((tmp_path / "out" / "walk" / "magicmask.json").read_text())
    assert record["video"]["path"] == str(GOLDEN / "walk.mp4")
    assert str(tmp_path / "out" / "walk") not in json.dumps(record) or storage == "shared"
    assert "magicmask-" not in json.dumps(record).replace("magicmask-record", "")  # no worker's temporary path
    assert len(client.get_events(PROGRESS_TOPIC)) > before, "the workers report the frames they make"
    count = sum(len(result.keyframes) for result in results)
    assert count == 8 and seen[-1] == ("frames", count, count)
    assert results[0].outputs[0] == (tmp_path / "out" / "walk" / "t01-mask.tiff", tmp_path / "out" / "walk" / "t01-clean.jpg")
    assert leftovers(tmp_path) == []
    again = magicmask.run_many(videos[:2], tmp_path / "out", background="lighten", jobs=1)
    assert [result.status for result in again] == ["up to date", "up to date"]


def test_a_threshold_map_per_video_runs_on_the_workers(client, tmp_path):
    options = ["-b", "median", "--threshold", "adaptive"]
    result = CliRunner().invoke(app, ["run", str(GOLDEN / "walk.mp4"), "-o", str(tmp_path / "dask"), *options, "--backend", "dask", "--scheduler", client.scheduler.address, "-q"])
    assert result.exit_code == 0, result.output
    local = CliRunner().invoke(app, ["run", str(GOLDEN / "walk.mp4"), "-o", str(tmp_path / "local"), *options, "-j", "1", "-q"])
    assert local.exit_code == 0, local.output
    ours, theirs = written(tmp_path / "dask"), written(tmp_path / "local")
    # threshold.tiff: the same pixels; its encoder leaves one padding byte unset (two local runs differ there too)
    assert compare_files(tmp_path / "dask" / "threshold.tiff", tmp_path / "local" / "threshold.tiff").identical
    del ours["threshold.tiff"], theirs["threshold.tiff"]
    assert ours == theirs and len(ours) == 17  # motion.tsv too


def _worker_command(address):
    return [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1", "--no-dashboard", "--no-nanny"]


@pytest.fixture
def private_workers(tmp_path_factory):
    """A scheduler here and two workers in their own mount namespace, where an empty file system covers this
    test session's temporary folder: they see none of this process's temporary files (as on a cluster without
    shared storage), while the Python they run (which may itself live under /tmp, e.g. in a clone's .tox)
    stays visible."""
    private = shlex.quote(str(tmp_path_factory.getbasetemp()))
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", f"mount -t tmpfs tmpfs {private}"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a mount namespace here (unshare needs root): {probe.stderr.decode().strip()}")
    with distributed.LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address=None) as cluster, distributed.Client(cluster, set_as_default=False) as client:
        line = " ".join(map(repr, _worker_command(cluster.scheduler_address)))
        workers = [subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", f"mount -t tmpfs tmpfs {private} && exec {line}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
        try:
            client.wait_for_workers(2, timeout=60)
            yield client
        finally:
            for worker in workers:
                worker.kill()
                worker.wait()


def test_without_shared_storage_the_videos_travel_and_the_outputs_come_back(private_workers, local_batch, tmp_path):
    client = private_workers
    hidden = client.run(lambda path: os.path.exists(path), str(tmp_path))
    assert set(hidden.values()) == {False}, "the workers must not see this test's files"
    videos = [shutil.copy(GOLDEN / f"{name}.mp4", tmp_path / f"{name}.mp4") for name in BATCH]
    refused = magicmask.run_many(videos, tmp_path / "refused", background="lighten", scheduler=client, storage="shared")
    assert all(result.failed for result in refused)
    assert refused[0].message.startswith(f"{videos[0]}: the Dask workers do not see this video as this machine does: ")
    assert "--storage send" in refused[0].message
    results = magicmask.run_many(videos, tmp_path / "out", background="lighten", scheduler=client)  # storage="auto"
    assert [result.status for result in results] == ["done", "done"]
    for name in BATCH:
        assert written(tmp_path / "out" / name) == written(local_batch / name), name
        assert recorded_right(tmp_path / "out" / name)
    assert json.loads((tmp_path / "out" / "walk" / "magicmask.json").read_text())["video"]["path"] == str(tmp_path / "walk.mp4")
    # a background file travels too; the record names the files as this machine does
    background = tmp_path / "given" / "t03.tiff"
    background.parent.mkdir()
    shutil.copy(local_batch / "walk" / "t03.tiff", background)
    given = magicmask.run(videos[0], tmp_path / "given" / "walk", background=background, scheduler=client, storage="send")
    local = magicmask.run(videos[0], tmp_path / "local" / "walk", background=background, jobs=1)
    assert given.status == local.status == "done"
    assert written(tmp_path / "given" / "walk") == written(tmp_path / "local" / "walk")
    assert record_of(tmp_path / "given" / "walk") == record_of(tmp_path / "local" / "walk")
    assert record_of(tmp_path / "given" / "walk")["inputs"]["background"]["path"] == str(background)
    assert leftovers(tmp_path) == []


def test_the_scheduler_file_a_dask_scheduler_writes_names_the_cluster(client, local_batch, tmp_path):
    scheduler_file = tmp_path / "scheduler.json"
    client.write_scheduler_file(str(scheduler_file))
    videos = [str(GOLDEN / f"{name}.mp4") for name in BATCH]
    result = CliRunner().invoke(app, ["run", *videos, "-o", str(tmp_path / "out"), "-b", "lighten", "--backend", "dask", "--scheduler-file", str(scheduler_file)])
    assert result.exit_code == 0, result.output
    assert "done" in result.output and "failed" not in result.output
    assert_same_as_local(tmp_path / "out", local_batch)
    (tmp_path / "empty.json").write_text("{}")
    for arguments, expected in (
        (["--scheduler-file", str(tmp_path / "none.json")], f"error: {tmp_path / 'none.json'}: scheduler file not found"),
        (["--scheduler-file", str(tmp_path / "empty.json")], f"error: {tmp_path / 'empty.json'}: the scheduler file names no address"),
        (["--scheduler-file", str(scheduler_file), "--scheduler", client.scheduler.address], "error: --scheduler and --scheduler-file both name the Dask scheduler"),
        (["--scheduler-file", str(scheduler_file), "--storage", "nfs"], "error: --storage 'nfs' is not a storage mode (use one of: auto, shared, send)"),
    ):
        refused = CliRunner().invoke(app, ["run", videos[0], "-o", str(tmp_path / "refused"), "--backend", "dask", *arguments, "-q"])
        assert refused.exit_code == 1 and refused.output.startswith(expected), refused.output
        assert "Traceback" not in refused.output
    plain = CliRunner().invoke(app, ["run", videos[0], "-o", str(tmp_path / "refused"), "--scheduler-file", str(scheduler_file), "-q"])
    assert plain.exit_code == 1 and "--scheduler-file is for the dask backend (add --backend dask)" in plain.output


@pytest.fixture(scope="module")
def longer(tmp_path_factory):
    """A video of 24 keyframes (480x360), and the batch with it run here."""
    folder = tmp_path_factory.mktemp("longer")
    video = make_sample_video(folder / "long.mp4", width=480, height=360, count=48, keyint=2)
    results = magicmask.run_many([video, GOLDEN / "walk.mp4", GOLDEN / "walk10.mp4"], folder / "local", background="lighten", jobs=1)
    assert [len(result.keyframes) for result in results] == [24, 5, 3]
    return video, folder / "local"


def kill_when(client, started, killed, prefix="magicmask-video-"):
    """In a thread: once ``started`` is set, SIGKILL a worker that is running a video's job (a task whose
    key starts with ``prefix``)."""

    def kill():
        started.wait(60)
        for _ in range(500):
            busy = [address for address, keys in client.processing().items() if any(key.startswith(prefix) for key in keys)]
            if busy:
                pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.01)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("storage", ["shared", "send"])
def test_a_worker_killed_mid_batch_changes_nothing(client, longer, storage, tmp_path):
    video, local = longer
    client.wait_for_workers(2, timeout=60)
    started, killed = threading.Event(), []
    thread = kill_when(client, started, killed)
    seen = []

    def progress(stage, done, total):
        seen.append((done, total))
        if stage == "frames" and done > 0:
            started.set()

    results = magicmask.run_many([video, GOLDEN / "walk.mp4", GOLDEN / "walk10.mp4"], tmp_path / "out", background="lighten", scheduler=client, storage=storage, progress=progress)
    thread.join()
    assert len(killed) == 1, "a worker must die mid-batch"
    assert [result.status for result in results] == ["done", "done", "done"]
    for result in results:
        assert written(result.folder) == written(local / result.folder.name), result.folder.name
        assert recorded_right(result.folder)
        assert visible(result.folder) == visible(local / result.folder.name)  # nothing more: no partial file
    assert leftovers(tmp_path) == []
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it, for the following tests
    assert killed[0] not in client.run(os.getpid).values()


def test_a_worker_killed_in_a_segment_of_a_long_video_changes_nothing(client, tmp_path):
    video = make_sample_video(tmp_path / "long.mp4", width=320, height=240, count=96, keyint=2)
    local = magicmask.run(video, tmp_path / "local" / "long", jobs=1)
    client.wait_for_workers(2, timeout=60)
    started, killed = threading.Event(), []
    thread = kill_when(client, started, killed, prefix="magicmask-segment-")

    def progress(stage, done, total):
        if stage == "frames" and done > 0:
            started.set()

    result = magicmask.run(video, tmp_path / "dask" / "long", scheduler=client, progress=progress)
    thread.join()
    assert len(killed) == 1, "a worker must die in a segment"
    assert result.status == local.status == "done"
    assert written(tmp_path / "dask" / "long") == written(tmp_path / "local" / "long")
    assert visible(tmp_path / "dask" / "long") == visible(tmp_path / "local" / "long")
    assert leftovers(tmp_path) == []
    client.wait_for_workers(2, timeout=60)


def test_a_video_that_keeps_killing_workers_fails_alone(local_batch, tmp_path):
    """The scheduler gives up on a task after its workers died twice (allowed-failures 1): that video fails,
    named; the others are done."""
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None) as cluster, distributed.Client(cluster, set_as_default=False) as client:
            stop, killed = threading.Event(), []

            def kill_walk10():  # as a decoder crash on this video would
                while not stop.is_set():
                    for address, keys in client.processing().items():
                        if address not in killed and any(key.startswith("magicmask-video-walk10.mp4-") for key in keys):  # a dead one is listed a while
                            with contextlib.suppress(Exception):
                                os.kill(client.run(os.getpid, workers=[address])[address], signal.SIGKILL)
                                killed.append(address)
                    time.sleep(0.01)

            thread = threading.Thread(target=kill_walk10, daemon=True)
            thread.start()
            try:
                results = magicmask.run_many([GOLDEN / "walk10.mp4", GOLDEN / "walk.mp4"], tmp_path / "out", background="lighten", scheduler=client)
            finally:
                stop.set()
                thread.join()
    assert len(killed) >= 2
    assert [result.status for result in results] == ["failed", "done"]
    assert str(results[0].error) == f"{GOLDEN / 'walk10.mp4'}: Dask workers kept dying while processing this file (out of memory?) (check the workers' memory and logs)"
    assert written(results[1].folder) == written(local_batch / "walk")
    assert leftovers(tmp_path) == []


def test_a_long_video_is_cut_into_segments_over_the_workers_with_the_local_runs_bytes(client, tmp_path):
    """105 keyframes (names widened past 99), the first as background: segments decoded by ffmpeg seeking to
    their first keyframe, on both workers, then one completion; the same files as a local run."""
    video = make_sample_video(tmp_path / "long.mp4", width=96, height=72, count=210, keyint=2)
    client.wait_for_workers(2, timeout=60)
    before = len(client.get_events(PROGRESS_TOPIC))
    result = magicmask.run(video, tmp_path / "dask" / "long", scheduler=client, cutout=True)
    local = magicmask.run(video, tmp_path / "local" / "long", jobs=1, cutout=True)
    assert result.status == local.status == "done"
    assert len(local.keyframes) == 105 and result.keyframes[0].name == "t001.tiff"
    assert result.motion == tmp_path / "dask" / "long" / "motion.tsv" and len(result.cutouts) == 105
    assert written(tmp_path / "dask" / "long") == written(tmp_path / "local" / "long")
    assert (tmp_path / "dask" / "long" / "sheet.jpg").read_bytes() == (tmp_path / "local" / "long" / "sheet.jpg").read_bytes()
    assert recorded_right(tmp_path / "dask" / "long")
    parts = {key.partition("#")[2] for _, (key, *_) in client.get_events(PROGRESS_TOPIC)[before:]}
    assert len(parts - {""}) >= 4, f"segments: {sorted(parts)}"
    assert leftovers(tmp_path) == []
    again = magicmask.run(video, tmp_path / "dask" / "long", jobs=1, cutout=True)
    assert again.status == "up to date"
    broken = magicmask.run_many([broken_video(tmp_path)], tmp_path / "broken", scheduler=client)  # planned, then failing as locally
    assert broken[0].failed and broken[0].message.startswith(f"{tmp_path / 'broken.mp4'}: ffmpeg cannot read this as a video")
