"""Deterministic sample ops: each builds ONE src->dst pixel matrix and the kernels move every entry.

``Crop``, ``CenterCrop``, ``Resize`` (to a size, shorter or longer side), ``Pad``, ``HFlip``,
``VFlip``, ``Rot90``, ``Affine``, ``Perspective`` and ``Warp`` (any user matrix). Each op has
``get_step(info)`` (the matrix and output size for a sample of that size: pure geometry from
:mod:`camwarp.geometry`, no image touched) and ``__call__(sample)`` (the step applied through the
kind table of :mod:`camwarp.transforms.kernels`). Signatures follow the ``Camera`` methods
(``Crop(x0, y0, w, h)``, ``Resize(w, h)``...); sizes are ``(W, H)``; conventions in
``docs/conventions.md``, details in ``docs/transforms.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .. import _checks
from ..geometry import (affine_matrix, crop_matrix, hflip_matrix, is_affine, pad_matrix, perspective_matrix,
                        resize_matrix, rot90_matrix, vflip_matrix)
from .kernels import KernelOptions, apply, resolve_kinds, sample_batch_shape, sample_device, sample_size
from .steps import MatrixStep, Step

__all__ = ["SampleInfo", "Transform", "Crop", "CenterCrop", "Resize", "Pad", "HFlip", "VFlip", "Rot90",
           "Affine", "Perspective", "Warp"]


@dataclass(frozen=True)
class SampleInfo:
    """What an op needs to know about a sample to build its step (metadata only, no sync).

    Attributes:
        size: image size ``(W, H)``.
        batch_shape: the sample's batch dims (random ops draw one parameter set per item).
        device: where the matrices are built; None (the default) means the CPU, and is resolved
            to ``torch.device("cpu")`` on construction, so ``info.device`` is always a device.
        camera: the sample's camera, or None (needed by camera-dependent ops).
    """

    size: tuple[int, int]
    batch_shape: torch.Size = torch.Size()
    device: torch.device | None = None
    camera: object = None

    def __post_init__(self) -> None:
        if self.device is None:
            object.__setattr__(self, "device", torch.device("cpu"))

    @classmethod
    def of(cls, sample: Mapping, kinds: Mapping[str, str] | None = None, *, fn: str = "Transform") -> SampleInfo:
        """Read the size, batch shape, device and camera of ``sample`` (sizes must agree).

        Args:
            sample: the sample dict.
            kinds: kinds of extra sample keys.
            fn: name used in error messages (for callers inside camwarp).
        """
        resolved = resolve_kinds(sample, kinds, fn)
        cams = [sample[k] for k, kind in resolved.items() if kind == "camera"]
        return cls(sample_size(sample, kinds, fn=fn), sample_batch_shape(sample, kinds), sample_device(sample),
                   cams[0] if cams else None)

    @property
    def dtype(self) -> torch.dtype:
        """float64 for exact geometry (float32 where the device has no float64)."""
        return torch.float32 if self.device.type == "mps" else torch.float64


class Transform:
    """Base class of the sample ops. Subclasses implement ``get_step(info) -> Step``.

    Args (of every op, keyword-only):
        options: :class:`KernelOptions` (interpolation, padding, antialias, depth mode).
        kinds: kinds of extra sample keys, e.g. ``{"mask_person": "mask"}``.
    """

    needs_camera = False  # get_step reads info.camera

    def __init__(self, *, options: KernelOptions | None = None, kinds: Mapping[str, str] | None = None) -> None:
        if options is not None and not isinstance(options, KernelOptions):
            raise TypeError(f"{type(self).__name__}: options must be a KernelOptions, got {type(options).__name__}")
        self.options = options or KernelOptions()
        self.kinds = dict(kinds or {})

    def get_step(self, info: SampleInfo) -> Step:
        """Return this op's step for a sample described by ``info`` (pure geometry, no image touched).

        The step holds the src->dst pixel matrix (OpenCV centre frame) built in ``info.dtype`` on
        ``info.device`` (or a remap) and the output size ``(W', H')``; random ops draw their
        parameters here, one set per item of ``info.batch_shape``.

        Args:
            info: the sample's size, batch shape, device and camera (:meth:`SampleInfo.of`).

        Returns:
            A :class:`Step` (a :class:`MatrixStep` for matrix ops).

        Raises:
            ValueError: the op cannot apply to such a sample (e.g. it needs a camera and has none).
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement get_step")

    def __call__(self, sample: Mapping) -> dict:
        """Return a new sample with every entry moved by this op's step (``sample`` is not modified)."""
        info = SampleInfo.of(sample, self.kinds, fn=type(self).__name__)
        return apply(sample, self.get_step(info), self.options, self.kinds)

    def _repr_args(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._repr_args()})"


