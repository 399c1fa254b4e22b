"""The CPU backend's STN entry: affine bilinear sampling by torch's normalized ``theta``, no matrix products.

``F.grid_sample(image, F.affine_grid(theta, ...), align_corners=False)`` samples the source at the
pixel matrix ``D_(W,H) @ theta @ N_(W',H')`` (``camwarp.geometry.denormalize_matrix`` /
``normalize_matrix``). On small STN batches the matrix products, their autograd nodes and the
matrix conversions cost as much as the sampling itself, so this Function maps ``theta`` to the
pixel matrix and the row sums of the matrix gradient back to ``d loss / d theta`` inside the
compiled kernels (:func:`._affine2d.theta_matrix`, :func:`._affine2d.theta_grad`, float64).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from . import _affine2d, _kernels2d
from ._parallel import run as _run

__all__ = ["sample_theta"]

_PADS = {"zeros": 0, "border": 1}


class _SampleTheta(torch.autograd.Function):
    """Affine bilinear sampling by torch's normalized ``theta`` ``(B, 2, 3)``: one kernel call each way.

    The pixel matrix ``D theta N`` and the chain rule back to ``theta`` are computed in float64
    inside the kernels, so the STN's per-call cost is two compiled calls and this Function.
    """

    @staticmethod
    def forward(ctx, image: Tensor, theta: Tensor, size: tuple[int, int], pad: int) -> Tensor:
        img = image.detach()
        if not img.is_contiguous():
            img = img.contiguous()
        B, C, H, W = img.shape
        Wo, Ho = size
        th = theta.detach()
        m = np.empty((B, 3, 3))
        _affine2d.theta_matrix(th.numpy() if th.is_contiguous() else th.contiguous().numpy(), W, H, Wo, Ho, m)
        out = torch.empty(B, C, Ho, Wo, dtype=img.dtype)
        if out.numel() and min(H, W) >= 2:
            _run(_affine2d.forward, B * Ho, out.numel(), img.numpy(), m, out.numpy(), pad, False)
        elif out.numel():
            _run(_kernels2d.forward, B * Ho, out.numel(), img.numpy(), m, out.numpy(), 0, pad, False)
        ctx.save_for_backward(img)
        ctx.m, ctx.args = m, (pad, theta.dtype, size)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, gout: Tensor):
        (img,) = ctx.saved_tensors
        pad, tdtype, (Wo, Ho) = ctx.args
        need_img, need_th = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        B, C, H, W = img.shape
        g = gout.detach()
        if g.dtype != img.dtype or not g.is_contiguous():
            g = g.contiguous().to(img.dtype)
        gimg = torch.zeros_like(img) if need_img else torch.zeros(1, 1, 1, 1, dtype=img.dtype)
        rows = np.zeros((B, Ho, 9))
        if g.numel():
            bands = max(1, min(H, -(-torch.get_num_threads() // max(B, 1))))
            if min(H, W) >= 2:
                _run(_affine2d.backward, B * bands, g.numel(), img.numpy(), ctx.m, g.numpy(), gimg.numpy(), rows,
                     pad, False, need_img, need_th, bands)
            else:
                _run(_kernels2d.backward, B * bands, g.numel(), img.numpy(), ctx.m, g.numpy(), gimg.numpy(), rows,
                    0, pad, False, need_img, need_th, bands)
        gth = None
        if need_th:
            out = np.empty((B, 2, 3))
            _affine2d.theta_grad(rows, W, H, Wo, Ho, out)
            gth = torch.from_numpy(out).to(tdtype)
        return (gimg if need_img else None), gth, None, None


def sample_theta(image: Tensor, theta: Tensor, size: Sequence[int], mode: str = "bilinear",
                 padding_mode: str = "zeros") -> Tensor:
    """Sample ``image`` with torch's normalized affine ``theta`` (``affine_grid``, ``align_corners=False``).

    ``F.grid_sample(image, F.affine_grid(theta, (B, C, H', W')))`` without the grid: the kernels
    use the pixel matrix ``D_(W,H) @ theta @ N_(W',H')`` (float64); bilinear here, other modes via
    :func:`sample_affine` on that matrix.

    Args:
        image: ``(B, C, H, W)`` float.
        theta: ``(B, 2, 3)`` output-normalized -> input-normalized.
        size: output ``(W', H')``.
        mode: ``"bilinear"``, ``"nearest"`` or ``"bicubic"``.
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"``.

    Returns:
        ``(B, C, H', W')`` in ``image``'s dtype, differentiable in ``image`` and ``theta``.

    Example:
        >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
        >>> sample_theta(x, torch.eye(2, 3)[None], (2, 2))
        tensor([[[[ 2.5000,  4.5000],
                  [10.5000, 12.5000]]]])
    """
    from . import sample_affine, supports  # the package's (imports this module)

    if (mode != "bilinear" or padding_mode not in _PADS or theta.shape[-2:] != (2, 3)
            or not supports("affine", image, theta, mode, padding_mode)):
        from ...geometry import denormalize_matrix, normalize_matrix
        kw = dict(dtype=theta.dtype, device=theta.device)
        last = torch.tensor([0.0, 0.0, 1.0], **kw).expand(theta.shape[0], 1, 3)
        H, W = image.shape[-2:]
        src_from_dst = denormalize_matrix((W, H), **kw) @ torch.cat([theta, last], 1) @ normalize_matrix(size, **kw)
        return sample_affine(image, src_from_dst, size, mode, padding_mode)
    return _SampleTheta.apply(image, theta, tuple(size), _PADS[padding_mode])
