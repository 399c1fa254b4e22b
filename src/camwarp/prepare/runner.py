"""The job runner of ``camwarp prepare``: shards, a bounded pool of workers, resume, merge.

A job is ``(input layout, op chain, encoder settings)``. :func:`prepare` streams the layout's items,
keeps those of its shard (``index % n == i``), skips the ones whose sidecar record exists (resume),
and hands the rest to ``workers`` processes with at most ``2 * workers`` items in flight, so memory
stays bounded whatever the dataset size. Each worker writes its outputs and then the record,
atomically (:mod:`camwarp.prepare.atomic`). A run over all shards (``shard=(0, 1)``) ends with the
merge: the layout's camera/pose files are written from the records, stray temporary files are
removed and the state folder is retired; sharded runs leave the merge to :func:`merge_shards`.
Failed items are listed (``(name, error)``), never fatal; a re-run retries them. A run holds the
state folder's lock (:mod:`camwarp.prepare.lock`) from before ``job.json`` is read to after the
folder is retired: exclusive for a run over all shards and for a merge, shared plus its own shard's
for a shard run. A file-system error of the whole job (full disk, read-only output) stops it with
one line (:class:`JobError`); everything finished stays valid and a re-run resumes.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

import torch

from .. import _checks
from ..errors import CamwarpError
from ..transforms import from_op_list
from .atomic import atomic_write_text, os_error_message, sweep_temp_files
from .items import Item, camera_from_dict
from .layouts import Layout, detect_layout
from .lock import lock_state
from .state import JobState, JobStateError
from .worker import Outcome, WorkerConfig, init_worker, process_item

__all__ = ["JobError", "PrepareResult", "default_workers", "merge_shards", "prepare"]

# fork: workers start instantly (no second import of torch), as torch's DataLoader workers do; each
# worker then runs one torch thread (init_worker). spawn where fork does not exist.
_START_METHOD = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"

_RESUME = ("the job stopped; what is done is kept: free space (or make the folder writable) and run the same "
           "command again to resume")

#: Increment of the job description format (a change invalidates unfinished jobs).
JOB_FORMAT = 1


class JobError(CamwarpError):
    """A job that cannot go on: a fatal op (a mirror of COLMAP poses), a crashed worker, or a full,
    read-only or failing file system (the message names the path and the OS error)."""


@dataclass
class PrepareResult:
    """What a :func:`prepare` run did.

    Attributes:
        total: items of this shard; processed: prepared now; skipped: already done (resume).
        errors: ``(name, message)`` of every failed item (of all shards after a merge).
        merged: whether the final camera/pose files were written.
    """

    total: int = 0
    processed: int = 0
    skipped: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    merged: bool = False


def default_workers() -> int:
    """The number of CPU cores this process may use (``os.sched_getaffinity`` where available)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _check_int(value: object, fn: str, name: str, lo: int, hi: int | None = None) -> int:
    value = _checks.check_int(value, fn, name)
    if value < lo or (hi is not None and value > hi):
        raise ValueError(f"{fn}: {name} must be in [{lo}, {hi if hi is not None else 'inf'}), got {value}"
                         if hi is None else f"{fn}: {name} must be in [{lo}, {hi}], got {value}")
    return value


def _job(layout: Layout, ops: list, jpeg_quality: int, png_compression: int) -> dict:
    return {"format": JOB_FORMAT, "input_dir": str(layout.input_dir.resolve()), **layout.describe(),
            "ops": [[name, list(args)] for name, args in ops], "jpeg_quality": jpeg_quality,
            "png_compression": png_compression}


def _check_mirror(layout: Layout, ops: list) -> None:
    """Fail before any work when the ops mirror the camera and the layout's poses cannot hold that."""
    if layout.mirror_ok:
        return
    first = next((item for item in layout.items() if item.camera is not None), None)
    if first is None:
        return
    R = from_op_list(ops)({"camera": camera_from_dict(first.camera)})["R"]
    if bool(torch.linalg.det(R) < 0):
        raise JobError(f"prepare: the ops mirror the camera (a flip: det R = -1) and {layout.kind} poses cannot "
                       "hold a reflection; drop --hflip/--vflip (or use --rot90 2)")


