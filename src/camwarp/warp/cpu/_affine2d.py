"""numba kernels of the CPU backend: the affine and perspective bilinear sampler with zeros/border padding, and theta maps.

Output row ``y`` of an affine map reads the source along the line ``u = a x + ub``,
``v = c x + vb`` (float64); a perspective map divides by ``w = e x + wb`` (a point with
``w <= 0``, behind the camera, reads far outside the image, as the reference). Every pixel takes the same branch-free path: the coordinate is clamped
(``border``: to the image; ``zeros``: to ``[-2, W + 1]``, which changes no tap), the first tap is
``l = clip(floor(u), 0, W - 2)`` and taps ``l``, ``l + 1`` get the triangle weights
``max(0, 1 - |u - j|)``. Near and beyond the edges this moves the 2-tap window inside the image
and gives the outside tap weight 0, so there are no bounds checks, no edge cases and no reads
outside the image, and the value is ``grid_sample``'s ``sum_taps w * p`` (zeros outside) up to
float rounding. The forward computes a row's taps in one vectorized loop, then gathers the
channels; nothing per pixel outlives the row (no grid). ``reflection`` and images narrower than
2 pixels stay in :mod:`._kernels2d`.

The backward takes the same windows per output row, scatters the image gradient in raster order
(adding only the taps in its band of input rows: deterministic, as :mod:`._kernels2d`) and sums
the matrix gradient in float64 per output row. :func:`theta_matrix` / :func:`theta_grad` map torch's
normalized ``theta`` to the pixel matrix and the row sums back to ``d loss / d theta``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__: list[str] = []

_OPTS = dict(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})


@njit(**_OPTS)
def _axis(u, n, pad):
    """One axis: first tap ``l = clip(floor(u), 0, n - 2)`` and the weights of taps ``l`` and ``l + 1``.

    The weights are the triangle filter ``max(0, 1 - |u - j|)`` of torch's bilinear rule with
    zeros outside the image; ``zeros`` clamps ``u`` to ``[-2, n + 1]`` (no tap changes), ``border``
    to ``[0, n - 1]``. Both taps are always inside the image (``n >= 2``).
    """
    if pad == 1:
        u = min(max(u, 0.0), n - 1.0)
    else:
        u = min(max(u, -2.0), n + 1.0)
    lo = min(max(int(math.floor(u)), 0), n - 2)
    d = u - lo
    return lo, max(0.0, 1.0 - abs(d)), max(0.0, 1.0 - abs(d - 1.0))


@njit(inline="always", **_OPTS)
def _behind(W, H):
    """Where a point behind the camera (``w <= 0``) reads: the reference's normalized ``-4``, far outside."""
    return (-3.0 * W - 1.0) / 2.0, (-3.0 * H - 1.0) / 2.0


