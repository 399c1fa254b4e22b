"""One unit of work of ``camwarp prepare``: an :class:`Item` (image + optional depth/mask + camera).

Items are plain picklable records (paths as strings, the camera as numbers) so that they travel to
worker processes cheaply; :func:`camera_to_dict` / :func:`camera_from_dict` convert cameras exactly
(float64, OpenCV centre frame). Depth maps and masks are found by name next to the images:
``<root>/depths/<rel>`` and ``<root>/masks/<rel>`` with the image's relative path ``<rel>``, its
extension replaced (or kept, COLMAP's mask convention ``masks/<name>.png``); see :func:`find_aux`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import torch

from ..camera import Camera
from ..errors import CamwarpError

__all__ = ["DEPTH_DIRS", "Item", "MASK_DIRS", "UnsafePathError", "camera_from_dict", "camera_to_dict",
           "find_aux", "safe_join"]

DEPTH_DIRS = ("depths", "depth")
MASK_DIRS = ("masks", "mask")
_DEPTH_EXTS = (".png", ".npy", ".tiff", ".tif", ".exr")
_MASK_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


class UnsafePathError(CamwarpError):
    """A file name in a dataset's metadata that would leave the dataset folder (absolute or ``..``)."""


@dataclass(frozen=True)
class Item:
    """One image to prepare, with everything a worker needs.

    Attributes:
        index: position in the dataset's order (0-based); names the sidecar record and the shard.
        name: the image's name in the dataset metadata (shown in errors).
        image, out_image: input and output image files.
        camera: the camera as :func:`camera_to_dict` numbers, or None (then the item fails).
        depth, out_depth: input and output depth maps, or None.
        mask, out_mask: input and output masks, or None.
        keypoints: ``(N, 2)`` pixels (OpenCV centre frame) that move with the image, or None.
        mirror_ok: whether the dataset's poses can hold a mirrored camera (``det R = -1``).
    """

    index: int
    name: str
    image: str
    out_image: str
    camera: dict | None
    depth: str | None = None
    out_depth: str | None = None
    mask: str | None = None
    out_mask: str | None = None
    keypoints: list | None = None
    mirror_ok: bool = True


def camera_to_dict(camera: Camera) -> dict:
    """Return an unbatched camera as plain numbers (float64, OpenCV centre frame).

    Example:
        >>> d = camera_to_dict(Camera(500.0, 500.0, 319.5, 239.5, 640, 480)); d["cx"], d["width"]
        (319.5, 640)
    """
    if tuple(camera.batch_shape) != ():
        raise ValueError(f"camera_to_dict: camera must be unbatched, got batch shape {tuple(camera.batch_shape)}")
    cam = camera.to(device="cpu", dtype=torch.float64)
    values = {k: float(getattr(cam, k)) for k in ("fx", "fy", "cx", "cy", "skew")}
    return values | {"dist": cam.dist.tolist(), "model": cam.model, "width": cam.width, "height": cam.height}


def camera_from_dict(d: dict) -> Camera:
    """Return the float64 camera of :func:`camera_to_dict` numbers.

    Example:
        >>> camera_from_dict(camera_to_dict(Camera(500.0, 400.0, 319.5, 239.5, 640, 480))).K.dtype
        torch.float64
    """
    f64 = {k: torch.tensor(d[k], dtype=torch.float64) for k in ("fx", "fy", "cx", "cy", "skew")}
    dist = torch.tensor(d["dist"], dtype=torch.float64).reshape(-1)
    return Camera(width=d["width"], height=d["height"], dist=dist, model=d["model"], **f64)


def safe_join(root: str | os.PathLike, name: str, fn: str = "safe_join") -> Path:
    """Join a dataset-relative name to ``root``, refusing absolute names and ``..`` components.

    Example:
        >>> safe_join("/data", "images/a.jpg").as_posix()
        '/data/images/a.jpg'
    """
    rel = PurePosixPath(name.replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts or not rel.parts or Path(name).is_absolute():
        raise UnsafePathError(f"{fn}: file name {name!r} leaves the dataset folder (absolute or '..')")
    return Path(root, *[p for p in rel.parts if p != "."])


def find_aux(root: Path, rel: str, kind: str) -> str | None:
    """Return the depth map (``kind="depth"``) or mask (``"mask"``) of image ``rel``, or None.

    Looked up, in order, under ``root/depths``, ``root/depth`` (``masks``, ``mask``): the image's
    relative path with its extension replaced by ``.png``, ``.npy``, ``.tiff``, ``.tif``, ``.exr``
    (masks: ``.png``, ``.jpg``, ...), then with ``.png`` appended (COLMAP's ``masks/<name>.png``).

    Returns:
        The path relative to ``root`` (POSIX separators), or None.
    """
    dirs, exts = (DEPTH_DIRS, _DEPTH_EXTS) if kind == "depth" else (MASK_DIRS, _MASK_EXTS)
    path = PurePosixPath(rel)
    for d in dirs:
        if not (root / d).is_dir():
            continue
        for candidate in [path.with_suffix(e) for e in exts] + [path.with_name(path.name + ".png")]:
            if (root / d / candidate).is_file():
                return f"{d}/{candidate.as_posix()}"
    return None
