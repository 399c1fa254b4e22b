"""The reference warp backend: readable ``F.affine_grid`` + ``F.grid_sample`` samplers, the oracle.

Every backend module (this one, ``warp/cpu.py``, ``warp/triton/``) implements the same three names
with the same signatures: ``sample_affine``, ``sample_perspective``, ``sample_affine3d``. They take
a *flat* batch ``(B, C, H, W)`` (``(B, C, D, H, W)``) and a **dst->src** pixel matrix
``src_from_dst`` in OpenCV's centre frame (top-left pixel centre at ``(0, 0)``), i.e. the output
pixel ``p`` takes the input at ``src_from_dst @ p``; no inversion happens here.

The pixel matrix becomes torch's normalized matrix exactly (``align_corners=False``)::

    theta = N_in @ src_from_dst @ N_out^-1,   N_s: u -> (2 u + 1) / s - 1 per axis

and ``grid_sample(..., align_corners=False)`` samples with it. Consequences, all torch's:

- ``bicubic`` is Keys' cubic convolution with ``a = -0.75`` (the same ``a`` as OpenCV's
  ``INTER_CUBIC``); ``nearest`` rounds half to even; 3-D supports ``bilinear`` (trilinear) and
  ``nearest`` only.
- ``reflection`` padding reflects about the image *edges* (``-0.5`` and ``W - 0.5``), i.e.
  OpenCV's ``BORDER_REFLECT`` (``fedcba|abcdef``), not ``BORDER_REFLECT_101``.
- ``zeros`` pads with 0 *before* interpolation, so pixels within half a pixel outside the image
  blend towards 0 (as ``cv2.warpAffine`` with ``BORDER_CONSTANT``).

float16/bfloat16 images are sampled in float32 (a half-precision grid cannot address pixels of
an image wider than ~1000 px to better than a pixel) and cast back. The matrix is used in the
wider of its dtype and the compute dtype. Differentiable in the image and the matrix.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..geometry import denormalize_matrix, normalize_matrix

__all__ = ["sample_affine", "sample_perspective", "sample_affine3d", "sample_crop"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _compute_dtype(image: Tensor, matrix: Tensor) -> tuple[torch.dtype, torch.dtype]:
    """(dtype to sample in, dtype of the grid arithmetic)."""
    sample = torch.float32 if image.dtype in _LOW_PRECISION else image.dtype
    return sample, torch.promote_types(sample, matrix.dtype)


def _square(M: Tensor, d: int) -> Tensor:
    """``(B, d, d+1)`` -> ``(B, d+1, d+1)`` by appending ``0 .. 0 1``; square input returned as is."""
    if M.shape[-2] == d + 1:
        return M
    last = torch.zeros(M.shape[0], 1, d + 1, dtype=M.dtype, device=M.device)
    last[:, 0, d] = 1
    return torch.cat([M, last], dim=1)


def _normalized(src_from_dst: Tensor, in_size: Sequence[int], out_size: Sequence[int], dtype: torch.dtype) -> Tensor:
    """Return ``theta = N_in @ src_from_dst @ N_out^-1`` (``(B, d+1, d+1)``), output-normalized -> input-normalized."""
    kw = dict(dtype=dtype, device=src_from_dst.device)
    return normalize_matrix(in_size, False, **kw) @ src_from_dst.to(dtype) @ denormalize_matrix(out_size, False, **kw)


def _sample(image: Tensor, grid: Tensor, mode: str, padding_mode: str, dtype: torch.dtype) -> Tensor:
    out = F.grid_sample(image.to(dtype), grid.to(dtype), mode=mode, padding_mode=padding_mode, align_corners=False)
    return out.to(image.dtype)


def sample_affine(image: Tensor, src_from_dst: Tensor, size: Sequence[int], mode: str = "bilinear",
                  padding_mode: str = "zeros") -> Tensor:
    """Sample ``image`` at ``src_from_dst @ p`` for every output pixel ``p`` (affine, pixels, centre frame).

    Args:
        image: ``(B, C, H, W)`` float.
        src_from_dst: ``(B, 3, 3)`` or ``(B, 2, 3)`` dst->src pixel matrix (last row ``0 0 1``).
        size: output ``(W', H')``.
        mode: ``"bilinear"``, ``"nearest"`` or ``"bicubic"``.
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"``.

    Returns:
        ``(B, C, H', W')`` in ``image``'s dtype.

    Example:
        >>> from camwarp.geometry import resize_matrix
        >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
        >>> sample_affine(x, resize_matrix((2, 2), (4, 4))[None], (2, 2))
        tensor([[[[ 2.5000,  4.5000],
                  [10.5000, 12.5000]]]])
    """
    B, C, H, W = image.shape
    Wo, Ho = size
    sample_dtype, grid_dtype = _compute_dtype(image, src_from_dst)
    theta = _normalized(_square(src_from_dst, 2), (W, H), (Wo, Ho), grid_dtype)
    grid = F.affine_grid(theta[:, :2], [B, C, Ho, Wo], align_corners=False)  # (B, H', W', 2)
    return _sample(image, grid, mode, padding_mode, sample_dtype)


def sample_perspective(image: Tensor, src_from_dst: Tensor, size: Sequence[int], mode: str = "bilinear",
                       padding_mode: str = "zeros") -> Tensor:
    """Sample ``image`` at ``src_from_dst @ p`` with the homogeneous divide (projective, pixels, centre frame).

    Output pixels whose source point lies behind the camera (``w <= 0``) read as outside the image.

    Args:
        image: ``(B, C, H, W)`` float.
        src_from_dst: ``(B, 3, 3)`` dst->src pixel homography.
        size: output ``(W', H')``.
        mode: ``"bilinear"``, ``"nearest"`` or ``"bicubic"``.
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"``.

    Returns:
        ``(B, C, H', W')`` in ``image``'s dtype.

    Example:
        >>> x = torch.ones(2, 3, 5, 7)
        >>> sample_perspective(x, torch.eye(3).expand(2, 3, 3), (4, 6)).shape
        torch.Size([2, 3, 6, 4])
    """
    B, C, H, W = image.shape
    Wo, Ho = size
    sample_dtype, grid_dtype = _compute_dtype(image, src_from_dst)
    theta = _normalized(src_from_dst, (W, H), (Wo, Ho), grid_dtype)
    eye = torch.eye(2, 3, dtype=grid_dtype, device=image.device).expand(B, 2, 3)
    base = F.affine_grid(eye, [B, C, Ho, Wo], align_corners=False)  # (B, H', W', 2) output-normalized
    ones = torch.ones_like(base[..., :1])
    hom = torch.cat([base, ones], dim=-1).reshape(B, -1, 3) @ theta.transpose(1, 2)  # (B, H'W', 3)
    w = hom[..., 2:]
    # A point behind the camera (w <= 0) has no image: send it far outside (any padding mode is
    # then explicit about it: zeros -> 0, border -> edge, reflection -> reflected), without NaNs.
    behind = w <= 0
    w_safe = torch.where(behind, torch.ones_like(w), w)
    xy = torch.where(behind, torch.full_like(hom[..., :2], -4.0), hom[..., :2] / w_safe)
    grid = xy.reshape(B, Ho, Wo, 2)
    return _sample(image, grid, mode, padding_mode, sample_dtype)


def sample_affine3d(volume: Tensor, src_from_dst: Tensor, size: Sequence[int], mode: str = "bilinear",
                    padding_mode: str = "zeros") -> Tensor:
    """Sample ``volume`` at ``src_from_dst @ p`` for every output voxel ``p`` (affine, voxels, centre frame).

    Args:
        volume: ``(B, C, D, H, W)`` float.
        src_from_dst: ``(B, 4, 4)`` or ``(B, 3, 4)`` dst->src voxel matrix on ``(u, v, w)`` =
            (width, height, depth) coordinates.
        size: output ``(W', H', D')``.
        mode: ``"bilinear"`` (trilinear) or ``"nearest"``.
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"``.

    Returns:
        ``(B, C, D', H', W')`` in ``volume``'s dtype.

    Example:
        >>> v = torch.ones(1, 2, 3, 4, 5)
        >>> sample_affine3d(v, torch.eye(4)[None], (5, 4, 3)).shape
        torch.Size([1, 2, 3, 4, 5])
    """
    B, C, D, H, W = volume.shape
    Wo, Ho, Do = size
    sample_dtype, grid_dtype = _compute_dtype(volume, src_from_dst)
    theta = _normalized(_square(src_from_dst, 3), (W, H, D), (Wo, Ho, Do), grid_dtype)
    grid = F.affine_grid(theta[:, :3], [B, C, Do, Ho, Wo], align_corners=False)  # (B, D', H', W', 3)
    return _sample(volume, grid, mode, padding_mode, sample_dtype)


def sample_crop(image: Tensor, scale: Tensor, offset: Tensor, size: Sequence[int], mode: str = "bilinear") -> Tensor:
    """Sample ``image`` on the axis-aligned grid ``u = scale * u' + offset`` (``crop_resize`` without antialiasing).

    ``grid_sample`` with ``border`` padding at the pixel map ``diag(scale) + offset``; output pixels
    whose centre lies beyond the image edges ``[-0.5, n - 0.5]`` are 0 (``cv2.resize`` has none).

    Args:
        image: ``(B, C, H, W)`` float.
        scale: ``(B, 2)`` source pixels per output pixel along ``(u, v)``.
        offset: ``(B, 2)`` source position of output pixel ``(0, 0)``, centre frame.
        size: output ``(W', H')``.
        mode: ``"bilinear"``, ``"nearest"`` or ``"bicubic"``.

    Returns:
        ``(B, C, H', W')``, differentiable in ``image``, ``scale`` and ``offset``.

    Example:
        >>> x = torch.arange(4.0).reshape(1, 1, 1, 4)
        >>> sample_crop(x, torch.tensor([[1.0, 1.0]]), torch.tensor([[2.0, 0.0]]), (3, 1))
        tensor([[[[2., 3., 0.]]]])
    """
    H, W = image.shape[-2:]
    zero = torch.zeros_like(scale[:, 0])
    src_from_dst = torch.stack([scale[:, 0], zero, offset[:, 0], zero, scale[:, 1], offset[:, 1],
                                zero, zero, zero + 1], -1).reshape(-1, 3, 3)  # u = s u' + offset
    out = sample_affine(image, src_from_dst, size, mode, "border")
    steps = torch.arange(max(size), dtype=scale.dtype, device=scale.device)
    centres = offset[:, :, None] + scale[:, :, None] * steps  # (B, 2, n)
    limit = torch.tensor([W, H], dtype=scale.dtype, device=scale.device)[None, :, None] - 0.5
    ok = (centres >= -0.5) & (centres <= limit)  # output centres inside the image
    mask = ok[:, 1, : size[1], None] & ok[:, 0, None, : size[0]]  # (B, H', W')
    return out * mask[:, None].to(out.dtype)
