"""The CPU backend's 2-D sampler as one ``autograd.Function``: pick a kernel, run it, and its backward.

:class:`Sample2d` takes the image ``(..., C, H, W)`` and either a dst->src matrix (the backend API
of :mod:`camwarp.warp.reference`) or a public function's src->dst ``A``, which
:func:`._prepare.prepare` checks and inverts in float64 inside one compiled call (the public
warps' lean path: no torch ops on the matrix). Kernels, by what the map and options allow:

- axis-aligned maps (crop, resize, flip): two 1-D passes (:mod:`._separable`);
- affine or perspective bilinear, zeros/border, image at least 2 x 2: branch-free rows
  (:mod:`._affine2d`);
- anything else (nearest, reflection, 1-pixel images): one fused kernel per pixel (:mod:`._kernels2d`).

Backward: the image gradient and the matrix gradient (float64 partial sums) are deterministic,
bit-identical across runs and thread counts; through a src->dst ``A`` the matrix gradient is
``dL/dA = -M^T (dL/dM) M^T`` (:func:`._prepare.inverse_grad`).

A call whose work is below one thread's share (:func:`._parallel.chunks`) runs its kernel directly
(no thread team); the choice depends on the size only, so a given input gives the same bits at
every thread count.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from ...errors import SingularMatrixError
from . import _affine2d, _kernels2d, _prepare, _separable
from ._parallel import run as _run

__all__ = ["Plan", "Sample2d", "MODES", "PADS", "DTYPES", "fold_matrix", "fold_back"]

MODES = {"bilinear": 0, "nearest": 1}
PADS = {"zeros": 0, "border": 1, "reflection": 2}
DTYPES = (torch.float32, torch.float64)
_SEPARABLE_MIN = 4096  # output values below which building tap tables costs more than it saves


class Plan:
    """What one call samples: output ``size`` ``(W', H')``, codes, the matrix's direction and the batch.

    ``batch``: the broadcast batch shape of the output; ``n``: its number of items. ``inverse``:
    the matrix is a public function's src->dst ``A`` (inverted here); ``fn``/``name``: for the
    errors of :func:`._prepare.prepare`'s checks.
    """

    __slots__ = ("size", "mode", "pad", "persp", "inverse", "batch", "n", "fn", "name")

    def __init__(self, size, mode, pad, persp, inverse, batch, n, fn="sample", name="matrix"):
        self.size, self.mode, self.pad, self.persp, self.inverse = size, mode, pad, persp, inverse
        self.batch, self.n, self.fn, self.name = batch, n, fn, name


def fold_matrix(M: Tensor, d: int, size_in) -> np.ndarray:
    """float64 ``(B, d+1, d+1)`` copy of a dst->src ``M``; for an affine call, the rows the reference samples with.

    The reference samples an affine ``(B, d+1, d+1)`` through torch's normalized theta, whose first
    ``d`` rows also read the last row ``L``: ``u_i = M_i p + (s_i - 1) / 2 (1 - L p)``. Folding that
    in keeps forward and gradient (``L`` included) identical to the reference for any last row.
    """
    m = M.detach().to(torch.float64).numpy()
    out = np.zeros((m.shape[0], d + 1, d + 1))
    out[:, :d] = m[:, :d]
    out[:, d, d] = 1.0
    if m.shape[-2] == d + 1:
        for i, s in enumerate(size_in):
            out[:, i] += (s - 1) / 2 * (out[:, d] - m[:, d])
    return out


def fold_back(grad: np.ndarray, size_in) -> np.ndarray:
    """Chain rule of :func:`fold_matrix` in place: the last row's share of an affine call's gradient."""
    d = len(size_in)
    grad[:, d] = -sum((s - 1) / 2 * grad[:, i] for i, s in enumerate(size_in))
    return grad


def raise_status(status: int, index: int, fn: str, name: str, batch: int) -> None:
    """Raise the named error of a :func:`._prepare.prepare` status (nothing for ``OK``)."""
    where = f" (batch item {index})" if batch > 1 else ""
    if status == _prepare.NON_FINITE:
        raise ValueError(f"{fn}: {name} must be finite{where}, got an inf or NaN entry")
    if status == _prepare.SINGULAR:
        raise SingularMatrixError(f"{fn}: {name} is singular (not invertible){where}; a pixel matrix must map "
                                  f"the image onto an area, e.g. with a non-zero scale")
    if status == _prepare.NOT_AFFINE:
        d = "0 0 0 1" if fn.endswith("3d") else "0 0 1"
        raise ValueError(f"{fn}: {name} must be affine (last row {d}){where}; "
                         f"use warp_perspective for a projective matrix")


def _contiguous(t: Tensor) -> Tensor:
    t = t.detach()
    return t if t.is_contiguous() else t.contiguous()


def _as_numpy(t: Tensor, n: int) -> np.ndarray:
    """A contiguous ``t`` as a numpy array with its batch dims flattened to ``n``."""
    a = t.numpy()
    return a.reshape(n, *a.shape[a.ndim - 3:]) if a.ndim != 4 or a.shape[0] != n else a


def matrices(matrix: Tensor, plan: Plan, size_in, d: int = 2) -> tuple[np.ndarray, bool]:
    """The float64 dst->src matrices ``(n, d+1, d+1)`` of a call, and whether all are axis-aligned (2-D)."""
    mat = matrix.detach()
    r = mat.shape[-2]
    flat = mat.reshape(-1, r, d + 1)
    if plan.inverse:
        a = (flat if mat.dtype in DTYPES else flat.to(torch.float64)).contiguous().numpy()
        m = np.empty((a.shape[0], d + 1, d + 1))
        status, index, aligned = _prepare.prepare(a, d, not plan.persp, m)
        raise_status(status, index, plan.fn, plan.name, plan.n)
    elif plan.persp:
        m = flat.to(torch.float64).numpy().copy()
        aligned = False
    else:
        m = fold_matrix(flat, d, size_in)
        aligned = d == 2 and _axis_aligned(m)
    if m.shape[0] != plan.n:
        m = np.repeat(m, plan.n, axis=0)  # one matrix for the whole batch
    return m, aligned


def _axis_aligned(m: np.ndarray) -> bool:
    return not (m[:, 0, 1].any() or m[:, 1, 0].any() or m[:, 2, :2].any()) and bool((m[:, 2, 2] == 1).all())


def _separable_taps(m: np.ndarray, in_size, out_size, mode: int, pad: int, like: np.ndarray):
    """Banded tap tables ``(sy, wy, sx, wx)`` of an axis-aligned ``m`` for :mod:`._separable`."""
    W, H = in_size
    Wo, Ho = out_size
    K = 1 if mode == 1 else 2
    ix, wx = _separable.taps(m[:, 0, 0].copy(), m[:, 0, 2].copy(), Wo, W, mode, pad, K)
    iy, wy = _separable.taps(m[:, 1, 1].copy(), m[:, 1, 2].copy(), Ho, H, mode, pad, K)
    return (*_separable.band(iy, wy, H, like), *_separable.band(ix, wx, W, like))


def _rows(plan: Plan, H: int, W: int) -> bool:
    """Whether :mod:`._affine2d`'s row kernels run the call: bilinear, zeros/border, at least 2 x 2."""
    return plan.mode == 0 and plan.pad != 2 and min(H, W) >= 2


