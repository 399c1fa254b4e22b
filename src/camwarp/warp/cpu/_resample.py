"""The CPU backend's separable resampling: ``crop_resize``'s filters as cached tap tables, two 1-D passes.

An axis-aligned map samples output pixel ``(i, j)`` around ``scale * (i, j) + offset`` (per
axis), so each axis is a band-sparse matrix of taps (:mod:`._separable`). The tables are those of
:func:`camwarp.warp.antialias.resample_separable` (``bilinear``/``bicubic`` stretched by the
downscale, ``area``; ``linear``/``nearest``: ``grid_sample``'s unstretched rules with ``border``
clamping) with the weights of output pixels whose centre lies beyond the image edges set to 0.
Tables depend only on the box and the sizes, so they are cached (a data pipeline repeats its
boxes); a call then costs its two passes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .. import antialias
from . import _separable
from ._parallel import run as _run

__all__ = ["resample_separable", "resample_supported", "supports_resample", "KERNELS"]

#: Filters: the antialiasing ones of :func:`camwarp.warp.antialias.resample_separable`, and the
#: plain sampling rules of ``grid_sample`` (``border``) as separable tables.
KERNELS = ("bilinear", "bicubic", "area", "linear", "nearest")
_DTYPES = (torch.float32, torch.float64)
_TABLES: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}  # recent tap tables


def _build(scale: np.ndarray, offset: np.ndarray, n_out: int, n: int, kernel: str, like: np.ndarray):
    """Banded tables ``(start (B, n_out), w (B, n_out, K))`` of one axis (float64 ``scale``/``offset`` ``(B,)``)."""
    c = scale[:, None] * np.arange(n_out) + offset[:, None]  # (B, n_out) source centres
    if kernel in ("linear", "nearest"):
        mode = 0 if kernel == "linear" else 1
        idx, w = _separable.taps(scale, offset, n_out, n, mode, 1, 2 - mode)
    else:
        ct = torch.from_numpy(c)
        idx, wt = antialias._taps(ct, torch.from_numpy(scale), n, kernel)
        idx, w = idx.numpy(), wt.numpy()
    w = w * ~((c < -0.5) | (c > n - 0.5))[..., None]  # centre beyond the image edge: 0
    return _separable.band(idx, np.ascontiguousarray(w, dtype=np.float64), n, like)


def _tables(scale: np.ndarray, offset: np.ndarray, n_out: int, n: int, kernel: str, like: np.ndarray):
    key = (scale.tobytes(), offset.tobytes(), n_out, n, kernel, like.dtype)
    tables = _TABLES.get(key)
    if tables is None:
        if len(_TABLES) >= 64:
            _TABLES.pop(next(iter(_TABLES)))
        tables = _TABLES[key] = _build(scale, offset, n_out, n, kernel, like)
    return tables


def _forward(img: np.ndarray, iy, wy, ix, wx, out: np.ndarray) -> None:
    B, C = img.shape[:2]
    if out.size:
        _run(_separable.forward, B * C * wy.shape[1], out.size, img, iy, wy, ix, wx, _separable.spans(ix, wx), out)


class _Resample(torch.autograd.Function):
    """Separable resampling by fixed tap tables; differentiable in the image only."""

    @staticmethod
    def forward(ctx, x: Tensor, tables, batch) -> Tensor:
        img = x.detach().contiguous()
        out, _ = _run_tables(img, tables, batch)
        ctx.tables, ctx.shape = tables, img.shape
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, gout: Tensor):
        iy, wy, ix, wx = ctx.tables
        B = iy.shape[0]
        C, H, W = ctx.shape[-3:]
        g = gout.detach().contiguous()
        gimg = torch.zeros(ctx.shape, dtype=g.dtype)
        if g.numel():
            _run(_separable.adjoint, B * C, g.numel(), g.numpy().reshape(B, C, *g.shape[-2:]), iy, wy, ix, wx,
                 gimg.numpy().reshape(B, C, H, W))
        return gimg, None, None


def _run_tables(img: Tensor, tables, batch) -> tuple[Tensor, np.ndarray]:
    iy, wy, ix, wx = tables
    B = iy.shape[0]
    C, H, W = img.shape[-3:]
    out = torch.empty((*batch, C, wy.shape[1], wx.shape[1]), dtype=img.dtype)
    _forward(img.numpy().reshape(B, C, H, W), iy, wy, ix, wx, out.numpy().reshape(B, C, wy.shape[1], wx.shape[1]))
    return out, img.numpy()


def _per_item(v, n: int) -> np.ndarray:
    """A ``(B, 2)`` tensor or a shared ``(s_u, s_v)`` pair as float64 ``(B or 1, 2)``."""
    if isinstance(v, Tensor):
        return v.detach().to(torch.float64).numpy().reshape(-1, 2)
    return np.array([v], dtype=np.float64)


def supports_resample(x: Tensor, scale, offset, kernel: str) -> bool:
    """Whether :func:`resample_separable` runs the call here (CPU float32/float64, no gradient for the box)."""
    params = [v for v in (scale, offset) if isinstance(v, Tensor)]
    return (x.device.type == "cpu" and x.dtype in _DTYPES and kernel in KERNELS
            and all(v.device.type == "cpu" for v in params)
            and not (torch.is_grad_enabled() and any(v.requires_grad for v in params)))


def resample_separable(x: Tensor, scale: Tensor | Sequence[float], offset: Tensor | Sequence[float],
                       size: Sequence[int], kernel: str = "bilinear") -> Tensor:
    """Resample ``x`` on an axis-aligned grid with ``crop_resize``'s filters (two 1-D compiled passes).

    Same contract and result as :func:`camwarp.warp.antialias.resample_separable` for the
    antialiasing kernels (output pixel ``(i, j)`` reads around ``scale * (i, j) + offset``;
    triangle, Keys ``a = -0.5`` or area filter, stretched by the downscale factor, renormalized over
    the image), whose tap tables it uses; ``linear``/``nearest`` sample as ``grid_sample`` with
    ``border`` padding (no stretch). Output pixels whose centre is beyond the image edges are 0.
    Runs here for CPU float32/float64 images when no gradient is needed for ``scale`` and
    ``offset``; otherwise the reference runs (:func:`camwarp.warp.dispatch.resample_separable`).

    Args:
        x: ``(..., C, H, W)`` float with ``B`` batch items (flattened).
        scale: ``(B, 2)`` source pixels per output pixel along ``(u, v)``, or one ``(s_u, s_v)`` pair.
        offset: ``(B, 2)`` source position of output pixel ``(0, 0)``, centre frame, or one pair.
        size: output ``(W', H')``.
        kernel: one of :data:`KERNELS`.

    Returns:
        ``(..., C, H', W')`` in ``x``'s dtype, differentiable in ``x``.

    Example:
        >>> x = torch.arange(6.0).reshape(1, 1, 1, 6)
        >>> resample_separable(x, torch.tensor([[2.0, 1.0]]), torch.tensor([[0.5, 0.0]]), (3, 1), "area")
        tensor([[[[0.5000, 2.5000, 4.5000]]]])
    """
    if not supports_resample(x, scale, offset, kernel):
        from .. import dispatch  # the reference filters (and their gradient wrt the box)
        return dispatch.resample_separable(x, scale, offset, size, kernel, backend="reference")
    return resample_supported(x, scale, offset, size, kernel)


def resample_supported(x: Tensor, scale, offset, size: Sequence[int], kernel: str) -> Tensor:
    """:func:`resample_separable` for a call :func:`supports_resample` accepted (no second check)."""
    C, H, W = x.shape[-3:]
    batch = x.shape[:-3]
    B = batch.numel()
    like = np.empty(0, dtype=np.float32 if x.dtype == torch.float32 else np.float64)
    sc, of = _per_item(scale, B), _per_item(offset, B)
    ix, wx = _tables(sc[:, 0].copy(), of[:, 0].copy(), size[0], W, kernel, like)
    iy, wy = _tables(sc[:, 1].copy(), of[:, 1].copy(), size[1], H, kernel, like)
    if ix.shape[0] != B:  # one box for the whole batch
        ix, wx, iy, wy = (np.repeat(t, B, axis=0) for t in (ix, wx, iy, wy))
    tables = (iy, wy, ix, wx)
    if torch.is_grad_enabled() and x.requires_grad:
        return _Resample.apply(x, tables, batch)
    img = x.detach()
    return _run_tables(img if img.is_contiguous() else img.contiguous(), tables, batch)[0]