@njit(**_OPTS)
def forward(img, mat, out, pad, persp, lo, hi):
    """``out[b, c, y, x] = bilinear(img[b, c], M_b (x, y, 1))`` for the flat output rows ``[lo, hi)``.

    ``padding`` 0 (zeros) or 1 (border); the image is at least 2 x 2. ``persp``: divide by the
    third coordinate ``w`` (a point with ``w <= 0`` reads as far outside the image).
    """
    B, C, H, W = img.shape
    Ho, Wo = out.shape[2], out.shape[3]
    src = img.reshape(B * C * H * W)
    dst = out.reshape(B * C * Ho * Wo)
    idx = np.empty(Wo, dtype=np.uint64)
    wx0 = np.empty(Wo, dtype=img.dtype)
    wx1 = np.empty(Wo, dtype=img.dtype)
    wy0 = np.empty(Wo, dtype=img.dtype)
    wy1 = np.empty(Wo, dtype=img.dtype)
    one = np.uint64(1)
    Wu = np.uint64(W)
    W1 = np.uint64(W + 1)
    plane = np.uint64(H * W)
    oplane = np.uint64(Ho * Wo)
    for r in range(lo, hi):
        b = r // Ho
        y = r - b * Ho
        a0 = mat[b, 0, 0]
        a1 = mat[b, 1, 0]
        ub = mat[b, 0, 1] * y + mat[b, 0, 2]
        vb = mat[b, 1, 1] * y + mat[b, 1, 2]
        if persp:
            a2 = mat[b, 2, 0]
            wb = mat[b, 2, 1] * y + mat[b, 2, 2]
            far_u, far_v = _behind(W, H)
            for x in range(Wo):  # the row's taps: a vectorized loop
                w = a2 * x + wb
                front = w > 0.0
                iw = 1.0 / w if front else 0.0
                xl, ax0, ax1 = _axis((a0 * x + ub) * iw if front else far_u, W, pad)
                yl, ay0, ay1 = _axis((a1 * x + vb) * iw if front else far_v, H, pad)
                idx[x] = np.uint64(yl * W + xl)
                wx0[x] = ax0
                wx1[x] = ax1
                wy0[x] = ay0
                wy1[x] = ay1
        else:
            for x in range(Wo):  # the row's taps: a vectorized loop
                xl, ax0, ax1 = _axis(a0 * x + ub, W, pad)
                yl, ay0, ay1 = _axis(a1 * x + vb, H, pad)
                idx[x] = np.uint64(yl * W + xl)
                wx0[x] = ax0
                wx1[x] = ax1
                wy0[x] = ay0
                wy1[x] = ay1
        pb = np.uint64(b * C) * plane
        ob = np.uint64(b * C) * oplane + np.uint64(y * Wo)
        if C == 3:  # RGB: one pass, the taps read once for the three planes
            for x in range(np.uint64(Wo)):
                i = idx[x] + pb
                ax0 = wx0[x]
                ax1 = wx1[x]
                ay0 = wy0[x]
                ay1 = wy1[x]
                j = ob + x
                for c in range(3):
                    top = ax0 * src[i] + ax1 * src[i + one]
                    bot = ax0 * src[i + Wu] + ax1 * src[i + W1]
                    dst[j] = ay0 * top + ay1 * bot
                    i += plane
                    j += oplane
            continue
        for c in range(C):
            for x in range(np.uint64(Wo)):
                i = idx[x] + pb
                ax0 = wx0[x]
                ax1 = wx1[x]
                top = ax0 * src[i] + ax1 * src[i + one]
                bot = ax0 * src[i + Wu] + ax1 * src[i + W1]
                dst[ob + x] = wy0[x] * top + wy1[x] * bot
            pb += plane
            ob += oplane


@njit(**_OPTS)
def theta_matrix(theta, W, H, Wo, Ho, m):
    """``m[b] = D_(W,H) @ [theta_b; 0 0 1] @ N_(W',H')`` (float64): the dst->src pixel matrix of ``theta``.

    ``N`` maps output pixels to torch's normalized coordinates (``x_n = (2 x + 1) / W' - 1``), ``D``
    normalized input coordinates to pixels (``u = (W / 2) u_n + (W - 1) / 2``).
    """
    nx, ny = 2.0 / Wo, 2.0 / Ho
    cx, cy = 1.0 / Wo - 1.0, 1.0 / Ho - 1.0
    for b in range(theta.shape[0]):
        for i in range(2):
            s = W / 2.0 if i == 0 else H / 2.0
            t0 = float(theta[b, i, 0])
            t1 = float(theta[b, i, 1])
            t2 = float(theta[b, i, 2])
            m[b, i, 0] = s * (t0 * nx)
            m[b, i, 1] = s * (t1 * ny)
            m[b, i, 2] = s * (t0 * cx + t1 * cy + t2) + (s - 0.5)
        m[b, 2, 0] = 0.0
        m[b, 2, 1] = 0.0
        m[b, 2, 2] = 1.0


@njit(**_OPTS)
def theta_grad(rowgrad, W, H, Wo, Ho, out):
    """``out[b] = (D^T G_b N^T)[:2]`` with ``G_b = sum_y rowgrad[b, y]`` (fixed order): ``d loss / d theta``."""
    nx, ny = 2.0 / Wo, 2.0 / Ho
    cx, cy = 1.0 / Wo - 1.0, 1.0 / Ho - 1.0
    B, Ho_, J = rowgrad.shape
    for b in range(B):
        for i in range(2):
            g0 = 0.0
            g1 = 0.0
            g2 = 0.0
            for y in range(Ho_):
                g0 += rowgrad[b, y, 3 * i]
                g1 += rowgrad[b, y, 3 * i + 1]
                g2 += rowgrad[b, y, 3 * i + 2]
            s = W / 2.0 if i == 0 else H / 2.0
            out[b, i, 0] = s * (g0 * nx + g2 * cx)
            out[b, i, 1] = s * (g1 * ny + g2 * cy)
            out[b, i, 2] = s * g2


