"""COLMAP ``images.txt`` (poses and 2D points) and ``points3D.txt``, read and written as text.

``images.txt`` holds two lines per image (COLMAP ``doc/format.rst``)::

    IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME
    X Y POINT3D_ID X Y POINT3D_ID ...          (may be empty)

The pose is world-to-camera, ``X_cam = R(q) X_world + t`` with the quaternion ``q = (w, x, y, z)``;
2D points are pixels in COLMAP's corner frame (top-left pixel centre at ``(0.5, 0.5)``) and are
converted to OpenCV's centre frame (``- 0.5``) where camwarp moves them. The files are streamed
(one image at a time), so a model of any size is read in constant memory. Binary models
(``images.bin``) are not read: ``colmap model_converter --output_type TXT`` converts them.

A camera that gained a rotation ``R`` (``X_new = R X_cam``, :meth:`camwarp.Camera.transform`) has the
pose ``R_new = R R_old``, ``t_new = R t_old`` (:func:`rotate_pose`). A reflection (``det R = -1``,
a flip) has no quaternion, so COLMAP cannot store it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

import numpy as np

from ..errors import CameraFileError

__all__ = ["ColmapImage", "IMAGES_HEADER", "filter_points3d", "iter_colmap_images", "qvec_to_rotmat",
           "read_colmap_images", "rotate_pose", "rotmat_to_qvec", "write_colmap_images"]

IMAGES_HEADER = ("# Image list with two lines of data per image:\n"
                 "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME\n"
                 "#   POINTS2D[] as (X, Y, POINT3D_ID)\n")


@dataclass(frozen=True)
class ColmapImage:
    """One image of ``images.txt``.

    Attributes:
        image_id: COLMAP ``IMAGE_ID``.
        qvec: world-to-camera rotation quaternion ``(w, x, y, z)``.
        tvec: world-to-camera translation ``(tx, ty, tz)``.
        camera_id: COLMAP ``CAMERA_ID``.
        name: image path relative to the image folder (no spaces, as in COLMAP).
        points2d: the raw ``POINTS2D`` line (``X Y POINT3D_ID`` triples, corner frame), without
            the line end; parse it with :meth:`points`.
        line: 1-based line number of the image line in its file (0 when built in memory).
    """

    image_id: int
    qvec: tuple[float, float, float, float]
    tvec: tuple[float, float, float]
    camera_id: int
    name: str
    points2d: str = ""
    line: int = 0

    def points(self) -> tuple[np.ndarray, list[str]]:
        """Return ``(xy (N, 2) float64 corner-frame pixels, POINT3D_ID strings)`` of the 2D points.

        Example:
            >>> im = ColmapImage(1, (1, 0, 0, 0), (0, 0, 0), 1, "a.jpg", "10.5 20 -1 3 4 7")
            >>> xy, ids = im.points(); xy.tolist(), ids
            ([[10.5, 20.0], [3.0, 4.0]], ['-1', '7'])
        """
        fields = self.points2d.split()
        if len(fields) % 3:
            raise CameraFileError(f"ColmapImage.points: image {self.name!r} (line {self.line + 1}): POINTS2D "
                                  f"has {len(fields)} numbers, not a multiple of 3")
        try:
            xy = np.array([[float(fields[i]), float(fields[i + 1])] for i in range(0, len(fields), 3)],
                          dtype=np.float64).reshape(-1, 2)
        except ValueError as err:
            raise CameraFileError(f"ColmapImage.points: image {self.name!r} (line {self.line + 1}): "
                                  f"{err}") from None
        return xy, fields[2::3]

    def with_points(self, xy: np.ndarray | Iterable[Iterable[float]], ids: list[str]) -> ColmapImage:
        """Return a copy whose ``POINTS2D`` line holds ``xy`` (corner frame, ``repr`` floats) and ``ids``."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        if len(xy) != len(ids):
            raise ValueError(f"ColmapImage.with_points: {len(xy)} points but {len(ids)} POINT3D_IDs")
        text = " ".join(f"{x!r} {y!r} {i}" for (x, y), i in zip(xy.tolist(), ids))
        return replace(self, points2d=text)

    def image_line(self) -> str:
        """Return the ``IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME`` line (``repr`` floats)."""
        numbers = " ".join(repr(float(v)) for v in (*self.qvec, *self.tvec))
        return f"{self.image_id} {numbers} {self.camera_id} {self.name}"


def _parse_image_line(path: object, number: int, text: str) -> ColmapImage:
    fields = text.split()
    if len(fields) != 10:
        raise CameraFileError(f"read_colmap_images: {path}, line {number}: expected IMAGE_ID QW QX QY QZ TX TY TZ "
                              f"CAMERA_ID NAME (10 fields), got {len(fields)}")
    try:
        image_id, camera_id = int(fields[0]), int(fields[8])
        values = [float(v) for v in fields[1:8]]
    except ValueError as err:
        raise CameraFileError(f"read_colmap_images: {path}, line {number}: {err}") from None
    if not all(math.isfinite(v) for v in values):
        raise CameraFileError(f"read_colmap_images: {path}, line {number}: pose values must be finite")
    return ColmapImage(image_id, tuple(values[:4]), tuple(values[4:]), camera_id, fields[9], line=number)


