"""Camera updates: RQ against cv2.RQDecomp3x3, and every op against cv2.projectPoints of the new camera.

The oracle for an op with pixel matrix ``A``: OpenCV projects ``X`` with the old camera, ``A`` moves
those pixels, and OpenCV projecting ``R X`` with the new camera must land on them.
"""

from __future__ import annotations

import random

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from camwarp import Camera, InexactDistortionError, SingularMatrixError
from camwarp import geometry as G
from camwarp.camera import rq, transform_intrinsics
from checks import assert_close

D64 = torch.float64


def cv2_project(X: torch.Tensor, cam: Camera) -> torch.Tensor:
    """OpenCV's projection (skew passed as fisheye ``alpha``; the OpenCV model must have none)."""
    K, pts, zero = cam.K.double().numpy(), X.double().numpy().reshape(-1, 1, 3), np.zeros(3)
    D = np.zeros(4 if cam.model == "fisheye" else 8)
    D[: cam.dist.shape[-1]] = cam.dist.double().numpy()
    if cam.model == "fisheye":
        out, _ = cv2.fisheye.projectPoints(pts, zero, zero, K, D, alpha=K[0, 1] / K[0, 0])
    else:
        assert abs(K[0, 1]) < 1e-9, "cv2.projectPoints has no skew"
        out, _ = cv2.projectPoints(pts, zero, zero, K, D)
    return torch.from_numpy(out.reshape(-1, 2))


def points(n: int = 300) -> torch.Tensor:
    z = torch.rand(n, dtype=D64) * 4 + 1
    return torch.cat([(torch.rand(n, 2, dtype=D64) * 1.2 - 0.6) * z[:, None], z[:, None]], dim=-1)


def assert_consistent(old: Camera, new: Camera, A: torch.Tensor, R: torch.Tensor, oracle_new=cv2_project):
    """The new camera projects R X exactly where A moves OpenCV's old projection of X (<= 1e-6 px)."""
    X = points()
    moved = G.transform_points(A.double(), cv2_project(X, old))
    got = oracle_new(X @ R.double().T, new)
    assert (got - moved).abs().max() < 1e-6, f"max error {(got - moved).abs().max():.3g} px"


def cam64(fx: float, *args, **kwargs) -> Camera:
    """A float64 camera (Python numbers are read in float64, not rounded through float32)."""
    return Camera(torch.tensor(fx, dtype=D64), *args, **kwargs)


SEED = dict(fx=2220.0, fy=2220.0, cx=1404.0, cy=1064.0, width=2880, height=2160, dist=[-0.00344584, 0.120934])


# ----- RQ ----------------------------------------------------------------------------------------

def test_rq_matches_cv2_RQDecomp3x3():
    M = torch.randn(50, 3, 3, dtype=D64)
    K, R = rq(M)
    for i in range(50):
        Kc, Rc = (torch.from_numpy(a) for a in cv2.RQDecomp3x3(M[i].numpy())[1:3])
        flip = torch.diag(torch.tensor([1.0, 1.0, float(torch.sign(Kc[2, 2]))], dtype=D64))  # cv2 keeps det R = 1
        assert_close(K[i], Kc @ flip, scale=1e3)
        assert_close(R[i], flip @ Rc, scale=1e3)


@given(st.lists(st.floats(-10, 10), min_size=9, max_size=9))
def test_rq_properties(values):
    M = torch.tensor(values, dtype=D64).reshape(3, 3)
    if not abs(float(torch.linalg.det(M))) >= 1e-3:  # singular, or det NaN on subnormal input
        return
    K, R = rq(M)
    assert_close(K @ R, M, scale=1e4)
    assert_close(R @ R.T, torch.eye(3, dtype=D64), scale=1e3)
    assert torch.equal(K.tril(-1), torch.zeros(3, 3, dtype=D64)) or K.tril(-1).abs().max() < 1e-12
    assert (K.diagonal() > 0).all() and torch.sign(torch.linalg.det(R)) == torch.sign(torch.linalg.det(M))


