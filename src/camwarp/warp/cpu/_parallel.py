"""How the CPU backend's kernels share the cores with torch: on torch's own OpenMP threads.

Every kernel of this backend is serial over a range of independent work units
``kernel(*args, lo, hi)`` (each unit writes only its own outputs, so results do not depend on the
split). :func:`run` splits ``[0, units)`` into ``n`` contiguous ranges and runs them through a
``prange`` driver (numba ``parallel=True``) of that kernel.

Why not a Python thread pool: torch's idle OpenMP threads busy-wait for milliseconds after every
parallel op (libgomp's default spin), so a second pool finds the cores taken and a 2-thread split
of a STN backward ran no faster than one thread (measured on 2 cores: 4.8 ms either way, 2.4 ms
once the spinning had stopped). Binding numba's OpenMP threading layer to torch's own runtime
(:func:`_share_torch_openmp`) makes the ranges run on the very threads torch keeps spinning.

Forked children (DataLoader workers) run serially: GNU OpenMP is not fork-safe, and numba's
OpenMP layer terminates a child that launches a parallel region its parent had started.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable

import numba
import torch
from numba import njit, prange

from . import _affine2d, _kernels2d, _kernels3d, _separable

__all__ = ["run", "chunks"]

_PAR = dict(parallel=True, cache=True, nogil=True)
_MIN_WORK = 1 << 13  # output values per thread below which a second thread does not pay
_PID = os.getpid()  # the importing process; a forked child (another pid) stays serial


def _share_torch_openmp() -> None:
    """Put torch's OpenMP runtime first in the global symbol scope, before numba loads its own.

    numba's OpenMP layer (chosen by default when TBB is not installed) then resolves ``GOMP_*`` to
    the runtime torch already runs, one thread team for both. Linux wheels only (torch ships
    ``lib/libgomp.so.1``); elsewhere, or once numba has started its threads, nothing changes.
    """
    lib = os.path.join(os.path.dirname(torch.__file__), "lib", "libgomp.so.1")
    if sys.platform.startswith("linux") and os.path.exists(lib):
        ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)  # already loaded by torch: this only widens its scope


_share_torch_openmp()


@njit(cache=True, inline="always")
def _bounds(k, n, units):
    """Range ``k`` of ``n`` over ``[0, units)``: ``(lo, hi)``."""
    return (k * units) // n, ((k + 1) * units) // n


@njit(**_PAR)
def _affine2d_forward(n, units, *args):
    for k in prange(n):
        _affine2d.forward(*args, *_bounds(k, n, units))


@njit(**_PAR)
def _affine2d_backward(n, units, *args):
    for k in prange(n):
        _affine2d.backward(*args, *_bounds(k, n, units))


@njit(**_PAR)
def _kernels2d_forward(n, units, *args):
    for k in prange(n):
        _kernels2d.forward(*args, *_bounds(k, n, units))


@njit(**_PAR)
def _kernels2d_backward(n, units, *args):
    for k in prange(n):
        _kernels2d.backward(*args, *_bounds(k, n, units))


@njit(**_PAR)
def _kernels3d_forward(n, units, *args):
    for k in prange(n):
        _kernels3d.forward(*args, *_bounds(k, n, units))


@njit(**_PAR)
def _kernels3d_backward(n, units, *args):
    for k in prange(n):
        _kernels3d.backward(*args, *_bounds(k, n, units))


@njit(**_PAR)
def _separable_forward(n, units, *args):
    for k in prange(n):
        _separable.forward(*args, *_bounds(k, n, units))


@njit(**_PAR)
def _separable_adjoint(n, units, *args):
    for k in prange(n):
        _separable.adjoint(*args, *_bounds(k, n, units))


# One driver per kernel: numba caches a prange loop only when its callee is a global, not an argument.
_DRIVERS: dict[Callable, Callable] = {
    _affine2d.forward: _affine2d_forward, _affine2d.backward: _affine2d_backward,
    _kernels2d.forward: _kernels2d_forward, _kernels2d.backward: _kernels2d_backward,
    _kernels3d.forward: _kernels3d_forward, _kernels3d.backward: _kernels3d_backward,
    _separable.forward: _separable_forward, _separable.adjoint: _separable_adjoint,
}


def chunks(units: int, work: int, threads: int) -> int:
    """How many ranges to split ``units`` into: ``threads`` at most, fewer for small ``work``.

    ``work`` counts output values; a range below ``_MIN_WORK`` of them costs more to launch than it
    saves.
    """
    return max(1, min(threads, numba.config.NUMBA_NUM_THREADS, units, work // _MIN_WORK))


def run(kernel: Callable, units: int, work: int, *args) -> None:
    """Run ``kernel(*args, lo, hi)`` over the work units ``[0, units)``, split into contiguous ranges.

    The ranges run on numba's threads (torch's OpenMP team where :func:`_share_torch_openmp` took
    effect), as many as ``torch.get_num_threads()`` allows. Even one range goes through the
    ``prange`` driver: numba compiles the kernel differently there (results differ from a direct
    call in the last bit), and one code path keeps results bit-identical across thread counts. Work
    too small for a second range at any thread count (``work < 2 * _MIN_WORK``, a decision on the
    size alone) and forked children call the kernel directly: no thread team, no thread-count
    changes (about 5 us a call).
    """
    if os.getpid() != _PID or work < 2 * _MIN_WORK:  # serial: a forked child, or one range at any thread count
        kernel(*args, 0, units)
        return
    threads = torch.get_num_threads()
    n = chunks(units, work, threads)
    before = numba.get_num_threads()
    if n != before:
        numba.set_num_threads(n)
    try:
        _DRIVERS[kernel](n, units, *args)
    finally:
        if n != before:
            numba.set_num_threads(before)
        _keep_torch_threads(threads)


def _keep_torch_threads(threads: int) -> None:
    """Put torch's thread count back to ``threads`` if numba changed it.

    On the shared OpenMP runtime numba's thread settings (and starting its threads, on the first
    call) set the runtime's thread count, which is also what torch reads: a user's
    ``torch.set_num_threads(1)`` would silently become numba's count.
    """
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
