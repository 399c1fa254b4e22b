"""The autograd layer of the Triton warp kernels, registered as torch custom ops.

``camwarp::sample2d`` / ``camwarp::sample3d`` (forward) and ``camwarp::sample2d_backward`` /
``camwarp::sample3d_backward`` are ``torch.library.custom_op`` s with fake (meta) kernels, and the
forward ops carry their backward through ``register_autograd``: this is the
``torch.autograd.Function`` layer of STYLE.md in the form ``torch.compile`` traces without a graph
break. Saved for backward: the input and the matrix (no grid, no output).
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor

from .sample2d import _launch_sample2d_bwd, _launch_sample2d_fwd
from .sample3d import _launch_sample3d_bwd, _launch_sample3d_fwd

__all__ = ["sample2d", "sample3d"]


def _device(x: Tensor):
    return torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext()


@torch.library.custom_op("camwarp::sample2d", mutates_args=())
def _sample2d(x: Tensor, m: Tensor, width: int, height: int, mode: int, pad: int, persp: bool) -> Tensor:
    with _device(x):
        return _launch_sample2d_fwd(x, m, (width, height), mode, pad, persp)


@_sample2d.register_fake
def _(x, m, width, height, mode, pad, persp):
    fmt = torch.channels_last if (not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)) \
        else torch.contiguous_format
    return torch.empty((x.shape[0], x.shape[1], height, width), dtype=x.dtype, device=x.device, memory_format=fmt)


@torch.library.custom_op("camwarp::sample2d_backward", mutates_args=())
def _sample2d_backward(g: Tensor, x: Tensor, m: Tensor, mode: int, pad: int, persp: bool, need_x: bool,
                       need_m: bool) -> tuple[Tensor, Tensor]:
    with _device(x):
        return _launch_sample2d_bwd(g, x, m, mode, pad, persp, need_x, need_m)


@_sample2d_backward.register_fake
def _(g, x, m, mode, pad, persp, need_x, need_m):
    return (torch.empty_like(x) if need_x else x.new_empty(0)), (torch.empty_like(m) if need_m else m.new_empty(0))


def _setup2d(ctx, inputs, output):
    x, m, _, _, mode, pad, persp = inputs
    ctx.save_for_backward(x, m)
    ctx.args = (mode, pad, persp)


def _backward2d(ctx, g):
    x, m = ctx.saved_tensors
    need_x, need_m = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    gx, gm = _sample2d_backward(g.contiguous(), x, m, *ctx.args, need_x, need_m)
    return (gx if need_x else None), (gm if need_m else None), None, None, None, None, None


_sample2d.register_autograd(_backward2d, setup_context=_setup2d)


@torch.library.custom_op("camwarp::sample3d", mutates_args=())
def _sample3d(x: Tensor, m: Tensor, width: int, height: int, depth: int, mode: int, pad: int) -> Tensor:
    with _device(x):
        return _launch_sample3d_fwd(x, m, (width, height, depth), mode, pad)


@_sample3d.register_fake
def _(x, m, width, height, depth, mode, pad):
    return x.new_empty((x.shape[0], x.shape[1], depth, height, width))


@torch.library.custom_op("camwarp::sample3d_backward", mutates_args=())
def _sample3d_backward(g: Tensor, x: Tensor, m: Tensor, mode: int, pad: int, need_x: bool,
                       need_m: bool) -> tuple[Tensor, Tensor]:
    with _device(x):
        return _launch_sample3d_bwd(g, x, m, mode, pad, need_x, need_m)


@_sample3d_backward.register_fake
def _(g, x, m, mode, pad, need_x, need_m):
    return (torch.empty_like(x) if need_x else x.new_empty(0)), (torch.empty_like(m) if need_m else m.new_empty(0))


def _setup3d(ctx, inputs, output):
    x, m, _, _, _, mode, pad = inputs
    ctx.save_for_backward(x, m)
    ctx.args = (mode, pad)


def _backward3d(ctx, g):
    x, m = ctx.saved_tensors
    need_x, need_m = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    gx, gm = _sample3d_backward(g.contiguous(), x, m, *ctx.args, need_x, need_m)
    return (gx if need_x else None), (gm if need_m else None), None, None, None, None, None


_sample3d.register_autograd(_backward3d, setup_context=_setup3d)

sample2d = _sample2d
sample3d = _sample3d