@njit(**_OPTS)
def _slope(d):
    """``d/dd max(0, 1 - |d|)`` with the one-sided choice of torch's ``floor`` rule at the kinks."""
    return (-1.0 if d >= 0.0 else 1.0) if -1.0 <= d < 1.0 else 0.0


@njit(inline="always", **_OPTS)
def _windows(mat, y, W, H, pad, persp, plane0, s_i, s_y, s_f):
    """Output row ``y``'s 2 x 2 windows: first tap ``s_i``, its input row ``s_y``, weights and slopes ``s_f``.

    ``s_f`` rows: x weights of taps 0, 1; y weights of taps 0, 1; then the derivatives of those
    weights wrt ``u`` (rows 4, 5) and ``v`` (rows 6, 7), times the padding's ``du/du_raw`` (border:
    0 where the coordinate was clamped; 0 behind the camera). For ``persp``: row 8 ``1 / w`` (0
    behind the camera), rows 9, 10 the raw ``(u, v)``. One branch-free, vectorizable loop.
    """
    a0 = mat[0, 0]
    a1 = mat[1, 0]
    ub = mat[0, 1] * y + mat[0, 2]
    vb = mat[1, 1] * y + mat[1, 2]
    a2 = mat[2, 0]
    wb = mat[2, 1] * y + mat[2, 2]
    far_u, far_v = _behind(W, H)
    for x in range(s_i.shape[0]):
        if persp:
            w = a2 * x + wb
            front = w > 0.0
            iw = 1.0 / w if front else 0.0
            u = (a0 * x + ub) * iw if front else far_u
            v = (a1 * x + vb) * iw if front else far_v
            g = 1.0 if front else 0.0
            s_f[8, x] = iw
            s_f[9, x] = u
            s_f[10, x] = v
        else:
            u = a0 * x + ub
            v = a1 * x + vb
            g = 1.0
        if pad == 1:
            gu = g if 0.0 < u < W - 1 else 0.0
            gv = g if 0.0 < v < H - 1 else 0.0
            u = min(max(u, 0.0), W - 1.0)
            v = min(max(v, 0.0), H - 1.0)
        else:
            gu = gv = g
            u = min(max(u, -2.0), W + 1.0)
            v = min(max(v, -2.0), H + 1.0)
        xl = min(max(int(math.floor(u)), 0), W - 2)
        yl = min(max(int(math.floor(v)), 0), H - 2)
        dx = u - xl
        dy = v - yl
        s_i[x] = plane0 + yl * W + xl
        s_y[x] = yl
        s_f[0, x] = max(0.0, 1.0 - abs(dx))
        s_f[1, x] = max(0.0, 1.0 - abs(dx - 1.0))
        s_f[2, x] = max(0.0, 1.0 - abs(dy))
        s_f[3, x] = max(0.0, 1.0 - abs(dy - 1.0))
        s_f[4, x] = _slope(dx) * gu
        s_f[5, x] = _slope(dx - 1.0) * gu
        s_f[6, x] = _slope(dy) * gv
        s_f[7, x] = _slope(dy - 1.0) * gv


@njit(inline="always", **_OPTS)
def _scatter(gsrc, gdst, s_i, s_y, s_f, pc, gc, W, r0, r1, whole):
    """Add one output row's gradient ``gdst[gc:]`` into ``gsrc`` through its windows, input rows ``[r0, r1)`` only."""
    for x in range(s_i.shape[0]):
        i = s_i[x] + pc
        g = gdst[gc + x]
        if whole or r0 <= s_y[x] < r1:
            g0 = s_f[2, x] * g
            gsrc[i] += s_f[0, x] * g0
            gsrc[i + 1] += s_f[1, x] * g0
        if whole or r0 <= s_y[x] + 1 < r1:
            g1 = s_f[3, x] * g
            gsrc[i + W] += s_f[0, x] * g1
            gsrc[i + W + 1] += s_f[1, x] * g1


@njit(inline="always", **_OPTS)
def _du_dv(src, i, W, g, s_f, x):
    """``g`` times the derivatives of the bilinear value at window ``i`` (pixel ``x``'s ``s_f``) along ``u`` and ``v``."""
    wx0 = s_f[0, x]
    wx1 = s_f[1, x]
    wy0 = s_f[2, x]
    wy1 = s_f[3, x]
    sx0 = s_f[4, x]
    sx1 = s_f[5, x]
    sy0 = s_f[6, x]
    sy1 = s_f[7, x]
    p00 = src[i]
    p01 = src[i + 1]
    p10 = src[i + W]
    p11 = src[i + W + 1]
    return (g * (wy0 * (sx0 * p00 + sx1 * p01) + wy1 * (sx0 * p10 + sx1 * p11)),
            g * (wx0 * (sy0 * p00 + sy1 * p10) + wx1 * (sy0 * p01 + sy1 * p11)))


