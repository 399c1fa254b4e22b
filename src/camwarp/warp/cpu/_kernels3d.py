"""numba kernels of the CPU backend: 3-D affine sampling (trilinear, nearest), forward and backward.

The 3-D twin of :mod:`camwarp.warp.cpu._kernels2d`: output voxel ``p = (x, y, z)`` reads the
volume at ``M p`` (``(u, v, s)`` = width, height, depth), computed where it is used, with
``grid_sample(align_corners=False)``'s rules in voxels. Determinism as in 2-D: the volume gradient
is owned by input-depth bands that scan the output in raster order; the matrix gradient is summed
in float64 per output row ``(z, y)`` and reduced in a fixed order.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._kernels2d import _pad

__all__: list[str] = []

_OPTS = dict(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})


@njit(**_OPTS)
def _point(m, x, y, z, W, H, D, pad):
    u = m[0, 0] * x + m[0, 1] * y + m[0, 2] * z + m[0, 3]
    v = m[1, 0] * x + m[1, 1] * y + m[1, 2] * z + m[1, 3]
    s = m[2, 0] * x + m[2, 1] * y + m[2, 2] * z + m[2, 3]
    u, gu = _pad(u, W, pad)
    v, gv = _pad(v, H, pad)
    s, gs = _pad(s, D, pad)
    return u, v, s, gu, gv, gs


@njit(**_OPTS)
def forward(vol, mat, out, mode, pad, lo, hi):
    """``out[b, c, z, y, x] = sample(vol[b, c], M_b (x, y, z, 1))`` for the flat output rows ``[lo, hi)``."""
    B, C, D, H, W = vol.shape
    Do, Ho, Wo = out.shape[2], out.shape[3], out.shape[4]
    for r in range(lo, hi):
        b = r // (Do * Ho)
        z = (r // Ho) % Do
        y = r % Ho
        m = mat[b]
        for x in range(Wo):
            u, v, s, gu, gv, gs = _point(m, x, y, z, W, H, D, pad)
            if mode == 1:
                xi, yi, zi = int(np.rint(u)), int(np.rint(v)), int(np.rint(s))
                inside = 0 <= xi < W and 0 <= yi < H and 0 <= zi < D
                for c in range(C):
                    out[b, c, z, y, x] = vol[b, c, zi, yi, xi] if inside else 0.0
                continue
            fx0, fy0, fz0 = math.floor(u), math.floor(v), math.floor(s)
            tx, ty, tz = u - fx0, v - fy0, s - fz0
            x0, y0, z0 = int(fx0), int(fy0), int(fz0)
            for c in range(C):
                acc = 0.0
                for dz in range(2):
                    zz = z0 + dz
                    if zz < 0 or zz >= D:
                        continue
                    wz = tz if dz else 1.0 - tz
                    for dy in range(2):
                        yy = y0 + dy
                        if yy < 0 or yy >= H:
                            continue
                        wzy = wz * (ty if dy else 1.0 - ty)
                        if 0 <= x0 < W:
                            acc += wzy * (1.0 - tx) * vol[b, c, zz, yy, x0]
                        if 0 <= x0 + 1 < W:
                            acc += wzy * tx * vol[b, c, zz, yy, x0 + 1]
                out[b, c, z, y, x] = acc


@njit(**_OPTS)
def backward(vol, mat, gout, gvol, rowgrad, mode, pad, need_vol, need_mat, bands, lo, hi):
    """Gradients of :func:`forward` for units ``[lo, hi)``: ``gvol`` by depth bands, ``rowgrad`` ``(B, D'H', 12)``."""
    B, C, D, H, W = vol.shape
    Do, Ho, Wo = gout.shape[2], gout.shape[3], gout.shape[4]
    for unit in range(lo, hi):
        b = unit // bands
        k = unit - b * bands
        s0 = (k * D) // bands
        s1 = ((k + 1) * D) // bands
        o0 = (k * Do * Ho) // bands
        o1 = ((k + 1) * Do * Ho) // bands
        m = mat[b]
        for row in range(Do * Ho):
            own = need_mat and o0 <= row < o1
            if not own and not need_vol:
                continue
            z = row // Ho
            y = row - z * Ho
            acc = np.zeros(12)
            for x in range(Wo):
                u, v, s, gu, gv, gs = _point(m, x, y, z, W, H, D, pad)
                if mode == 1:
                    xi, yi, zi = int(np.rint(u)), int(np.rint(v)), int(np.rint(s))
                    if need_vol and 0 <= xi < W and 0 <= yi < H and s0 <= zi < s1:
                        for c in range(C):
                            gvol[b, c, zi, yi, xi] += gout[b, c, z, y, x]
                    continue
                fx0, fy0, fz0 = math.floor(u), math.floor(v), math.floor(s)
                tx, ty, tz = u - fx0, v - fy0, s - fz0
                x0, y0, z0 = int(fx0), int(fy0), int(fz0)
                du = 0.0
                dv = 0.0
                ds = 0.0
                for dz in range(2):
                    zz = z0 + dz
                    if zz < 0 or zz >= D:
                        continue
                    wz = tz if dz else 1.0 - tz
                    sz = 1.0 if dz else -1.0
                    mine = need_vol and s0 <= zz < s1
                    if not mine and not own:
                        continue
                    for dy in range(2):
                        yy = y0 + dy
                        if yy < 0 or yy >= H:
                            continue
                        wy = ty if dy else 1.0 - ty
                        sy = 1.0 if dy else -1.0
                        for dx in range(2):
                            xx = x0 + dx
                            if xx < 0 or xx >= W:
                                continue
                            wx = tx if dx else 1.0 - tx
                            sx = 1.0 if dx else -1.0
                            for c in range(C):
                                g = gout[b, c, z, y, x]
                                if mine:
                                    gvol[b, c, zz, yy, xx] += wz * wy * wx * g
                                if own:
                                    gval = g * vol[b, c, zz, yy, xx]
                                    du += sx * wy * wz * gval
                                    dv += sy * wx * wz * gval
                                    ds += sz * wx * wy * gval
                if own:
                    du *= gu
                    dv *= gv
                    ds *= gs
                    for j, p in enumerate((x, y, z, 1)):
                        acc[j] += du * p
                        acc[4 + j] += dv * p
                        acc[8 + j] += ds * p
            if own:
                for j in range(12):
                    rowgrad[b, row, j] = acc[j]
