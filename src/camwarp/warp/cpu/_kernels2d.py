"""numba kernels of the CPU backend: 2-D affine/perspective sampling, forward and backward.

No ``(B, H', W', 2)`` grid is materialized: each output row computes its source points
``(u, v) = M (x, y, 1)`` (homogeneous divide for a perspective ``M``) into a few scratch rows of
length ``W'`` (a vectorizable loop), then gathers every channel from them. The sampling rules are
torch's ``grid_sample(align_corners=False)`` written in pixels (see :mod:`camwarp.warp.reference`):
``border`` clips the coordinate to ``[0, W-1]``; ``reflection`` reflects it about ``-0.5`` and
``W - 0.5`` then clips; ``zeros`` drops taps outside the image; ``nearest`` rounds half to even; a
perspective point with ``w <= 0`` reads at the constant pixel ``((-3W-1)/2, (-3H-1)/2)`` (the
reference's normalized ``-4``) and gets no matrix gradient.

Determinism (bit-identical across runs *and* thread counts): the image gradient is owned by
input-row bands; every band scans the output rows of its item in raster order and adds only the
taps in its rows, so each input pixel receives its contributions in the same order however many
bands there are. The matrix gradient is summed in float64 per output row, then over rows in a fixed
order (:func:`reduce_rows`).

Codes: ``mode`` 0 bilinear, 1 nearest; ``pad`` 0 zeros, 1 border, 2 reflection.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__: list[str] = []

_OPTS = dict(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
_FAR = 1e9  # coordinates are clamped to +-_FAR (far outside any image) so int conversion is safe
_NS = 9     # scratch rows: u, v, gu, gv, ur, vr, w, tx, ty


@njit(**_OPTS)
def _pad(x, size, pad):
    """torch's ``compute_source_index_set_grad`` in pixels: ``(coordinate, d coordinate / d x)``."""
    g = 1.0
    if pad == 2 and not (-0.5 <= x <= size - 0.5):
        y = x + 0.5
        if y < 0.0:
            g = -1.0
            y = -y
        extra = np.fmod(y, float(size))
        flips = math.floor(y / size)
        if flips % 2 == 0:
            x = extra - 0.5
        else:
            x = size - extra - 0.5
            g = -g
    if pad != 0:
        if x <= 0.0:
            return 0.0, 0.0
        if x >= size - 1:
            return float(size - 1), 0.0
    return x, g


@njit(**_OPTS)
def _row(m, y, persp, pad, W, H, s, i0, grads):
    """Fill scratch ``s`` (``(_NS, W')``) and ``i0`` (``(2, W')`` int) with output row ``y``'s taps.

    ``s[0:2]`` padded ``(u, v)``, ``s[2:4]`` their derivative wrt the raw coordinates (0 behind the
    camera), ``s[4:6]`` raw ``(u, v)``, ``s[6]`` ``w``, ``s[7:9]`` the bilinear fractions; ``i0``
    the floor (bilinear) or rounded (nearest) integer coordinates. ``s[2:4]`` and ``s[6]`` are only
    filled for a perspective map or when ``grads``.
    """
    Wo = s.shape[1]
    ub = m[0, 1] * y + m[0, 2]
    vb = m[1, 1] * y + m[1, 2]
    if persp:
        wb = m[2, 1] * y + m[2, 2]
        for x in range(Wo):
            w = m[2, 0] * x + wb
            s[6, x] = w if w > 0.0 else 1.0
            if w > 0.0:
                s[4, x] = (m[0, 0] * x + ub) / w
                s[5, x] = (m[1, 0] * x + vb) / w
                s[2, x] = 1.0
            else:
                s[4, x] = (-3.0 * W - 1.0) / 2.0
                s[5, x] = (-3.0 * H - 1.0) / 2.0
                s[2, x] = 0.0
            s[3, x] = s[2, x]
    else:
        for x in range(Wo):
            s[4, x] = m[0, 0] * x + ub
            s[5, x] = m[1, 0] * x + vb
        if grads:
            s[2:4] = 1.0
            s[6] = 1.0
    if pad == 0:
        for x in range(Wo):
            s[0, x] = max(-_FAR, min(s[4, x], _FAR))
            s[1, x] = max(-_FAR, min(s[5, x], _FAR))
    else:
        for x in range(Wo):
            u, gu = _pad(s[4, x], W, pad)
            v, gv = _pad(s[5, x], H, pad)
            s[0, x] = u
            s[1, x] = v
            s[2, x] *= gu
            s[3, x] *= gv
    for x in range(Wo):
        fu = math.floor(s[0, x])
        fv = math.floor(s[1, x])
        s[7, x] = s[0, x] - fu
        s[8, x] = s[1, x] - fv
        i0[0, x] = int(fu)
        i0[1, x] = int(fv)


