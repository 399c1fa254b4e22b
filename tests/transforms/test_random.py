"""Random ops: one draw per batch item (a (B, 3, 3) matrix), seeded, and every entry consistent.

Oracles: ``cv2.projectPoints`` of ``R X`` with each item's new camera; torch slicing/flip for whole
pixel draws; the deterministic ``Warp`` op applied item by item (batched == loop); the parameter
ranges recovered from the drawn matrices.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from camwarp import Camera, InexactDistortionError
from camwarp.transforms import (Compose, KernelOptions, RandomAffine, RandomCrop, RandomHFlip, RandomPerspective,
                                RandomResizedCrop, RandomRotation, RandomVFlip, Resize, SampleInfo, Warp)

D = torch.float64
B, W, H = 6, 48, 36


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _camera(dist=(-0.1, 0.02, 0.001, 0.002)):
    return Camera(40.0, 42.0, 23.2, 17.9, W, H, dist=list(dist)).to(dtype=D)


def _X(n=20):
    g = gen(5)
    return torch.rand(n, 3, generator=g, dtype=D) * torch.tensor([1.0, 0.8, 1.0], dtype=D) - torch.tensor(
        [0.5, 0.4, -1.5], dtype=D)


def _cv_project(cam: Camera, X: torch.Tensor) -> np.ndarray:
    dist = np.pad(cam.dist.numpy(), (0, max(0, 4 - cam.dist.shape[-1])))
    xy, _ = cv2.projectPoints(X.numpy().reshape(-1, 1, 3), np.zeros(3), np.zeros(3), np.eye(3), dist)
    xy = np.concatenate([xy.reshape(-1, 2), np.ones((len(X), 1))], axis=1)
    return (xy @ cam.K.numpy().T)[:, :2]


def _batch(cam: Camera, X: torch.Tensor, dtype=D):
    kp = torch.from_numpy(_cv_project(cam, X)).expand(B, -1, 2)
    return {"image": torch.rand(B, 3, H, W, generator=gen(1), dtype=dtype), "keypoints": kp, "camera": cam}


RANDOM = {
    "rrc": lambda g: RandomResizedCrop(24, 20, generator=g),
    "crop": lambda g: RandomCrop(30, 25, generator=g),
    "affine": lambda g: RandomAffine(25, (0.1, 0.2), (0.7, 1.3), (-8, 8, -4, 4), generator=g),
    "rotation": lambda g: RandomRotation((-90, 45), generator=g),
    "hflip": lambda g: RandomHFlip(generator=g),
    "vflip": lambda g: RandomVFlip(p=0.7, generator=g),
    "chain": lambda g: Compose([RandomResizedCrop(40, 30, generator=g), RandomHFlip(generator=g),
                                RandomAffine(15, scale=(0.9, 1.1), generator=g), Resize(20, 15)]),
}


@pytest.mark.parametrize("name", list(RANDOM))
def test_each_item_consistent_with_its_camera(name):
    cam, X = _camera(), _X()
    sample = _batch(cam, X)
    out = RANDOM[name](gen(3))(sample)
    assert out["R"].shape == (B, 3, 3) and out["camera"].batch_shape == (B,)
    assert out["image"].shape[:2] == (B, 3)
    for i in range(B):
        ref = _cv_project(out["camera"][i], X @ out["R"][i].T)
        np.testing.assert_allclose(out["keypoints"][i].numpy(), ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", list(RANDOM))
def test_seeded_per_item_and_batched_equals_loop(name):
    sample = _batch(_camera(), _X())
    info = SampleInfo.of(sample)
    op = RANDOM[name](gen(7))
    A = (op.get_step(info) if name != "chain" else op.steps(info)[0]).matrix
    assert A.shape == (B, 3, 3)
    A2 = (RANDOM[name](gen(7)).get_step(info) if name != "chain" else RANDOM[name](gen(7)).steps(info)[0]).matrix
    assert torch.equal(A, A2)  # same seed, same draw
    if name not in ("hflip", "vflip"):
        assert len({tuple(a.flatten().tolist()) for a in A}) == B  # one draw per item
    op = RANDOM[name](gen(7))
    out = op(sample)
    size = (out["image"].shape[-1], out["image"].shape[-2])
    for i in range(B):
        item = {"image": sample["image"][i], "keypoints": sample["keypoints"][i], "camera": sample["camera"]}
        ref = Warp(A[i], size)(item)
        torch.testing.assert_close(out["image"][i], ref["image"], atol=1e-10, rtol=0)
        torch.testing.assert_close(out["keypoints"][i], ref["keypoints"], atol=1e-10, rtol=0)
        torch.testing.assert_close(out["camera"][i].K, ref["camera"].K, atol=1e-10, rtol=0)
    same = RANDOM[name](gen(7))
    for t in getattr(same, "transforms", [same]):
        t.same_on_batch = True
    assert (same.get_step(info) if name != "chain" else same.steps(info)[0]).matrix.shape == (3, 3)


def test_random_resized_crop_boxes_inside_and_in_range():
    op = RandomResizedCrop(32, 32, scale=(0.2, 0.6), ratio=(0.5, 2.0), generator=gen(0))
    A = op.get_step(SampleInfo((W, H), torch.Size([500]))).matrix
    bw, bh = 32 / A[:, 0, 0], 32 / A[:, 1, 1]
    left, top = (-0.5 - A[:, 0, 2]) / A[:, 0, 0], (-0.5 - A[:, 1, 2]) / A[:, 1, 1]
    assert (left >= -0.5 - 1e-9).all() and (top >= -0.5 - 1e-9).all()
    assert (left + bw <= W - 0.5 + 1e-9).all() and (top + bh <= H - 0.5 + 1e-9).all()
    frac, ratio = bw * bh / (W * H), bw / bh
    assert (frac >= 0.2 - 1e-9).all() and (frac <= 0.6 + 1e-9).all()
    assert (ratio >= 0.5 - 1e-9).all() and (ratio <= 2.0 + 1e-9).all()
    assert torch.equal(A[:, 0, 1], torch.zeros(500, dtype=D)) and torch.equal(A[:, 2], torch.tensor([0.0, 0, 1]).
                                                                              to(D).expand(500, 3))
    # nothing fits (scale > 1 of a thin ratio): the centred fallback box, the whole width
    A = RandomResizedCrop(8, 8, scale=(3.0, 4.0), ratio=(0.1, 0.2), generator=gen(0)).get_step(
        SampleInfo((W, H))).matrix
    torch.testing.assert_close(8 / A[1, 1], torch.tensor(float(H), dtype=D))


def test_random_crop_is_whole_pixel_slicing():
    img = torch.rand(B, 2, H, W, generator=gen(2))
    out = RandomCrop(30, 25, generator=gen(4))({"image": img})
    A = RandomCrop(30, 25, generator=gen(4)).get_step(SampleInfo.of({"image": img})).matrix
    x0, y0 = (-A[:, 0, 2]).tolist(), (-A[:, 1, 2]).tolist()
    assert all(v == int(v) and 0 <= v <= W - 30 for v in x0) and all(v == int(v) and 0 <= v <= H - 25 for v in y0)
    for i in range(B):
        torch.testing.assert_close(out["image"][i], img[i, :, int(y0[i]):int(y0[i]) + 25, int(x0[i]):int(x0[i]) + 30])


def test_random_flips_mix_per_item_and_follow_p():
    img = torch.rand(64, 1, 5, 7, generator=gen(0), dtype=D)
    out = RandomHFlip(generator=gen(1))({"image": img})["image"]
    flipped = [bool(torch.allclose(o, x.flip(-1), atol=1e-12)) for o, x in zip(out, img)]
    assert all(f or torch.allclose(o, x, atol=1e-12) for f, o, x in zip(flipped, out, img))
    assert 15 < sum(flipped) < 49
    torch.testing.assert_close(RandomHFlip(p=0.0)({"image": img})["image"], img, atol=1e-12, rtol=0)
    torch.testing.assert_close(RandomVFlip(p=1.0)({"image": img})["image"], img.flip(-2), atol=1e-12, rtol=0)
    flags = RandomHFlip(p=0.3, generator=gen(2)).get_step(SampleInfo((7, 5), torch.Size([4000]))).matrix[:, 0, 0] < 0
    assert abs(flags.double().mean().item() - 0.3) < 0.03


def test_random_affine_ranges():
    A = RandomRotation((10, 20), generator=gen(0)).get_step(SampleInfo((W, H), torch.Size([300]))).matrix
    angle = torch.rad2deg(torch.atan2(A[:, 0, 1], A[:, 0, 0]))
    assert (angle >= 10 - 1e-9).all() and (angle <= 20 + 1e-9).all() and angle.std() > 2
    c = torch.tensor([(W - 1) / 2, (H - 1) / 2, 1.0], dtype=D)
    torch.testing.assert_close(A @ c, c.expand(300, 3))  # about the image centre
    A = RandomAffine(0, translate=(0.25, 0.1), generator=gen(1)).get_step(SampleInfo((W, H), torch.Size([300]))).matrix
    assert (A[:, 0, 2].abs() <= 0.25 * W).all() and (A[:, 1, 2].abs() <= 0.1 * H).all()


def test_random_perspective_corners_and_distortion_error():
    op = RandomPerspective(0.4, p=1.0, generator=gen(0))
    A = op.get_step(SampleInfo((W, H), torch.Size([50]))).matrix
    src = torch.tensor([[0.0, 0, 1], [W - 1, 0, 1], [W - 1, H - 1, 1], [0, H - 1, 1]], dtype=D)
    dst = src @ A.transpose(-1, -2)
    dst = dst[..., :2] / dst[..., 2:]
    shift = (dst - src[:, :2]) * torch.tensor([[1.0, 1], [-1, 1], [-1, -1], [1, -1]], dtype=D)  # inward
    assert (shift >= -1e-9).all()
    assert (shift <= 0.4 * torch.tensor([(W - 1) / 2, (H - 1) / 2], dtype=D) + 1e-9).all()
    pinhole, X = _camera(dist=(0.0,)), _X()  # (n_dist = 0 cameras cannot be indexed yet)
    out = RandomPerspective(0.4, p=1.0, generator=gen(0))(_batch(pinhole, X))
    for i in range(B):
        np.testing.assert_allclose(out["keypoints"][i].numpy(), _cv_project(out["camera"][i], X @ out["R"][i].T),
                                   atol=1e-6)
    with pytest.raises(InexactDistortionError):
        RandomPerspective(p=1.0, generator=gen(0))(_batch(_camera(), X))


def test_uint8_batches_and_global_seed():
    img = torch.randint(0, 256, (B, 3, H, W), dtype=torch.uint8)
    out = RandomResizedCrop(16, 16, generator=gen(0))({"image": img})["image"]
    assert out.dtype == torch.uint8 and out.shape == (B, 3, 16, 16)
    torch.manual_seed(3)
    a = RandomAffine(30)({"image": img})["image"]
    torch.manual_seed(3)
    assert torch.equal(a, RandomAffine(30)({"image": img})["image"])


def test_bad_arguments():
    with pytest.raises(TypeError, match="generator"):
        RandomHFlip(generator=3)
    with pytest.raises(ValueError, match="RandomHFlip: p"):
        RandomHFlip(p=1.5)
    with pytest.raises(ValueError, match="scale"):
        RandomResizedCrop(8, 8, scale=(0.9, 0.1))
    with pytest.raises(ValueError, match="degrees"):
        RandomRotation(-5)
    with pytest.raises(ValueError, match="translate"):
        RandomAffine(0, translate=(2.0, 0.0))
    assert math.isclose(RandomPerspective(0.25).distortion_scale, 0.25)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batch_with_cpu_generator():
    img = torch.rand(B, 3, H, W, device="cuda")
    cam = _camera().to(device="cuda")
    out = Compose([RandomResizedCrop(16, 16, generator=gen(0)), RandomHFlip(generator=gen(1))])(
        {"image": img, "camera": cam, "keypoints": torch.zeros(B, 2, 2, device="cuda")})
    assert out["image"].device.type == "cuda" and out["R"].shape == (B, 3, 3) and out["R"].device.type == "cuda"
    ref = Compose([RandomResizedCrop(16, 16, generator=gen(0)), RandomHFlip(generator=gen(1))])(
        {"image": img.cpu(), "camera": _camera(), "keypoints": torch.zeros(B, 2, 2)})
    torch.testing.assert_close(out["image"].cpu(), ref["image"], atol=1e-4, rtol=1e-4)
