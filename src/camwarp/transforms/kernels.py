"""The one table of data kinds: how a geometric step moves each entry of a sample.

A *sample* is a dict. Known keys (kinds) and their kernels:

============  ==========================  ===================================================
key           shape                       kernel
============  ==========================  ===================================================
image         ``(..., C, H, W)`` float    resampled (bilinear/bicubic), antialiased on
              or uint8                    downscale; uint8 rounded back
depth         ``(..., H, W)`` (a channel  nearest, or min-of-valid (``depth_mode="min"``);
              dim of 1 is a batch dim)    0 = invalid; values never blended; a projective
                                          step with a camera re-expresses z along the new axis
mask          ``(..., H, W)`` int/bool/   nearest; outside the source: 0
              float
keypoints     ``(..., N, 2)`` pixels      the map; companion ``visibility`` ``(..., N)`` bool
                                          (created if absent) turns False for points that
                                          leave the image or cross a projective horizon
boxes         ``(..., N, 4)`` xyxy edges  box of the mapped outline, clipped to the image;
                                          companion ``box_valid`` ``(..., N)`` bool turns
                                          False for empty boxes (never dropped: shapes stay)
camera        :class:`camwarp.Camera`     ``step.move_camera``; companion ``R`` ``(..., 3, 3)``
                                          accumulates ``R_new @ R_old``
============  ==========================  ===================================================

Boxes are pixel *edges* in OpenCV's centre frame: a box covering the whole ``W x H`` image is
``(-0.5, -0.5, W - 0.5, H - 0.5)``. Other keys: non-tensor values (names, paths, ids) pass through;
a tensor under an unknown key raises ``ValueError`` unless ``kinds`` names its kind (one of the
above or ``"passthrough"``); e.g. ``kinds={"mask_hands": "mask", "label": "passthrough"}``. An extra
key's companion is ``<key>_visibility``, ``<key>_valid`` or ``<key>_R``.

Batch dims: the step's matrix has the sample's batch dims ``B`` (or none); every entry's leading
dims start with ``B`` (extra leading dims, e.g. depth's channel, come after).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import _checks
from ..geometry import normalize_matrix, resize_matrix, transform_points
from .steps import MatrixStep, Step

__all__ = ["KernelOptions", "KINDS", "COMPANIONS", "apply", "sample_size", "sample_batch_shape",
           "sample_device"]

IMAGE_MODES = ("bilinear", "bicubic", "nearest")
PADDING_MODES = ("zeros", "border", "reflection")
DEPTH_MODES = ("nearest", "min")


@dataclass(frozen=True)
class KernelOptions:
    """How the kernels resample; one set per call (shared by every op of a ``Compose``).

    Args:
        mode: image interpolation, ``"bilinear"`` (default), ``"bicubic"`` or ``"nearest"``.
        padding_mode: image values outside the source: ``"zeros"``, ``"border"``, ``"reflection"``.
        antialias: prefilter images on downscale (matrix steps; default True).
        depth_mode: ``"nearest"`` (default) or ``"min"``: the nearest valid (non-zero) depth of
            ``depth_samples x depth_samples`` nearest samples per output pixel, which keeps
            thin foreground under downscaling and never lets zeros (holes) win.
        depth_samples: samples per axis for ``"min"``; None: ``ceil`` of the size ratio
            in/out, at least 2.
    """

    mode: str = "bilinear"
    padding_mode: str = "zeros"
    antialias: bool = True
    depth_mode: str = "nearest"
    depth_samples: int | None = None

    def __post_init__(self) -> None:
        fn = "KernelOptions"
        _checks.check_choice(self.mode, fn, "mode", IMAGE_MODES)
        _checks.check_choice(self.padding_mode, fn, "padding_mode", PADDING_MODES)
        _checks.check_choice(self.depth_mode, fn, "depth_mode", DEPTH_MODES)
        if not isinstance(self.antialias, bool):
            raise TypeError(f"{fn}: antialias must be a bool, got {type(self.antialias).__name__}")
        if self.depth_samples is not None:
            _checks.check_size((self.depth_samples,), fn, "depth_samples", (1,))


# ---------------------------------------------------------------------------------------------
# Resampling helpers (tensor level)


def _align(matrix: Tensor, lead: int) -> Tensor:
    """Give the step's ``(*B, 3, 3)`` matrix trailing unit batch dims so that ``B`` aligns with
    the *first* of an entry's ``lead`` leading dims (the entry's extra dims come after ``B``)."""
    extra = lead - (matrix.ndim - 2)
    return matrix.reshape(*matrix.shape[:-2], *([1] * extra), 3, 3) if extra > 0 else matrix


def _float_for(x: Tensor) -> torch.dtype:
    """A float dtype that holds ``x``'s values exactly (int32/int64 need float64)."""
    if x.is_floating_point():
        return x.dtype
    return torch.float64 if x.dtype in (torch.int32, torch.int64) else torch.float32


