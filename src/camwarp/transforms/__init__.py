"""Camera-aware sample transforms: one pixel matrix per op, applied to every entry of a sample.

A sample is a dict with any of ``image`` ``(..., C, H, W)``, ``depth`` ``(..., H, W)``, ``mask``
``(..., H, W)``, ``keypoints`` ``(..., N, 2)``, ``boxes`` ``(..., N, 4)`` (xyxy pixel edges),
``camera`` (:class:`camwarp.Camera`) and pass-through extras. Each op builds one src->dst pixel
matrix (OpenCV centre frame); the kind table (:mod:`~camwarp.transforms.kernels`) resamples images
(antialiased), depth and masks (never blended), maps keypoints and boxes, and updates the camera
(accumulating the rotation ``R``). ``Compose`` multiplies the matrices and resamples once.
Undistortion, distortion and perspective crops are here too. See ``docs/transforms.md``.

Example:
    >>> import torch
    >>> from camwarp.transforms import Compose, CenterCrop, Resize
    >>> out = Compose([CenterCrop(6, 4), Resize(3, 2)])({"image": torch.rand(3, 8, 8),
    ...                                                  "keypoints": torch.tensor([[3.5, 3.5]])})
    >>> out["image"].shape, out["keypoints"]
    (torch.Size([3, 2, 3]), tensor([[1.0000, 0.5000]]))
"""

from __future__ import annotations

from .compose import OP_NAMES, Compose, from_op_list
from .kernels import COMPANIONS, KINDS, KernelOptions, apply, sample_batch_shape, sample_size
from .ops import (Affine, CenterCrop, Crop, HFlip, Pad, Perspective, Resize, Rot90, SampleInfo, Transform, VFlip,
                  Warp)
from .perspective_crop import PerspectiveCrop, look_at_rotation, perspective_crop, perspective_crop_matrix
from .random_ops import (RandomAffine, RandomCrop, RandomHFlip, RandomPerspective, RandomResizedCrop,
                         RandomRotation, RandomTransform, RandomVFlip)
from .steps import MatrixStep, Step
from .undistort import Distort, Undistort, distort, optimal_new_camera, undistort

__all__ = [
    "Affine", "COMPANIONS", "CenterCrop", "Compose", "Crop", "Distort", "HFlip", "KINDS", "KernelOptions",
    "MatrixStep", "OP_NAMES", "Pad", "Perspective", "PerspectiveCrop", "RandomAffine", "RandomCrop",
    "RandomHFlip", "RandomPerspective", "RandomResizedCrop", "RandomRotation", "RandomTransform", "RandomVFlip",
    "Resize", "Rot90", "SampleInfo", "Step", "Transform", "Undistort", "VFlip", "Warp", "apply", "distort",
    "from_op_list", "look_at_rotation", "optimal_new_camera", "perspective_crop", "perspective_crop_matrix",
    "sample_batch_shape", "sample_size", "undistort",
]
