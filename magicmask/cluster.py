"""Work on a Dask cluster (``dask.distributed``): whole video jobs for ``run``, frames for the other commands.

``run`` (:func:`run_videos`): the unit of work is the video job. A worker runs it whole
(:func:`video_task`: ffmpeg, backgrounds, masks, the encoders, sheet and hashes), or a long video's
segments (:func:`segment_task`, then :func:`finish_task`); this process (the client) plans, checks and
claims each folder and holds its lock, follows the progress the workers report (Dask events), and writes
each record. With shared storage the worker reads the video and writes the folder in place, after checking
that it sees the client's files (:func:`file_identity`, and the folder lock's token); without it the
video's bytes travel as task results (recomputed if their worker dies) and the outputs come back through a
bounded queue, written here atomically. A worker that dies takes its task with it: Dask runs it again
elsewhere, and every file is written under a temporary name and renamed, so nothing half-written remains.

``masks``, ``background`` and ``display`` (:func:`render_frames`, :func:`flatten_frames`): the frames
travel, the user's files stay here. Workers never open the user's files: every task carries the bytes of
its frames, and a worker writes them to a private temporary folder, runs the same engine functions as a
local run on them, and returns the output bytes. This process reads every frame and writes every output
(atomically, in :func:`magicmask.masks.mask_frames` and :func:`magicmask.background.flatten`), so the
outputs are those of a local run, byte for byte.

Resilience of the frame path: a task's arguments stay with its spec on the scheduler, so when a worker dies Dask runs
its tasks again elsewhere. Nothing is ``scatter``-ed (scattered data dies with its worker): the
background is the result of a task (:func:`hold`), which the scheduler can run again, and it travels
to each worker once. Folds return their partial results here and each combination is a new task
carrying its two inputs, so no task's lineage grows with the number of frames (a dead worker costs
only the tasks it was running) and the scheduler holds the data of the tasks in flight only.

Needs the ``dask`` extra (``pip install 'magicmask[dask]'``); see :func:`require`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import secrets
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from magicmask.engines import get_engine
from magicmask.errors import MagicmaskError
from magicmask.execute import as_magicmask_error, limit_imagemagick_threads
from magicmask.files import check_tiff
from magicmask.params import MaskParams

INSTALL_HINT = "install it with: pip install 'magicmask[dask]'"
CHUNK = 8  # frames a worker folds in one task (as the local folds do)
CHUNK_BYTES = 32 << 20  # and at most this many bytes of frames per task, so task specs stay small
WAIT_FOR_WORKERS = 60  # seconds to wait for a first worker on a cluster that has none


def require():
    """The ``distributed`` module, or a one-line error saying how to install it.

    Raises
    ------
    MagicmaskError
        When ``dask.distributed`` is not installed.
    """
    try:
        import distributed
    except ImportError:
        raise MagicmaskError("the dask backend needs dask.distributed, which is not installed", hint=INSTALL_HINT) from None
    return distributed


@contextlib.contextmanager
def connect(scheduler) -> Iterator[Any]:
    """A ``distributed.Client`` for ``scheduler``: an address (``tcp://HOST:8786``), a cluster object, or
    a client (used as it is and left open)."""
    distributed = require()
    if isinstance(scheduler, distributed.Client):
        yield scheduler
        return
    try:
        client = distributed.Client(scheduler, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise MagicmaskError(
            f"cannot connect to the Dask scheduler: {exc}", os.fspath(scheduler) if isinstance(scheduler, str) else None, "start one with `dask scheduler` and pass its address, e.g. tcp://HOST:8786"
        ) from None
    try:
        yield client
    finally:
        client.close()


def scheduler_address(path: str | os.PathLike) -> str:
    """The address a Dask scheduler wrote in its scheduler file (``dask scheduler --scheduler-file FILE``,
    or ``Client.write_scheduler_file``).

    Raises
    ------
    MagicmaskError
        When the file is missing, unreadable, or names no address.
    """
    path = Path(path).expanduser()
    try:
        address = json.loads(path.read_text()).get("address")
    except FileNotFoundError:
        raise MagicmaskError("scheduler file not found", path, "start the scheduler with: dask scheduler --scheduler-file FILE") from None
    except (OSError, ValueError, AttributeError) as exc:
        raise MagicmaskError(f"cannot read the scheduler file: {getattr(exc, 'strerror', None) or exc}", path, "pass the file `dask scheduler --scheduler-file` wrote") from None
    if not isinstance(address, str) or "://" not in address:
        raise MagicmaskError("the scheduler file names no address", path, "pass the file `dask scheduler --scheduler-file` wrote") from None
    return address


def _threads(client) -> int:
    """The worker threads of the cluster, waiting a while for a first worker."""
    threads = sum(client.nthreads().values())
    if threads == 0:
        try:
            client.wait_for_workers(1, timeout=WAIT_FOR_WORKERS)
        except TimeoutError:
            raise MagicmaskError(f"the Dask scheduler has no workers after {WAIT_FOR_WORKERS} s", client.scheduler.address, "start some with: dask worker tcp://HOST:8786") from None
        threads = sum(client.nthreads().values())
    return max(1, threads)


def _submit(client, func, *args):
    """``client.submit(func, *args, pure=False)``; frames travel in the task spec by design, so Dask's
    warning about large graphs is not shown."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning)
        return client.submit(func, *args, pure=False)


def _read(path) -> bytes:
    """The bytes of a frame, checked to be a TIFF first (as every engine does)."""
    path = check_tiff(path)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise MagicmaskError(f"cannot read frame: {exc.strerror}", path, "check its permissions") from None


def _as_error(future, path) -> MagicmaskError:
    """The error of a failed or lost task, as magicmask's error naming ``path``."""
    if future.status == "cancelled":
        return MagicmaskError("the Dask scheduler dropped this task (lost connection?)", path, "check the scheduler and re-run; finished files are kept")
    error = future.exception()
    if type(error).__name__ == "KilledWorker":
        return MagicmaskError("Dask workers kept dying while processing this file (out of memory?)", path, "check the workers' memory and logs")
    return as_magicmask_error(error, path)


def _cancel(client, futures) -> None:
    futures = [future for future in futures if future is not None]
    if futures:
        with contextlib.suppress(Exception):
            client.cancel(futures)


# --------------------------------------------------------------------------------------------------
# on the workers


_LOCAL = threading.local()  # per worker thread: the loaded background (engine handles are not shared between threads)
_READY = False


def _prepare_worker() -> None:
    global _READY
    if not _READY:
        limit_imagemagick_threads()
        _READY = True


@contextlib.contextmanager
def _as_files(named: list[tuple[str, bytes]]) -> Iterator[tuple[list[Path], dict[str, str]]]:
    """Write each ``(name, data)`` to a private temporary folder under the name's file name.

    Yields the paths and a map from each temporary path back to the user's name, for error messages.
    """
    with tempfile.TemporaryDirectory(prefix="magicmask-") as folder:
        paths, names = [], {}
        for number, (name, data) in enumerate(named):
            path = Path(folder) / str(number) / (Path(name).name or "frame.tiff")
            path.parent.mkdir()
            path.write_bytes(data)
            paths.append(path)
            names[os.fspath(path)] = name
        yield paths, names


def _renamed(error: Exception, names: dict[str, str], path: str) -> MagicmaskError:
    """``error`` as magicmask's error, naming the user's files instead of the worker's temporary ones."""
    error = as_magicmask_error(error, path)
    message, where, hint = error.message, error.path, error.hint
    for temporary, original in names.items():
        message = message.replace(temporary, original)
        hint = hint.replace(temporary, original) if hint else hint
        if where == temporary:
            where = original
    return MagicmaskError(message, where, hint)


def hold(data: bytes) -> bytes:
    """The background's bytes, as the result of a task: held by a worker, fetched once by every other
    worker, and made again by the scheduler if the worker holding it dies."""
    return data


def _background(engine: str, key: str, data: bytes, name: str):
    """The background loaded by ``engine``, kept for the following frames of this worker thread."""
    cached = getattr(_LOCAL, "background", None)
    if cached is not None and cached[0] == (engine, key):
        return cached[1], cached[2]
    if cached is not None and hasattr(cached[1], "close"):
        cached[1].close()
    _LOCAL.background = None
    with _as_files([(name, data)]) as ([path], names):
        try:
            handle = get_engine(engine).load_background(path)
        except Exception as exc:
            raise _renamed(exc, names, name) from None
    _LOCAL.background = ((engine, key), handle, names)
    return handle, names


def render_task(engine: str, background: bytes, key: str, background_name: str, frame: bytes, frame_name: str, params: MaskParams) -> tuple[bytes, bytes]:
    """On a worker: ``(NAME-mask.tiff, NAME-clean.jpg)`` bytes of one frame given as bytes (see
    :func:`magicmask.masks.render`); errors name ``frame_name`` and ``background_name``."""
    _prepare_worker()
    handle, background_names = _background(engine, key, background, background_name)
    with _as_files([(frame_name, frame)]) as ([path], names):
        try:
            return get_engine(engine).render_frame(handle, path, params, background_name)
        except Exception as exc:
            raise _renamed(exc, {**background_names, **names}, frame_name) from None


def fold_task(engine: str, compose: str, colour: str, images: list[tuple[str, bytes]], format: str = "tiff") -> bytes:
    """On a worker: fold TIFF images given as ``(name, bytes)`` (frames, or partial folds) in order and
    encode the result; errors name the user's files."""
    _prepare_worker()
    with _as_files(images) as (paths, names):
        fold = get_engine(engine).Fold(compose, colour)
        try:
            for path in paths:
                fold.add_file(path)
            return fold.encode(format)
        except Exception as exc:
            raise _renamed(exc, names, images[0][0]) from None
        finally:
            fold.close()


# --------------------------------------------------------------------------------------------------
# in this process


def render_frames(
    jobs: Iterable,
    background: str | os.PathLike,
    params: MaskParams,
    engine: str,
    scheduler,
    in_flight: int | None = None,
) -> Iterator[tuple[Any, tuple[bytes, bytes] | None, MagicmaskError | None]]:
    """Render frames on the cluster and yield ``(job, (mask bytes, clean bytes), error)`` as each completes.

    The same contract as :func:`magicmask.execute.run_tasks` over :func:`magicmask.masks.render`: jobs
    (anything with a ``frame`` path) are submitted as the iterable produces them, at most
    ``in_flight`` at a time (default: twice the cluster's threads), and a failed frame is handed back
    with its error, naming the frame, while the others go on.
    """
    background = Path(background)
    with connect(scheduler) as client:
        in_flight = in_flight or 2 * _threads(client)
        distributed = require()
        name = os.fspath(background)
        held = _submit(client, hold, _read_background(background))
        pending: dict = {}
        done = distributed.as_completed(loop=client.loop)

        def finished(future):
            job = pending.pop(future)
            if future.status == "finished":
                return job, future.result(), None
            error = _as_error(future, job.frame)
            if future.status == "cancelled":
                raise error
            return job, None, error

        try:
            for job in jobs:
                try:
                    data = _read(job.frame)
                except MagicmaskError as error:
                    yield job, None, error
                    continue
                future = _submit(client, render_task, engine, held, held.key, name, data, os.fspath(job.frame), params)
                pending[future] = job
                done.add(future)
                del data
                if done.has_ready():
                    for future in done.next_batch(block=False):
                        yield finished(future)
                while len(pending) >= in_flight:
                    yield finished(next(done))
            for future in done:
                yield finished(future)
        finally:
            _cancel(client, [*pending, held])


def _read_background(path: Path) -> bytes:
    path = check_tiff(path, "background")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise MagicmaskError(f"cannot read background: {exc.strerror}", path, "check its permissions") from None


class _Part:
    """A run of consecutive frames being folded: a task in flight, or its result (TIFF bytes)."""

    def __init__(self, level: int, name: str):
        self.level, self.name = level, name
        self.future = None
        self.data: bytes | None = None


def _chunks(frames: list[Path], threads: int) -> Iterator[list[Path]]:
    """Runs of at most CHUNK consecutive frames (fewer to feed every thread) and about CHUNK_BYTES."""
    size = max(1, min(CHUNK, math.ceil(len(frames) / threads)))
    chunk: list[Path] = []
    total = 0
    for frame in frames:
        try:
            length = frame.stat().st_size
        except OSError:
            length = 0  # reported by _read
        if chunk and (len(chunk) == size or total + length > CHUNK_BYTES):
            yield chunk
            chunk, total = [], 0
        chunk.append(frame)
        total += length
    if chunk:
        yield chunk


def flatten_frames(
    frames: list[Path],
    compose: str,
    colour: str,
    format: str,
    engine: str,
    scheduler,
    progress: Callable[[Path], None] | None = None,
    in_flight: int | None = None,
) -> bytes:
    """``-background COLOUR -compose OP -flatten`` over frames, as a tree reduction on the cluster.

    Workers fold runs of consecutive frames; two adjacent partial results of the same size are
    combined by another task as soon as both are back, and the last one is encoded as ``format``
    (``tiff`` or ``jpeg``) on a worker. Combinations keep the frames' order, so the result carries the
    first frame's attributes, as the local fold's does (lighten/darken themselves are associative).

    Returns
    -------
    bytes
        The encoded result, for the caller to write.

    Raises
    ------
    MagicmaskError
        The first frame that cannot be read or folded, by name.
    """
    with connect(scheduler) as client:
        threads = _threads(client)
        in_flight = in_flight or 2 * threads
        distributed = require()
        done = distributed.as_completed(loop=client.loop)
        parts: list[_Part] = []
        tasks: dict = {}  # future -> (part, frames of a first fold, for progress)

        def submit(part: _Part, images: list[tuple[str, bytes]], chunk: list[Path] | None, format: str = "tiff"):
            part.future = _submit(client, fold_task, engine, compose, colour, images, format)
            tasks[part.future] = (part, chunk)
            done.add(part.future)

        def combine(last: bool = False):
            i = 0
            while i + 1 < len(parts):
                left, right = parts[i], parts[i + 1]
                if left.data is not None and right.data is not None and (last or left.level == right.level):
                    joined = _Part(max(left.level, right.level) + 1, left.name)
                    submit(joined, [(left.name, left.data), (right.name, right.data)], None)
                    parts[i : i + 2] = [joined]
                i += 1

        def collect(future):
            part, chunk = tasks.pop(future)
            if future.status != "finished":
                raise _as_error(future, part.name)
            part.data, part.future = future.result(), None
            if progress is not None and chunk:
                for frame in chunk:
                    progress(frame)

        try:
            for chunk in _chunks(frames, threads):
                images = [(os.fspath(frame), _read(frame)) for frame in chunk]
                part = _Part(0, images[0][0])
                parts.append(part)
                submit(part, images, chunk)
                del images
                while len(tasks) >= in_flight or done.has_ready():
                    collect(next(done))
                    combine()
            combine(last=True)
            while len(parts) > 1 or parts[0].data is None:
                collect(next(done))
                combine(last=True)
            final = _Part(parts[0].level + 1, parts[0].name)
            submit(final, [(parts[0].name, parts[0].data)], None, format)
            parts = []
            collect(next(done))
            return final.data
        finally:
            _cancel(client, list(tasks))


# --------------------------------------------------------------------------------------------------
# the video job, whole, on a worker

STORAGE = ("auto", "shared", "send")
"""Where a worker finds a video and puts its outputs: ``shared`` (the same paths, e.g. NFS or Lustre: it
reads the video and writes the folder in place), ``send`` (the video's bytes travel to the worker and the
outputs come back as bytes, written here) or ``auto`` (shared when a worker sees the same files, else send)."""
SLICE = 1 << 16  # bytes of each of the three slices of a file that its identity digests
SEND_CHUNK = 16 << 20  # bytes of a video, or of outputs, per message
QUEUED = 4  # output messages waiting at the scheduler at most (memory bounded whatever the batch's size)
PROGRESS_TOPIC = "magicmask-progress"
ARRIVAL_TIMEOUT = 120.0  # seconds for the last outputs of a finished video to arrive here


def file_identity(path: str | os.PathLike) -> dict:
    """What says that a worker sees the same file as this process: its size, its modification time (ns)
    and a digest of three slices of 64 KiB (start, middle, end). A path alone proves nothing: a worker
    may mount another disk there, or an older copy.

    Raises
    ------
    OSError
        When the file cannot be read.
    """
    path = Path(path)
    stat = path.stat()
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        for offset in sorted({0, max(0, stat.st_size // 2 - SLICE // 2), max(0, stat.st_size - SLICE)}):
            handle.seek(offset)
            digest.update(handle.read(SLICE))
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "slice": digest.hexdigest()}


def _unseen(spec: dict) -> str | None:
    """On a worker: why it does not see the client's files as the client does (None: it does)."""
    from magicmask.lock import read_holder

    for path, identity in spec["inputs"].items():
        try:
            if file_identity(path) != identity:
                return f"{path} differs on worker {_worker_name()} (size, time or content)"
        except OSError as exc:
            return f"worker {_worker_name()} cannot read {path}: {exc.strerror}"
    try:
        holder = read_holder(spec["folder"])
    except Exception:
        holder = None
    if holder is None or holder.token != spec["token"]:
        return f"worker {_worker_name()} does not see the output folder {spec['folder']} as this machine does (its lock)"
    return None


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return "(not a worker)"


def _translate(value, names: dict[str, str]):
    """``value`` (JSON data) with the worker's temporary paths replaced by the client's (``names``), also
    inside shell lines (re-quoted as the client's path needs)."""
    if isinstance(value, dict):
        return {key: _translate(item, names) for key, item in value.items()}
    if isinstance(value, list):
        return [_translate(item, names) for item in value]
    if not isinstance(value, str) or not any(temporary in value for temporary in names):
        return value
    if value in names:
        return names[value]

    def swap(text: str) -> str:
        for temporary, original in names.items():
            text = text.replace(temporary, original)
        return text

    try:
        words = shlex.split(value)
    except ValueError:
        return swap(value)
    if shlex.join(words) == value:  # a shell line: each word translated, then quoted again
        return shlex.join([swap(word) for word in words])
    return swap(value)


def _event(key: str, stage: str, done: int, total: int) -> None:
    try:
        from distributed import get_worker

        get_worker().log_event(PROGRESS_TOPIC, (key, stage, done, total))
    except ValueError:  # not on a worker (a task run in the client's process by a test)
        pass


def _progress(key: str):
    """A worker's ``progress(stage, done, total)`` for one video, sent to the client at most 10 times a
    second (and always at the end of a stage)."""
    last = [0.0, None]

    def progress(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if stage != last[1] or done >= total or now - last[0] >= 0.1:
            last[:] = [now, stage]
            _event(key, stage, done, total)

    return progress


def _where(path, folder: Path, names: dict[str, str]) -> str | None:
    """A path as the client names it: a file name inside the folder, else an absolute path."""
    if path is None:
        return None
    path = Path(path)
    if path.parent.resolve() == folder.resolve():
        return path.name
    return names.get(os.fspath(path), os.fspath(path))


def _error(error: MagicmaskError | None, folder: Path, names: dict[str, str]):
    if error is None:
        return None
    error = _renamed(error, names, None) if names else error
    where = error.path
    if where is not None and Path(where).parent.resolve() == folder.resolve():
        where = "@" + Path(where).name  # a file of the folder, named by the client
    return error.message, where, error.hint


def video_task(spec: dict, parts: list[bytes] = (), background: bytes | None = None) -> dict:
    """On a worker: one video's whole job (:class:`magicmask.job.VideoJob`: ffmpeg, backgrounds, masks,
    encoders, sheet, hashes) in the folder the client claimed (``shared``), or in a private temporary
    folder whose files are then sent to the client (``send``). Returns what the client needs to finish:
    the run's results and its record (which the client writes), with paths as the client names them.
    """
    _prepare_worker()
    if spec["mode"] == "shared":
        reason = _unseen(spec)
        if reason is not None:
            return {"unseen": reason}
        return _run_here(spec, Path(spec["video"]), Path(spec["folder"]), spec["options"], {})
    with tempfile.TemporaryDirectory(prefix="magicmask-") as work:
        work = Path(work).resolve()
        video = work / "in" / Path(spec["video"]).name
        video.parent.mkdir()
        with open(video, "wb") as handle:
            for part in parts:
                handle.write(part)
        del parts
        identity = spec["inputs"][spec["video"]]
        os.utime(video, ns=(identity["mtime_ns"], identity["mtime_ns"]))  # the record names the client's file
        names = {os.fspath(video): spec["video"]}
        options = spec["options"]
        if background is not None:
            given = work / "background" / Path(options.background).name
            given.parent.mkdir()
            given.write_bytes(background)
            stamp = spec["inputs"][options.background]["mtime_ns"]
            os.utime(given, ns=(stamp, stamp))
            names[os.fspath(given)] = options.background
            options = options.replace(background=os.fspath(given))
        folder = work / "out" / Path(spec["folder"]).name  # the same name: the sheet's title names it
        names[os.fspath(folder)] = spec["folder"]
        summary = _run_here(spec, video, folder, options, names)
        summary["files"] = _send_files(spec, folder, names)
        return summary


def _run_here(spec: dict, video: Path, folder: Path, options, names: dict[str, str], segments: dict | None = None) -> dict:
    """Run the video job on this worker and describe its result for the client. With ``segments`` (the
    keyframe count, ffmpeg's warnings and the frame errors of a video whose segments are done, see
    :func:`segment_task`), only its completion runs: display, sheet, hashes and record."""
    from magicmask.files import output_paths
    from magicmask.job import RunResult, VideoJob, _soon, run_jobs
    from magicmask.masks import FrameJob
    from magicmask.media.extract import Keyframes, frame_names
    from magicmask.media.probe import keyframe_packet_times

    published: dict = {}

    class WorkerJob(VideoJob):
        """The job without the client's part: the client checked the folder, holds its lock and writes the record."""

        def start(self) -> bool:
            self.started = time.perf_counter()
            self.keyframes = Keyframes(self.result.video, self.result.folder)
            self._times = _soon(keyframe_packet_times, self.result.video)
            return True

        def frame_jobs(self, frame_done, threads=None):
            if segments is None:
                yield from super().frame_jobs(frame_done, threads)
                return
            frames = [folder / name for name in frame_names(segments["count"])]
            self.keyframes.paths, self.keyframes.warnings = list(frames), list(segments["warnings"])
            base = _segment_background(options, folder, segments["count"])
            self.result.background = base
            failed = {error[1] for error in segments["errors"]}
            for index, frame in enumerate(frames):
                self.result.backgrounds[frame] = base
                self.result.thresholds[frame] = options.params.threshold
                mask, clean = output_paths(frame, folder)
                self.index[frame] = index
                if "@" + frame.name not in failed:  # measured from its mask file, as a frame done earlier is
                    self._measured(index, FrameJob(frame, mask, clean, base, options.params, options.engine, True))
                frame_done()
            self.result.errors += [_unpacked(error, folder) for error in segments["errors"]]

        def _publish(self, record: dict, made: set[str]) -> None:
            published.update(record=record, made=sorted(made))

    result = RunResult(video, folder)
    run_jobs([result], options, _progress(spec["key"]) if segments is None else None, job_type=WorkerJob)  # segments said their frames
    where = lambda path: _where(path, folder, names)  # noqa: E731
    return {
        "status": result.status,
        "keyframes": [path.name for path in result.keyframes],
        "background": where(result.background),
        "backgrounds": {frame.name: where(path) for frame, path in result.backgrounds.items()},
        "thresholds": {frame.name: (where(value) if str(value).endswith(".tiff") else value) for frame, value in result.thresholds.items()},
        "outputs": [(mask.name, clean.name) for mask, clean in result.outputs],
        "errors": [_error(error, folder, names) for error in result.errors],
        "error": _error(result.error, folder, names),
        "warnings": [_translate(warning, names) for warning in result.warnings],
        "sheet": where(result.sheet),
        "display": where(result.display),
        "motion": where(result.motion),
        "plot": where(result.plot),
        "cutouts": [where(path) for path in result.cutouts],
        "timings": dict(result.timings),
        "seconds": result.seconds,
        "record": _translate(published["record"], names) if published else None,
        "made": published.get("made"),
    }


def _send_files(spec: dict, folder: Path, names: dict[str, str]) -> dict[str, int]:
    """Send every file of ``folder`` (and the keyframes' and masks' hidden records, translated) to the
    client's queue, whole files in messages of about :data:`SEND_CHUNK` bytes; ``{name: size}`` of all."""
    from distributed import Queue

    from magicmask.masks import SETTINGS_NAME
    from magicmask.media.extract import MARKER_NAME

    queue = Queue(spec["queue"])
    sent: dict[str, int] = {}
    batch: list[tuple[str, bytes]] = []
    size = 0
    for path in sorted(folder.iterdir()) if folder.is_dir() else ():  # none when the video failed at once
        hidden = path.name.startswith(".")
        if (hidden and path.name not in (MARKER_NAME, SETTINGS_NAME)) or not path.is_file():
            continue
        data = path.read_bytes()
        if hidden:
            data = json.dumps(_translate(json.loads(data), names)).encode()
        if batch and size + len(data) > SEND_CHUNK:
            queue.put((spec["key"], batch))
            batch, size = [], 0
        batch.append((path.name, data))
        size += len(data)
        sent[path.name] = len(data)
    if batch:
        queue.put((spec["key"], batch))
    return sent


SEGMENT_MIN = 8
"""Keyframes of a segment at least: a video with fewer than twice as many runs whole on one worker."""


def _unpacked(error, folder: Path) -> MagicmaskError:
    """An error as :func:`_error` packed it, naming the client's files."""
    message, where, hint = error
    return MagicmaskError(message, folder / where[1:] if where and where.startswith("@") else where, hint)


def _segment_background(options, folder: Path, count: int) -> Path:
    """The background of a segmented video: its first keyframe, or the file given."""
    from magicmask.media.extract import frame_names

    return folder / frame_names(count)[0] if options.method is not None else Path(options.background)


def keyframe_times(video: str | os.PathLike) -> list[float] | None:
    """The times (s) of the keyframe packets of ``video``, in order, read without decoding
    (:func:`magicmask.media.probe.keyframe_packet_times`); None when one has no time (then the video is not
    cut into segments)."""
    from magicmask.media.probe import keyframe_packet_times

    times = [float(when) for when in keyframe_packet_times(video)]
    return sorted(times) if all(math.isfinite(when) for when in times) else None


def plan_task(spec: dict) -> dict:
    """On a worker: whether it sees the client's files (as :func:`video_task` checks), and the video's keyframe
    times, to cut it into segments."""
    _prepare_worker()
    reason = _unseen(spec)
    if reason is not None:
        return {"unseen": reason}
    try:
        return {"times": keyframe_times(spec["video"])}
    except MagicmaskError:  # the whole job says what is wrong with the video, as a local run does
        return {"times": None}


def segment_task(spec: dict, index: int, start: int, stop: int, times: list[float]) -> dict:
    """On a worker, with shared storage: keyframes ``start`` to ``stop - 1`` (from 0) of a video, decoded by
    ffmpeg seeking to the first of them (the same frames, byte for byte, as the whole video's command gives),
    placed under their final names, and their masks and clean images, written in place atomically.

    Returns ffmpeg's warnings and the frames that failed; ``{"mismatch": ...}`` when ffmpeg gave another number
    of keyframes than the packets announced (the client then runs the video whole).
    """
    from magicmask.files import output_paths, temp_prefix, write_atomic
    from magicmask.job import cutout_path
    from magicmask.masks import FrameJob, render
    from magicmask.media.extract import _same_bytes, frame_names, keyframes_command
    from magicmask.media.ffmpeg import binary_args, damage_warning, tail
    from magicmask.media.probe import discards_safely, keyframe_pix_fmt, probe

    _prepare_worker()
    video, folder, options = Path(spec["video"]), Path(spec["folder"]), spec["options"]
    names = frame_names(len(times))
    stream = probe(video)
    work = Path(tempfile.mkdtemp(prefix=temp_prefix() + "keyframes-", dir=folder))
    try:
        command = keyframes_command(video, work / "%09d.tiff", keyframe_pix_fmt(stream.get("pix_fmt")), discard=discards_safely(stream))
        after_input = command.index("-i") + 2
        command[after_input:after_input] = ["-frames:v", str(stop - start)]
        if start > 0:  # input seeking to between the keyframe before and this one: ffmpeg decodes from that one and drops it
            command[command.index("-skip_frame"):command.index("-skip_frame")] = ["-ss", f"{(times[start - 1] + times[start]) / 2:.6f}"]
        done = subprocess.run(binary_args(command), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        made = sorted(work.glob("*.tiff"))
        if done.returncode != 0 or len(made) != stop - start:
            return {"mismatch": f"ffmpeg gave {len(made)} keyframes for {stop - start} packets from {times[start]:.3f} s: {tail(done.stderr)}"}
        frames = []
        for offset, path in enumerate(made):
            target = folder / names[start + offset]
            if _same_bytes(path, target):
                path.unlink()
            else:
                os.replace(path, target)
            frames.append(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    warning = damage_warning(done.stderr)
    summary = {"warnings": [warning] if warning else [], "errors": []}
    if index < 0:  # the first keyframe alone, before the segments that need it as their background
        return summary
    background = _segment_background(options, folder, len(times))
    if options.method is None:
        from magicmask.statistics import check_background_size

        check_background_size(background, frames[0])
    progress = _progress(f"{spec['key']}#{index}")
    for number, frame in enumerate(frames, 1):
        mask, clean = output_paths(frame, folder)
        cutout = cutout_path(frame) if options.cutout else None
        try:
            rendered = render(FrameJob(frame, mask, clean, background, options.params, options.engine, False, cutout))
        except Exception as exc:  # one frame's failure; the others go on
            summary["errors"].append(_error(as_magicmask_error(exc, frame), folder, {}))
        else:
            write_atomic(mask, rendered[0])
            write_atomic(clean, rendered[1])
            if cutout is not None:
                write_atomic(cutout, rendered[2].cutout)
        progress("frames", number, len(frames))
    return summary


def finish_task(spec: dict, count: int, warnings: list[str], errors: list) -> dict:
    """On a worker: the completion of a video whose segments are done (display, sheet, hashes, record), in place."""
    from magicmask.files import sweep_stale

    _prepare_worker()
    sweep_stale(spec["folder"])  # what the segments of a worker that died left (its keyframes' folder, a temporary file)
    segments = {"count": count, "warnings": list(dict.fromkeys(warnings)), "errors": errors}
    return _run_here(spec, Path(spec["video"]), Path(spec["folder"]), spec["options"], {}, segments)


# --------------------------------------------------------------------------------------------------
# in this process: plan, claim, submit, follow, and write the records


class _Video:
    """One video of a batch on the cluster, as this process follows it."""

    def __init__(self, result, number: int):
        self.result = result
        self.key = f"{number}:{result.video}"
        self.lock = None
        self.mode = "shared"
        self.done = self.total = 0
        self.parts: dict[str, tuple[int, int]] = {}  # each segment's progress
        self.spec: dict = {}
        self.times: list[float] = []  # keyframe times, when cut into segments
        self.segments: dict = {"left": 0, "warnings": [], "errors": [], "mismatch": None}
        self.received: set[str] = set()
        self.failure: MagicmaskError | None = None  # an output that could not be written here
        self.finished = False


def run_videos(results: list, options, progress=None, on_video=None) -> list:
    """Run each video's whole job on the Dask cluster of ``options.scheduler`` (see :func:`video_task`).

    This process plans (each folder checked, claimed and locked here: a finished video is not sent),
    follows the progress the workers report, and writes each record (and, when the outputs are sent
    back, every output, atomically). The same contract as :func:`magicmask.job.run_jobs`.
    """
    from magicmask.job import FAILED, UP_TO_DATE, VideoJob
    from magicmask.lock import FolderLock
    from magicmask.media.ffmpeg import check_video_path
    from magicmask.provenance import record as records

    distributed = require()
    storage = getattr(options, "storage", "auto")
    videos = [_Video(result, number) for number, result in enumerate(results)]
    by_key = {video.key: video for video in videos}
    arrived = threading.Condition()

    def report():
        if progress is not None:
            progress("frames", sum(v.done for v in videos), sum(max(v.total, v.done) for v in videos))

    def on_event(event):
        key, stage, done, total = event[1]
        key, _, part = key.partition("#")
        video = by_key.get(key)
        if video is None or video.finished:
            return
        if stage == "frames":
            video.parts[part] = (done, total)
            video.done = sum(count for count, _ in video.parts.values())
            video.total = max(video.total, sum(total for _, total in video.parts.values()))
            report()
        elif progress is not None:
            progress(stage, done, total)

    def finish(video: _Video, status: str) -> None:
        result = video.result
        if video.lock is not None:
            video.lock.release()
        video.finished = True
        result.status = FAILED if (result.error or result.errors) else status
        video.done = video.total = len(result.keyframes)
        report()
        if on_video is not None:
            on_video(result)

    with connect(options.scheduler) as client:
        threads = _threads(client)
        queue = distributed.Queue(f"magicmask-outputs-{secrets.token_hex(8)}", client=client, maxsize=QUEUED)
        client.subscribe_topic(PROGRESS_TOPIC, on_event)
        receiver = threading.Thread(target=_receive, args=(queue, by_key, arrived), name="magicmask-receive", daemon=True)
        receiver.start()
        done = distributed.as_completed(loop=client.loop)
        pending: dict = {}  # future -> (video, what it does, the futures of its bytes)
        worker_options = options.replace(scheduler=None, jobs=1)
        cut = options.streams and storage != "send" and threads > 1  # segments need the background before the keyframes

        def task(video: _Video, kind: str, func, *args):
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning)
                key = f"magicmask-{kind}-{video.result.video.name}-{secrets.token_hex(8)}"  # the video, on a dashboard
                future = client.submit(func, video.spec, *args, key=key, pure=False)
            pending[future] = (video, kind, [])
            done.add(future)
            return future

        def submit(video: _Video) -> None:
            result = video.result
            inputs = {os.fspath(result.video.resolve()): file_identity(result.video)}
            if options.method is None:
                inputs[options.background] = file_identity(options.background)
            video.spec = {
                "key": video.key, "mode": video.mode, "video": os.fspath(result.video.resolve()), "folder": os.fspath(result.folder.resolve()),
                "options": worker_options, "inputs": inputs, "token": video.lock.holder.token, "queue": queue.name,
            }
            if cut and video.mode == "shared" and not video.times:
                return task(video, "plan", plan_task)
            held = []
            background = None
            if video.mode == "send":
                with open(result.video, "rb") as handle:
                    while part := handle.read(SEND_CHUNK):
                        held.append(_submit(client, hold, part))
                if options.method is None:
                    background = _submit(client, hold, Path(options.background).read_bytes())
                    held.append(background)
            future = task(video, "video", video_task, held[: len(held) - (background is not None)], background)
            pending[future][2].extend(held)

        def segments(video: _Video) -> None:
            """The video's keyframes in runs over the workers, each decoded from its first keyframe."""
            count = len(video.times)
            size = max(SEGMENT_MIN, math.ceil(count / (2 * threads)))
            starts = list(range(0, count, size))
            video.segments["left"] = len(starts)
            for index, start in enumerate(starts):
                task(video, "segment", segment_task, index, start, min(count, start + size), video.times)

        def collect(future) -> None:
            video, kind, held = pending.pop(future)
            result = video.result
            if video.finished:
                return  # a failed video's other segments
            if future.status != "finished":
                result.error = _as_error(future, result.video)
                _cancel(client, [other for other, (owner, *_) in pending.items() if owner is video])
                return finish(video, FAILED)
            summary = future.result()
            for part in held:  # the video's bytes are no longer needed on the cluster
                part.release()
            if kind == "plan" and "times" in summary:
                video.times = summary["times"] or []
                if len(video.times) < 2 * SEGMENT_MIN:
                    video.times = [0.0]  # not worth cutting: the video whole on one worker
                    return submit(video)
                video.total = len(video.times)
                return task(video, "first", segment_task, -1, 0, 1, video.times)  # the background of every segment
            if kind == "first":
                video.segments["warnings"] += summary.get("warnings", [])
                return segments(video) if "mismatch" not in summary else submit(video)
            if kind == "segment":
                cuts = video.segments
                cuts["left"] -= 1
                cuts["warnings"] += summary.get("warnings", [])
                cuts["errors"] += summary.get("errors", [])
                cuts["mismatch"] = cuts["mismatch"] or summary.get("mismatch")
                if cuts["left"] == 0:
                    if cuts["mismatch"]:  # ffmpeg did not give the keyframes the packets announced: the video whole
                        video.parts.clear()
                        return submit(video)
                    task(video, "finish", finish_task, len(video.times), cuts["warnings"], cuts["errors"])
                return
            if "unseen" in summary:
                if storage == "auto":
                    video.mode = "send"
                    return submit(video)
                result.error = MagicmaskError(f"the Dask workers do not see this video as this machine does: {summary['unseen']}", result.video, "use --storage send (or auto), or keep videos and outputs on storage the workers share")
                return finish(video, FAILED)
            try:
                status = _finish_here(video, summary, arrived, records)
            except MagicmaskError as error:
                result.error, status = error, FAILED
            finish(video, status)

        try:
            report()
            for video in videos:
                result = video.result
                try:
                    check_video_path(result.video)
                    planned = VideoJob(result, options)
                    if (record := planned.current()) is not None:
                        planned._up_to_date(record)
                        result.seconds = 0.0
                        finish(video, UP_TO_DATE)
                        continue
                    video.lock = FolderLock(result.folder, f"magicmask run {result.video}").acquire()
                    records.claim(result.folder, result.video, force=options.force)
                    video.mode = "send" if storage == "send" else "shared"
                    submit(video)
                except MagicmaskError as error:
                    result.error = error
                    finish(video, FAILED)
                    continue
                while len(pending) >= (threads + 1 if video.mode == "send" else 2 * threads):
                    collect(next(done))
            while pending:
                collect(next(done))
        finally:
            _cancel(client, [future for future, (video, kind, held) in pending.items() for future in (future, *held)])
            for video in videos:
                if video.lock is not None:
                    video.lock.release()
            with contextlib.suppress(Exception):
                client.unsubscribe_topic(PROGRESS_TOPIC)
            with contextlib.suppress(Exception):
                queue.put(None, timeout=5)
            receiver.join(timeout=5)
    return results


def _receive(queue, by_key: dict, arrived: threading.Condition) -> None:
    """In a thread: write every output the workers send, atomically, as it arrives."""
    from magicmask.files import write_atomic

    while True:
        try:
            item = queue.get()
        except Exception:  # the client closed
            return
        if item is None:
            return
        key, files = item
        video = by_key.get(key)
        if video is None or video.finished:
            continue  # a finished video's outputs, sent again by an attempt that was lost: written already
        for name, data in files:
            try:
                write_atomic(video.result.folder / name, data)
            except MagicmaskError as error:
                video.failure = video.failure or error
            with arrived:
                video.received.add(name)
                arrived.notify_all()


def _finish_here(video: _Video, summary: dict, arrived: threading.Condition, records) -> str:
    """A video whose job is done on a worker: its results as the client names them, its sent outputs all
    written here, then its record and the folder's mark. Returns the status."""
    from magicmask.job import DONE, FAILED

    result, folder = video.result, video.result.folder
    at = lambda name: None if name is None else (Path(name) if os.path.isabs(name) else folder / name)  # noqa: E731
    result.keyframes = [folder / name for name in summary["keyframes"]]
    result.background = at(summary["background"])
    result.backgrounds = {folder / frame: at(path) for frame, path in summary["backgrounds"].items()}
    result.thresholds = {folder / frame: (os.fspath(at(value)) if value.endswith(".tiff") else value) for frame, value in summary["thresholds"].items()}
    result.outputs = [(folder / mask, folder / clean) for mask, clean in summary["outputs"]]
    error = lambda e: MagicmaskError(e[0], folder / e[1][1:] if e[1] and e[1].startswith("@") else e[1], e[2])  # noqa: E731
    result.errors = [error(e) for e in summary["errors"]]
    result.error = error(summary["error"]) if summary["error"] else None
    result.warnings = summary["warnings"]
    result.sheet, result.display = at(summary["sheet"]), at(summary["display"])
    result.motion, result.plot, result.cutouts = at(summary["motion"]), at(summary["plot"]), [at(name) for name in summary["cutouts"]]
    result.timings, result.seconds = summary["timings"], summary["seconds"]
    files = summary.get("files")
    if files is not None:  # sent: wait for the last of them
        with arrived:
            if not arrived.wait_for(lambda: video.received >= set(files) or video.failure is not None, timeout=ARRIVAL_TIMEOUT):
                raise MagicmaskError("the outputs of this video did not all arrive from the Dask worker", result.video, "check the scheduler and re-run; finished files are kept")
        if video.failure is not None:
            raise video.failure
    if summary["record"] is None:
        return FAILED
    made = set(summary["made"])
    if files is not None:  # the worker's folder was new: earlier outputs this run does not make go here
        records.note_made(folder, result.video, made)
        records.remove_made(folder, keep=made | set(files))
    result.record = records.write(folder, summary["record"])
    records.release(folder, result.video, made)
    return DONE
