"""Undistortion and distortion of whole samples (remap steps), with OpenCV's new-camera semantics.

:func:`optimal_new_camera` is ``cv2.getOptimalNewCameraMatrix`` for both distortion models
(``alpha = 0``: every output pixel valid; ``1``: every source pixel kept). :func:`undistort` resamples
a sample into a distortion-free pinhole camera: the image through the remap grid of
``cv2.initUndistortRectifyMap`` (each output pixel ``p`` samples the source at
``K d(K_new^-1 p)``, ``d`` the distortion model), depth and masks by nearest neighbour (depth is
unchanged: same camera frame, ``R = I``), keypoints exactly (``Camera.undistort_pixels`` then
``K_new``), boxes by the bounding box of 8 points per mapped edge. :func:`distort` is the inverse:
a pinhole sample rendered into a distorted target camera. ``Undistort``/``Distort`` are the op
versions for ``Compose``. Frames: OpenCV centre frame (``docs/conventions.md``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .. import _checks
from .kernels import KernelOptions, apply
from .ops import SampleInfo, Transform
from .steps import MatrixStep, Step

__all__ = ["optimal_new_camera", "undistort", "distort", "Undistort", "Distort", "RemapStep"]


def _camera_type():
    from ..camera import Camera

    return Camera


def _check_camera(camera: object, fn: str, name: str = "camera"):
    Camera = _camera_type()
    if not isinstance(camera, Camera):
        raise TypeError(f"{fn}: {name} must be a camwarp.Camera, got {type(camera).__name__}")
    return camera


def _pixels_to_normalized(K: Tensor, uv: Tensor) -> Tensor:
    """``K^-1 (u, v, 1)`` for a zero-distortion camera: ``(..., N, 2)`` normalized coordinates."""
    K = K.to(uv.dtype)
    y = (uv[..., 1] - K[..., None, 1, 2]) / K[..., None, 1, 1]
    x = (uv[..., 0] - K[..., None, 0, 2] - K[..., None, 0, 1] * y) / K[..., None, 0, 0]
    return torch.stack([x, y], dim=-1)


def _normalized_to_pixels(K: Tensor, xy: Tensor) -> Tensor:
    K = K.to(xy.dtype)
    x, y = xy[..., 0], xy[..., 1]
    return torch.stack([K[..., None, 0, 0] * x + K[..., None, 0, 1] * y + K[..., None, 0, 2],
                        K[..., None, 1, 1] * y + K[..., None, 1, 2]], dim=-1)


def _homogeneous(xy: Tensor) -> Tensor:
    return torch.cat([xy, torch.ones_like(xy[..., :1])], dim=-1)


def _opencv_fixed_point(xy: Tensor, dist: Tensor, iterations: int = 5) -> Tensor:
    """``cv2.undistortPoints``' own inversion of the ``"opencv"`` model: ``iterations`` fixed-point steps
    ``x = (x0 - delta(x)) / g(x)`` from ``x = x0`` (a negative ``1/g`` stops at ``x0``, as OpenCV)."""
    k = torch.nn.functional.pad(dist.to(xy.dtype), (0, max(0, 8 - dist.shape[-1])))[..., None, :]  # (..., 1, 8)
    k1, k2, p1, p2, k3, k4, k5, k6 = k.unbind(-1)
    x0, y0 = xy[..., 0], xy[..., 1]
    x, y = x0, y0
    stopped = torch.zeros_like(x0, dtype=torch.bool)
    for _ in range(iterations):
        r2 = x * x + y * y
        icdist = (1 + ((k6 * r2 + k5) * r2 + k4) * r2) / (1 + ((k3 * r2 + k2) * r2 + k1) * r2)
        stopped = stopped | (icdist < 0)
        nx = (x0 - (2 * p1 * x * y + p2 * (r2 + 2 * x * x))) * icdist
        ny = (y0 - (p1 * (r2 + 2 * y * y) + 2 * p2 * x * y)) * icdist
        x, y = torch.where(stopped, x0, nx), torch.where(stopped, y0, ny)
    return torch.stack([x, y], dim=-1)


def optimal_new_camera(camera, alpha: float = 0.0, new_size: Sequence[int] | None = None,
                       center_principal_point: bool = False, opencv_iterations: int | None = 5):
    """Return the distortion-free camera of ``cv2.getOptimalNewCameraMatrix(K, dist, size, alpha, new_size)``.

    The 9x9 grid of source pixel centres ``(i (W-1)/8, j (H-1)/8)`` is undistorted; the inner
    rectangle (largest inside the undistorted border rows/columns) and the outer one (bounding all)
    give ``f0 = (W'-1)/inner_w``, ``c0 = -f0 inner_x0`` and ``f1, c1`` likewise; the result is
    ``(1 - alpha) (f0, c0) + alpha (f1, c1)`` per axis. With ``center_principal_point`` the
    principal point is the output centre and one focal scale is interpolated (as OpenCV). Applies
    to both models (``cv2.fisheye`` has no such function). Skew is 0. For the ``"opencv"`` model
    the border is undistorted as ``cv2.undistortPoints`` does it (``opencv_iterations=5``
    fixed-point steps, which stop short of convergence on strong lenses) so ``K_new`` equals
    OpenCV's to round-off; ``opencv_iterations=None`` uses the converged ``Camera.undistort_pixels``.

    Args:
        camera: a :class:`camwarp.Camera` (batched or not) of size ``(W, H)``.
        alpha: free scaling in ``[0, 1]``: 0 keeps only valid pixels, 1 keeps all source pixels.
        new_size: output size ``(W', H')``; default the camera's size.
        center_principal_point: put the principal point at the image centre.
        opencv_iterations: OpenCV's fixed-point step count for the ``"opencv"`` model, or None.

    Returns:
        A :class:`camwarp.Camera` without distortion (model ``"opencv"``), size ``new_size``.

    Raises:
        TypeError, ValueError: bad camera, alpha outside [0, 1], bad size.

    Example:
        >>> from camwarp import Camera
        >>> cam = Camera(100.0, 100.0, 49.5, 39.5, 100, 80, dist=[-0.2], model="opencv")
        >>> new = optimal_new_camera(cam.to(dtype=torch.float64), alpha=0.0)
        >>> new.K[0].round(decimals=3).tolist(), new.has_distortion
        ([94.514, 0.0, 49.5], False)
    """
    fn = "optimal_new_camera"
    _check_camera(camera, fn)
    alpha = _checks.check_finite_number(alpha, fn, "alpha")
    if not 0 <= alpha <= 1:
        raise ValueError(f"{fn}: alpha must be in [0, 1], got {alpha!r}")
    W, H = camera.size
    Wn, Hn = camera.size if new_size is None else _checks.check_size(new_size, fn, "new_size")
    n = 9
    dt = torch.float64 if camera.dtype == torch.float64 else torch.float32
    t = torch.arange(n, dtype=dt, device=camera.device)
    gy, gx = torch.meshgrid(t * ((H - 1) / (n - 1)), t * ((W - 1) / (n - 1)), indexing="ij")
    uv = torch.stack([gx, gy], dim=-1).reshape(n * n, 2)  # (81, 2) source pixel centres
    if camera.model == "opencv" and opencv_iterations is not None:
        opencv_iterations = _checks.check_int(opencv_iterations, fn, "opencv_iterations", minimum=0)
        xy = _opencv_fixed_point(_pixels_to_normalized(camera.K, uv), camera.dist, opencv_iterations)
    else:
        xy = camera.undistort_pixels(uv)  # (..., 81, 2)
    if center_principal_point:
        xy = _normalized_to_pixels(camera.K, xy)  # cv2 measures in pixels of K there
    g = xy.unflatten(-2, (n, n))  # (..., y, x, 2)
    x, y = g[..., 0], g[..., 1]
    ix0, ix1 = x[..., :, 0].amax(-1), x[..., :, -1].amin(-1)
    iy0, iy1 = y[..., 0, :].amax(-1), y[..., -1, :].amin(-1)
    ox0, ox1 = x.flatten(-2).amin(-1), x.flatten(-2).amax(-1)
    oy0, oy1 = y.flatten(-2).amin(-1), y.flatten(-2).amax(-1)
    if center_principal_point:
        K = camera.K.to(dt)
        cx0, cy0, fx, fy = K[..., 0, 2], K[..., 1, 2], K[..., 0, 0], K[..., 1, 1]
        cx, cy = (Wn - 1) * 0.5, (Hn - 1) * 0.5
        s0 = torch.stack([cx / (cx0 - ix0), cy / (cy0 - iy0), cx / (ix1 - cx0), cy / (iy1 - cy0)]).amax(0)
        s1 = torch.stack([cx / (cx0 - ox0), cy / (cy0 - oy0), cx / (ox1 - cx0), cy / (oy1 - cy0)]).amin(0)
        s = s0 * (1 - alpha) + s1 * alpha
        fxn, fyn = fx * s, fy * s
        cxn, cyn = torch.full_like(fxn, cx), torch.full_like(fyn, cy)
    else:
        fx0, fy0 = (Wn - 1) / (ix1 - ix0), (Hn - 1) / (iy1 - iy0)
        fx1, fy1 = (Wn - 1) / (ox1 - ox0), (Hn - 1) / (oy1 - oy0)
        fxn, fyn = fx0 * (1 - alpha) + fx1 * alpha, fy0 * (1 - alpha) + fy1 * alpha
        cxn = -fx0 * ix0 * (1 - alpha) - fx1 * ox0 * alpha
        cyn = -fy0 * iy0 * (1 - alpha) - fy1 * oy0 * alpha
    Camera = _camera_type()
    return Camera(fxn.to(camera.dtype), fyn.to(camera.dtype), cxn.to(camera.dtype), cyn.to(camera.dtype), Wn, Hn)


@dataclass(frozen=True)
class RemapStep(Step):
    """The remap between two cameras that see the same rays (``R = I``), either of them distorted.

    ``camera`` is the sample's, ``new_camera`` the output's: output pixel ``p`` samples the source
    at ``camera.project(ray(p))``, the ray from ``new_camera.undistort_pixels(p)``; points map the
    other way. Undistortion has a distortion-free ``new_camera``, distortion a distortion-free
    ``camera``.
    """

    camera: object
    new_camera: object
    size: tuple[int, int]
    box_edge_samples: int = 8

    def source_coords(self, points: Tensor) -> Tensor:
        return self.camera.project(_homogeneous(self.new_camera.undistort_pixels(points)))

    def map_points(self, points: Tensor) -> tuple[Tensor, Tensor]:
        out = self.new_camera.project(_homogeneous(self.camera.undistort_pixels(points)))
        return out, torch.isfinite(out).all(dim=-1)

    def move_camera(self, camera):
        R = torch.eye(3, dtype=self.new_camera.dtype, device=self.new_camera.device)
        return self.new_camera, R.expand(*self.new_camera.batch_shape, 3, 3)


def _matrix_step(src_K: Tensor, dst_K: Tensor, size: tuple[int, int]) -> MatrixStep:
    """Two distortion-free cameras of the same rays differ by ``A = K_dst K_src^-1`` (an affine map)."""
    A = dst_K.to(torch.float64) @ torch.linalg.inv(src_K.to(torch.float64))
    A = A.clone()
    A[..., 2, :] = torch.tensor([0.0, 0.0, 1.0], dtype=A.dtype, device=A.device)  # exact last row
    return MatrixStep(A, size, affine=True)


def undistort_step(camera, new_camera=None, alpha: float = 0.0, new_size: Sequence[int] | None = None,
                   fn: str = "undistort") -> Step:
    """Return the step from ``camera`` to a distortion-free camera (a matrix step if ``camera`` has none)."""
    _check_camera(camera, fn)
    if new_camera is None:
        new_camera = optimal_new_camera(camera, alpha, new_size)
    else:
        _check_camera(new_camera, fn, "new_camera")
        if new_camera.has_distortion:
            raise ValueError(f"{fn}: new_camera must have no distortion")
    if not camera.has_distortion:
        return _matrix_step(camera.K, new_camera.K, new_camera.size)
    return RemapStep(camera, new_camera, new_camera.size)


def distort_step(camera, target_camera, fn: str = "distort") -> Step:
    """Return the step rendering a distortion-free ``camera`` into ``target_camera``."""
    _check_camera(camera, fn)
    _check_camera(target_camera, fn, "target_camera")
    if camera.has_distortion:
        from ..errors import InexactDistortionError

        raise InexactDistortionError(f"{fn}: the sample's camera has distortion; undistort it first")
    if not target_camera.has_distortion:
        return _matrix_step(camera.K, target_camera.K, target_camera.size)
    return RemapStep(camera, target_camera, target_camera.size)


def _sample_camera(sample: Mapping, fn: str):
    if not isinstance(sample, Mapping):
        raise TypeError(f"{fn}: sample must be a dict, got {type(sample).__name__}")
    if "camera" not in sample:
        raise ValueError(f"{fn}: the sample has no 'camera'")
    return _check_camera(sample["camera"], fn, "sample['camera']")


def undistort(sample: Mapping, new_camera=None, alpha: float = 0.0, new_size: Sequence[int] | None = None, *,
              options: KernelOptions | None = None, kinds: Mapping[str, str] | None = None) -> dict:
    """Return the sample seen by a distortion-free pinhole camera (image resampled once).

    Output pixel ``p`` samples the source at ``K d(K_new^-1 p)`` (``cv2.initUndistortRectifyMap``
    with ``R = I``); keypoints move to ``K_new u(K^-1 p)`` with ``u`` the iterative undistortion.

    Args:
        sample: dict with a ``"camera"`` (see :mod:`camwarp.transforms.kernels` for the keys).
        new_camera: the target pinhole camera; default :func:`optimal_new_camera` ``(alpha, new_size)``.
        alpha: 0 (only valid pixels) .. 1 (all source pixels), as OpenCV.
        new_size: output size ``(W', H')``; default the camera's.
        options, kinds: kernel options and kinds of extra keys.

    Returns:
        A new sample; its camera has no distortion and ``R`` (if present) is unchanged.

    Raises:
        TypeError, ValueError: no camera, a distorted ``new_camera``, bad alpha or size.
    """
    step = undistort_step(_sample_camera(sample, "undistort"), new_camera, alpha, new_size)
    return apply(sample, step, options, kinds)


def distort(sample: Mapping, target_camera, *, options: KernelOptions | None = None,
            kinds: Mapping[str, str] | None = None) -> dict:
    """Return a distortion-free sample rendered into the distorted ``target_camera`` (inverse of :func:`undistort`).

    Output pixel ``p`` samples the source at ``K u(K_t^-1 p)``; keypoints go to ``K_t d(K^-1 p)``.

    Raises:
        InexactDistortionError: the sample's camera has distortion.
    """
    step = distort_step(_sample_camera(sample, "distort"), target_camera)
    return apply(sample, step, options, kinds)


class Undistort(Transform):
    """Op version of :func:`undistort` (for ``Compose``): ``Undistort(alpha=0.0, new_size=None, new_camera=None)``."""

    needs_camera = True

    def __init__(self, alpha: float = 0.0, new_size: Sequence[int] | None = None, new_camera=None, **kw) -> None:
        super().__init__(**kw)
        self.alpha = _checks.check_finite_number(alpha, "Undistort", "alpha")
        if not 0 <= self.alpha <= 1:
            raise ValueError(f"Undistort: alpha must be in [0, 1], got {alpha!r}")
        self.new_size = None if new_size is None else _checks.check_size(new_size, "Undistort", "new_size")
        self.new_camera = None if new_camera is None else _check_camera(new_camera, "Undistort", "new_camera")

    def get_step(self, info: SampleInfo) -> Step:
        if info.camera is None:
            raise ValueError("Undistort: the sample has no 'camera'")
        return undistort_step(info.camera, self.new_camera, self.alpha, self.new_size, "Undistort")

    def _repr_args(self) -> str:
        return f"alpha={self.alpha}" + (f", new_size={self.new_size}" if self.new_size else "")


class Distort(Transform):
    """Op version of :func:`distort`: render the (distortion-free) sample into ``target_camera``."""

    needs_camera = True

    def __init__(self, target_camera, **kw) -> None:
        super().__init__(**kw)
        self.target_camera = _check_camera(target_camera, "Distort", "target_camera")

    def get_step(self, info: SampleInfo) -> Step:
        if info.camera is None:
            raise ValueError("Distort: the sample has no 'camera'")
        return distort_step(info.camera, self.target_camera, "Distort")
