"""SpatialTransformer and sample_theta: identity at init, gradients, theta shapes, sampling against
torch's affine_grid/grid_sample, a hand-made projective grid and OpenCV, output sizes, gradcheck,
named errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from camwarp import geometry as G
from camwarp.stn import SpatialTransformer, heads, sample_theta, theta_to_pixel_matrix
from camwarp.warp import available_backends

CASES = [(f, 2) for f in heads.FAMILIES] + [(f, 3) for f in heads.FAMILIES_3D]


def _perturb(st: SpatialTransformer, scale: float = 0.05, seed: int = 1) -> SpatialTransformer:
    """Move the head off the identity (deterministically) so theta depends on the input."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        st.head.fc.weight.copy_(scale * torch.randn(st.head.fc.weight.shape, generator=g))
    return st


def _input(dims: int, n: int = 3, c: int = 2, dtype=torch.float32) -> torch.Tensor:
    shape = (n, c, 12, 10) if dims == 2 else (n, c, 6, 7, 8)
    return torch.rand(shape, dtype=dtype)


def _theta_shape(transform: str, dims: int) -> tuple[int, ...]:
    return {"projective": (3, 3), "tps": (16, 2)}.get(transform, (2, 3) if dims == 2 else (3, 4))


@pytest.mark.parametrize("transform, dims", CASES)
def test_identity_at_init_and_theta_shape(transform, dims):
    x = _input(dims)
    st = SpatialTransformer(2, transform, dims=dims)
    y, theta = st(x, return_theta=True)
    torch.testing.assert_close(y, x, atol=1e-5, rtol=0)
    assert theta.shape == (3, *_theta_shape(transform, dims))


@pytest.mark.parametrize("transform, dims", CASES)
def test_gradients_reach_the_head_then_the_localization(transform, dims):
    x = _input(dims)
    st = SpatialTransformer(2, transform, dims=dims, in_size=tuple(reversed(x.shape[2:])))
    opt = torch.optim.SGD(st.parameters(), lr=0.5)
    target = torch.randn_like(x)
    ((st(x) - target) ** 2).mean().backward()
    assert st.head.fc.weight.grad.abs().sum() > 0  # zero weights, yet a gradient
    opt.step()
    opt.zero_grad()
    ((st(x) - target) ** 2).mean().backward()
    first = next(st.localization.parameters())
    assert first.grad is not None and first.grad.abs().sum() > 0


