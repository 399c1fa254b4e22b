"""The one place that picks a warp backend for the internal samplers.

Every backend module implements ``sample_affine``, ``sample_perspective`` and ``sample_affine3d``
with the signatures of :mod:`camwarp.warp.reference` (flat batch, **dst->src** pixel matrix, OpenCV
centre frame, ``size=(W', H'[, D'])``). Public functions and other layers (STN, transforms) call the
names below, which add ``backend=None``.

Rules, first match wins (``backend=None``):

=====================  ==================  =========================================================
condition              backend             why
=====================  ==================  =========================================================
``backend="name"``     that one            forced; ``ValueError`` if not in ``available_backends()``
(any other input)      ``"reference"``     ``F.affine_grid`` + ``F.grid_sample``: exact, any device,
                                           any float dtype, differentiable in image and matrix
=====================  ==================  =========================================================

A fast backend registers itself by adding a row above the last one (a predicate on device, dtype,
grad need, mode) and its module to ``_BACKENDS``; ``"reference"`` stays the fallback and the oracle.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from types import ModuleType

from torch import Tensor

__all__ = ["available_backends", "get_backend", "sample_affine", "sample_perspective", "sample_affine3d"]

# name -> module path. A backend is *available* when its module imports (e.g. Triton installed).
_BACKENDS: dict[str, str] = {"reference": "camwarp.warp.reference"}

# Automatic choice: (name, predicate(op, x, matrix, mode, padding_mode)) tried in order; the first
# available backend whose predicate holds wins. Empty for now: every call goes to "reference".
_RULES: list[tuple[str, Callable[[str, Tensor, Tensor, str, str], bool]]] = []

_loaded: dict[str, ModuleType | None] = {}


def _load(name: str) -> ModuleType | None:
    if name not in _loaded:
        try:
            _loaded[name] = importlib.import_module(_BACKENDS[name])
        except ImportError:
            _loaded[name] = None
    return _loaded[name]


def available_backends() -> list[str]:
    """Return the names of the backends usable here, ``"reference"`` first.

    Example:
        >>> available_backends()[0]
        'reference'
    """
    return [name for name in _BACKENDS if _load(name) is not None]


def get_backend(op: str, x: Tensor, matrix: Tensor, mode: str, padding_mode: str,
                backend: str | None = None, fn: str = "sample") -> ModuleType:
    """Return the backend module for one call (see the rule table in this module's docstring).

    Raises:
        ValueError: ``backend`` names an unknown or unavailable backend.
    """
    if backend is not None:
        if not isinstance(backend, str) or backend not in _BACKENDS or _load(backend) is None:
            raise ValueError(f"{fn}: backend must be None or one of {', '.join(map(repr, available_backends()))}, "
                             f"got {backend!r}")
        return _load(backend)  # type: ignore[return-value]
    for name, applies in _RULES:
        module = _load(name)
        if module is not None and applies(op, x, matrix, mode, padding_mode):
            return module
    return _load("reference")  # type: ignore[return-value]


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