def _grid_sample(x: Tensor, step: Step, size: tuple[int, int], mode: str, padding_mode: str) -> Tensor:
    """Sample ``x`` ``(*L, C, H, W)`` (float) at ``step.source_coords`` of the output pixel grid."""
    W, H = size
    dev = x.device
    dt = torch.float64 if x.dtype == torch.float64 else torch.float32
    v, u = torch.meshgrid(torch.arange(H, dtype=dt, device=dev), torch.arange(W, dtype=dt, device=dev),
                          indexing="ij")
    dst = torch.stack([u, v], dim=-1).reshape(H * W, 2)  # (H'W', 2) output pixel centres
    if size != step.size:  # a supersampled grid: its pixel centres in the step's output frame
        dst = transform_points(resize_matrix(size, step.size, dtype=dt, device=dev), dst)
    src = step.source_coords(dst)  # (*B, H'W', 2)
    N = normalize_matrix((x.shape[-1], x.shape[-2]), False, dtype=src.dtype, device=dev)
    grid = src * torch.diagonal(N)[:2] + N[:2, 2]  # pixels -> align_corners=False normalized
    lead = x.shape[:-3]
    grid = grid.reshape(*grid.shape[:-2], *([1] * max(0, len(lead) - (grid.ndim - 2))), H, W, 2)
    batch = torch.broadcast_shapes(lead, grid.shape[:-3])
    work = torch.promote_types(x.dtype, torch.float32)  # half precision grids are off by 0.1 px
    xf = x.expand(*batch, *x.shape[-3:]).reshape(-1, *x.shape[-3:]).to(work)
    gf = grid.expand(*batch, H, W, 2).reshape(-1, H, W, 2).to(work)
    out = F.grid_sample(xf, gf, mode=mode, padding_mode=padding_mode, align_corners=False)
    return out.reshape(*batch, *out.shape[1:]).to(x.dtype)


def _resample(x: Tensor, step: Step, mode: str, padding_mode: str, antialias: bool,
              size: tuple[int, int] | None = None) -> Tensor:
    """Resample a float ``(*L, C, H, W)`` tensor once through ``step`` (fast path for matrices)."""
    size = size or step.size
    if isinstance(step, MatrixStep):
        from ..warp import warp_affine, warp_perspective

        A = _align(step.matrix, x.ndim - 3)
        if size != step.size:  # supersampled output grid (depth "min")
            A = resize_matrix(step.size, size, dtype=A.dtype, device=A.device) @ A
        warp = warp_affine if step.affine else warp_perspective
        A = A.to(torch.promote_types(x.dtype, torch.float32))  # half images: float32 matrices
        return warp(x, A, size, mode=mode, padding_mode=padding_mode, antialias=antialias)
    return _grid_sample(x, step, size, mode, padding_mode)


def _super_size(step: Step, in_size: tuple[int, int], options: KernelOptions) -> int:
    if options.depth_samples is not None:
        return options.depth_samples
    ratio = max(in_size[0] / step.size[0], in_size[1] / step.size[1])
    return max(2, math.ceil(ratio - 1e-9))


# ---------------------------------------------------------------------------------------------
# Kernels: (value, companion, step, options, ctx) -> (value, companion)


@dataclass
class _Context:
    camera: object = None  # the camera before the step (None without one)
    R: Tensor | None = None  # the rotation the step gave it