@pytest.mark.parametrize("transform", ["translation", "scale_translation", "similarity", "affine"])
def test_affine_families_sample_like_affine_grid_and_opencv(transform):
    x = torch.rand(3, 2, 20, 22, dtype=torch.float64)
    st = _perturb(SpatialTransformer(2, transform, out_size=(12, 9), in_size=(22, 20)).double())
    y, theta = st(x, return_theta=True)
    grid = F.affine_grid(theta, (3, 2, 9, 12), align_corners=False)
    torch.testing.assert_close(y, F.grid_sample(x, grid, align_corners=False), atol=1e-10, rtol=1e-10)
    A = theta_to_pixel_matrix(theta.detach(), (22, 20), (12, 9))
    torch.testing.assert_close(A, G.theta_to_matrix(theta.detach(), (22, 20), (12, 9)))
    for i in range(3):  # OpenCV's warpAffine with the src->dst pixel matrix (fixed-point weights: 1/32)
        ref = cv2.warpAffine(x[i, 0].numpy(), A[i, :2].numpy(), (12, 9), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        np.testing.assert_allclose(y[i, 0].detach().numpy(), ref, atol=2e-2)


def test_projective_matches_a_manual_grid():
    x = torch.rand(2, 1, 16, 18, dtype=torch.float64)
    st = _perturb(SpatialTransformer(1, "projective", out_size=(10, 8), in_size=(18, 16)).double(), 0.02)
    y, theta = st(x, return_theta=True)
    assert not torch.allclose(theta[:, 2, :2], torch.zeros(2, 2, dtype=torch.float64))
    xs = (2 * torch.arange(10, dtype=torch.float64) + 1) / 10 - 1
    ys = (2 * torch.arange(8, dtype=torch.float64) + 1) / 8 - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    hom = torch.einsum("nij,hwj->nhwi", theta, torch.stack([gx, gy, torch.ones_like(gx)], -1))
    assert (hom[..., 2] > 0).all()
    expected = F.grid_sample(x, hom[..., :2] / hom[..., 2:], align_corners=False)
    torch.testing.assert_close(y, expected, atol=1e-10, rtol=1e-10)


def test_volume_affine_matches_affine_grid_3d():
    x = torch.rand(2, 1, 6, 7, 8, dtype=torch.float64)
    st = _perturb(SpatialTransformer(1, "affine", out_size=(5, 4, 3), dims=3, in_size=(8, 7, 6)).double())
    y, theta = st(x, return_theta=True)
    assert y.shape == (2, 1, 3, 4, 5) and theta.shape == (2, 3, 4)
    grid = F.affine_grid(theta, (2, 1, 3, 4, 5), align_corners=False)
    torch.testing.assert_close(y, F.grid_sample(x, grid, align_corners=False), atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("out_size, dims, expected", [
    (None, 2, (3, 2, 12, 10)), ((7, 5), 2, (3, 2, 5, 7)), ((1, 1), 2, (3, 2, 1, 1)),
    (None, 3, (3, 2, 6, 7, 8)), ((4, 3, 2), 3, (3, 2, 2, 3, 4))])
def test_output_size(out_size, dims, expected):
    st = SpatialTransformer(2, "affine", out_size=out_size, dims=dims)
    assert st(_input(dims)).shape == expected


@pytest.mark.parametrize("size", [(1, 1), (7, 13), (28, 28), (60, 60)])
def test_default_localization_adapts_to_any_size(size):
    x = torch.rand(2, 3, size[1], size[0])
    st = _perturb(SpatialTransformer(3, "similarity", in_size=size))
    assert st(x).shape == x.shape
    if size == (28, 28):
        assert st.localization.flat_features == 90  # the seed's 10 * 3 * 3


def test_batch_dims_empty_batch_and_backends():
    x = torch.rand(2, 3, 1, 12, 10)
    st = _perturb(SpatialTransformer(1, "affine", out_size=(6, 6)))
    y, theta = st(x, return_theta=True)
    assert y.shape == (2, 3, 1, 6, 6) and theta.shape == (2, 3, 2, 3)
    torch.testing.assert_close(y[1, 2], st(x[1, 2:3])[0])
    assert st(x[:0]).shape == (0, 3, 1, 6, 6)
    for backend in available_backends():
        torch.testing.assert_close(sample_theta(x, theta, (6, 6), backend=backend), y)
    # broadcasting: one theta for a batch of images
    one = sample_theta(x, theta[0, 0], (6, 6))
    torch.testing.assert_close(one[1, 2], sample_theta(x[1, 2], theta[0, 0], (6, 6)))


def test_user_localization_module():
    class Loc(nn.Module):
        def forward(self, x):
            return x.mean(dim=(-2, -1))  # (N, C)

    st = SpatialTransformer(3, "affine", localization=Loc(), in_size=(8, 8))
    assert st.head.fc.in_features == 3
    given = SpatialTransformer(3, "affine", localization=Loc(), loc_features=3)
    assert given(torch.rand(2, 3, 8, 8)).shape == (2, 3, 8, 8)
    fcn = SpatialTransformer(3, "tps", localization="fcn", in_size=(8, 6))
    torch.testing.assert_close(fcn(torch.rand(2, 3, 6, 8) * 0 + 1), torch.ones(2, 3, 6, 8), atol=1e-5, rtol=0)


@pytest.mark.parametrize("transform", ["affine", "projective", "tps"])
def test_gradcheck_through_a_tiny_transformer(transform):
    st = _perturb(SpatialTransformer(1, transform, out_size=(4, 3), in_size=(5, 4), tps_grid=2), 0.3).double()
    x = torch.rand(2, 1, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(st, (x,), atol=1e-6, rtol=1e-5, fast_mode=True)


def test_gradcheck_sample_theta_in_theta():
    x = torch.rand(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    theta = torch.tensor([[[0.8, 0.1, 0.05], [-0.2, 0.9, 0.1], [0.03, -0.02, 1.0]]], dtype=torch.float64,
                         requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, t: sample_theta(a, t, (4, 3)), (x, theta))
    assert torch.autograd.gradcheck(lambda a, t: sample_theta(a, t[:, :2], (4, 3)), (x, theta))


@pytest.mark.parametrize("kwargs, match", [
    (dict(transform="rigid"), "SpatialTransformer: transform must be one of"),
    (dict(transform="projective", dims=3), "SpatialTransformer: transform must be one of"),
    (dict(dims=1), "SpatialTransformer: dims must be 2 or 3"),
    (dict(out_size=(4, 4, 4)), "SpatialTransformer: out_size must have the form"),
    (dict(out_size=(0, 4)), "SpatialTransformer: out_size must be positive"),
    (dict(mode="area"), "SpatialTransformer: mode must be one of"),
    (dict(mode="bicubic", dims=3), "SpatialTransformer: mode must be one of"),
    (dict(padding_mode="wrap"), "SpatialTransformer: padding_mode must be one of"),
    (dict(localization="resnet"), "SpatialTransformer: localization must be"),
    (dict(localization="fcn"), "SpatialTransformer: localization='fcn' needs in_size"),
    (dict(localization=nn.Identity()), "SpatialTransformer: cannot tell the size"),
    (dict(max_angle=10.0), "SpatialTransformer: max_angle is not supported by transform 'affine'"),
    (dict(in_channels=0), "SpatialTransformer: in_channels must be positive"),
])
def test_bad_constructor_arguments(kwargs, match):
    kwargs = {"in_channels": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        SpatialTransformer(**kwargs)


def test_bad_call_arguments():
    st = SpatialTransformer(2, "affine", in_size=(22, 20))
    with pytest.raises(ValueError, match="SpatialTransformer.predict_theta: x must have 2 channels"):
        st(torch.rand(1, 3, 20, 22))
    with pytest.raises(ValueError, match="x has size \\(10, 10\\) but the transformer was built for in_size"):
        st(torch.rand(1, 2, 10, 10))
    with pytest.raises(TypeError, match="SpatialTransformer.predict_theta: x must be a floating point"):
        st(torch.zeros(1, 2, 20, 22, dtype=torch.uint8))
    with pytest.raises(TypeError, match="SpatialTransformer: localization must be"):
        SpatialTransformer(2, localization=3)
    with pytest.raises(ValueError, match="sample_theta: theta must have shape \\(..., 2, 3\\)"):
        sample_theta(torch.rand(1, 1, 4, 4), torch.zeros(1, 16, 2))
    with pytest.raises(ValueError, match="sample_theta: batch dimensions do not broadcast"):
        sample_theta(torch.rand(2, 1, 4, 4), torch.eye(2, 3).expand(3, 2, 3))
    with pytest.raises(ValueError, match="theta_to_pixel_matrix: in_size must have the form"):
        theta_to_pixel_matrix(torch.eye(3, 4), (4, 4))
