"""Camera construction, fields, conventions, copies and projection, against OpenCV and gradcheck."""

from __future__ import annotations

import copy
import pickle

import cv2
import numpy as np
import pytest
import torch

from camwarp import Camera
from camwarp.camera import CONVENTIONS
from checks import assert_close, check_op

D64 = torch.float64


def cv2_project(X: torch.Tensor, cam: Camera) -> torch.Tensor:
    """``cv2.projectPoints`` (or ``cv2.fisheye.projectPoints``) of one camera, zero rvec/tvec."""
    K = cam.K.detach().double().numpy()
    pts = X.detach().double().numpy().reshape(-1, 1, 3)
    zero = np.zeros(3)
    if cam.model == "fisheye":
        D = np.zeros(4)
        D[: cam.dist.shape[-1]] = cam.dist.detach().double().numpy()
        Kf = K.copy()
        Kf[0, 1] = 0
        out, _ = cv2.fisheye.projectPoints(pts, zero, zero, Kf, D, alpha=K[0, 1] / K[0, 0])
    else:
        assert K[0, 1] == 0, "cv2.projectPoints has no skew"
        D = np.zeros(8)
        D[: cam.dist.shape[-1]] = cam.dist.detach().double().numpy()
        out, _ = cv2.projectPoints(pts, zero, zero, K, D)
    return torch.from_numpy(out.reshape(*X.shape[:-1], 2))


def random_points(n: int, dtype=D64, spread: float = 0.6) -> torch.Tensor:
    z = torch.rand(n, dtype=dtype) * 4 + 1
    xy = (torch.rand(n, 2, dtype=dtype) * 2 - 1) * spread
    return torch.cat([xy * z[:, None], z[:, None]], dim=-1)


OPENCV_DISTS = [[], [-0.00344584, 0.120934], [-0.2, 0.05, 1e-3], [-0.3, 0.1, 1e-3, -2e-3],
                [0.1, -0.05, 5e-4, 1e-3, 0.01], [0.2, 0.05, 1e-3, 1e-3, 0.01, 0.1, 0.01, 0.002]]
FISHEYE_DISTS = [[], [0.05], [-0.02, 0.01, -0.003, 0.001]]


# ----- construction and fields ------------------------------------------------------------------

def test_fields_broadcast_dtype_device():
    cam = Camera(torch.tensor([500.0, 600.0], dtype=D64), 500.0, 320.0, torch.tensor([[240.0]]), 640, 480,
                 dist=[0.1, 0.01])
    assert cam.batch_shape == (1, 2) and cam.dtype == D64 and cam.device == torch.device("cpu")
    assert cam.dist.shape == (1, 2, 2) and cam.size == (640, 480) and cam.K.shape == (1, 2, 3, 3)
    assert Camera(1.0, 1.0, 0.0, 0.0, 1, 1).dtype == torch.float32
    assert Camera(1.0, 1.0, 0.0, 0.0, 1, 1).dist.shape == (0,)
    assert Camera(1.0, 1.0, 0.0, 0.0, 1, 1, dist=torch.zeros(3, 2)).batch_shape == (3,)


def test_K_and_from_K_round_trip():
    K = torch.tensor([[500.0, 1.5, 319.5], [0, 510, 239.5], [0, 0, 1]], dtype=D64)
    cam = Camera.from_K(K, 640, 480, dist=[0.1])
    assert torch.equal(cam.K, K) and cam.skew == 1.5
    assert torch.equal(Camera.from_K(2 * K, 640, 480).K, K), "K is divided by K[2, 2]"
    colmap = Camera.from_K(K, 640, 480, convention="colmap")
    assert_close(colmap.principal_point(), torch.tensor([319.0, 239.0], dtype=D64))
    assert_close(colmap.K_in("colmap"), K)


@pytest.mark.parametrize("convention", list(CONVENTIONS))
def test_conventions_convert_once(convention):
    cam = Camera(100.0, 100.0, 50.0, 40.0, 100, 80, convention=convention)
    off = CONVENTIONS[convention]
    assert cam.principal_point().tolist() == [50.0 - off, 40.0 - off]
    assert cam.principal_point(convention).tolist() == [50.0, 40.0]
    assert cam.K_in(convention)[:2, 2].tolist() == [50.0, 40.0]
    assert cam.principal_point("colmap").tolist() == [50.5 - off, 40.5 - off]