def warp_image(image: Tensor, _c, step: Step, options: KernelOptions, ctx: _Context):
    """Resample an image ``(..., C, H, W)``; uint8 is sampled in float, rounded and clamped back."""
    _checks.check_shape(image, "warp_image", "image", "... C H W")
    x = image if image.is_floating_point() else image.to(torch.float32)
    out = _resample(x, step, options.mode, options.padding_mode, options.antialias and isinstance(step, MatrixStep))
    if not image.is_floating_point():
        info = torch.iinfo(image.dtype) if image.dtype != torch.bool else None
        out = out.round().clamp(info.min, info.max) if info else out > 0.5
        out = out.to(image.dtype)
    return out, None


def _depth_z_factor(step: Step, ctx: _Context, dtype: torch.dtype, lead: int) -> Tensor:
    """z' / z at each output pixel for a projective matrix step: ``(R K^-1 p)_z``, ``p`` the source
    pixel (the camera frame turns by ``R``, so a z-depth is measured along the new axis)."""
    W, H = step.size
    dev = step.matrix.device
    v, u = torch.meshgrid(torch.arange(H, dtype=dtype, device=dev), torch.arange(W, dtype=dtype, device=dev),
                          indexing="ij")
    p = step.source_coords(torch.stack([u, v], dim=-1).reshape(H * W, 2))  # (*B, H'W', 2)
    Kinv = torch.linalg.inv(ctx.camera.K.to(dtype))  # (*Bc, 3, 3)
    row = ctx.R[..., 2:, :].to(dtype) @ Kinv  # (*B, 1, 3)
    f = (p @ row[..., :2].transpose(-1, -2) + row[..., 2:]).squeeze(-1)  # (*B, H'W')
    f = f.reshape(*f.shape[:-1], H, W)
    return f.reshape(*f.shape[:-2], *([1] * max(0, lead - (f.ndim - 2))), H, W)


def warp_depth(depth: Tensor, _c, step: Step, options: KernelOptions, ctx: _Context):
    """Resample a depth map ``(..., H, W)`` without blending: nearest or min-of-valid; 0 = invalid."""
    _checks.check_shape(depth, "warp_depth", "depth", "... H W")
    x = depth.to(_float_for(depth)).unsqueeze(-3)  # (..., 1, H, W)
    if options.depth_mode == "nearest":
        out = _resample(x, step, "nearest", "zeros", False)
    else:
        k = _super_size(step, (depth.shape[-1], depth.shape[-2]), options)
        W, H = step.size
        out = _resample(x, step, "nearest", "zeros", False, size=(k * W, k * H))
        out = out.unflatten(-1, (W, k)).unflatten(-3, (H, k))  # (..., 1, H, k, W, k)
        inf = torch.tensor(math.inf, dtype=out.dtype, device=out.device)
        out = torch.where(out > 0, out, inf).amin(dim=(-3, -1))
        out = torch.where(torch.isinf(out), torch.zeros_like(out), out)
    out = out.squeeze(-3)
    if isinstance(step, MatrixStep) and not step.affine and ctx.camera is not None:
        out = out * _depth_z_factor(step, ctx, out.dtype, out.ndim - 2)
    return out.to(depth.dtype), None


def warp_mask(mask: Tensor, _c, step: Step, options: KernelOptions, ctx: _Context):
    """Resample a mask ``(..., H, W)`` (labels, bool or float) by nearest neighbour; outside: 0."""
    _checks.check_shape(mask, "warp_mask", "mask", "... H W")
    out = _resample(mask.to(_float_for(mask)).unsqueeze(-3), step, "nearest", "zeros", False).squeeze(-3)
    return (out > 0.5 if mask.dtype == torch.bool else out.to(mask.dtype)), None


def _inside(points: Tensor, size: tuple[int, int]) -> Tensor:
    W, H = size
    u, v = points[..., 0], points[..., 1]
    return (u >= -0.5) & (u < W - 0.5) & (v >= -0.5) & (v < H - 0.5)


def move_keypoints(points: Tensor, visibility: Tensor | None, step: Step, options: KernelOptions, ctx: _Context):
    """Map keypoints ``(..., N, 2)``; visibility ``(..., N)`` keeps points inside the new image."""
    _checks.check_shape(points, "move_keypoints", "keypoints", "... N 2")
    _checks.check_float(points, "move_keypoints", "keypoints")
    out, ok = step.map_points(points)  # (..., N, 2), (..., N)
    vis = ok & _inside(out, step.size)
    if visibility is not None:
        _checks.check_shape(visibility, "move_keypoints", "visibility", "... N")
        vis = vis & visibility.to(torch.bool)
    return out, vis