def iter_colmap_images(path: str | os.PathLike) -> Iterator[ColmapImage]:
    """Stream the images of a COLMAP ``images.txt`` in file order, one at a time.

    Args:
        path: the text file.

    Yields:
        :class:`ColmapImage` per image; ``points2d`` is the raw line.

    Raises:
        CameraFileError: a malformed image line (names the file and line), a duplicate IMAGE_ID.
        FileNotFoundError: no such file.

    Example:
        >>> import tempfile; p = tempfile.mkdtemp() + "/images.txt"
        >>> _ = open(p, "w").write("# c\\n1 1 0 0 0 0 0 0 2 a.jpg\\n\\n")
        >>> [(im.image_id, im.camera_id, im.name) for im in iter_colmap_images(p)]
        [(1, 2, 'a.jpg')]
    """
    seen: set[int] = set()
    with open(path, encoding="utf-8") as f:
        number = 0
        for raw in f:
            number += 1
            text = raw.strip()
            if not text or text.startswith("#"):
                continue
            image = _parse_image_line(path, number, text)
            if image.image_id in seen:
                raise CameraFileError(f"read_colmap_images: {path}, line {number}: duplicate IMAGE_ID "
                                      f"{image.image_id}")
            seen.add(image.image_id)
            points = f.readline()  # the POINTS2D line follows unconditionally (COLMAP's reader)
            number += 1
            yield replace(image, points2d=points.strip())


def read_colmap_images(path: str | os.PathLike) -> list[ColmapImage]:
    """Read all images of a COLMAP ``images.txt``; see :func:`iter_colmap_images`.

    Example:
        >>> import tempfile; p = tempfile.mkdtemp() + "/images.txt"
        >>> write_colmap_images(p, [ColmapImage(3, (1, 0, 0, 0), (1, 2, 3), 1, "b.png", "1 2 -1")])
        >>> read_colmap_images(p)[0].points()[0].tolist()
        [[1.0, 2.0]]
    """
    return list(iter_colmap_images(path))


def write_images_to(f: TextIO, images: Iterable[ColmapImage]) -> tuple[int, int]:
    """Write image line pairs to an open text file; return ``(number of images, of 2D points)``."""
    count = observations = 0
    for image in images:
        f.write(image.image_line() + "\n" + image.points2d + "\n")
        count += 1
        observations += len(image.points2d.split()) // 3
    return count, observations


def write_colmap_images(path: str | os.PathLike, images: Iterable[ColmapImage]) -> None:
    """Write a COLMAP ``images.txt`` (COLMAP's header comments, ``repr`` floats: exact round trip).

    Not atomic by itself; :mod:`camwarp.prepare` writes through a temporary file.

    Example:
        >>> import tempfile; p = tempfile.mkdtemp() + "/images.txt"
        >>> write_colmap_images(p, [ColmapImage(1, (1, 0, 0, 0), (0, 0, 0), 1, "a.jpg")])
        >>> open(p).read().splitlines()[-2]
        '1 1.0 0.0 0.0 0.0 0.0 0.0 0.0 1 a.jpg'
    """
    with open(path, "w", encoding="utf-8") as f:
        f.write(IMAGES_HEADER)
        write_images_to(f, images)


