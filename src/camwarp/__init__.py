"""camwarp: differentiable spatial transforms that keep cameras consistent.

Every transform is one 3x3 pixel matrix (src->dst, OpenCV centre frame). The same matrix warps
the image (and depth, masks, keypoints, boxes) and updates the camera; an STN's ``theta`` is that
matrix in torch's normalized coordinates. Conventions: ``docs/conventions.md``.

Sub-packages load on first use (``camwarp.stn``, ``camwarp.transforms``, ``camwarp.data``), so
``import camwarp`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

from . import geometry
from .errors import CameraFileError, CamwarpError, InexactDistortionError, SingularMatrixError
from .geometry import compose, invert, matrix_to_theta, theta_to_matrix, transform_points

__version__ = "0.1.0"

_LAZY = {
    "Camera": "camwarp.camera",
    "warp_affine": "camwarp.warp",
    "warp_perspective": "camwarp.warp",
    "warp_affine3d": "camwarp.warp",
    "crop_resize": "camwarp.warp",
    "camera": "camwarp.camera",
    "warp": "camwarp.warp",
    "transforms": "camwarp.transforms",
    "stn": "camwarp.stn",
    "data": "camwarp.data",
}

__all__ = [
    "Camera", "CameraFileError", "CamwarpError", "InexactDistortionError", "SingularMatrixError",
    "compose", "crop_resize", "geometry", "invert", "matrix_to_theta", "theta_to_matrix",
    "transform_points", "warp_affine", "warp_affine3d", "warp_perspective",
    "camera", "warp", "transforms", "stn", "data",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'camwarp' has no attribute {name!r}")
    module = importlib.import_module(_LAZY[name])
    value = module if module.__name__ == f"camwarp.{name}" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
