"""The folder lock: one magicmask run at a time in an output folder, on this machine or any sharing the disk.

Two runs writing the same folder at once would each write a record that contradicts the other's files.
A run holds the folder's lock, ``.magicmask-lock.json`` (who: pid, host, boot, process start time,
when, what command), for as long as it writes there; a second run is refused with a one-line error
naming the first.

A lock whose holder is gone never blocks the next run:

- on this machine (same host name and boot, ``/proc/sys/kernel/random/boot_id``), the holder is gone
  when its pid no longer runs or that pid is now another process (its start time in ``/proc/PID/stat``
  differs);
- held from another machine (a shared NFS folder) or from before a reboot, whose process cannot be
  looked at: its holder refreshes the file's modification time every ``heartbeat`` seconds, and a lock
  without a refresh for ``stale_after`` seconds is gone. Ages are measured against the modification time of a file this process has just
  written in the same folder, so the clocks of the machines need not agree (only the file server's
  clock counts).

Taking the lock is race-free: the lock is written whole under a temporary name and linked into place
(``link`` fails when the name exists, also over NFS), so a reader never sees a half-written lock and two
newcomers never both win. Replacing a lock judged stale happens only under a short-lived second file,
``.magicmask-lock.json.break`` (created exclusively), re-judged under it, and by an atomic ``rename``
over the stale file, so the name never goes missing in between. What remains: a holder on another
machine that is alive but has not refreshed its lock for ``stale_after`` seconds (a frozen machine, a
server that lost its clock) is taken for gone.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import secrets
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from magicmask.errors import MagicmaskError
from magicmask.files import TEMP_PREFIX, pid_alive, temp_prefix

LOCK_NAME = TEMP_PREFIX + "lock.json"
BREAK_NAME = LOCK_NAME + ".break"
HEARTBEAT = 10.0
"""Seconds between two refreshes of a held lock's modification time."""
STALE_AFTER = 60.0
"""Seconds without a refresh after which a lock of another machine is taken for gone."""
_BREAK_STALE_AFTER = 20.0  # replacing a stale lock takes milliseconds; a break file older than this was left by a killed process


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_start(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot (``/proc/PID/stat``'s 22nd field), or
    None where it cannot be read (no such process, no ``/proc``). With the pid it names one process:
    a pid used again by a later process has another start time."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat[stat.rindex(")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class Holder:
    """Who holds a folder's lock, as its file says."""

    pid: int
    host: str
    since: str  # local time, ISO 8601, seconds
    description: str
    boot: str = ""
    start: int | None = None
    token: str = ""

    @classmethod
    def of_this_process(cls, description: str) -> Holder:
        since = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        return cls(os.getpid(), socket.gethostname(), since, description, _boot_id(), process_start(os.getpid()), secrets.token_hex(8))

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__, indent=1).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes) -> Holder:
        facts = json.loads(data)
        if not isinstance(facts, dict):
            raise ValueError("not an object")
        start = facts.get("start")
        return cls(int(facts["pid"]), str(facts["host"]), str(facts.get("since", "")), str(facts.get("description", "")), str(facts.get("boot", "")), int(start) if start is not None else None, str(facts.get("token", "")))

    def __str__(self) -> str:
        what = f" ({self.description})" if self.description else ""
        return f"pid {self.pid} on {self.host}, since {self.since}{what}"


def _is_here(found: Holder) -> bool:
    """Whether ``found`` ran on this machine since its last boot, so that its pid can be looked at here.

    A lock from before a reboot, or from another machine of the same host name, is judged by its age."""
    boot = _boot_id()
    return found.pid > 0 and found.host == socket.gethostname() and (not found.boot or not boot or found.boot == boot)


def read_holder(folder: str | os.PathLike) -> Holder | None:
    """Who holds ``folder``'s lock, or None when it is not locked (or the lock cannot be read)."""
    try:
        return Holder.from_json((Path(folder) / LOCK_NAME).read_bytes())
    except (OSError, ValueError, KeyError, TypeError):
        return None


