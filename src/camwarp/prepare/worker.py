"""One item of ``camwarp prepare``: read, move every piece with one op chain, write, record.

:func:`process_item` runs in a worker process (or in the main one for ``workers=1``). It reads the
image (and depth map, mask), checks their sizes against the camera, applies the op chain through
:func:`camwarp.transforms.from_op_list` (one resampling per image; depth and masks never blended;
keypoints, camera and rotation ``R`` moved exactly), writes each output atomically, and only then
its sidecar record (:class:`~camwarp.prepare.state.JobState`). Any failure of the item is caught,
recorded with the file name and returned: the run goes on. A mirrored camera (``det R = -1``)
where the poses cannot hold one is a job error (:class:`MirroredPoseError`): it would fail
every image; so are a full, read-only or failing file system and a record that cannot be written.
"""

from __future__ import annotations

import ctypes
import json
import signal
from dataclasses import dataclass

import torch

from ..errors import CamwarpError
from ..transforms import Compose, from_op_list
from .items import Item, camera_from_dict, camera_to_dict
from .media import read_depth, read_image, read_mask, write_depth, write_image, write_mask
from .atomic import is_disk_error, os_error_message
from .state import JobState

__all__ = ["ItemError", "MirroredPoseError", "Outcome", "WorkerConfig", "init_worker", "process_item"]

_PIPELINES: dict[str, Compose] = {}


class ItemError(CamwarpError):
    """An item that cannot be prepared: size mismatch with its camera, missing camera, ..."""


class MirroredPoseError(CamwarpError):
    """The op chain mirrors the camera (a flip: ``det R = -1``) and the dataset's poses cannot hold it."""


@dataclass(frozen=True)
class WorkerConfig:
    """What every item of a job shares (picklable).

    Attributes:
        output_dir: the job's output folder (its state folder receives the records).
        ops: the op chain, ``[(name, args), ...]`` as :func:`camwarp.transforms.from_op_list` takes.
        jpeg_quality: JPEG/WebP quality, 1..100.
        png_compression: PNG zlib level, 0..9.
        fsync: flush every file to the disk.
    """

    output_dir: str
    ops: tuple = ()
    jpeg_quality: int = 95
    png_compression: int = 6
    fsync: bool = False


@dataclass(frozen=True)
class Outcome:
    """What a worker reports about one item: ``error`` is None on success; ``fatal`` stops the job,
    ``resumable`` when fixing the file system and running again finishes it."""

    index: int
    name: str
    error: str | None = None
    fatal: bool = False
    resumable: bool = False


def init_worker() -> None:
    """Initializer of a worker process: one torch thread, and die with the parent (Linux)."""
    torch.set_num_threads(1)
    try:  # PR_SET_PDEATHSIG = 1: a killed parent (kill -9) takes its workers along
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _pipeline(ops: tuple) -> Compose:
    key = json.dumps(ops)
    if key not in _PIPELINES:
        _PIPELINES[key] = from_op_list([(name, tuple(args)) for name, args in ops])
    return _PIPELINES[key]


def _transform(item: Item, config: WorkerConfig) -> dict:
    if item.camera is None:
        raise ItemError("its camera is not in the camera file")
    camera = camera_from_dict(item.camera)
    image, encoding = read_image(item.image)
    H, W = image.shape[-2:]
    if (W, H) != camera.size:
        raise ItemError(f"image is {W}x{H} but its camera is {camera.width}x{camera.height}")
    sample: dict = {"image": image, "camera": camera}
    encodings = {}
    for key, path, reader in (("depth", item.depth, read_depth), ("mask", item.mask, read_mask)):
        if path is None:
            continue
        data, encodings[key] = reader(path)
        if tuple(data.shape[-2:]) != (H, W):
            raise ItemError(f"{key} {path} is {data.shape[-1]}x{data.shape[-2]} but the image is {W}x{H}")
        sample[key] = data[0]  # (H, W)
    if item.keypoints:
        sample["keypoints"] = torch.tensor(item.keypoints, dtype=torch.float64)  # (N, 2)
    out = _pipeline(config.ops)(sample)
    R = out["R"].to(torch.float64)
    if not item.mirror_ok and bool(torch.linalg.det(R) < 0):
        raise MirroredPoseError("the ops mirror the camera (a flip: det R = -1) and the dataset's poses (COLMAP "
                                "quaternions) cannot hold a reflection; drop --hflip/--vflip or use --rot90 2")
    q, level, fsync = config.jpeg_quality, config.png_compression, config.fsync
    write_image(item.out_image, out["image"], encoding, jpeg_quality=q, png_compression=level, fsync=fsync)
    if "depth" in encodings:
        write_depth(item.out_depth, out["depth"][None], encodings["depth"], png_compression=level, fsync=fsync)
    if "mask" in encodings:
        write_mask(item.out_mask, out["mask"][None], encodings["mask"], jpeg_quality=q, png_compression=level,
                   fsync=fsync)
    return {"name": item.name, "camera": camera_to_dict(out["camera"]), "R": R.tolist(),
            "keypoints": out["keypoints"].tolist() if "keypoints" in out else None}


def process_item(item: Item, config: WorkerConfig) -> Outcome:
    """Prepare one item (outputs, then its record); never raises.

    A per-file problem (unreadable input, size mismatch, an output path blocked by a folder or
    a read-only file) is recorded and reported; the job goes on. A problem of the whole job is
    ``fatal``: a mirror the poses cannot hold, a full, read-only or failing file system
    (:func:`~camwarp.prepare.atomic.is_disk_error`), or a record that cannot be written. The
    outputs and records written before stay valid (the next run resumes).

    Args:
        item: the image and its companions.
        config: the job's shared settings.

    Returns:
        :class:`Outcome`: ``error`` holds one line (``"<type>: <message>"``, or for a file-system
        error ``"cannot write <path>: <strerror> [<ERRNO>]"``) when the item failed.
    """
    state = JobState(config.output_dir, config.fsync)
    try:
        record = _transform(item, config)
    except MirroredPoseError as err:
        return Outcome(item.index, item.name, str(err), fatal=True)
    except Exception as err:  # noqa: BLE001 - any per-file failure is reported, and the run goes on
        if not (isinstance(err, OSError) and err.errno is not None):
            return _record(state, Outcome(item.index, item.name, f"{type(err).__name__}: {err}"))
        # the readers turn read errors into MediaError: a file-system error here is an output's
        message = f"cannot write {os_error_message(err)}"
        if is_disk_error(err):
            return Outcome(item.index, item.name, message, fatal=True, resumable=True)
        return _record(state, Outcome(item.index, item.name, message))
    return _record(state, Outcome(item.index, item.name), record)


def _record(state: JobState, outcome: Outcome, record: dict | None = None) -> Outcome:
    """Write the item's record (its result, or its error); a record that cannot be written is fatal."""
    try:
        if outcome.error is None:
            state.write_ok(outcome.index, record)
        else:
            state.write_error(outcome.index, outcome.name, outcome.error)
    except OSError as err:
        return Outcome(outcome.index, outcome.name, f"cannot write its record {os_error_message(err)}",
                       fatal=True, resumable=True)
    return outcome
