"""numba kernels of the CPU backend: separable sampling for axis-aligned maps (crop, resize, flip).

An axis-aligned dst->src map ``u = ax x + tx``, ``v = ay y + ty`` samples every output pixel from
the product of two 1-D filters, so ``out = Wy @ img @ Wx^T`` with band-sparse ``Wy`` ``(H', H)``
and ``Wx`` ``(W', W)``. The bands are stored as tap tables ``(index, weight)`` of ``K`` taps per
output index, built with exactly the 2-D sampler's rules per axis (padding, half-to-even rounding),
so the result equals the 2-D bilinear/nearest sampler up to float rounding. The antialiasing
filters of :func:`camwarp.warp.antialias.resample_separable` (triangle, Keys, area) are such
tables too: the same passes run them from that module's own tap tables. Each output row is one
vertical pass per four taps (contiguous, vectorized) into a scratch row of the touched source
columns, then one horizontal pass (unrolled for two and four taps): extra memory is one row per
thread.

The adjoint (gradient wrt the image) runs the same passes transposed, one ``(b, c)`` plane per work
unit in a fixed order: deterministic across runs and thread counts.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._kernels2d import _pad

__all__: list[str] = []

_OPTS = dict(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})


@njit(**_OPTS)
def taps(scale, offset, n_out, n_in, mode, pad, K):
    """Tap tables ``(idx (B, n_out, K) int64, wts (B, n_out, K) float64)`` of ``c = scale * i + offset``.

    The 2-D sampler's rules on one axis: ``mode`` 0 bilinear (``K = 2``), 1 nearest (``K = 1``);
    ``pad`` 0 zeros, 1 border, 2 reflection. Unused taps have weight 0 and index 0.
    """
    B = scale.shape[0]
    idx = np.zeros((B, n_out, K), dtype=np.int64)
    wts = np.zeros((B, n_out, K))
    for b in range(B):
        for i in range(n_out):
            c, g = _pad(scale[b] * i + offset[b], n_in, pad)
            if mode == 1:
                j = int(np.rint(c))
                if 0 <= j < n_in:
                    idx[b, i, 0] = j
                    wts[b, i, 0] = 1.0
                continue
            f = math.floor(c)
            j = int(f)
            t = c - f
            if 0 <= j < n_in:
                idx[b, i, 0] = j
                wts[b, i, 0] = 1.0 - t
            if 0 <= j + 1 < n_in:
                idx[b, i, 1] = j + 1
                wts[b, i, 1] = t
    return idx, wts


@njit(**_OPTS)
def band(idx, wts, n_in, dtype_like):
    """Tap tables ``(B, n, K)`` -> banded ``(start (B, n) int64, w (B, n, K'))`` with taps ``start + k``.

    ``K'`` is the widest run of non-zero taps (at most ``n_in``); ``start`` is clamped so that
    ``start + K' <= n_in``. Weights take ``dtype_like``'s dtype, the image's: the passes then run
    in it (float32 images in float32, as the reference). Taps at the same index are summed.
    """
    B, n, K = idx.shape
    width = 1
    for b in range(B):
        for i in range(n):
            lo = n_in
            hi = -1
            for k in range(K):
                if wts[b, i, k] != 0.0:
                    lo = min(lo, idx[b, i, k])
                    hi = max(hi, idx[b, i, k])
            width = max(width, hi - lo + 1)
    width = min(width, n_in)
    start = np.zeros((B, n), dtype=np.int64)
    w = np.zeros((B, n, width), dtype=dtype_like.dtype)
    for b in range(B):
        for i in range(n):
            lo = n_in
            for k in range(K):
                if wts[b, i, k] != 0.0:
                    lo = min(lo, idx[b, i, k])
            lo = max(0, min(lo, n_in - width))
            start[b, i] = lo
            for k in range(K):
                if wts[b, i, k] != 0.0:
                    w[b, i, idx[b, i, k] - lo] += wts[b, i, k]
    return start, w


@njit(**_OPTS)
def _span(sx, wx, b):
    """Smallest and one-past-largest source column used by item ``b``'s horizontal taps."""
    lo = 1 << 62
    hi = 0
    for i in range(sx.shape[1]):
        lo = min(lo, sx[b, i])
        hi = max(hi, sx[b, i] + wx.shape[2])
    if hi <= lo:
        return 0, 0
    return lo, hi


@njit(**_OPTS)
def spans(sx, wx):
    """``(B, 2)``: each item's span of source columns, for :func:`forward`."""
    out = np.zeros((sx.shape[0], 2), dtype=np.int64)
    for b in range(sx.shape[0]):
        out[b, 0], out[b, 1] = _span(sx, wx, b)
    return out


@njit(**_OPTS)
def _vertical(plane, y0, w, Ky, x0, n, row):
    """``row[:n] = sum_k w[k] plane[y0 + k, x0:x0+n]``, up to four taps per pass over the row."""
    k = 0
    while k < Ky:
        m = min(4, Ky - k)
        s0 = plane[y0 + k, x0:x0 + n]
        w0 = w[k]
        if m == 4:
            s1 = plane[y0 + k + 1, x0:x0 + n]
            s2 = plane[y0 + k + 2, x0:x0 + n]
            s3 = plane[y0 + k + 3, x0:x0 + n]
            w1, w2, w3 = w[k + 1], w[k + 2], w[k + 3]
            if k == 0:
                for j in range(n):
                    row[j] = w0 * s0[j] + w1 * s1[j] + w2 * s2[j] + w3 * s3[j]
            else:
                for j in range(n):
                    row[j] += w0 * s0[j] + w1 * s1[j] + w2 * s2[j] + w3 * s3[j]
        elif m == 3:
            s1 = plane[y0 + k + 1, x0:x0 + n]
            s2 = plane[y0 + k + 2, x0:x0 + n]
            w1, w2 = w[k + 1], w[k + 2]
            if k == 0:
                for j in range(n):
                    row[j] = w0 * s0[j] + w1 * s1[j] + w2 * s2[j]
            else:
                for j in range(n):
                    row[j] += w0 * s0[j] + w1 * s1[j] + w2 * s2[j]
        elif m == 2:
            s1 = plane[y0 + k + 1, x0:x0 + n]
            w1 = w[k + 1]
            if k == 0:
                for j in range(n):
                    row[j] = w0 * s0[j] + w1 * s1[j]
            else:
                for j in range(n):
                    row[j] += w0 * s0[j] + w1 * s1[j]
        else:
            if k == 0:
                for j in range(n):
                    row[j] = w0 * s0[j]
            else:
                for j in range(n):
                    row[j] += w0 * s0[j]
        k += m


@njit(**_OPTS)
def forward(img, sy, wy, sx, wx, span, out, lo, hi):
    """``out[b, c] = Wy_b @ img[b, c] @ Wx_b^T`` for the flat output rows ``(b C + c) H' + y`` in ``[lo, hi)``.

    Banded tables (:func:`band`): output row ``y`` reads input rows ``sy + k`` with weights ``wy``
    (one vectorized pass per four taps); output column ``x`` reads columns ``sx + k`` of the
    vertically filtered row (unrolled for up to four taps).
    """
    B, C, H, W = img.shape
    Ho, Wo = out.shape[2], out.shape[3]
    Ky, Kx = wy.shape[2], wx.shape[2]
    row = np.empty(W, dtype=img.dtype)
    row2 = np.empty(W, dtype=img.dtype)
    r = lo
    while r < hi:
        b = r // (C * Ho)
        c = (r // Ho) % C
        y = r % Ho
        x0, x1 = span[b, 0], span[b, 1]
        _vertical(img[b, c], sy[b, y], wy[b, y], Ky, x0, x1 - x0, row)
        o = out[b, c, y]
        st = sx[b]
        ww = wx[b]
        if Kx == 4 and r + 1 < hi and (r + 1) // (C * Ho) == b:
            # Two output rows of one item share the horizontal taps: read them once for both.
            b2 = (r + 1) // (C * Ho)
            c2 = ((r + 1) // Ho) % C
            y2 = (r + 1) % Ho
            _vertical(img[b2, c2], sy[b2, y2], wy[b2, y2], Ky, x0, x1 - x0, row2)
            o2 = out[b2, c2, y2]
            for x in range(Wo):
                s0 = st[x] - x0
                w0, w1, w2, w3 = ww[x, 0], ww[x, 1], ww[x, 2], ww[x, 3]
                o[x] = w0 * row[s0] + w1 * row[s0 + 1] + w2 * row[s0 + 2] + w3 * row[s0 + 3]
                o2[x] = w0 * row2[s0] + w1 * row2[s0 + 1] + w2 * row2[s0 + 2] + w3 * row2[s0 + 3]
            r += 2
            continue
        if Kx == 4:
            for x in range(Wo):
                s0 = st[x] - x0
                o[x] = ww[x, 0] * row[s0] + ww[x, 1] * row[s0 + 1] + ww[x, 2] * row[s0 + 2] + ww[x, 3] * row[s0 + 3]
        elif Kx == 2:
            for x in range(Wo):
                s0 = st[x] - x0
                o[x] = ww[x, 0] * row[s0] + ww[x, 1] * row[s0 + 1]
        else:
            for x in range(Wo):
                s0 = st[x] - x0
                acc = ww[x, 0] * row[s0]
                for k2 in range(1, Kx):
                    acc += ww[x, k2] * row[s0 + k2]
                o[x] = acc
        r += 1


@njit(**_OPTS)
def adjoint(gout, sy, wy, sx, wx, gimg, lo, hi):
    """``gimg[b, c] += Wy_b^T @ gout[b, c] @ Wx_b`` for planes ``b C + c`` in ``[lo, hi)``, rows in order."""
    B, C, H, W = gimg.shape
    Ho, Wo = gout.shape[2], gout.shape[3]
    Ky, Kx = wy.shape[2], wx.shape[2]
    row = np.empty(W, dtype=gimg.dtype)
    for p in range(lo, hi):
        b = p // C
        c = p % C
        x0, x1 = _span(sx, wx, b)
        for y in range(Ho):
            row[: x1 - x0] = 0.0
            g = gout[b, c, y]
            for x in range(Wo):
                s0 = sx[b, x] - x0
                for k in range(Kx):
                    row[s0 + k] += wx[b, x, k] * g[x]
            for k in range(Ky):
                wk = wy[b, y, k]
                dst = gimg[b, c, sy[b, y] + k, x0:x1]
                for j in range(x1 - x0):
                    dst[j] += wk * row[j]