@pytest.mark.parametrize("kwargs, match", [
    (dict(fx=float("nan")), "fx must be finite"), (dict(cy=float("inf")), "cy must be finite"),
    (dict(fx=0.0), "fx must be positive"), (dict(fy=-1.0), "fy must be positive"),
    (dict(skew=float("nan")), "skew must be finite"), (dict(dist=[0.1, float("nan")]), "dist must be finite"),
    (dict(width=0), r"\(width, height\) must be positive"),
    (dict(dist=[0.0] * 9), "dist has 9 coefficients, but model 'opencv' takes at most 8"),
    (dict(dist=[0.0] * 5, model="fisheye"), "dist has 5 coefficients, but model 'fisheye' takes at most 4"),
    (dict(model="kb"), "model must be one of"), (dict(convention="pixel"), "convention must be one of"),
    (dict(fx=torch.ones(2), cx=torch.ones(3)), "batch dimensions do not broadcast"),
])
def test_bad_values_raise_value_error(kwargs, match):
    args = dict(fx=100.0, fy=100.0, cx=50.0, cy=40.0, width=100, height=80) | kwargs
    with pytest.raises(ValueError, match="Camera: " + match):
        Camera(**args)


@pytest.mark.parametrize("kwargs, match", [
    (dict(width=10.5), "must contain ints"), (dict(fx="100"), "fx must be a number"),
    (dict(fx=None), "fx must be a number"), (dict(dist="k1"), "dist must be a number"),
])
def test_bad_types_raise_type_error(kwargs, match):
    args = dict(fx=100.0, fy=100.0, cx=50.0, cy=40.0, width=100, height=80) | kwargs
    with pytest.raises(TypeError, match=match):
        Camera(**args)


def test_from_K_rejects_bad_K():
    with pytest.raises(ValueError, match=r"Camera.from_K: K must have shape \(\.\.\., 3, 3\)"):
        Camera.from_K(torch.eye(2), 10, 10)
    with pytest.raises(ValueError, match="Camera.from_K: K must be upper triangular"):
        Camera.from_K(torch.tensor([[1.0, 0, 0], [0.5, 1, 0], [0, 0, 1]]), 10, 10)


def test_immutable_replace_to_index_repr():
    cam = Camera(torch.tensor([100.0, 200.0, 300.0]), 100.0, 50.0, 40.0, 100, 80, dist=[0.1, 0.2])
    with pytest.raises(AttributeError, match="immutable"):
        cam.fx = torch.tensor(1.0)
    new = cam.replace(fy=50.0, width=30)
    assert new.fy.tolist() == [50.0] * 3 and new.width == 30 and cam.fy.tolist() == [100.0] * 3
    assert cam.replace(cx=50.5, convention="colmap").cx.tolist() == [50.0] * 3
    assert cam.replace(cx=50.5, convention="colmap").cy.tolist() == [40.0] * 3, "kept cy must not move"
    with pytest.raises(ValueError, match="Camera.replace: field must be one of"):
        cam.replace(focal=1.0)
    with pytest.raises(ValueError, match="at most 4"):
        Camera(1.0, 1.0, 0.0, 0.0, 5, 5, dist=[0.0] * 5).replace(model="fisheye")
    c64 = cam.to(dtype=D64)
    assert c64.dtype == D64 and c64.dist.dtype == D64 and c64.size == cam.size
    sub = cam[1:]
    assert sub.fx.tolist() == [200.0, 300.0] and sub.dist.shape == (2, 2)
    assert cam[..., 0].fx.tolist() == 100.0 and cam[torch.tensor([True, False, True])].batch_shape == (2,)
    with pytest.raises(IndexError):
        cam[0][0]
    for copied in (pickle.loads(pickle.dumps(cam)), copy.deepcopy(cam)):
        assert torch.equal(copied.K, cam.K) and torch.equal(copied.dist, cam.dist) and copied.size == cam.size
    assert "Camera(fx=[100.0, 200.0, 300.0]" in repr(cam) and "model='opencv'" in repr(cam)
    assert cam.has_distortion and not cam.replace(dist=[0.0, 0.0]).has_distortion
    assert not Camera(1.0, 1.0, 0.0, 0.0, 5, 5).has_distortion
    assert Camera(1.0, 1.0, 0.0, 0.0, 5, 5, model="fisheye").has_distortion, "equidistant is not a pinhole"
    assert Camera(torch.tensor(100), 100, 50, 40, 100, 80).fx.dtype == torch.float32, "int tensors are numbers"


# ----- projection ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dist", OPENCV_DISTS)
def test_project_matches_cv2_projectPoints(dist):
    cam = Camera(812.5, 790.0, 330.2, 241.7, 640, 480, dist=dist or None).to(dtype=D64)
    X = random_points(200, spread=0.8)
    assert_close(cam.project(X), cv2_project(X, cam), scale=1e2)