@njit(**_OPTS)
def _round_row(s, i0):
    for x in range(s.shape[1]):
        i0[0, x] = int(np.rint(s[0, x]))
        i0[1, x] = int(np.rint(s[1, x]))


@njit(**_OPTS)
def forward(img, mat, out, mode, pad, persp, lo, hi):
    """``out[b, c, y, x] = sample(img[b, c], M_b (x, y, 1))`` for the flat output rows ``[lo, hi)``."""
    B, C, H, W = img.shape
    Ho, Wo = out.shape[2], out.shape[3]
    s = np.empty((_NS, Wo))
    i0 = np.empty((2, Wo), dtype=np.int64)
    for r in range(lo, hi):
        b = r // Ho
        y = r - b * Ho
        _row(mat[b], y, persp, pad, W, H, s, i0, False)
        if mode == 1:
            _round_row(s, i0)
            for c in range(C):
                p = img[b, c]
                o = out[b, c, y]
                for x in range(Wo):
                    xi = i0[0, x]
                    yi = i0[1, x]
                    o[x] = p[yi, xi] if (0 <= xi < W and 0 <= yi < H) else 0.0
            continue
        for c in range(C):
            p = img[b, c]
            o = out[b, c, y]
            for x in range(Wo):
                x0 = i0[0, x]
                y0 = i0[1, x]
                tx = s[7, x]
                ty = s[8, x]
                if 0 <= x0 and x0 + 1 < W and 0 <= y0 and y0 + 1 < H:
                    top = p[y0, x0] + tx * (p[y0, x0 + 1] - p[y0, x0])
                    bot = p[y0 + 1, x0] + tx * (p[y0 + 1, x0 + 1] - p[y0 + 1, x0])
                    o[x] = top + ty * (bot - top)
                else:
                    acc = 0.0
                    for dy in range(2):
                        yy = y0 + dy
                        if 0 <= yy < H:
                            wy = ty if dy else 1.0 - ty
                            if 0 <= x0 < W:
                                acc += wy * (1.0 - tx) * p[yy, x0]
                            if 0 <= x0 + 1 < W:
                                acc += wy * tx * p[yy, x0 + 1]
                    o[x] = acc


@njit(**_OPTS)
def _tap(p, yy, xx, H, W):
    return p[yy, xx] if (0 <= yy < H and 0 <= xx < W) else 0.0