def test_rq_exact_on_triangular_and_differentiable():
    M = torch.tensor([[740.0, 0.0, 307.66], [0, 740.0, 174.3], [0, 0, 1]], dtype=D64)
    K, R = rq(M)
    assert torch.equal(K, M) and torch.equal(R, torch.eye(3, dtype=D64))
    M = torch.randn(2, 3, 3, dtype=D64, requires_grad=True)
    assert torch.autograd.gradcheck(rq, (M,))
    with pytest.raises(ValueError, match="rq: M must be square"):
        rq(torch.zeros(3, 4))


# ----- the seed example and chains of ops -------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, D64])
def test_seed_example_to_the_digit(dtype):
    cam = Camera(**SEED).to(dtype=dtype)
    crop = cam.center_crop(1920, 1080)
    assert crop.principal_point().tolist() == [924.0, 524.0] and crop.fx.tolist() == 2220.0
    new = crop.resize(640, 360)
    exact = torch.tensor([924.5 / 3 - 0.5, 524.5 / 3 - 0.5], dtype=D64)
    assert new.fx.tolist() == new.fy.tolist() == 740.0 and new.skew.tolist() == 0.0
    assert_close(new.principal_point(), exact.to(dtype))
    assert_close(new.principal_point("colmap"), torch.tensor([924.5 / 3, 524.5 / 3], dtype=dtype))
    assert torch.equal(new.dist, cam.dist) and new.size == (640, 360)
    if dtype == D64:
        assert (new.principal_point() - exact).abs().max() < 1e-12


