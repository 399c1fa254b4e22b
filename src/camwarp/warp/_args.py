"""Argument checks of the public warps: metadata only, cheap enough for a per-sample call.

Every check names the public function and the argument (``warp_affine: A must have shape ...``).
Values (finite, non-singular, affine last row, positive box sizes) are checked by the rule of
:func:`camwarp._checks.values_readable`: raised where reading them is free, NaN output items
elsewhere; the checks of matrices happen where the matrix is inverted (the CPU backend's
compiled preparation, or :func:`camwarp.geometry.ops.checked_inverse`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch
from torch import Tensor

from .. import _checks

__all__ = ["MODES", "MODES_3D", "PADDING_MODES", "CROP_MODES", "check_data", "check_options", "check_matrix",
           "check_box", "box_numbers", "bad_boxes", "check_output", "to_float", "from_float"]

MODES = ("bilinear", "nearest", "bicubic")
MODES_3D = ("bilinear", "nearest")
PADDING_MODES = ("zeros", "border", "reflection")
CROP_MODES = MODES + ("area",)
_LOW = (torch.float16, torch.bfloat16)


def check_data(x: object, fn: str, name: str, dims: int) -> Tensor:
    """An image/volume ``(..., C, H, W)`` (``(..., C, D, H, W)``): float or integer, non-empty spatial size."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim < dims + 1:
        core = ", ".join("CHW" if dims == 2 else "CDHW")
        raise ValueError(f"{fn}: {name} must have shape (..., {core}) with a channel dim, got {tuple(x.shape)}")
    if x.dtype == torch.bool or x.is_complex():
        raise TypeError(f"{fn}: {name} must be a real float or integer tensor, got dtype {x.dtype}")
    if 0 in x.shape[-dims:]:
        raise ValueError(f"{fn}: {name} must have a non-empty spatial size, got {tuple(x.shape)}")
    return x


def check_options(fn: str, mode: object, padding_mode: object, antialias: object, modes: Sequence[str]) -> None:
    if mode not in modes:
        _checks.check_choice(mode, fn, "mode", modes)
    if padding_mode not in PADDING_MODES:
        _checks.check_choice(padding_mode, fn, "padding_mode", PADDING_MODES)
    if antialias is not True and antialias is not False:
        raise TypeError(f"{fn}: antialias must be a bool, got {type(antialias).__name__}")


