"""Distortion models against OpenCV (projectPoints, undistortPoints, fisheye), gradcheck, round trips."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from camwarp.camera import distort, undistort
from checks import assert_close, check_op

D64 = torch.float64
LENSES = [[-0.00344584, 0.120934], [-0.3, 0.1, 1e-3, -2e-3], [-0.28, 0.07, 1e-3, 1e-3, -0.01],
          [0.2, 0.05, 1e-3, 1e-3, 0.01, 0.1, 0.01, 0.002], [0.4, -0.1, 0.0, 0.0, 0.05, 0.3, -0.05, 0.01]]
FISHEYE = [[], [0.05], [-0.02, 0.01, -0.003, 0.001], [0.1, -0.05, 0.02, -0.004]]


def _cv_dist(dist, n: int) -> np.ndarray:
    out = np.zeros(n)
    out[: len(dist)] = dist
    return out


def _grid(n: int = 400, radius: float = 0.8) -> torch.Tensor:
    g = torch.linspace(-radius, radius, int(n ** 0.5), dtype=D64)
    return torch.stack(torch.meshgrid(g, g, indexing="xy"), dim=-1).reshape(-1, 2)


@pytest.mark.parametrize("dist", LENSES)
def test_distort_matches_cv2_projectPoints(dist):
    xy = _grid()
    X = torch.cat([xy, torch.ones(len(xy), 1, dtype=D64)], dim=-1).numpy()[:, None]
    want, _ = cv2.projectPoints(X, np.zeros(3), np.zeros(3), np.eye(3), _cv_dist(dist, 8))
    assert_close(distort(xy, torch.tensor(dist, dtype=D64)), torch.from_numpy(want[:, 0]))


@pytest.mark.parametrize("dist", FISHEYE)
def test_fisheye_distort_matches_cv2(dist):
    xy = torch.cat([_grid(radius=3.0), torch.tensor([[0.0, 0.0], [1e-9, -1e-9]], dtype=D64)])
    want = cv2.fisheye.distortPoints(xy.numpy()[:, None], np.eye(3), _cv_dist(dist, 4))
    assert_close(distort(xy, torch.tensor(dist, dtype=D64), "fisheye"), torch.from_numpy(want[:, 0]))


@pytest.mark.parametrize("dist", LENSES)
def test_undistort_matches_cv2_and_converges_further(dist):
    xy = _grid(radius=0.7)
    d = torch.tensor(dist, dtype=D64)
    xd = distort(xy, d)
    ours = undistort(xd, d)
    cv = torch.from_numpy(cv2.undistortPoints(xd.numpy()[:, None], np.eye(3), _cv_dist(dist, 8))[:, 0])
    err_ours, err_cv = (ours - xy).abs().max(), (cv - xy).abs().max()
    assert err_ours < 1e-12, f"Newton did not reach round-off: {err_ours:.3g}"
    assert err_ours <= err_cv, "worse than OpenCV's 5 fixed-point steps"
    assert (ours - cv).abs().max() <= 2 * err_cv + 1e-12, "far from cv2.undistortPoints"


@pytest.mark.parametrize("dist", FISHEYE)
def test_fisheye_undistort_matches_cv2(dist):
    xy = _grid(radius=1.5)
    d = torch.tensor(dist, dtype=D64)
    xd = distort(xy, d, "fisheye")
    ours = undistort(xd, d, "fisheye")
    assert (ours - xy).abs().max() < 1e-12
    cv = cv2.fisheye.undistortPoints(xd.numpy()[:, None], np.eye(3), _cv_dist(dist, 4))[:, 0]
    assert_close(ours, torch.from_numpy(cv), scale=1e4)  # cv2 stops at |step| < 1e-8


def test_undistort_float32_and_empty_dist():
    d = torch.tensor([-0.3, 0.1, 1e-3, -2e-3])
    xy = _grid(radius=0.7).float()
    assert_close(undistort(distort(xy, d), d), xy, scale=10)
    assert torch.equal(undistort(xy, torch.zeros(0)), xy) and torch.equal(distort(xy, torch.zeros(0)), xy)


def test_batched_dist_broadcasts_and_equals_loop():
    d = torch.tensor(LENSES[2], dtype=D64) * torch.tensor([[1.0], [0.5], [0.0]], dtype=D64)  # (3, 5)
    xy = _grid(25)
    out = undistort(distort(xy, d), d)
    assert out.shape == (3, 25, 2)
    for i in range(3):
        assert torch.equal(out[i], undistort(distort(xy, d[i]), d[i]))
    assert distort(xy[:0], d).shape == (3, 0, 2)


@pytest.mark.parametrize("model, dist", [("opencv", LENSES[2]), ("opencv", LENSES[3]), ("fisheye", FISHEYE[2])])
def test_gradcheck_distort_and_undistort(model, dist):
    xy = torch.tensor([[0.3, -0.2], [0.05, 0.4], [-0.5, -0.1]], dtype=D64, requires_grad=True)
    d = torch.tensor(dist, dtype=D64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: distort(a, b, model), (xy, d))
    assert torch.autograd.gradcheck(lambda a, b: undistort(a, b, model), (xy, d))


@pytest.mark.parametrize("model, dist", [("opencv", LENSES[4]), ("fisheye", FISHEYE[3])])
def test_check_op(model, dist):
    xy = (torch.rand(3, 6, 2, dtype=D64) - 0.5) * 1.2
    d = torch.tensor(dist, dtype=D64) * torch.rand(3, 1, dtype=D64)
    check_op(lambda a, b: distort(a, b, model), xy, d)
    check_op(lambda a, b: undistort(a, b, model), xy, d)
    check_op(lambda a, b: undistort(a, b, model), xy.float(), d.float(), gradcheck=False)


def test_undistort_gradient_is_the_implicit_gradient():
    d = torch.tensor(LENSES[1], dtype=D64)
    xd = torch.tensor([[0.4, 0.3]], dtype=D64, requires_grad=True)
    x = undistort(xd, d)
    J = torch.autograd.functional.jacobian(lambda p: distort(p, d), x.detach())[0, :, 0, :]  # (2, 2)
    G = torch.stack([torch.autograd.grad(x[0, i], xd, retain_graph=True)[0][0] for i in range(2)])
    assert_close(G, torch.linalg.inv(J), scale=1e2)


def test_fisheye_is_smooth_on_the_axis():
    xy = torch.zeros(1, 2, dtype=D64, requires_grad=True)
    d = torch.tensor(FISHEYE[3], dtype=D64)
    for f in (distort, undistort):
        out = f(xy, d, "fisheye")
        (g,) = torch.autograd.grad(out[0, 0], xy)
        assert torch.equal(out.detach(), xy.detach()) and torch.allclose(g, torch.tensor([[1.0, 0.0]], dtype=D64))


def test_bad_arguments():
    xy = torch.zeros(4, 2)
    with pytest.raises(ValueError, match=r"distort: xy must have shape \(\.\.\., N, 2\)"):
        distort(torch.zeros(4, 3), torch.zeros(2))
    with pytest.raises(ValueError, match="undistort: model must be one of"):
        undistort(xy, torch.zeros(2), "kannala")
    with pytest.raises(ValueError, match="distort: dist has 5 coefficients, but model 'fisheye' takes at most 4"):
        distort(xy, torch.zeros(5), "fisheye")
    with pytest.raises(ValueError, match="undistort: max_iter must be non-negative"):
        undistort(xy, torch.zeros(2), max_iter=-1)
    with pytest.raises(TypeError, match="distort: xy must be a floating point"):
        distort(torch.zeros(4, 2, dtype=torch.int32), torch.zeros(2))
    with pytest.raises(ValueError, match="distort: batch dimensions do not broadcast"):
        distort(torch.zeros(3, 4, 2), torch.zeros(2, 2))


def _monotone(d: list[float], r_max: float) -> bool:
    """Radial factor r g(r^2) increasing on [0, r_max] (the documented domain), checked densely."""
    r = torch.linspace(0, r_max, 2001, dtype=D64)
    k1, k2, k3 = d[0], d[1], d[4]
    rd = r * (1 + k1 * r**2 + k2 * r**4 + k3 * r**6) / (1 + d[5] * r**2 + d[6] * r**4 + d[7] * r**6)
    return bool((rd.diff() > 0).all())


@given(k1=st.floats(-0.5, 0.5), k2=st.floats(-0.2, 0.2), p1=st.floats(-2e-3, 2e-3), p2=st.floats(-2e-3, 2e-3),
       k3=st.floats(-0.05, 0.05), k4=st.floats(0.0, 0.3), k56=st.floats(-0.02, 0.02),
       x=st.floats(-1.0, 1.0), y=st.floats(-1.0, 1.0))
def test_round_trip_within_documented_domain(k1, k2, p1, p2, k3, k4, k56, x, y):
    d = [k1, k2, p1, p2, k3, k4, k56, -k56]
    r = (x * x + y * y) ** 0.5
    assume(_monotone(d, 1.2 * r + 0.05))
    xy = torch.tensor([[x, y]], dtype=D64)
    dt = torch.tensor(d, dtype=D64)
    assert (undistort(distort(xy, dt), dt) - xy).abs().max() < 1e-10


@given(k=st.lists(st.floats(-0.05, 0.05), min_size=0, max_size=4), x=st.floats(-2.5, 2.5), y=st.floats(-2.5, 2.5))
def test_fisheye_round_trip(k, x, y):
    xy = torch.tensor([[x, y]], dtype=D64)
    d = torch.tensor(k, dtype=D64)
    t = torch.linspace(0, float(torch.atan(xy.norm())) + 0.02, 2001, dtype=D64)
    kk = torch.nn.functional.pad(d, (0, 4 - len(k)))
    assume(bool((t * (1 + kk[0] * t**2 + kk[1] * t**4 + kk[2] * t**6 + kk[3] * t**8)).diff().gt(0).all()))
    assert (undistort(distort(xy, d, "fisheye"), d, "fisheye") - xy).abs().max() < 1e-10 * (1 + x * x + y * y)
