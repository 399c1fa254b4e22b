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
from . import _affine2d, _kernels2d, _kernels3d, _separable
from ._parallel import run as _run
from ._theta import sample_theta

__all__ = ["sample_affine", "sample_perspective", "sample_affine3d", "sample_theta", "resample_separable", "supports"]

_MODES = {"bilinear": 0, "nearest": 1}
_PADS = {"zeros": 0, "border": 1, "reflection": 2}
_DTYPES = (torch.float32, torch.float64)


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


def _matrix(M: Tensor, d: int, size_in: Sequence[int], affine: bool) -> np.ndarray:
    """float64 ``(B, d+1, d+1)`` copy of ``M``; for an affine call, the rows the reference samples with.

    The reference samples an affine ``(B, d+1, d+1)`` through torch's normalized theta, whose first
    ``d`` rows also read the last row ``L``: ``u_i = M_i p + (s_i - 1) / 2 (1 - L p)``. Folding that
    in keeps forward and gradient (``L`` included) identical to the reference for any last row.
    """
    m = M.detach().to(torch.float64).numpy()
    if not affine:
        return m.copy()
    out = np.zeros((m.shape[0], d + 1, d + 1))
    out[:, :d] = m[:, :d]
    out[:, d, d] = 1.0
    if m.shape[-2] == d + 1:
        for i, s in enumerate(size_in):
            out[:, i] += (s - 1) / 2 * (out[:, d] - m[:, d])
    return out


def _fold_back(grad: Tensor, shape: torch.Size, size_in: Sequence[int]) -> Tensor:
    """Chain rule of :func:`_matrix`: gradient wrt the caller's affine matrix of shape ``shape``."""
    d = len(size_in)
    if shape[-2] == d:
        return grad[:, :d]
    grad[:, d] = -sum((s - 1) / 2 * grad[:, i] for i, s in enumerate(size_in))
    return grad


def _axis_aligned(m: np.ndarray) -> bool:
    return not (m[:, 0, 1].any() or m[:, 1, 0].any() or m[:, 2, :2].any()) and bool((m[:, 2, 2] == 1).all())


def _separable_taps(m: np.ndarray, in_size: Sequence[int], out_size: Sequence[int], mode: int, pad: int,
                    dtype: torch.dtype):
    """Banded tap tables ``(sy, wy, sx, wx)`` of an axis-aligned ``m`` for :mod:`._separable`."""
    W, H = in_size
    Wo, Ho = out_size
    K = 1 if mode == 1 else 2
    like = np.empty(0, dtype=torch.empty(0, dtype=dtype).numpy().dtype)
    ix, wx = _separable.taps(m[:, 0, 0].copy(), m[:, 0, 2].copy(), Wo, W, mode, pad, K)
    iy, wy = _separable.taps(m[:, 1, 1].copy(), m[:, 1, 2].copy(), Ho, H, mode, pad, K)
    return (*_separable.band(iy, wy, H, like), *_separable.band(ix, wx, W, like))