def check_matrix(A: object, fn: str, name: str, x: Tensor, d: int, affine: bool) -> Tensor:
    """``A`` ``(..., d+1, d+1)`` (affine: or ``(..., d, d+1)``) as a float tensor on ``x``'s device.

    Integer matrices take ``x``'s float dtype (float32 for integer images); float16/bfloat16 ones are
    computed in float32 (no half-precision inverse). Values are not read here.
    """
    if not isinstance(A, Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor, got {type(A).__name__}")
    shape = A.shape
    if len(shape) < 2 or not (shape[-1] == d + 1 and (shape[-2] == d + 1 or (affine and shape[-2] == d))):
        forms = f"(..., {d + 1}, {d + 1})" + (f" or (..., {d}, {d + 1})" if affine else "")
        raise ValueError(f"{fn}: {name} must have shape {forms}, got {tuple(shape)}")
    if A.is_complex() or A.dtype == torch.bool:
        raise TypeError(f"{fn}: {name} must be a real tensor, got dtype {A.dtype}")
    if not A.is_floating_point():
        A = A.to(x.dtype if x.is_floating_point() and x.dtype not in _LOW else torch.float32)
    elif A.dtype in _LOW:
        A = A.float()
    return A if A.device == x.device else A.to(x.device)


def check_box(box: object, x: Tensor, fn: str) -> Tensor:
    """``box`` ``(x0, y0, w, h)`` -> float tensor ``(..., 4)`` on ``x``'s device.

    A tuple's numbers are checked here (finite, ``w, h > 0``); a tensor's values by the value-check
    rule (:func:`camwarp._checks.values_readable`): raised on the CPU, NaN output items elsewhere
    (:func:`bad_boxes`).
    """
    if _checks._is_array(box):
        box = torch.from_numpy(box)  # type: ignore[arg-type]
    if isinstance(box, Tensor):
        _checks.check_shape(box, fn, "box", "... 4")
        if box.is_complex() or box.dtype == torch.bool:
            raise TypeError(f"{fn}: box must be a real tensor, got dtype {box.dtype}")
        if not box.is_floating_point() or box.dtype in _LOW:
            box = box.to(x.dtype if x.is_floating_point() and x.dtype not in _LOW else torch.float32)
        box = box.to(x.device)
        if box.numel() and _checks.values_readable(box):
            d = box.detach()
            if not bool(torch.isfinite(d).all()):
                raise ValueError(f"{fn}: box must be finite, got an inf or NaN entry")
            if not bool((d[..., 2:] > 0).all()):
                raise ValueError(f"{fn}: box sizes (w, h) must be positive")
        return box
    x0, y0, w, h = box_numbers(box, fn)
    dtype = x.dtype if x.is_floating_point() else torch.float32
    return torch.tensor([x0, y0, w, h], dtype=torch.promote_types(dtype, torch.float32), device=x.device)


def box_numbers(box: object, fn: str) -> tuple[float, float, float, float]:
    """A sequence box ``(x0, y0, w, h)`` as floats: finite, ``w, h > 0``."""
    if not (type(box) is tuple or type(box) is list) and (isinstance(box, (str, bytes)) or not isinstance(box, Sequence)) \
            or len(box) != 4:
        raise TypeError(f"{fn}: box must be a tuple (x0, y0, w, h) or a tensor (..., 4), got {box!r}")
    x0, y0 = (_checks.check_finite_number(v, fn, "box") for v in box[:2])
    w, h = (_checks.check_finite_number(v, fn, "box (w, h)", positive=True) for v in box[2:])
    return x0, y0, w, h


def bad_boxes(box: Tensor) -> Tensor | None:
    """``(B,)`` mask of boxes :func:`check_box` could not check (non-finite, ``w, h <= 0``), or None on the CPU."""
    if _checks.values_readable(box):
        return None
    return ~(torch.isfinite(box).all(-1) & (box[..., 2:] > 0).all(-1))


_MEMORY: dict[tuple[str, int | None], int] = {}


def _device_memory(device: torch.device) -> int:
    """Total memory in bytes of ``device`` (cached; 0 where unknown)."""
    key = (device.type, device.index)
    if key not in _MEMORY:
        total = 0
        try:
            if device.type == "cpu":
                total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
            elif device.type == "cuda":
                total = torch.cuda.get_device_properties(device).total_memory
        except (ValueError, OSError, AttributeError, RuntimeError):
            total = 0
        _MEMORY[key] = total
    return _MEMORY[key]


def check_output(fn: str, shape: Sequence[int], dtype: torch.dtype, device: torch.device, name: str = "size") -> None:
    """Refuse an output that cannot fit in the device's memory, before anything is allocated."""
    n = math.prod(shape)
    if n < 1 << 24:  # 16 M elements: always fine, and the check costs nothing
        return
    nbytes = n * (torch.finfo(dtype).bits // 8 if dtype.is_floating_point else torch.iinfo(dtype).bits // 8)
    total = _device_memory(device)
    if nbytes >= 1 << 62 or (total and nbytes > total):
        have = f"{total / 2**30:.1f} GiB" if total else "any addressable memory"
        raise ValueError(f"{fn}: the output of shape {tuple(shape)} ({dtype}) would need {nbytes / 2**30:.1f} GiB, "
                         f"more than {device.type}'s {have}; check {name}")


def to_float(x: Tensor) -> Tensor:
    return x if x.is_floating_point() else x.to(torch.float32)


def from_float(y: Tensor, like: Tensor) -> Tensor:
    """Back to ``like``'s dtype: integers are rounded (half to even) and clamped to their range."""
    if like.is_floating_point():
        return y if y.dtype == like.dtype else y.to(like.dtype)
    info = torch.iinfo(like.dtype)
    return y.round().clamp(info.min, info.max).to(like.dtype)
