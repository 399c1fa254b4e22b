"""Perspective crops: render a point's surroundings from a virtual camera rotated to look at it.

An off-centre crop of a wide-angle image is seen obliquely (objects stretch towards the border).
A perspective crop (the "perspective crop layer" of human-pose work) instead turns the camera so
its optical axis goes through the target, by the smallest rotation ``R`` with ``R d = |d| e_z``
(``d`` the ray to the target), and renders a ``W' x H'`` pinhole image with ``K'`` (focal ``f``,
principal point at the image centre). The image map is the homography ``A = K' R K^-1``
(src->dst pixels, OpenCV centre frame), applied to the whole sample by the kind table; the new
camera sees ``R X``. Only an undistorted camera can be rotated exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from .. import _checks
from ..errors import InexactDistortionError
from .kernels import KernelOptions, apply
from .ops import SampleInfo, Transform
from .steps import MatrixStep

__all__ = ["look_at_rotation", "perspective_crop_matrix", "perspective_crop", "PerspectiveCrop"]


def _skew(a: Tensor) -> Tensor:
    z = torch.zeros_like(a[..., 0])
    x, y, w = a.unbind(-1)
    return torch.stack([torch.stack([z, -w, y], -1), torch.stack([w, z, -x], -1), torch.stack([-y, x, z], -1)], -2)


def look_at_rotation(direction: Tensor) -> Tensor:
    """Return the smallest rotation ``R`` ``(..., 3, 3)`` turning ``direction`` onto the optical axis.

    ``R d / |d| = (0, 0, 1)``; with ``a = d_hat x e_z`` and ``c = d_hat . e_z``, Rodrigues' formula
    ``R = I + [a]_x + [a]_x^2 / (1 + c)`` (no roll about the axis; ``R = I`` for ``d`` along z).
    Undefined for ``d`` pointing straight backwards (``c = -1``).

    Args:
        direction: ``(..., 3)`` camera-frame direction (any length, ``z > -|d|``).

    Example:
        >>> d = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
        >>> (look_at_rotation(d) @ d / d.norm()).round(decimals=12).tolist()
        [0.0, 0.0, 1.0]
    """
    _checks.check_float(_checks.check_shape(direction, "look_at_rotation", "direction", "... 3"),
                        "look_at_rotation", "direction")
    d = direction / direction.norm(dim=-1, keepdim=True)
    ez = torch.zeros_like(d)
    ez[..., 2] = 1
    a = torch.linalg.cross(d, ez)
    S = _skew(a)
    eye = torch.eye(3, dtype=d.dtype, device=d.device)
    return eye + S + S @ S / (1 + d[..., 2])[..., None, None]


def _ray(camera, center: Tensor, fn: str) -> Tensor:
    """The camera-frame direction of a pixel ``(..., 2)``, a 3-D point ``(..., 3)`` or a box's centre ``(..., 4)``."""
    if center.shape[-1] == 3:
        return center
    uv = center if center.shape[-1] == 2 else (center[..., :2] + center[..., 2:]) / 2
    Kinv = torch.linalg.inv(camera.K.to(uv.dtype))
    return (Kinv @ torch.cat([uv, torch.ones_like(uv[..., :1])], dim=-1)[..., None]).squeeze(-1)


