"""The CPU warp backend: compiled (numba) samplers with no materialized grid, forward and backward.

Implements the backend API of :mod:`camwarp.warp.reference` (``sample_affine``,
``sample_perspective``, ``sample_affine3d``: flat batch, **dst->src** pixel matrix, OpenCV centre
frame) for CPU float32/float64 tensors and ``mode`` ``"bilinear"``/``"nearest"``, every padding
mode; anything else (``bicubic``, half precision, another device) is handed to the reference.
:func:`supports` says which calls run here; :mod:`camwarp.warp.dispatch` uses it.

- Axis-aligned affine maps (crop, resize, flip, any real scale and offset) run as two 1-D passes
  (:mod:`._separable`), and so does :func:`resample_separable` (``crop_resize``'s antialiasing
  filters, from :func:`camwarp.warp.antialias.resample_separable`'s own tap tables).
- Other affine bilinear maps with zeros/border padding run branch-free row kernels
  (:mod:`._affine2d`); the STN's normalized ``theta`` goes straight to them (:func:`sample_theta`,
  :mod:`._theta`: no matrix products, one compiled call each way). The rest (nearest, reflection,
  perspective) runs one fused kernel per output pixel (:mod:`._kernels2d`); volumes likewise
  (:mod:`._kernels3d`).
- Backward: the image gradient and the matrix gradient (float64 partial sums) are deterministic,
  bit-identical across runs and thread counts; grids are never materialized.

numba (a wheel, no compiler) is imported here, so ``import camwarp.warp.cpu`` raises
``ImportError`` without it and the dispatcher drops this backend. Kernels are compiled on first
use and cached on disk; they run on up to ``torch.get_num_threads()`` threads, torch's own OpenMP
threads where possible (:mod:`._parallel`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numba  # noqa: F401  (the backend is unavailable without it)
import numpy as np
import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .. import reference
from . import _kernels2d, _kernels3d, _separable
from ._parallel import run as _run
from ._sample2d import DTYPES, MODES, PADS, Plan, Sample2d, matrices, matrix_grad
from ._sample2d import forward as _forward2d
from ._resample import resample_separable, resample_supported, supports_resample
from ._theta import sample_theta

__all__ = ["warp", "sample_affine", "sample_perspective", "sample_affine3d", "sample_theta", "resample_separable",
           "supports", "supports_resample", "resample_supported"]

_MODES, _PADS, _DTYPES = MODES, PADS, DTYPES


def supports(op: str, x: Tensor, matrix: Tensor, mode: str, padding_mode: str) -> bool:
    """Return whether this backend runs ``op`` (``"affine"``, ``"perspective"``, ``"affine3d"``) itself.

    True for CPU float32/float64 data, a CPU matrix, ``mode`` bilinear/nearest, any padding mode.

    Example:
        >>> supports("affine", torch.zeros(1, 1, 4, 4), torch.eye(3)[None], "bilinear", "zeros")
        True
    """
    return (x.device.type == "cpu" and matrix.device.type == "cpu" and x.dtype in _DTYPES
            and matrix.is_floating_point() and mode in _MODES and padding_mode in _PADS
            and op in ("affine", "perspective", "affine3d"))


class _Sample3d(torch.autograd.Function):
    """Fused 3-D sampler: numba forward and deterministic backward (``apply(volume, matrix, plan)``)."""

    @staticmethod
    def forward(ctx, volume: Tensor, matrix: Tensor, plan: Plan) -> Tensor:
        vol = volume.detach().contiguous()
        C, D, H, W = vol.shape[-4:]
        Wo, Ho, Do = plan.size
        n = plan.n
        v = vol.numpy().reshape(n, C, D, H, W)
        m, _ = matrices(matrix, plan, (W, H, D), d=3)
        out = torch.empty((*plan.batch, C, Do, Ho, Wo), dtype=vol.dtype)
        o = out.numpy().reshape(n, C, Do, Ho, Wo)
        if o.size:
            _run(_kernels3d.forward, n * Do * Ho, o.size, v, m, o, plan.mode, plan.pad)
        ctx.save_for_backward(vol)
        ctx.m, ctx.plan, ctx.shapes = m, plan, (volume.shape, matrix.shape, matrix.dtype)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, gout: Tensor):
        (vol,) = ctx.saved_tensors
        plan, M = ctx.plan, ctx.m
        shape, mshape, mdtype = ctx.shapes
        need_vol, need_mat = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        n = plan.n
        C, D, H, W = vol.shape[-4:]
        Wo, Ho, Do = plan.size
        v = vol.numpy().reshape(n, C, D, H, W)
        g = gout.detach().contiguous().to(vol.dtype).numpy().reshape(n, C, Do, Ho, Wo)
        gvol = np.zeros_like(v) if need_vol else np.zeros((1, 1, 1, 1, 1), dtype=v.dtype)
        rows = np.zeros((n, Do * Ho, 12))
        if g.size:
            bands = max(1, min(D, math.ceil(torch.get_num_threads() / max(n, 1))))
            _run(_kernels3d.backward, n * bands, g.size, v, M, g, gvol, rows, plan.mode, plan.pad, need_vol,
                 need_mat, bands)
        gmat = None
        if need_mat:
            flat = np.zeros((n, 12))
            _kernels2d.reduce_rows(rows, flat)
            full = np.zeros((n, 4, 4))
            full[:, :3] = flat.reshape(n, 3, 4)
            gmat = matrix_grad(full, M, mshape, mdtype, plan, (W, H, D))
        return (torch.from_numpy(gvol).reshape(shape) if need_vol else None), gmat, None


def _flat_plan(image: Tensor, matrix: Tensor, size, mode: str, padding_mode: str, persp: bool) -> Plan:
    """The :class:`Plan` of a backend-API call: a flat batch and a dst->src matrix."""
    n = image.shape[0]
    return Plan(tuple(size), _MODES[mode], _PADS[padding_mode], persp, False, (n,), n)


def warp(op: str, x: Tensor, A: Tensor, size: Sequence[int], mode: str, padding_mode: str, batch: torch.Size,
         fn: str = "warp", names: tuple[str, str] = ("image", "A")) -> Tensor:
    """Warp ``x`` ``(..., C, *spatial)`` by the **src->dst** ``A`` (the public warps' lean path).

    The contract of :func:`camwarp.warp.dispatch.warp`: ``A`` ``(..., d+1, d+1)`` (affine:
    ``(..., d, d+1)`` too) is checked and inverted inside one compiled call
    (:func:`._prepare.prepare`: ``ValueError``/``SingularMatrixError`` naming ``fn`` and
    ``names[1]``), then sampled; no torch op touches the matrix. Batch dims broadcast (an image
    shared by several matrices is expanded first). Returns ``(*batch, C, *size[::-1])``; calls this
    backend does not run (:func:`supports`) go to the reference.

    Example:
        >>> x = torch.arange(4.0).reshape(1, 1, 4)
        >>> warp("affine", x, torch.tensor([[1.0, 0, 1], [0, 1, 0], [0, 0, 1]]), (4, 1), "bilinear", "zeros",
        ...      torch.Size([]))
        tensor([[[0., 0., 1., 2.]]])
    """
    d = 3 if op == "affine3d" else 2
    if not supports(op, x, A, mode, padding_mode):
        from .. import dispatch
        return dispatch.warp(op, x, A, size, mode, padding_mode, batch, "reference", fn, names)
    n = math.prod(batch)
    core = x.shape[-d - 1:]
    if math.prod(x.shape[:-d - 1]) != n:
        x = x.expand(*batch, *core)
    if math.prod(A.shape[:-2]) not in (1, n):
        A = A.expand(*batch, *A.shape[-2:])
    plan = Plan(tuple(size), _MODES[mode], _PADS[padding_mode], op == "perspective", True, batch, n, fn, names[1])
    if torch.is_grad_enabled() and (x.requires_grad or A.requires_grad):
        return (_Sample3d if d == 3 else Sample2d).apply(x, A, plan)
    if d == 3:
        return _Sample3d.apply(x, A, plan)
    return _forward2d(x, A, plan)[0]


def sample_affine(image: Tensor, src_from_dst: Tensor, size: Sequence[int], mode: str = "bilinear",
                  padding_mode: str = "zeros") -> Tensor:
    """Sample ``image`` at ``src_from_dst @ p`` for every output pixel ``p`` (affine, pixels, centre frame).

    Same contract (arguments, result) as :func:`camwarp.warp.reference.sample_affine`;
    calls this backend does not run (see :func:`supports`) go to the reference.

    Example:
        >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
        >>> sample_affine(x, torch.tensor([[[2.0, 0, 0.5], [0, 2, 0.5]]]), (2, 2))
        tensor([[[[ 2.5000,  4.5000],
                  [10.5000, 12.5000]]]])
    """
    if not supports("affine", image, src_from_dst, mode, padding_mode):
        return reference.sample_affine(image, src_from_dst, size, mode, padding_mode)
    return Sample2d.apply(image, src_from_dst, _flat_plan(image, src_from_dst, size, mode, padding_mode, False))


def sample_perspective(image: Tensor, src_from_dst: Tensor, size: Sequence[int], mode: str = "bilinear",
                       padding_mode: str = "zeros") -> Tensor:
    """Sample ``image`` at ``src_from_dst @ p`` with the homogeneous divide (projective, pixels, centre frame).

    Same contract (arguments, result) as
    :func:`camwarp.warp.reference.sample_perspective`; calls this backend does not run (see
    :func:`supports`) go to the reference.

    Example:
        >>> sample_perspective(torch.ones(2, 3, 5, 7), torch.eye(3).expand(2, 3, 3), (4, 6)).shape
        torch.Size([2, 3, 6, 4])
    """
    if not supports("perspective", image, src_from_dst, mode, padding_mode):
        return reference.sample_perspective(image, src_from_dst, size, mode, padding_mode)
    return Sample2d.apply(image, src_from_dst, _flat_plan(image, src_from_dst, size, mode, padding_mode, True))


def sample_affine3d(volume: Tensor, src_from_dst: Tensor, size: Sequence[int], mode: str = "bilinear",
                    padding_mode: str = "zeros") -> Tensor:
    """Sample ``volume`` at ``src_from_dst @ p`` for every output voxel ``p`` (affine, voxels, centre frame).

    Same contract (arguments, result) as :func:`camwarp.warp.reference.sample_affine3d`;
    calls this backend does not run (see :func:`supports`) go to the reference.

    Example:
        >>> sample_affine3d(torch.ones(1, 2, 3, 4, 5), torch.eye(4)[None], (5, 4, 3)).shape
        torch.Size([1, 2, 3, 4, 5])
    """
    if not supports("affine3d", volume, src_from_dst, mode, padding_mode):
        return reference.sample_affine3d(volume, src_from_dst, size, mode, padding_mode)
    return _Sample3d.apply(volume, src_from_dst, _flat_plan(volume, src_from_dst, size, mode, padding_mode, False))
