"""Pinhole cameras that follow their images: intrinsics, distortion, and the exact camera update.

:class:`Camera` is an immutable batched pinhole camera (``K`` in OpenCV's centre frame plus an
OpenCV or fisheye distortion model). Every image op is one src->dst pixel matrix ``A`` from
:mod:`camwarp.geometry`; ``Camera.transform(A, size)`` decomposes ``A K = K' R`` (RQ) and returns
the new camera and ``R``. See ``docs/camera.md``.
"""

from __future__ import annotations

from .distortion import DIST_MODELS, distort, undistort
from .io import (FORMATS, camera_from_dict, camera_to_dict, read_camera, read_colmap_cameras, write_camera,
                 write_colmap_cameras)
from .model import CONVENTIONS, Camera
from .update import rq, transform_intrinsics

__all__ = ["CONVENTIONS", "Camera", "DIST_MODELS", "distort", "rq", "transform_intrinsics", "undistort",
           "FORMATS", "camera_from_dict", "camera_to_dict", "read_camera", "read_colmap_cameras", "write_camera",
           "write_colmap_cameras"]