def qvec_to_rotmat(qvec: Iterable[float]) -> np.ndarray:
    """Return the ``(3, 3)`` rotation of a quaternion ``(w, x, y, z)`` (normalized first), as COLMAP.

    Example:
        >>> qvec_to_rotmat((0, 0, 0, 1)).round(12).tolist()
        [[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    w, x, y, z = np.asarray(list(qvec), dtype=np.float64) / np.linalg.norm(list(qvec))
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def rotmat_to_qvec(R: np.ndarray) -> tuple[float, float, float, float]:
    """Return the unit quaternion ``(w, x, y, z)``, ``w >= 0``, of a ``(3, 3)`` rotation matrix.

    Shepperd's method: the largest of ``4w^2, 4x^2, 4y^2, 4z^2`` (diagonal combinations) picks the
    stable formula.

    Raises:
        ValueError: ``R`` is not a rotation (not orthonormal or ``det R = -1``, a reflection).

    Example:
        >>> rotmat_to_qvec(qvec_to_rotmat((0.5, 0.5, 0.5, 0.5)))
        (0.5, 0.5, 0.5, 0.5)
    """
    R = np.asarray(R, dtype=np.float64)
    if R.shape != (3, 3) or not np.allclose(R @ R.T, np.eye(3), atol=1e-9):
        raise ValueError(f"rotmat_to_qvec: R must be a 3x3 rotation matrix, got {R.tolist()}")
    if np.linalg.det(R) < 0:
        raise ValueError("rotmat_to_qvec: R is a reflection (det R = -1), which no quaternion represents")
    t = np.trace(R)
    candidates = [t, R[0, 0], R[1, 1], R[2, 2]]
    k = int(np.argmax(candidates))
    if k == 0:
        s = 2 * math.sqrt(1 + t)
        q = (s / 4, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s)
    elif k == 1:
        s = 2 * math.sqrt(1 + R[0, 0] - R[1, 1] - R[2, 2])
        q = ((R[2, 1] - R[1, 2]) / s, s / 4, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s)
    elif k == 2:
        s = 2 * math.sqrt(1 - R[0, 0] + R[1, 1] - R[2, 2])
        q = ((R[0, 2] - R[2, 0]) / s, (R[0, 1] + R[1, 0]) / s, s / 4, (R[1, 2] + R[2, 1]) / s)
    else:
        s = 2 * math.sqrt(1 - R[0, 0] - R[1, 1] + R[2, 2])
        q = ((R[1, 0] - R[0, 1]) / s, (R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, s / 4)
    sign = -1.0 if q[0] < 0 else 1.0
    return tuple(float(sign * v) + 0.0 for v in q)  # type: ignore[return-value]


def rotate_pose(image: ColmapImage, R: np.ndarray) -> ColmapImage:
    """Return ``image`` with its pose turned by the camera rotation ``R``: ``R R_old``, ``R t``.

    ``R`` is what :meth:`camwarp.Camera.transform` returns (the new camera sees ``R X``). The
    identity keeps the original numbers bit for bit.

    Raises:
        ValueError: ``R`` is a reflection (a flip): COLMAP poses hold rotations only.

    Example:
        >>> im = ColmapImage(1, (1.0, 0.0, 0.0, 0.0), (1.0, 2.0, 3.0), 1, "a.jpg")
        >>> rotate_pose(im, qvec_to_rotmat((0, 0, 0, 1))).tvec
        (-1.0, -2.0, 3.0)
    """
    R = np.asarray(R, dtype=np.float64)
    if np.array_equal(R, np.eye(3)):
        return image
    if np.linalg.det(R) < 0:
        raise ValueError(f"rotate_pose: image {image.name!r}: the op mirrors the camera (det R = -1, a flip); "
                         "a COLMAP pose cannot hold a reflection")
    rotation = R @ qvec_to_rotmat(image.qvec)
    tvec = tuple(float(v) + 0.0 for v in R @ np.asarray(image.tvec, dtype=np.float64))
    return replace(image, qvec=rotmat_to_qvec(rotation), tvec=tvec)  # type: ignore[arg-type]


def filter_points3d(src: str | os.PathLike, dst: TextIO, dropped_images: set[int]) -> None:
    """Copy a COLMAP ``points3D.txt`` to ``dst``, removing track entries of ``dropped_images``.

    Lines are ``POINT3D_ID X Y Z R G B ERROR TRACK[] as (IMAGE_ID, POINT2D_IDX)``; a line whose track
    loses an entry is rewritten, a point left with an empty track is dropped, any other line is
    copied verbatim. Streams: constant memory.

    Example:
        >>> import io, tempfile; p = tempfile.mkdtemp() + "/points3D.txt"
        >>> _ = open(p, "w").write("5 0 0 1 255 0 0 0.5 1 0 2 3\\n6 0 0 2 0 0 0 0.1 2 1\\n")
        >>> out = io.StringIO(); filter_points3d(p, out, {2}); out.getvalue()
        '5 0 0 1 255 0 0 0.5 1 0\\n'
    """
    with open(src, encoding="utf-8") as f:
        for number, raw in enumerate(f, start=1):
            text = raw.strip()
            fields = text.split()
            if not dropped_images or not text or text.startswith("#"):
                dst.write(raw if raw.endswith("\n") else raw + "\n")
                continue
            if len(fields) < 8 or (len(fields) - 8) % 2:
                raise CameraFileError(f"filter_points3d: {src}, line {number}: expected POINT3D_ID X Y Z R G B "
                                      "ERROR and (IMAGE_ID, POINT2D_IDX) pairs")
            track = [(fields[i], fields[i + 1]) for i in range(8, len(fields), 2)]
            kept = [pair for pair in track if int(pair[0]) not in dropped_images]
            if len(kept) == len(track):
                dst.write(raw if raw.endswith("\n") else raw + "\n")
            elif kept:
                dst.write(" ".join(fields[:8] + [v for pair in kept for v in pair]) + "\n")


def default_sparse_dir(root: Path) -> Path | None:
    """Return the folder of ``cameras.txt`` + ``images.txt`` under ``root`` (``sparse/0``, ``sparse``)."""
    for candidate in (root / "sparse" / "0", root / "sparse"):
        if (candidate / "cameras.txt").is_file() and (candidate / "images.txt").is_file():
            return candidate
    return None
