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

from .. import antialias, reference
from . import _kernels2d, _kernels3d, _separable
from ._parallel import run as _run
from ._sample2d import DTYPES, MODES, PADS, Plan, Sample2d, matrices, matrix_grad
from ._theta import sample_theta

__all__ = ["sample_affine", "sample_perspective", "sample_affine3d", "sample_theta", "resample_separable", "supports"]

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


class _Resample(torch.autograd.Function):
    """Separable resampling by fixed tap tables; differentiable in the image only."""

    @staticmethod
    def forward(ctx, x: Tensor, iy, wy, ix, wx) -> Tensor:
        img = x.detach().contiguous()
        B, C = img.shape[:2]
        out = torch.empty(B, C, wy.shape[1], wx.shape[1], dtype=img.dtype)
        if out.numel():
            _run(_separable.forward, B * C * wy.shape[1], out.numel(), img.numpy(), iy, wy, ix, wx,
                 _separable.spans(ix, wx), out.numpy())
        ctx.tables, ctx.shape = (iy, wy, ix, wx), img.shape
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, gout: Tensor):
        B, C = ctx.shape[:2]
        g = gout.detach().contiguous()
        gimg = torch.zeros(ctx.shape, dtype=g.dtype)
        if g.numel():
            _run(_separable.adjoint, B * C, g.numel(), g.numpy(), *ctx.tables, gimg.numpy())
        return gimg, None, None, None, None


_TABLES: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}  # recent tap tables (a pipeline repeats its boxes)


def _tables(scale: Tensor, offset: Tensor, n_out: int, n: int, kernel: str, like: np.ndarray):
    """One axis of :func:`camwarp.warp.antialias.resample_separable` as banded tap tables (cached)."""
    key = (scale.numpy().tobytes(), offset.numpy().tobytes(), scale.dtype, n_out, n, kernel, like.dtype)
    if key not in _TABLES:
        if len(_TABLES) >= 64:
            _TABLES.pop(next(iter(_TABLES)))
        _TABLES[key] = _build_tables(scale, offset, n_out, n, kernel, like)
    return _TABLES[key]


def _build_tables(scale: Tensor, offset: Tensor, n_out: int, n: int, kernel: str, like: np.ndarray):
    i = torch.arange(n_out, dtype=scale.dtype, device=scale.device)
    c = scale[:, None] * i + offset[:, None]  # (B, n_out) source centres, as the reference computes them
    idx, w = antialias._taps(c, scale, n, kernel)
    w = w * ~((c < -0.5) | (c > n - 0.5))[..., None]  # centre beyond the image edge: 0
    return _separable.band(idx.numpy(), w.to(torch.float64).numpy(), n, like)


def resample_separable(x: Tensor, scale: Tensor, offset: Tensor, size: Sequence[int],
                       kernel: str = "bilinear") -> Tensor:
    """Resample ``x`` on an axis-aligned grid with ``crop_resize``'s filters (two 1-D compiled passes).

    Same contract and result as :func:`camwarp.warp.antialias.resample_separable` (output pixel
    ``(i, j)`` reads around ``scale * (i, j) + offset``; triangle, Keys ``a = -0.5`` or area
    filter, stretched by the downscale factor, renormalized over the image), whose tap tables it
    uses. Runs here for CPU float32/float64 images when no gradient is needed for ``scale`` and
    ``offset``; otherwise that function runs.

    Args:
        x: ``(B, C, H, W)`` float.
        scale: ``(B, 2)`` source pixels per output pixel along ``(u, v)``.
        offset: ``(B, 2)`` source position of output pixel ``(0, 0)``, centre frame.
        size: output ``(W', H')``.
        kernel: ``"bilinear"``, ``"bicubic"`` or ``"area"``.

    Returns:
        ``(B, C, H', W')`` in ``x``'s dtype, differentiable in ``x``.

    Example:
        >>> x = torch.arange(6.0).reshape(1, 1, 1, 6)
        >>> resample_separable(x, torch.tensor([[2.0, 1.0]]), torch.tensor([[0.5, 0.0]]), (3, 1), "area")
        tensor([[[[0.5000, 2.5000, 4.5000]]]])
    """
    grad_params = torch.is_grad_enabled() and (scale.requires_grad or offset.requires_grad)
    if (x.device.type != "cpu" or scale.device.type != "cpu" or x.dtype not in _DTYPES or grad_params
            or kernel not in ("bilinear", "bicubic", "area")):
        return antialias.resample_separable(x, scale, offset, size, kernel)
    H, W = x.shape[-2:]
    work = torch.promote_types(x.dtype, scale.dtype)
    scale, offset = scale.detach().to(work), offset.detach().to(work)
    like = np.empty(0, dtype=x.detach()[:0].numpy().dtype)
    ix, wx = _tables(scale[:, 0], offset[:, 0], size[0], W, kernel, like)
    iy, wy = _tables(scale[:, 1], offset[:, 1], size[1], H, kernel, like)
    return _Resample.apply(x, iy, wy, ix, wx)
