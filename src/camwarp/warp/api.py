"""Public warps: an image (or volume) and a src->dst pixel matrix in, the warped image out.

Each function validates by name, broadcasts and flattens the batch dims of the data and the
matrix, inverts the matrix once (``camwarp.geometry.invert``), calls the dispatcher's dst->src
sampler (optionally after an antialiasing prefilter) and restores the batch dims. Output pixel
``p`` takes the source at ``A^-1 p`` in OpenCV's centre frame, like ``cv2.warpAffine`` without
``WARP_INVERSE_MAP``. Integer images are converted to float32, sampled, rounded half to even and
clamped to their dtype's range. See ``docs/conventions.md`` and ``docs/warp.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import _checks
from ..geometry import lift_matrix, translation_matrix
from ..geometry.ops import checked_inverse
from . import _args
from . import antialias as _aa
from . import dispatch
from ._args import CROP_MODES as _CROP_MODES
from ._args import MODES, MODES_3D, PADDING_MODES

__all__ = ["warp_affine", "warp_perspective", "warp_affine3d", "crop_resize", "MODES", "MODES_3D", "PADDING_MODES"]

_OPS = {(2, False): "affine", (2, True): "perspective", (3, False): "affine3d"}


def _flatten(x: Tensor, M: Tensor, batch: torch.Size, dims: int) -> tuple[Tensor, Tensor]:
    """``x`` ``(B, C, *spatial)`` and ``M`` ``(B, d+1, d+1)`` over the broadcast ``batch``."""
    core = dims + 1
    xf = x.expand(*batch, *x.shape[-core:]).reshape(-1, *x.shape[-core:])
    Mf = M.expand(*batch, *M.shape[-2:]).reshape(-1, *M.shape[-2:])
    return xf, Mf


def _separable(src_from_dst: Tensor, x: Tensor, size: tuple[int, ...]) -> bool:
    """Whether every map is an axis-aligned shrink whose sample centres stay inside the image (one host read)."""
    M = src_from_dst.detach()
    scale, offset = M[:, :2, :2].diagonal(dim1=-2, dim2=-1), M[:, :2, 2]  # (B, 2): u = s u' + o
    last = offset + scale * (torch.tensor(size, dtype=M.dtype, device=M.device) - 1)
    n = torch.tensor(x.shape[:1:-1], dtype=M.dtype, device=M.device)  # (W, H)
    ok = ((M[:, 0, 1] == 0) & (M[:, 1, 0] == 0)).all() & (scale.abs() > 1).any()
    ok &= (torch.minimum(offset, last) >= 0).all() & (torch.maximum(offset, last) <= n - 1).all()
    return bool(ok)


def _crop_to_footprint(x: Tensor, src_from_dst: Tensor, size: tuple[int, ...], cov: Tensor,
                       projective: bool) -> tuple[Tensor, Tensor]:
    """Cut the source down to what the prefiltered warp reads, so the blur costs O(output), not O(input).

    The output box ``[-0.5, W' - 0.5] x ...`` maps to a convex region of the source (affine, or
    projective with every corner in front); its bounding box, widened by the sampler's support
    (2 px, bicubic) and clamped to the image, is what the sampler reads; widened again by the
    prefilter's radius it is what the blur reads. Edges that stay image edges keep their padding,
    so the result is identical to blurring the whole image (``reflection`` is not cut: it reads
    mirrored pixels). One host read, next to the one the prefilter already makes.
    """
    d = x.ndim - 2
    spatial = x.shape[2:][::-1]  # (W, H[, D])
    corners = torch.cartesian_prod(*[torch.tensor([-0.5, s - 0.5], dtype=src_from_dst.dtype) for s in size])
    corners = corners.reshape(-1, d).to(src_from_dst.device)  # (2^d, d) in (u, v[, w]) order
    hom = torch.cat([corners, torch.ones_like(corners[:, :1])], -1) @ src_from_dst.detach().transpose(-1, -2)
    w = hom[..., d:]
    if projective and not bool((w > 0).all()):
        return x, src_from_dst
    pts = hom[..., :d] / w  # (B, 2^d, d)
    radius = torch.ceil(3 * (cov.detach().diagonal(dim1=-2, dim2=-1) + 1 / 12).sqrt()).amax(0)  # (d,)
    lo, hi, r = pts.amin((0, 1)).cpu(), pts.amax((0, 1)).cpu(), radius.cpu()
    if not (bool(torch.isfinite(lo).all()) and bool(torch.isfinite(hi).all())):
        return x, src_from_dst
    starts, stops = [], []
    for a, n in enumerate(spatial):
        need_lo = min(max(int(torch.floor(lo[a])) - 2, 0), n - 1)
        need_hi = min(max(int(torch.ceil(hi[a])) + 2, 0), n - 1)
        starts.append(max(need_lo - int(r[a]) - 1, 0))
        stops.append(min(need_hi + int(r[a]) + 1, n - 1) + 1)
    if starts == [0] * d and stops == list(spatial):
        return x, src_from_dst
    index = (Ellipsis, *[slice(b, e) for b, e in zip(starts[::-1], stops[::-1])])
    shift = torch.tensor(starts, dtype=src_from_dst.dtype, device=src_from_dst.device)
    return x[index], translation_matrix(-shift) @ src_from_dst


def _warp(fn: str, x: Tensor, A: Tensor, size: object, mode: str, padding_mode: str, antialias: bool,
          backend: str | None, dims: int, projective: bool, names: tuple[str, str]) -> Tensor:
    xname, mname = names
    _args.check_data(x, fn, xname, dims)
    size = _checks.check_size(size, fn, "size", (dims,))
    _args.check_options(fn, mode, padding_mode, antialias, MODES if dims == 2 else MODES_3D + ("trilinear",))
    forced = dispatch.forced_backend(backend, fn)
    mode = "bilinear" if mode == "trilinear" else mode
    A = _args.check_matrix(A, fn, mname, x, dims, affine=not projective)
    bx, ba = x.shape[:-dims - 1], A.shape[:-2]
    batch = bx if bx == ba else _checks.broadcast_batch(fn, **{xname: bx, mname: ba})
    out_shape = (*batch, x.shape[-dims - 1], *size[::-1])
    _args.check_output(fn, out_shape, x.dtype, x.device)
    if 0 in out_shape[:-dims]:  # an empty batch or no channels
        return x.new_empty(out_shape)
    xf = _args.to_float(x)
    if not antialias or mode == "nearest":
        out = dispatch.warp(_OPS[dims, projective], xf, A, size, mode, padding_mode, batch, forced, fn, names)
        return _args.from_float(out, x)
    op = _OPS[dims, projective]
    x_float = xf
    xf, Af = _flatten(xf, lift_matrix(A), batch, dims)
    src_from_dst, bad = checked_inverse(Af, fn, mname, affine=not projective)
    if bad is not None:  # no value checks here (GPU / torch.compile): keep the filter's support finite
        src_from_dst = torch.where(bad[:, None, None], torch.eye(dims + 1, dtype=Af.dtype, device=Af.device),
                                   src_from_dst)
    if mode == "bilinear" and dims == 2 and not projective and _separable(src_from_dst, xf, size):
        # An axis-aligned shrink inside the image (crop, resize, flip): crop_resize's exact separable
        # triangle filter (F.interpolate(antialias=True)), O(output) instead of a full-image blur.
        out = dispatch.resample_separable(xf, src_from_dst[:, :2, :2].diagonal(dim1=-2, dim2=-1),
                                          src_from_dst[:, :2, 2], size, "bilinear", backend=backend)
    else:
        in_size = tuple(xf.shape[:1:-1])  # (W, H[, D])
        cov = (_aa.perspective_covariance(src_from_dst, in_size, size) if projective
               else _aa.prefilter_covariance(src_from_dst))
        if bad is None and not _aa.blurs(cov):  # nothing to blur: the plain warp, bit for bit
            out = dispatch.warp(op, x_float, A, size, mode, padding_mode, batch, forced, fn, names)
            return _args.from_float(out, x)
        if padding_mode != "reflection":
            xf, src_from_dst = _crop_to_footprint(xf, src_from_dst, size, cov, projective)
        xf = _aa.gaussian_prefilter(xf, cov, padding_mode)
        sampler = (dispatch.sample_perspective if projective else
                   dispatch.sample_affine if dims == 2 else dispatch.sample_affine3d)
        out = sampler(xf, src_from_dst, size, mode, padding_mode, backend=backend)
    if bad is not None:
        out = torch.where(bad.reshape(-1, *[1] * (dims + 1)), torch.full_like(out, float("nan")), out)
    return _args.from_float(out, x).reshape(out_shape)


def warp_affine(image: Tensor, A: Tensor, size: Sequence[int], mode: str = "bilinear", padding_mode: str = "zeros",
                antialias: bool = False, backend: str | None = None) -> Tensor:
    """Warp ``image`` by the src->dst affine pixel matrix ``A`` (OpenCV centre frame) onto a ``(W', H')`` canvas.

    ``out[..., v', u'] = image(A^-1 (u', v', 1))``, sampled with ``mode``; like ``cv2.warpAffine``
    (no ``WARP_INVERSE_MAP``) and like ``F.grid_sample(align_corners=False)`` with
    ``theta = matrix_to_theta(A, (W, H), size)``. ``bicubic`` is Keys' ``a = -0.75`` (OpenCV's and
    torch's); ``reflection`` mirrors about the image edges (``cv2.BORDER_REFLECT``, not ``_101``).

    Args:
        image: ``(..., C, H, W)`` float or integer (e.g. uint8) image.
        A: ``(..., 3, 3)`` (or ``(..., 2, 3)``, lifted) src->dst pixel matrix, last row ``0 0 1``;
            batch dims broadcast with the image's.
        size: output ``(W', H')``, Python ints.
        mode: ``"bilinear"`` (default), ``"nearest"`` or ``"bicubic"``.
        padding_mode: ``"zeros"`` (default), ``"border"`` or ``"reflection"``.
        antialias: blur the source first where ``A`` shrinks it (Gaussian whose covariance follows
            the Jacobian of ``A^-1``; ``docs/warp.md``); ignored for ``nearest``. Default False.
        backend: ``None`` (automatic) or a name from ``camwarp.warp.available_backends()``.

    Returns:
        ``(..., C, H', W')`` in ``image``'s dtype, differentiable in ``image`` and ``A``.

    Raises:
        TypeError: non-tensor ``image``/``A``, non-bool ``antialias``, non-int ``size``.
        ValueError: bad shapes, sizes, ``mode``, ``padding_mode``, ``backend``, batch dims that do
            not broadcast, a projective ``A`` (checked on CPU); ``SingularMatrixError`` for a
            singular ``A``.

    Example:
        >>> from camwarp.geometry import hflip_matrix
        >>> warp_affine(torch.arange(3.0).reshape(1, 1, 3), hflip_matrix(3), (3, 1))
        tensor([[[2., 1., 0.]]])
    """
    return _warp("warp_affine", image, A, size, mode, padding_mode, antialias, backend, 2, False, ("image", "A"))


def warp_perspective(image: Tensor, H: Tensor, size: Sequence[int], mode: str = "bilinear",
                     padding_mode: str = "zeros", antialias: bool = False, backend: str | None = None) -> Tensor:
    """Warp ``image`` by the src->dst pixel homography ``H`` (OpenCV centre frame) onto a ``(W', H')`` canvas.

    ``out[..., v', u'] = image(x / w)`` with ``(x, w) = H^-1 (u', v', 1)``, like
    ``cv2.warpPerspective``; output pixels whose source has ``w <= 0`` (behind the camera) read
    as outside the image (``padding_mode``).

    Args:
        image: ``(..., C, H, W)`` float or integer image.
        H: ``(..., 3, 3)`` src->dst pixel homography; batch dims broadcast with the image's.
        size: output ``(W', H')``.
        mode: ``"bilinear"``, ``"nearest"`` or ``"bicubic"``.
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"``.
        antialias: Gaussian prefilter from the *mean* footprint of the output pixels that see the
            image (``docs/warp.md``); ignored for ``nearest``.
        backend: ``None`` or a name from ``available_backends()``.

    Returns:
        ``(..., C, H', W')`` in ``image``'s dtype, differentiable in ``image`` and ``H``.

    Raises:
        TypeError, ValueError: as :func:`warp_affine`; ``SingularMatrixError`` for a singular ``H``.

    Example:
        >>> Hm = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0.01, 0, 1]])
        >>> warp_perspective(torch.rand(2, 3, 8, 8), Hm, (6, 4)).shape
        torch.Size([2, 3, 4, 6])
    """
    return _warp("warp_perspective", image, H, size, mode, padding_mode, antialias, backend, 2, True, ("image", "H"))


def warp_affine3d(volume: Tensor, A: Tensor, size: Sequence[int], mode: str = "bilinear", padding_mode: str = "zeros",
                  antialias: bool = False, backend: str | None = None) -> Tensor:
    """Warp ``volume`` by the src->dst affine voxel matrix ``A`` (centre frame) onto a ``(W', H', D')`` grid.

    ``out[..., w', v', u'] = volume(A^-1 (u', v', w', 1))`` with coordinates ``(u, v, w)`` along
    (width, height, depth); like ``F.grid_sample(align_corners=False)`` on 5-D input.

    Args:
        volume: ``(..., C, D, H, W)`` float or integer volume.
        A: ``(..., 4, 4)`` (or ``(..., 3, 4)``) src->dst voxel matrix, last row ``0 0 0 1``.
        size: output ``(W', H', D')``.
        mode: ``"bilinear"`` (= ``"trilinear"``) or ``"nearest"``.
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"``.
        antialias: 3-D Gaussian prefilter as in :func:`warp_affine`.
        backend: ``None`` or a name from ``available_backends()``.

    Returns:
        ``(..., C, D', H', W')`` in ``volume``'s dtype, differentiable in ``volume`` and ``A``.

    Raises:
        TypeError, ValueError: as :func:`warp_affine`; ``SingularMatrixError`` for a singular ``A``.

    Example:
        >>> warp_affine3d(torch.rand(2, 1, 4, 5, 6), torch.eye(4), (3, 5, 7)).shape
        torch.Size([2, 1, 7, 5, 3])
    """
    return _warp("warp_affine3d", volume, A, size, mode, padding_mode, antialias, backend, 3, False,
                 ("volume", "A"))


def _integer_crop(box: object, x: Tensor, size: tuple[int, int], mode: str, forced: str | None) -> Tensor | None:
    """The crop ``x[..., y0:y0+h, x0:x0+w]`` when ``F.interpolate`` of it is ``crop_resize``, else None.

    ``F.interpolate`` samples like ``crop_resize`` (``align_corners=False``, edges clamped as
    ``border``) but reads only the crop, so it is exact for a box of whole pixels inside the image
    whose every filter tap stays in the box, or whose side lies on the image's own edge: per axis,
    a box side on the image edge, or ``bilinear`` not enlarging (``w >= W'``; bicubic taps always
    reach outside). Taken on CPU with the automatic backend and several torch threads, where
    torch's kernel was measured faster (``docs/BENCHMARKS.md``); gradients flow to the image (a
    tensor box takes the differentiable path).
    """
    if (forced is not None or isinstance(box, Tensor) or x.device.type != "cpu" or mode not in ("bilinear", "bicubic")
            or torch.get_num_threads() < 2
            or not all(float(v).is_integer() for v in box)):
        return None
    x0, y0, w, h = (int(v) for v in box)
    for start, n, n_out, N in ((x0, w, size[0], x.shape[-1]), (y0, h, size[1], x.shape[-2])):
        inside = mode == "bilinear" and n >= n_out
        if start < 0 or start + n > N or not ((start == 0 or inside) and (start + n == N or inside)):
            return None
    return x[..., y0: y0 + h, x0: x0 + w]


def crop_resize(image: Tensor, box: Tensor | Sequence[float], size: Sequence[int], mode: str = "bilinear",
                antialias: bool = True, backend: str | None = None) -> Tensor:
    """Crop the pixel box ``(x0, y0, w, h)`` of ``image`` (OpenCV centre frame) and resize it to ``(W', H')``.

    The box's top-left pixel centre is ``(x0, y0)``, so it spans ``[x0 - 1/2, x0 + w - 1/2]``; the
    map is ``A = resize((w, h) -> (W', H')) @ crop(x0, y0)``, i.e. output pixel ``u'`` reads the
    source at ``u = (w / W') (u' + 1/2) + x0 - 1/2`` (likewise ``v``). Sources near the image edges
    act as ``border`` (as ``cv2.resize``/``F.interpolate``); output pixels whose centre falls
    outside the image are 0. With ``antialias=True`` ``bilinear``/``bicubic`` are the separable
    filters of ``F.interpolate(..., antialias=True)`` (triangle; Keys ``a = -0.5``) stretched by
    the downscale factor; without, plain ``grid_sample`` (``cv2.resize`` ``INTER_LINEAR``/
    ``INTER_CUBIC``). ``area`` is the exact pixel-overlap filter of ``cv2.INTER_AREA``;
    ``nearest`` never blends (``antialias`` ignored).

    Args:
        image: ``(..., C, H, W)`` float or integer image.
        box: ``(x0, y0, w, h)`` in pixels (real numbers, ``w, h > 0``), or a tensor ``(..., 4)``
            whose batch dims broadcast with the image's.
        size: output ``(W', H')``.
        mode: ``"bilinear"`` (default), ``"nearest"``, ``"bicubic"`` or ``"area"``.
        antialias: default True.
        backend: ``None`` or a name from ``available_backends()`` (for the non-separable path).

    Returns:
        ``(..., C, H', W')`` in ``image``'s dtype, differentiable in ``image`` and a float ``box``.

    Raises:
        TypeError, ValueError: bad ``image``, ``box``, ``size``, ``mode``, ``antialias``, ``backend``, batch dims.

    Example:
        >>> x = torch.arange(16.0).reshape(1, 4, 4)
        >>> crop_resize(x, (0, 0, 4, 4), (2, 2), mode="area")
        tensor([[[ 2.5000,  4.5000],
                 [10.5000, 12.5000]]])
    """
    fn = "crop_resize"
    _args.check_data(image, fn, "image", 2)
    size = _checks.check_size(size, fn, "size", (2,))
    _args.check_options(fn, mode, "border", antialias, _CROP_MODES)
    forced = dispatch.forced_backend(backend, fn)
    Wo, Ho = size
    if isinstance(box, Tensor) or _checks._is_array(box):
        box_t = _args.check_box(box, image, fn)
        batch = _checks.broadcast_batch(fn, image=image.shape[:-3], box=box_t.shape[:-1])
    else:
        box_t = None
        x0, y0, w, h = _args.box_numbers(box, fn)
        batch = image.shape[:-3]
    out_shape = (*batch, image.shape[-3], Ho, Wo)
    _args.check_output(fn, out_shape, image.dtype, image.device)
    if 0 in out_shape[:-2]:  # an empty batch or no channels
        return image.new_empty(out_shape)
    xf = _args.to_float(image)
    separable = mode == "area" or (antialias and mode != "nearest")
    kernel = mode if separable else {"bilinear": "linear", "nearest": "nearest", "bicubic": "cubic"}[mode]
    bad = None
    if box_t is None:
        if not separable and (crop := _integer_crop(box, xf, size, mode, forced)) is not None:
            out = F.interpolate(crop.reshape(-1, *crop.shape[-3:]), size=(Ho, Wo), mode=mode, align_corners=False)
            return _args.from_float(out, image).reshape(out_shape)
        sx, sy = w / Wo, h / Ho
        scale, offset = (sx, sy), (x0 + sx / 2 - 0.5, y0 + sy / 2 - 0.5)  # u = s u' + offset, shared
    else:
        xf = xf.expand(*batch, *xf.shape[-3:]).reshape(-1, *xf.shape[-3:])
        bf = box_t.expand(*batch, 4).reshape(-1, 4)
        if (bad := _args.bad_boxes(bf)) is not None:  # GPU: unchecked values; keep the taps finite
            bf = torch.where(bad[:, None], torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=bf.dtype, device=bf.device), bf)
        scale = bf[:, 2:] / torch.tensor([Wo, Ho], dtype=bf.dtype, device=bf.device)  # (B, 2)
        offset = bf[:, :2] + scale / 2 - 0.5  # (B, 2) source centre of output pixel (0, 0)
    out = dispatch.resample_separable(xf, scale, offset, size, kernel, forced=forced)
    if bad is not None:
        out = torch.where(bad[:, None, None, None], torch.full_like(out, float("nan")), out)
    return _args.from_float(out, image).reshape(out_shape)