@pytest.mark.parametrize("dist", FISHEYE_DISTS)
def test_project_matches_cv2_fisheye(dist):
    cam = Camera(400.0, 410.0, 640.3, 480.1, 1280, 960, skew=2.0, dist=dist or None, model="fisheye")
    cam = cam.to(dtype=D64)
    X = torch.cat([random_points(200, spread=2.0), torch.tensor([[0.0, 0.0, 2.0], [1e-9, 0.0, 1.0]], dtype=D64)])
    assert_close(cam.project(X), cv2_project(X, cam), scale=1e2)


def test_project_batches_broadcast():
    fx = torch.tensor([500.0, 700.0], dtype=D64)
    cam = Camera(fx, fx, 320.0, 240.0, 640, 480, dist=torch.tensor([[0.1, 0.0], [-0.1, 0.01]], dtype=D64))
    X = random_points(5)
    out = cam.project(X)  # camera batch (2,) x points (5, 3)
    assert out.shape == (2, 5, 2)
    for i in range(2):
        assert_close(out[i], cv2_project(X, cam[i]))
    assert cam.project(X.expand(3, 1, 5, 3)).shape == (3, 2, 5, 2)
    assert cam.project(X[:0]).shape == (2, 0, 2)


@pytest.mark.parametrize("model, dist", [("opencv", [-0.2, 0.05, 1e-3, -1e-3, 0.01]),
                                         ("fisheye", [0.05, -0.01, 0.002])])
def test_unproject_inverts_project(model, dist):
    cam = Camera(500.0, 520.0, 320.0, 240.0, 640, 480, skew=0.7, dist=dist, model=model).to(dtype=D64)
    X = random_points(100)
    back = cam.unproject(cam.project(X), X[:, 2])
    assert_close(back, X, scale=1e2)
    assert_close(cam.undistort_pixels(cam.project(X)), X[:, :2] / X[:, 2:], scale=1e1)


@pytest.mark.parametrize("model, dist", [("opencv", [-0.2, 0.05, 1e-3, -1e-3, 0.01]),
                                         ("fisheye", [0.05, -0.01, 0.002, 0.001])])
def test_project_unproject_gradcheck_in_every_field(model, dist):
    X = random_points(4)
    uv = torch.tensor([[300.0, 200.0], [350.0, 260.0], [100.0, 400.0]], dtype=D64)
    depth = torch.tensor([1.0, 2.0, 3.0], dtype=D64)

    def run(fx, fy, cx, cy, skew, d, pts, pix):
        cam = Camera(fx, fy, cx, cy, 640, 480, skew=skew, dist=d, model=model)
        return cam.project(pts), cam.unproject(pix, depth)

    args = [torch.tensor(v, dtype=D64, requires_grad=True) for v in (500.0, 520.0, 320.0, 240.0, 0.5, dist)]
    assert torch.autograd.gradcheck(run, (*args, X.requires_grad_(), uv.requires_grad_()))


def test_check_op_project_and_unproject():
    params = torch.tensor([[500.0, 520.0, 320.0, 240.0, 0.3], [600.0, 610.0, 300.0, 250.0, 0.0],
                           [450.0, 440.0, 330.0, 230.0, -0.2]], dtype=D64)
    dist = torch.tensor([[-0.2, 0.05, 1e-3, -1e-3], [0.1, 0.0, 0.0, 2e-3], [0.0, 0.0, 0.0, 0.0]], dtype=D64)

    def project(X, p, d):
        return Camera(*p.unbind(-1)[:4], 640, 480, skew=p[..., 4], dist=d).project(X)

    def unproject(uv, depth, p, d):
        return Camera(*p.unbind(-1)[:4], 640, 480, skew=p[..., 4], dist=d).unproject(uv, depth)

    X = torch.stack([random_points(5) for _ in range(3)])
    check_op(project, X, params, dist)
    check_op(unproject, project(X, params, dist), X[..., 2], params, dist)


def test_projection_checks_arguments():
    cam = Camera(100.0, 100.0, 50.0, 40.0, 100, 80)
    with pytest.raises(ValueError, match=r"Camera.project: X must have shape \(\.\.\., N, 3\)"):
        cam.project(torch.zeros(4, 2))
    with pytest.raises(TypeError, match="Camera.project: X must be a torch.Tensor"):
        cam.project([[0.0, 0.0, 1.0]])
    with pytest.raises(TypeError, match="Camera.project: X must be a floating point"):
        cam.project(torch.ones(4, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"Camera.unproject: depth must have shape \(\.\.\., 4\)"):
        cam.unproject(torch.zeros(4, 2), torch.ones(3))
    with pytest.raises(ValueError, match="Camera.undistort_pixels: uv must have shape"):
        cam.undistort_pixels(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="batch dimensions do not broadcast"):
        Camera(torch.ones(2), 1.0, 0.0, 0.0, 5, 5).project(torch.ones(3, 4, 3))
