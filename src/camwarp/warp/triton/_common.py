"""Shared ``@triton.jit`` helpers of the warp kernels: matrix rows, padding, rounding.

All follow torch's ``grid_sample(align_corners=False)`` written in pixels, as
:mod:`camwarp.warp.reference` samples: ``border`` clips a coordinate to ``[0, n-1]``,
``reflection`` reflects it about ``-0.5`` and ``n - 0.5`` then clips (derivative 0 where clipped,
sign flipped where reflected), ``zeros`` leaves it (taps outside read 0), ``nearest`` rounds half
to even.
"""

from __future__ import annotations

import triton
import triton.language as tl

__all__: list[str] = []


@triton.jit
def _pad(x, size, PAD: tl.constexpr):
    """``(coordinate, d coordinate / d x)`` after padding ``PAD`` (0 zeros, 1 border, 2 reflection)."""
    g = tl.full(x.shape, 1.0, x.dtype)
    if PAD == 2:
        y = x + 0.5
        neg = y < 0
        y = tl.abs(y)
        flips = tl.floor(y / size)
        extra = y - flips * size
        odd = (flips - 2.0 * tl.floor(flips * 0.5)) == 1.0
        x = tl.where(odd, size - extra - 0.5, extra - 0.5)
        g = tl.where(neg != odd, -g, g)
    if PAD != 0:
        g = tl.where((x <= 0) | (x >= size - 1), 0.0, g)
        x = tl.minimum(tl.maximum(x, 0.0), size - 1.0)
    return x, g


@triton.jit
def _rint(x):
    """Round half to even (``std::nearbyint``, what ``grid_sample``'s ``nearest`` uses)."""
    r = tl.floor(x + 0.5)
    tie = (r - x) == 0.5
    odd = (r - 2.0 * tl.floor(r * 0.5)) == 1.0
    return tl.where(tie & odd, r - 1.0, r)


@triton.jit
def _inside(f, n):
    """Whether integer-valued float coordinates ``f`` index ``[0, n)``; false for NaN."""
    return (f >= 0) & (f <= n - 1)


@triton.jit
def _index(f, n):
    """Integer index of ``f`` clamped into ``[0, n)`` (loads stay in bounds; masks decide)."""
    return tl.minimum(tl.maximum(f, 0.0), n - 1.0).to(tl.int32)
