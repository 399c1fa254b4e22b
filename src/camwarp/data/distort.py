"""Distorted-MNIST generators of the STN paper (R, RTS, P, E, cluttered), seeded and deterministic.

A generator draws its parameters from a ``torch.Generator``, builds one src->dst pixel matrix per
digit with :mod:`camwarp.geometry` (OpenCV centre frame, ``docs/conventions.md``) and warps the
canonical ``28 x 28`` digit with :func:`camwarp.warp_affine` / :func:`camwarp.warp_perspective`.
The matrix is returned with the image, so ``warp(canonical, matrix)`` *is* the distorted digit.

=========  ======  ==============================================================================
task       size    distortion (canonical digit ``28 x 28``, centre ``c = (13.5, 13.5)``)
=========  ======  ==============================================================================
none       28x28   identity
r          28x28   rotation about ``c`` by ``U(-90, 90)`` degrees
rts        42x42   rotation ``U(-45, 45)`` deg, scale ``U(0.7, 1.2)`` about ``c``, then ``c`` moved to
                   a uniform random point of the 42x42 canvas that keeps the scaled 28x28 box inside
p          28x28   scale ``U(0.75, 1.0)`` about ``c``, then each of the 4 image corners stretched
                   outward by ``|N(0, 5^2)|`` px per axis (the projective map of old to new corners)
e          28x28   elastic (Simard et al. 2003): per-pixel displacements ``U(-1, 1)``, smoothed by a
                   Gaussian of ``sigma = 4`` px (reflect padding), times ``alpha = 34`` px
cluttered  60x60   the digit at a uniform random integer position, plus 6 random 6x6 crops of random
                   digits of the pool at random positions, summed and clipped to ``[0, 1]``
=========  ======  ==============================================================================

For ``e`` the stored matrix is the identity and ``flow`` holds, per output pixel, the source
pixel it samples (dst->src); for ``cluttered`` the matrix is the digit's translation (the
clutter is added on top).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import _checks
from ..geometry import affine_matrix, identity_matrix, perspective_matrix, rotate_matrix, translation_matrix

__all__ = ["TASKS", "OUT_SIZE", "Distorted", "sample_params", "apply_distortion", "distort",
           "distort_indexed", "sample_seed"]

TASKS = ("none", "r", "rts", "p", "e", "cluttered")
OUT_SIZE: dict[str, tuple[int, int]] = {"none": (28, 28), "r": (28, 28), "rts": (42, 42), "p": (28, 28),
                                        "e": (28, 28), "cluttered": (60, 60)}
_CENTER = 13.5  # centre of a 28 x 28 digit in the OpenCV centre frame
ELASTIC_ALPHA, ELASTIC_SIGMA = 34.0, 4.0
P_SCALE, P_SIGMA = (0.75, 1.0), 5.0
CLUTTER_PIECES, CLUTTER_SIZE = 6, 6


class Distorted(NamedTuple):
    """A batch of distorted digits and the transform that made each.

    Attributes:
        image: ``(N, 1, H', W')`` float in ``[0, 1]``, ``(W', H') = OUT_SIZE[task]``.
        matrix: ``(N, 3, 3)`` float64 src->dst pixel matrix from the canonical 28x28 digit to the
            output canvas (identity for ``e``, the digit's translation for ``cluttered``).
        flow: ``(N, H', W', 2)`` float32 source pixel ``(u, v)`` sampled by each output pixel for ``e``;
            ``None`` otherwise.
    """

    image: Tensor
    matrix: Tensor
    flow: Tensor | None


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator | None) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen, dtype=torch.float64)


def _convex(quad: Tensor) -> Tensor:
    """``(N, 4, 2)`` quadrilaterals -> ``(N,)`` bool: all turns have the same (non-zero) sign."""
    edge = quad.roll(-1, dims=1) - quad  # (N, 4, 2)
    nxt = edge.roll(-1, dims=1)
    cross = edge[..., 0] * nxt[..., 1] - edge[..., 1] * nxt[..., 0]  # (N, 4)
    return (cross > 0).all(dim=1) | (cross < 0).all(dim=1)


def sample_params(task: str, n: int, generator: torch.Generator | None = None,
                  pool_size: int | None = None) -> dict[str, Tensor]:
    """Draw the parameters of ``n`` distortions of ``task`` from ``generator`` (CPU, float64).

    Args:
        task: one of :data:`TASKS`.
        n: number of digits.
        generator: CPU ``torch.Generator``; ``None`` uses torch's global generator.
        pool_size: number of digits clutter is cut from (required for ``cluttered``).

    Returns:
        Dict of tensors with leading dim ``n`` (see the module table): ``angle`` (degrees),
        ``scale``, ``center`` ``(n, 2)`` px, ``corners`` ``(n, 4, 2)`` px, ``noise``
        ``(n, 28, 28, 2)``, ``offset`` ``(n, 2)``, clutter ``source`` ``(n, k)``, ``crop`` and
        ``place`` ``(n, k, 2)``.

    Raises:
        ValueError: unknown ``task``, or ``cluttered`` without a positive ``pool_size``.
    """
    fn = "sample_params"
    _checks.check_choice(task, fn, "task", TASKS)
    g = generator
    if task == "r":
        return {"angle": _uniform(n, -90.0, 90.0, g)}
    if task == "rts":
        angle, scale = _uniform(n, -45.0, 45.0, g), _uniform(n, 0.7, 1.2, g)
        half = 14.0 * scale  # half the side of the scaled 28 x 28 box
        lo, hi = -0.5 + half, 41.5 - half  # keep the box inside the canvas [-0.5, 41.5]
        center = lo[:, None] + (hi - lo)[:, None] * torch.rand(n, 2, generator=g, dtype=torch.float64)
        return {"angle": angle, "scale": scale, "center": center}
    if task == "p":
        scale = _uniform(n, *P_SCALE, g)
        corners = torch.tensor([[-0.5, -0.5], [27.5, -0.5], [27.5, 27.5], [-0.5, 27.5]], dtype=torch.float64)
        base = _CENTER + scale[:, None, None] * (corners - _CENTER)  # (n, 4, 2)
        outward = torch.sign(corners - _CENTER)  # each corner is stretched away from the centre

        def stretch(k: int) -> Tensor:
            return outward * (P_SIGMA * torch.randn(k, 4, 2, generator=g, dtype=torch.float64)).abs()

        dst = base + stretch(n)
        bad = ~_convex(dst)
        while bool(bad.any()):  # redraw a non-convex quad (very rare with outward stretches)
            dst[bad] = base[bad] + stretch(int(bad.sum()))
            bad = ~_convex(dst)
        return {"scale": scale, "corners": dst}
    if task == "e":
        return {"noise": 2 * torch.rand(n, 28, 28, 2, generator=g, dtype=torch.float64) - 1}
    if task == "cluttered":
        if pool_size is None or pool_size <= 0:
            raise ValueError(f"{fn}: task 'cluttered' needs pool_size > 0 (digits to cut clutter from), "
                             f"got {pool_size!r}")
        k, s = CLUTTER_PIECES, CLUTTER_SIZE
        return {"offset": torch.randint(0, 60 - 28 + 1, (n, 2), generator=g),
                "source": torch.randint(0, pool_size, (n, k), generator=g),
                "crop": torch.randint(0, 28 - s + 1, (n, k, 2), generator=g),
                "place": torch.randint(0, 60 - s + 1, (n, k, 2), generator=g)}
    return {}


def _gaussian_kernel(sigma: float, dtype: torch.dtype) -> Tensor:
    radius = int(math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=dtype)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _elastic_flow(noise: Tensor) -> Tensor:
    """``(N, H, W, 2)`` uniform noise -> ``(N, H, W, 2)`` float32 source pixels ``p + alpha (G * noise)``."""
    n, h, w, _ = noise.shape
    noise = noise.float()  # float32 smoothing: several times faster than float64 on CPU, ample here
    k = _gaussian_kernel(ELASTIC_SIGMA, noise.dtype)
    r = len(k) // 2
    x = noise.permute(0, 3, 1, 2).reshape(n * 2, 1, h, w)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))  # separable: rows
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))  # then columns
    disp = ELASTIC_ALPHA * x.reshape(n, 2, h, w).permute(0, 2, 3, 1)
    v, u = torch.meshgrid(torch.arange(h, dtype=noise.dtype), torch.arange(w, dtype=noise.dtype), indexing="ij")
    return torch.stack([u, v], dim=-1) + disp


def apply_distortion(task: str, digits: Tensor, params: dict[str, Tensor],
                     pool: Tensor | None = None) -> Distorted:
    """Distort canonical digits with drawn ``params`` (from :func:`sample_params`).

    Output pixel ``p`` takes the digit at ``A^-1 p`` (bilinear, zeros outside), with ``A`` the
    returned src->dst pixel matrix; ``e`` samples at ``flow[p]`` instead.

    Args:
        task: one of :data:`TASKS`.
        digits: ``(N, 28, 28)`` uint8 or ``(N, 1, 28, 28)`` float in ``[0, 1]``.
        params: dict from :func:`sample_params` with leading dim ``N``.
        pool: ``(M, 28, 28)`` uint8 or ``(M, 1, 28, 28)`` float digits clutter is cut from
            (``cluttered`` only).

    Returns:
        :class:`Distorted` on ``digits``' device; image float32 (float64 stays float64).

    Raises:
        ValueError: unknown ``task``, wrong ``digits`` shape, or ``cluttered`` without ``pool``.
    """
    from .. import warp  # the warp layer loads lazily (camwarp.warp_affine)

    fn = "apply_distortion"
    _checks.check_choice(task, fn, "task", TASKS)
    x = _as_float_digits(digits, fn, "digits")
    n, dev = x.shape[0], x.device
    f64 = dict(dtype=torch.float64)
    c = torch.tensor([_CENTER, _CENTER], **f64)
    size = OUT_SIZE[task]
    flow = None
    if task == "r":
        A = rotate_matrix(params["angle"], c)
    elif task == "rts":
        A = affine_matrix(params["angle"], params["center"] - c, params["scale"], center=c)
    elif task == "p":
        src = torch.tensor([[-0.5, -0.5], [27.5, -0.5], [27.5, 27.5], [-0.5, 27.5]], **f64)
        A = perspective_matrix(src.expand(n, 4, 2), params["corners"])
        image = warp.warp_perspective(x, A.to(dev), size)
        return Distorted(image, A.to(dev), None)
    elif task == "cluttered":
        A = translation_matrix(params["offset"].to(torch.float64))
    else:  # none, e
        A = identity_matrix(dtype=torch.float64).expand(n, 3, 3).clone()
    A = A.to(dev)
    if task == "e":
        flow = _elastic_flow(params["noise"]).to(dev)
        wh = torch.tensor([size[0], size[1]], dtype=flow.dtype, device=dev)
        grid = (2 * flow + 1) / wh - 1  # pixel -> torch-normalized, align_corners=False
        image = F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="zeros", align_corners=False)
        return Distorted(image, A, flow)
    image = warp.warp_affine(x, A, size) if task != "none" else x.clone()
    if task == "cluttered":
        image = image + _clutter(params, pool, n, fn).to(image)
        image = image.clamp(0, 1)
    return Distorted(image, A, flow)


def _as_float_digits(digits: Tensor, fn: str, name: str) -> Tensor:
    _checks.check_tensor(digits, fn, name)
    if digits.dim() == 3:
        digits = digits.unsqueeze(1)
    _checks.check_shape(digits, fn, name, "N 1 28 28")
    if not digits.is_floating_point():
        return digits.float() / 255.0
    return digits


def _clutter(params: dict[str, Tensor], pool: Tensor | None, n: int, fn: str) -> Tensor:
    """``(N, 1, 60, 60)`` sum of the 6x6 crops of pool digits at their drawn places."""
    if pool is None:
        raise ValueError(f"{fn}: task 'cluttered' needs pool (digits to cut clutter from)")
    pool = _as_float_digits(pool, fn, "pool")
    s = CLUTTER_SIZE
    dev = pool.device
    src, crop, place = (params[k].to(dev) for k in ("source", "crop", "place"))  # (N, k), (N, k, 2) x 2
    k = src.shape[1]
    ar = torch.arange(s, device=dev)
    # Gather the (N, k, s, s) pieces: rows crop_v + i, columns crop_u + j of pool digit src.
    rows = (crop[..., 1, None] + ar)[..., :, None].expand(n, k, s, s)
    cols = (crop[..., 0, None] + ar)[..., None, :].expand(n, k, s, s)
    pieces = pool[:, 0][src[..., None, None].expand(n, k, s, s), rows, cols]
    out = torch.zeros(n, 1, 60, 60, dtype=pool.dtype, device=dev)
    flat = out.view(n, 3600)
    idx = ((place[..., 1, None] + ar)[..., :, None] * 60 + (place[..., 0, None] + ar)[..., None, :])  # (N, k, s, s)
    flat.scatter_add_(1, idx.reshape(n, -1), pieces.reshape(n, -1))
    return out


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """Return a 63-bit seed for digit ``index`` of ``epoch`` (a splitmix64 hash of the three).

    The distortion of a digit depends only on ``(seed, epoch, index)``, not on the batch, the
    worker or the number of processes, so data-parallel runs and resumed runs see the same data.

    Example:
        >>> sample_seed(0, 1, 2) == sample_seed(0, 1, 2) != sample_seed(0, 2, 1)
        True
    """
    z = 0
    for part in (seed, epoch, index):
        z = (z + (part & 0xFFFFFFFFFFFFFFFF) + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        z ^= z >> 31
    return z >> 1


def distort(digits: Tensor, task: str, generator: torch.Generator | None = None,
            pool: Tensor | None = None) -> Distorted:
    """Distort a batch of canonical digits, drawing all parameters from one ``generator``.

    Args:
        digits: ``(N, 28, 28)`` uint8 or ``(N, 1, 28, 28)`` float in ``[0, 1]``.
        task: one of :data:`TASKS` (see the module table).
        generator: CPU ``torch.Generator``; the same seed gives the same output.
        pool: digits clutter is cut from (``cluttered``; default ``digits`` themselves).

    Returns:
        :class:`Distorted` ``(image, matrix, flow)``.

    Example:
        >>> from camwarp.data import load_subset
        >>> out = distort(load_subset()[0][:4], "rts", torch.Generator().manual_seed(0))
        >>> tuple(out.image.shape), tuple(out.matrix.shape)
        ((4, 1, 42, 42), (4, 3, 3))
    """
    _checks.check_tensor(digits, "distort", "digits")
    pool = digits if pool is None else pool
    params = sample_params(task, digits.shape[0], generator, pool_size=pool.shape[0])
    return apply_distortion(task, digits, params, pool)


def distort_indexed(digits: Tensor, task: str, seeds: Sequence[int], pool: Tensor | None = None) -> Distorted:
    """Distort each digit with parameters drawn from its own ``torch.Generator().manual_seed(seeds[i])``.

    Same as calling :func:`distort` one digit at a time (bit for bit in the parameters) but
    warped as one batch. Use :func:`sample_seed` to make the seeds.
    """
    fn = "distort_indexed"
    _checks.check_tensor(digits, fn, "digits")
    if len(seeds) != digits.shape[0]:
        raise ValueError(f"{fn}: seeds must have one entry per digit ({digits.shape[0]}), got {len(seeds)}")
    pool = digits if pool is None else pool
    drawn = [sample_params(task, 1, torch.Generator().manual_seed(int(s)), pool.shape[0]) for s in seeds]
    params = {k: torch.cat([d[k] for d in drawn]) for k in drawn[0]} if drawn else \
        sample_params(task, 0, None, pool.shape[0])
    return apply_distortion(task, digits, params, pool)
