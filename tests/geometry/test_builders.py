"""Matrix builders against independent oracles: OpenCV's own matrices, torch's flips/rot90 and
interpolation, and closed forms."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from camwarp import geometry as G


def _warp_exact(image: torch.Tensor, A: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Warp with torch's own sampler (independent of camwarp.warp) through matrix_to_theta."""
    H, W = image.shape[-2:]
    theta = G.matrix_to_theta(A.double(), (W, H), size)
    grid = F.affine_grid(theta[None], (1, image.shape[0], size[1], size[0]), align_corners=False)
    return F.grid_sample(image[None].double(), grid, mode="nearest", align_corners=False)[0]


@pytest.mark.parametrize("k", [-1, 0, 1, 2, 3, 5])
def test_rot90_matches_torch_rot90(k):
    img = torch.arange(7 * 13, dtype=torch.float64).reshape(1, 7, 13)
    out = torch.rot90(img, k, dims=(-2, -1))
    A = G.rot90_matrix(k, (13, 7), dtype=torch.float64)
    assert torch.equal(_warp_exact(img, A, (out.shape[-1], out.shape[-2])), out)


def test_flips_match_torch_flip():
    img = torch.arange(5 * 6, dtype=torch.float64).reshape(1, 5, 6)
    assert torch.equal(_warp_exact(img, G.hflip_matrix(6), (6, 5)), img.flip(-1))
    assert torch.equal(_warp_exact(img, G.vflip_matrix(5), (6, 5)), img.flip(-2))
    assert torch.equal(G.hflip_matrix(6) @ G.hflip_matrix(6), torch.eye(3))


def test_crop_matches_slicing():
    img = torch.arange(9 * 11, dtype=torch.float64).reshape(1, 9, 11)
    A = G.crop_matrix(3, 2)
    assert torch.equal(_warp_exact(img, A, (5, 4)), img[:, 2:6, 3:8])


def test_pad_matches_f_pad():
    img = torch.arange(4 * 5, dtype=torch.float64).reshape(1, 4, 5) + 1
    out = F.pad(img, (2, 1, 3, 0))
    assert torch.equal(_warp_exact(img, G.pad_matrix(2, 3), (8, 7)), out)


