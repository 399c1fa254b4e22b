"""Exact conversion between torch's ``affine_grid`` theta and camwarp's pixel matrices.

``theta`` maps *output* normalized coordinates to *input* normalized coordinates (dst->src, in
``[-1, 1]``); a pixel matrix ``A`` maps *input* (source) pixels to *output* pixels. With ``N_s``
the pixel->normalized matrix of a size ``s``:

    theta = N_in @ A^-1 @ N_out^-1          A = (N_in^-1 @ theta @ N_out)^-1

``align_corners=False`` (torch's default): ``x = (2 u + 1) / W - 1`` (image edges at +-1);
``align_corners=True``: ``x = 2 u / (W - 1) - 1`` (outer pixel centres at +-1). See
``docs/conventions.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .. import _checks
from .ops import invert

__all__ = ["normalize_matrix", "denormalize_matrix", "theta_to_matrix", "matrix_to_theta"]


def _check_align_corners(align_corners: object, fn: str) -> bool:
    if not isinstance(align_corners, bool):
        raise TypeError(f"{fn}: align_corners must be a bool, got {type(align_corners).__name__}")
    return align_corners


def _scale_offset(size: Sequence[int], align_corners: bool) -> list[tuple[float, float]]:
    """Per axis ``(a, b)`` with ``u = a x + b`` (normalized ``x`` -> pixel ``u``)."""
    if align_corners:
        return [((s - 1) / 2, (s - 1) / 2) for s in size]
    return [(s / 2, (s - 1) / 2) for s in size]


def _check_aligned_size(size: Sequence[int], align_corners: bool, fn: str, name: str) -> tuple[int, ...]:
    _check_align_corners(align_corners, fn)
    size = _checks.check_size(size, fn, name, (2, 3))
    if align_corners and 1 in size:
        raise ValueError(f"{fn}: {name} {tuple(size)} has a side of 1 pixel, which align_corners=True "
                         f"maps to a single normalized point; use align_corners=False")
    return size


def denormalize_matrix(size: Sequence[int], align_corners: bool = False, *, dtype=None, device=None) -> Tensor:
    """Return the matrix taking torch-normalized coordinates to pixels for an image of ``size`` ``(W, H[, D])``."""
    _check_align_corners(align_corners, "denormalize_matrix")
    size = _checks.check_size(size, "denormalize_matrix", "size", (2, 3))
    ab = _scale_offset(size, align_corners)
    d = len(size)
    M = torch.eye(d + 1, dtype=dtype or torch.get_default_dtype(), device=device)
    for i, (a, b) in enumerate(ab):
        M[i, i], M[i, d] = a, b
    return M


def normalize_matrix(size: Sequence[int], align_corners: bool = False, *, dtype=None, device=None,
                     fn: str = "normalize_matrix", name: str = "size") -> Tensor:
    """Return the matrix taking pixels to torch-normalized coordinates for an image of ``size``.

    Args:
        size: image size ``(W, H)`` or ``(W, H, D)``.
        align_corners: the ``affine_grid``/``grid_sample`` flag.
        dtype, device: of the returned matrix (None: torch's defaults).
        fn: name used in error messages (for callers inside camwarp).
        name: argument name of ``size`` used in error messages (for callers inside camwarp).

    Returns:
        ``(3, 3)`` (``(4, 4)``) matrix ``N`` with ``x = N u``.

    Raises:
        TypeError: ``align_corners`` is not a bool.
        ValueError: with ``align_corners=True`` a side of 1 pixel has no normalized scale.
    """
    size = _check_aligned_size(size, align_corners, fn, name)
    ab = _scale_offset(size, align_corners)
    d = len(size)
    M = torch.eye(d + 1, dtype=dtype or torch.get_default_dtype(), device=device)
    for i, (a, b) in enumerate(ab):
        M[i, i], M[i, d] = 1 / a, -b / a
    return M


def theta_to_matrix(theta: Tensor, in_size: Sequence[int], out_size: Sequence[int],
                    align_corners: bool = False) -> Tensor:
    """Return the src->dst pixel matrix ``A`` of an ``affine_grid`` theta.

    Args:
        theta: ``(..., 2, 3)`` affine or ``(..., 3, 3)`` projective (images), or ``(..., 3, 4)``
            (volumes): output-normalized -> input-normalized, as ``F.affine_grid`` takes it.
        in_size: the sampled input's size ``(W, H)`` (``(W, H, D)`` for volumes).
        out_size: the output's size, same form.
        align_corners: the flag given to ``affine_grid``/``grid_sample``.

    Returns:
        ``A`` of shape ``(..., 3, 3)`` (``(..., 4, 4)``), differentiable in ``theta``; a projective
        ``A`` is scaled to ``A[2, 2] = 1``.

    Raises:
        ValueError: bad shapes or sizes, a side of 1 pixel with ``align_corners=True`` (no pixel
            matrix exists); ``SingularMatrixError`` for a singular theta.
        TypeError: ``align_corners`` is not a bool.

    Example:
        >>> theta = torch.tensor([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]])   # zoom in 2x
        >>> theta_to_matrix(theta, (8, 8), (8, 8))[0]
        tensor([ 2.0000,  0.0000, -3.5000])
    """
    fn = "theta_to_matrix"
    _check_align_corners(align_corners, fn)
    _checks.check_shape(theta, fn, "theta", "... R C")
    _checks.check_float(theta, fn, "theta")
    shape = tuple(theta.shape[-2:])
    if shape not in ((2, 3), (3, 3), (3, 4)):
        raise ValueError(f"{fn}: theta must have shape (..., 2, 3), (..., 3, 3) or (..., 3, 4), "
                         f"got {tuple(theta.shape)}")
    dims = 3 if shape == (3, 4) else 2
    in_size = _check_aligned_size(in_size, align_corners, fn, "in_size")
    out_size = _checks.check_size(out_size, fn, "out_size", (dims,))
    if len(in_size) != dims:
        raise ValueError(f"{fn}: in_size must have {dims} entries for theta of shape {tuple(theta.shape)}, "
                         f"got {tuple(in_size)}")
    kw = dict(dtype=theta.dtype, device=theta.device)
    if shape != (3, 3):
        last = torch.zeros(*theta.shape[:-2], 1, dims + 1, **kw)
        last[..., 0, -1] = 1
        theta = torch.cat([theta, last], dim=-2)
    src_from_dst = (denormalize_matrix(in_size, align_corners, **kw) @ theta
                    @ normalize_matrix(out_size, align_corners, **kw, fn=fn, name="out_size"))
    A = invert(src_from_dst, fn=fn, name="theta")
    # A projective matrix is defined up to scale: return it with A[2, 2] = 1, as cv2 does.
    return A / A[..., 2:, 2:] if shape == (3, 3) else A


def matrix_to_theta(A: Tensor, in_size: Sequence[int], out_size: Sequence[int],
                    align_corners: bool = False, projective: bool = False) -> Tensor:
    """Return the ``affine_grid`` theta of a src->dst pixel matrix ``A``.

    Args:
        A: ``(..., 3, 3)`` for images or ``(..., 4, 4)`` for volumes, src->dst pixels.
        in_size: the source image size ``(W, H)`` (``(W, H, D)``).
        out_size: the output size, same form.
        align_corners: the flag to be given to ``affine_grid``/``grid_sample``.
        projective: return the full ``(..., 3, 3)`` normalized matrix (for a projective ``A``)
            instead of the ``(..., 2, 3)`` (``(..., 3, 4)``) affine theta.

    Returns:
        theta, differentiable in ``A``.

    Raises:
        ValueError: bad shapes/sizes, ``A`` projective while ``projective=False`` (checked on CPU
            tensors only, to never synchronize a GPU), ``SingularMatrixError`` for singular ``A``.
        TypeError: ``align_corners`` is not a bool.

    Example:
        >>> from camwarp.geometry import resize_matrix
        >>> matrix_to_theta(resize_matrix((8, 8), (4, 4)), (8, 8), (4, 4))
        tensor([[1., 0., 0.],
                [0., 1., 0.]])
    """
    fn = "matrix_to_theta"
    _check_align_corners(align_corners, fn)
    _checks.check_shape(A, fn, "A", "... 3|4 3|4")
    _checks.check_float(A, fn, "A")
    d = A.shape[-1] - 1
    if A.shape[-2] != A.shape[-1] or (projective and d != 2):
        raise ValueError(f"{fn}: A must have shape (..., 3, 3) (or (..., 4, 4) when projective=False), "
                         f"got {tuple(A.shape)}")
    in_size = _checks.check_size(in_size, fn, "in_size", (d,))
    out_size = _checks.check_size(out_size, fn, "out_size", (d,))
    kw = dict(dtype=A.dtype, device=A.device)
    theta = (normalize_matrix(in_size, align_corners, **kw, fn=fn, name="in_size") @ invert(A, fn=fn, name="A")
             @ denormalize_matrix(out_size, align_corners, **kw))
    if projective:
        return theta / theta[..., 2:, 2:]
    if A.device.type == "cpu" and A.numel() and not bool((A[..., -1, :-1] == 0).all()):
        raise ValueError(f"{fn}: A is projective (its last row is not 0 0 1); pass projective=True")
    return theta[..., :d, :] / theta[..., d:, d:]