class _Sample2d(torch.autograd.Function):
    """Fused 2-D sampler: numba forward (separable when axis-aligned) and deterministic backward."""

    @staticmethod
    def forward(ctx, image: Tensor, matrix: Tensor, size: tuple[int, int], mode: str, padding_mode: str,
                persp: bool) -> Tensor:
        img = image.detach().contiguous()
        B, C, H, W = img.shape
        Wo, Ho = size
        m = _matrix(matrix, 2, (W, H), not persp)
        code, pad = _MODES[mode], _PADS[padding_mode]
        out = torch.empty(B, C, Ho, Wo, dtype=img.dtype)
        separable = out.numel() > 0 and _axis_aligned(m)
        if separable:
            iy, wy, ix, wx = _separable_taps(m, (W, H), size, code, pad, img.dtype)
            _run(_separable.forward, B * C * Ho, out.numel(), img.numpy(), iy, wy, ix, wx,
                 _separable.spans(ix, wx), out.numpy())
        elif out.numel() and code == 0 and not persp and pad != 2 and min(H, W) >= 2:
            _run(_affine2d.forward, B * Ho, out.numel(), img.numpy(), m, out.numpy(), pad)
        elif out.numel():
            _run(_kernels2d.forward, B * Ho, out.numel(), img.numpy(), m, out.numpy(), code, pad, persp)
        ctx.save_for_backward(img, torch.from_numpy(m))
        ctx.args = (matrix.shape, matrix.dtype, code, pad, persp, separable)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, gout: Tensor):
        img, M = ctx.saved_tensors
        shape, mdtype, code, pad, persp, separable = ctx.args
        need_img, need_mat = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        B, C, H, W = img.shape
        Ho, Wo = gout.shape[-2:]
        g = gout.detach().contiguous().to(img.dtype)
        gimg = torch.zeros_like(img) if need_img else torch.zeros(1, 1, 1, 1, dtype=img.dtype)
        gmat = torch.zeros(B, 9, dtype=torch.float64)
        if g.numel() and need_img and separable and not need_mat:
            _run(_separable.adjoint, B * C, g.numel(), g.numpy(),
                 *_separable_taps(M.numpy(), (W, H), (Wo, Ho), code, pad, img.dtype), gimg.numpy())
        elif g.numel():
            # Bands split an item's work between threads; the sums do not depend on their number.
            bands = max(1, min(H, math.ceil(torch.get_num_threads() / max(B, 1))))
            rows = torch.zeros(B, Ho, 9, dtype=torch.float64)
            if code == 0 and not persp and pad != 2 and min(H, W) >= 2:
                _run(_affine2d.backward, B * bands, g.numel(), img.numpy(), M.numpy(), g.numpy(), gimg.numpy(),
                     rows.numpy(), pad, need_img, need_mat, bands)
            else:
                _run(_kernels2d.backward, B * bands, g.numel(), img.numpy(), M.numpy(), g.numpy(), gimg.numpy(),
                     rows.numpy(), code, pad, persp, need_img, need_mat, bands)
            if need_mat:
                _kernels2d.reduce_rows(rows.numpy(), gmat.numpy())
        if not need_mat:
            return (gimg if need_img else None), None, None, None, None, None
        gmat = gmat.reshape(B, 3, 3)
        gmat = (gmat if persp else _fold_back(gmat, shape, (W, H))).to(mdtype)
        return (gimg if need_img else None), gmat, None, None, None, None


class _Sample3d(torch.autograd.Function):
    """Fused 3-D sampler: numba forward and deterministic backward."""

    @staticmethod
    def forward(ctx, volume: Tensor, matrix: Tensor, size: tuple[int, int, int], mode: str,
                padding_mode: str) -> Tensor:
        vol = volume.detach().contiguous()
        B, C, D, H, W = vol.shape
        Wo, Ho, Do = size
        m = _matrix(matrix, 3, (W, H, D), True)
        code, pad = _MODES[mode], _PADS[padding_mode]
        out = torch.empty(B, C, Do, Ho, Wo, dtype=vol.dtype)
        if out.numel():
            _run(_kernels3d.forward, B * Do * Ho, out.numel(), vol.numpy(), m, out.numpy(), code, pad)
        ctx.save_for_backward(vol, torch.from_numpy(m))
        ctx.args = (matrix.shape, matrix.dtype, code, pad)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, gout: Tensor):
        vol, M = ctx.saved_tensors
        shape, mdtype, code, pad = ctx.args
        need_vol, need_mat = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        B, C, D, H, W = vol.shape
        Do, Ho = gout.shape[2], gout.shape[3]
        g = gout.detach().contiguous().to(vol.dtype)
        gvol = torch.zeros_like(vol) if need_vol else torch.zeros(1, 1, 1, 1, 1, dtype=vol.dtype)
        rows = torch.zeros(B, Do * Ho, 12, dtype=torch.float64)
        if g.numel():
            bands = max(1, min(D, math.ceil(torch.get_num_threads() / max(B, 1))))
            _run(_kernels3d.backward, B * bands, g.numel(), vol.numpy(), M.numpy(), g.numpy(), gvol.numpy(),
                 rows.numpy(), code, pad, need_vol, need_mat, bands)
        gmat = None
        if need_mat:
            flat = torch.zeros(B, 12, dtype=torch.float64)
            _kernels2d.reduce_rows(rows.numpy(), flat.numpy())
            full = torch.zeros(B, 4, 4, dtype=torch.float64)
            full[:, :3] = flat.reshape(B, 3, 4)
            gmat = _fold_back(full, shape, (W, H, D)).to(mdtype)
        return (gvol if need_vol else None), gmat, None, None, None


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
    return _Sample2d.apply(image, src_from_dst, tuple(size), mode, padding_mode, False)


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
    return _Sample2d.apply(image, src_from_dst, tuple(size), mode, padding_mode, True)


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
    return _Sample3d.apply(volume, src_from_dst, tuple(size), mode, padding_mode)


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