@pytest.mark.parametrize("sizes", [((13, 7), (26, 21)), ((10, 10), (5, 4)), ((6, 9), (11, 3))])
def test_resize_matches_interpolate_and_cv2(sizes):
    (W, H), (Wo, Ho) = sizes
    img = torch.rand(1, H, W, dtype=torch.float64)
    A = G.resize_matrix((W, H), (Wo, Ho), dtype=torch.float64)
    theta = G.matrix_to_theta(A, (W, H), (Wo, Ho))
    grid = F.affine_grid(theta[None], (1, 1, Ho, Wo), align_corners=False)
    ours = F.grid_sample(img[None], grid, mode="bilinear", padding_mode="border", align_corners=False)[0]
    ref = F.interpolate(img[None], size=(Ho, Wo), mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(ours, ref, atol=1e-12, rtol=0)
    # cv2.resize's INTER_LINEAR maps pixels with the same half-pixel rule (upsampling is exact).
    if Wo >= W and Ho >= H:
        cv = cv2.resize(img[0].numpy(), (Wo, Ho), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_allclose(ours[0].numpy(), cv, atol=1e-6)


def test_resize_maps_edges_to_edges():
    A = G.resize_matrix((2880, 2160), (640, 360), dtype=torch.float64)
    edges = torch.tensor([[-0.5, -0.5], [2879.5, 2159.5]], dtype=torch.float64)
    torch.testing.assert_close(G.transform_points(A, edges), torch.tensor([[-0.5, -0.5], [639.5, 359.5]],
                                                                          dtype=torch.float64))


@pytest.mark.parametrize("angle,scale", [(30.0, 1.0), (-73.5, 0.7), (180.0, 2.0)])
def test_rotate_matches_cv2(angle, scale):
    center = (12.3, -4.5)
    ref = cv2.getRotationMatrix2D(center, angle, scale)
    ours = G.rotate_matrix(angle, center, scale, dtype=torch.float64)
    np.testing.assert_allclose(ours[:2].numpy(), ref, atol=1e-12)
    np.testing.assert_array_equal(ours[2].numpy(), [0, 0, 1])


def test_rotate_batched_and_differentiable():
    angle = torch.tensor([10.0, 20.0, 30.0], dtype=torch.float64, requires_grad=True)
    A = G.rotate_matrix(angle, (1.0, 2.0))
    assert A.shape == (3, 3, 3)
    for i in range(3):
        torch.testing.assert_close(A[i], G.rotate_matrix(float(angle[i].detach()), (1.0, 2.0), dtype=torch.float64))
    assert torch.autograd.gradcheck(lambda a: G.rotate_matrix(a, (1.0, 2.0), 1.3), (angle,))


def test_affine_matrix_closed_form_and_cv2():
    # No shear, no translate: the same as a rotation+scale about the centre.
    A = G.affine_matrix(angle=25.0, scale=1.5, center=(3.0, 4.0), dtype=torch.float64)
    ref = cv2.getRotationMatrix2D((3.0, 4.0), 25.0, 1.5)
    np.testing.assert_allclose(A[:2].numpy(), ref, atol=1e-12)
    # Translation adds; the centre is a fixed point of the rest.
    At = G.affine_matrix(angle=25.0, translate=(2.0, -1.0), scale=1.5, shear=(10.0, -5.0), center=(3.0, 4.0),
                         dtype=torch.float64)
    c = G.transform_points(At, torch.tensor([[3.0, 4.0]], dtype=torch.float64))
    torch.testing.assert_close(c, torch.tensor([[5.0, 3.0]], dtype=torch.float64))
    # Pure x-shear tilts columns: (0, 1) -> (tan(sx), 1).
    Ash = G.affine_matrix(shear=(20.0, 0.0), dtype=torch.float64)
    p = G.transform_points(Ash, torch.tensor([[0.0, 1.0]], dtype=torch.float64))
    torch.testing.assert_close(p, torch.tensor([[np.tan(np.radians(20.0)), 1.0]], dtype=torch.float64))


def test_perspective_matches_cv2():
    rng = np.random.default_rng(0)
    src = np.array([[0, 0], [31, 0], [31, 23], [0, 23]], dtype=np.float64) + rng.normal(0, 1, (4, 2))
    dst = src + rng.normal(0, 3, (4, 2))
    ref = cv2.getPerspectiveTransform(src.astype(np.float32), dst.astype(np.float32))
    ours = G.perspective_matrix(torch.tensor(src), torch.tensor(dst))
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-4, atol=1e-5)  # cv2 solves in float32 input
    torch.testing.assert_close(G.transform_points(ours, torch.tensor(src)), torch.tensor(dst))


def test_3d_builders():
    A = G.resize_matrix((4, 6, 8), (8, 3, 2), dtype=torch.float64)
    assert A.shape == (4, 4)
    corners = torch.tensor([[-0.5, -0.5, -0.5], [3.5, 5.5, 7.5]], dtype=torch.float64)
    torch.testing.assert_close(G.transform_points(A, corners),
                               torch.tensor([[-0.5, -0.5, -0.5], [7.5, 2.5, 1.5]], dtype=torch.float64))
    C = G.crop_matrix(1.0, 2.0, 3.0)
    torch.testing.assert_close(C[:3, 3], torch.tensor([-1.0, -2.0, -3.0]))


def test_lift_matrix():
    M = torch.tensor(cv2.getRotationMatrix2D((1, 2), 30, 1))
    A = G.lift_matrix(M)
    assert A.shape == (3, 3) and torch.equal(A[:2], M) and torch.equal(A[2], torch.tensor([0.0, 0, 1]).double())
    assert G.lift_matrix(torch.zeros(5, 3, 4)).shape == (5, 4, 4)


@pytest.mark.parametrize("call,match", [
    (lambda: G.resize_matrix((0, 5), (3, 3)), "in_size must be positive"),
    (lambda: G.resize_matrix((4, 5), (3, 3, 3)), "out_size must have the form"),
    (lambda: G.resize_matrix((4.5, 5), (3, 3)), "in_size must contain ints"),
    (lambda: G.hflip_matrix(-2), "width must be positive"),
    (lambda: G.rot90_matrix(1.5, (3, 3)), "k must be an int"),
    (lambda: G.rotate_matrix(10.0, (1.0, 2.0, 3.0)), r"center must have shape \(\.\.\., 2\)"),
    (lambda: G.perspective_matrix(torch.zeros(3, 2), torch.zeros(4, 2)), r"src must have shape"),
    (lambda: G.lift_matrix(torch.zeros(2, 2)), "lift_matrix: M must have shape"),
    (lambda: G.crop_matrix("a", 1), "x0 must be a number"),
])
def test_bad_arguments_are_named(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
