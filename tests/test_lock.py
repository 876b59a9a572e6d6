"""The folder lock: one run at a time per output folder; a lock whose holder is gone never blocks."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from magicmask.errors import MagicmaskError
from magicmask.files import sweep_stale
from magicmask.lock import LOCK_NAME, FolderLock, Holder, process_start, read_holder

HOLD = """
import sys, time
from magicmask.lock import FolderLock
with FolderLock(sys.argv[1], description="magicmask run take.mp4"):
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def holder_process(tmp_path):
    """Another process holding the lock of ``tmp_path / 'out'``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "out")], stdout=subprocess.PIPE, env=env, text=True)
    assert process.stdout.readline().strip() == "held"
    yield process
    if process.poll() is None:
        process.kill()
    process.wait()


def foreign_lock(folder, age):
    """A lock file as a run on another machine writes it, last refreshed ``age`` seconds ago."""
    folder.mkdir(exist_ok=True)
    holder = Holder(4242, "render-node-7", "2026-12-01T10:00:00+00:00", "magicmask run other.mp4", "some-boot", 123, "feedfacefeedface")
    (folder / LOCK_NAME).write_bytes(holder.to_json())
    then = time.time() - age
    os.utime(folder / LOCK_NAME, (then, then))


def test_a_second_lock_on_a_folder_in_use_is_refused_naming_the_holder(tmp_path):
    with FolderLock(tmp_path, description="magicmask run take.mp4"):
        with pytest.raises(MagicmaskError) as refused:
            FolderLock(tmp_path, description="magicmask run again.mp4").acquire()
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"{tmp_path}: the folder is in use")
    assert f"pid {os.getpid()} on {socket.gethostname()}" in message and "magicmask run take.mp4" in message and "since 20" in message


def test_a_folder_locked_by_another_process_is_refused(holder_process, tmp_path):
    with pytest.raises(MagicmaskError, match=f"pid {holder_process.pid} on {socket.gethostname()}.*magicmask run take.mp4"):
        with FolderLock(tmp_path / "out"):
            pass


def test_a_killed_holder_does_not_block_the_next_run(holder_process, tmp_path):
    holder_process.send_signal(signal.SIGKILL)
    holder_process.wait()
    assert read_holder(tmp_path / "out").pid == holder_process.pid  # left behind
    with FolderLock(tmp_path / "out", description="next") as lock:
        assert read_holder(tmp_path / "out") == lock.holder
    assert not (tmp_path / "out" / LOCK_NAME).exists()


def test_a_lock_whose_pid_now_names_another_process_does_not_block(tmp_path):
    mine = Holder.of_this_process("")
    reused = Holder(1, mine.host, mine.since, "an old run", mine.boot, (process_start(1) or 0) + 1, "0123456789abcdef")
    (tmp_path / LOCK_NAME).write_bytes(reused.to_json())
    with FolderLock(tmp_path):
        pass


def test_a_fresh_lock_of_another_machine_blocks_and_a_stale_one_does_not(tmp_path):
    foreign_lock(tmp_path, age=5)
    with pytest.raises(MagicmaskError, match="pid 4242 on render-node-7.*magicmask run other.mp4.*last sign of life was [5-9] s ago"):
        FolderLock(tmp_path).acquire()
    foreign_lock(tmp_path, age=120)
    with FolderLock(tmp_path) as lock:
        assert read_holder(tmp_path).token == lock.holder.token


def test_two_newcomers_never_both_take_a_stale_lock(tmp_path):
    foreign_lock(tmp_path, age=120)
    won, refused = [], []
    start = threading.Barrier(8)

    def newcomer():
        start.wait()
        try:
            won.append(FolderLock(tmp_path).acquire())
        except MagicmaskError:
            refused.append(1)

    threads = [threading.Thread(target=newcomer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1 and len(refused) == 7
    assert read_holder(tmp_path).token == won[0].holder.token
    won[0].release()


def test_release_leaves_no_file_and_the_sweep_never_removes_a_lock(tmp_path):
    with FolderLock(tmp_path):
        assert sweep_stale(tmp_path) == [] and (tmp_path / LOCK_NAME).exists()
    assert os.listdir(tmp_path) == []
    foreign_lock(tmp_path, age=3600)
    sweep_stale(tmp_path)
    assert (tmp_path / LOCK_NAME).exists()


def test_release_leaves_a_lock_taken_over_by_another_run(tmp_path):
    lock = FolderLock(tmp_path).acquire()
    foreign_lock(tmp_path, age=0)  # taken over meanwhile (this run looked dead)
    lock.release()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["host"] == "render-node-7"


def test_the_heartbeat_refreshes_the_lock(tmp_path):
    with FolderLock(tmp_path, heartbeat=0.05, stale_after=1) as lock:
        before = (tmp_path / LOCK_NAME).stat().st_mtime_ns
        time.sleep(0.3)
        assert (tmp_path / LOCK_NAME).stat().st_mtime_ns > before and not lock.lost
        foreign_lock(tmp_path, age=0)
        time.sleep(0.3)
        assert lock.lost
