"""Fused Triton kernels sampling images by a 2-D affine or perspective dst->src pixel matrix.

Layers (STYLE.md): ``_sample2d_fwd_kernel`` / ``_sample2d_bwd_kernel`` (the math), and
``_launch_sample2d_fwd`` / ``_launch_sample2d_bwd`` (grid, block sizes from
:func:`._settings.tile_settings`, allocation, strides). The autograd and custom-op layers are in
:mod:`camwarp.warp.triton.ops`; the public functions in :mod:`camwarp.warp.triton`.

No grid is materialized: a program owns ``BLOCK_P`` output pixels of one item, computes their
source points once and loops over the channels in ``BLOCK_C`` blocks, reading and writing through
strides (NCHW or channels-last alike).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from ._common import _index, _inside, _pad, _rint
from ._settings import compute_dtype, fixed_point_scale, tile_settings

__all__: list[str] = []

_TL = {torch.float32: tl.float32, torch.float64: tl.float64}


@triton.jit
def _source(m_ptr, smr, smc, xo, yo, W, H, PERSP: tl.constexpr, FOLD: tl.constexpr):
    """Source points ``(u, v, w, ok)`` of output pixels ``(xo, yo)`` (``w`` = 1, ``ok`` = True if affine).

    ``FOLD``: the matrix is an affine ``(3, 3)`` whose last row ``L`` the reference's normalized
    theta also reads, ``u = M_0 p + (W - 1) / 2 (1 - L p)`` (likewise ``v``); folded in here.
    """
    m00 = tl.load(m_ptr)
    m01 = tl.load(m_ptr + smc)
    m02 = tl.load(m_ptr + 2 * smc)
    m10 = tl.load(m_ptr + smr)
    m11 = tl.load(m_ptr + smr + smc)
    m12 = tl.load(m_ptr + smr + 2 * smc)
    if FOLD:
        l0 = tl.load(m_ptr + 2 * smr)
        l1 = tl.load(m_ptr + 2 * smr + smc)
        l2 = tl.load(m_ptr + 2 * smr + 2 * smc)
        kx = (W - 1) * 0.5
        ky = (H - 1) * 0.5
        m00, m01, m02 = m00 - kx * l0, m01 - kx * l1, m02 + kx * (1.0 - l2)
        m10, m11, m12 = m10 - ky * l0, m11 - ky * l1, m12 + ky * (1.0 - l2)
    u = m00 * xo + m01 * yo + m02
    v = m10 * xo + m11 * yo + m12
    w = tl.full(u.shape, 1.0, u.dtype)
    ok = xo == xo  # all true
    if PERSP:
        w = tl.load(m_ptr + 2 * smr) * xo + tl.load(m_ptr + 2 * smr + smc) * yo + tl.load(m_ptr + 2 * smr + 2 * smc)
        ok = w > 0
        ws = tl.where(ok, w, 1.0)
        # Behind the camera: the reference's constant normalized point -4, i.e. pixel (-3n - 1) / 2.
        u = tl.where(ok, u / ws, (-3.0 * W - 1.0) * 0.5)
        v = tl.where(ok, v / ws, (-3.0 * H - 1.0) * 0.5)
        w = ws
    return u, v, w, ok


@triton.jit
def _sample2d_fwd_kernel(x_ptr, m_ptr, out_ptr, C, H, W, Ho, Wo, tiles,
                         sxn, sxc, sxh, sxw, son, soc, soh, sow, smb, smr, smc,
                         MODE: tl.constexpr, PAD: tl.constexpr, PERSP: tl.constexpr, FOLD: tl.constexpr,
                         CDT: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """``out[b, c, yo, xo] = sample(x[b, c], M_b (xo, yo, 1))``.

    Program ``pid`` = ``b * tiles + t`` owns the flat output pixels ``p = t BLOCK_P + [0, BLOCK_P)``
    of item ``b`` (``yo = p // W'``, ``xo = p % W'``; ``p < H' W'`` masks the tail). Bilinear
    (``MODE`` 0): taps ``floor(u) + {0, 1}`` x ``floor(v) + {0, 1}`` with weights ``(1 - t, t)``;
    a tap outside the image is masked (reads 0, as ``zeros`` padding; ``border``/``reflection``
    move the coordinate first, :func:`._common._pad`). Nearest (``MODE`` 1): ``rint`` of the
    padded coordinate. Loads use clamped indices and validity masks, so no address leaves the image.
    """
    pid = tl.program_id(0)
    b = pid // tiles
    p = (pid % tiles) * BLOCK_P + tl.arange(0, BLOCK_P)
    pm = p < Ho * Wo
    yo = (p // Wo).to(CDT)
    xo = (p % Wo).to(CDT)
    u, v, w, ok = _source(m_ptr + b * smb, smr, smc, xo, yo, W, H, PERSP, FOLD)
    u, gu = _pad(u, W, PAD)
    v, gv = _pad(v, H, PAD)
    xb = x_ptr + b.to(tl.int64) * sxn
    ob = out_ptr + b.to(tl.int64) * son + (p // Wo) * soh + (p % Wo) * sow
    cr = tl.arange(0, BLOCK_C)
    if MODE == 1:
        fx = _rint(u)
        fy = _rint(v)
        valid = pm & _inside(fx, W) & _inside(fy, H)
        off = _index(fy, H) * sxh + _index(fx, W) * sxw
        for c0 in range(0, C, BLOCK_C):
            c = c0 + cr
            msk = valid[:, None] & (c < C)[None, :]
            val = tl.load(xb + c[None, :] * sxc + off[:, None], mask=msk, other=0.0)
            tl.store(ob[:, None] + c[None, :] * soc, val, mask=pm[:, None] & (c < C)[None, :])
    else:
        fx = tl.floor(u)
        fy = tl.floor(v)
        tx = u - fx
        ty = v - fy
        vx0 = _inside(fx, W)
        vx1 = _inside(fx + 1.0, W)
        vy0 = pm & _inside(fy, H)
        vy1 = pm & _inside(fy + 1.0, H)
        ix0 = _index(fx, W) * sxw
        ix1 = _index(fx + 1.0, W) * sxw
        iy0 = _index(fy, H) * sxh
        iy1 = _index(fy + 1.0, H) * sxh
        for c0 in range(0, C, BLOCK_C):
            c = c0 + cr
            cm = (c < C)[None, :]
            cb = xb + c[None, :] * sxc
            v00 = tl.load(cb + (iy0 + ix0)[:, None], mask=(vy0 & vx0)[:, None] & cm, other=0.0).to(CDT)
            v01 = tl.load(cb + (iy0 + ix1)[:, None], mask=(vy0 & vx1)[:, None] & cm, other=0.0).to(CDT)
            v10 = tl.load(cb + (iy1 + ix0)[:, None], mask=(vy1 & vx0)[:, None] & cm, other=0.0).to(CDT)
            v11 = tl.load(cb + (iy1 + ix1)[:, None], mask=(vy1 & vx1)[:, None] & cm, other=0.0).to(CDT)
            top = v00 + tx[:, None] * (v01 - v00)
            bot = v10 + tx[:, None] * (v11 - v10)
            val = top + ty[:, None] * (bot - top)
            tl.store(ob[:, None] + c[None, :] * soc, val.to(out_ptr.dtype.element_ty), mask=pm[:, None] & cm)


@triton.jit
def _sample2d_bwd_kernel(g_ptr, x_ptr, m_ptr, gi_ptr, scale_ptr, part_ptr, C, H, W, Ho, Wo, tiles,
                         sgn, sgc, sgh, sgw, sxn, sxc, sxh, sxw, smb, smr, smc,
                         MODE: tl.constexpr, PAD: tl.constexpr, PERSP: tl.constexpr, FOLD: tl.constexpr,
                         NEED_X: tl.constexpr, NEED_M: tl.constexpr,
                         CDT: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """Gradients of :func:`_sample2d_fwd_kernel`, deterministic.

    Image: each tap adds ``round_to_zero(g w scale)`` to the int64 image ``gi`` (contiguous
    ``(B, C, H, W)``) with integer atomics, which commute: bit-identical sums in any order.
    Matrix: ``d loss / d (u, v)`` per pixel (summed over channels), times the padding derivative,
    chained to the 9 matrix entries and summed over the program's pixels (``tl.sum``, a fixed tree)
    into ``part[pid, 0:9]``; the launcher sums programs in a fixed order.
    """
    pid = tl.program_id(0)
    b = pid // tiles
    p = (pid % tiles) * BLOCK_P + tl.arange(0, BLOCK_P)
    pm = p < Ho * Wo
    yo = (p // Wo).to(CDT)
    xo = (p % Wo).to(CDT)
    u, v, w, ok = _source(m_ptr + b * smb, smr, smc, xo, yo, W, H, PERSP, FOLD)
    ur = u
    vr = v
    u, gu = _pad(u, W, PAD)
    v, gv = _pad(v, H, PAD)
    gb = g_ptr + b.to(tl.int64) * sgn + (p // Wo) * sgh + (p % Wo) * sgw
    xb = x_ptr + b.to(tl.int64) * sxn
    ib = gi_ptr + b.to(tl.int64) * C * H * W
    cr = tl.arange(0, BLOCK_C)
    scale = tl.load(scale_ptr)
    if MODE == 1:
        if NEED_X:
            fx = _rint(u)
            fy = _rint(v)
            valid = pm & _inside(fx, W) & _inside(fy, H)
            off = _index(fy, H) * W + _index(fx, W)
            for c0 in range(0, C, BLOCK_C):
                c = c0 + cr
                msk = valid[:, None] & (c < C)[None, :]
                g = tl.load(gb[:, None] + c[None, :] * sgc, mask=msk, other=0.0).to(CDT)
                tl.atomic_add(ib + c[None, :] * H * W + off[:, None], (g * scale).to(tl.int64), mask=msk)
    else:
        fx = tl.floor(u)
        fy = tl.floor(v)
        tx = u - fx
        ty = v - fy
        vx0 = _inside(fx, W)
        vx1 = _inside(fx + 1.0, W)
        vy0 = pm & _inside(fy, H)
        vy1 = pm & _inside(fy + 1.0, H)
        jx0 = _index(fx, W)
        jx1 = _index(fx + 1.0, W)
        jy0 = _index(fy, H)
        jy1 = _index(fy + 1.0, H)
        du = tl.zeros([BLOCK_P], CDT)
        dv = tl.zeros([BLOCK_P], CDT)
        for c0 in range(0, C, BLOCK_C):
            c = c0 + cr
            cm = (c < C)[None, :]
            g = tl.load(gb[:, None] + c[None, :] * sgc, mask=pm[:, None] & cm, other=0.0).to(CDT)
            if NEED_X:
                gs = g * scale
                cb = ib + c[None, :] * H * W
                gy1 = gs * ty[:, None]
                gy0 = gs - gy1
                tl.atomic_add(cb + (jy0 * W + jx0)[:, None], (gy0 * (1.0 - tx[:, None])).to(tl.int64),
                              mask=(vy0 & vx0)[:, None] & cm)
                tl.atomic_add(cb + (jy0 * W + jx1)[:, None], (gy0 * tx[:, None]).to(tl.int64),
                              mask=(vy0 & vx1)[:, None] & cm)
                tl.atomic_add(cb + (jy1 * W + jx0)[:, None], (gy1 * (1.0 - tx[:, None])).to(tl.int64),
                              mask=(vy1 & vx0)[:, None] & cm)
                tl.atomic_add(cb + (jy1 * W + jx1)[:, None], (gy1 * tx[:, None]).to(tl.int64),
                              mask=(vy1 & vx1)[:, None] & cm)
            if NEED_M:
                xc = xb + c[None, :] * sxc
                v00 = tl.load(xc + (jy0 * sxh + jx0 * sxw)[:, None], mask=(vy0 & vx0)[:, None] & cm, other=0.0)
                v01 = tl.load(xc + (jy0 * sxh + jx1 * sxw)[:, None], mask=(vy0 & vx1)[:, None] & cm, other=0.0)
                v10 = tl.load(xc + (jy1 * sxh + jx0 * sxw)[:, None], mask=(vy1 & vx0)[:, None] & cm, other=0.0)
                v11 = tl.load(xc + (jy1 * sxh + jx1 * sxw)[:, None], mask=(vy1 & vx1)[:, None] & cm, other=0.0)
                v00, v01, v10, v11 = v00.to(CDT), v01.to(CDT), v10.to(CDT), v11.to(CDT)
                du += tl.sum(g * ((v01 - v00) * (1.0 - ty[:, None]) + (v11 - v10) * ty[:, None]), axis=1)
                dv += tl.sum(g * ((v10 - v00) * (1.0 - tx[:, None]) + (v11 - v01) * tx[:, None]), axis=1)
        if NEED_M:
            live = pm & ok
            du = tl.where(live, du * gu / w, 0.0)
            dv = tl.where(live, dv * gv / w, 0.0)
            pb = part_ptr + pid * 9
            tl.store(pb + 0, tl.sum(du * xo, axis=0))
            tl.store(pb + 1, tl.sum(du * yo, axis=0))
            tl.store(pb + 2, tl.sum(du, axis=0))
            tl.store(pb + 3, tl.sum(dv * xo, axis=0))
            tl.store(pb + 4, tl.sum(dv * yo, axis=0))
            tl.store(pb + 5, tl.sum(dv, axis=0))
            if PERSP:
                # u = (M_0 p) / w: d u / d M_2j = -u p_j / w (du, dv already hold the 1 / w).
                dw = -(du * ur + dv * vr)
                tl.store(pb + 6, tl.sum(dw * xo, axis=0))
                tl.store(pb + 7, tl.sum(dw * yo, axis=0))
                tl.store(pb + 8, tl.sum(dw, axis=0))


def _matrix(m: Tensor, x: Tensor) -> Tensor:
    return m if m.dtype == compute_dtype(x) else m.to(compute_dtype(x))


def _launch_sample2d_fwd(x: Tensor, m: Tensor, size: tuple[int, int], mode: int, pad: int, persp: bool) -> Tensor:
    """Allocate the output (``x``'s memory format) and launch the forward kernel; returns ``(B, C, H', W')``."""
    B, C, H, W = x.shape
    Wo, Ho = size
    fmt = torch.channels_last if (x.dim() == 4 and not x.is_contiguous() and
                                  x.is_contiguous(memory_format=torch.channels_last)) else torch.contiguous_format
    out = torch.empty((B, C, Ho, Wo), dtype=x.dtype, device=x.device, memory_format=fmt)
    if out.numel() == 0:
        return out
    mm = _matrix(m, x)
    block_p, block_c, warps, tiles = tile_settings(Ho * Wo, C, B, "sample_affine")
    _sample2d_fwd_kernel[(B * tiles,)](
        x, mm, out, C, H, W, Ho, Wo, tiles, *x.stride(), *out.stride(), *mm.stride(),
        MODE=mode, PAD=pad, PERSP=persp, FOLD=(not persp and mm.shape[1] == 3), CDT=_TL[compute_dtype(x)],
        BLOCK_P=block_p, BLOCK_C=block_c, num_warps=warps)
    return out


def _launch_sample2d_bwd(g: Tensor, x: Tensor, m: Tensor, mode: int, pad: int, persp: bool, need_x: bool,
                         need_m: bool) -> tuple[Tensor, Tensor]:
    """Launch the backward kernel; returns ``(grad_x, grad_m)`` (empty tensors where not needed)."""
    B, C, H, W = x.shape
    Ho, Wo = g.shape[-2:]
    cdt = compute_dtype(x)
    gx = x.new_empty(0)
    gm = m.new_empty(0)
    mm = _matrix(m, x)
    block_p, block_c, warps, tiles = tile_settings(Ho * Wo, C, B, "sample_affine")
    acc = torch.zeros((B, C, H, W) if need_x else (1,), dtype=torch.int64, device=x.device)
    part = torch.zeros((B * tiles, 9) if need_m else (1,), dtype=cdt, device=x.device)
    scale = fixed_point_scale(g, Ho * Wo, cdt)
    if g.numel() and (need_x or need_m):
        _sample2d_bwd_kernel[(B * tiles,)](
            g, x, mm, acc, scale, part, C, H, W, Ho, Wo, tiles, *g.stride(), *x.stride(), *mm.stride(),
            MODE=mode, PAD=pad, PERSP=persp, FOLD=(not persp and mm.shape[1] == 3),
            NEED_X=need_x, NEED_M=need_m and mode == 0, CDT=_TL[cdt], BLOCK_P=block_p, BLOCK_C=block_c,
            num_warps=warps)
    if need_x:
        gx = (acc.to(torch.float64) / scale.to(torch.float64)).to(x.dtype)
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            gx = gx.contiguous(memory_format=torch.channels_last)
    if need_m:
        flat = part.reshape(B, tiles, 9).to(torch.float64).sum(1) if mode == 0 else torch.zeros(
            B, 9, dtype=torch.float64, device=x.device)
        full = flat.reshape(B, 3, 3)
        if not persp and m.shape[1] == 3:
            full[:, 2] = -(W - 1) / 2 * full[:, 0] - (H - 1) / 2 * full[:, 1]
        gm = full[:, : m.shape[1]].to(m.dtype)
    return gx, gm