def _int(x: object, fn: str, name: str) -> int:
    return _checks.check_int(x, fn, name)


class Crop(Transform):
    """Crop ``w x h`` pixels whose top-left pixel is source pixel ``(x0, y0)``: ``u' = u - x0``.

    Real offsets are exact (sub-pixel or outside the image: sampled, zero-filled).

    Example:
        >>> Crop(2, 1, 3, 2)({"image": torch.arange(20.0).reshape(1, 4, 5)})["image"]
        tensor([[[ 7.,  8.,  9.],
                 [12., 13., 14.]]])
    """

    def __init__(self, x0: float, y0: float, w: int, h: int, **kw) -> None:
        super().__init__(**kw)
        self.x0 = _checks.check_finite_number(x0, "Crop", "x0")
        self.y0 = _checks.check_finite_number(y0, "Crop", "y0")
        self.size = _checks.check_size((w, h), "Crop", "(w, h)")

    def get_step(self, info: SampleInfo) -> Step:
        return MatrixStep(crop_matrix(self.x0, self.y0, dtype=info.dtype, device=info.device), self.size)

    def _repr_args(self) -> str:
        return f"x0={self.x0}, y0={self.y0}, w={self.size[0]}, h={self.size[1]}"


class CenterCrop(Transform):
    """Crop the centred ``w x h`` pixels, offsets ``((W - w) // 2, (H - h) // 2)`` (as ``Camera.center_crop``).

    A crop larger than the image pads with zeros (negative offsets).
    """

    def __init__(self, w: int, h: int, **kw) -> None:
        super().__init__(**kw)
        self.size = _checks.check_size((w, h), "CenterCrop", "(w, h)")

    def get_step(self, info: SampleInfo) -> Step:
        (W, H), (w, h) = info.size, self.size
        return MatrixStep(crop_matrix((W - w) // 2, (H - h) // 2, dtype=info.dtype, device=info.device), self.size)

    def _repr_args(self) -> str:
        return f"w={self.size[0]}, h={self.size[1]}"


class Resize(Transform):
    """Resize edges to edges (as ``cv2.resize``): ``u' = (W'/W)(u + 0.5) - 0.5``, likewise ``v``.

    Give the size ``(w, h)``, or ``shorter=s`` / ``longer=s``: that side becomes ``s`` and the
    other ``int(s * other / side)`` (truncated, as torchvision), each axis scaled exactly.

    Args:
        w, h: output width and height (both or neither).
        shorter: length of the output's shorter side.
        longer: length of the output's longer side.

    Example:
        >>> Resize(shorter=2).get_step(SampleInfo((8, 4))).size
        (4, 2)
    """

    def __init__(self, w: int | None = None, h: int | None = None, *, shorter: int | None = None,
                 longer: int | None = None, **kw) -> None:
        super().__init__(**kw)
        given = (w is not None or h is not None) + (shorter is not None) + (longer is not None)
        if given != 1 or (w is None) != (h is None):
            raise ValueError("Resize: give exactly one of (w, h), shorter= or longer=")
        self.out = None if w is None else _checks.check_size((w, h), "Resize", "(w, h)")
        self.shorter = None if shorter is None else _checks.check_size((shorter,), "Resize", "shorter", (1,))[0]
        self.longer = None if longer is None else _checks.check_size((longer,), "Resize", "longer", (1,))[0]

    def out_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """Return the output size ``(W', H')`` for an input of ``size`` ``(W, H)``."""
        if self.out is not None:
            return self.out
        W, H = size
        if self.shorter is not None:
            side, width_is_it = self.shorter, W <= H
        else:
            side, width_is_it = self.longer, W >= H
        return (side, max(1, int(side * H / W))) if width_is_it else (max(1, int(side * W / H)), side)

    def get_step(self, info: SampleInfo) -> Step:
        out = self.out_size(info.size)
        return MatrixStep(resize_matrix(info.size, out, dtype=info.dtype, device=info.device), out)

    def _repr_args(self) -> str:
        if self.out is not None:
            return f"w={self.out[0]}, h={self.out[1]}"
        return f"shorter={self.shorter}" if self.shorter is not None else f"longer={self.longer}"


class Pad(Transform):
    """Pad by whole pixels (zeros, or ``options.padding_mode`` for images): ``u' = u + left``.

    Negative values crop (as ``Camera.pad``).
    """

    def __init__(self, left: int, top: int, right: int = 0, bottom: int = 0, **kw) -> None:
        super().__init__(**kw)
        names = ("left", "top", "right", "bottom")
        self.pads = tuple(_int(v, "Pad", n) for v, n in zip((left, top, right, bottom), names))

    def get_step(self, info: SampleInfo) -> Step:
        left, top, right, bottom = self.pads
        size = _checks.check_size((info.size[0] + left + right, info.size[1] + top + bottom), "Pad", "padded size")
        return MatrixStep(pad_matrix(left, top, dtype=info.dtype, device=info.device), size)

    def _repr_args(self) -> str:
        return "left={}, top={}, right={}, bottom={}".format(*self.pads)


class HFlip(Transform):
    """Flip left-right: ``u' = W - 1 - u`` (the camera gains ``R = diag(-1, 1, 1)``)."""

    def get_step(self, info: SampleInfo) -> Step:
        return MatrixStep(hflip_matrix(info.size[0], dtype=info.dtype, device=info.device), info.size)


class VFlip(Transform):
    """Flip top-bottom: ``v' = H - 1 - v`` (the camera gains ``R = diag(1, -1, 1)``)."""

    def get_step(self, info: SampleInfo) -> Step:
        return MatrixStep(vflip_matrix(info.size[1], dtype=info.dtype, device=info.device), info.size)


class Rot90(Transform):
    """Turn by ``k`` quarter turns counter-clockwise, as ``torch.rot90(x, k, (-2, -1))``; odd ``k`` swaps W, H."""

    def __init__(self, k: int = 1, **kw) -> None:
        super().__init__(**kw)
        self.k = _int(k, "Rot90", "k")

    def get_step(self, info: SampleInfo) -> Step:
        W, H = info.size
        size = (H, W) if self.k % 2 else (W, H)
        return MatrixStep(rot90_matrix(self.k, info.size, dtype=info.dtype, device=info.device), size)

    def _repr_args(self) -> str:
        return f"k={self.k}"


class Affine(Transform):
    """Rotate/scale/shear about ``center`` then translate (torchvision's ``affine``, src->dst).

    ``A = T(center + translate) R(angle) Sh(shear) S(scale) T(-center)``
    (:func:`camwarp.geometry.affine_matrix`); ``angle`` and ``shear`` in degrees,
    counter-clockwise on screen.

    Args:
        angle: degrees. translate: ``(tx, ty)`` pixels. scale: factor. shear: ``(sx, sy)`` degrees.
        center: pixel ``(cx, cy)``; default the image centre ``((W - 1) / 2, (H - 1) / 2)``.
        size: output size ``(W', H')``; default the input size.
    """

    def __init__(self, angle: float = 0.0, translate: Sequence[float] = (0.0, 0.0), scale: float = 1.0,
                 shear: Sequence[float] = (0.0, 0.0), center: Sequence[float] | None = None,
                 size: Sequence[int] | None = None, **kw) -> None:
        super().__init__(**kw)
        fn = "Affine"
        self.angle = _checks.check_finite_number(angle, fn, "angle")
        self.scale = _checks.check_finite_number(scale, fn, "scale", positive=True)
        self.translate = _pair(translate, fn, "translate")
        self.shear = _pair(shear, fn, "shear")
        self.center = None if center is None else _pair(center, fn, "center")
        self.size = None if size is None else _checks.check_size(size, fn)

    def get_step(self, info: SampleInfo) -> Step:
        W, H = info.size
        center = self.center or ((W - 1) / 2, (H - 1) / 2)
        A = affine_matrix(self.angle, self.translate, self.scale, self.shear, center, dtype=info.dtype,
                          device=info.device)
        return MatrixStep(A, self.size or info.size)

    def _repr_args(self) -> str:
        return (f"angle={self.angle}, translate={self.translate}, scale={self.scale}, shear={self.shear}, "
                f"center={self.center}, size={self.size}")


def _pair(x: object, fn: str, name: str) -> tuple[float, float]:
    if isinstance(x, (str, Tensor)) or not isinstance(x, Sequence) or len(x) != 2:
        raise TypeError(f"{fn}: {name} must be a pair of numbers, got {x!r}")
    return tuple(_checks.check_finite_number(v, fn, name) for v in x)  # type: ignore[return-value]


class Warp(Transform):
    """Apply a user's src->dst pixel matrix ``A`` ``(..., 3, 3)`` (affine or projective).

    Whether ``A`` is affine is read once here (``A`` is a constant), so calls never sync.

    Args:
        matrix: ``(..., 3, 3)`` (or ``(..., 2, 3)``) src->dst pixel matrix; leading dims are batch dims.
        size: output size ``(W', H')``; default the input size.
    """

    def __init__(self, matrix: Tensor, size: Sequence[int] | None = None, **kw) -> None:
        super().__init__(**kw)
        fn = type(self).__name__
        _checks.check_float(_checks.check_shape(matrix, fn, "matrix", "... 2|3 3"), fn, "matrix")
        if matrix.shape[-2] == 2:
            last = torch.tensor([0.0, 0.0, 1.0], dtype=matrix.dtype, device=matrix.device)
            matrix = torch.cat([matrix, last.expand(*matrix.shape[:-2], 1, 3)], dim=-2)
        self.matrix = matrix
        self.affine = bool(is_affine(matrix).all())
        self.size = None if size is None else _checks.check_size(size, fn)

    def get_step(self, info: SampleInfo) -> Step:
        return MatrixStep(self.matrix.to(info.device, torch.promote_types(self.matrix.dtype, info.dtype)),
                          self.size or info.size, self.affine)

    def _repr_args(self) -> str:
        return f"matrix={tuple(self.matrix.shape)}, size={self.size}"


class Perspective(Warp):
    """Apply the homography mapping 4 source points onto 4 destination points (``cv2.getPerspectiveTransform``).

    Args:
        src, dst: ``(..., 4, 2)`` pixel coordinates (sequences or tensors).
        size: output size ``(W', H')``; default the input size.

    A camera with distortion cannot follow a projective map: undistort first
    (``InexactDistortionError`` otherwise).
    """

    def __init__(self, src: Sequence | Tensor, dst: Sequence | Tensor, size: Sequence[int] | None = None,
                 **kw) -> None:
        super().__init__(perspective_matrix(src, dst, dtype=torch.float64), size, **kw)