def move_boxes(boxes: Tensor, valid: Tensor | None, step: Step, options: KernelOptions, ctx: _Context):
    """Map xyxy edge boxes ``(..., N, 4)``: the bounding box of the mapped outline, clipped."""
    _checks.check_shape(boxes, "move_boxes", "boxes", "... N 4")
    _checks.check_float(boxes, "move_boxes", "boxes")
    n = step.box_edge_samples
    t = torch.arange(n, dtype=boxes.dtype, device=boxes.device) / n  # (n,) along each edge
    x1, y1, x2, y2 = (boxes[..., i, None] for i in range(4))  # (..., N, 1)
    xs = torch.cat([x1 + (x2 - x1) * t, x2.expand_as(x1 * t), x2 - (x2 - x1) * t, x1.expand_as(x1 * t)], -1)
    ys = torch.cat([y1.expand_as(y1 * t), y1 + (y2 - y1) * t, y2.expand_as(y1 * t), y2 - (y2 - y1) * t], -1)
    outline = torch.stack([xs, ys], dim=-1)  # (..., N, 4n, 2) clockwise from the top-left corner
    mapped, ok = step.map_points(outline.flatten(-3, -2))
    mapped = mapped.unflatten(-2, outline.shape[-3:-1])
    ok = ok.unflatten(-1, outline.shape[-3:-1]).all(dim=-1)  # (..., N)
    W, H = step.size
    lo = mapped.amin(dim=-2).clamp(min=-0.5)
    hi = torch.minimum(mapped.amax(dim=-2), mapped.new_tensor([W - 0.5, H - 0.5]))
    out = torch.cat([lo, hi], dim=-1)
    keep = ok & (hi > lo).all(dim=-1)
    if valid is not None:
        _checks.check_shape(valid, "move_boxes", "box_valid", "... N")
        keep = keep & valid.to(torch.bool)
    return out, keep


def move_camera(camera, R_old: Tensor | None, step: Step, options: KernelOptions, ctx: _Context):
    """Move a :class:`camwarp.Camera`; the companion ``R`` becomes ``R_step @ R_old``."""
    new, R = step.move_camera(camera)
    ctx.camera, ctx.R = camera, R
    if R_old is not None:
        _checks.check_shape(R_old, "move_camera", "R", "... 3 3")
        R = R @ R_old.to(R.dtype)
    return new, R


def _passthrough(value, companion, step, options, ctx):
    return value, None


KINDS: dict[str, Callable] = {"camera": move_camera, "image": warp_image, "depth": warp_depth, "mask": warp_mask,
                              "keypoints": move_keypoints, "boxes": move_boxes, "passthrough": _passthrough}
COMPANIONS: dict[str, str] = {"keypoints": "visibility", "boxes": "box_valid", "camera": "R"}
_EXTRA_SUFFIX = {"keypoints": "_visibility", "boxes": "_valid", "camera": "_R"}


def _companion(key: str, kind: str) -> str | None:
    if kind not in COMPANIONS:
        return None
    return COMPANIONS[kind] if key == kind else key + _EXTRA_SUFFIX[kind]


def resolve_kinds(sample: Mapping, kinds: Mapping[str, str] | None = None, fn: str = "apply") -> dict[str, str]:
    """Return ``{key: kind}`` for every key of ``sample`` that a kernel moves (companions excluded)."""
    if not isinstance(sample, Mapping):
        raise TypeError(f"{fn}: sample must be a dict, got {type(sample).__name__}")
    kinds = dict(kinds or {})
    for k, kind in kinds.items():
        _checks.check_choice(kind, fn, f"kinds[{k!r}]", KINDS)
    out = {k: kinds.get(k, k if k in KINDS and k != "passthrough" else None) for k in sample}
    companions = {_companion(k, kind): k for k, kind in out.items() if kind}
    for key, kind in out.items():
        if kind is None and key not in companions and isinstance(sample[key], Tensor):
            known = ", ".join(k for k in KINDS if k != "passthrough")
            raise ValueError(f"{fn}: sample key {key!r} holds a tensor of unknown kind; known keys: {known}, "
                             f"their companions, or pass kinds={{{key!r}: <kind or 'passthrough'>}}")
    for comp, owner in companions.items():
        if comp is not None and comp in sample and out.get(comp):
            raise ValueError(f"{fn}: sample key {comp!r} is the companion of {owner!r} and cannot have a kind")
    return {k: v for k, v in out.items() if v}


