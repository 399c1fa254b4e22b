"""Localization networks: an input ``(N, C, H, W)`` (``(N, C, D, H, W)``) -> features ``(N, F)``.

A :class:`~camwarp.stn.heads.TransformHead` turns the features into theta. Two defaults:

- :class:`ConvLocalization`, the seed's network (PyTorch's STN tutorial): ``Conv(C->8, k7),
  MaxPool 2, ReLU, Conv(8->10, k5), MaxPool 2, ReLU, FC 32, ReLU`` (for volumes ``k5``/``k3``
  3-D convolutions). With ``in_size`` known, the flattened size follows from the formula, and
  a side too small for a kernel is zero-padded just enough (``ceil((k - s) / 2)``) and a side of
  1 is not pooled, so any size from 1x1 works; for 28x28 this is the seed exactly (10*3*3 = 90
  features into FC 32). Without ``in_size`` the network accepts any size: the convolutions are
  zero-padded to keep the size (``k // 2``), pooling rounds up, and an adaptive max-pool to 3x3
  (3x3x3) ends the convolutions.
- :class:`FCLocalization`, a fully-connected one (the ST-FCN's): ``Flatten, FC 32, ReLU, FC 32, ReLU``.

Any ``nn.Module`` returning ``(N, F)`` (or ``(N, ...)``, flattened) may replace them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .. import _checks

__all__ = ["ConvLocalization", "FCLocalization"]


def _check_channels(in_channels: object, fn: str) -> int:
    return _checks.check_int(in_channels, fn, "in_channels", minimum=1)


def _check_widths(widths: object, fn: str, name: str) -> tuple[int, ...]:
    if isinstance(widths, int) and not isinstance(widths, bool):
        widths = (widths,)
    if not isinstance(widths, Sequence) or isinstance(widths, str) or not all(
            isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths):
        raise ValueError(f"{fn}: {name} must be a sequence of positive ints, got {widths!r}")
    return tuple(widths)


def _conv_plan(size: Sequence[int], kernel: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Per axis (torch order D, H, W): ``(padding, pool kernel, size after conv + pool)``."""
    pads, pools, out = [], [], []
    for s in reversed(size):  # (W, H[, D]) -> torch order
        p = max(0, math.ceil((kernel - s) / 2))
        s = s + 2 * p - kernel + 1
        k = 2 if s >= 2 else 1
        pads.append(p)
        pools.append(k)
        out.append(s // k)
    return tuple(pads), tuple(pools), tuple(reversed(out))


class ConvLocalization(nn.Module):
    """The seed's convolutional localization network, adapted to the input's channels and size.

    Layers: ``Conv(C->c1, k1), MaxPool 2, ReLU, Conv(c1->c2, k2), MaxPool 2, ReLU, Flatten,
    Linear(-> hidden), ReLU``; ``out_features = hidden``.

    Args:
        in_channels: ``C``.
        in_size: the input's ``(W, H)`` (``(W, H, D)``), or None for any size (adaptive pooling).
        dims: 2 (images) or 3 (volumes).
        channels: ``(c1, c2)``, default ``(8, 10)``.
        kernels: ``(k1, k2)``, default ``(7, 5)`` for images and ``(5, 3)`` for volumes.
        hidden: ``F``, default 32.

    Example:
        >>> net = ConvLocalization(1, (28, 28))
        >>> net.flat_features, net(torch.zeros(2, 1, 28, 28)).shape
        (90, torch.Size([2, 32]))
    """

    def __init__(self, in_channels: int, in_size: Sequence[int] | None = None, dims: int = 2,
                 channels: Sequence[int] = (8, 10), kernels: Sequence[int] | None = None, hidden: int = 32) -> None:
        super().__init__()
        fn = "ConvLocalization"
        in_channels = _check_channels(in_channels, fn)
        if dims not in (2, 3) or isinstance(dims, bool):
            raise ValueError(f"{fn}: dims must be 2 or 3, got {dims!r}")
        c1, c2 = _check_pair(channels, fn, "channels")
        k1, k2 = _check_pair(kernels if kernels is not None else ((7, 5) if dims == 2 else (5, 3)), fn, "kernels")
        (hidden,) = _check_widths(hidden, fn, "hidden")
        conv, pool = (nn.Conv2d, nn.MaxPool2d) if dims == 2 else (nn.Conv3d, nn.MaxPool3d)
        if in_size is None:  # any size: "same" convolutions, ceil-mode pooling, adaptive max-pool
            pads1, pads2 = k1 // 2, k2 // 2
            pool1 = pool2 = pool(2, ceil_mode=True)
            grid = (3,) * dims
            tail: list[nn.Module] = [(nn.AdaptiveMaxPool2d if dims == 2 else nn.AdaptiveMaxPool3d)(grid)]
        else:
            in_size = _checks.check_size(in_size, fn, "in_size", (dims,))
            pads1, kernel1, mid = _conv_plan(in_size, k1)
            pads2, kernel2, end = _conv_plan(mid, k2)
            pool1, pool2 = pool(kernel1), pool(kernel2)
            grid, tail = tuple(reversed(end)), []
        self.in_size = None if in_size is None else tuple(in_size)
        self.flat_features = c2 * math.prod(grid)
        self.out_features = hidden
        self.features = nn.Sequential(
            conv(in_channels, c1, k1, padding=pads1), pool1, nn.ReLU(),
            conv(c1, c2, k2, padding=pads2), pool2, nn.ReLU(), *tail, nn.Flatten())
        self.fc = nn.Sequential(nn.Linear(self.flat_features, hidden), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        """Return features ``(N, hidden)`` of ``x`` ``(N, C, H, W)`` (``(N, C, D, H, W)``)."""
        return self.fc(self.features(x))


class FCLocalization(nn.Module):
    """A fully-connected localization network: ``Flatten, (Linear, ReLU) x len(hidden)``.

    Args:
        in_channels: ``C``.
        in_size: the input's ``(W, H)`` (``(W, H, D)``); required (it fixes the first layer).
        dims: 2 (images) or 3 (volumes).
        hidden: widths of the hidden layers, default ``(32, 32)``; ``out_features = hidden[-1]``.

    Example:
        >>> FCLocalization(1, (28, 28))(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 32])
    """

    def __init__(self, in_channels: int, in_size: Sequence[int], dims: int = 2,
                 hidden: Sequence[int] = (32, 32)) -> None:
        super().__init__()
        fn = "FCLocalization"
        in_channels = _check_channels(in_channels, fn)
        if dims not in (2, 3) or isinstance(dims, bool):
            raise ValueError(f"{fn}: dims must be 2 or 3, got {dims!r}")
        if in_size is None:
            raise ValueError(f"{fn}: in_size is required (the first layer's width is C*H*W)")
        self.in_size = _checks.check_size(in_size, fn, "in_size", (dims,))
        widths = (in_channels * math.prod(self.in_size), *_check_widths(hidden, fn, "hidden"))
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.net = nn.Sequential(*layers)
        self.out_features = widths[-1]

    def forward(self, x: Tensor) -> Tensor:
        """Return features ``(N, hidden[-1])`` of ``x`` ``(N, C, H, W)`` (``(N, C, D, H, W)``)."""
        return self.net(x)


def _check_pair(values: object, fn: str, name: str) -> tuple[int, int]:
    widths = _check_widths(values, fn, name)
    if len(widths) != 2:
        raise ValueError(f"{fn}: {name} must have 2 entries, got {values!r}")
    return widths  # type: ignore[return-value]
