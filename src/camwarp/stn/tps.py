"""Thin-plate-spline (TPS) transforms in torch's normalized coordinates (``align_corners=False``).

A TPS with a ``K x K`` grid of control points ``c_i`` (uniform over the output, corners at
``(+-1, +-1)``) and displacements ``d_i`` maps an output-normalized point ``p`` to the
input-normalized point (Bookstein 1989, the STN paper's TPS):

    f(p) = a_0 + a_x x + a_y y + sum_i w_i U(|p - c_i|),    U(r) = r^2 log r^2,

with ``f(c_i) = c_i + d_i`` and ``sum w_i = sum w_i c_i = 0``; ``(w, a)`` solve
``[[U(|c_i - c_j|), P], [P^T, 0]] [w; a] = [c + d; 0]`` with ``P = [1, x, y]``. Since a TPS
reproduces affine maps exactly, ``f(p) = p + B(p) L^-1 [d; 0]`` and zero displacements give the
identity exactly. Unlike the matrix families, a TPS has no pixel matrix: it is sampled through a
dense grid with ``grid_sample`` (as camwarp's reference sampler does). See ``docs/stn.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import _checks

__all__ = ["tps_control_points", "tps_transform_points", "tps_grid", "tps_warp"]


def tps_control_points(grid_size: int, *, dtype: torch.dtype | None = None,
                       device: torch.device | str | None = None) -> Tensor:
    """Return the ``K x K`` control points ``(K*K, 2)``, normalized ``(x, y)``, ``x`` fastest.

    Example:
        >>> tps_control_points(2)
        tensor([[-1., -1.],
                [ 1., -1.],
                [-1.,  1.],
                [ 1.,  1.]])
    """
    grid_size = _checks.check_int(grid_size, "tps_control_points", "grid_size", minimum=2)
    lin = torch.linspace(-1, 1, grid_size, dtype=dtype or torch.get_default_dtype(), device=device)
    y, x = torch.meshgrid(lin, lin, indexing="ij")
    return torch.stack([x.flatten(), y.flatten()], dim=-1)


def _kernel(p: Tensor, c: Tensor) -> Tensor:
    """``U(|p - c|) = r^2 log r^2`` for points ``(..., M, 2)`` and centres ``(n, 2)`` -> ``(..., M, n)``."""
    d2 = ((p[..., :, None, :] - c) ** 2).sum(-1)
    # U(0) = 0; the clamp keeps the gradient finite (0 * log tiny) at a control point.
    return d2 * torch.log(d2.clamp_min(torch.finfo(d2.dtype).tiny))


def _basis_map(points: Tensor, grid_size: int) -> Tensor:
    """``B(p) L^-1[:, :n]`` ``(..., M, n)``: displacements -> offsets of ``points``."""
    c = tps_control_points(grid_size, dtype=torch.float64, device=points.device)
    n = c.shape[0]
    P = torch.cat([torch.ones_like(c[:, :1]), c], dim=-1)  # (n, 3)
    L = torch.zeros(n + 3, n + 3, dtype=torch.float64, device=points.device)
    L[:n, :n], L[:n, n:], L[n:, :n] = _kernel(c, c), P, P.T
    L_inv = torch.linalg.inv(L)[:, :n].to(points.dtype)  # solved once in float64: well-conditioned
    c = c.to(points.dtype)
    B = torch.cat([_kernel(points, c), torch.ones_like(points[..., :1]), points], dim=-1)  # (..., M, n+3)
    return B @ L_inv


def _grid_size(displacements: Tensor, fn: str) -> int:
    _checks.check_shape(displacements, fn, "displacements", "... n 2")
    _checks.check_float(displacements, fn, "displacements")
    n = displacements.shape[-2]
    K = math.isqrt(n)
    if K * K != n or K < 2:
        raise ValueError(f"{fn}: displacements must have shape (..., K*K, 2) with K >= 2, "
                         f"got {tuple(displacements.shape)}")
    return K


def tps_transform_points(displacements: Tensor, points: Tensor) -> Tensor:
    """Map output-normalized points to input-normalized points by a TPS (the module docstring's ``f``).

    Args:
        displacements: ``(..., K*K, 2)`` control-point displacements (normalized units).
        points: ``(..., M, 2)`` output-normalized ``(x, y)``; batch dims broadcast.

    Returns:
        ``(..., M, 2)`` input-normalized points, differentiable in both arguments.

    Example:
        >>> d = torch.zeros(9, 2)
        >>> tps_transform_points(d, torch.tensor([[0.3, -0.2]]))
        tensor([[ 0.3000, -0.2000]])
    """
    fn = "tps_transform_points"
    K = _grid_size(displacements, fn)
    _checks.check_shape(points, fn, "points", "... M 2")
    _checks.check_float(points, fn, "points")
    _checks.broadcast_batch(fn, displacements=displacements.shape[:-2], points=points.shape[:-2])
    dtype = torch.promote_types(displacements.dtype, points.dtype)
    points, displacements = points.to(dtype), displacements.to(dtype)
    return points + _basis_map(points, K) @ displacements


def tps_grid(displacements: Tensor, out_size: Sequence[int]) -> Tensor:
    """Return the ``grid_sample`` grid ``(..., H', W', 2)`` of a TPS for an output of ``out_size`` ``(W', H')``.

    Output pixel centres ``x = (2 u + 1) / W' - 1`` (``align_corners=False``) are mapped by
    :func:`tps_transform_points`.

    Example:
        >>> tps_grid(torch.zeros(1, 16, 2), (3, 2)).shape
        torch.Size([1, 2, 3, 2])
    """
    fn = "tps_grid"
    K = _grid_size(displacements, fn)
    W, H = _checks.check_size(out_size, fn, "out_size")
    kw = dict(dtype=displacements.dtype, device=displacements.device)
    xs = (2 * torch.arange(W, **kw) + 1) / W - 1
    ys = (2 * torch.arange(H, **kw) + 1) / H - 1
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    base = torch.stack([x.flatten(), y.flatten()], dim=-1)  # (H'W', 2)
    grid = base + _basis_map(base, K) @ displacements  # (..., H'W', 2)
    return grid.unflatten(-2, (H, W))


def tps_warp(image: Tensor, displacements: Tensor, out_size: Sequence[int] | None = None,
             mode: str = "bilinear", padding_mode: str = "zeros") -> Tensor:
    """Warp ``image`` by a TPS: output pixel ``p`` reads the input at ``f(p)`` (normalized coordinates).

    Args:
        image: ``(..., C, H, W)`` float.
        displacements: ``(..., K*K, 2)``; batch dims broadcast with the image's.
        out_size: output ``(W', H')``, default the input's.
        mode: ``"bilinear"``, ``"nearest"`` or ``"bicubic"``.
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"``.

    Returns:
        ``(..., C, H', W')``, differentiable in the image and the displacements.

    Example:
        >>> x = torch.rand(2, 3, 5, 7)
        >>> torch.allclose(tps_warp(x, torch.zeros(2, 16, 2)), x, atol=1e-6)
        True
    """
    fn = "tps_warp"
    _checks.check_shape(image, fn, "image", "... C H W")
    _checks.check_float(image, fn, "image")
    _grid_size(displacements, fn)
    _checks.check_choice(mode, fn, "mode", ("bilinear", "nearest", "bicubic"))
    _checks.check_choice(padding_mode, fn, "padding_mode", ("zeros", "border", "reflection"))
    H, W = image.shape[-2:]
    out_size = (W, H) if out_size is None else _checks.check_size(out_size, fn, "out_size")
    batch = _checks.broadcast_batch(fn, image=image.shape[:-3], displacements=displacements.shape[:-2])
    x = image.expand(*batch, *image.shape[-3:]).reshape(-1, *image.shape[-3:])
    d = displacements.expand(*batch, *displacements.shape[-2:]).reshape(-1, *displacements.shape[-2:])
    grid = tps_grid(d.to(torch.promote_types(d.dtype, x.dtype)), out_size)  # (B, H', W', 2)
    out = F.grid_sample(x, grid.to(x.dtype), mode=mode, padding_mode=padding_mode, align_corners=False)
    return out.reshape(*batch, *out.shape[1:])