def perspective_crop_matrix(camera, center, size: Sequence[int], fov: float | None = None,
                            focal: float | Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Return ``(A, K', R)``: the src->dst homography ``A = K' R K^-1`` of a perspective crop, and its parts.

    Args:
        camera: a distortion-free :class:`camwarp.Camera`.
        center: what to look at, ``(..., 2)`` pixel, ``(..., 3)`` camera-frame point, or ``(..., 4)`` box
            ``(x1, y1, x2, y2)`` (pixel edges; looks at its centre).
        size: crop size ``(W', H')``.
        fov: horizontal field of view in degrees over the crop's full width: ``f = (W'/2) / tan(fov/2)``.
        focal: focal length in pixels (``fx = fy``). For a box, give neither to fit the box: the
            largest focal for which all four corners stay inside the crop.

    Returns:
        ``A``, ``K'``, ``R``, each ``(..., 3, 3)`` in ``center``'s batch shape (and the camera's).

    Raises:
        InexactDistortionError: the camera has distortion (undistort first).
        ValueError: neither or both of fov and focal (except for a box), bad shapes.
    """
    fn = "perspective_crop"
    W, H = _checks.check_size(size, fn)
    if camera.has_distortion:
        raise InexactDistortionError(f"{fn}: the camera has distortion; a rotated virtual camera is exact only "
                                     f"for an undistorted image: undistort first")
    dtype = torch.float64 if camera.dtype == torch.float64 else torch.float32
    c = _checks.as_tensor(center, fn, "center", dtype, camera.device)
    _checks.check_shape(c, fn, "center", "... 2|3|4")
    if (fov is None) == (focal is None) and not (c.shape[-1] == 4 and fov is None and focal is None):
        raise ValueError(f"{fn}: give exactly one of fov= or focal= (a box center may give neither)")
    R = look_at_rotation(_ray(camera, c, fn))  # (..., 3, 3)
    if fov is not None:
        fov = _checks.check_finite_number(fov, fn, "fov", positive=True)
        if fov >= 180:
            raise ValueError(f"{fn}: fov must be below 180 degrees, got {fov!r}")
        f = torch.full(R.shape[:-2], (W / 2) / math.tan(math.radians(fov) / 2), dtype=dtype, device=R.device)
    elif focal is not None:
        f = _checks.as_tensor(focal, fn, "focal", dtype, camera.device).expand(R.shape[:-2])
    else:
        corners = torch.stack([c[..., [0, 1]], c[..., [2, 1]], c[..., [2, 3]], c[..., [0, 3]]], dim=-2)  # (..., 4, 2)
        rays = _ray(camera, corners, fn) @ R.transpose(-1, -2)  # (..., 4, 3) in the turned frame
        xy = (rays[..., :2] / rays[..., 2:]).abs().amax(dim=-2)  # (..., 2)
        f = torch.minimum((W / 2) / xy[..., 0], (H / 2) / xy[..., 1])
    zero, one = torch.zeros_like(f), torch.ones_like(f)
    Kp = torch.stack([torch.stack([f, zero, torch.full_like(f, (W - 1) / 2)], -1),
                      torch.stack([zero, f, torch.full_like(f, (H - 1) / 2)], -1),
                      torch.stack([zero, zero, one], -1)], -2)
    A = Kp @ R @ torch.linalg.inv(camera.K.to(dtype))
    return A, Kp, R


def perspective_crop(sample_or_image: Mapping | Tensor, camera, center, size: Sequence[int],
                     fov: float | None = None, focal: float | Tensor | None = None, *,
                     options: KernelOptions | None = None, kinds: Mapping[str, str] | None = None):
    """Render the view of a virtual camera turned to look at ``center`` (image or whole sample).

    Args:
        sample_or_image: a sample dict (its ``"camera"`` is used unless ``camera`` is given) or an
            image ``(..., C, H, W)``.
        camera: the distortion-free :class:`camwarp.Camera`, or None to use the sample's
            ``"camera"`` (an image needs one).
        center, size, fov, focal: see :func:`perspective_crop_matrix`.
        options, kinds: kernel options, kinds of extra keys.

    Returns:
        For an image: ``(image, camera, R)``. For a sample: the new sample (``"camera"`` replaced,
        ``"R"`` accumulated; depth is z-depth along the new axis).

    Raises:
        InexactDistortionError: the camera has distortion.

    Example:
        >>> from camwarp import Camera
        >>> cam = Camera(100.0, 100.0, 49.5, 49.5, 100, 100)
        >>> img, new_cam, R = perspective_crop(torch.rand(3, 100, 100), cam, (80.0, 20.0), (32, 32), focal=100.0)
        >>> img.shape, new_cam.size
        (torch.Size([3, 32, 32]), (32, 32))
    """
    fn = "perspective_crop"
    is_image = isinstance(sample_or_image, Tensor)
    if is_image:
        if camera is None:
            raise ValueError(f"{fn}: an image needs camera=")
        sample = {"image": sample_or_image, "camera": camera}
    elif isinstance(sample_or_image, Mapping):
        sample = dict(sample_or_image)
        if camera is not None:
            sample["camera"] = camera
        if "camera" not in sample:
            raise ValueError(f"{fn}: the sample has no 'camera' (pass camera=)")
    else:
        raise TypeError(f"{fn}: sample_or_image must be a dict or a tensor, got {type(sample_or_image).__name__}")
    A, _, _ = perspective_crop_matrix(sample["camera"], center, size, fov, focal)
    out = apply(sample, MatrixStep(A, tuple(size), affine=False), options, kinds)
    return (out["image"], out["camera"], out["R"]) if is_image else out


class PerspectiveCrop(Transform):
    """Op version of :func:`perspective_crop` (for ``Compose``; reads the camera at its place in the chain)."""

    needs_camera = True

    def __init__(self, center, size: Sequence[int], fov: float | None = None, focal: float | None = None,
                 **kw) -> None:
        super().__init__(**kw)
        self.center, self.size, self.fov, self.focal = center, _checks.check_size(size, "PerspectiveCrop"), fov, focal

    def get_step(self, info: SampleInfo) -> MatrixStep:
        if info.camera is None:
            raise ValueError("PerspectiveCrop: the sample has no 'camera'")
        A, _, _ = perspective_crop_matrix(info.camera, self.center, self.size, self.fov, self.focal)
        return MatrixStep(A.to(info.device), self.size, affine=False)