def apply(sample: Mapping, step: Step, options: KernelOptions | None = None,
          kinds: Mapping[str, str] | None = None) -> dict:
    """Return a new sample with every entry moved by ``step`` (through the kind table).

    Args:
        sample: dict of entries (see the module docstring); not modified.
        step: the geometric step (e.g. ``MatrixStep(A, size)`` with ``A`` src->dst pixels).
        options: resampling options (default :class:`KernelOptions()`).
        kinds: kinds of extra keys, e.g. ``{"mask_person": "mask", "label": "passthrough"}``.

    Returns:
        A new dict: moved entries and companions updated, other entries passed through.

    Raises:
        ValueError: unknown tensor key, a companion without its entry (``R`` without a camera).

    Example:
        >>> from camwarp.geometry import hflip_matrix
        >>> out = apply({"keypoints": torch.tensor([[0.0, 1.0]])}, MatrixStep(hflip_matrix(4), (4, 3)))
        >>> out["keypoints"], out["visibility"]
        (tensor([[3., 1.]]), tensor([True]))
    """
    options = options or KernelOptions()
    resolved = resolve_kinds(sample, kinds)
    out = dict(sample)
    ctx = _Context()
    if "R" in sample and "camera" not in resolved:
        raise ValueError("apply: sample has 'R' but no 'camera' to update it from")
    # Cameras first: a projective step's depth needs the camera's rotation.
    for key in sorted(resolved, key=lambda k: resolved[k] != "camera"):
        kind = resolved[key]
        comp = _companion(key, kind)
        value, new_comp = KINDS[kind](sample[key], sample.get(comp) if comp else None, step, options, ctx)
        out[key] = value
        if comp is not None:
            out[comp] = new_comp
    return out


# ---------------------------------------------------------------------------------------------
# What a sample is: size, batch shape, device (read from metadata only)


def sample_size(sample: Mapping, kinds: Mapping[str, str] | None = None, *,
                fn: str = "sample_size") -> tuple[int, int]:
    """Return the sample's image size ``(W, H)`` from its images, depth, masks or camera; all must agree.

    Args:
        sample: the sample dict.
        kinds: kinds of extra sample keys.
        fn: name used in error messages (for callers inside camwarp).

    Raises:
        ValueError: no entry gives a size, or the entries disagree.
    """
    resolved = resolve_kinds(sample, kinds, fn)
    sizes = {}
    for key, kind in resolved.items():
        v = sample[key]
        if kind in ("image", "depth", "mask"):
            _checks.check_shape(v, fn, key, "... C H W" if kind == "image" else "... H W")
            sizes[key] = (v.shape[-1], v.shape[-2])
        elif kind == "camera":
            sizes[key] = tuple(v.size)
    if not sizes:
        raise ValueError(f"{fn}: the sample has no image, depth, mask or camera to read its size (W, H) from")
    if len(set(sizes.values())) > 1:
        listing = ", ".join(f"{k} {s}" for k, s in sizes.items())
        raise ValueError(f"{fn}: the sample's entries disagree on the image size (W, H): {listing}")
    return next(iter(sizes.values()))


def sample_batch_shape(sample: Mapping, kinds: Mapping[str, str] | None = None) -> torch.Size:
    """Return the sample's batch shape: of the image ``(..., C, H, W)``, else keypoints/boxes
    ``(..., N, k)``, else the camera, else a mask ``(..., H, W)``; ``()`` for a single sample."""
    resolved = resolve_kinds(sample, kinds, "sample_batch_shape")
    order = {"image": 3, "keypoints": 2, "boxes": 2, "camera": 0, "mask": 2, "depth": 2}
    for kind, core in order.items():
        for key, k in resolved.items():
            if k == kind:
                v = sample[key]
                return v.batch_shape if kind == "camera" else v.shape[:-core]
    return torch.Size()


def sample_device(sample: Mapping) -> torch.device:
    """Return the device of the sample's first tensor (or camera); CPU if it has none."""
    for v in sample.values():
        if isinstance(v, Tensor):
            return v.device
        if hasattr(v, "device") and hasattr(v, "K"):
            return v.device
    return torch.device("cpu")
