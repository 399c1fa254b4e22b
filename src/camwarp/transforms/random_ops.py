"""Random sample ops: parameters drawn once per call (per batch item) from a ``torch.Generator``.

``RandomResizedCrop``, ``RandomCrop``, ``RandomAffine``, ``RandomRotation``, ``RandomHFlip``,
``RandomVFlip``, ``RandomPerspective``. ``get_step(info)`` draws the parameters for a sample of
``info.size`` and builds ONE src->dst pixel matrix, ``(*batch, 3, 3)`` for a batched sample (one
draw per item: the image's leading dims) or ``(3, 3)`` with ``same_on_batch=True``; every entry of
the sample (and every item's camera) then follows that matrix. Draws are continuous (sub-pixel
crop boxes and translations are exact in the matrix world: a crop that is then resized is still
resampled once). Seed with ``generator=torch.Generator().manual_seed(s)``; a generator on another
device than the data draws there and the parameters are moved.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from .. import _checks
from ..geometry import affine_matrix, hflip_matrix, perspective_matrix, vflip_matrix
from .ops import SampleInfo, Transform
from .steps import MatrixStep, Step

__all__ = ["RandomTransform", "RandomResizedCrop", "RandomCrop", "RandomAffine", "RandomRotation",
           "RandomHFlip", "RandomVFlip", "RandomPerspective"]


def _range(x: object, fn: str, name: str, symmetric: bool = True, positive: bool = False) -> tuple[float, float]:
    """A number ``d`` -> ``(-d, d)`` (if ``symmetric``), or a ``(lo, hi)`` pair with ``lo <= hi``."""
    if symmetric and not isinstance(x, Sequence):
        d = _checks.check_finite_number(x, fn, name)
        if d < 0:
            raise ValueError(f"{fn}: {name} must be non-negative, got {x!r}")
        return (-d, d)
    if isinstance(x, (str, Tensor)) or not isinstance(x, Sequence) or len(x) != 2:
        raise TypeError(f"{fn}: {name} must be a (min, max) pair, got {x!r}")
    lo, hi = (_checks.check_finite_number(v, fn, name, positive=positive) for v in x)
    if lo > hi:
        raise ValueError(f"{fn}: {name} must have min <= max, got {tuple(x)}")
    return lo, hi


class RandomTransform(Transform):
    """Base of the random ops.

    Args (keyword-only, every random op):
        generator: the ``torch.Generator`` to draw from (default: torch's global one).
        same_on_batch: one draw for the whole batch instead of one per item.
        options, kinds: as for every op.
    """

    def __init__(self, *, generator: torch.Generator | None = None, same_on_batch: bool = False, **kw) -> None:
        super().__init__(**kw)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"{type(self).__name__}: generator must be a torch.Generator, "
                            f"got {type(generator).__name__}")
        if not isinstance(same_on_batch, bool):
            raise TypeError(f"{type(self).__name__}: same_on_batch must be a bool")
        self.generator = generator
        self.same_on_batch = same_on_batch

    def _batch(self, info: SampleInfo) -> tuple[int, ...]:
        return () if self.same_on_batch else tuple(info.batch_shape)

    def _rand(self, info: SampleInfo, *extra: int, lo: float | Tensor = 0.0, hi: float | Tensor = 1.0) -> Tensor:
        """Uniform draws in ``[lo, hi)`` of shape ``(*batch, *extra)``, float64 on the sample's device."""
        g = self.generator
        device = g.device if g is not None else info.device
        u = torch.rand((*self._batch(info), *extra), generator=g, dtype=torch.float64, device=device)
        u = u.to(info.device, info.dtype)
        return lo + (hi - lo) * u

    def _coin(self, info: SampleInfo, p: float) -> Tensor:
        return self._rand(info) < p  # (*batch,)


def _where(flag: Tensor, A: Tensor, B: Tensor) -> Tensor:
    return torch.where(flag[..., None, None], A, B)


def _box_matrix(left: Tensor, top: Tensor, bw: Tensor, bh: Tensor, size: tuple[int, int]) -> Tensor:
    """Map the box with edges ``[left, left + bw] x [top, top + bh]`` onto a ``size`` image, edges to edges:
    ``u' = (W'/bw)(u - left) - 0.5``."""
    sx, sy = size[0] / bw, size[1] / bh
    zero, one = torch.zeros_like(sx), torch.ones_like(sx)
    rows = [[sx, zero, -sx * left - 0.5], [zero, sy, -sy * top - 0.5], [zero, zero, one]]
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


class RandomResizedCrop(RandomTransform):
    """Crop a random box (area fraction in ``scale``, aspect ratio in ``ratio``) and resize it to ``(w, h)``.

    torchvision's sampling (10 tries, log-uniform ratio, then a centred fallback) with continuous
    box corners; the box is mapped edges to edges onto the output (one resampling).

    Example:
        >>> op = RandomResizedCrop(8, 8, generator=torch.Generator().manual_seed(0))
        >>> op({"image": torch.rand(2, 3, 32, 32)})["image"].shape
        torch.Size([2, 3, 8, 8])
    """

    def __init__(self, w: int, h: int, scale: Sequence[float] = (0.08, 1.0),
                 ratio: Sequence[float] = (3 / 4, 4 / 3), **kw) -> None:
        super().__init__(**kw)
        fn = "RandomResizedCrop"
        self.size = _checks.check_size((w, h), fn, "(w, h)")
        self.scale = _range(scale, fn, "scale", symmetric=False, positive=True)
        self.ratio = _range(ratio, fn, "ratio", symmetric=False, positive=True)

    def get_step(self, info: SampleInfo) -> Step:
        W, H = info.size
        tries = 10
        area = W * H * self._rand(info, tries, lo=self.scale[0], hi=self.scale[1])
        r = torch.exp(self._rand(info, tries, lo=math.log(self.ratio[0]), hi=math.log(self.ratio[1])))
        bw, bh = torch.sqrt(area * r), torch.sqrt(area / r)  # (*batch, tries)
        fits = (bw <= W) & (bh <= H)
        first = fits.to(torch.int8).argmax(dim=-1, keepdim=True)  # first fitting try (0 if none)
        bw, bh = bw.gather(-1, first).squeeze(-1), bh.gather(-1, first).squeeze(-1)
        # Fallback (no try fits): the largest centred box with the ratio clamped to the range.
        in_ratio = W / H
        fr = min(max(in_ratio, self.ratio[0]), self.ratio[1])
        fw, fh = (W, W / fr) if fr >= in_ratio else (H * fr, H)
        ok = fits.any(dim=-1)
        bw, bh = torch.where(ok, bw, torch.full_like(bw, fw)), torch.where(ok, bh, torch.full_like(bh, fh))
        u = self._rand(info, 2)
        left = -0.5 + u[..., 0] * (W - bw)
        top = -0.5 + u[..., 1] * (H - bh)
        return MatrixStep(_box_matrix(left, top, bw, bh, self.size), self.size)

    def _repr_args(self) -> str:
        return f"w={self.size[0]}, h={self.size[1]}, scale={self.scale}, ratio={self.ratio}"


class RandomCrop(RandomTransform):
    """Crop ``w x h`` pixels at a random whole-pixel offset (uniform over all placements).

    A crop larger than the image places the image at a random offset inside it (zero padding).
    """

    def __init__(self, w: int, h: int, **kw) -> None:
        super().__init__(**kw)
        self.size = _checks.check_size((w, h), "RandomCrop", "(w, h)")

    def get_step(self, info: SampleInfo) -> Step:
        d = [i - o for i, o in zip(info.size, self.size)]  # room along x and y
        u = self._rand(info, 2)
        off = [min(0, di) + torch.floor(u[..., j] * (abs(di) + 1)) for j, di in enumerate(d)]
        one, zero = torch.ones_like(off[0]), torch.zeros_like(off[0])
        rows = [[one, zero, -off[0]], [zero, one, -off[1]], [zero, zero, one]]
        return MatrixStep(torch.stack([torch.stack(r, -1) for r in rows], -2), self.size)

    def _repr_args(self) -> str:
        return f"w={self.size[0]}, h={self.size[1]}"


class RandomAffine(RandomTransform):
    """Random rotation/translation/scale/shear about the image centre (torchvision's ``RandomAffine``).

    Args:
        degrees: ``d`` (angle in ``[-d, d]``) or ``(min, max)``, degrees counter-clockwise on screen.
        translate: ``(a, b)``: ``tx`` in ``[-a W, a W]``, ``ty`` in ``[-b H, b H]``; None: none.
        scale: ``(min, max)`` factor; None: 1.
        shear: ``s`` (x-shear in ``[-s, s]``), ``(min, max)`` (x-shear) or ``(xmin, xmax, ymin, ymax)``.
        size: output size ``(W', H')``; default the input size.
    """

    def __init__(self, degrees: float | Sequence[float] = 0.0, translate: Sequence[float] | None = None,
                 scale: Sequence[float] | None = None, shear: float | Sequence[float] | None = None,
                 size: Sequence[int] | None = None, **kw) -> None:
        super().__init__(**kw)
        fn = type(self).__name__
        self.degrees = _range(degrees, fn, "degrees")
        if translate is not None:
            if isinstance(translate, (str, Tensor)) or not isinstance(translate, Sequence) or len(translate) != 2:
                raise TypeError(f"{fn}: translate must be a pair of fractions (a, b), got {translate!r}")
            a, b = (_checks.check_finite_number(v, fn, "translate") for v in translate)
            if not (0 <= a <= 1 and 0 <= b <= 1):
                raise ValueError(f"{fn}: translate fractions must be in [0, 1], got {tuple(translate)}")
        self.translate = None if translate is None else (a, b)
        self.scale = None if scale is None else _range(scale, fn, "scale", symmetric=False, positive=True)
        if shear is None:
            self.shear = None
        elif isinstance(shear, Sequence) and len(shear) == 4:
            self.shear = _range(shear[:2], fn, "shear", False) + _range(shear[2:], fn, "shear", False)
        else:
            self.shear = _range(shear, fn, "shear") + (0.0, 0.0)
        self.size = None if size is None else _checks.check_size(size, fn)

    def get_step(self, info: SampleInfo) -> Step:
        W, H = info.size
        angle = self._rand(info, lo=self.degrees[0], hi=self.degrees[1])
        if self.translate is None:
            t = torch.zeros(*angle.shape, 2, dtype=angle.dtype, device=angle.device)
        else:
            lim = torch.tensor([self.translate[0] * W, self.translate[1] * H], dtype=angle.dtype, device=angle.device)
            t = self._rand(info, 2, lo=-lim, hi=lim)
        s = torch.ones_like(angle) if self.scale is None else self._rand(info, lo=self.scale[0], hi=self.scale[1])
        if self.shear is None:
            sh = torch.zeros_like(t)
        else:
            lo = torch.tensor(self.shear[0::2], dtype=angle.dtype, device=angle.device)
            hi = torch.tensor(self.shear[1::2], dtype=angle.dtype, device=angle.device)
            sh = self._rand(info, 2, lo=lo, hi=hi)
        A = affine_matrix(angle, t, s, sh, ((W - 1) / 2, (H - 1) / 2), dtype=info.dtype, device=info.device)
        return MatrixStep(A, self.size or info.size)

    def _repr_args(self) -> str:
        return f"degrees={self.degrees}, translate={self.translate}, scale={self.scale}, shear={self.shear}"


class RandomRotation(RandomAffine):
    """Rotate by a random angle about the image centre: ``degrees`` ``d`` (``[-d, d]``) or ``(min, max)``."""

    def __init__(self, degrees: float | Sequence[float], size: Sequence[int] | None = None, **kw) -> None:
        super().__init__(degrees, size=size, **kw)


class RandomHFlip(RandomTransform):
    """Flip left-right with probability ``p`` (per item); flipped items' cameras gain ``R = diag(-1, 1, 1)``."""

    def __init__(self, p: float = 0.5, **kw) -> None:
        super().__init__(**kw)
        self.p = _probability(p, type(self).__name__)

    def _flip(self, info: SampleInfo) -> Tensor:
        return hflip_matrix(info.size[0], dtype=info.dtype, device=info.device)

    def get_step(self, info: SampleInfo) -> Step:
        F = self._flip(info)
        return MatrixStep(_where(self._coin(info, self.p), F, torch.eye(3, dtype=F.dtype, device=F.device)), info.size)

    def _repr_args(self) -> str:
        return f"p={self.p}"


class RandomVFlip(RandomHFlip):
    """Flip top-bottom with probability ``p`` (per item)."""

    def _flip(self, info: SampleInfo) -> Tensor:
        return vflip_matrix(info.size[1], dtype=info.dtype, device=info.device)


def _probability(p: object, fn: str) -> float:
    p = _checks.check_finite_number(p, fn, "p")
    if not 0 <= p <= 1:
        raise ValueError(f"{fn}: p must be in [0, 1], got {p!r}")
    return p


class RandomPerspective(RandomTransform):
    """With probability ``p``, move each image corner inwards by up to ``distortion_scale`` of half the size.

    torchvision's ``RandomPerspective`` with continuous offsets: the corner pixel centres
    ``(0, 0), (W-1, 0), (W-1, H-1), (0, H-1)`` go to the drawn points (a projective matrix; a
    distorted camera raises ``InexactDistortionError``: undistort first).
    """

    def __init__(self, distortion_scale: float = 0.5, p: float = 0.5, **kw) -> None:
        super().__init__(**kw)
        fn = type(self).__name__
        self.distortion_scale = _checks.check_finite_number(distortion_scale, fn, "distortion_scale")
        if not 0 <= self.distortion_scale <= 1:
            raise ValueError(f"{fn}: distortion_scale must be in [0, 1], got {distortion_scale!r}")
        self.p = _probability(p, fn)

    def get_step(self, info: SampleInfo) -> Step:
        W, H = info.size
        src = torch.tensor([[0.0, 0], [W - 1, 0], [W - 1, H - 1], [0, H - 1]], dtype=info.dtype, device=info.device)
        lim = self.distortion_scale * torch.tensor([(W - 1) / 2, (H - 1) / 2], dtype=info.dtype, device=info.device)
        inward = torch.tensor([[1.0, 1], [-1, 1], [-1, -1], [1, -1]], dtype=info.dtype, device=info.device)
        dst = src + inward * self._rand(info, 4, 2) * lim  # (*batch, 4, 2)
        Hm = perspective_matrix(src.expand_as(dst), dst)
        eye = torch.eye(3, dtype=Hm.dtype, device=Hm.device)
        return MatrixStep(_where(self._coin(info, self.p), Hm, eye), info.size, affine=False)

    def _repr_args(self) -> str:
        return f"distortion_scale={self.distortion_scale}, p={self.p}"
