"""Launch settings of the Triton warp kernels: one helper picks block sizes and warps for all."""

from __future__ import annotations

import torch
from torch import Tensor

__all__: list[str] = []

_MAX_TILE = 1024  # output points x channels per program
_MAX_PROGRAMS = 2**31 - 1


def _pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def tile_settings(points: int, channels: int, batch: int, fn: str) -> tuple[int, int, int, int]:
    """Return ``(BLOCK_P, BLOCK_C, num_warps, tiles)`` for ``points`` outputs per item and ``channels``.

    A program owns ``BLOCK_P`` output points of one item and loops over the channels in blocks of
    ``BLOCK_C`` (so the coordinates are computed once per point); ``tiles`` programs cover an item.

    Raises:
        ValueError: the launch would need more programs than one grid axis holds.
    """
    block_c = min(_pow2(channels), 16)
    block_p = max(16, min(_pow2(points), _MAX_TILE // block_c))
    tiles = -(-points // block_p)
    if tiles * batch > _MAX_PROGRAMS:
        raise ValueError(f"{fn}: {batch} x {points} output points need more than {_MAX_PROGRAMS} programs")
    num_warps = 4 if block_p * block_c >= 512 else 2
    return block_p, block_c, num_warps, tiles


def compute_dtype(x: Tensor) -> torch.dtype:
    """float64 stays float64; everything else is sampled in float32 (as the reference does)."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def fixed_point_scale(grad: Tensor, outputs_per_plane: int, dtype: torch.dtype) -> Tensor:
    """Power-of-two scale of the int64 fixed-point image gradient, on the device (no host sync).

    Every output point adds at most its ``|grad|`` (interpolation weights sum to 1) to one image
    plane, so ``|sum| <= max|grad| * outputs_per_plane``; the scale maps that bound to ``2^62``.
    Integer additions commute, so the atomics give bit-identical sums in any order.
    """
    bound = grad.detach().abs().amax().to(torch.float64) * max(outputs_per_plane, 1)
    tiny = torch.finfo(torch.float64).tiny
    top = 126.0 if dtype != torch.float64 else 1000.0  # keep the scale finite in the compute dtype
    exponent = torch.clamp(torch.floor(62.0 - torch.log2(bound.clamp_min(tiny))), -top, top)
    return torch.exp2(exponent).to(dtype).reshape(1)
