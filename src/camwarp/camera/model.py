"""The :class:`Camera`: an immutable batched pinhole camera with OpenCV or fisheye distortion.

Intrinsics live in OpenCV's centre frame (the centre of the top-left pixel is ``(0, 0)``); a
principal point given in COLMAP's corner frame (top-left pixel centre at ``(0.5, 0.5)``) is
converted once, at construction, and converted back only when asked
(:meth:`Camera.principal_point`, :meth:`Camera.K_in`). Image ops live in
:class:`camwarp.camera.update.CameraOps`. See ``docs/camera.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .. import _checks
from . import distortion as _dist
from .update import CameraOps

__all__ = ["Camera", "CONVENTIONS"]

#: Pixel frames a principal point can be given or read in, and their offset from OpenCV's frame.
CONVENTIONS: dict[str, float] = {"opencv": 0.0, "colmap": 0.5}

_PARAMS = ("fx", "fy", "cx", "cy", "skew")


def _offset(convention: object, fn: str) -> float:
    return CONVENTIONS[_checks.check_choice(convention, fn, "convention", CONVENTIONS)]


class Camera(CameraOps):
    """An immutable batched pinhole camera ``K = [[fx, skew, cx], [0, fy, cy], [0, 0, 1]]`` plus distortion.

    A camera-frame point ``X = (X, Y, Z)`` projects to ``x = (X/Z, Y/Z)``, then ``x' = d(x)``
    (the distortion model), then ``(u, v) = (fx x' + skew y' + cx, fy y' + cy)``, pixels in
    OpenCV's centre frame — exactly ``cv2.projectPoints`` (``cv2.fisheye.projectPoints`` for
    ``model="fisheye"``) with ``rvec = tvec = 0``.

    Args:
        fx, fy: focal lengths in pixels, float or tensor ``(...)``; finite and positive.
        cx, cy: principal point in pixels, in the frame named by ``convention``.
        width, height: image size in pixels, positive Python ints shared by the batch.
        skew: ``K[0, 1]`` in pixels, default 0.
        dist: None or ``(..., n)`` coefficients: OpenCV order ``(k1, k2, p1, p2, k3, k4, k5, k6)``
            (any prefix, ``n <= 8``) for ``model="opencv"``; ``(k1, k2, k3, k4)`` (any prefix) for
            ``model="fisheye"``. Stored at the length given (``n`` may be 0).
        model: ``"opencv"`` (rational + tangential) or ``"fisheye"`` (equidistant).
        convention: frame of ``cx, cy``: ``"opencv"`` (default) or ``"colmap"`` (``cx - 0.5`` inside).

    All numbers broadcast to one batch shape (:attr:`batch_shape`) and are stored as tensors of one
    float dtype and device: float32 on the CPU unless tensors are given (then their promoted dtype
    and their device). Values are checked once, here.

    Raises:
        TypeError: a non-number field, non-int size, or non-float tensor.
        ValueError: a non-finite field, ``fx``/``fy``/size not positive, ``dist`` too long for the
            model, unknown ``model``/``convention``, or batch shapes that do not broadcast.

    Example:
        >>> cam = Camera(2220.0, 2220.0, 1404.0, 1064.0, 2880, 2160, dist=[-0.00344584, 0.120934])
        >>> new = cam.center_crop(1920, 1080).resize(640, 360)
        >>> new.fx.item(), round(new.cx.item(), 3), round(new.principal_point("colmap")[0].item(), 3)
        (740.0, 307.667, 308.167)
    """

    __slots__ = ("fx", "fy", "cx", "cy", "skew", "dist", "width", "height", "model")

    fx: Tensor
    fy: Tensor
    cx: Tensor
    cy: Tensor
    skew: Tensor
    dist: Tensor
    width: int
    height: int
    model: str

    def __init__(self, fx: float | Tensor, fy: float | Tensor, cx: float | Tensor, cy: float | Tensor,
                 width: int, height: int, skew: float | Tensor = 0.0, dist: Sequence[float] | Tensor | None = None,
                 model: str = "opencv", convention: str = "opencv") -> None:
        fn = "Camera"
        model = _checks.check_choice(model, fn, "model", _dist.DIST_MODELS)
        offset = _offset(convention, fn)
        width, height = _checks.check_size((width, height), fn, "(width, height)")
        values = {"fx": fx, "fy": fy, "cx": cx, "cy": cy, "skew": skew}
        dtype, device = _checks.common_float(*values.values(), dist)
        params = {}
        for name, v in values.items():
            t = _checks.as_tensor(v, fn, name, dtype, device)
            params[name] = _checks.check_float(t, fn, name)
        if dist is None:
            dist_t = torch.zeros(0, dtype=dtype, device=device)
        else:
            dist_t = _checks.check_float(_checks.as_tensor(dist, fn, "dist", dtype, device), fn, "dist")
            _checks.check_shape(dist_t, fn, "dist", "... n")
        n_max = _dist.DIST_MODELS[model]
        if dist_t.shape[-1] > n_max:
            raise ValueError(f"{fn}: dist has {dist_t.shape[-1]} coefficients, but model {model!r} takes at "
                             f"most {n_max} ({_dist.DIST_NAMES[model]})")
        batch = _checks.broadcast_batch(fn, **{k: v.shape for k, v in params.items()}, dist=dist_t.shape[:-1])
        for name, t in params.items():
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"{fn}: {name} must be finite, got {t.tolist()}")
        if not bool(torch.isfinite(dist_t).all()):
            raise ValueError(f"{fn}: dist must be finite, got {dist_t.tolist()}")
        for name in ("fx", "fy"):
            if not bool((params[name] > 0).all()):
                raise ValueError(f"{fn}: {name} must be positive, got {params[name].tolist()}")
        if offset:
            params["cx"], params["cy"] = params["cx"] - offset, params["cy"] - offset
        self._set(**{k: v.expand(batch) for k, v in params.items()},
                  dist=dist_t.expand(*batch, dist_t.shape[-1]), width=width, height=height, model=model)

    def _set(self, **fields: Any) -> None:
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    @classmethod
    def _new(cls, fx: Tensor, fy: Tensor, cx: Tensor, cy: Tensor, skew: Tensor, dist: Tensor, width: int,
             height: int, model: str) -> Camera:
        """Build without checks from tensors already in the OpenCV frame (used by the camera ops)."""
        batch = torch.broadcast_shapes(fx.shape, fy.shape, cx.shape, cy.shape, skew.shape, dist.shape[:-1])
        cam = cls.__new__(cls)
        cam._set(fx=fx.expand(batch), fy=fy.expand(batch), cx=cx.expand(batch), cy=cy.expand(batch),
                 skew=skew.expand(batch), dist=dist.expand(*batch, dist.shape[-1]), width=width, height=height,
                 model=model)
        return cam

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Camera is immutable: use cam.replace({name}=...) to get a new camera")

    def __reduce__(self) -> tuple:
        # pickle / copy / DataLoader workers rebuild through _new (plain setattr is refused)
        fields = tuple(getattr(self, k) for k in (*_PARAMS, "dist", "width", "height", "model"))
        return (type(self)._new, fields)

    @classmethod
    def from_K(cls, K: Tensor, width: int, height: int, dist: Sequence[float] | Tensor | None = None,
               model: str = "opencv", convention: str = "opencv") -> Camera:
        """Build a camera from an intrinsic matrix ``K`` ``(..., 3, 3)`` whose principal point is in ``convention``.

        ``K`` must be upper triangular; it is divided by ``K[2, 2]`` first. Other arguments as in
        :class:`Camera`.

        Raises:
            TypeError, ValueError: as :class:`Camera`, or ``K`` of the wrong shape or not upper triangular.

        Example:
            >>> Camera.from_K(torch.tensor([[500.0, 0, 319.5], [0, 500, 239.5], [0, 0, 1]]), 640, 480).cx
            tensor(319.5000)
        """
        fn = "Camera.from_K"
        K = _checks.check_float(_checks.as_tensor(K, fn, "K"), fn, "K")
        _checks.check_shape(K, fn, "K", "... 3 3")
        if not bool((K[..., 2, 2] != 0).all()):
            raise ValueError(f"{fn}: K[2, 2] must be non-zero, got {K[..., 2, 2].tolist()}")
        K = K / K[..., 2:, 2:]
        lower = torch.stack([K[..., 1, 0], K[..., 2, 0], K[..., 2, 1]], dim=-1).abs()
        scale = K[..., :2, :].abs().amax(dim=(-2, -1), keepdim=True).squeeze(-1)
        if not bool((lower <= 1e-6 * scale).all()):
            raise ValueError(f"{fn}: K must be upper triangular [[fx, s, cx], [0, fy, cy], [0, 0, 1]], got "
                             f"{K.tolist()}")
        return cls(K[..., 0, 0], K[..., 1, 1], K[..., 0, 2], K[..., 1, 2], width, height, skew=K[..., 0, 1],
                   dist=dist, model=model, convention=convention)

    # ----- fields derived from the stored ones -------------------------------------------------

    @property
    def batch_shape(self) -> torch.Size:
        """The batch shape shared by every field (``()`` for a single camera)."""
        return self.fx.shape

    @property
    def dtype(self) -> torch.dtype:
        """The floating dtype of the camera's parameters (all of them share it; change it with :meth:`to`)."""
        return self.fx.dtype

    @property
    def device(self) -> torch.device:
        """The device of the camera's parameters (all of them share it; move them with :meth:`to`)."""
        return self.fx.device

    @property
    def size(self) -> tuple[int, int]:
        """The image size ``(W, H)``."""
        return (self.width, self.height)

    @property
    def K(self) -> Tensor:
        """The intrinsic matrix ``(..., 3, 3)`` in OpenCV's centre frame (differentiable in the fields)."""
        return self.K_in("opencv")

    def K_in(self, convention: str = "opencv") -> Tensor:
        """Return ``K`` ``(..., 3, 3)`` with the principal point in ``convention`` (``"opencv"`` or ``"colmap"``).

        Example:
            >>> Camera(100.0, 100.0, 49.5, 49.5, 100, 100).K_in("colmap")[:2, 2]
            tensor([50., 50.])
        """
        cx, cy = self.principal_point(convention).unbind(-1)
        zero, one = torch.zeros_like(self.fx), torch.ones_like(self.fx)
        rows = [[self.fx, self.skew, cx], [zero, self.fy, cy], [zero, zero, one]]
        return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)

    def principal_point(self, convention: str = "opencv") -> Tensor:
        """Return ``(cx, cy)`` ``(..., 2)`` in ``convention``: OpenCV centre frame, or ``"colmap"`` (+0.5)."""
        offset = _offset(convention, "Camera.principal_point")
        return torch.stack([self.cx, self.cy], dim=-1) + offset

    @property
    def has_distortion(self) -> bool:
        """Whether the projection is not a plain pinhole: any coefficient non-zero (reads the values: one
        sync), or the fisheye model (its ``atan`` mapping distorts even with zero coefficients)."""
        return self.model == "fisheye" or (self.dist.shape[-1] > 0 and bool((self.dist != 0).any()))

    # ----- copies --------------------------------------------------------------------------------

    def replace(self, **fields: Any) -> Camera:
        """Return a new camera with some constructor arguments replaced (checked as in :class:`Camera`).

        ``cx``/``cy`` given here are read in ``convention`` (default ``"opencv"``).

        Example:
            >>> Camera(100.0, 100.0, 50.0, 50.0, 100, 100).replace(fx=200.0).fx
            tensor(200.)
        """
        known = (*_PARAMS, "dist", "width", "height", "model", "convention")
        for name in fields:
            _checks.check_choice(name, "Camera.replace", "field", known)
        args = {name: getattr(self, name) for name in (*_PARAMS, "dist", "width", "height", "model")}
        if "convention" in fields:  # the kept cx, cy are read in that convention too
            offset = _offset(fields["convention"], "Camera.replace")
            args["cx"], args["cy"] = self.cx + offset, self.cy + offset
        if "model" in fields and "dist" not in fields:
            args["dist"] = None if self.dist.shape[-1] == 0 else self.dist
        args.update(fields)
        return Camera(**args)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Camera:
        """Return the camera with every field on ``device`` and/or of float ``dtype``."""
        if dtype is not None and not dtype.is_floating_point:
            raise TypeError(f"Camera.to: dtype must be a floating point dtype, got {dtype}")
        moved = {k: getattr(self, k).to(device=device, dtype=dtype) for k in (*_PARAMS, "dist")}
        return Camera._new(**moved, width=self.width, height=self.height, model=self.model)

    def __getitem__(self, idx: Any) -> Camera:
        """Index the batch like a tensor of shape :attr:`batch_shape` (ints, slices, masks, ``...``)."""
        if not self.batch_shape:
            raise IndexError("Camera: cannot index a camera without batch dimensions")
        flat = torch.arange(self.fx.numel(), device=self.device).reshape(self.batch_shape)[idx]
        picked = {k: getattr(self, k).reshape(-1)[flat] for k in _PARAMS}
        dist = self.dist.reshape(self.fx.numel(), self.dist.shape[-1])[flat]
        return Camera._new(**picked, dist=dist, width=self.width, height=self.height, model=self.model)

    def __repr__(self) -> str:
        if self.fx.numel() <= 4:
            vals = ", ".join(f"{k}={getattr(self, k).tolist()}" for k in (*_PARAMS, "dist"))
        else:
            vals = f"batch_shape={tuple(self.batch_shape)}, n_dist={self.dist.shape[-1]}"
        return (f"Camera({vals}, size={self.size}, model={self.model!r}, dtype={self.dtype}, "
                f"device={self.device})")

    # ----- projection ----------------------------------------------------------------------------

    def _params(self, fn: str, x: Tensor, name: str, core: int) -> tuple[torch.Size, Tensor, dict[str, Tensor]]:
        """Check ``x`` against the camera: same device, batch dims broadcast; fields as ``(..., 1)``."""
        _checks.check_float(x, fn, name)
        if x.device != self.device:
            raise ValueError(f"{fn}: {name} is on {x.device} but the camera is on {self.device}; "
                             f"use cam.to(device)")
        batch = _checks.broadcast_batch(fn, camera=self.batch_shape, **{name: x.shape[:-core]})
        dtype = torch.promote_types(x.dtype, self.dtype)
        p = {k: getattr(self, k).to(dtype)[..., None] for k in _PARAMS}
        return batch, self.dist.to(dtype), p

    def distort(self, xy: Tensor) -> Tensor:
        """Apply the distortion model to normalized coordinates ``xy`` ``(..., N, 2)`` -> ``(..., N, 2)``.

        See :func:`camwarp.camera.distortion.distort`.
        """
        _checks.check_shape(_checks.check_tensor(xy, "Camera.distort", "xy"), "Camera.distort", "xy", "... N 2")
        _, dist, _ = self._params("Camera.distort", xy, "xy", 2)
        return _dist.distort(xy, dist, self.model)

    def undistort(self, xy: Tensor, max_iter: int = _dist.MAX_ITER) -> Tensor:
        """Invert the distortion model on normalized ``xy`` ``(..., N, 2)`` by Newton's method.

        See :func:`camwarp.camera.distortion.undistort` for the accuracy, domain and ``max_iter``.
        """
        _checks.check_shape(_checks.check_tensor(xy, "Camera.undistort", "xy"), "Camera.undistort", "xy", "... N 2")
        _, dist, _ = self._params("Camera.undistort", xy, "xy", 2)
        return _dist.undistort(xy, dist, self.model, max_iter)

    def project(self, X: Tensor) -> Tensor:
        """Project camera-frame points ``X`` ``(..., N, 3)`` to pixels ``(..., N, 2)`` (OpenCV centre frame).

        ``u = fx x' + skew y' + cx``, ``v = fy y' + cy`` with ``(x', y') = d(X/Z, Y/Z)``; the same as
        ``cv2.projectPoints`` / ``cv2.fisheye.projectPoints`` with zero rvec and tvec. Batch dims of
        ``X`` and the camera broadcast.

        Example:
            >>> Camera(100.0, 100.0, 50.0, 40.0, 100, 80).project(torch.tensor([[0.1, -0.2, 2.0]]))
            tensor([[55., 30.]])
        """
        fn = "Camera.project"
        _checks.check_shape(_checks.check_tensor(X, fn, "X"), fn, "X", "... N 3")
        _, dist, p = self._params(fn, X, "X", 2)
        xy = _dist.distort(X[..., :2] / X[..., 2:], dist, self.model)
        x, y = xy.unbind(-1)
        return torch.stack([p["fx"] * x + p["skew"] * y + p["cx"], p["fy"] * y + p["cy"]], dim=-1)

    def undistort_pixels(self, uv: Tensor, max_iter: int = _dist.MAX_ITER) -> Tensor:
        """Return the undistorted normalized coordinates ``(..., N, 2)`` of pixels ``uv`` ``(..., N, 2)``.

        ``K^-1 (u, v, 1)`` followed by :meth:`undistort` (like ``cv2.undistortPoints`` without ``P``).
        """
        fn = "Camera.undistort_pixels"
        _checks.check_shape(_checks.check_tensor(uv, fn, "uv"), fn, "uv", "... N 2")
        _, dist, p = self._params(fn, uv, "uv", 2)
        y = (uv[..., 1] - p["cy"]) / p["fy"]
        x = (uv[..., 0] - p["cx"] - p["skew"] * y) / p["fx"]
        return _dist.undistort(torch.stack([x, y], dim=-1), dist, self.model, max_iter)

    def unproject(self, uv: Tensor, depth: Tensor, max_iter: int = _dist.MAX_ITER) -> Tensor:
        """Lift pixels ``uv`` ``(..., N, 2)`` with depths ``depth`` ``(..., N)`` to camera-frame points ``(..., N, 3)``.

        ``X = depth * (x, y, 1)`` with ``(x, y)`` = :meth:`undistort_pixels` ``(uv)``; ``Z = depth``.

        Example:
            >>> Camera(100.0, 100.0, 50.0, 40.0, 100, 80).unproject(torch.tensor([[55.0, 30.0]]), torch.tensor([2.0]))
            tensor([[ 0.1000, -0.2000,  2.0000]])
        """
        fn = "Camera.unproject"
        _checks.check_shape(_checks.check_tensor(depth, fn, "depth"), fn, "depth", "... N")
        _checks.check_float(depth, fn, "depth")
        _checks.check_shape(_checks.check_tensor(uv, fn, "uv"), fn, "uv", "... N 2")
        if depth.shape[-1] != uv.shape[-2]:
            raise ValueError(f"{fn}: depth must have shape (..., {uv.shape[-2]}) to match uv "
                             f"{tuple(uv.shape)}, got {tuple(depth.shape)}")
        _checks.broadcast_batch(fn, uv=uv.shape[:-2], depth=depth.shape[:-1])
        xy = self.undistort_pixels(uv, max_iter)
        d = depth[..., None].to(xy.dtype)
        return torch.cat([xy * d, d], dim=-1)
