"""Antialiasing: aliasing suppressed on downscales, untouched elsewhere; filters against OpenCV/NumPy/torch."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from camwarp.geometry import affine_matrix, resize_matrix, rotate_matrix, scale_matrix, transform_points
from camwarp.warp import crop_resize, warp_affine, warp_affine3d, warp_perspective
from camwarp.warp.antialias import (_covariance_from_moments, gaussian_prefilter, perspective_covariance,
                                    prefilter_covariance, resample_separable)

N = 198  # source side: 3 * 66


def grating(period: float = 2.2, angle: float = 0.0, n: int = N) -> torch.Tensor:
    """``(1, n, n)`` float64 cosine grating of ``period`` pixels along direction ``angle`` (degrees)."""
    v, u = torch.meshgrid(torch.arange(n, dtype=torch.float64), torch.arange(n, dtype=torch.float64), indexing="ij")
    a = math.radians(angle)
    return torch.cos(2 * math.pi * (u * math.cos(a) + v * math.sin(a)) / period)[None]


def energy(x: torch.Tensor, margin: int = 4) -> float:
    """Mean squared deviation from the mean, away from the borders (padding is not aliasing)."""
    core = x[..., margin:-margin, margin:-margin]
    return float(((core - core.mean()) ** 2).mean())


def test_downscale_grating_aliases_without_and_not_with_antialias():
    img = grating()
    A = resize_matrix((N, N), (N // 3, N // 3), dtype=torch.float64)
    plain = warp_affine(img, A, (N // 3, N // 3))
    aa = warp_affine(img, A, (N // 3, N // 3), antialias=True)
    # Without: a strong pattern at the alias frequency |3/2.2 - 1| = 0.364 cycles per output pixel.
    spectrum = np.abs(np.fft.rfft(plain[0, N // 6].numpy() - plain[0, N // 6].numpy().mean()))
    peak = np.argmax(spectrum) / (N // 3)
    assert abs(peak - (3 / 2.2 - 1)) < 0.02 and energy(plain) > 0.1
    assert energy(aa) * 10 <= energy(plain), (energy(aa), energy(plain))


@pytest.mark.parametrize("angle", [0.0, 30.0, 60.0])
def test_rotated_downscale_suppresses_aliasing(angle):
    img = grating(2.2, angle)
    A = rotate_matrix(angle, ((N - 1) / 2, (N - 1) / 2), 1 / 3, dtype=torch.float64)
    A = affine_matrix(translate=(-(N - 1) / 3, -(N - 1) / 3), dtype=torch.float64) @ A  # keep the centre in view
    size = (N // 3, N // 3)
    plain, aa = warp_affine(img, A, size), warp_affine(img, A, size, antialias=True)
    assert energy(aa, 12) * 10 <= energy(plain, 12), (energy(aa, 12), energy(plain, 12))


def test_anisotropic_downscale_blurs_only_the_shrunk_axis():
    img = grating(2.2, 0.0) + grating(7.0, 90.0)  # fine along u, coarse along v
    A = scale_matrix((1 / 3, 1.0), dtype=torch.float64)
    out = warp_affine(img, A, (N // 3, N), antialias=True, padding_mode="reflection")
    ref = warp_affine(grating(7.0, 90.0), A, (N // 3, N), padding_mode="reflection")
    # The fine grating is gone (<= 10% of its energy 0.5) and the coarse one, untouched by a
    # u-only blur, passes exactly.
    assert energy(out - ref) < 0.05


def test_perspective_and_crop_resize_and_3d_antialias():
    img = grating()
    Hm = resize_matrix((N, N), (N // 3, N // 3), dtype=torch.float64).clone()
    Hm[2, 0] = 2e-4  # mild perspective on top of the 3x shrink
    size = (N // 3, N // 3)
    assert energy(warp_perspective(img, Hm, size, antialias=True)) * 10 <= energy(warp_perspective(img, Hm, size))
    for mode in ("bilinear", "bicubic", "area"):
        out = crop_resize(img, (0, 0, N, N), size, mode=mode)
        assert energy(out) * 10 <= energy(crop_resize(img, (0, 0, N, N), size, antialias=False)), mode
    vol = grating(2.2, 0.0, 48)[:, None].expand(1, 6, 48, 48)  # (C, D, H, W), varying along u
    A = scale_matrix((1 / 3, 1.0, 1.0), dtype=torch.float64)
    plain = warp_affine3d(vol, A, (16, 48, 6))[0, 3]
    aa = warp_affine3d(vol, A, (16, 48, 6), antialias=True)[0, 3]
    assert energy(aa) * 10 <= energy(plain)


@pytest.mark.parametrize("A", [rotate_matrix(33.0, (8.0, 6.0), 1.0, dtype=torch.float64),
                               rotate_matrix(-70.0, (3.0, 2.0), 2.5, dtype=torch.float64),
                               affine_matrix(translate=(0.3, -1.2), dtype=torch.float64)])
def test_no_blur_without_downscale(A):
    img = torch.rand(2, 16, 12, dtype=torch.float64)
    for pm in ("zeros", "border", "reflection"):
        torch.testing.assert_close(warp_affine(img, A, (20, 14), padding_mode=pm, antialias=True),
                                   warp_affine(img, A, (20, 14), padding_mode=pm), atol=0, rtol=0)


def test_prefilter_covariance_matches_numpy_svd():
    g = torch.Generator().manual_seed(5)
    M = torch.eye(3, dtype=torch.float64).repeat(20, 1, 1)
    M[:, :2, :2] = 2 * torch.randn(20, 2, 2, generator=g, dtype=torch.float64)
    cov = prefilter_covariance(M).numpy()
    for Mi, Ci in zip(M.numpy(), cov):
        U, s, _ = np.linalg.svd(Mi[:2, :2])  # footprint axes U, downscale factors s
        np.testing.assert_allclose(Ci, U @ np.diag(np.maximum(s**2 - 1, 0) / 4) @ U.T, atol=1e-12)
    J3 = torch.diag(torch.tensor([3.0, 0.5, 2.0], dtype=torch.float64))
    A3 = torch.eye(4, dtype=torch.float64)
    A3[:3, :3] = J3
    torch.testing.assert_close(prefilter_covariance(A3[None])[0], torch.diag(torch.tensor([2.0, 0.0, 0.75],
                                                                                            dtype=torch.float64)))


@pytest.mark.parametrize("M", [torch.eye(2) * 4.0, torch.eye(2) * 0.5, torch.diag(torch.tensor([4.0, 0.5])),
                               torch.tensor([[5.0, 1.0], [1.0, 2.0]]), torch.eye(3) * 9.0])
def test_excess_variance_gradient_is_finite_at_repeated_eigenvalues(M):
    M = M.double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda m: _covariance_from_moments(m @ m.transpose(-1, -2))[None], (M,))


def test_perspective_covariance_is_the_mean_numeric_jacobian():
    Hm = torch.tensor([[1.9, 0.2, 3.0], [-0.1, 2.4, 1.0], [2e-3, 1e-3, 1.0]], dtype=torch.float64)  # dst->src
    in_size, out_size = (60, 50), (20, 18)
    cov = perspective_covariance(Hm[None], in_size, out_size, samples=8)[0]
    # Oracle: central finite differences of transform_points at the same points, averaged.
    us, vs = np.linspace(0, out_size[0] - 1, 8), np.linspace(0, out_size[1] - 1, 8)
    pts = torch.tensor([[u, v] for v in vs for u in us], dtype=torch.float64)
    h = 1e-5
    Ju = (transform_points(Hm, pts + torch.tensor([h, 0.0])) - transform_points(Hm, pts - torch.tensor([h, 0.0]))) / (2 * h)
    Jv = (transform_points(Hm, pts + torch.tensor([0.0, h])) - transform_points(Hm, pts - torch.tensor([0.0, h]))) / (2 * h)
    J = torch.stack([Ju, Jv], -1)  # (N, 2, 2)
    src = transform_points(Hm, pts)
    inside = ((src >= -0.5) & (src <= torch.tensor(in_size, dtype=torch.float64) - 0.5)).all(-1)
    M = (J @ J.transpose(-1, -2))[inside].mean(0).numpy()
    lam, U = np.linalg.eigh(M)
    np.testing.assert_allclose(cov.numpy(), U @ np.diag(np.maximum(lam - 1, 0) / 4) @ U.T, atol=1e-8)
    affine = Hm.clone()
    affine[2, :2] = 0
    torch.testing.assert_close(perspective_covariance(affine[None], in_size, out_size), prefilter_covariance(affine[None]))


@pytest.mark.parametrize("padding_mode, border", [("zeros", cv2.BORDER_CONSTANT), ("border", cv2.BORDER_REPLICATE),
                                                  ("reflection", cv2.BORDER_REFLECT)])
def test_diagonal_gaussian_matches_cv2_gaussian_blur(padding_mode, border):
    img = torch.rand(3, 3, 17, 23, dtype=torch.float64)
    cov = torch.tensor([[[2.0, 0.0], [0.0, 0.3]], [[0.0, 0.0], [0.0, 5.0]], [[0.0, 0.0], [0.0, 0.0]]],
                       dtype=torch.float64)
    out = gaussian_prefilter(img, cov, padding_mode)
    torch.testing.assert_close(out[2], img[2], atol=0, rtol=0)  # zero covariance: untouched
    # An active filter has covariance cov + I/12 on both axes and its own support of 3 std per
    # axis, whatever else is in the batch (batched == one image at a time).
    for b in range(2):
        sx, sy = (math.sqrt(float(cov[b, i, i]) + 1 / 12) for i in range(2))
        kx, ky = (2 * math.ceil(3 * s) + 1 for s in (sx, sy))
        torch.testing.assert_close(gaussian_prefilter(img[b:b + 1], cov[b:b + 1], padding_mode), out[b:b + 1],
                                   atol=1e-15, rtol=0)
        for c in range(3):
            x = cv2.sepFilter2D(img[b, c].numpy(), -1, cv2.getGaussianKernel(kx, sx, cv2.CV_64F),
                                cv2.getGaussianKernel(ky, sy, cv2.CV_64F), borderType=border)
            np.testing.assert_allclose(out[b, c].numpy(), x, atol=1e-12)


def test_rotated_gaussian_moments_and_rot90_equivariance():
    cov = torch.tensor([[[3.0, 1.2], [1.2, 1.0]]], dtype=torch.float64)
    x = torch.zeros(1, 1, 41, 41, dtype=torch.float64)
    x[..., 20, 20] = 1
    k = gaussian_prefilter(x, cov)[0, 0]
    v, u = torch.meshgrid(torch.arange(-20.0, 21.0, dtype=torch.float64), torch.arange(-20.0, 21.0, dtype=torch.float64),
                          indexing="ij")
    moments = torch.stack([torch.stack([(k * u * u).sum(), (k * u * v).sum()]),
                           torch.stack([(k * u * v).sum(), (k * v * v).sum()])])
    torch.testing.assert_close(k.sum(), torch.tensor(1.0, dtype=torch.float64))
    torch.testing.assert_close(moments, cov[0] + torch.eye(2, dtype=torch.float64) / 12, atol=0.06, rtol=0.03)
    img = torch.rand(1, 2, 15, 19, dtype=torch.float64)
    # Rotating the image a quarter turn maps (u, v) -> (v, W-1-u): the covariance swaps axes and
    # its off-diagonal changes sign.
    rot_cov = torch.tensor([[[1.0, -1.2], [-1.2, 3.0]]], dtype=torch.float64)
    lhs = gaussian_prefilter(torch.rot90(img, 1, (-2, -1)), rot_cov, "reflection")
    rhs = torch.rot90(gaussian_prefilter(img, cov, "reflection"), 1, (-2, -1))
    torch.testing.assert_close(lhs, rhs, atol=1e-12, rtol=0)


def test_resample_separable_area_and_shift_oracles():
    img = torch.rand(1, 2, 24, 36, dtype=torch.float64)
    for f in (2, 3, 4):
        sc = torch.tensor([[float(f), float(f)]], dtype=torch.float64)
        out = resample_separable(img, sc, sc / 2 - 0.5, (36 // f, 24 // f), "area")
        torch.testing.assert_close(out, F.avg_pool2d(img, f), atol=1e-12, rtol=0)
        torch.testing.assert_close(out, F.interpolate(img, scale_factor=1 / f, mode="area"), atol=1e-12, rtol=0)
    one = torch.ones(1, 2, dtype=torch.float64)
    for kernel in ("bilinear", "bicubic", "area"):
        out = resample_separable(img, one, torch.tensor([[5.0, 3.0]], dtype=torch.float64), (20, 15), kernel)
        torch.testing.assert_close(out, img[..., 3:18, 5:25], atol=1e-12, rtol=0)


def test_antialias_gradcheck_image_and_matrix():
    x = torch.rand(1, 1, 7, 6, dtype=torch.float64, requires_grad=True)
    A = torch.tensor([[0.35, 0.1, 0.2], [-0.05, 0.45, 0.3]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, m: warp_affine(a, m, (2, 3), antialias=True), (x, A))
    H = torch.tensor([[0.35, 0.1, 0.2], [-0.05, 0.45, 0.3], [0.01, 0.02, 1.0]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, m: warp_perspective(a, m, (2, 3), antialias=True), (x, H))
