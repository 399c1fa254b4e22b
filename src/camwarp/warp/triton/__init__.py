"""The Triton warp backend: fused GPU samplers, forward and deterministic backward, no grid in memory.

Implements the backend API of :mod:`camwarp.warp.reference` (``sample_affine``,
``sample_perspective``, ``sample_affine3d``: flat batch, **dst->src** pixel matrix, OpenCV centre
frame) with Triton kernels: bilinear/trilinear and nearest, ``zeros``/``border``/``reflection``,
float16/bfloat16/float32/float64 (sampled in float32, float64 in float64), NCHW and channels-last
(any strides). Backward gives the image and matrix gradients bit-identically across runs: the
image gradient is summed in int64 fixed point (power-of-two scale from ``max |grad|``, integer
atomics commute), the matrix gradient per program then in a fixed order. The kernels are torch
custom ops (:mod:`.ops`), so ``torch.compile`` traces through them.

Runs on CUDA tensors, or on CPU tensors under ``TRITON_INTERPRET=1`` (how CI tests it);
:func:`supports` says which calls run here, anything else goes to the reference. ``import
camwarp.warp.triton`` raises ``ImportError`` without triton, and the dispatcher drops the backend.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import triton  # noqa: F401  (the backend is unavailable without it)
from torch import Tensor

from .. import reference

__all__ = ["available", "sample_affine", "sample_perspective", "sample_affine3d", "supports"]

_MODES = {"bilinear": 0, "nearest": 1}
_PADS = {"zeros": 0, "border": 1, "reflection": 2}
_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def supports(op: str, x: Tensor, matrix: Tensor, mode: str, padding_mode: str) -> bool:
    """Return whether this backend runs ``op`` (``"affine"``, ``"perspective"``, ``"affine3d"``) itself.

    True for CUDA tensors (CPU tensors under ``TRITON_INTERPRET=1``) of a float dtype, the matrix
    on the same device, ``mode`` bilinear/nearest, any padding mode.

    Example:
        >>> supports("affine", torch.zeros(1, 1, 4, 4), torch.eye(3)[None], "bicubic", "zeros")
        False
    """
    device_ok = x.is_cuda or (x.device.type == "cpu" and _interpreted())
    return (device_ok and matrix.device == x.device and x.dtype in _DTYPES and matrix.is_floating_point()
            and mode in _MODES and padding_mode in _PADS and op in ("affine", "perspective", "affine3d"))


def _ops():
    from . import ops  # kernels are defined (and custom ops registered) on first use
    return ops


def _float(m: Tensor) -> Tensor:
    return m if m.dtype in (torch.float32, torch.float64) else m.float()


def sample_affine(image: Tensor, src_from_dst: Tensor, size: Sequence[int], mode: str = "bilinear",
                  padding_mode: str = "zeros") -> Tensor:
    """Sample ``image`` at ``src_from_dst @ p`` for every output pixel ``p`` (affine, pixels, centre frame).

    Same contract (arguments, result) as :func:`camwarp.warp.reference.sample_affine`;
    calls this backend does not run (see :func:`supports`) go to the reference.
    Any strides; the result keeps the input's memory format (channels-last stays channels-last).

    Example:
        >>> sample_affine(torch.ones(1, 1, 2, 2), torch.eye(3)[None], (2, 2)).shape
        torch.Size([1, 1, 2, 2])
    """
    if not supports("affine", image, src_from_dst, mode, padding_mode):
        return reference.sample_affine(image, src_from_dst, size, mode, padding_mode)
    Wo, Ho = size
    return _ops().sample2d(image, _float(src_from_dst), Wo, Ho, _MODES[mode], _PADS[padding_mode], False)


def sample_perspective(image: Tensor, src_from_dst: Tensor, size: Sequence[int], mode: str = "bilinear",
                       padding_mode: str = "zeros") -> Tensor:
    """Sample ``image`` at ``src_from_dst @ p`` with the homogeneous divide (projective, pixels, centre frame).

    Same contract (arguments, result) as
    :func:`camwarp.warp.reference.sample_perspective`; calls this backend does not run (see
    :func:`supports`) go to the reference.
    Any strides; the result keeps the input's memory format (channels-last stays channels-last).

    Example:
        >>> sample_perspective(torch.ones(1, 1, 2, 2), torch.eye(3)[None], (3, 2)).shape
        torch.Size([1, 1, 2, 3])
    """
    if not supports("perspective", image, src_from_dst, mode, padding_mode):
        return reference.sample_perspective(image, src_from_dst, size, mode, padding_mode)
    Wo, Ho = size
    return _ops().sample2d(image, _float(src_from_dst), Wo, Ho, _MODES[mode], _PADS[padding_mode], True)


def sample_affine3d(volume: Tensor, src_from_dst: Tensor, size: Sequence[int], mode: str = "bilinear",
                    padding_mode: str = "zeros") -> Tensor:
    """Sample ``volume`` at ``src_from_dst @ p`` for every output voxel ``p`` (affine, voxels, centre frame).

    Same contract (arguments, result) as :func:`camwarp.warp.reference.sample_affine3d`;
    calls this backend does not run (see :func:`supports`) go to the reference.
    Any strides; the result keeps the input's memory format (channels-last stays channels-last).

    Example:
        >>> sample_affine3d(torch.ones(1, 1, 2, 2, 2), torch.eye(4)[None], (2, 2, 2)).shape
        torch.Size([1, 1, 2, 2, 2])
    """
    if not supports("affine3d", volume, src_from_dst, mode, padding_mode):
        return reference.sample_affine3d(volume, src_from_dst, size, mode, padding_mode)
    Wo, Ho, Do = size
    return _ops().sample3d(volume, _float(src_from_dst), Wo, Ho, Do, _MODES[mode], _PADS[padding_mode])


def available() -> bool:
    """Return whether the kernels can run here: a CUDA device, or ``TRITON_INTERPRET=1`` (CPU).

    Example:
        >>> isinstance(available(), bool)
        True
    """
    return torch.cuda.is_available() or _interpreted()
