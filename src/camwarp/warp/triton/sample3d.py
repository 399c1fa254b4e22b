"""Fused Triton kernels sampling volumes by a 3-D affine dst->src voxel matrix (trilinear, nearest).

The 3-D twin of :mod:`camwarp.warp.triton.sample2d`, same layers and rules: a program owns
``BLOCK_P`` output voxels of one item, computes their source points ``(u, v, s)`` = (width,
height, depth) once and loops over channel blocks; the volume gradient goes through int64
fixed-point atomics (bit-identical in any order), the matrix gradient through per-program sums.
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
def _axis(m_ptr, r, smr, smc, xo, yo, zo, size, FOLD: tl.constexpr):
    """Source coordinate along axis ``r``: ``M_r p`` (``FOLD``: plus the reference's last-row term)."""
    a = tl.load(m_ptr + r * smr)
    b = tl.load(m_ptr + r * smr + smc)
    c = tl.load(m_ptr + r * smr + 2 * smc)
    d = tl.load(m_ptr + r * smr + 3 * smc)
    if FOLD:
        k = (size - 1) * 0.5
        a -= k * tl.load(m_ptr + 3 * smr)
        b -= k * tl.load(m_ptr + 3 * smr + smc)
        c -= k * tl.load(m_ptr + 3 * smr + 2 * smc)
        d += k * (1.0 - tl.load(m_ptr + 3 * smr + 3 * smc))
    return a * xo + b * yo + c * zo + d


@triton.jit
def _sample3d_fwd_kernel(x_ptr, m_ptr, out_ptr, C, D, H, W, Do, Ho, Wo, tiles,
                         sxn, sxc, sxd, sxh, sxw, son, soc, sod, soh, sow, smb, smr, smc,
                         MODE: tl.constexpr, PAD: tl.constexpr, FOLD: tl.constexpr, CDT: tl.constexpr,
                         BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """``out[b, c, zo, yo, xo] = sample(x[b, c], M_b (xo, yo, zo, 1))``.

    Program ``b * tiles + t`` owns the flat output voxels ``t BLOCK_P + [0, BLOCK_P)`` of item
    ``b``. Trilinear (``MODE`` 0): 8 taps, masked outside the volume; nearest (``MODE`` 1): ``rint``.
    """
    pid = tl.program_id(0)
    b = pid // tiles
    p = (pid % tiles) * BLOCK_P + tl.arange(0, BLOCK_P)
    pm = p < Do * Ho * Wo
    zi = p // (Ho * Wo)
    yi = (p // Wo) % Ho
    xi = p % Wo
    zo, yo, xo = zi.to(CDT), yi.to(CDT), xi.to(CDT)
    mb = m_ptr + b * smb
    u, gu = _pad(_axis(mb, 0, smr, smc, xo, yo, zo, W, FOLD), W, PAD)
    v, gv = _pad(_axis(mb, 1, smr, smc, xo, yo, zo, H, FOLD), H, PAD)
    s, gs = _pad(_axis(mb, 2, smr, smc, xo, yo, zo, D, FOLD), D, PAD)
    xb = x_ptr + b.to(tl.int64) * sxn
    ob = out_ptr + b.to(tl.int64) * son + zi * sod + yi * soh + xi * sow
    cr = tl.arange(0, BLOCK_C)
    if MODE == 1:
        fx, fy, fz = _rint(u), _rint(v), _rint(s)
        valid = pm & _inside(fx, W) & _inside(fy, H) & _inside(fz, D)
        off = _index(fz, D) * sxd + _index(fy, H) * sxh + _index(fx, W) * sxw
        for c0 in range(0, C, BLOCK_C):
            c = c0 + cr
            val = tl.load(xb + c[None, :] * sxc + off[:, None], mask=valid[:, None] & (c < C)[None, :], other=0.0)
            tl.store(ob[:, None] + c[None, :] * soc, val, mask=pm[:, None] & (c < C)[None, :])
    else:
        fx, fy, fz = tl.floor(u), tl.floor(v), tl.floor(s)
        tx, ty, tz = u - fx, v - fy, s - fz
        for c0 in range(0, C, BLOCK_C):
            c = c0 + cr
            cm = (c < C)[None, :]
            acc = tl.zeros([BLOCK_P, BLOCK_C], CDT)
            for k in tl.static_range(8):
                dx = k % 2
                dy = (k // 2) % 2
                dz = k // 4
                wx = tx if dx == 1 else 1.0 - tx
                wy = ty if dy == 1 else 1.0 - ty
                wz = tz if dz == 1 else 1.0 - tz
                valid = pm & _inside(fx + dx, W) & _inside(fy + dy, H) & _inside(fz + dz, D)
                off = _index(fz + dz, D) * sxd + _index(fy + dy, H) * sxh + _index(fx + dx, W) * sxw
                val = tl.load(xb + c[None, :] * sxc + off[:, None], mask=valid[:, None] & cm, other=0.0).to(CDT)
                acc += (wx * wy * wz)[:, None] * val
            tl.store(ob[:, None] + c[None, :] * soc, acc.to(out_ptr.dtype.element_ty), mask=pm[:, None] & cm)


@triton.jit
def _sample3d_bwd_kernel(g_ptr, x_ptr, m_ptr, gi_ptr, scale_ptr, part_ptr, C, D, H, W, Do, Ho, Wo, tiles,
                         sgn, sgc, sgd, sgh, sgw, sxn, sxc, sxd, sxh, sxw, smb, smr, smc,
                         MODE: tl.constexpr, PAD: tl.constexpr, FOLD: tl.constexpr, NEED_X: tl.constexpr,
                         NEED_M: tl.constexpr, CDT: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """Gradients of :func:`_sample3d_fwd_kernel`: int64 fixed-point volume atomics into ``gi``
    (contiguous ``(B, C, D, H, W)``) and per-program matrix sums ``part[pid, 0:12]``.
    """
    pid = tl.program_id(0)
    b = pid // tiles
    p = (pid % tiles) * BLOCK_P + tl.arange(0, BLOCK_P)
    pm = p < Do * Ho * Wo
    zi = p // (Ho * Wo)
    yi = (p // Wo) % Ho
    xi = p % Wo
    zo, yo, xo = zi.to(CDT), yi.to(CDT), xi.to(CDT)
    mb = m_ptr + b * smb
    u, gu = _pad(_axis(mb, 0, smr, smc, xo, yo, zo, W, FOLD), W, PAD)
    v, gv = _pad(_axis(mb, 1, smr, smc, xo, yo, zo, H, FOLD), H, PAD)
    s, gs = _pad(_axis(mb, 2, smr, smc, xo, yo, zo, D, FOLD), D, PAD)
    gb = g_ptr + b.to(tl.int64) * sgn + zi * sgd + yi * sgh + xi * sgw
    xb = x_ptr + b.to(tl.int64) * sxn
    ib = gi_ptr + b.to(tl.int64) * C * D * H * W
    cr = tl.arange(0, BLOCK_C)
    scale = tl.load(scale_ptr)
    if MODE == 1:
        if NEED_X:
            fx, fy, fz = _rint(u), _rint(v), _rint(s)
            valid = pm & _inside(fx, W) & _inside(fy, H) & _inside(fz, D)
            off = (_index(fz, D) * H + _index(fy, H)) * W + _index(fx, W)
            for c0 in range(0, C, BLOCK_C):
                c = c0 + cr
                msk = valid[:, None] & (c < C)[None, :]
                g = tl.load(gb[:, None] + c[None, :] * sgc, mask=msk, other=0.0).to(CDT)
                tl.atomic_add(ib + c[None, :] * D * H * W + off[:, None], (g * scale).to(tl.int64), mask=msk)
    else:
        fx, fy, fz = tl.floor(u), tl.floor(v), tl.floor(s)
        tx, ty, tz = u - fx, v - fy, s - fz
        du = tl.zeros([BLOCK_P], CDT)
        dv = tl.zeros([BLOCK_P], CDT)
        ds = tl.zeros([BLOCK_P], CDT)
        for c0 in range(0, C, BLOCK_C):
            c = c0 + cr
            cm = (c < C)[None, :]
            g = tl.load(gb[:, None] + c[None, :] * sgc, mask=pm[:, None] & cm, other=0.0).to(CDT)
            for k in tl.static_range(8):
                dx = k % 2
                dy = (k // 2) % 2
                dz = k // 4
                wx = tx if dx == 1 else 1.0 - tx
                wy = ty if dy == 1 else 1.0 - ty
                wz = tz if dz == 1 else 1.0 - tz
                valid = (pm & _inside(fx + dx, W) & _inside(fy + dy, H) & _inside(fz + dz, D))[:, None] & cm
                jx, jy, jz = _index(fx + dx, W), _index(fy + dy, H), _index(fz + dz, D)
                if NEED_X:
                    tl.atomic_add(ib + c[None, :] * D * H * W + ((jz * H + jy) * W + jx)[:, None],
                                  (g * scale * (wx * wy * wz)[:, None]).to(tl.int64), mask=valid)
                if NEED_M:
                    val = tl.load(xb + c[None, :] * sxc + (jz * sxd + jy * sxh + jx * sxw)[:, None], mask=valid,
                                  other=0.0).to(CDT)
                    gval = tl.sum(g * val, axis=1)
                    du += (2.0 * dx - 1.0) * wy * wz * gval
                    dv += (2.0 * dy - 1.0) * wx * wz * gval
                    ds += (2.0 * dz - 1.0) * wx * wy * gval
        if NEED_M:
            du = tl.where(pm, du * gu, 0.0)
            dv = tl.where(pm, dv * gv, 0.0)
            ds = tl.where(pm, ds * gs, 0.0)
            pb = part_ptr + pid * 12
            tl.store(pb + 0, tl.sum(du * xo, axis=0))
            tl.store(pb + 1, tl.sum(du * yo, axis=0))
            tl.store(pb + 2, tl.sum(du * zo, axis=0))
            tl.store(pb + 3, tl.sum(du, axis=0))
            tl.store(pb + 4, tl.sum(dv * xo, axis=0))
            tl.store(pb + 5, tl.sum(dv * yo, axis=0))
            tl.store(pb + 6, tl.sum(dv * zo, axis=0))
            tl.store(pb + 7, tl.sum(dv, axis=0))
            tl.store(pb + 8, tl.sum(ds * xo, axis=0))
            tl.store(pb + 9, tl.sum(ds * yo, axis=0))
            tl.store(pb + 10, tl.sum(ds * zo, axis=0))
            tl.store(pb + 11, tl.sum(ds, axis=0))


def _launch_sample3d_fwd(x: Tensor, m: Tensor, size: tuple[int, int, int], mode: int, pad: int) -> Tensor:
    """Allocate the output and launch the forward kernel; returns ``(B, C, D', H', W')``."""
    B, C, D, H, W = x.shape
    Wo, Ho, Do = size
    out = torch.empty((B, C, Do, Ho, Wo), dtype=x.dtype, device=x.device)
    if out.numel() == 0:
        return out
    mm = m.to(compute_dtype(x))
    block_p, block_c, warps, tiles = tile_settings(Do * Ho * Wo, C, B, "sample_affine3d")
    _sample3d_fwd_kernel[(B * tiles,)](
        x, mm, out, C, D, H, W, Do, Ho, Wo, tiles, *x.stride(), *out.stride(), *mm.stride(),
        MODE=mode, PAD=pad, FOLD=mm.shape[1] == 4, CDT=_TL[compute_dtype(x)], BLOCK_P=block_p,
        BLOCK_C=block_c, num_warps=warps)
    return out


def _launch_sample3d_bwd(g: Tensor, x: Tensor, m: Tensor, mode: int, pad: int, need_x: bool,
                         need_m: bool) -> tuple[Tensor, Tensor]:
    """Launch the backward kernel; returns ``(grad_x, grad_m)`` (empty tensors where not needed)."""
    B, C, D, H, W = x.shape
    Do, Ho, Wo = g.shape[-3:]
    cdt = compute_dtype(x)
    mm = m.to(cdt)
    block_p, block_c, warps, tiles = tile_settings(Do * Ho * Wo, C, B, "sample_affine3d")
    acc = torch.zeros(x.shape if need_x else (1,), dtype=torch.int64, device=x.device)
    part = torch.zeros((B * tiles, 12) if need_m else (1,), dtype=cdt, device=x.device)
    scale = fixed_point_scale(g, Do * Ho * Wo, cdt)
    if g.numel() and (need_x or need_m):
        _sample3d_bwd_kernel[(B * tiles,)](
            g, x, mm, acc, scale, part, C, D, H, W, Do, Ho, Wo, tiles, *g.stride(), *x.stride(), *mm.stride(),
            MODE=mode, PAD=pad, FOLD=mm.shape[1] == 4, NEED_X=need_x, NEED_M=need_m and mode == 0,
            CDT=_TL[cdt], BLOCK_P=block_p, BLOCK_C=block_c, num_warps=warps)
    gx = (acc.to(torch.float64) / scale.to(torch.float64)).to(x.dtype) if need_x else x.new_empty(0)
    gm = m.new_empty(0)
    if need_m:
        flat = (part.reshape(B, tiles, 12).to(torch.float64).sum(1) if mode == 0
                else torch.zeros(B, 12, dtype=torch.float64, device=x.device))
        full = torch.zeros(B, 4, 4, dtype=torch.float64, device=x.device)
        full[:, :3] = flat.reshape(B, 3, 4)
        if m.shape[1] == 4:
            full[:, 3] = -sum((n - 1) / 2 * full[:, i] for i, n in enumerate((W, H, D)))
        gm = full[:, : m.shape[1]].to(m.dtype)
    return gx, gm
