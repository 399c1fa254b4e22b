"""compose / invert / transform_points and theta <-> matrix against torch's affine_grid, plus
hypothesis round trips."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from camwarp import SingularMatrixError
from camwarp import geometry as G

SIZES = st.tuples(st.integers(1, 40), st.integers(1, 40))


def _random_affine(seed: int, d: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    A = torch.eye(d + 1, dtype=torch.float64)
    A[:d, :] += 0.3 * torch.randn(d, d + 1, generator=g, dtype=torch.float64)
    A[:d, d] *= 10
    return A


def test_compose_is_apply_then_apply():
    A, B, C = (_random_affine(s) for s in range(3))
    p = torch.randn(10, 2, dtype=torch.float64)
    step = G.transform_points(C, G.transform_points(B, G.transform_points(A, p)))
    torch.testing.assert_close(G.transform_points(G.compose(A, B, C), p), step)


def test_compose_broadcasts_batches():
    A = torch.stack([_random_affine(s) for s in range(4)]).reshape(2, 2, 3, 3)
    B = _random_affine(9)
    out = G.compose(A, B)
    assert out.shape == (2, 2, 3, 3)
    torch.testing.assert_close(out[1, 0], B @ A[1, 0])


def test_invert_and_singular():
    A = _random_affine(3)
    torch.testing.assert_close(G.invert(A) @ A, torch.eye(3, dtype=torch.float64))
    with pytest.raises(SingularMatrixError, match="invert: A is singular"):
        G.invert(torch.diag(torch.tensor([1.0, 0.0, 1.0])))
    with pytest.raises(ValueError, match=r"must have shape \(\.\.\., 3\|4, 3\|4\)"):
        G.invert(torch.eye(2))


def test_transform_points_homogeneous_divide():
    H = torch.tensor([[1.0, 0.2, 3.0], [0.1, 0.9, -2.0], [0.01, 0.02, 1.0]], dtype=torch.float64)
    p = torch.tensor([[4.0, 5.0], [0.0, 0.0]], dtype=torch.float64)
    h = torch.cat([p, torch.ones(2, 1, dtype=torch.float64)], -1) @ H.T
    torch.testing.assert_close(G.transform_points(H, p), h[:, :2] / h[:, 2:])
    with pytest.raises(ValueError, match="for 2-D points"):
        G.transform_points(torch.eye(4), p)
    with pytest.raises(ValueError, match="batch dimensions do not broadcast"):
        G.transform_points(torch.eye(3).expand(3, 3, 3), torch.zeros(2, 5, 2))


def _grid_pixels(theta, in_size, out_size, align_corners):
    """Input pixel coordinates that torch's affine_grid gives for each output pixel centre."""
    dims = len(in_size)
    shape = (1, 1, *reversed(out_size))
    grid = F.affine_grid(theta[None], shape, align_corners=align_corners).reshape(-1, dims)
    return G.transform_points(G.denormalize_matrix(in_size, align_corners, dtype=theta.dtype), grid)


@pytest.mark.parametrize("align_corners", [False, True])
@given(in_size=SIZES, out_size=SIZES, seed=st.integers(0, 10_000))
def test_theta_to_matrix_matches_affine_grid(align_corners, in_size, out_size, seed):
    if align_corners and (1 in out_size or 1 in in_size):
        with pytest.raises(ValueError, match="align_corners=True"):
            G.theta_to_matrix(torch.eye(2, 3, dtype=torch.float64), in_size, out_size, True)
        return
    theta = _random_affine(seed)[:2]
    A = G.theta_to_matrix(theta, in_size, out_size, align_corners)
    ij = torch.stack(torch.meshgrid(torch.arange(out_size[0]), torch.arange(out_size[1]), indexing="xy"), -1)
    ours = G.transform_points(G.invert(A), ij.reshape(-1, 2).double())
    torch.testing.assert_close(ours, _grid_pixels(theta, in_size, out_size, align_corners), atol=1e-8, rtol=0)
    torch.testing.assert_close(G.matrix_to_theta(A, in_size, out_size, align_corners), theta,
                               atol=1e-10, rtol=0)


@pytest.mark.parametrize("align_corners", [False, True])
def test_theta_3d_matches_affine_grid(align_corners):
    theta = _random_affine(5, d=3)[:3]
    in_size, out_size = (5, 7, 4), (3, 6, 8)
    A = G.theta_to_matrix(theta, in_size, out_size, align_corners)
    assert A.shape == (4, 4)
    W, H, D = out_size
    zyx = torch.stack(torch.meshgrid(torch.arange(D), torch.arange(H), torch.arange(W), indexing="ij"), -1)
    ours = G.transform_points(G.invert(A), zyx.flip(-1).reshape(-1, 3).double())
    torch.testing.assert_close(ours, _grid_pixels(theta, in_size, out_size, align_corners), atol=1e-8, rtol=0)
    torch.testing.assert_close(G.matrix_to_theta(A, in_size, out_size, align_corners), theta)


def test_projective_theta_round_trip_and_refusal():
    H = torch.tensor([[1.0, 0.2, 3.0], [0.1, 0.9, -2.0], [0.01, 0.02, 1.0]], dtype=torch.float64)
    theta = G.matrix_to_theta(H, (32, 24), (16, 16), projective=True)
    assert theta.shape == (3, 3)
    torch.testing.assert_close(G.theta_to_matrix(theta, (32, 24), (16, 16)), H)
    with pytest.raises(ValueError, match="pass projective=True"):
        G.matrix_to_theta(H, (32, 24), (16, 16))


def test_theta_gradcheck():
    theta = (torch.eye(2, 3, dtype=torch.float64) + 0.1).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: G.theta_to_matrix(t, (7, 5), (4, 9)), (theta,))
    A = _random_affine(1).requires_grad_()
    assert torch.autograd.gradcheck(lambda a: G.matrix_to_theta(a, (7, 5), (4, 9), projective=True), (A,))


@given(W=st.integers(1, 50), H=st.integers(1, 50), k=st.integers(-8, 8))
def test_rot90_flip_round_trips(W, H, k):
    size = (W, H) if k % 2 == 0 else (H, W)
    back = G.rot90_matrix(-k, size, dtype=torch.float64) @ G.rot90_matrix(k, (W, H), dtype=torch.float64)
    torch.testing.assert_close(back, torch.eye(3, dtype=torch.float64))
    torch.testing.assert_close(G.vflip_matrix(H) @ G.vflip_matrix(H), torch.eye(3))


@given(in_size=SIZES, out_size=SIZES)
def test_resize_round_trip(in_size, out_size):
    there = G.resize_matrix(in_size, out_size, dtype=torch.float64)
    back = G.resize_matrix(out_size, in_size, dtype=torch.float64)
    torch.testing.assert_close(back @ there, torch.eye(3, dtype=torch.float64))


def test_batched_theta_dtype_device_kept():
    theta = torch.eye(2, 3).expand(4, 5, 2, 3)
    A = G.theta_to_matrix(theta, (8, 8), (4, 4))
    assert A.shape == (4, 5, 3, 3) and A.dtype == torch.float32
    assert G.matrix_to_theta(A, (8, 8), (4, 4)).shape == (4, 5, 2, 3)
    assert G.theta_to_matrix(theta[:0], (8, 8), (4, 4)).shape == (0, 5, 3, 3)
