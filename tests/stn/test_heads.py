"""Transform heads (family structure, bounds, identity at init) and the TPS, against closed forms,
hypothesis properties, torch's affine_grid and an independent TPS solve evaluated by kornia."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from kornia.geometry.transform import warp_points_tps

from camwarp.stn import heads, tps

FAMILY_DIMS = [(f, 2) for f in heads.FAMILIES] + [(f, 3) for f in heads.FAMILIES_3D]
raw = st.floats(-3, 3, allow_nan=False)


def _identity_theta(transform: str, dims: int, K: int = 4) -> torch.Tensor:
    if transform == "tps":
        return torch.zeros(K * K, 2)
    if transform == "projective":
        return torch.eye(3)
    return torch.eye(dims, dims + 1)


@pytest.mark.parametrize("transform, dims", FAMILY_DIMS)
def test_identity_params_give_identity_theta(transform, dims):
    p = heads.identity_params(transform, dims)
    assert p.shape == (heads.num_params(transform, dims),)
    assert torch.equal(heads.params_to_theta(p, transform, dims), _identity_theta(transform, dims))


@pytest.mark.parametrize("transform, dims", FAMILY_DIMS)
def test_head_starts_at_identity_with_last_layer_gradients(transform, dims):
    head = heads.TransformHead(7, transform, dims)
    feats = torch.rand(5, 7) + 0.1
    theta = head(feats)
    assert torch.equal(theta, _identity_theta(transform, dims).expand_as(theta))
    (theta * torch.randn_like(theta)).sum().backward()
    assert head.fc.weight.grad.abs().sum() > 0 and head.fc.bias.grad.abs().sum() > 0


@given(s=raw, a=raw, tx=raw, ty=raw)
def test_similarity_block_is_a_scaled_rotation(s, a, tx, ty):
    p = torch.tensor([s, a, tx, ty], dtype=torch.float64)
    theta = heads.params_to_theta(p, "similarity")
    M = theta[:, :2]
    scale = math.exp(s)
    torch.testing.assert_close(M @ M.T, scale ** 2 * torch.eye(2, dtype=torch.float64))
    assert torch.linalg.det(M) > 0
    torch.testing.assert_close(torch.atan2(M[1, 0], M[0, 0]), torch.tensor(math.atan2(math.sin(a), math.cos(a)),
                                                                           dtype=torch.float64))
    torch.testing.assert_close(theta[:, 2], p[2:])


@given(p=st.lists(raw, min_size=4, max_size=4))
def test_translation_and_attention_structure(p):
    p = torch.tensor(p, dtype=torch.float64)
    t = heads.params_to_theta(p[:2], "translation")
    assert torch.equal(t[:, :2], torch.eye(2, dtype=torch.float64)) and torch.equal(t[:, 2], p[:2])
    a = heads.params_to_theta(p[:3], "scale_translation")
    torch.testing.assert_close(a[:, :2], math.exp(p[0]) * torch.eye(2, dtype=torch.float64))
    t3 = heads.params_to_theta(p[1:], "translation", dims=3)
    assert torch.equal(t3[:, :3], torch.eye(3, dtype=torch.float64)) and torch.equal(t3[:, 3], p[1:])


def test_affine_and_projective_layouts():
    p = torch.randn(4, 6, dtype=torch.float64)
    assert torch.equal(heads.params_to_theta(p, "affine"), p.view(4, 2, 3))
    q = torch.randn(4, 8, dtype=torch.float64)
    theta = heads.params_to_theta(q, "projective")
    assert torch.equal(theta.flatten(-2)[:, :8], q) and torch.equal(theta[:, 2, 2], torch.ones(4, dtype=torch.float64))
    r = torch.randn(2, 12, dtype=torch.float64)
    assert torch.equal(heads.params_to_theta(r, "affine", 3), r.view(2, 3, 4))


def test_bounds_hold_far_out_and_keep_gradients():
    big = torch.tensor([[50.0, -40.0, 30.0, -60.0]], dtype=torch.float64, requires_grad=True)
    theta = heads.params_to_theta(big, "similarity", max_scale=2.0, max_angle=30.0, max_translation=0.5)
    M = theta[0, :, :2]
    s = torch.sqrt(torch.linalg.det(M))
    assert 0.5 <= s <= 2.0
    assert torch.rad2deg(torch.atan2(M[1, 0], M[0, 0])).abs() <= 30.0 + 1e-9
    assert theta[0, :, 2].abs().max() <= 0.5
    moderate = torch.tensor([[1.0, 1.0, 1.0, 1.0]], dtype=torch.float64, requires_grad=True)
    out = heads.params_to_theta(moderate, "similarity", max_scale=2.0, max_angle=30.0, max_translation=0.5)
    out.sum().backward()
    assert (moderate.grad != 0).all()  # tanh, not a clip: gradients everywhere
    d = heads.params_to_theta(torch.full((1, 32), 9.0), "tps", max_translation=0.25)
    assert d.shape == (1, 16, 2) and d.abs().max() <= 0.25


@pytest.mark.parametrize("transform, bounds", [
    ("similarity", dict(max_scale=3.0, max_angle=45.0, max_translation=0.7)),
    ("scale_translation", dict(max_scale=1.5, max_translation=0.2)),
    ("affine", dict(max_translation=0.3)), ("projective", dict(max_translation=0.3)),
    ("tps", dict(max_translation=0.3))])
def test_bounds_do_not_change_the_identity_or_its_slope(transform, bounds):
    p0 = heads.identity_params(transform, dtype=torch.float64)
    free = torch.autograd.functional.jacobian(lambda p: heads.params_to_theta(p, transform), p0)
    bounded = torch.autograd.functional.jacobian(lambda p: heads.params_to_theta(p, transform, **bounds), p0)
    torch.testing.assert_close(bounded, free)
    assert torch.equal(heads.params_to_theta(p0, transform, **bounds), heads.params_to_theta(p0, transform))


@pytest.mark.parametrize("call, match", [
    (lambda: heads.num_params("rigid"), "num_params: transform must be one of"),
    (lambda: heads.num_params("projective", dims=3), "transform must be one of"),
    (lambda: heads.num_params("affine", dims=4), "dims must be 2 or 3"),
    (lambda: heads.num_params("tps", tps_grid=1), "tps_grid must be at least 2"),
    (lambda: heads.params_to_theta(torch.zeros(5), "affine"), "params for 'affine'"),
    (lambda: heads.params_to_theta(torch.zeros(6), "affine", max_scale=2.0), "max_scale is not supported"),
    (lambda: heads.params_to_theta(torch.zeros(4), "similarity", max_scale=0.5), "max_scale must be > 1"),
    (lambda: heads.params_to_theta(torch.zeros(4), "similarity", max_angle=-1), "max_angle must be a positive"),
    (lambda: heads.params_to_theta(torch.zeros(10), "tps"), "2\\*K\\*K"),
    (lambda: heads.TransformHead(0, "affine"), "TransformHead: in_features must be positive"),
])
def test_bad_arguments_raise_named_value_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_types_raise_type_errors():
    with pytest.raises(TypeError, match="params_to_theta: params must be a floating point"):
        heads.params_to_theta(torch.zeros(6, dtype=torch.int64), "affine")
    with pytest.raises(TypeError, match="TransformHead: in_features must be an int"):
        heads.TransformHead(3.5, "affine")
    with pytest.raises(TypeError, match="transform must be a str"):
        heads.TransformHead(3, None)


# ----------------------------------------------------------------------------------------------- TPS

def _tps_oracle(d: torch.Tensor, points: torch.Tensor, K: int) -> torch.Tensor:
    """Solve the TPS system in numpy (kernel r^2 log r, kornia's) and evaluate with kornia."""
    c = tps.tps_control_points(K, dtype=torch.float64).numpy()
    n = len(c)
    r2 = ((c[:, None] - c[None]) ** 2).sum(-1)
    U = np.where(r2 > 0, 0.5 * r2 * np.log(np.where(r2 > 0, r2, 1)), 0)
    P = np.concatenate([np.ones((n, 1)), c], 1)
    L = np.block([[U, P], [P.T, np.zeros((3, 3))]])
    rhs = np.concatenate([c + d.numpy(), np.zeros((3, 2))])
    wa = np.linalg.solve(L, rhs)
    t = lambda a: torch.from_numpy(a)[None]  # noqa: E731
    return warp_points_tps(points[None], t(c), t(wa[:n]), t(wa[n:]))[0]


@pytest.mark.parametrize("K", [2, 3, 4, 5])
def test_tps_matches_an_independent_solve_and_interpolates(K):
    g = torch.Generator().manual_seed(K)
    d = 0.2 * torch.randn(K * K, 2, generator=g, dtype=torch.float64)
    pts = 2.4 * torch.rand(50, 2, generator=g, dtype=torch.float64) - 1.2
    torch.testing.assert_close(tps.tps_transform_points(d, pts), _tps_oracle(d, pts, K), atol=1e-10, rtol=1e-10)
    c = tps.tps_control_points(K, dtype=torch.float64)
    torch.testing.assert_close(tps.tps_transform_points(d, c), c + d, atol=1e-10, rtol=0)


def test_tps_of_affine_displacements_is_that_affine_map_and_warps_like_affine_grid():
    theta = torch.tensor([[0.9, -0.2, 0.1], [0.15, 1.1, -0.05]], dtype=torch.float64)
    c = tps.tps_control_points(4, dtype=torch.float64)
    d = c @ theta[:, :2].T + theta[:, 2] - c
    pts = torch.rand(30, 2, dtype=torch.float64) * 2 - 1
    torch.testing.assert_close(tps.tps_transform_points(d, pts), pts @ theta[:, :2].T + theta[:, 2])
    x = torch.rand(2, 3, 7, 9, dtype=torch.float64)
    grid = F.affine_grid(theta.expand(2, 2, 3), (2, 3, 5, 6), align_corners=False)
    expected = F.grid_sample(x, grid, align_corners=False)
    torch.testing.assert_close(tps.tps_warp(x, d.expand(2, 16, 2), (6, 5)), expected)
    torch.testing.assert_close(tps.tps_grid(d[None], (6, 5)), grid[:1])


def test_tps_identity_batching_and_gradcheck():
    x = torch.rand(2, 4, 3, 5, 6)
    torch.testing.assert_close(tps.tps_grid(torch.zeros(1, 9, 2), (6, 5)),
                               F.affine_grid(torch.eye(2, 3)[None], (1, 1, 5, 6), align_corners=False))
    torch.testing.assert_close(tps.tps_warp(x, torch.zeros(9, 2)), x, atol=1e-6, rtol=0)
    d = 0.1 * torch.randn(2, 1, 9, 2)
    out = tps.tps_warp(x, d, (4, 3))
    assert out.shape == (2, 4, 3, 3, 4)
    torch.testing.assert_close(out[1, 2], tps.tps_warp(x[1, 2], d[1, 0], (4, 3)))
    xd = torch.rand(1, 1, 4, 5, dtype=torch.float64, requires_grad=True)
    dd = (0.1 * torch.randn(1, 4, 2, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: tps.tps_warp(a, b, (3, 3)), (xd, dd))


def test_tps_errors_are_named():
    with pytest.raises(ValueError, match="tps_warp: displacements must have shape \\(..., K\\*K, 2\\)"):
        tps.tps_warp(torch.rand(1, 1, 4, 4), torch.zeros(1, 5, 2))
    with pytest.raises(ValueError, match="tps_warp: mode must be one of"):
        tps.tps_warp(torch.rand(1, 1, 4, 4), torch.zeros(1, 4, 2), mode="area")
    with pytest.raises(ValueError, match="tps_transform_points: points must have shape"):
        tps.tps_transform_points(torch.zeros(4, 2), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="tps_control_points: grid_size must be at least 2"):
        tps.tps_control_points(1)