def _run(items: Iterable[Item], config: WorkerConfig, workers: int, report: Callable[[Outcome], None]) -> None:
    if workers == 1:
        for item in items:
            report(process_item(item, config))
        return
    window = 2 * workers  # bounded in-flight queue: memory independent of the dataset size
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(_START_METHOD), initializer=init_worker)
    pending: set = set()
    try:
        for item in items:
            if len(pending) >= window:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    report(future.result())
            pending.add(pool.submit(process_item, item, config))
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                report(future.result())
    except BrokenProcessPool as err:
        raise JobError(f"prepare: a worker process died (out of memory?): {err}") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def prepare(input_dir: str | os.PathLike, output_dir: str | os.PathLike, ops: Sequence[tuple[str, Sequence]] = (),
            *, workers: int | None = None, shard: tuple[int, int] = (0, 1), jpeg_quality: int = 95,
            png_compression: int = 6, camera: str | os.PathLike | None = None, fsync: bool = False,
            progress: Callable[[str, object], None] | None = None) -> PrepareResult:
    """Prepare a dataset folder: apply ``ops`` to every image (depth, mask, keypoints, camera, pose).

    Resumable: a run killed at any moment (``kill -9`` included) and run again with the same
    arguments finishes the job with every output byte-identical to an uninterrupted run.

    Args:
        input_dir: the dataset (COLMAP, nerfstudio or one camera file; see
            :mod:`camwarp.prepare.layouts`).
        output_dir: the new dataset, same layout (created; must differ from ``input_dir``).
        ops: the op chain, e.g. ``[("center_crop", (1920, 1080)), ("resize", (640, 360))]``
            (:func:`camwarp.transforms.from_op_list`).
        workers: worker processes (default: all cores); 1 runs in this process.
        shard: ``(i, n)``: this run handles the items with ``index % n == i``, ``0 <= i < n``.
        jpeg_quality: JPEG/WebP quality 1..100 (default 95).
        png_compression: PNG zlib level 0..9 (default 6).
        camera: one camera file for every image (forces that layout).
        fsync: flush every file to the disk (power-loss safety; slower).
        progress: called with ``("total", n)`` once, then ``("done" | "skipped" | "error", name)``.

    Returns:
        :class:`PrepareResult`; ``errors`` non-empty when some files failed (they are omitted from
        the merged metadata, and retried by the next run).

    Raises:
        TypeError, ValueError: bad arguments (naming them), an unknown op.
        LayoutError: an input folder of no known layout.
        JobStateError: ``output_dir`` holds another job's unfinished state.
        JobLockedError: another run holds ``output_dir`` (or this shard of it); names its PID.
        JobError: a fatal op (a flip of COLMAP poses), a crashed worker, or a file-system error of
            the job (full disk, read-only output or parent, a file in the way of the state folder;
            one line naming the path and the error; what is done is kept, a re-run resumes).
    """
    fn = "prepare"
    workers = default_workers() if workers is None else _check_int(workers, fn, "workers", 1)
    if not isinstance(shard, tuple) or len(shard) != 2:
        raise TypeError(f"{fn}: shard must be a pair (i, n), got {shard!r}")
    n = _check_int(shard[1], fn, "shard n", 1)
    i = _check_int(shard[0], fn, "shard i", 0, n - 1)
    jpeg_quality = _check_int(jpeg_quality, fn, "jpeg_quality", 1, 100)
    png_compression = _check_int(png_compression, fn, "png_compression", 0, 9)
    ops = [(name, tuple(args)) for name, args in ops]
    from_op_list(ops)  # named errors for a bad chain, before any work
    layout = detect_layout(input_dir, output_dir, camera)
    _check_mirror(layout, ops)
    state = JobState(output_dir, fsync)
    with _stop_on_os_error(), lock_state(state.root, (i, n) if n > 1 else None, "camwarp prepare"):
        state.begin(_job(layout, ops, jpeg_quality, png_compression))
        config = WorkerConfig(str(layout.output_dir), tuple(ops), jpeg_quality, png_compression, fsync)
        return _prepare_locked(layout, state, config, workers, (i, n), progress)