class FolderLock:
    """Hold ``folder``'s lock for a ``with`` block (or between :meth:`acquire` and :meth:`release`).

    Parameters
    ----------
    folder : path
        The output folder; made when missing.
    description : str
        What the holder does, shown to whoever is refused (e.g. ``"magicmask run take.mp4"``).
    heartbeat : float
        Seconds between two refreshes of the lock's modification time (by a daemon thread).
    stale_after : float
        Seconds without a refresh after which a lock held from another machine is taken over.

    Raises
    ------
    MagicmaskError
        On entering, when a running magicmask holds the folder (the message names its pid, host, start and
        description) or the folder cannot be written.

    Examples
    --------
    >>> with FolderLock(out_dir, description="magicmask run take.mp4"):  # doctest: +SKIP
    ...     write_outputs(out_dir)

    Notes
    -----
    The lock is not re-entrant: a second lock on a folder this process already holds is refused too.
    :attr:`lost` becomes True when the heartbeat finds the file gone or someone else's (it was taken
    over after ``stale_after`` seconds without a refresh); the holder should then stop writing.
    """

    def __init__(self, folder: str | os.PathLike, description: str = "", *, heartbeat: float = HEARTBEAT, stale_after: float = STALE_AFTER):
        if not heartbeat > 0 or not stale_after > heartbeat:
            raise MagicmaskError(f"lock timing heartbeat={heartbeat}, stale_after={stale_after}", hint="use 0 < heartbeat < stale_after")
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.description = " ".join(str(description).split())
        self.heartbeat = heartbeat
        self.stale_after = stale_after
        self.holder: Holder | None = None
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- taking and giving back ----------------------------------------------------------------------

    def acquire(self) -> FolderLock:
        """Take the lock or raise :class:`MagicmaskError` naming its holder."""
        if self.holder is not None:
            raise MagicmaskError("this lock is already held", self.folder, "release it first")
        holder = Holder.of_this_process(self.description)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            candidate = self._write_candidate(holder)
        except OSError as exc:
            raise MagicmaskError(f"cannot write here: {exc.strerror}", self.folder, "choose a folder you can write to") from None
        try:
            for _ in range(200):
                if self._link(candidate):
                    break
                found, age = self._judge(candidate)
                if found is not None and not self._stale(found, age):
                    raise self._refusal(found, age)
                if self._replace(candidate, found):
                    break
                threading.Event().wait(0.02)
            else:
                raise MagicmaskError("cannot take the folder's lock: it keeps changing", self.path, "try again; if it persists, check for other magicmask runs")
        except OSError as exc:
            raise MagicmaskError(f"cannot lock the folder: {exc.strerror}", self.folder, "choose a folder you can write to") from None
        finally:
            with contextlib.suppress(OSError):
                candidate.unlink()
        self.holder = holder
        self.lost = False
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name=f"magicmask-lock {self.folder}", daemon=True)
        self._thread.start()
        return self

    def release(self) -> None:
        """Give the lock back: its file is removed if it is still this lock's. Does nothing when not held."""
        if self.holder is None:
            return
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        if self._ours():
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        self.holder = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()

    # -- the steps -----------------------------------------------------------------------------------

    def _write_candidate(self, holder: Holder) -> Path:
        # named like every temporary file, so that one left by a killed process is swept (files.sweep_stale)
        candidate = self.folder / f"{temp_prefix()}lock-{holder.token}.json"
        fd = os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(holder.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        return candidate

    def _link(self, candidate: Path) -> bool:
        """Put the candidate in place if no lock is there (``link`` is atomic and exclusive, NFS included)."""
        try:
            os.link(candidate, self.path)
        except FileExistsError:
            # NFS can lose the reply to a link that succeeded (the retry then fails): the link count tells
            return candidate.stat().st_nlink == 2
        except OSError:  # a file system without hard links: an exclusive create, then the contents
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as handle:
                handle.write(candidate.read_bytes())
            return True
        return True

    def _judge(self, candidate: Path) -> tuple[Holder | None, float]:
        """The lock's holder (None if unreadable) and seconds since its last refresh, by the file server's clock."""
        try:
            data = self.path.read_bytes()
            then = self.path.stat().st_mtime
        except FileNotFoundError:
            return None, -1.0  # released meanwhile: try again
        os.utime(candidate)  # "now" by the file server's clock (NFS sets it to the server's time)
        now = candidate.stat().st_mtime
        try:
            return Holder.from_json(data), now - then
        except (ValueError, KeyError, TypeError):
            return Holder(0, "?", "", "an unreadable lock"), now - then

    def _stale(self, found: Holder, age: float) -> bool:
        if _is_here(found):
            if not pid_alive(found.pid):
                return True
            start = process_start(found.pid)
            return found.start is not None and start is not None and start != found.start  # the pid is now another process's
        return age > self.stale_after

    def _refusal(self, found: Holder, age: float) -> MagicmaskError:
        if _is_here(found):
            hint = "wait for it to finish or stop it; a lock whose process has ended is taken over by the next run"
        else:
            hint = f"wait for it to finish or stop it; its last sign of life was {max(age, 0):.0f} s ago, and a lock without one for {self.stale_after:.0f} s is taken over"
        return MagicmaskError(f"the folder is in use by another magicmask run: {found}", self.folder, hint)

    def _replace(self, candidate: Path, judged: Holder | None) -> bool:
        """Replace the stale lock ``judged`` by the candidate, under the break file; False to try again."""
        if judged is None:
            return False
        breaker = self.folder / BREAK_NAME
        try:
            os.close(os.open(breaker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            self._sweep_breaker(breaker, candidate)
            return False
        try:
            found, age = self._judge(candidate)
            if found is None or found != judged or not self._stale(found, age):
                return False  # changed meanwhile: judge it again
            os.replace(candidate, self.path)  # atomic: the name is never missing, no third run slips in
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                breaker.unlink()

    def _sweep_breaker(self, breaker: Path, candidate: Path) -> None:
        """Remove a break file left by a process killed while replacing a lock (older than a few seconds)."""
        try:
            age = candidate.stat().st_mtime - breaker.stat().st_mtime
        except FileNotFoundError:
            return
        if age > _BREAK_STALE_AFTER:
            aside = self.folder / f"{temp_prefix()}break-{secrets.token_hex(8)}"
            with contextlib.suppress(OSError):
                os.rename(breaker, aside)
                aside.unlink()

    def _ours(self) -> bool:
        found = read_holder(self.folder)
        return found is not None and self.holder is not None and found.token == self.holder.token

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat):
            if not self._ours():
                self.lost = True
                return
            with contextlib.suppress(OSError):
                os.utime(self.path)
