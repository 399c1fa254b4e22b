"""Perspective crops: a virtual camera turned to look at a point, checked against OpenCV and 3D geometry.

Oracles: rotation properties (orthonormal, det 1, the ray onto the axis), ``cv2.projectPoints`` of
``R X`` with the expected ``K'`` (keypoints and camera), ``cv2.warpPerspective`` with ``K' R K^-1``
(image), and a plane's depth map re-lifted to 3D (z-depth along the new axis).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from camwarp import Camera, InexactDistortionError
from camwarp.transforms import (Compose, KernelOptions, PerspectiveCrop, Resize, look_at_rotation, perspective_crop,
                                perspective_crop_matrix)

D = torch.float64
W, H = 160, 120
CAM = Camera(90.0, 92.0, 80.3, 58.9, W, H).to(dtype=D)


def _cv_project(K: np.ndarray, X: np.ndarray) -> np.ndarray:
    uv, _ = cv2.projectPoints(X.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), K, np.zeros(4))
    return uv.reshape(-1, 2)


@given(st.floats(-3, 3), st.floats(-3, 3), st.floats(-0.8, 3))
def test_look_at_rotation_is_the_rotation_onto_the_axis(x, y, z):
    d = torch.tensor([x, y, z], dtype=D)
    if d.norm() < 1e-3 or z / d.norm() < -0.8:
        return
    R = look_at_rotation(d)
    torch.testing.assert_close(R @ R.T, torch.eye(3, dtype=D), atol=1e-12, rtol=0)
    assert abs(torch.linalg.det(R).item() - 1) < 1e-12
    torch.testing.assert_close(R @ (d / d.norm()), torch.tensor([0.0, 0, 1], dtype=D), atol=1e-12, rtol=0)
    a = torch.linalg.cross(d, torch.tensor([0.0, 0, 1], dtype=D))
    if a.norm() > 1e-6:  # the axis of the turn is fixed: no roll
        torch.testing.assert_close(R @ a, a, atol=1e-12, rtol=0)


def test_identity_for_the_principal_ray():
    torch.testing.assert_close(look_at_rotation(torch.tensor([0.0, 0, 2.5], dtype=D)), torch.eye(3, dtype=D))


@pytest.mark.parametrize("center", [(140.0, 20.0), (10.0, 100.0), (0.4, -0.3, 1.0)])
def test_keypoints_and_camera_match_opencv(center):
    g = torch.Generator().manual_seed(0)
    X = torch.rand(30, 3, generator=g, dtype=D) * 0.4 - 0.2 + torch.tensor([0.6, -0.4, 1.2], dtype=D)
    kp = CAM.project(X)
    size = (48, 40)
    out = perspective_crop({"keypoints": kp, "camera": CAM}, None, center=center, size=size, fov=50.0)
    f = 24 / math.tan(math.radians(25))
    K_ref = np.array([[f, 0, 23.5], [0, f, 19.5], [0, 0, 1]])
    np.testing.assert_allclose(out["camera"].K.numpy(), K_ref, atol=1e-9)
    ray = torch.tensor(center, dtype=D) if len(center) == 3 else torch.linalg.solve(
        CAM.K, torch.tensor([*center, 1.0], dtype=D))
    torch.testing.assert_close(out["R"], look_at_rotation(ray), atol=1e-9, rtol=0)
    ref = _cv_project(K_ref, (X @ out["R"].T).numpy())
    np.testing.assert_allclose(out["keypoints"].numpy(), ref, atol=1e-6)
    # the target itself lands on the crop's centre
    target = torch.tensor([center], dtype=D) if len(center) == 2 else CAM.project(torch.tensor([center], dtype=D))
    c = perspective_crop({"keypoints": target, "camera": CAM}, None, center=center, size=size, fov=50.0)["keypoints"]
    torch.testing.assert_close(c, torch.tensor([[23.5, 19.5]], dtype=D), atol=1e-9, rtol=0)


def test_image_matches_cv2_warp_perspective():
    v, u = torch.meshgrid(torch.arange(H, dtype=D), torch.arange(W, dtype=D), indexing="ij")
    img = torch.stack([torch.sin(u / 6) * torch.cos(v / 5), torch.cos((u - v) / 8)]) * 0.5 + 0.5
    opts = KernelOptions(antialias=False)
    out, new_cam, R = perspective_crop(img, CAM, (130.0, 30.0), (64, 48), focal=95.0, options=opts)
    A, Kp, R2 = perspective_crop_matrix(CAM, (130.0, 30.0), (64, 48), focal=95.0)
    torch.testing.assert_close(R, R2)
    ref = np.stack([cv2.warpPerspective(c.numpy(), A.numpy(), (64, 48), flags=cv2.INTER_LINEAR) for c in img])
    src = cv2.perspectiveTransform(np.stack(np.meshgrid(np.arange(64.0), np.arange(48.0)), -1).reshape(-1, 1, 2),
                                   np.linalg.inv(A.numpy())).reshape(48, 64, 2)
    inner = (src[..., 0] > 0.5) & (src[..., 0] < W - 1.5) & (src[..., 1] > 0.5) & (src[..., 1] < H - 1.5)
    assert inner.mean() > 0.5  # away from the zero border, where cv2's 1/32 px weights meet a jump
    np.testing.assert_allclose(out.numpy()[:, inner], ref[:, inner], atol=3e-3)
    torch.testing.assert_close(new_cam.K, Kp, atol=1e-9, rtol=0)
    assert out.shape == (2, 48, 64)


def test_depth_is_z_along_the_new_axis():
    depth = torch.full((H, W), 2.0, dtype=D)  # the plane Z = 2
    out = perspective_crop({"depth": depth, "camera": CAM}, None, center=(150.0, 10.0), size=(40, 30), focal=80.0)
    z = out["depth"]
    valid = z > 0
    assert valid.float().mean() > 0.3 and (z[valid] - 2).abs().max() > 0.1  # z changed with the turn
    v, u = torch.meshgrid(torch.arange(30, dtype=D), torch.arange(40, dtype=D), indexing="ij")
    p = torch.stack([u, v, torch.ones_like(u)], -1)[valid]  # (N, 3)
    Xn = (p @ torch.linalg.inv(out["camera"].K).T) * z[valid, None]  # new camera frame
    X = Xn @ out["R"]  # back to the old frame: R^T X'
    torch.testing.assert_close(X[:, 2], torch.full_like(X[:, 2], 2.0), atol=1e-9, rtol=0)


def test_box_center_fits_the_box():
    box = torch.tensor([100.5, 10.5, 150.5, 60.5], dtype=D)
    corners = torch.tensor([[100.5, 10.5], [150.5, 10.5], [150.5, 60.5], [100.5, 60.5]], dtype=D)
    out = perspective_crop({"keypoints": corners, "camera": CAM}, None, center=box, size=(64, 64))
    k = out["keypoints"]
    assert (k >= -0.5 - 1e-9).all() and (k <= 63.5 + 1e-9).all()
    assert ((k - (-0.5)).abs().min() < 1e-9) or ((k - 63.5).abs().min() < 1e-9)  # tight


def test_batched_centers_and_compose():
    centers = torch.tensor([[20.0, 20.0], [80.0, 60.0], [150.0, 100.0]], dtype=D)
    img = torch.rand(3, H, W, dtype=D)
    out, cam, R = perspective_crop(img, CAM, centers, (32, 24), fov=40.0)
    assert out.shape == (3, 3, 24, 32) and R.shape == (3, 3, 3) and cam.batch_shape == (3,)
    torch.testing.assert_close(R[1], look_at_rotation(torch.linalg.solve(CAM.K, torch.tensor([80.0, 60, 1], dtype=D))))
    X = torch.tensor([[0.3, -0.2, 1.5], [-0.1, 0.1, 2.0]], dtype=D)
    chain = Compose([PerspectiveCrop((120.0, 40.0), (60, 40), fov=45.0), Resize(30, 20)])
    res = chain({"keypoints": CAM.project(X), "camera": CAM, "R": torch.eye(3, dtype=D)})
    ref = _cv_project(res["camera"].K.numpy(), (X @ res["R"].T).numpy())
    np.testing.assert_allclose(res["keypoints"].numpy(), ref, atol=1e-6)


def test_errors():
    distorted = Camera(90.0, 92.0, 80.3, 58.9, W, H, dist=[0.1])
    with pytest.raises(InexactDistortionError, match="undistort first"):
        perspective_crop(torch.rand(3, H, W), distorted, (10.0, 10.0), (8, 8), fov=30.0)
    with pytest.raises(ValueError, match="fov"):
        perspective_crop(torch.rand(3, H, W), CAM, (10.0, 10.0), (8, 8))
    with pytest.raises(ValueError, match="camera"):
        perspective_crop(torch.rand(3, H, W), None, (10.0, 10.0), (8, 8), fov=30.0)
    with pytest.raises(ValueError, match="center"):
        perspective_crop(torch.rand(3, H, W), CAM, (10.0,), (8, 8), fov=30.0)
    with pytest.raises(ValueError, match="fov"):
        perspective_crop(torch.rand(3, H, W), CAM, (10.0, 10.0), (8, 8), fov=200.0)