@njit(inline="always", **_OPTS)
def _row_grad(src, gdst, s_i, s_f, go, W, y, C, plane, oplane, persp, out):
    """Sums of ``d loss / d M`` along output row ``y`` into ``out[:9]`` (float64).

    ``du``, ``dv``: a pixel's loss derivatives wrt its sampled coordinate, summed over channels;
    affine: ``(du x, du y, du, dv x, dv y, dv, 0, 0, 0)``. Perspective (``u = (M_0 p) / w``):
    ``du / w`` and ``dv / w`` in place of ``du``, ``dv``, and ``dw = -(u du + v dv) / w`` in the
    last three.
    """
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = s8 = 0.0
    for x in range(s_i.shape[0]):
        i = s_i[x]
        if C == 1:  # loop-invariant: compiled as two loops
            du, dv = _du_dv(src, i, W, gdst[go + x], s_f, x)
        else:
            du = dv = 0.0
            for c in range(C):
                a, b = _du_dv(src, i + c * plane, W, gdst[go + c * oplane + x], s_f, x)
                du += a
                dv += b
        if persp:
            iw = s_f[8, x]
            du *= iw
            dv *= iw
            dw = -(du * s_f[9, x] + dv * s_f[10, x])
            s6 += dw * x
            s7 += dw * y
            s8 += dw
        s0 += du * x
        s1 += du * y
        s2 += du
        s3 += dv * x
        s4 += dv * y
        s5 += dv
    out[0] = s0
    out[1] = s1
    out[2] = s2
    out[3] = s3
    out[4] = s4
    out[5] = s5
    out[6] = s6
    out[7] = s7
    out[8] = s8


@njit(**_OPTS)
def backward(img, mat, gout, gimg, rowgrad, pad, persp, need_img, need_mat, bands, lo, hi):
    """Gradients of :func:`forward` (zeros/border, image at least 2 x 2) for work units ``b bands + k`` in ``[lo, hi)``.

    The same contract as :func:`._kernels2d.backward`: unit ``(b, k)`` (band ``k`` of ``bands``)
    adds into input rows ``[k H / bands, (k+1) H / bands)`` of ``gimg[b]``, scanning every output
    row of item ``b`` in raster order (so each input pixel receives its contributions in one fixed
    order whatever the number of bands), and writes output rows ``[k H' / bands, (k+1) H' / bands)``
    of ``rowgrad[b]`` (``(B, H', 9)`` float64 sums along each row of ``d loss / d M_b``; entries
    6-8 stay 0 unless ``persp``). Per output row: :func:`_windows` (forward's branch-free 2 x 2 windows), then one
    scatter loop for the image gradient and one gather loop for the matrix gradient (the value's
    derivative along an axis is ``sum_taps slope(u - j) p_j``, times the padding's).
    """
    B, C, H, W = img.shape
    Ho, Wo = gout.shape[2], gout.shape[3]
    src = img.reshape(B * C * H * W)
    gsrc = gimg.reshape(gimg.size)
    gdst = gout.reshape(gout.size)
    plane = H * W
    oplane = Ho * Wo
    s_i = np.empty(Wo, dtype=np.int64)
    s_y = np.empty(Wo, dtype=np.int64)
    s_f = np.empty((11, Wo), dtype=img.dtype)
    for unit in range(lo, hi):
        b = unit // bands
        k = unit - b * bands
        r0 = (k * H) // bands
        r1 = ((k + 1) * H) // bands
        o0 = (k * Ho) // bands
        o1 = ((k + 1) * Ho) // bands
        for y in range(Ho):
            own = need_mat and o0 <= y < o1
            if not own and not need_img:
                continue
            _windows(mat[b], y, W, H, pad, persp, b * C * plane, s_i, s_y, s_f)
            go = b * C * oplane + y * Wo
            if need_img:
                for c in range(C):
                    _scatter(gsrc, gdst, s_i, s_y, s_f, c * plane, go + c * oplane, W, r0, r1, bands == 1)
            if own:
                _row_grad(src, gdst, s_i, s_f, go, W, y, C, plane, oplane, persp, rowgrad[b, y])
