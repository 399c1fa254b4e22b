"""The antialiased warp's two shortcuts give the same numbers as the long way round:
cutting the source to the output's footprint before the blur, and the separable filter for
axis-aligned shrinks (== crop_resize)."""

from __future__ import annotations

import pytest
import torch

import camwarp
from camwarp.geometry import (compose, crop_matrix, hflip_matrix, invert, perspective_matrix, resize_matrix,
                              rotate_matrix)
from camwarp.warp import api

IMG = torch.rand(2, 3, 120, 160, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
CASES = {
    "rotated-crop": (compose(rotate_matrix(20.0, (80.0, 60.0)), crop_matrix(50, 30), resize_matrix((60, 60), (19, 17))),
                     (19, 17), False),
    "past-right-edge": (compose(rotate_matrix(5.0, (150.0, 10.0)), crop_matrix(140, 5), resize_matrix((40, 40), (9, 9))),
                        (9, 9), False),
    "perspective": (perspective_matrix(torch.tensor([[10.0, 10], [100, 20], [110, 90], [5, 95]]),
                                       torch.tensor([[0.0, 0], [20, 0], [20, 15], [0, 15]])), (20, 15), True),
}


@pytest.mark.parametrize("padding_mode", ["zeros", "border"])
@pytest.mark.parametrize("case", CASES)
def test_cut_to_footprint_changes_nothing(case, padding_mode, monkeypatch):
    A, size, projective = CASES[case]
    warp = camwarp.warp_perspective if projective else camwarp.warp_affine
    cut = warp(IMG, A.double(), size, padding_mode=padding_mode, antialias=True)
    calls = []
    monkeypatch.setattr(api, "_crop_to_footprint", lambda x, M, *rest: calls.append(1) or (x, M))
    whole = warp(IMG, A.double(), size, padding_mode=padding_mode, antialias=True)
    assert calls, "the antialiased path did not go through _crop_to_footprint"
    torch.testing.assert_close(cut, whole, atol=1e-12, rtol=0)


def test_axis_aligned_shrink_is_crop_resize():
    f64 = torch.float64
    A = compose(crop_matrix(20.5, 10, dtype=f64), resize_matrix((120, 90), (37, 23), dtype=f64))
    out = camwarp.warp_affine(IMG, A, (37, 23), antialias=True)
    torch.testing.assert_close(out, camwarp.crop_resize(IMG, (20.5, 10, 120, 90), (37, 23)), atol=1e-12, rtol=0)
    flip_then_A = compose(hflip_matrix(160, dtype=f64), A)  # negative scale on u
    flipped = camwarp.warp_affine(IMG, flip_then_A, (37, 23), antialias=True)
    ref = camwarp.crop_resize(IMG.flip(-1), (20.5, 10, 120, 90), (37, 23))
    torch.testing.assert_close(flipped, ref, atol=1e-12, rtol=0)


def test_separable_route_only_where_exact():
    x = IMG[:1]
    inside = invert(resize_matrix((160, 120), (40, 30)).double())[None]
    assert api._separable(inside, x, (40, 30))
    rotated = invert(compose(rotate_matrix(1.0, (80.0, 60.0)), resize_matrix((160, 120), (40, 30))).double())[None]
    assert not api._separable(rotated, x, (40, 30))
    padded = invert(compose(resize_matrix((160, 120), (40, 30)), crop_matrix(-5, 0)).double())[None]
    assert not api._separable(padded, x, (45, 30))  # samples beyond the image: padding_mode matters
    upscale = invert(resize_matrix((160, 120), (320, 240)).double())[None]
    assert not api._separable(upscale, x, (320, 240))
