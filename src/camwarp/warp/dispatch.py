"""The one place that picks a warp backend for the internal samplers.

Every backend module implements ``sample_affine``, ``sample_perspective`` and ``sample_affine3d``
with the signatures of :mod:`camwarp.warp.reference` (flat batch, **dst->src** pixel matrix, OpenCV
centre frame, ``size=(W', H'[, D'])``). Public functions and other layers (STN, transforms) call the
names below, which add ``backend=None``.

Rules, first match wins:

=========================  ==============  =====================================================
condition                  backend         why
=========================  ==============  =====================================================
``backend="name"``         that one        forced; ``ValueError`` if not in ``available_backends()``
env ``CAMWARP_BACKEND``    that one        forced for every call with ``backend=None`` (``auto``
                                           or empty: no forcing); same error if unavailable
CUDA, deterministic mode,  ``"triton"``    ``torch.use_deterministic_algorithms(True)``: torch's
grad needed, supported                     CUDA ``grid_sample`` backward has no deterministic
                                           version; the Triton backward is bit-identical
CPU float32/float64,       ``"cpu"``       compiled numba kernels, measured faster than the
bilinear/nearest                           reference (``docs/BENCHMARKS.md``); deterministic
(any other input)          ``"reference"`` ``F.affine_grid`` + ``F.grid_sample``: exact, any
                                           device, any float dtype, differentiable in both inputs
=========================  ==============  =====================================================

On CUDA the Triton kernels are opt-in (``backend="triton"`` or ``CAMWARP_BACKEND=triton``) outside
deterministic mode until their GPU timings are measured and recorded in ``docs/BENCHMARKS.md``.
Every fast backend is deterministic (bit-identical across runs), so deterministic mode never needs
to leave one. A backend that cannot run a forced call (e.g. ``"cpu"`` on a CUDA tensor, or
``bicubic``) hands it to the reference itself, so forcing never changes a result beyond rounding.

A fast backend registers itself by adding a row above the last one (a predicate on device, dtype,
grad need, mode) and its module to ``_BACKENDS``; ``"reference"`` stays the fallback and the oracle.
:func:`resample_separable` does the same for ``crop_resize``'s separable antialiasing filters.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from types import ModuleType

import torch
from torch import Tensor

__all__ = ["available_backends", "check_backend", "forced_backend", "get_backend", "warp", "sample_affine",
           "sample_theta", "sample_perspective", "sample_affine3d", "resample_separable", "ENV_VAR"]

ENV_VAR = "CAMWARP_BACKEND"

# name -> module path. A backend is *available* when its module imports (e.g. Triton installed)
# and, if it defines ``available()``, that returns True (e.g. Triton needs CUDA or the interpreter).
_BACKENDS: dict[str, str] = {"reference": "camwarp.warp.reference", "cpu": "camwarp.warp.cpu",
                             "triton": "camwarp.warp.triton"}


def _needs_grad(x: Tensor, matrix: Tensor) -> bool:
    return torch.is_grad_enabled() and (x.requires_grad or matrix.requires_grad)


def _triton_rule(op: str, x: Tensor, matrix: Tensor, mode: str, padding_mode: str) -> bool:
    return (x.is_cuda and torch.are_deterministic_algorithms_enabled() and _needs_grad(x, matrix)
            and (triton := _load("triton")) is not None and triton.supports(op, x, matrix, mode, padding_mode))


def _cpu_rule(op: str, x: Tensor, matrix: Tensor, mode: str, padding_mode: str) -> bool:
    # Not while torch.compile traces: the compiled numba calls are opaque to it (the reference's
    # torch ops compile, and fuse).
    return ((cpu := _load("cpu")) is not None and cpu.supports(op, x, matrix, mode, padding_mode)
            and not torch.compiler.is_compiling())


# Automatic choice: (name, predicate(op, x, matrix, mode, padding_mode)) tried in order; the first
# available backend whose predicate holds wins, else "reference".
_RULES: list[tuple[str, Callable[[str, Tensor, Tensor, str, str], bool]]] = [
    ("triton", _triton_rule),
    ("cpu", _cpu_rule),
]

_loaded: dict[str, ModuleType | None] = {}


def _load(name: str) -> ModuleType | None:
    if name not in _loaded:
        try:
            _loaded[name] = importlib.import_module(_BACKENDS[name])
        except ImportError:
            _loaded[name] = None
    return _loaded[name]


def _usable(name: str) -> bool:
    module = _load(name)
    return module is not None and (not hasattr(module, "available") or module.available())


def available_backends() -> list[str]:
    """Return the names of the backends usable here, ``"reference"`` first.

    Example:
        >>> available_backends()[0]
        'reference'
    """
    return [name for name in _BACKENDS if _usable(name)]


def forced_backend(backend: str | None, fn: str) -> str | None:
    """The backend named by ``backend`` or, if None, by ``$CAMWARP_BACKEND``; None for automatic.

    Raises ``ValueError`` (naming ``fn``) for an unknown or unavailable name.

    Example:
        >>> forced_backend("reference", "warp_affine"), forced_backend(None, "warp_affine") in (None, *_BACKENDS)
        ('reference', True)
    """
    source = "backend"
    if backend is None:
        backend = os.environ.get(ENV_VAR, "").strip() or None
        source = f"environment variable {ENV_VAR}"
        if backend == "auto":
            return None
    if backend is None:
        return None
    if not isinstance(backend, str) or backend not in _BACKENDS or not _usable(backend):
        allowed = "None" if source == "backend" else "unset, 'auto'"
        raise ValueError(f"{fn}: {source} must be {allowed} or one of "
                         f"{', '.join(map(repr, available_backends()))}, got {backend!r}")
    return backend


def check_backend(backend: object, fn: str) -> str | None:
    """Validate a public function's ``backend`` argument up front, so errors name that function.

    The same check the samplers make when they pick the backend (and of ``$CAMWARP_BACKEND`` when
    ``backend`` is None), run before any work; the choice itself stays in :func:`get_backend`.

    Args:
        backend: None (automatic) or a name from :func:`available_backends`.
        fn: name used in error messages (the public function the user called).

    Returns:
        ``backend`` unchanged.

    Raises:
        ValueError: ``"<fn>: backend must be None or one of ..."`` for an unknown or unavailable
            backend (likewise for a bad ``$CAMWARP_BACKEND``).

    Example:
        >>> check_backend("reference", "warp_affine")
        'reference'
        >>> check_backend("bogus", "warp_affine")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: warp_affine: backend must be None or one of 'reference', ...
    """
    forced_backend(backend, fn)
    return backend


def get_backend(op: str, x: Tensor, matrix: Tensor, mode: str, padding_mode: str,
                backend: str | None = None, fn: str = "sample") -> ModuleType:
    """Return the backend module for one call (see the rule table in this module's docstring).

    Raises:
        ValueError: ``backend`` names an unknown or unavailable backend.
    """
    forced = forced_backend(backend, fn)
    if forced is not None:
        return _load(forced)  # type: ignore[return-value]
    return _automatic(op, x, matrix, mode, padding_mode)


def _automatic(op: str, x: Tensor, matrix: Tensor, mode: str, padding_mode: str) -> ModuleType:
    """The first rule that applies (the cheap predicate first: ``_usable`` may query the device)."""
    for name, applies in _RULES:
        if applies(op, x, matrix, mode, padding_mode) and _usable(name):
            return _load(name)  # type: ignore[return-value]
    return _load("reference")  # type: ignore[return-value]


_SAMPLERS = {"affine": "sample_affine", "perspective": "sample_perspective", "affine3d": "sample_affine3d"}


def warp(op: str, x: Tensor, A: Tensor, size: Sequence[int], mode: str, padding_mode: str, batch: torch.Size,
         forced: str | None = None, fn: str = "warp", names: tuple[str, str] = ("image", "A")) -> Tensor:
    """Warp ``x`` ``(..., C, *spatial)`` by the **src->dst** ``A`` ``(..., d+1, d+1)`` (the public warps' path).

    ``op``: ``"affine"``, ``"perspective"`` or ``"affine3d"``; ``batch``: the broadcast batch shape
    of ``x`` and ``A``; ``forced``: :func:`forced_backend`'s answer for the call (the caller validated
    ``backend`` and read ``$CAMWARP_BACKEND`` once). A backend with its own ``warp`` (``"cpu"``) checks and inverts ``A`` inside
    its compiled kernels; otherwise ``A`` is inverted by
    :func:`camwarp.geometry.ops.checked_inverse` (named errors on the CPU, NaN items elsewhere)
    and the backend's dst->src sampler runs on the flattened batch. Returns ``(*batch, C, *size[::-1])``.
    """
    module = _load(forced) if forced is not None else _automatic(op, x, A, mode, padding_mode)
    if hasattr(module, "warp"):
        return module.warp(op, x, A, size, mode, padding_mode, batch, fn, names)
    from ..geometry import lift_matrix
    from ..geometry.ops import checked_inverse
    d = 3 if op == "affine3d" else 2
    core = x.shape[-d - 1:]
    xf = x.expand(*batch, *core).reshape(-1, *core)
    Af = lift_matrix(A).expand(*batch, d + 1, d + 1).reshape(-1, d + 1, d + 1)
    M, bad = checked_inverse(Af, fn, names[1], affine=op != "perspective")
    out = getattr(module, _SAMPLERS[op])(xf, M, size, mode, padding_mode)
    if bad is not None:
        out = torch.where(bad.reshape(-1, *[1] * (d + 1)), torch.full_like(out, float("nan")), out)
    return out.reshape(*batch, *out.shape[1:])


def sample_affine(image: Tensor, src_from_dst: Tensor, size: Sequence[int], mode: str = "bilinear",
                  padding_mode: str = "zeros", backend: str | None = None) -> Tensor:
    """Sample ``image`` ``(B, C, H, W)`` at ``src_from_dst @ p`` (``(B, 3, 3)`` or ``(B, 2, 3)``, dst->src pixels).

    See :func:`camwarp.warp.reference.sample_affine`; returns ``(B, C, H', W')`` for ``size=(W', H')``.

    Example:
        >>> import torch
        >>> sample_affine(torch.ones(2, 1, 4, 4), torch.eye(3).expand(2, 3, 3), (3, 5)).shape
        torch.Size([2, 1, 5, 3])
    """
    module = get_backend("affine", image, src_from_dst, mode, padding_mode, backend, "sample_affine")
    return module.sample_affine(image, src_from_dst, size, mode, padding_mode)


def sample_theta(image: Tensor, theta: Tensor, size: Sequence[int], mode: str = "bilinear",
                 padding_mode: str = "zeros", backend: str | None = None) -> Tensor:
    """Sample ``image`` ``(B, C, H, W)`` with torch's normalized affine ``theta`` ``(B, 2, 3)`` (the STN's).

    Same as :func:`sample_affine` with ``src_from_dst = D_(W,H) @ theta @ N_(W',H')``
    (``camwarp.geometry.denormalize_matrix``/``normalize_matrix``, ``align_corners=False``); a
    backend with its own ``sample_theta`` (``"cpu"``) takes ``theta`` directly, which saves the
    matrix products and their autograd nodes on small batches. Returns ``(B, C, H', W')``.

    Example:
        >>> import torch
        >>> sample_theta(torch.ones(2, 1, 4, 4), torch.eye(2, 3).expand(2, 2, 3), (3, 5)).shape
        torch.Size([2, 1, 5, 3])
    """
    module = get_backend("affine", image, theta, mode, padding_mode, backend, "sample_theta")
    if hasattr(module, "sample_theta"):
        return module.sample_theta(image, theta, size, mode, padding_mode)
    from ..geometry import denormalize_matrix, normalize_matrix
    kw = dict(dtype=theta.dtype, device=theta.device)
    last = torch.tensor([0.0, 0.0, 1.0], **kw).expand(theta.shape[0], 1, 3)
    H, W = image.shape[-2:]
    src_from_dst = denormalize_matrix((W, H), **kw) @ torch.cat([theta, last], 1) @ normalize_matrix(size, **kw)
    return module.sample_affine(image, src_from_dst, size, mode, padding_mode)


def sample_perspective(image: Tensor, src_from_dst: Tensor, size: Sequence[int], mode: str = "bilinear",
                       padding_mode: str = "zeros", backend: str | None = None) -> Tensor:
    """Sample ``image`` ``(B, C, H, W)`` at ``src_from_dst @ p`` with the homogeneous divide (``(B, 3, 3)``).

    See :func:`camwarp.warp.reference.sample_perspective`; returns ``(B, C, H', W')``.
    """
    module = get_backend("perspective", image, src_from_dst, mode, padding_mode, backend, "sample_perspective")
    return module.sample_perspective(image, src_from_dst, size, mode, padding_mode)


def sample_affine3d(volume: Tensor, src_from_dst: Tensor, size: Sequence[int], mode: str = "bilinear",
                    padding_mode: str = "zeros", backend: str | None = None) -> Tensor:
    """Sample ``volume`` ``(B, C, D, H, W)`` at ``src_from_dst @ p`` (``(B, 4, 4)`` or ``(B, 3, 4)``).

    See :func:`camwarp.warp.reference.sample_affine3d`; returns ``(B, C, D', H', W')`` for
    ``size=(W', H', D')``.
    """
    module = get_backend("affine3d", volume, src_from_dst, mode, padding_mode, backend, "sample_affine3d")
    return module.sample_affine3d(volume, src_from_dst, size, mode, padding_mode)


def resample_separable(x: Tensor, scale: Tensor | Sequence[float], offset: Tensor | Sequence[float],
                       size: Sequence[int], kernel: str = "bilinear", backend: str | None = None,
                       forced: str | None | bool = False) -> Tensor:
    """Resample ``x`` ``(..., C, H, W)`` on an axis-aligned grid with ``crop_resize``'s separable filters.

    Output pixel ``(i, j)`` reads around ``scale * (i, j) + offset`` (per axis; ``(B, 2)`` tensors
    over the flattened batch, or one ``(s_u, s_v)`` pair for all). ``kernel``: the antialiasing
    filters of :func:`camwarp.warp.antialias.resample_separable` (``bilinear``, ``bicubic``,
    ``area``: the oracle, used for ``"reference"`` and every input the CPU kernels do not take),
    or plain sampling as ``grid_sample`` with ``border`` padding (``linear``, ``nearest``,
    ``cubic``: :func:`camwarp.warp.reference.sample_crop`); output pixels whose centre lies beyond
    the image edges are 0. ``forced``: :func:`forced_backend`'s answer when the caller has it
    (``backend`` then unused). Returns ``(..., C, H', W')`` for ``size=(W', H')``.

    Example:
        >>> import torch
        >>> x = torch.arange(6.0).reshape(1, 1, 1, 6)
        >>> resample_separable(x, torch.tensor([[2.0, 1.0]]), torch.tensor([[0.5, 0.0]]), (3, 1), "area")
        tensor([[[[0.5000, 2.5000, 4.5000]]]])
    """
    if forced is False:
        forced = forced_backend(backend, "resample_separable")
    if forced in (None, "cpu") and (cpu := _load("cpu")) is not None and cpu.supports_resample(x, scale, offset, kernel) \
            and (forced == "cpu" or not torch.compiler.is_compiling()):
        return cpu.resample_supported(x, scale, offset, size, kernel)
    from . import antialias, reference
    B = x.shape[:-3].numel()
    xf = x.reshape(B, *x.shape[-3:])
    sc, of = (v.expand(B, 2) if isinstance(v, Tensor) else torch.tensor([v], dtype=x.dtype, device=x.device).expand(B, 2)
              for v in (scale, offset))
    if kernel in ("linear", "nearest", "cubic"):
        mode = {"linear": "bilinear", "nearest": "nearest", "cubic": "bicubic"}[kernel]
        out = reference.sample_crop(xf, sc, of, size, mode)
    else:
        out = antialias.resample_separable(xf, sc, of, size, kernel)
    return out.reshape(*x.shape[:-3], *out.shape[1:])
