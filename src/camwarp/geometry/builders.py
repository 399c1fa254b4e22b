"""Builders of pixel matrices: one ``<op>_matrix`` per image operation.

Every builder returns ``A`` of shape ``(..., 3, 3)`` (``(..., 4, 4)`` for volumes) that maps a
*source* pixel ``(u, v, 1)`` to its *destination* pixel, in OpenCV's centre frame (the centre of
the top-left pixel is ``(0, 0)``); see ``docs/conventions.md``. Sizes are ``(W, H)`` (``(W, H, D)``
for volumes). Arguments may be Python numbers or tensors; tensors broadcast, their leading dims
become the batch dims of ``A``, and ``A`` is differentiable in them. ``dtype``/``device`` default
to those of the tensor arguments (float32 on the CPU when there are none).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from .. import _checks

__all__ = [
    "identity_matrix", "translation_matrix", "scale_matrix", "crop_matrix", "resize_matrix",
    "pad_matrix", "hflip_matrix", "vflip_matrix", "rot90_matrix", "rotate_matrix",
    "affine_matrix", "perspective_matrix", "lift_matrix",
]

Number = float | int | Tensor


def _entries(fn: str, dtype, device, **values: object) -> list[Tensor]:
    """Named scalars or tensors -> tensors of one dtype/device, broadcast to one batch shape."""
    dtype, device = _checks.common_float(*values.values(), dtype=dtype, device=device)
    tensors = [_checks.as_tensor(v, fn, k, dtype, device) for k, v in values.items()]
    return list(torch.broadcast_tensors(*tensors)) if tensors else []


def _from_rows(rows: list[list[Tensor | float]], like: Tensor) -> Tensor:
    """Stack a nested list of scalars/tensors (all of ``like``'s batch shape) into (..., R, C)."""
    full = [[e if isinstance(e, Tensor) else torch.full_like(like, float(e)) for e in row] for row in rows]
    return torch.stack([torch.stack(row, dim=-1) for row in full], dim=-2)


def identity_matrix(dims: int = 2, *, dtype: torch.dtype | None = None,
                    device: torch.device | str | None = None) -> Tensor:
    """Return the identity pixel matrix, ``(3, 3)`` for images (``dims=2``), ``(4, 4)`` for volumes."""
    if dims not in (2, 3):
        raise ValueError(f"identity_matrix: dims must be 2 or 3, got {dims!r}")
    return torch.eye(dims + 1, dtype=dtype or torch.get_default_dtype(), device=device)


def translation_matrix(t: Tensor | Sequence[float], *, dtype=None, device=None) -> Tensor:
    """Return ``A`` with ``p' = p + t``; ``t`` is ``(..., 2)`` (or ``(..., 3)`` for volumes)."""
    t = _checks.as_tensor(t, "translation_matrix", "t", dtype, device)
    _checks.check_shape(t, "translation_matrix", "t", "... 2|3")
    d = t.shape[-1]
    A = torch.eye(d + 1, dtype=t.dtype, device=t.device).expand(*t.shape[:-1], d + 1, d + 1).clone()
    A[..., :d, d] = t
    return A


def scale_matrix(s: Tensor | Sequence[float], *, dtype=None, device=None) -> Tensor:
    """Return ``A`` with ``p' = s * p`` about the origin; ``s`` is ``(..., 2)`` or ``(..., 3)``."""
    s = _checks.as_tensor(s, "scale_matrix", "s", dtype, device)
    _checks.check_shape(s, "scale_matrix", "s", "... 2|3")
    return torch.diag_embed(torch.cat([s, torch.ones_like(s[..., :1])], dim=-1))


def crop_matrix(x0: Number, y0: Number, z0: Number | None = None, *, dtype=None, device=None) -> Tensor:
    """Return the matrix of a crop whose top-left pixel is source pixel ``(x0, y0[, z0])``.

    ``u' = u - x0``, ``v' = v - y0`` (``w' = w - z0``). Any real offsets are allowed: a
    fractional or negative crop is exact (the warp samples between or outside the pixels).
    """
    offs = [x0, y0] if z0 is None else [x0, y0, z0]
    names = ["x0", "y0", "z0"][: len(offs)]
    t = _entries("crop_matrix", dtype, device, **dict(zip(names, offs)))
    return translation_matrix(-torch.stack(t, dim=-1))


def resize_matrix(in_size: Sequence[int], out_size: Sequence[int], *, dtype=None, device=None) -> Tensor:
    """Return the matrix of a resize from ``in_size`` to ``out_size``, edges to edges.

    ``u' = sx (u + 0.5) - 0.5`` with ``sx = W'/W`` (likewise ``v``, ``w``): the image border
    ``[-0.5, W - 0.5]`` maps onto ``[-0.5, W' - 0.5]``, as in ``cv2.resize`` and
    ``F.interpolate(align_corners=False)``. Sizes are ``(W, H)`` or ``(W, H, D)``.
    """
    in_size = _checks.check_size(in_size, "resize_matrix", "in_size", (2, 3))
    out_size = _checks.check_size(out_size, "resize_matrix", "out_size", (len(in_size),))
    s = torch.tensor([o / i for o, i in zip(out_size, in_size)], dtype=dtype or torch.get_default_dtype(),
                     device=device)
    return translation_matrix(torch.full_like(s, -0.5)) @ scale_matrix(s) @ translation_matrix(
        torch.full_like(s, 0.5))


def pad_matrix(left: Number, top: Number, front: Number | None = None, *, dtype=None, device=None) -> Tensor:
    """Return the matrix of padding by ``left`` columns and ``top`` rows: ``u' = u + left``.

    Right and bottom padding only change the output size, not the matrix.
    """
    return crop_matrix(-left, -top, None if front is None else -front, dtype=dtype, device=device)


def hflip_matrix(width: int, *, dtype=None, device=None) -> Tensor:
    """Return the matrix of a horizontal flip of an image ``width`` pixels wide: ``u' = W - 1 - u``."""
    (width,) = _checks.check_size((width,), "hflip_matrix", "width", (1,))
    return torch.tensor([[-1.0, 0, width - 1], [0, 1, 0], [0, 0, 1]], dtype=dtype or torch.get_default_dtype(),
                        device=device)


def vflip_matrix(height: int, *, dtype=None, device=None) -> Tensor:
    """Return the matrix of a vertical flip of an image ``height`` pixels high: ``v' = H - 1 - v``."""
    (height,) = _checks.check_size((height,), "vflip_matrix", "height", (1,))
    return torch.tensor([[1.0, 0, 0], [0, -1, height - 1], [0, 0, 1]], dtype=dtype or torch.get_default_dtype(),
                        device=device)


def rot90_matrix(k: int, size: Sequence[int], *, dtype=None, device=None) -> Tensor:
    """Return the matrix of ``k`` quarter turns counter-clockwise of a ``(W, H)`` image.

    Matches ``torch.rot90(image, k, dims=(-2, -1))`` and ``np.rot90``: for ``k = 1``,
    ``u' = v``, ``v' = W - 1 - u`` and the output is ``(H, W)``. Negative ``k`` turns clockwise.
    """
    k = _checks.check_int(k, "rot90_matrix", "k")
    W, H = _checks.check_size(size, "rot90_matrix", "size")
    k %= 4
    A = torch.eye(3, dtype=dtype or torch.get_default_dtype(), device=device)
    for _ in range(k):
        quarter = torch.tensor([[0.0, 1, 0], [-1, 0, W - 1], [0, 0, 1]], dtype=A.dtype, device=A.device)
        A = quarter @ A
        W, H = H, W
    return A


def rotate_matrix(angle: Number, center: Tensor | Sequence[float], scale: Number = 1.0, *,
                  dtype=None, device=None) -> Tensor:
    """Return the matrix of a rotation by ``angle`` degrees (counter-clockwise on screen) about ``center``.

    Same as ``cv2.getRotationMatrix2D(center, angle, scale)`` lifted to 3x3:
    ``[[a, b, (1 - a) cx - b cy], [-b, a, b cx + (1 - a) cy]]``, ``a = s cos(angle)``,
    ``b = s sin(angle)``. ``center`` is ``(..., 2)`` in pixels.
    """
    fn = "rotate_matrix"
    dtype, device = _checks.common_float(angle, center, scale, dtype=dtype, device=device)
    c = _checks.as_tensor(center, fn, "center", dtype, device)
    _checks.check_shape(c, fn, "center", "... 2")
    ang, s, cx, cy = _entries(fn, dtype, device, angle=angle, scale=scale, cx=c[..., 0], cy=c[..., 1])
    rad = ang * (math.pi / 180)
    a, b = s * torch.cos(rad), s * torch.sin(rad)
    return _from_rows([[a, b, (1 - a) * cx - b * cy], [-b, a, b * cx + (1 - a) * cy], [0.0, 0.0, 1.0]], a)


def affine_matrix(angle: Number = 0.0, translate: Tensor | Sequence[float] = (0.0, 0.0), scale: Number = 1.0,
                  shear: Tensor | Sequence[float] = (0.0, 0.0), center: Tensor | Sequence[float] = (0.0, 0.0),
                  *, dtype=None, device=None) -> Tensor:
    """Return ``T(center + translate) R(angle) Sh(shear) S(scale) T(-center)`` as a pixel matrix.

    ``angle`` (degrees, counter-clockwise on screen as in :func:`rotate_matrix`) and ``shear``
    ``(sx, sy)`` (degrees; ``sx`` tilts columns along x, ``sy`` rows along y) are applied about
    ``center`` (pixels, ``(..., 2)``), then the result is shifted by ``translate`` (pixels). The
    same parameterization as torchvision's ``affine``, in the src->dst direction.
    """
    fn = "affine_matrix"
    dtype, device = _checks.common_float(angle, translate, scale, shear, center, dtype=dtype, device=device)
    vec = {k: _checks.as_tensor(v, fn, k, dtype, device) for k, v in
           (("translate", translate), ("shear", shear), ("center", center))}
    for k, v in vec.items():
        _checks.check_shape(v, fn, k, "... 2")
    deg = math.pi / 180
    ang, s, shx, shy, cx, cy, tx, ty = _entries(
        fn, dtype, device, angle=angle, scale=scale, shx=vec["shear"][..., 0], shy=vec["shear"][..., 1],
        cx=vec["center"][..., 0], cy=vec["center"][..., 1], tx=vec["translate"][..., 0],
        ty=vec["translate"][..., 1])
    cos, sin = torch.cos(ang * deg), torch.sin(ang * deg)
    rot = _from_rows([[cos, sin, 0.0], [-sin, cos, 0.0], [0.0, 0.0, 1.0]], cos)
    shr = _from_rows([[1.0, torch.tan(shx * deg), 0.0], [torch.tan(shy * deg), 1.0, 0.0], [0.0, 0.0, 1.0]], cos)
    c = torch.stack([cx, cy], dim=-1)
    return (translation_matrix(c + torch.stack([tx, ty], dim=-1)) @ rot @ shr
            @ scale_matrix(torch.stack([s, s], dim=-1)) @ translation_matrix(-c))


def perspective_matrix(src: Tensor | Sequence, dst: Tensor | Sequence, *, dtype=None, device=None) -> Tensor:
    """Return the projective matrix ``H`` (``H[2, 2] = 1``) that maps 4 source points onto 4 destinations.

    The same solve as ``cv2.getPerspectiveTransform``. ``src`` and ``dst`` are ``(..., 4, 2)``
    pixel coordinates; no three points of either may be collinear.
    """
    fn = "perspective_matrix"
    dtype, device = _checks.common_float(src, dst, dtype=dtype, device=device)
    s = _checks.check_shape(_checks.as_tensor(src, fn, "src", dtype, device), fn, "src", "... 4 2")
    d = _checks.check_shape(_checks.as_tensor(dst, fn, "dst", dtype, device), fn, "dst", "... 4 2")
    batch = _checks.broadcast_batch(fn, src=s.shape[:-2], dst=d.shape[:-2])
    s, d = s.expand(*batch, 4, 2), d.expand(*batch, 4, 2)
    x, y, u, v = s[..., 0], s[..., 1], d[..., 0], d[..., 1]
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    # u (h31 x + h32 y + 1) = h11 x + h12 y + h13, and likewise for v: 8 equations, 8 unknowns.
    rows_u = torch.stack([x, y, one, zero, zero, zero, -u * x, -u * y], dim=-1)
    rows_v = torch.stack([zero, zero, zero, x, y, one, -v * x, -v * y], dim=-1)
    M = torch.cat([rows_u, rows_v], dim=-2)  # (..., 8, 8)
    h = torch.linalg.solve(M, torch.cat([u, v], dim=-1).unsqueeze(-1)).squeeze(-1)  # (..., 8)
    return torch.cat([h, torch.ones_like(h[..., :1])], dim=-1).unflatten(-1, (3, 3))


def lift_matrix(M: Tensor) -> Tensor:
    """Return ``M`` of shape ``(..., 2, 3)`` (or ``(..., 3, 4)``) with the row ``0 0 1`` appended.

    Use it for a ``cv2.getAffineTransform``-style 2x3 matrix; a square matrix is returned as is.
    """
    _checks.check_shape(M, "lift_matrix", "M", "... R C")
    r, c = M.shape[-2:]
    if r == c and r in (3, 4):
        return M
    if (r, c) not in ((2, 3), (3, 4)):
        raise ValueError(f"lift_matrix: M must have shape (..., 2, 3), (..., 3, 4) or be square 3x3/4x4, "
                         f"got {tuple(M.shape)}")
    last = torch.zeros(*M.shape[:-2], 1, c, dtype=M.dtype, device=M.device)
    last[..., 0, -1] = 1
    return torch.cat([M, last], dim=-2)
