"""Transformers in series (one sampling of the original input, composed theta = composed pixel
matrices), in parallel (2xST), and the camera of a transformer's output (projection oracle)."""

from __future__ import annotations

import pytest
import torch

from camwarp import Camera
from camwarp import geometry as G
from camwarp.stn import (SpatialTransformer, SpatialTransformerChain, SpatialTransformerParallel, sample_theta,
                         stn_camera, theta_to_pixel_matrix)


def _perturb(st: SpatialTransformer, scale: float = 0.05, seed: int = 1) -> SpatialTransformer:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        st.head.fc.weight.copy_(scale * torch.randn(st.head.fc.weight.shape, generator=g))
    return st


@pytest.mark.parametrize("second", ["similarity", "projective"])
def test_chain_samples_once_with_the_composed_theta(second):
    x = torch.rand(2, 1, 18, 20, dtype=torch.float64)
    first = _perturb(SpatialTransformer(1, "scale_translation", out_size=(14, 12)), seed=1)
    last = _perturb(SpatialTransformer(1, second, out_size=(9, 7)), 0.02, seed=2)
    chain = SpatialTransformerChain(first, last).double()
    y, theta = chain(x, return_theta=True)
    assert y.shape == (2, 1, 7, 9) and theta.shape == ((2, 3, 3) if second == "projective" else (2, 2, 3))
    # theta_total = theta_1 @ theta_2, theta_2 predicted from the stage-1 output
    t1 = first.predict_theta(x)
    t2 = last.predict_theta(first.sample(x, t1))
    expected = G.lift_matrix(t1) @ G.lift_matrix(t2)
    expected = expected if second == "projective" else expected[:, :2]
    torch.testing.assert_close(theta, expected)
    # one sampling of the original input ...
    torch.testing.assert_close(y, sample_theta(x, theta, (9, 7), backend="reference"))
    # ... whose pixel matrix is the product of the stages' pixel matrices (sizes 20x18 -> 14x12 -> 9x7)
    A = G.compose(theta_to_pixel_matrix(t1, (20, 18), (14, 12)), theta_to_pixel_matrix(t2, (14, 12), (9, 7)))
    A_total = theta_to_pixel_matrix(theta, (20, 18), (9, 7))
    torch.testing.assert_close(A_total / A_total[:, 2:, 2:], A / A[:, 2:, 2:])  # homogeneous: up to scale
    # and not the double interpolation of two separate transformers
    assert not torch.allclose(y, last.sample(first.sample(x, t1), t2), atol=1e-3)


def test_chain_of_identities_is_the_identity_and_volumes_chain():
    x = torch.rand(2, 3, 12, 10)
    chain = SpatialTransformerChain(SpatialTransformer(3, "affine"), SpatialTransformer(3, "translation"))
    y, theta = chain(x, return_theta=True)
    torch.testing.assert_close(y, x, atol=1e-5, rtol=0)
    torch.testing.assert_close(theta, torch.eye(2, 3).expand(2, 2, 3))
    v = torch.rand(1, 1, 6, 7, 8, dtype=torch.float64)
    s1 = _perturb(SpatialTransformer(1, "affine", dims=3))
    s2 = _perturb(SpatialTransformer(1, "scale_translation", dims=3, out_size=(4, 4, 4)))
    c3 = SpatialTransformerChain(s1, s2).double()
    y3, t3 = c3(v, return_theta=True)
    assert t3.shape == (1, 3, 4)
    torch.testing.assert_close(y3, sample_theta(v, t3, (4, 4, 4)))


def test_parallel_concatenates_branches():
    x = torch.rand(3, 2, 16, 16)
    a = _perturb(SpatialTransformer(2, "affine", out_size=(8, 8)), seed=3)
    b = _perturb(SpatialTransformer(2, "similarity", out_size=(8, 8)), seed=4)
    two = SpatialTransformerParallel(a, b)
    y, thetas = two(x, return_theta=True)
    assert y.shape == (3, 4, 8, 8) and two.out_channels == 4
    torch.testing.assert_close(y[:, :2], a(x))
    torch.testing.assert_close(y[:, 2:], b(x))
    torch.testing.assert_close(thetas[1], b.predict_theta(x))


