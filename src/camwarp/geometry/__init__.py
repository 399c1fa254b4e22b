"""Pixel matrices: the one representation every camwarp op, warp and camera update reads.

A matrix ``A`` of shape ``(..., 3, 3)`` (``(..., 4, 4)`` for volumes) maps a source pixel to its
destination pixel in OpenCV's centre frame; torch's normalized ``theta`` converts exactly to and
from it. This layer never touches an image. See ``docs/conventions.md``.
"""

from __future__ import annotations

from .builders import (affine_matrix, crop_matrix, hflip_matrix, identity_matrix, lift_matrix, pad_matrix,
                       perspective_matrix, resize_matrix, rot90_matrix, rotate_matrix, scale_matrix,
                       translation_matrix, vflip_matrix)
from .ops import compose, invert, is_affine, transform_points
from .theta import denormalize_matrix, matrix_to_theta, normalize_matrix, theta_to_matrix

__all__ = [
    "affine_matrix", "compose", "crop_matrix", "denormalize_matrix", "hflip_matrix", "identity_matrix",
    "invert", "is_affine", "lift_matrix", "matrix_to_theta", "normalize_matrix", "pad_matrix",
    "perspective_matrix", "resize_matrix", "rot90_matrix", "rotate_matrix", "scale_matrix",
    "theta_to_matrix", "transform_points", "translation_matrix", "vflip_matrix",
]