def forward(image: Tensor, matrix: Tensor, plan: Plan) -> tuple[Tensor, Tensor, np.ndarray, bool]:
    """Sample; return ``(out (*batch, C, H', W'), the contiguous image, m, separable)``."""
    C, H, W = image.shape[-3:]
    Wo, Ho = plan.size
    n = plan.n
    imgt = _contiguous(image)
    img = _as_numpy(imgt, n)
    m, aligned = matrices(matrix, plan, (W, H))
    out = torch.empty((*plan.batch, C, Ho, Wo), dtype=image.dtype)
    o = out.numpy().reshape(n, C, Ho, Wo)
    if o.size == 0:
        return out, imgt, m, False
    if aligned and o.size >= _SEPARABLE_MIN:
        iy, wy, ix, wx = _separable_taps(m, (W, H), plan.size, plan.mode, plan.pad, img[:0, 0, 0, 0])
        _run(_separable.forward, n * C * Ho, o.size, img, iy, wy, ix, wx, _separable.spans(ix, wx), o)
    elif _rows(plan, H, W):
        _run(_affine2d.forward, n * Ho, o.size, img, m, o, plan.pad, plan.persp)
    else:
        _run(_kernels2d.forward, n * Ho, o.size, img, m, o, plan.mode, plan.pad, plan.persp)
    return out, imgt, m, aligned and o.size >= _SEPARABLE_MIN


