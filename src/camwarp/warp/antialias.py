"""Antialiasing for downscaling warps: a Gaussian prefilter for general maps, separable filters for boxes.

Two tools, both on flat batches and **dst->src** pixel matrices (OpenCV centre frame):

- :func:`gaussian_prefilter` with :func:`prefilter_covariance` (affine) or
  :func:`perspective_covariance` (projective), used by ``warp_affine``/``warp_perspective``/
  ``warp_affine3d(antialias=True)``. An output pixel's footprint in the source is the ellipse of
  ``J J^T``, ``J`` the Jacobian of the dst->src map; its eigenvalues ``s_i^2`` are the squared
  downscale factors along its principal axes. The source is blurred with a Gaussian of covariance

      Sigma = U diag(max(s_i^2 - 1, 0) / 4) U^T        (J J^T = U diag(s_i^2) U^T)

  i.e. ``sigma_i = sqrt(s_i^2 - 1) / 2`` source pixels: the blur that takes an image already
  band-limited to ``sigma = 1/2`` px to ``sigma = s_i / 2``, the output pixel's own width. Axes
  that are not downscaled (``s_i <= 1``) are not blurred, so pure upscales and rotations are
  untouched. For a perspective map ``J`` varies: the *mean* of ``J J^T`` over the output pixels
  whose source lies in the image is used (one filter per image; the far side of a strong
  homography stays somewhat aliased and the near side slightly over-blurred).
- :func:`resample_separable` for axis-aligned maps (``crop_resize``): exact separable filters
  whose support stretches with the downscale factor, taps renormalized over the image, which is
  ``F.interpolate(..., antialias=True)``'s and PIL's algorithm (triangle for ``bilinear``, Keys
  ``a = -0.5`` for ``bicubic``) plus an exact pixel-overlap ``area`` filter (``cv2.INTER_AREA``).

The filter's *support* is read from the matrix (one device synchronization on a GPU); its weights
are differentiable in the matrix (the covariance's eigen-decomposition has a hand-written backward
that is finite at repeated eigenvalues), and the output is differentiable in the image. Details and figures: ``docs/warp.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["prefilter_covariance", "perspective_covariance", "blurs", "gaussian_prefilter", "resample_separable"]

# Variance of a one-pixel box: added to a non-zero Gaussian so that a thin, rotated kernel still
# covers the integer grid (the Gaussian integrated over a pixel, to second order).
_PIXEL_VARIANCE = 1.0 / 12.0


class _ExcessVariance(torch.autograd.Function):
    """``F(M) = U f(L) U^T`` with ``f(l) = max(l - 1, 0) / 4`` for symmetric ``M = U diag(L) U^T``.

    Backward by the Daleckii-Krein formula, ``dF = U (G o (U^T dM U)) U^T`` with the divided
    differences ``G_ij = (f(l_i) - f(l_j)) / (l_i - l_j)`` (``f'(l_i)`` where ``l_i = l_j``), which
    stays finite for repeated eigenvalues (isotropic scales) where ``eigh``'s own backward is not.
    """

    @staticmethod
    def forward(ctx, M: Tensor) -> Tensor:
        lam, U = torch.linalg.eigh(M)
        f = (lam - 1).clamp(min=0) / 4
        diff = lam[..., :, None] - lam[..., None, :]
        close = diff.abs() <= 1e-9 * lam.abs().amax(-1, keepdim=True)[..., None].clamp(min=1)
        slope = ((lam > 1).to(lam.dtype) / 4)[..., :, None].expand_as(diff)
        G = torch.where(close, slope, (f[..., :, None] - f[..., None, :]) / torch.where(close, torch.ones_like(diff), diff))
        ctx.save_for_backward(U, G)
        return U @ torch.diag_embed(f) @ U.transpose(-1, -2)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        U, G = ctx.saved_tensors
        sym = (grad + grad.transpose(-1, -2)) / 2
        return U @ (G * (U.transpose(-1, -2) @ sym @ U)) @ U.transpose(-1, -2)


def _covariance_from_moments(M: Tensor) -> Tensor:
    """``M = J J^T`` ``(B, d, d)`` -> prefilter covariance ``(B, d, d)``, differentiable."""
    return _ExcessVariance.apply((M + M.transpose(-1, -2)) / 2)


def prefilter_covariance(src_from_dst: Tensor) -> Tensor:
    """Return the Gaussian prefilter covariance (source pixels^2) of an affine dst->src map.

    ``Sigma = U diag(max(s^2 - 1, 0) / 4) U^T`` with ``J J^T = U diag(s^2) U^T``, ``J`` the linear
    part of ``src_from_dst``.

    Args:
        src_from_dst: ``(B, d+1, d+1)`` or ``(B, d, d+1)`` dst->src pixel matrix, ``d`` = 2 or 3.

    Returns:
        ``(B, d, d)`` in the matrix's dtype, differentiable; zero where no axis is downscaled.

    Example:
        >>> from camwarp.geometry import scale_matrix
        >>> prefilter_covariance(scale_matrix((3.0, 1.0))[None])
        tensor([[[2., 0.],
                 [0., 0.]]])
    """
    d = src_from_dst.shape[-1] - 1
    J = src_from_dst[:, :d, :d]
    return _covariance_from_moments(J @ J.transpose(-1, -2))


def perspective_covariance(src_from_dst: Tensor, in_size: Sequence[int], out_size: Sequence[int],
                           samples: int = 16) -> Tensor:
    """Return the prefilter covariance of a dst->src homography from its mean footprint.

    ``J(p) = (H[:2, :2] - x(p) H[2, :2]) / w(p)`` at ``samples x samples`` output points spread over
    the output; ``J J^T`` is averaged over the points with ``w > 0`` whose source ``x(p)`` lies in
    the image, then turned into a covariance as in :func:`prefilter_covariance`.

    Args:
        src_from_dst: ``(B, 3, 3)`` dst->src pixel homography.
        in_size: source ``(W, H)``.
        out_size: output ``(W', H')``.
        samples: points per axis.

    Returns:
        ``(B, 2, 2)`` in the matrix's dtype, differentiable (the choice of points is not).

    Example:
        >>> from camwarp.geometry import scale_matrix
        >>> perspective_covariance(scale_matrix((3.0, 3.0))[None], (30, 30), (10, 10))[0, 0]
        tensor([2., 0.])
    """
    H = src_from_dst
    kw = dict(dtype=H.dtype, device=H.device)
    us = torch.linspace(0, out_size[0] - 1, samples, **kw)
    vs = torch.linspace(0, out_size[1] - 1, samples, **kw)
    p = torch.stack(torch.meshgrid(us, vs, indexing="xy") + (torch.ones(samples, samples, **kw),), -1)
    q = p.reshape(-1, 3) @ H.transpose(-1, -2)  # (B, N, 3)
    w = q[..., 2:]
    ok = w[..., 0] > 0
    x = q[..., :2] / torch.where(w > 0, w, torch.ones_like(w))  # (B, N, 2)
    xd = x.detach()
    inside = ok & (xd[..., 0] >= -0.5) & (xd[..., 0] <= in_size[0] - 0.5) & (xd[..., 1] >= -0.5) & (xd[..., 1] <= in_size[1] - 0.5)
    J = (H[:, None, :2, :2] - x[..., :, None] * H[:, None, 2:, :2]) / torch.where(w > 0, w, torch.ones_like(w))[..., None]
    M = J @ J.transpose(-1, -2)  # (B, N, 2, 2)
    weight = inside.to(M.dtype)[..., None, None]
    M = (M * weight).sum(1) / weight.sum(1).clamp(min=1)
    return _covariance_from_moments(M)


def _pad_indices(n: int, r: int, padding_mode: str, device: torch.device) -> tuple[Tensor, Tensor]:
    """Indices into ``[0, n)`` for positions ``-r .. n-1+r`` and a validity mask (zeros padding)."""
    i = torch.arange(-r, n + r, device=device)
    valid = (i >= 0) & (i < n)
    if padding_mode == "reflection":  # about the edges -0.5 and n-0.5, like grid_sample/BORDER_REFLECT
        period = 2 * n
        m = torch.remainder(i, period)
        idx = torch.where(m < n, m, period - 1 - m)
    else:
        idx = i.clamp(0, n - 1)
    return idx, valid


def _pad(x: Tensor, radius: Sequence[int], padding_mode: str) -> Tensor:
    """Pad the last ``len(radius)`` dims of ``x`` by ``radius`` following ``padding_mode`` (differentiable)."""
    d = len(radius)
    for axis, r in enumerate(radius):
        if r == 0:
            continue
        dim = x.ndim - d + axis
        idx, valid = _pad_indices(x.shape[dim], r, padding_mode, x.device)
        x = x.index_select(dim, idx)
        if padding_mode == "zeros":
            shape = [1] * x.ndim
            shape[dim] = -1
            x = x * valid.reshape(shape).to(x.dtype)
    return x


def _shifted_sum(x: Tensor, k: Tensor, dim: int) -> Tensor:
    """Valid 1-D correlation of each of ``x``'s ``N = B*C`` channels along ``dim`` with its own taps ``k``.

    ``x`` is ``(1, N, ...)`` padded by ``r`` on ``dim``, ``k`` is ``(N, 2r+1)``. A sum of ``2r+1``
    shifted, scaled views: on CPU an order of magnitude faster than torch's depthwise ``conv2d``
    (measured: 1080x1920x3, 9 taps, 25 ms against 350 ms), and the same on GPU.
    """
    n = k.shape[-1]
    length = x.shape[dim] - n + 1
    shape = [1, -1] + [1] * (x.ndim - 2)
    out = x.narrow(dim, 0, length) * k[:, 0].reshape(shape)
    inplace = not (torch.is_grad_enabled() and (x.requires_grad or k.requires_grad))
    for t in range(1, n):
        if inplace:  # no graph to keep: accumulate without temporaries
            out.addcmul_(x.narrow(dim, t, length), k[:, t].reshape(shape))
        else:
            out = out + x.narrow(dim, t, length) * k[:, t].reshape(shape)
    return out


def _active(cov: Tensor) -> Tensor:
    # Below 1e-8 px^2 (rounding of a pure rotation's J J^T = I) the blur is nil: keep the image exact.
    return cov.abs().amax(dim=(-2, -1)) > 1e-8


def blurs(cov: Tensor) -> bool:
    """Whether :func:`gaussian_prefilter` with ``cov`` ``(B, d, d)`` changes any image (one host read)."""
    return bool(_active(cov.detach()).any())


def gaussian_prefilter(x: Tensor, cov: Tensor, padding_mode: str = "zeros") -> Tensor:
    """Blur each image of a batch with its own Gaussian of covariance ``cov`` (source pixels^2).

    A (numerically) zero covariance leaves its image unchanged (an exact delta kernel); a non-zero one gets
    ``cov + I/12`` (the pixel's own variance) and a support of 3 standard deviations per axis.
    Beyond the image the source is extended as ``padding_mode`` says (``reflection`` about the
    edges, like ``grid_sample``). Diagonal covariances run as separable 1-D passes.

    Args:
        x: ``(B, C, H, W)`` or ``(B, C, D, H, W)`` float.
        cov: ``(B, 2, 2)`` or ``(B, 3, 3)`` on axes ``(u, v[, w])`` = (width, height[, depth]).
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"``.

    Returns:
        Same shape and dtype as ``x``.

    Example:
        >>> x = torch.zeros(1, 1, 15, 15); x[..., 7, 7] = 1
        >>> y = gaussian_prefilter(x, torch.eye(2)[None].double())
        >>> round(float(y.sum()), 6), y.shape
        (1.0, torch.Size([1, 1, 15, 15]))
    """
    d = cov.shape[-1]
    B, C = x.shape[:2]
    active = _active(cov)  # (B,)
    if x.numel() == 0 or not bool(active.any()):
        return x
    eff = cov + _PIXEL_VARIANCE * torch.eye(d, dtype=cov.dtype, device=cov.device) * active[:, None, None]
    # Radius per axis (u, v[, w]) from the largest marginal std over the batch: one host read.
    item_std = eff.detach().diagonal(dim1=-2, dim2=-1).sqrt()  # (B, d)
    radius = [int(math.ceil(3 * float(s))) for s in item_std.amax(0).cpu()]
    # Each image's kernel is cut at its own 3 std, so a batch gives what each image gives alone.
    item_radius = torch.ceil(3 * item_std)  # (B, d)
    spatial = radius[::-1]  # tensor dim order (.., [D,] H, W) is the reverse of (u, v[, w])
    xp = _pad(x, spatial, padding_mode).reshape(1, B * C, *(x.shape[2 + a] + 2 * r for a, r in enumerate(spatial)))
    conv = F.conv2d if d == 2 else F.conv3d
    # Separable passes only when no gradient flows to the covariance: their off-diagonal derivative
    # (non-zero) would be lost.
    diagonal = (not (cov.requires_grad and torch.is_grad_enabled())
                and bool((eff - torch.diag_embed(eff.diagonal(dim1=-2, dim2=-1))).abs().amax() == 0))
    dtype = x.dtype if x.dtype not in (torch.float16, torch.bfloat16) else torch.float32
    out = xp.to(dtype)
    if diagonal:
        for axis in range(d):  # axis 0 = u (last tensor dim)
            r = radius[axis]
            if r == 0:
                continue
            t = torch.arange(-r, r + 1, dtype=cov.dtype, device=cov.device)
            var = eff[:, axis, axis]
            k = torch.exp(-0.5 * t**2 / var.clamp(min=1e-300)[:, None])  # (B, 2r+1)
            k = torch.where(var[:, None] > 0, k, (t == 0).to(k.dtype))
            k = k * (t.abs() <= item_radius[:, axis, None]).to(k.dtype)
            k = (k / k.sum(-1, keepdim=True)).to(dtype).repeat_interleave(C, 0)  # (B*C, 2r+1)
            out = _shifted_sum(out, k, 2 + d - 1 - axis)
    else:
        grids = torch.meshgrid(*[torch.arange(-r, r + 1, dtype=cov.dtype, device=cov.device) for r in radius],
                               indexing="ij")
        offsets = torch.stack(grids, -1).reshape(-1, d)  # (K, d) in (u, v[, w]) order
        inv = torch.linalg.inv(torch.where(active[:, None, None], eff, torch.eye(d, dtype=eff.dtype, device=eff.device)))
        q = torch.einsum("ki,bij,kj->bk", offsets, inv, offsets)
        k = torch.exp(-0.5 * q)
        k = torch.where(active[:, None], k, (offsets.abs().sum(-1) == 0).to(k.dtype))
        k = k * (offsets.abs()[None] <= item_radius[:, None, :]).all(-1).to(k.dtype)
        k = (k / k.sum(-1, keepdim=True)).reshape(B, *[2 * r + 1 for r in radius])
        k = k.permute(0, *range(d, 0, -1))  # (B, [w,] v, u) -> tensor order
        out = conv(out, k.to(dtype).repeat_interleave(C, 0).unsqueeze(1), groups=B * C)
    return out.reshape(x.shape).to(x.dtype)


def _taps(c: Tensor, scale: Tensor, n: int, kernel: str) -> tuple[Tensor, Tensor]:
    """Source indices ``(B, n_out, K)`` and normalized weights for sample centres ``c`` ``(B, n_out)``."""
    S = scale.abs().clamp(min=1)[:, None]  # (B, 1) support stretch: the downscale factor
    support = {"bilinear": 1.0, "bicubic": 2.0, "area": 1.0}[kernel]
    K = int(math.ceil(2 * support * float(S.detach().amax()))) + 2
    j = torch.floor(c - support * S)[..., None] + torch.arange(K, dtype=c.dtype, device=c.device)  # (B, n_out, K)
    t = (j - c[..., None]) / S[..., None]
    if kernel == "bilinear":
        w = (1 - t.abs()).clamp(min=0)
    elif kernel == "bicubic":  # Keys a = -0.5, as F.interpolate(antialias=True) and PIL
        a, at = -0.5, t.abs()
        w = torch.where(at <= 1, ((a + 2) * at - (a + 3)) * at * at + 1,
                        torch.where(at < 2, ((at - 5) * at + 8) * at * a - 4 * a, torch.zeros_like(at)))
    else:  # exact overlap of the output pixel's footprint [c - S/2, c + S/2] with source pixel [j - 1/2, j + 1/2]
        half = scale.abs()[:, None, None] / 2  # not stretched to 1: upscaling replicates pixels (as OpenCV)
        w = (torch.minimum(c[..., None] + half, j + 0.5) - torch.maximum(c[..., None] - half, j - 0.5)).clamp(min=0)
    inside = (j >= 0) & (j <= n - 1)
    w = w * inside.to(w.dtype)
    w = w / w.sum(-1, keepdim=True).clamp(min=torch.finfo(w.dtype).tiny)
    return j.clamp(0, n - 1).long(), w


def _resample_last(x: Tensor, scale: Tensor, offset: Tensor, n_out: int, kernel: str) -> Tensor:
    """Resample the last dim of ``x`` ``(B, C, R, n)`` at ``c_i = scale * i + offset`` -> ``(B, C, R, n_out)``."""
    B, C, R, n = x.shape
    i = torch.arange(n_out, dtype=scale.dtype, device=scale.device)
    c = scale[:, None] * i + offset[:, None]  # (B, n_out) source centres
    idx, w = _taps(c, scale, n, kernel)
    K = idx.shape[-1]
    g = x.gather(3, idx.reshape(B, 1, 1, n_out * K).expand(B, C, R, n_out * K)).reshape(B, C, R, n_out, K)
    out = (g * w[:, None, None].to(x.dtype)).sum(-1)
    outside = (c < -0.5) | (c > n - 0.5)  # centre beyond the image edge: no data, 0
    return out * (~outside)[:, None, None].to(out.dtype)


def resample_separable(x: Tensor, scale: Tensor, offset: Tensor, size: Sequence[int], kernel: str = "bilinear") -> Tensor:
    """Resample ``x`` on an axis-aligned grid: output pixel ``(i, j)`` reads around ``scale * (i, j) + offset``.

    Per axis, the filter ``k`` (``bilinear``: triangle, ``bicubic``: Keys ``a = -0.5``) is
    stretched by ``S = max(|scale|, 1)``: the weights of the source pixels ``j`` are
    ``k((j - c) / S)``, kept only for ``j`` in the image and renormalized (exactly
    ``F.interpolate(..., antialias=True)``). ``area`` weighs ``j`` by the overlap of the output
    pixel's footprint ``[c - |scale|/2, c + |scale|/2]`` with ``[j - 1/2, j + 1/2]`` (exactly
    ``cv2.resize(INTER_AREA)``, up- and downscaling). Output pixels whose centre ``c`` falls
    outside the image edges ``[-0.5, n - 0.5]`` are 0.

    Args:
        x: ``(B, C, H, W)`` float.
        scale: ``(B, 2)`` source pixels per output pixel along ``(u, v)`` (``dst->src`` diagonal).
        offset: ``(B, 2)`` source position of output pixel ``(0, 0)``, centre frame.
        size: output ``(W', H')``.
        kernel: ``"bilinear"``, ``"bicubic"`` or ``"area"``.

    Returns:
        ``(B, C, H', W')``, differentiable in ``x``, ``scale`` and ``offset``.

    Example:
        >>> x = torch.arange(6.0).reshape(1, 1, 1, 6)
        >>> resample_separable(x, torch.tensor([[2.0, 1.0]]), torch.tensor([[0.5, 0.0]]), (3, 1), "area")
        tensor([[[[0.5000, 2.5000, 4.5000]]]])
    """
    dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    work = torch.promote_types(dtype, scale.dtype)
    scale, offset, y = scale.to(work), offset.to(work), x.to(dtype)
    y = _resample_last(y, scale[:, 0], offset[:, 0], size[0], kernel)  # (B, C, H, W')
    y = _resample_last(y.transpose(-1, -2), scale[:, 1], offset[:, 1], size[1], kernel).transpose(-1, -2)
    return y.to(x.dtype)
