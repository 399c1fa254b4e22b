"""The spatial transformer: localization net -> theta -> one sampling through camwarp's warp engine.

``theta`` is torch's ``affine_grid`` matrix (output-normalized -> input-normalized,
``align_corners=False``), so it is also an exact pixel matrix (``theta_to_pixel_matrix``) and a
camera update (``stn_camera``). The matrix families are sampled by
:mod:`camwarp.warp.dispatch` with the dst->src pixel matrix

    src_from_dst = D_in @ theta @ N_out        (D = denormalize_matrix, N = normalize_matrix)

(``sample_affine``/``sample_perspective``/``sample_affine3d``); TPS, which has no matrix, through
its dense grid and ``grid_sample``. Conventions: ``docs/conventions.md``; details: ``docs/stn.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .. import _checks
from ..geometry import denormalize_matrix, normalize_matrix, theta_to_matrix
from ..warp import dispatch
from .heads import TransformHead, _check_bounds, _check_family
from .localization import ConvLocalization, FCLocalization
from .tps import tps_warp

__all__ = ["SpatialTransformer", "sample_theta", "theta_to_pixel_matrix", "stn_camera", "full_theta"]

MODES = {2: ("bilinear", "nearest", "bicubic"), 3: ("bilinear", "nearest")}
PADDING_MODES = ("zeros", "border", "reflection")


def _theta_dims(theta: Tensor, fn: str) -> int:
    _checks.check_shape(theta, fn, "theta", "... R C")
    _checks.check_float(theta, fn, "theta")
    shape = tuple(theta.shape[-2:])
    if shape not in ((2, 3), (3, 3), (3, 4)):
        raise ValueError(f"{fn}: theta must have shape (..., 2, 3), (..., 3, 3) or (..., 3, 4), got "
                         f"{tuple(theta.shape)} (a TPS theta has no matrix: use tps_warp)")
    return 3 if shape == (3, 4) else 2


def full_theta(theta: Tensor) -> Tensor:
    """Return theta as a square homogeneous matrix: ``(..., 2, 3) -> (..., 3, 3)``, ``(..., 3, 4) -> (..., 4, 4)``."""
    r, c = theta.shape[-2:]
    if r == c:
        return theta
    last = torch.zeros(*theta.shape[:-2], 1, c, dtype=theta.dtype, device=theta.device)
    last[..., 0, -1] = 1
    return torch.cat([theta, last], dim=-2)


def sample_theta(x: Tensor, theta: Tensor, out_size: Sequence[int] | None = None, mode: str = "bilinear",
                 padding_mode: str = "zeros", backend: str | None = None) -> Tensor:
    """Warp ``x`` by a normalized dst->src ``theta`` through camwarp's warp engine.

    The same result as ``F.grid_sample(x, F.affine_grid(theta, ...))`` (``align_corners=False``)
    for ``(..., 2, 3)`` and ``(..., 3, 4)`` thetas; a ``(..., 3, 3)`` theta is projective (output
    ``(x, y, 1)`` -> ``theta @ (x, y, 1)`` -> divide by the last entry).

    Args:
        x: images ``(..., C, H, W)`` (volumes ``(..., C, D, H, W)`` for a ``(..., 3, 4)`` theta).
        theta: ``(..., 2, 3)``, ``(..., 3, 3)`` or ``(..., 3, 4)``; batch dims broadcast with ``x``'s.
        out_size: output ``(W', H')`` (``(W', H', D')``), default the input's size.
        mode: ``"bilinear"``, ``"nearest"`` or ``"bicubic"`` (volumes: no bicubic).
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"``.
        backend: forwarded to :mod:`camwarp.warp.dispatch` (None: automatic).

    Returns:
        ``(..., C, H', W')`` (``(..., C, D', H', W')``), differentiable in ``x`` and ``theta``.

    Raises:
        ValueError, TypeError: bad shapes, sizes, modes or ``backend``.

    Example:
        >>> x = torch.rand(2, 1, 6, 8)
        >>> sample_theta(x, torch.eye(2, 3).expand(2, 2, 3), (4, 3)).shape
        torch.Size([2, 1, 3, 4])
    """
    fn = "sample_theta"
    dims = _theta_dims(theta, fn)
    _checks.check_shape(x, fn, "x", "... C H W" if dims == 2 else "... C D H W")
    _checks.check_float(x, fn, "x")
    _checks.check_choice(mode, fn, "mode", MODES[dims])
    _checks.check_choice(padding_mode, fn, "padding_mode", PADDING_MODES)
    dispatch.check_backend(backend, fn)
    in_size = tuple(reversed(x.shape[-dims:]))
    out_size = in_size if out_size is None else _checks.check_size(out_size, fn, "out_size", (dims,))
    core = x.shape[-dims - 1:]
    batch = _checks.broadcast_batch(fn, x=x.shape[:-dims - 1], theta=theta.shape[:-2])
    flat = len(batch) == 1 and x.ndim == dims + 2 and theta.ndim == 3 and x.shape[0] == theta.shape[0]
    xb = x if flat else x.expand(*batch, *core).reshape(-1, *core)  # (no autograd nodes when already flat)
    tb = theta if flat else theta.expand(*batch, *theta.shape[-2:]).reshape(-1, *theta.shape[-2:])
    if xb.shape[0] == 0:  # empty batch: nothing to sample (affine_grid refuses N = 0)
        return x.new_zeros(*batch, core[0], *reversed(out_size))
    if dims == 2 and theta.shape[-2] == 2:  # affine: the backend takes theta itself (no matrix products)
        out = dispatch.sample_theta(xb, tb, out_size, mode, padding_mode, backend)
        return out if flat else out.reshape(*batch, *out.shape[1:])
    kw = dict(dtype=theta.dtype, device=theta.device)
    src_from_dst = denormalize_matrix(in_size, **kw) @ full_theta(tb) @ normalize_matrix(out_size, **kw)
    if dims == 3:
        out = dispatch.sample_affine3d(xb, src_from_dst, out_size, mode, padding_mode, backend)
    elif theta.shape[-2] == 3:
        out = dispatch.sample_perspective(xb, src_from_dst, out_size, mode, padding_mode, backend)
    else:
        out = dispatch.sample_affine(xb, src_from_dst, out_size, mode, padding_mode, backend)
    return out.reshape(*batch, *out.shape[1:])


def theta_to_pixel_matrix(theta: Tensor, in_size: Sequence[int], out_size: Sequence[int] | None = None) -> Tensor:
    """Return the src->dst pixel matrix (OpenCV centre frame) of a transformer's ``theta``.

    ``A = (D_in @ theta @ N_out)^-1`` (:func:`camwarp.theta_to_matrix` with ``align_corners=False``):
    the output pixel ``p`` of the transformer shows the input pixel ``A^-1 p``.

    Args:
        theta: ``(..., 2, 3)``, ``(..., 3, 3)`` (projective) or ``(..., 3, 4)`` (volumes).
        in_size: the input's ``(W, H)`` (``(W, H, D)``).
        out_size: the output's size, default ``in_size``.

    Returns:
        ``(..., 3, 3)`` (``(..., 4, 4)``), differentiable in ``theta``.

    Raises:
        ValueError: bad shapes/sizes; ``SingularMatrixError`` for a singular theta.

    Example:
        >>> theta = torch.tensor([[0.5, 0.0, 0.5], [0.0, 0.5, 0.5]])   # bottom-right quarter
        >>> theta_to_pixel_matrix(theta, (8, 8), (4, 4))[:2]
        tensor([[ 1.,  0., -4.],
                [ 0.,  1., -4.]])
    """
    fn = "theta_to_pixel_matrix"
    dims = _theta_dims(theta, fn)
    in_size = _checks.check_size(in_size, fn, "in_size", (dims,))
    out_size = in_size if out_size is None else _checks.check_size(out_size, fn, "out_size", (dims,))
    return theta_to_matrix(theta, in_size, out_size, align_corners=False)


def stn_camera(camera: Any, theta: Tensor, in_size: Sequence[int] | None = None,
               out_size: Sequence[int] | None = None) -> tuple[Any, Tensor]:
    """Return the camera of a transformer's output and the rotation ``R``: ``camera.transform(A, out_size)``.

    ``A = theta_to_pixel_matrix(theta, in_size, out_size)`` is the src->dst pixel map of the
    transformer, so ``A K = K' R`` (RQ) gives the exact intrinsics ``K'`` of the output image (a
    learned crop/zoom keeps ``R = I``; a rotation or shear shows up in ``R``). A projective theta of
    a distorted camera raises :class:`camwarp.errors.InexactDistortionError` (undistort first).

    Args:
        camera: a :class:`camwarp.Camera` of the transformer's input (batch dims broadcast with theta's).
        theta: ``(..., 2, 3)`` or ``(..., 3, 3)``; TPS and volume thetas have no camera.
        in_size: the input's ``(W, H)``, default ``camera.size`` (which it must equal).
        out_size: the output's ``(W', H')``, default ``in_size``.

    Returns:
        ``(Camera, R)``: the new camera (size ``out_size``) and ``R`` ``(..., 3, 3)``.

    Raises:
        ValueError: bad theta shape, or ``camera.size != in_size`` (resize the camera first).
    """
    fn = "stn_camera"
    if _theta_dims(theta, fn) != 2:
        raise ValueError(f"{fn}: theta must be (..., 2, 3) or (..., 3, 3) (a camera is 2-D), got {tuple(theta.shape)}")
    if not hasattr(camera, "transform") or not hasattr(camera, "size"):
        raise TypeError(f"{fn}: camera must be a camwarp.Camera, got {type(camera).__name__}")
    in_size = camera.size if in_size is None else _checks.check_size(in_size, fn, "in_size")
    if tuple(camera.size) != tuple(in_size):
        raise ValueError(f"{fn}: camera.size {tuple(camera.size)} differs from in_size {tuple(in_size)}; "
                         f"resize the camera first (camera.resize(*in_size))")
    A = theta_to_pixel_matrix(theta, in_size, out_size)
    return camera.transform(A.to(camera.dtype), tuple(out_size or in_size))


class SpatialTransformer(nn.Module):
    """A spatial transformer (Jaderberg et al. 2015): ``y = sample(x, theta(x))``.

    The localization network maps ``x`` to features, a :class:`~camwarp.stn.heads.TransformHead`
    maps them to ``theta`` of the chosen family (identity at initialization), and ``x`` is sampled
    once at ``theta`` (see the module docstring). ``forward(x, return_theta=True)`` also returns
    ``theta``: ``(..., 2, 3)`` (translation, scale_translation, similarity, affine), ``(..., 3, 3)``
    (projective), ``(..., 3, 4)`` (``dims=3``) or the displacements ``(..., K*K, 2)`` (tps).

    Args:
        in_channels: ``C`` of the input ``(..., C, H, W)`` (``(..., C, D, H, W)``).
        transform: family, one of ``heads.FAMILIES`` (``heads.FAMILIES_3D`` for volumes).
        out_size: output ``(W', H')`` (``(W', H', D')``); None keeps the input's size. A smaller
            size is the paper's attention/downsampling.
        dims: 2 (images) or 3 (volumes).
        localization: ``None``/``"cnn"`` (:class:`ConvLocalization`, the seed's), ``"fcn"``
            (:class:`FCLocalization`, needs ``in_size``) or any ``nn.Module`` returning ``(N, F)``.
        in_size: the input's ``(W, H)`` (``(W, H, D)``) when known: the default network is then
            sized by formula and inputs are checked against it.
        loc_features: ``F`` of a user localization (default: its ``out_features`` attribute, else a
            dummy forward at ``in_size``).
        max_scale, max_translation, max_angle: smooth bounds (see :func:`~camwarp.stn.heads.params_to_theta`).
        tps_grid: ``K`` of the ``K x K`` TPS control points, default 4.
        mode: ``"bilinear"``, ``"nearest"`` or ``"bicubic"`` (volumes: bilinear/nearest).
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"``.
        backend: warp backend (None: :mod:`camwarp.warp.dispatch` chooses).

    Raises:
        ValueError, TypeError: an argument out of its domain, named.

    Example:
        >>> st = SpatialTransformer(1, "similarity", out_size=(14, 14), in_size=(28, 28))
        >>> y, theta = st(torch.rand(4, 1, 28, 28), return_theta=True)
        >>> y.shape, theta.shape
        (torch.Size([4, 1, 14, 14]), torch.Size([4, 2, 3]))
    """

    def __init__(self, in_channels: int, transform: str = "affine", out_size: Sequence[int] | None = None,
                 dims: int = 2, localization: nn.Module | str | None = None, *,
                 in_size: Sequence[int] | None = None, loc_features: int | None = None,
                 max_scale: float | None = None, max_translation: float | None = None,
                 max_angle: float | None = None, tps_grid: int = 4, mode: str = "bilinear",
                 padding_mode: str = "zeros", backend: str | None = None) -> None:
        super().__init__()
        fn = "SpatialTransformer"
        self.transform, self.dims, self.tps_grid = _check_family(transform, dims, fn, tps_grid)
        self.in_channels = _checks.check_int(in_channels, fn, "in_channels", minimum=1)
        self.out_size = None if out_size is None else _checks.check_size(out_size, fn, "out_size", (self.dims,))
        self.in_size = None if in_size is None else _checks.check_size(in_size, fn, "in_size", (self.dims,))
        self.mode = _checks.check_choice(mode, fn, "mode", MODES[self.dims])
        self.padding_mode = _checks.check_choice(padding_mode, fn, "padding_mode", PADDING_MODES)
        if backend is not None and not isinstance(backend, str):
            raise TypeError(f"{fn}: backend must be None or a str, got {type(backend).__name__}")
        self.backend = backend
        bounds = _check_bounds(self.transform, fn, max_scale=max_scale, max_translation=max_translation,
                              max_angle=max_angle)
        self.localization, features = self._build_localization(localization, loc_features, fn)
        self.head = TransformHead(features, self.transform, self.dims, tps_grid=self.tps_grid, **bounds)

    def _build_localization(self, loc: object, loc_features: object, fn: str) -> tuple[nn.Module, int]:
        if loc is None or loc == "cnn":
            net = ConvLocalization(self.in_channels, self.in_size, self.dims)
            return net, net.out_features
        if loc == "fcn":
            if self.in_size is None:
                raise ValueError(f"{fn}: localization='fcn' needs in_size (its first layer has C*H*W inputs)")
            net = FCLocalization(self.in_channels, self.in_size, self.dims)
            return net, net.out_features
        if isinstance(loc, str):
            raise ValueError(f"{fn}: localization must be None, 'cnn', 'fcn' or an nn.Module, got {loc!r}")
        if not isinstance(loc, nn.Module):
            raise TypeError(f"{fn}: localization must be None, 'cnn', 'fcn' or an nn.Module, got {type(loc).__name__}")
        if loc_features is None:
            loc_features = getattr(loc, "out_features", None)
        if loc_features is None and self.in_size is not None:
            like = next(loc.parameters(), torch.empty(0))  # the module's device and dtype
            dummy = torch.zeros(1, self.in_channels, *reversed(self.in_size), dtype=like.dtype, device=like.device)
            with torch.no_grad():
                loc_features = int(loc(dummy).flatten(1).shape[1])
        if loc_features is None:
            raise ValueError(f"{fn}: cannot tell the size of the localization's features; pass loc_features "
                             f"(or in_size, or give the module an out_features attribute)")
        return loc, _checks.check_int(loc_features, fn, "loc_features", minimum=1)

    def _check_input(self, x: Tensor, fn: str) -> tuple[int, ...]:
        """Validate ``x``; return its size ``(W, H[, D])``."""
        d = self.dims
        _checks.check_shape(x, fn, "x", "... C H W" if d == 2 else "... C D H W")
        _checks.check_float(x, fn, "x")
        if x.shape[-d - 1] != self.in_channels:
            raise ValueError(f"{fn}: x must have {self.in_channels} channels (dim {-d - 1}), "
                             f"got shape {tuple(x.shape)}")
        size = tuple(reversed(x.shape[-d:]))
        if self.in_size is not None and size != tuple(self.in_size):
            raise ValueError(f"{fn}: x has size {size} but the transformer was built for in_size {tuple(self.in_size)}")
        return size

    def output_size(self, in_size: Sequence[int]) -> tuple[int, ...]:
        """Return the output size for an input of ``in_size``: ``out_size``, or ``in_size`` when None."""
        return tuple(self.out_size or in_size)

    def predict_theta(self, x: Tensor) -> Tensor:
        """Return ``theta`` ``(..., ...)`` that the localization network and head predict for ``x``."""
        self._check_input(x, "SpatialTransformer.predict_theta")
        core = x.shape[-self.dims - 1:]
        features = self.localization(x.reshape(-1, *core)).flatten(1)
        theta = self.head(features)
        return theta.reshape(*x.shape[:-self.dims - 1], *theta.shape[1:])

    def sample(self, x: Tensor, theta: Tensor, out_size: Sequence[int] | None = None) -> Tensor:
        """Warp ``x`` by ``theta`` of this transformer's family with its mode and padding.

        ``out_size`` defaults to :meth:`output_size`; batch dims of ``x`` and ``theta`` broadcast.
        """
        size = self._check_input(x, "SpatialTransformer.sample")
        out_size = self.output_size(size) if out_size is None else out_size
        if self.transform == "tps":
            return tps_warp(x, theta, out_size, self.mode, self.padding_mode)
        return sample_theta(x, theta, out_size, self.mode, self.padding_mode, self.backend)

    def forward(self, x: Tensor, return_theta: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Return ``x`` warped by its predicted theta (and theta with ``return_theta=True``)."""
        theta = self.predict_theta(x)
        y = self.sample(x, theta)
        return (y, theta) if return_theta else y

    def pixel_matrix(self, theta: Tensor, in_size: Sequence[int]) -> Tensor:
        """Return the src->dst pixel matrix of ``theta`` for an input of ``in_size`` (:func:`theta_to_pixel_matrix`)."""
        if self.transform == "tps":
            raise ValueError("SpatialTransformer.pixel_matrix: a 'tps' transformer has no pixel matrix")
        return theta_to_pixel_matrix(theta, in_size, self.output_size(in_size))

    def output_camera(self, camera: Any, theta: Tensor) -> tuple[Any, Tensor]:
        """Return ``(camera', R)`` of this transformer's output for a ``camera`` of its input (:func:`stn_camera`)."""
        if self.transform == "tps" or self.dims != 2:
            raise ValueError(f"SpatialTransformer.output_camera: a {self.transform!r} transformer with "
                             f"dims={self.dims} has no camera update (only 2-D matrix families)")
        return stn_camera(camera, theta, camera.size, self.output_size(camera.size))

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, transform={self.transform!r}, dims={self.dims}, "
                f"out_size={self.out_size}, in_size={self.in_size}, mode={self.mode!r}, "
                f"padding_mode={self.padding_mode!r}")