def backward(gout: Tensor, image: Tensor, m: np.ndarray, plan: Plan, separable: bool, need_img: bool,
             need_mat: bool) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(d loss / d image (n, C, H, W), d loss / d M (n, 3, 3) float64)`` of :func:`forward`, M dst->src.

    ``image``: the contiguous image :func:`forward` returned.
    """
    img = _as_numpy(image, plan.n)
    n, C, H, W = img.shape
    Wo, Ho = plan.size
    g = _as_numpy(_contiguous(gout.to(image.dtype)), n)
    gimg = np.zeros_like(img) if need_img else np.zeros((1, 1, 1, 1), dtype=img.dtype)
    gmat = np.zeros((n, 9))
    if g.size and need_img and separable and not need_mat:
        _run(_separable.adjoint, n * C, g.size, g,
             *_separable_taps(m, (W, H), (Wo, Ho), plan.mode, plan.pad, img[:0, 0, 0, 0]), gimg)
    elif g.size:
        # Bands split an item's work between threads; the sums do not depend on their number.
        bands = max(1, min(H, math.ceil(torch.get_num_threads() / max(n, 1))))
        rows = np.zeros((n, Ho, 9))
        if _rows(plan, H, W):
            _run(_affine2d.backward, n * bands, g.size, img, m, g, gimg, rows, plan.pad, plan.persp, need_img,
                 need_mat, bands)
        else:
            _run(_kernels2d.backward, n * bands, g.size, img, m, g, gimg, rows, plan.mode, plan.pad, plan.persp,
                 need_img, need_mat, bands)
        if need_mat:
            _kernels2d.reduce_rows(rows, gmat)
    return (gimg if need_img else None), (gmat.reshape(n, 3, 3) if need_mat else None)


def matrix_grad(gm: np.ndarray, m: np.ndarray, shape: torch.Size, dtype: torch.dtype, plan: Plan,
                size_in) -> Tensor:
    """``d loss / d matrix`` in the caller's ``shape`` and ``dtype`` from ``d loss / d M`` ``(n, 3, 3)``."""
    if not plan.persp:
        fold_back(gm, size_in)
    if plan.inverse:
        ga = np.empty_like(gm)
        _prepare.inverse_grad(m, gm, ga)
        gm = ga
    if math.prod(shape[:-2]) != gm.shape[0]:
        gm = gm.sum(0, keepdims=True)  # one matrix was broadcast over the batch
    return torch.from_numpy(np.ascontiguousarray(gm[:, :shape[-2]])).reshape(shape).to(dtype)


class Sample2d(torch.autograd.Function):
    """2-D sampling by a matrix per item (see the module docstring); ``apply(image, matrix, plan)``."""

    @staticmethod
    def forward(ctx, image: Tensor, matrix: Tensor, plan: Plan) -> Tensor:
        out, img, m, separable = forward(image, matrix, plan)
        ctx.save_for_backward(img)  # a detached view: in-place changes of the image are caught
        ctx.m, ctx.plan, ctx.separable = m, plan, separable
        ctx.shapes = (image.shape, matrix.shape, matrix.dtype)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, gout: Tensor):
        need_img, need_mat = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        (img,) = ctx.saved_tensors
        plan = ctx.plan
        shape, mshape, mdtype = ctx.shapes
        gimg, gm = backward(gout, img, ctx.m, plan, ctx.separable, need_img, need_mat)
        gi = torch.from_numpy(gimg).reshape(shape) if need_img else None
        ga = matrix_grad(gm, ctx.m, mshape, mdtype, plan, shape[-1:-3:-1]) if need_mat else None
        return gi, ga, None
