"""numba kernels of the CPU backend: a batch of src->dst pixel matrices checked and inverted in one call.

A public warp receives ``A`` (src->dst) and samples with ``M = A^-1`` (dst->src). On small inputs
the torch ops of an inverse and its checks (``linalg.inv_ex``, ``isfinite``, a host read each)
cost more than the sampling itself, so the CPU backend does them here, in float64, in one compiled
call: :func:`prepare` checks every matrix (finite entries; for an affine call the last row exactly
``0 .. 0 1``), inverts it in closed form (the 2x2 or 3x3 linear block by its adjugate, then the
translation; a full 3x3 adjugate for a homography) and reports the first bad matrix. A matrix is
*singular* when its determinant is 0 or its inverse is not finite.

:func:`inverse_grad` is the chain rule back through the inverse: ``dL/dA = -M^T (dL/dM) M^T``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__: list[str] = []

_OPTS = dict(cache=True, nogil=True, error_model="numpy")

#: :func:`prepare` status codes.
OK, NON_FINITE, SINGULAR, NOT_AFFINE = 0, 1, 2, 3


@njit(**_OPTS)
def _inv3(a, out):
    """``out = a^-1`` (3x3, float64) by the adjugate; False if singular."""
    c00 = a[1, 1] * a[2, 2] - a[1, 2] * a[2, 1]
    c01 = a[1, 2] * a[2, 0] - a[1, 0] * a[2, 2]
    c02 = a[1, 0] * a[2, 1] - a[1, 1] * a[2, 0]
    det = a[0, 0] * c00 + a[0, 1] * c01 + a[0, 2] * c02
    if det == 0.0 or not math.isfinite(det):
        return False
    r = 1.0 / det
    out[0, 0] = c00 * r
    out[1, 0] = c01 * r
    out[2, 0] = c02 * r
    out[0, 1] = (a[0, 2] * a[2, 1] - a[0, 1] * a[2, 2]) * r
    out[1, 1] = (a[0, 0] * a[2, 2] - a[0, 2] * a[2, 0]) * r
    out[2, 1] = (a[0, 1] * a[2, 0] - a[0, 0] * a[2, 1]) * r
    out[0, 2] = (a[0, 1] * a[1, 2] - a[0, 2] * a[1, 1]) * r
    out[1, 2] = (a[0, 2] * a[1, 0] - a[0, 0] * a[1, 2]) * r
    out[2, 2] = (a[0, 0] * a[1, 1] - a[0, 1] * a[1, 0]) * r
    return True


@njit(**_OPTS)
def _inv_affine(a, d, out):
    """``out = a^-1`` for an affine ``(d+1, d+1)`` ``a`` (last row ``0 .. 0 1``); False if singular."""
    out[:, :] = 0.0
    out[d, d] = 1.0
    if d == 2:
        det = a[0, 0] * a[1, 1] - a[0, 1] * a[1, 0]
        if det == 0.0 or not math.isfinite(det):
            return False
        r = 1.0 / det
        out[0, 0] = a[1, 1] * r
        out[0, 1] = -a[0, 1] * r
        out[1, 0] = -a[1, 0] * r
        out[1, 1] = a[0, 0] * r
    elif not _inv3(a[:3, :3], out[:3, :3]):
        return False
    for i in range(d):
        t = 0.0
        for j in range(d):
            t -= out[i, j] * a[j, d]
        out[i, d] = t
    return True


@njit(**_OPTS)
def prepare(A, d, affine, m):
    """Check and invert ``A`` ``(B, r, d+1)`` (``r = d`` or ``d + 1``; rows beyond ``r`` are ``0 .. 0 1``).

    Writes ``m[b] = A_b^-1`` (``(B, d+1, d+1)`` float64). Returns ``(status, index, axis_aligned)``:
    the status of the first bad matrix (``OK``, ``NON_FINITE``, ``SINGULAR``, ``NOT_AFFINE``) and
    its index, and whether every ``m[b]`` is axis-aligned (2-D: no rotation/shear, affine).
    """
    B, r = A.shape[0], A.shape[1]
    n = d + 1
    a = np.zeros((n, n))
    aligned = True
    for b in range(B):
        for i in range(n):
            for j in range(n):
                a[i, j] = float(A[b, i, j]) if i < r else (1.0 if j == d else 0.0)
                if not math.isfinite(a[i, j]):
                    return NON_FINITE, b, False
        last = True
        for j in range(d):
            last = last and a[d, j] == 0.0
        last = last and a[d, d] == 1.0
        if not last and (affine or d != 2):
            return NOT_AFFINE, b, False
        ok = _inv_affine(a, d, m[b]) if last else _inv3(a, m[b])
        if not ok:
            return SINGULAR, b, False
        for i in range(n):
            for j in range(n):
                if not math.isfinite(m[b, i, j]):
                    return SINGULAR, b, False
        if d == 2:
            aligned = aligned and last and m[b, 0, 1] == 0.0 and m[b, 1, 0] == 0.0
    return OK, 0, aligned and d == 2


@njit(**_OPTS)
def inverse_grad(m, gm, out):
    """``out[b] = -m_b^T gm_b m_b^T`` (float64): ``dL/dA`` from ``dL/dM`` for ``M = A^-1``."""
    B, n = m.shape[0], m.shape[1]
    t = np.empty((n, n))
    for b in range(B):
        for i in range(n):
            for j in range(n):
                s = 0.0
                for k in range(n):
                    s += m[b, k, i] * gm[b, k, j]
                t[i, j] = s
        for i in range(n):
            for j in range(n):
                s = 0.0
                for k in range(n):
                    s += t[i, k] * m[b, j, k]
                out[b, i, j] = -s
