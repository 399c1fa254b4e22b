"""Deterministic ops and Compose: every entry follows one matrix, checked against OpenCV and torch.

Oracles: ``cv2.projectPoints`` of ``R X`` with the new camera (keypoints and camera agree to 1e-6 px
in float64), the geometry builders' matrices written out by hand, torch's flip/rot90/pad/slicing and
``F.interpolate`` for images, the seed camera example, and rendered blobs whose centroids must land
on the moved keypoints (<= 0.05 px).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hypothesis import given
from hypothesis import strategies as st

from camwarp import Camera, InexactDistortionError
from camwarp import geometry as G
from camwarp.transforms import (Affine, CenterCrop, Compose, Crop, HFlip, KernelOptions, Pad, Perspective, Resize,
                                Rot90, SampleInfo, Undistort, VFlip, Warp, from_op_list)

D = torch.float64
CAM = Camera(70.0, 66.0, 40.3, 29.1, 80, 60, dist=[-0.12, 0.03, 0.002, -0.001, 0.004]).to(dtype=D)


def _points(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 3, generator=g, dtype=D) * torch.tensor([1.2, 0.9, 1.0], dtype=D) - torch.tensor(
        [0.6, 0.45, -1.5], dtype=D)
    return X  # z in [1.5, 2.5], inside the view


def _cv_project(cam: Camera, X: torch.Tensor) -> np.ndarray:
    """cv2.projectPoints to distorted normalized coordinates, then K (with skew, which cv2 ignores)."""
    dist = cam.dist.numpy() if cam.dist.numel() else np.zeros(0)
    xy, _ = cv2.projectPoints(X.numpy().reshape(-1, 1, 3), np.zeros(3), np.zeros(3), np.eye(3), dist)
    xy = np.concatenate([xy.reshape(-1, 2), np.ones((len(X), 1))], axis=1)
    return (xy @ cam.K.numpy().T)[:, :2]


OPS = [Crop(5.25, -3.5, 50, 40), CenterCrop(61, 47), Resize(33, 41), Resize(shorter=25), Resize(longer=100),
       Pad(3, 1, 4, 2), HFlip(), VFlip(), Rot90(1), Rot90(2), Rot90(-1),
       Affine(angle=21.0, translate=(2.0, -1.5), scale=0.8, shear=(7.0, -3.0)), Affine(angle=-5.0, size=(50, 70)),
       Compose([CenterCrop(60, 40), Resize(45, 30), HFlip(), Affine(angle=33.0), Rot90(3)])]


@pytest.mark.parametrize("op", OPS, ids=repr)
def test_keypoints_equal_the_new_camera_projection(op):
    X = _points()
    kp = torch.from_numpy(_cv_project(CAM, X))
    sample = {"keypoints": kp, "camera": CAM}
    out = op(sample)
    assert sample["keypoints"] is kp and sample["camera"] is CAM  # input untouched
    step = op.get_step(SampleInfo.of(sample))
    torch.testing.assert_close(out["keypoints"], G.transform_points(step.matrix, kp), atol=1e-9, rtol=0)
    assert out["camera"].size == step.size
    ref = _cv_project(out["camera"], X @ out["R"].T)
    np.testing.assert_allclose(out["keypoints"].numpy(), ref, atol=1e-6, rtol=0)


_OP = st.one_of(
    st.builds(Crop, st.floats(-10, 20), st.floats(-10, 20), st.integers(10, 90), st.integers(10, 90)),
    st.builds(CenterCrop, st.integers(10, 90), st.integers(10, 90)),
    st.builds(Resize, st.integers(5, 120), st.integers(5, 120)),
    st.builds(Pad, st.integers(0, 9), st.integers(0, 9), st.integers(0, 9), st.integers(0, 9)),
    st.builds(HFlip), st.builds(VFlip), st.builds(Rot90, st.integers(-3, 3)),
    st.builds(Affine, st.floats(-180, 180), st.tuples(st.floats(-9, 9), st.floats(-9, 9)), st.floats(0.5, 2),
              st.tuples(st.floats(-20, 20), st.floats(-20, 20))))


@given(st.lists(_OP, min_size=1, max_size=6))
def test_random_chains_keep_keypoints_on_the_camera(ops):
    X = _points(12, seed=1)
    kp = torch.from_numpy(_cv_project(CAM, X))
    out = Compose(ops)({"keypoints": kp, "camera": CAM})
    np.testing.assert_allclose(out["keypoints"].numpy(), _cv_project(out["camera"], X @ out["R"].T), atol=1e-6)


def test_matrices_are_the_documented_ones():
    info = SampleInfo((80, 60))
    assert info.device == torch.device("cpu") and info.dtype == torch.float64  # device=None: the CPU
    m = lambda op: op.get_step(info).matrix  # noqa: E731
    torch.testing.assert_close(m(Crop(5.25, -3.5, 50, 40)), torch.tensor(
        [[1, 0, -5.25], [0, 1, 3.5], [0, 0, 1]], dtype=D))
    torch.testing.assert_close(m(CenterCrop(61, 47)), torch.tensor([[1.0, 0, -9], [0, 1, -6], [0, 0, 1]], dtype=D))
    sx, sy = 33 / 80, 41 / 60
    torch.testing.assert_close(m(Resize(33, 41)), torch.tensor(
        [[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]], dtype=D))
    torch.testing.assert_close(m(HFlip()), torch.tensor([[-1.0, 0, 79], [0, 1, 0], [0, 0, 1]], dtype=D))
    torch.testing.assert_close(m(Rot90(1)), torch.tensor([[0.0, 1, 0], [-1, 0, 79], [0, 0, 1]], dtype=D))
    cv = cv2.getRotationMatrix2D((39.5, 29.5), 21.0, 0.8)
    torch.testing.assert_close(m(Affine(angle=21.0, scale=0.8))[:2], torch.from_numpy(cv))
    assert Resize(shorter=25).get_step(info).size == (33, 25)
    assert Resize(longer=100).get_step(info).size == (100, 75)
    assert Resize(shorter=10).get_step(SampleInfo((30, 31))).size == (10, 10)


def test_seed_camera_example_through_from_op_list():
    cam = Camera(2220.0, 2220.0, 1404.0, 1064.0, 2880, 2160, dist=[-0.00344584, 0.120934]).to(dtype=D)
    chain = from_op_list([("center_crop", (1920, 1080)), ("resize", (640, 360))])
    out = chain({"camera": cam})
    K = out["camera"].K
    torch.testing.assert_close(K, torch.tensor([[740.0, 0, (924 + 0.5) / 3 - 0.5], [0, 740, (524 + 0.5) / 3 - 0.5],
                                                [0, 0, 1]], dtype=D))
    torch.testing.assert_close(out["camera"].dist, cam.dist)
    assert out["camera"].size == (640, 360)
    torch.testing.assert_close(K, cam.center_crop(1920, 1080).resize(640, 360).K)


def test_images_match_torch_for_exact_maps():
    img = torch.rand(2, 3, 60, 80, dtype=D)
    cases = [(HFlip(), img.flip(-1)), (VFlip(), img.flip(-2)), (Rot90(1), torch.rot90(img, 1, (-2, -1))),
             (Crop(7, 3, 50, 40), img[..., 3:43, 7:57]), (Pad(3, 1, 4, 2), F.pad(img, (3, 4, 1, 2))),
             (CenterCrop(61, 47), img[..., 6:53, 9:70])]
    for op, ref in cases:
        torch.testing.assert_close(op({"image": img})["image"], ref, atol=1e-12, rtol=0, msg=repr(op))
    up = Resize(131, 97, options=KernelOptions(padding_mode="border"))({"image": img})["image"]
    ref = F.interpolate(img, size=(97, 131), mode="bilinear", align_corners=False)
    torch.testing.assert_close(up, ref, atol=1e-12, rtol=0)


def test_compose_resamples_once():
    img = torch.rand(1, 3, 30, 40, dtype=D)
    chain = Compose([Resize(100, 70), Rot90(1), Affine(angle=30.0), Affine(angle=-30.0), Rot90(-1), Resize(40, 30)])
    torch.testing.assert_close(chain({"image": img})["image"], img, atol=1e-9, rtol=0)  # product = identity
    one_by_one = img
    for op in chain.transforms:
        one_by_one = op({"image": one_by_one})["image"]
    assert (one_by_one - img).abs().max() > 1e-2  # six resamplings would blur


def _blobs(points: torch.Tensor, size, sigma: float) -> torch.Tensor:
    W, H = size
    v, u = torch.meshgrid(torch.arange(H, dtype=D), torch.arange(W, dtype=D), indexing="ij")
    d2 = (u[None] - points[:, 0, None, None]) ** 2 + (v[None] - points[:, 1, None, None]) ** 2
    return torch.exp(-d2 / (2 * sigma**2))  # (N, H, W): one channel per blob


def _centroid(img: torch.Tensor, p: torch.Tensor, r: int) -> torch.Tensor:
    H, W = img.shape
    v, u = torch.meshgrid(torch.arange(H, dtype=D), torch.arange(W, dtype=D), indexing="ij")
    w = img * (((u - p[0]).abs() <= r) & ((v - p[1]).abs() <= r))
    return torch.stack([(w * u).sum() / w.sum(), (w * v).sum() / w.sum()])


def test_rendered_blobs_land_on_the_moved_keypoints():
    pts = torch.tensor([[30.0, 25.0], [52.3, 34.7], [41.6, 20.2], [25.5, 38.0]], dtype=D)
    img = _blobs(pts, (80, 60), sigma=2.5)
    chain = Compose([CenterCrop(64, 50), Resize(48, 40), Affine(angle=12.0, translate=(1.3, -0.7)), HFlip()])
    out = chain({"image": img, "keypoints": pts})
    for i, p in enumerate(out["keypoints"]):
        c = _centroid(out["image"][i], p, r=7)
        assert (c - p).abs().max() <= 0.05, (i, c, p)


def test_uint8_image_and_dtypes_kept():
    img = torch.randint(0, 256, (3, 60, 80), dtype=torch.uint8)
    out = Compose([CenterCrop(40, 40), Resize(20, 20), HFlip()])({"image": img, "keypoints": torch.zeros(2, 2)})
    assert out["image"].dtype == torch.uint8 and out["image"].shape == (3, 20, 20)
    assert out["keypoints"].dtype == torch.float32


def test_perspective_and_warp():
    pinhole = Camera(70.0, 66.0, 40.3, 29.1, 80, 60).to(dtype=D)
    src = [[0.0, 0.0], [79.0, 0.0], [79.0, 59.0], [0.0, 59.0]]
    dst = [[4.0, 2.0], [70.0, 5.0], [75.0, 57.0], [1.0, 50.0]]
    X = _points()
    kp = torch.from_numpy(_cv_project(pinhole, X))
    out = Perspective(src, dst)({"keypoints": kp, "camera": pinhole})
    Hcv = cv2.getPerspectiveTransform(np.float32(src), np.float32(dst))
    ref = cv2.perspectiveTransform(kp.numpy().reshape(-1, 1, 2), Hcv).reshape(-1, 2)
    np.testing.assert_allclose(out["keypoints"].numpy(), ref, atol=1e-3)  # cv2 solves in float32
    np.testing.assert_allclose(out["keypoints"].numpy(), _cv_project(out["camera"], X @ out["R"].T), atol=1e-6)
    with pytest.raises(InexactDistortionError):
        Perspective(src, dst)({"camera": CAM})
    A = torch.tensor([[1.0, 0.2, 3.0], [0.1, 0.9, -2.0]], dtype=D)
    step = Warp(A, size=(40, 30)).get_step(SampleInfo((80, 60)))
    assert step.affine and step.size == (40, 30) and step.matrix.shape == (3, 3)


def test_from_op_list_and_errors():
    chain = from_op_list([("crop", (1, 2, 30, 20)), ("pad", (1, 1, 1, 1)), ("hflip", ()), ("vflip", ()),
                          ("rot90", (1,)), ("undistort", (0.5,)), ("undistort", ())])
    assert [type(t).__name__ for t in chain.transforms] == ["Crop", "Pad", "HFlip", "VFlip", "Rot90", "Undistort",
                                                            "Undistort"]
    assert isinstance(chain.transforms[5], Undistort) and chain.transforms[5].alpha == 0.5
    with pytest.raises(ValueError, match=r"ops\[1\].*'zoom'"):
        from_op_list([("hflip", ()), ("zoom", (2,))])
    with pytest.raises(TypeError, match=r"ops\[0\] \(resize"):
        from_op_list([("resize", (640.5, 360))])
    with pytest.raises(TypeError, match=r"ops\[0\]"):
        from_op_list(["hflip"])
    with pytest.raises(ValueError, match="Resize"):
        Resize(10, 10, shorter=5)
    with pytest.raises(ValueError, match="Resize"):
        Resize(10)
    with pytest.raises(TypeError, match="Pad: left"):
        Pad(1.5, 0)
    with pytest.raises(ValueError, match="Affine: scale"):
        Affine(scale=-1.0)
    with pytest.raises(ValueError, match="Warp: matrix"):
        Warp(torch.eye(4))
    with pytest.raises(TypeError, match="Compose"):
        Compose([HFlip(), "vflip"])
    with pytest.raises(ValueError, match="Crop"):
        Crop(0, 0, 0, 5)
