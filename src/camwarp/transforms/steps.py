"""Geometric steps: what one op (or a fused chain of ops) does to pixel coordinates.

A :class:`Step` is the only thing the data-kind kernels (:mod:`camwarp.transforms.kernels`) read.
It knows the output size ``(W', H')`` and three things about the map from source pixels to
destination pixels (OpenCV centre frame, see ``docs/conventions.md``):

* ``map_points(points)``: source pixels -> destination pixels (keypoints, box outlines), with a
  flag saying where the map is defined (e.g. in front of a projective horizon);
* ``source_coords(points)``: destination pixels -> the source pixels a warp samples;
* ``move_camera(camera)``: the camera of the destination image and the rotation ``R`` it gained.

:class:`MatrixStep` is the common case, one src->dst pixel matrix ``A``: images go through the
warp engine (``warp_affine``/``warp_perspective``, one resampling with antialiasing), points
through ``transform_points``, cameras through ``Camera.transform``. Non-linear steps (undistortion,
distortion) subclass :class:`Step` and are resampled through a grid of source coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..geometry import invert, transform_points

__all__ = ["Step", "MatrixStep"]


class Step:
    """Base class of a geometric step with output ``size`` ``(W', H')``; see the module docstring."""

    size: tuple[int, int]
    affine: bool = True  # only MatrixStep (the warp fast path) may be projective
    # How many samples per edge describe a box outline under this map (corners suffice for a matrix).
    box_edge_samples: int = 1

    def map_points(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(destination points (..., N, 2), defined (..., N) bool)`` for source points."""
        raise NotImplementedError

    def source_coords(self, points: Tensor) -> Tensor:
        """Return the source pixel coordinates ``(..., N, 2)`` sampled for destination points."""
        raise NotImplementedError

    def move_camera(self, camera):  # -> (Camera, R (..., 3, 3))
        """Return the destination camera and the rotation ``R`` it gained (``X_new = R X``)."""
        raise NotImplementedError


@dataclass(frozen=True)
class MatrixStep(Step):
    """A step given by one src->dst pixel matrix.

    Args:
        matrix: ``A`` of shape ``(..., 3, 3)``: destination pixel ``~ A (u, v, 1)``; leading dims
            are the sample's batch dims (one matrix per item) or absent (one for all).
        size: output size ``(W', H')``.
        affine: whether every matrix of the batch has last row ``0 0 1`` (known from how it was
            built, so no value check, no GPU sync); affine steps use ``warp_affine``.
    """

    matrix: Tensor
    size: tuple[int, int]
    affine: bool = True

    def map_points(self, points: Tensor) -> tuple[Tensor, Tensor]:
        A = self.matrix.to(points.dtype)
        out = transform_points(A, points)
        if self.affine:
            return out, torch.ones(out.shape[:-1], dtype=torch.bool, device=out.device)
        # Points on or behind the horizon (w <= 0) have no image in front of the camera.
        w = points @ A[..., None, 2, :2].transpose(-1, -2) + A[..., None, 2:, 2]  # (..., N, 1)
        return out, w.squeeze(-1) > 0

    def source_coords(self, points: Tensor) -> Tensor:
        return transform_points(invert(self.matrix.to(points.dtype), fn="MatrixStep", name="matrix"), points)

    def move_camera(self, camera):
        return camera.transform(self.matrix.to(camera.dtype), self.size)

    def then(self, other: MatrixStep) -> MatrixStep:
        """Return the step ``other`` after ``self``: matrix ``other.matrix @ self.matrix``."""
        dtype = torch.promote_types(self.matrix.dtype, other.matrix.dtype)
        return MatrixStep(other.matrix.to(dtype) @ self.matrix.to(dtype), other.size,
                          self.affine and other.affine)
