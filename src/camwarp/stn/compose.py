"""Several spatial transformers: in series without resampling twice, or in parallel (the paper's 2xST).

In series, stage ``k`` predicts ``theta_k`` from the previous stage's output, but every output is
sampled from the *original* input with the composed transform (normalized coordinates are
size-independent with ``align_corners=False``, so the composition is exact for any sizes):

    theta_total = theta_1 @ theta_2 @ ... @ theta_k      (3x3 / 4x4 homogeneous)

since ``theta_1`` maps stage-1 output coordinates to input coordinates, ``theta_2`` stage-2 output
to stage-1 output, and so on. The final image is one interpolation of the input, not ``k``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .transformer import SpatialTransformer, full_theta, sample_theta, stn_camera

__all__ = ["SpatialTransformerChain", "SpatialTransformerParallel"]


def _check_stages(transformers: Sequence[object], fn: str) -> None:
    if not transformers:
        raise ValueError(f"{fn}: needs at least one SpatialTransformer")
    for i, st in enumerate(transformers):
        if not isinstance(st, SpatialTransformer):
            raise TypeError(f"{fn}: transformers[{i}] must be a SpatialTransformer, got {type(st).__name__}")
        first = transformers[0]
        if st.dims != first.dims or st.in_channels != first.in_channels:
            raise ValueError(f"{fn}: transformers[{i}] has dims={st.dims}, in_channels={st.in_channels}; "
                             f"transformers[0] has dims={first.dims}, in_channels={first.in_channels}")


class SpatialTransformerChain(nn.Module):
    """Spatial transformers in series, the output sampled once from the original input.

    ``forward(x, return_theta=True)`` returns ``(y, theta_total)``: ``(..., 2, 3)``
    (``(..., 3, 4)`` for volumes) when every stage is affine, ``(..., 3, 3)`` (homogeneous, not
    rescaled) when a stage is projective; ``y == sample_theta(x, theta_total, out_size)``.

    Args:
        *transformers: :class:`SpatialTransformer` stages (same ``dims`` and ``in_channels``; no
            ``tps``, which has no matrix to compose). Stage ``k``'s ``out_size`` (None: unchanged)
            is the size of the image stage ``k + 1`` sees.

    Example:
        >>> chain = SpatialTransformerChain(SpatialTransformer(1, "scale_translation"),
        ...                                 SpatialTransformer(1, "similarity", out_size=(20, 20)))
        >>> chain(torch.rand(2, 1, 28, 28)).shape
        torch.Size([2, 1, 20, 20])
    """

    def __init__(self, *transformers: SpatialTransformer) -> None:
        super().__init__()
        fn = "SpatialTransformerChain"
        _check_stages(transformers, fn)
        for i, st in enumerate(transformers):
            if st.transform == "tps":
                raise ValueError(f"{fn}: transformers[{i}] is 'tps', which has no matrix to compose")
        self.stages = nn.ModuleList(transformers)
        self.dims = transformers[0].dims
        self.projective = any(st.transform == "projective" for st in transformers)

    def output_size(self, in_size: Sequence[int]) -> tuple[int, ...]:
        """Return the final output size for an input of ``in_size``."""
        size = tuple(in_size)
        for st in self.stages:
            size = st.output_size(size)
        return size

    def forward(self, x: Tensor, return_theta: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Return ``x`` warped by the composed theta of all stages (and that theta)."""
        size = self.stages[0]._check_input(x, "SpatialTransformerChain")
        d = self.dims
        total, y = None, x
        for st in self.stages:
            step = full_theta(st.predict_theta(y))  # (..., d+1, d+1)
            total = step if total is None else total @ step
            size = st.output_size(size)
            theta = total if self.projective else total[..., :d, :]
            y = sample_theta(x, theta, size, st.mode, st.padding_mode, st.backend)
        return (y, theta) if return_theta else y

    def output_camera(self, camera: Any, theta: Tensor) -> tuple[Any, Tensor]:
        """Return ``(camera', R)`` of the chain's output for a ``camera`` of its input (:func:`stn_camera`)."""
        if self.dims != 2:
            raise ValueError("SpatialTransformerChain.output_camera: volumes (dims=3) have no camera")
        return stn_camera(camera, theta, camera.size, self.output_size(camera.size))


class SpatialTransformerParallel(nn.Module):
    """Spatial transformers side by side on the same input, outputs concatenated on channels (2xST).

    ``forward(x)`` returns ``(..., n*C, H', W')`` (every branch must give the same output size);
    ``forward(x, return_theta=True)`` returns ``(y, [theta_1, ..., theta_n])``.

    Args:
        *transformers: :class:`SpatialTransformer` branches (same ``dims`` and ``in_channels``).

    Example:
        >>> two = SpatialTransformerParallel(SpatialTransformer(2, "affine", out_size=(14, 14)),
        ...                                  SpatialTransformer(2, "affine", out_size=(14, 14)))
        >>> two(torch.rand(3, 2, 28, 28)).shape
        torch.Size([3, 4, 14, 14])
    """

    def __init__(self, *transformers: SpatialTransformer) -> None:
        super().__init__()
        _check_stages(transformers, "SpatialTransformerParallel")
        self.branches = nn.ModuleList(transformers)
        self.dims = transformers[0].dims
        self.out_channels = sum(st.in_channels for st in transformers)

    def forward(self, x: Tensor, return_theta: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Return the branches' outputs concatenated on the channel dim (and their thetas)."""
        fn = "SpatialTransformerParallel"
        size = self.branches[0]._check_input(x, fn)
        sizes = [st.output_size(size) for st in self.branches]
        if len(set(sizes)) != 1:
            raise ValueError(f"{fn}: the branches give different output sizes {sizes}; set the same out_size")
        outs, thetas = zip(*(st(x, return_theta=True) for st in self.branches))
        y = torch.cat(outs, dim=-self.dims - 1)
        return (y, list(thetas)) if return_theta else y