def test_compose_errors():
    with pytest.raises(ValueError, match="SpatialTransformerChain: transformers\\[1\\] is 'tps'"):
        SpatialTransformerChain(SpatialTransformer(1), SpatialTransformer(1, "tps"))
    with pytest.raises(ValueError, match="SpatialTransformerChain: needs at least one"):
        SpatialTransformerChain()
    with pytest.raises(TypeError, match="SpatialTransformerParallel: transformers\\[0\\] must be a SpatialTransformer"):
        SpatialTransformerParallel(torch.nn.Identity())
    with pytest.raises(ValueError, match="SpatialTransformerParallel: transformers\\[1\\] has dims=2, in_channels=3"):
        SpatialTransformerParallel(SpatialTransformer(1), SpatialTransformer(3))
    two = SpatialTransformerParallel(SpatialTransformer(1, out_size=(4, 4)), SpatialTransformer(1))
    with pytest.raises(ValueError, match="SpatialTransformerParallel: the branches give different output sizes"):
        two(torch.rand(1, 1, 8, 8))


def _project_both(cam: Camera, theta: torch.Tensor, out_size, X: torch.Tensor):
    new, R = stn_camera(cam, theta, cam.size, out_size)
    A = theta_to_pixel_matrix(theta, cam.size, out_size)
    moved = G.transform_points(A, cam.project(X))  # the input's pixels carried by the warp
    seen = new.project(X @ R.transpose(-1, -2))  # the new camera looks at R X
    return new, R, moved, seen


def test_learned_crop_gives_exact_intrinsics():
    cam = Camera(torch.tensor(220.0, dtype=torch.float64), 230.0, 31.5, 23.25, 64, 48, dist=[0.01, -0.002])
    theta = torch.tensor([[0.5, 0.0, 0.25], [0.0, 0.5, -0.1]], dtype=torch.float64)  # zoom on a window
    X = torch.rand(20, 3, dtype=torch.float64) * 0.2 + torch.tensor([-0.1, -0.1, 1.0], dtype=torch.float64)
    new, R, moved, seen = _project_both(cam, theta, (16, 12), X)
    torch.testing.assert_close(R, torch.eye(3, dtype=torch.float64))
    torch.testing.assert_close(seen, moved)
    assert new.size == (16, 12) and torch.equal(new.dist, cam.dist)
    # closed form: the input window [x0, x0 + 32] x [y0, y0 + 24] (corner frame) fills the 16x12 output
    x0, y0 = (0.25 - 0.5 + 1) / 2 * 64, (-0.1 - 0.5 + 1) / 2 * 48
    f64 = dict(dtype=torch.float64)
    torch.testing.assert_close(new.fx, torch.tensor(220.0 * 16 / 32, **f64))
    torch.testing.assert_close(new.fy, torch.tensor(230.0 * 12 / 24, **f64))
    torch.testing.assert_close(new.cx, torch.tensor((31.5 + 0.5 - x0) * 16 / 32 - 0.5, **f64))
    torch.testing.assert_close(new.cy, torch.tensor((23.25 + 0.5 - y0) * 12 / 24 - 0.5, **f64))


def test_rotating_transformer_camera_and_module_method():
    cam = Camera(torch.tensor([200.0, 180.0], dtype=torch.float64), 200.0, 20.0, 20.0, 40, 40)
    st = _perturb(SpatialTransformer(1, "similarity", out_size=(20, 20))).double()
    x = torch.rand(2, 1, 40, 40, dtype=torch.float64)
    theta = st.predict_theta(x)
    X = torch.rand(2, 15, 3, dtype=torch.float64) * 0.2 + torch.tensor([-0.1, -0.1, 1.0], dtype=torch.float64)
    new, R, moved, seen = _project_both(cam, theta, (20, 20), X)
    assert not torch.allclose(R, torch.eye(3, dtype=torch.float64).expand(2, 3, 3))
    torch.testing.assert_close(seen, moved)
    new2, R2 = st.output_camera(cam, theta)
    torch.testing.assert_close(new2.K, new.K)
    with pytest.raises(ValueError, match="stn_camera: camera.size \\(40, 40\\) differs from in_size"):
        stn_camera(cam, theta, (20, 20))
    with pytest.raises(ValueError, match="output_camera: a 'tps' transformer"):
        SpatialTransformer(1, "tps").output_camera(cam, torch.zeros(2, 16, 2))