@njit(**_OPTS)
def backward(img, mat, gout, gimg, rowgrad, mode, pad, persp, need_img, need_mat, bands, lo, hi):
    """Gradients of :func:`forward` for work units ``b bands + k`` in ``[lo, hi)``.

    Scatters into ``gimg`` and writes per-output-row matrix partials. Work unit ``(b, k)``: band
    ``k`` of ``bands`` owns input rows ``[k H / bands, (k+1) H / bands)`` of ``gimg[b]`` and output
    rows ``[k H' / bands, (k+1) H' / bands)`` of ``rowgrad[b]`` (``(B, H', 9)`` float64:
    ``d loss / d M_b`` summed along each output row). One pass per pixel over the row's
    :func:`_row` table, channels innermost.
    """
    B, C, H, W = img.shape
    Ho, Wo = gout.shape[2], gout.shape[3]
    s = np.empty((_NS, Wo))
    i0 = np.empty((2, Wo), dtype=np.int64)
    edge = np.empty(Wo, dtype=np.int64)
    for unit in range(lo, hi):
        b = unit // bands
        k = unit - b * bands
        r0 = (k * H) // bands
        r1 = ((k + 1) * H) // bands
        o0 = (k * Ho) // bands
        o1 = ((k + 1) * Ho) // bands
        m = mat[b]
        for y in range(Ho):
            own = need_mat and mode == 0 and o0 <= y < o1
            if not own and not need_img:
                continue
            if mode == 1:
                _row(m, y, persp, pad, W, H, s, i0, False)
                _round_row(s, i0)
                for c in range(C):
                    for x in range(Wo):
                        xi = i0[0, x]
                        yi = i0[1, x]
                        if 0 <= xi < W and r0 <= yi < r1:
                            gimg[b, c, yi, xi] += gout[b, c, y, x]
                continue
            _row(m, y, persp, pad, W, H, s, i0, True)
            a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = a8 = 0.0
            n_edge = 0
            # Two passes keep the hot loop small (which is what makes it fast): interior pixels
            # first, then the few whose taps leave the image or the band, in a fixed order.
            for x in range(Wo):
                x0 = i0[0, x]
                y0 = i0[1, x]
                if not (0 <= x0 and x0 + 1 < W and 0 <= y0 and y0 + 1 < H):
                    edge[n_edge] = x  # the split depends on the image only, not on the band
                    n_edge += 1
                    continue
                tx = s[7, x]
                ty = s[8, x]
                in0 = need_img and r0 <= y0 < r1
                in1 = need_img and r0 <= y0 + 1 < r1
                du = 0.0
                dv = 0.0
                for c in range(C):
                    g = gout[b, c, y, x]
                    gy = ty * g
                    if in0:
                        gimg[b, c, y0, x0] += (g - gy) * (1.0 - tx)
                        gimg[b, c, y0, x0 + 1] += (g - gy) * tx
                    if in1:
                        gimg[b, c, y0 + 1, x0] += gy * (1.0 - tx)
                        gimg[b, c, y0 + 1, x0 + 1] += gy * tx
                    if own:
                        v00, v01 = img[b, c, y0, x0], img[b, c, y0, x0 + 1]
                        v10, v11 = img[b, c, y0 + 1, x0], img[b, c, y0 + 1, x0 + 1]
                        du += g * ((v01 - v00) * (1.0 - ty) + (v11 - v10) * ty)
                        dv += g * ((v10 - v00) * (1.0 - tx) + (v11 - v01) * tx)
                if own:
                    du *= s[2, x]
                    dv *= s[3, x]
                    if persp:
                        # u = (m0 . p) / w: d u / d m0j = p_j / w, d u / d m2j = -u p_j / w.
                        du /= s[6, x]
                        dv /= s[6, x]
                        dw = -(du * s[4, x] + dv * s[5, x])
                        a6 += dw * x
                        a7 += dw * y
                        a8 += dw
                    a0 += du * x
                    a1 += du * y
                    a2 += du
                    a3 += dv * x
                    a4 += dv * y
                    a5 += dv
            for e in range(n_edge):
                x = edge[e]
                x0 = i0[0, x]
                y0 = i0[1, x]
                tx = s[7, x]
                ty = s[8, x]
                in0x = 0 <= x0 < W
                in1x = 0 <= x0 + 1 < W
                b0 = need_img and r0 <= y0 < r1
                b1 = need_img and r0 <= y0 + 1 < r1
                du = 0.0
                dv = 0.0
                for c in range(C):
                    g = gout[b, c, y, x]
                    if b0 and in0x:
                        gimg[b, c, y0, x0] += (1.0 - tx) * (1.0 - ty) * g
                    if b0 and in1x:
                        gimg[b, c, y0, x0 + 1] += tx * (1.0 - ty) * g
                    if b1 and in0x:
                        gimg[b, c, y0 + 1, x0] += (1.0 - tx) * ty * g
                    if b1 and in1x:
                        gimg[b, c, y0 + 1, x0 + 1] += tx * ty * g
                    if own:
                        p = img[b, c]
                        v00, v01 = _tap(p, y0, x0, H, W), _tap(p, y0, x0 + 1, H, W)
                        v10, v11 = _tap(p, y0 + 1, x0, H, W), _tap(p, y0 + 1, x0 + 1, H, W)
                        du += g * ((v01 - v00) * (1.0 - ty) + (v11 - v10) * ty)
                        dv += g * ((v10 - v00) * (1.0 - tx) + (v11 - v01) * tx)
                if own:
                    du *= s[2, x]
                    dv *= s[3, x]
                    if persp:
                        du /= s[6, x]
                        dv /= s[6, x]
                        dw = -(du * s[4, x] + dv * s[5, x])
                        a6 += dw * x
                        a7 += dw * y
                        a8 += dw
                    a0 += du * x
                    a1 += du * y
                    a2 += du
                    a3 += dv * x
                    a4 += dv * y
                    a5 += dv
            if own:
                r = rowgrad[b, y]
                r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8] = a0, a1, a2, a3, a4, a5, a6, a7, a8


@njit(**_OPTS)
def reduce_rows(rowgrad, out):
    """``out[b, j] = sum_y rowgrad[b, y, j]`` in a fixed (sequential) order."""
    B, Ho, J = rowgrad.shape
    for b in range(B):
        for j in range(J):
            acc = 0.0
            for y in range(Ho):
                acc += rowgrad[b, y, j]
            out[b, j] = acc
