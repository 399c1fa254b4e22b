"""Operations on pixel matrices: compose, invert, apply to points.

Matrices are ``(..., 3, 3)`` (images) or ``(..., 4, 4)`` (volumes), src->dst pixels in OpenCV's
centre frame; leading dims broadcast. See ``docs/conventions.md``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import _checks
from ..errors import SingularMatrixError

__all__ = ["compose", "invert", "transform_points", "is_affine", "checked_inverse"]


def compose(*matrices: Tensor) -> Tensor:
    """Return the matrix of applying ``matrices`` in the order given: ``compose(A, B) = B @ A``.

    ``compose(crop, resize)`` crops first, then resizes. Batch dims broadcast; dtype promotes.

    Example:
        >>> from camwarp.geometry import compose, crop_matrix, resize_matrix
        >>> compose(crop_matrix(480, 540), resize_matrix((1920, 1080), (640, 360)))[0]
        tensor([   0.3333,    0.0000, -160.3333])
    """
    if not matrices:
        raise ValueError("compose: needs at least one matrix")
    out = None
    for i, M in enumerate(matrices):
        _checks.check_shape(M, "compose", f"matrices[{i}]", "... 3|4 3|4")
        if M.shape[-1] != M.shape[-2] or (out is not None and M.shape[-1] != out.shape[-1]):
            raise ValueError(f"compose: matrices[{i}] must be square and of the same size as the others, "
                             f"got {tuple(M.shape)}")
        if out is None:
            out = M
        else:
            dtype = torch.promote_types(out.dtype, M.dtype)
            out = M.to(dtype) @ out.to(dtype)
    return out


def invert(A: Tensor, *, check: bool = True, fn: str = "invert", name: str = "A") -> Tensor:
    """Return ``A^-1``, the dst->src matrix, for ``A`` of shape ``(..., 3, 3)`` or ``(..., 4, 4)``.

    Args:
        A: ``(..., 3, 3)`` or ``(..., 4, 4)`` float src->dst matrix; batch dims kept. float16 and
            bfloat16 are inverted in float32 and returned in their dtype.
        check: check the values (see Raises).
        fn: name used in error messages (for callers inside camwarp).
        name: argument name used in error messages (for callers inside camwarp).

    Returns:
        ``(..., 3, 3)`` (``(..., 4, 4)``) inverse, differentiable in ``A``.

    Raises:
        SingularMatrixError: (a ``ValueError``) a matrix of the batch is singular, and ``ValueError``
            one with a non-finite entry, where the values can be read for free (CPU tensors,
            outside ``torch.compile``). Elsewhere (GPU: no synchronization) such a matrix's inverse
            is all NaN; ``check=False`` gives that everywhere.
        ValueError, TypeError: ``A`` is not a float tensor of square shape ``(..., 3|4, 3|4)``.

    Example:
        >>> from camwarp.geometry import crop_matrix
        >>> invert(crop_matrix(2, 1))[:2]
        tensor([[1., 0., 2.],
                [0., 1., 1.]])
    """
    _checks.check_shape(A, fn, name, "... 3|4 3|4")
    _checks.check_float(A, fn, name)
    if A.shape[-1] != A.shape[-2]:
        raise ValueError(f"{fn}: {name} must be square, got {tuple(A.shape)}")
    inv, _ = checked_inverse(A, fn, name, raise_errors=check)
    return inv


def checked_inverse(A: Tensor, fn: str, name: str, affine: bool = False,
                    raise_errors: bool = True) -> tuple[Tensor, Tensor | None]:
    """``(A^-1, bad)`` under the value-check rule of :func:`camwarp._checks.values_readable`.

    Where values are readable (and ``raise_errors``): a non-finite entry, a singular matrix or
    (``affine``) a last row other than ``0 .. 0 1`` raises, and ``bad`` is None. Elsewhere the
    inverse of such a matrix is all NaN and ``bad`` ``(...)`` marks it (no synchronization).
    """
    low = A.dtype in (torch.float16, torch.bfloat16)
    M = A.float() if low else A
    inv, info = torch.linalg.inv_ex(M)
    finite = torch.isfinite(M).flatten(-2).all(-1)
    if affine:
        last = torch.zeros(M.shape[-1], dtype=M.dtype, device=M.device)
        last[-1] = 1
        affine_ok = (M[..., -1, :] == last).all(-1)
    if raise_errors and _checks.values_readable(A) and A.numel():
        if not bool(finite.all()):
            raise ValueError(f"{fn}: {name} must be finite, got an inf or NaN entry")
        if affine and not bool(affine_ok.all()):
            zeros = " ".join(["0"] * (A.shape[-1] - 1))
            raise ValueError(f"{fn}: {name} must be affine (last row {zeros} 1); "
                             f"use warp_perspective for a projective matrix")
        if bool((info != 0).any()) or not bool(torch.isfinite(inv).all()):
            raise SingularMatrixError(f"{fn}: {name} is singular (not invertible); a pixel matrix must map "
                                      f"the image onto an area, e.g. with a non-zero scale")
        return (inv.to(A.dtype) if low else inv), None
    bad = (info != 0) | ~finite | ~torch.isfinite(inv).flatten(-2).all(-1)
    if affine:
        bad = bad | ~affine_ok
    inv = torch.where(bad[..., None, None], torch.full_like(inv, float("nan")), inv)
    return (inv.to(A.dtype) if low else inv), bad


def transform_points(A: Tensor, points: Tensor) -> Tensor:
    """Return ``A`` applied to points, with the homogeneous divide: ``(..., N, 2|3) -> (..., N, 2|3)``.

    ``A`` is ``(..., 3, 3)`` for 2-D points or ``(..., 4, 4)`` for 3-D points; batch dims broadcast.

    Example:
        >>> from camwarp.geometry import transform_points, hflip_matrix
        >>> transform_points(hflip_matrix(10), torch.tensor([[0.0, 2.0]]))
        tensor([[9., 2.]])
    """
    fn = "transform_points"
    _checks.check_shape(A, fn, "A", "... 3|4 3|4")
    _checks.check_shape(points, fn, "points", "... N 2|3")
    _checks.check_float(points, fn, "points")
    d = points.shape[-1]
    if A.shape[-2:] != (d + 1, d + 1):
        raise ValueError(f"{fn}: A must have shape (..., {d + 1}, {d + 1}) for {d}-D points, got {tuple(A.shape)}")
    _checks.broadcast_batch(fn, A=A.shape[:-2], points=points.shape[:-2])
    A = A.to(points.dtype)
    out = points @ A[..., :d, :d].transpose(-1, -2) + A[..., None, :d, d]
    w = points @ A[..., d:, :d].transpose(-1, -2) + A[..., None, d:, d]  # (..., N, 1)
    return out / w


def is_affine(A: Tensor) -> Tensor:
    """Return a boolean tensor ``(...)``: whether each matrix's last row is exactly ``0 .. 0 1``."""
    _checks.check_shape(A, "is_affine", "A", "... 3|4 3|4")
    last = torch.zeros(A.shape[-1], dtype=A.dtype, device=A.device)
    last[-1] = 1
    return (A[..., -1, :] == last).all(dim=-1)