def _prepare_locked(layout: Layout, state: JobState, config: WorkerConfig, workers: int, shard: tuple[int, int],
                    progress: Callable[[str, object], None] | None) -> PrepareResult:
    """The job itself, under the state folder's lock (exclusive, or shared + this shard's)."""
    i, n = shard
    notify = progress or (lambda event, value: None)
    result = PrepareResult(total=sum(1 for k, _ in enumerate(layout.names()) if k % n == i))
    notify("total", result.total)

    def todo() -> Iterable[Item]:
        for item in layout.items():
            if item.index % n != i:
                continue
            if state.status(item.index) == "ok":
                result.skipped += 1
                notify("skipped", item.name)
                continue
            yield item

    def report(outcome: Outcome) -> None:
        if outcome.fatal:
            hint = f"; {_RESUME}" if outcome.resumable else ""
            raise JobError(f"prepare: {outcome.name}: {outcome.error}{hint}")
        if outcome.error is None:
            result.processed += 1
            notify("done", outcome.name)
        else:
            result.errors.append((outcome.name, outcome.error))
            notify("error", (outcome.name, outcome.error))

    _run(todo(), config, workers, report)
    if n > 1:
        summary = f'{{"shard": [{i}, {n}], "total": {result.total}, "errors": {len(result.errors)}}}\n'
        atomic_write_text(state.root / "shards" / f"{i}-of-{n}.json", summary, state.fsync)
        return result
    result.errors = _merge(layout, state, state.fsync)
    result.merged = True
    return result


@contextlib.contextmanager
def _stop_on_os_error() -> Iterator[None]:
    """Turn a file-system error of the job (state folder, merge) into one line: a :class:`JobError`."""
    try:
        yield
    except OSError as err:
        if err.errno is None:
            raise
        raise JobError(f"prepare: {os_error_message(err)}; {_RESUME}") from err


def _merge(layout: Layout, state: JobState, fsync: bool) -> list[tuple[str, str]]:
    """Write the layout's metadata from the records; only under the state folder's exclusive lock."""
    errors = layout.merge(state, fsync)
    sweep_temp_files(layout.output_dir)
    if not errors:
        state.retire()
    return errors


def merge_shards(input_dir: str | os.PathLike, output_dir: str | os.PathLike, *,
                 camera: str | os.PathLike | None = None, ops: Sequence[tuple[str, Sequence]] | None = None,
                 fsync: bool = False) -> list[tuple[str, str]]:
    """Merge the records of all shards of a job into the layout's camera/pose files.

    Run it once every ``prepare(..., shard=(i, n))`` has finished (shards may share ``output_dir``
    or be copied into it). The job's ops and settings are read from ``output_dir``.

    Args:
        input_dir, output_dir, camera: as for :func:`prepare`.
        ops: optional; when given they must be the job's ops.
        fsync: flush the merged files to the disk.

    Returns:
        ``(name, error)`` of the failed items (omitted from the merged files).

    Raises:
        JobStateError: no unfinished job in ``output_dir``, other ops or changed input metadata,
            or images not processed yet (names the first ones).
        JobLockedError: a shard (or another merge) still runs on ``output_dir``; names its PID.
        JobError: a file-system error while writing the merged files (the records are kept).
    """
    layout = detect_layout(input_dir, output_dir, camera)
    state = JobState(output_dir, fsync)
    nothing = JobStateError(f"merge_shards: {output_dir} holds no unfinished camwarp prepare job "
                            "(nothing to merge: run the shards first, or the job is already merged)")
    if not state.root.is_dir():
        raise nothing  # before locking, which would create the state folder
    with _stop_on_os_error(), lock_state(state.root, None, "camwarp prepare --merge-shards"):
        job = state.load_job()
        if job is None:
            raise nothing
        stored_ops = [(name, tuple(args)) for name, args in job.get("ops", [])]
        wanted = stored_ops if ops is None else [(name, tuple(args)) for name, args in ops]
        state.begin(_job(layout, wanted, job.get("jpeg_quality", 95), job.get("png_compression", 6)))
        return _merge(layout, state, fsync)