def _random_chain(rng: random.Random, size: tuple[int, int]):
    """A random list of (camera op name, args) and the composed pixel matrix and final size, from builders."""
    ops, mats = [], []
    for _ in range(rng.randint(1, 5)):
        W, H = size
        kind = rng.choice(["crop", "center_crop", "resize", "pad", "hflip", "vflip", "rot90"])
        if kind == "crop":
            x0, y0 = rng.uniform(-20, W / 3), rng.uniform(-20, H / 3)
            w, h = rng.randint(W // 3, W), rng.randint(H // 3, H)
            args, A, size = (x0, y0, w, h), G.crop_matrix(x0, y0, dtype=D64), (w, h)
        elif kind == "center_crop":
            w, h = rng.randint(W // 2, W + 10), rng.randint(H // 2, H + 10)
            args, A, size = (w, h), G.crop_matrix((W - w) // 2, (H - h) // 2, dtype=D64), (w, h)
        elif kind == "resize":
            w, h = rng.randint(W // 3, 2 * W), rng.randint(H // 3, 2 * H)
            args, A, size = (w, h), G.resize_matrix((W, H), (w, h), dtype=D64), (w, h)
        elif kind == "pad":
            p = [rng.randint(0, 30) for _ in range(4)]
            args, A, size = tuple(p), G.pad_matrix(p[0], p[1], dtype=D64), (W + p[0] + p[2], H + p[1] + p[3])
        elif kind == "hflip":
            args, A = (), G.hflip_matrix(W, dtype=D64)
        elif kind == "vflip":
            args, A = (), G.vflip_matrix(H, dtype=D64)
        else:
            k = rng.randint(1, 3)
            args, A, size = (k,), G.rot90_matrix(k, (W, H), dtype=D64), (H, W) if k % 2 else (W, H)
        ops.append((kind, args))
        mats.append(A)
    return ops, G.compose(*mats), size


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("model", ["opencv", "fisheye"])
def test_random_chains_project_exactly(seed, model):
    rng = random.Random(seed)
    dist = ([rng.uniform(-0.3, 0.3), rng.uniform(-0.1, 0.1), rng.uniform(-2e-3, 2e-3), rng.uniform(-2e-3, 2e-3),
             rng.uniform(-0.02, 0.02), 0.05, -0.01, 0.002][: rng.choice([4, 5, 8])] if model == "opencv"
            else [rng.uniform(-0.05, 0.05) for _ in range(4)])
    W, H = rng.randint(300, 1000), rng.randint(200, 800)
    cam = Camera(rng.uniform(300, 900), rng.uniform(300, 900), rng.uniform(0, W), rng.uniform(0, H), W, H,
                 dist=dist, model=model).to(dtype=D64)
    ops, A, size = _random_chain(rng, cam.size)
    new = cam
    for kind, args in ops:
        new = getattr(new, kind)(*args)
    direct, R = cam.transform(A, size)
    assert new.size == size == direct.size
    assert_close(new.K, direct.K, scale=1e3)
    assert_close(new.dist, direct.dist)
    assert_close(torch.linalg.det(R).abs(), torch.tensor(1.0, dtype=D64))
    assert_consistent(cam, new, A, R)


def test_flips_are_reflections_and_tangential_terms_follow():
    cam = cam64(600.0, 650.0, 300.3, 200.7, 640, 480, dist=[-0.2, 0.05, 1e-3, -2e-3, 0.01])
    k1, k2, p1, p2, k3 = cam.dist.tolist()
    new, R = cam.transform(G.hflip_matrix(640, dtype=D64))
    assert torch.equal(R, torch.diag(torch.tensor([-1.0, 1, 1], dtype=D64))) and torch.linalg.det(R) == -1
    assert new.dist.tolist() == [k1, k2, p1, -p2, k3] and new.cx.tolist() == 639 - 300.3
    assert (new.K.diagonal() > 0).all()
    new, R = cam.transform(G.vflip_matrix(480, dtype=D64))
    assert new.dist.tolist() == [k1, k2, -p1, p2, k3] and torch.linalg.det(R) == -1
    new, R = cam.transform(G.rot90_matrix(1, (640, 480), dtype=D64), (480, 640))
    assert_close(new.dist, torch.tensor([k1, k2, -p2, p1, k3], dtype=D64))
    assert (new.fx.tolist(), new.fy.tolist()) == (650.0, 600.0) and torch.linalg.det(R) == 1
    assert cam.hflip().hflip().dist.tolist() == cam.dist.tolist()


def test_three_coefficients_grow_a_p2_when_needed():
    cam = cam64(500.0, 500.0, 320.0, 240.0, 640, 480, dist=[0.1, 0.01, 1e-3])
    assert cam.hflip().dist.shape == (3,) and cam.crop(3, 4, 100, 100).dist.shape == (3,)
    turned = cam.rot90(1)
    assert turned.dist.shape == (4,)
    assert_consistent(cam, turned, G.rot90_matrix(1, (640, 480), dtype=D64), G.rot90_matrix(1, (640, 480), dtype=D64)
                      .new_tensor([[0.0, 1, 0], [-1, 0, 0], [0, 0, 1]]))


def _ours(X: torch.Tensor, cam: Camera) -> torch.Tensor:
    return cam.project(X)


@pytest.mark.parametrize("A", [G.rotate_matrix(30.0, (100.0, 50.0), 1.3, dtype=D64),
                               G.affine_matrix(-20.0, (5.0, -7.0), 0.8, (15.0, -10.0), (320.0, 240.0), dtype=D64),
                               G.scale_matrix(torch.tensor([0.5, 1.7], dtype=D64))])
def test_general_affine_maps_are_exact_with_skew(A):
    cam = cam64(600.0, 650.0, 300.3, 200.7, 640, 480, dist=[-0.2, 0.05, 1e-3, -2e-3, 0.01, 0.02])
    new, R = cam.transform(A)
    assert (R[2] - R.new_tensor([0.0, 0.0, 1.0])).abs().max() < 1e-15, "an affine map turns about the optical axis"
    assert_consistent(cam, new, A, R, oracle_new=_ours)  # new K has skew: cv2 cannot project it
    fish = cam64(600.0, 600.0, 300.3, 200.7, 640, 480, dist=[0.02, -0.01], model="fisheye")
    new, R = fish.transform(A)
    assert_consistent(fish, new, A, R)  # cv2.fisheye takes skew as alpha


def test_projective_maps():
    src = torch.tensor([[0.0, 0], [639, 0], [639, 479], [0, 479]], dtype=D64)
    H = G.perspective_matrix(src, src + torch.tensor([[10.0, 5], [-20, 8], [4, -9], [7, 3]], dtype=D64))
    cam = cam64(600.0, 650.0, 300.3, 200.7, 640, 480, dist=[-0.2, 0.05])
    with pytest.raises(InexactDistortionError, match="Camera.transform: A is projective.*undistort first"):
        cam.transform(H)
    with pytest.raises(InexactDistortionError):
        cam.replace(dist=[0.0], model="fisheye").transform(H)
    pinhole = cam.replace(dist=[0.0, 0.0])
    new, R = pinhole.transform(H)
    assert new.K[2, 2] == 1 and torch.linalg.det(R) > 0
    X = points()
    moved = torch.from_numpy(cv2.perspectiveTransform(cv2_project(X, pinhole).numpy()[:, None], H.numpy())[:, 0])
    assert (new.project(X @ R.T) - moved).abs().max() < 1e-6
    affine = G.rotate_matrix(10.0, (3.0, 4.0), 2.0, dtype=D64)
    scaled, _ = cam.transform(affine * 3.0)  # an affine matrix times a scalar is still affine
    assert_close(scaled.K, cam.transform(affine)[0].K, scale=1e3)


def test_batched_transform_broadcasts_and_is_differentiable():
    fx = torch.tensor([500.0, 700.0], dtype=D64)
    cam = Camera(fx, fx, 320.0, 240.0, 640, 480, dist=torch.tensor([0.1, 0.0, 1e-3, 2e-3], dtype=D64))
    A = torch.stack([G.hflip_matrix(640, dtype=D64), G.rot90_matrix(1, (640, 480), dtype=D64),
                     G.rotate_matrix(15.0, (3.0, 4.0), dtype=D64)])[:, None]  # (3, 1, 3, 3)
    new, R = cam.transform(A)
    assert new.batch_shape == (3, 2) and R.shape == (3, 2, 3, 3) and new.dist.shape == (3, 2, 4)
    for i in range(3):
        for j in range(2):
            one, r = cam[j].transform(A[i, 0])
            assert_close(new[i, j].K, one.K) and assert_close(R[i, j], r) and assert_close(new[i, j].dist, one.dist)
    crop = cam.crop(torch.tensor([1.0, 2.0], dtype=D64), 3.0, 100, 100)
    assert crop.cx.tolist() == [319.0, 318.0]

    def run(f, c, d, M):
        K, R, dist = transform_intrinsics(Camera(f, f, c, c, 64, 48, dist=d).K, M, d)
        return K, R, dist

    args = (torch.tensor(500.0, dtype=D64), torch.tensor(30.0, dtype=D64),
            torch.tensor([0.1, 0.0, 1e-3, 2e-3], dtype=D64), G.rotate_matrix(15.0, (3.0, 4.0), 1.2, dtype=D64))
    assert torch.autograd.gradcheck(run, tuple(a.requires_grad_() for a in args))


def test_bad_transforms():
    cam = Camera(500.0, 500.0, 320.0, 240.0, 640, 480)
    with pytest.raises(SingularMatrixError, match="Camera.transform: A is singular"):
        cam.transform(torch.diag(torch.tensor([0.0, 1.0, 1.0])))
    with pytest.raises(ValueError, match=r"Camera.transform: A must have shape \(\.\.\., 2\|3, 3\)"):
        cam.transform(torch.eye(4))
    with pytest.raises(TypeError, match="Camera.transform: A must be a torch.Tensor"):
        cam.transform(np.eye(3))
    with pytest.raises(ValueError, match="Camera.resize: \\(w, h\\) must be positive"):
        cam.resize(0, 10)
    with pytest.raises(TypeError, match="Camera.pad: left must be an int"):
        cam.pad(1.5, 0)
    with pytest.raises(TypeError, match="Camera.rot90: k must be an int"):
        cam.rot90(1.5)
    lifted, _ = cam.transform(torch.tensor([[1.0, 0, -10], [0, 1, -20]]), (100, 100))
    assert lifted.principal_point().tolist() == [310.0, 220.0] and lifted.size == (100, 100)
