"""Undistortion and distortion of samples against OpenCV.

Oracles: ``cv2.getOptimalNewCameraMatrix`` (K to 1e-9), ``cv2.initUndistortRectifyMap`` and
``cv2.fisheye.initUndistortRectifyMap`` (remap grid <= 0.01 px inside the image), ``cv2.remap``
(image), ``cv2.undistortPoints``/``cv2.fisheye.undistortPoints`` run to convergence (keypoints),
and 3D points projected by hand with the new pinhole camera.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from camwarp import Camera, InexactDistortionError
from camwarp.transforms import (CenterCrop, Compose, Distort, MatrixStep, Resize, SampleInfo, Undistort, distort,
                                optimal_new_camera, undistort)
from camwarp.transforms.undistort import RemapStep

D = torch.float64
W, H = 160, 120
OPENCV = Camera(150.0, 148.0, 81.3, 57.6, W, H, dist=[-0.28, 0.09, 0.0012, -0.0009, -0.012]).to(dtype=D)
RATIONAL = Camera(140.0, 141.0, 78.2, 60.4, W, H, dist=[0.3, -0.1, 0.001, 0.002, 0.01, 0.5, -0.05, 0.02]).to(dtype=D)
FISHEYE = Camera(70.0, 70.5, 79.1, 59.8, W, H, dist=[0.05, -0.01, 0.002, -0.0005], model="fisheye").to(dtype=D)
CRIT = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 200, 1e-15)


def _np(cam):
    return cam.K.numpy(), cam.dist.numpy()


def _grid(size):
    v, u = torch.meshgrid(torch.arange(size[1], dtype=D), torch.arange(size[0], dtype=D), indexing="ij")
    return torch.stack([u, v], -1).reshape(-1, 2)


def _smooth(size, channels=2):
    v, u = torch.meshgrid(torch.arange(size[1], dtype=D), torch.arange(size[0], dtype=D), indexing="ij")
    return torch.stack([torch.sin(u / 9) * torch.cos(v / 7), torch.cos((u + 2 * v) / 13)][:channels]) * 0.5 + 0.5


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("new_size", [None, (200, 130)])
@pytest.mark.parametrize("center", [False, True])
def test_optimal_new_camera_matches_opencv(alpha, new_size, center):
    for cam in (OPENCV, RATIONAL):
        K, dist = _np(cam)
        ref, _ = cv2.getOptimalNewCameraMatrix(K, dist, (W, H), alpha, new_size or (0, 0), center)
        new = optimal_new_camera(cam, alpha, new_size, center_principal_point=center)
        np.testing.assert_allclose(new.K.numpy(), ref, rtol=1e-9, atol=1e-9)
        assert new.size == (new_size or (W, H)) and not new.has_distortion


@pytest.mark.parametrize("cam", [OPENCV, RATIONAL, FISHEYE], ids=["opencv", "rational", "fisheye"])
def test_remap_grid_matches_opencv_maps(cam):
    new = optimal_new_camera(cam, 0.5)
    K, dist = _np(cam)
    if cam.model == "fisheye":
        mx, my = cv2.fisheye.initUndistortRectifyMap(K, dist, np.eye(3), new.K.numpy(), (W, H), cv2.CV_32FC1)
    else:
        mx, my = cv2.initUndistortRectifyMap(K, dist, None, new.K.numpy(), (W, H), cv2.CV_32FC1)
    src = RemapStep(cam, new, (W, H)).source_coords(_grid((W, H))).reshape(H, W, 2).numpy()
    ref = np.stack([mx, my], -1)
    inside = (ref[..., 0] >= 0) & (ref[..., 0] <= W - 1) & (ref[..., 1] >= 0) & (ref[..., 1] <= H - 1)
    assert inside.mean() > 0.7
    assert np.abs(src - ref)[inside].max() <= 0.01


def test_image_matches_cv2_remap_and_depth_mask_follow():
    img = _smooth((W, H))
    depth = torch.rand(H, W, dtype=D) * (torch.rand(H, W) > 0.2)
    mask = torch.randint(0, 4, (H, W))
    new = optimal_new_camera(OPENCV, 0.0)
    out = undistort({"image": img, "depth": depth, "mask": mask, "camera": OPENCV})
    K, dist = _np(OPENCV)
    mx, my = cv2.initUndistortRectifyMap(K, dist, None, new.K.numpy(), (W, H), cv2.CV_32FC1)
    ref = np.stack([cv2.remap(c.numpy(), mx, my, cv2.INTER_LINEAR) for c in img])
    inner = (slice(None), slice(2, -2), slice(2, -2))
    np.testing.assert_allclose(out["image"].numpy()[inner], ref[inner], atol=3e-3)  # cv2: 1/32 px weights
    assert set(out["depth"].unique().tolist()) <= set(depth.unique().tolist()) | {0.0}
    assert set(out["mask"].unique().tolist()) <= set(mask.unique().tolist()) and out["mask"].dtype == mask.dtype
    ref_mask = cv2.remap(mask.numpy().astype(np.float32), mx, my, cv2.INTER_NEAREST)
    assert (out["mask"].numpy() == ref_mask).mean() > 0.98  # nearest ties round differently in a few pixels
    torch.testing.assert_close(out["camera"].K, new.K)


@pytest.mark.parametrize("cam", [OPENCV, RATIONAL, FISHEYE], ids=["opencv", "rational", "fisheye"])
def test_keypoints_undistorted_exactly(cam):
    g = torch.Generator().manual_seed(0)
    X = torch.rand(30, 3, generator=g, dtype=D) * torch.tensor([1.0, 0.7, 1.0], dtype=D) - torch.tensor(
        [0.5, 0.35, -1.5], dtype=D)
    kp = cam.project(X)
    out = undistort({"keypoints": kp, "camera": cam}, alpha=0.4)
    K_new = out["camera"].K
    ideal = (X / X[:, 2:]) @ K_new.T
    np.testing.assert_allclose(out["keypoints"].numpy(), ideal[:, :2].numpy(), atol=1e-6)
    K, dist = _np(cam)
    und = cv2.fisheye.undistortPoints if cam.model == "fisheye" else cv2.undistortPoints
    ref = und(kp.numpy().reshape(-1, 1, 2), K, dist, R=np.eye(3), P=K_new.numpy(), criteria=CRIT).reshape(-1, 2)
    np.testing.assert_allclose(out["keypoints"].numpy(), ref, atol=1e-4)


def test_boxes_follow_curved_edges():
    cam = Camera(140.0, 141.0, 78.2, 60.4, W, H, dist=[0.3]).to(dtype=D)  # pincushion: edges bow out
    box = torch.tensor([[10.5, 10.5, 150.5, 110.5]], dtype=D)
    out = undistort({"boxes": box, "camera": cam}, alpha=0.4)
    t = torch.linspace(0, 1, 400, dtype=D)[:, None]
    a, b = box[0, :2], box[0, 2:]
    outline = torch.cat([a + (b - a) * torch.cat([t, 0 * t], 1), a + (b - a) * torch.cat([t, 1 + 0 * t], 1),
                         a + (b - a) * torch.cat([0 * t, t], 1), a + (b - a) * torch.cat([1 + 0 * t, t], 1)])
    dense = undistort({"keypoints": outline, "camera": cam}, alpha=0.4)["keypoints"]
    ref = torch.cat([dense.amin(0).clamp(min=-0.5), torch.minimum(dense.amax(0), torch.tensor([W - .5, H - .5],
                                                                                              dtype=D))])
    assert (out["boxes"][0] - ref).abs().max() < 0.02 and out["box_valid"].all()


def test_alpha_semantics():
    border = torch.cat([_grid((W, H)).reshape(H, W, 2)[[0, -1]].reshape(-1, 2),
                        _grid((W, H)).reshape(H, W, 2)[:, [0, -1]].reshape(-1, 2)])
    for cam in (OPENCV, FISHEYE):
        new0 = optimal_new_camera(cam, 0.0, opencv_iterations=None)
        src = RemapStep(cam, new0, (W, H)).source_coords(_grid((W, H)))
        inside = (src >= -0.5).all(-1) & (src[:, 0] <= W - 0.5) & (src[:, 1] <= H - 0.5)
        assert inside.double().mean() > 0.995  # alpha 0: (almost) every output pixel is valid
        new1 = optimal_new_camera(cam, 1.0, opencv_iterations=None)
        dst, _ = RemapStep(cam, new1, (W, H)).map_points(border)
        # alpha 1: every source pixel centre lands in the output (exactly at the 9x9 samples)
        assert (dst >= -0.05).all() and (dst[:, 0] <= W - 1 + 0.05).all() and (dst[:, 1] <= H - 1 + 0.05).all()


def test_distort_inverts_undistort():
    img = _smooth((W, H))
    kp = torch.tensor([[30.0, 40.0], [100.5, 80.25], [140.0, 20.0]], dtype=D)
    for cam in (OPENCV, FISHEYE):
        und = undistort({"image": img, "keypoints": kp, "camera": cam}, alpha=1.0)
        back = distort(und, cam)
        torch.testing.assert_close(back["keypoints"], kp, atol=1e-8, rtol=0)
        assert back["camera"] is cam and back["visibility"].all()
        inner = (slice(None), slice(20, -20), slice(20, -20))
        assert (back["image"][inner] - img[inner]).abs().max() < 0.02  # two bilinear resamplings
    with pytest.raises(InexactDistortionError):
        distort({"camera": OPENCV}, FISHEYE)


def test_compose_segments_and_pinhole_fast_path():
    g = torch.Generator().manual_seed(1)
    X = torch.rand(20, 3, generator=g, dtype=D) * 0.6 - torch.tensor([0.3, 0.3, -2.0], dtype=D)
    chain = Compose([CenterCrop(150, 110), Undistort(0.2), CenterCrop(120, 90), Resize(60, 45)])
    sample = {"image": _smooth((W, H)), "keypoints": OPENCV.project(X), "camera": OPENCV}
    steps = chain.steps(SampleInfo.of(sample))
    assert [type(s).__name__ for s in steps] == ["MatrixStep", "RemapStep", "MatrixStep"]
    out = chain(sample)
    assert not out["camera"].has_distortion and out["image"].shape == (2, 45, 60)
    ideal = (X / X[:, 2:]) @ out["camera"].K.T
    np.testing.assert_allclose(out["keypoints"].numpy(), ideal[:, :2].numpy(), atol=1e-6)
    ref = Undistort(0.2)(CenterCrop(150, 110)(sample))
    torch.testing.assert_close(ref["camera"].K, steps[1].new_camera.K)
    pinhole = Camera(150.0, 148.0, 79.5, 59.5, W, H).to(dtype=D)
    step = Undistort().get_step(SampleInfo((W, H), camera=pinhole))
    assert isinstance(step, MatrixStep)  # no distortion: an exact matrix that fuses with the chain
    img = _smooth((W, H))
    torch.testing.assert_close(Undistort()({"image": img, "camera": pinhole})["image"], img, atol=1e-9, rtol=0)


def test_batched_cameras_each_follow_opencv():
    cams = Camera(torch.tensor([150.0, 140.0], dtype=D), 148.0, 81.3, 57.6, W, H,
                  dist=torch.tensor([[-0.28, 0.09, 0.0, 0.0], [0.1, -0.02, 0.001, 0.0]], dtype=D))
    img = _smooth((W, H)).expand(2, 2, H, W)
    out = undistort({"image": img, "camera": cams})
    assert out["image"].shape == (2, 2, H, W) and out["camera"].batch_shape == (2,)
    for i in range(2):
        K, dist = _np(cams[i])
        mx, my = cv2.initUndistortRectifyMap(K, dist, None, out["camera"][i].K.numpy(), (W, H), cv2.CV_32FC1)
        ref = cv2.remap(img[i, 0].numpy(), mx, my, cv2.INTER_LINEAR)
        np.testing.assert_allclose(out["image"][i, 0, 2:-2, 2:-2].numpy(), ref[2:-2, 2:-2], atol=3e-3)


def test_errors():
    with pytest.raises(ValueError, match="no 'camera'"):
        undistort({"image": torch.rand(1, 4, 4)})
    with pytest.raises(ValueError, match="alpha"):
        undistort({"camera": OPENCV}, alpha=1.5)
    with pytest.raises(ValueError, match="new_camera"):
        undistort({"camera": OPENCV}, new_camera=FISHEYE)
    with pytest.raises(TypeError, match="target_camera"):
        Distort("cam")
    with pytest.raises(ValueError, match="Undistort: the sample has no 'camera'"):
        Undistort()({"image": torch.rand(1, 4, 4)})
