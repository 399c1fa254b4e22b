"""Distorted-MNIST generators: deterministic per seed, and each stored transform is the one that
made the digit, checked with OpenCV (``warpAffine``/``warpPerspective``/``remap``) and with
intensity centroids as independent oracles."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from camwarp.data import (OUT_SIZE, TASKS, DistortedMNIST, distort, distort_indexed, load_subset, sample_params,
                          sample_seed)
from camwarp.geometry import transform_points

DIGITS = load_subset()[0][:48]
CANON = DIGITS.float().div(255).numpy()  # (N, 28, 28) float32, the oracle's input


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _centroid(img: torch.Tensor) -> torch.Tensor:
    """Intensity centroid ``(u, v)`` of ``(H, W)`` images, pixel-centre frame."""
    h, w = img.shape[-2:]
    v, u = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    m = img.double()
    s = m.sum(dim=(-2, -1))
    return torch.stack([(m * u).sum(dim=(-2, -1)) / s, (m * v).sum(dim=(-2, -1)) / s], dim=-1)


def _close_to_opencv(ours: torch.Tensor, theirs: np.ndarray) -> None:
    # OpenCV's bilinear warps use 1/32-pixel fixed-point weights: small pointwise differences.
    diff = np.abs(ours.numpy() - theirs)
    assert diff.max() < 0.06 and diff.mean() < 3e-3, (diff.max(), diff.mean())


@pytest.mark.parametrize("task", TASKS)
def test_deterministic_per_seed_and_sized(task):
    a, b = distort(DIGITS, task, _gen(7)), distort(DIGITS, task, _gen(7))
    c = distort(DIGITS, task, _gen(8))
    W, H = OUT_SIZE[task]
    assert a.image.shape == (len(DIGITS), 1, H, W) and a.image.dtype == torch.float32
    assert a.matrix.shape == (len(DIGITS), 3, 3) and a.matrix.dtype == torch.float64
    assert torch.equal(a.image, b.image) and torch.equal(a.matrix, b.matrix)
    assert 0 <= float(a.image.min()) and float(a.image.max()) <= 1
    if task != "none":
        assert not torch.equal(a.image, c.image)


@pytest.mark.parametrize("task", ["r", "rts", "p", "e", "cluttered"])
def test_indexed_equals_one_digit_at_a_time(task):
    seeds = [sample_seed(3, 1, i) for i in range(6)]
    batch = distort_indexed(DIGITS[:6], task, seeds, pool=DIGITS)
    for i, s in enumerate(seeds):
        one = distort(DIGITS[i:i + 1], task, _gen(s), pool=DIGITS)
        assert torch.equal(batch.matrix[i], one.matrix[0])
        torch.testing.assert_close(batch.image[i], one.image[0], atol=1e-6, rtol=0)


def test_rts_matrix_is_the_warp_opencv_agrees():
    out = distort(DIGITS, "rts", _gen(0))
    for i in range(len(DIGITS)):
        ref = cv2.warpAffine(CANON[i], out.matrix[i, :2].numpy(), (42, 42), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        _close_to_opencv(out.image[i, 0], ref)
    # The drawn parameters are the claimed ones: a similarity with scale in [0.7, 1.2], angle in
    # [-45, 45] degrees, and the scaled digit box stays inside the 42x42 canvas.
    L = out.matrix[:, :2, :2]
    scale = torch.linalg.det(L).sqrt()
    angle = torch.rad2deg(torch.atan2(L[:, 0, 1], L[:, 0, 0]))
    torch.testing.assert_close(L / scale[:, None, None], torch.stack(
        [torch.stack([angle.deg2rad().cos(), angle.deg2rad().sin()], -1),
         torch.stack([-angle.deg2rad().sin(), angle.deg2rad().cos()], -1)], -2))
    assert scale.min() >= 0.7 and scale.max() <= 1.2 and angle.abs().max() <= 45
    box = torch.tensor([[-0.5, -0.5], [27.5, -0.5], [27.5, 27.5], [-0.5, 27.5]], dtype=torch.float64)
    centre = transform_points(out.matrix, torch.full((len(DIGITS), 1, 2), 13.5, dtype=torch.float64))
    half = 14 * scale[:, None]
    assert (centre[:, 0] - half >= -0.5 - 1e-9).all() and (centre[:, 0] + half <= 41.5 + 1e-9).all()
    assert transform_points(out.matrix, box.expand(len(DIGITS), 4, 2)).isfinite().all()
    # Independent of any sampler: the digit's intensity centroid moves with the matrix.
    moved = transform_points(out.matrix, _centroid(DIGITS.float())[:, None])[:, 0]
    assert (moved - _centroid(out.image[:, 0])).norm(dim=-1).max() < 0.5


def test_r_is_a_rotation_about_the_centre_opencv_agrees():
    out = distort(DIGITS, "r", _gen(1))
    angles = []
    for i in range(len(DIGITS)):
        ref = cv2.warpAffine(CANON[i], out.matrix[i, :2].numpy(), (28, 28), flags=cv2.INTER_LINEAR)
        _close_to_opencv(out.image[i, 0], ref)
        m = out.matrix[i].numpy()
        angle = float(np.degrees(np.arctan2(m[0, 1], m[0, 0])))
        want = cv2.getRotationMatrix2D((13.5, 13.5), angle, 1.0)
        np.testing.assert_allclose(out.matrix[i, :2].numpy(), want, atol=1e-9)
        angles.append(angle)
    assert max(map(abs, angles)) <= 90 and max(angles) > 30 and min(angles) < -30


def test_p_homography_maps_corners_and_opencv_agrees():
    params = sample_params("p", len(DIGITS), _gen(2))
    out = distort(DIGITS, "p", _gen(2))
    box = np.array([[-0.5, -0.5], [27.5, -0.5], [27.5, 27.5], [-0.5, 27.5]], dtype=np.float32)
    for i in range(len(DIGITS)):
        H_cv = cv2.getPerspectiveTransform(box, params["corners"][i].numpy().astype(np.float32))
        np.testing.assert_allclose(out.matrix[i].numpy(), H_cv, rtol=1e-3, atol=1e-3)
        ref = cv2.warpPerspective(CANON[i], out.matrix[i].numpy(), (28, 28), flags=cv2.INTER_LINEAR)
        _close_to_opencv(out.image[i, 0], ref)
    scale = params["scale"]
    assert scale.min() >= 0.75 and scale.max() <= 1.0
    base = 13.5 + scale[:, None, None] * (torch.from_numpy(box).double() - 13.5)
    stretch = (params["corners"] - base) * torch.sign(torch.from_numpy(box).double() - 13.5)
    assert (stretch >= 0).all()  # outward, by |N(0, 5^2)|: mean 5 sqrt(2 / pi) = 3.99, rms 5
    assert 3.0 < float(stretch.mean()) < 5.0 and 4.0 < float(stretch.pow(2).mean().sqrt()) < 6.0


def test_e_flow_is_smooth_and_is_what_was_sampled():
    out = distort(DIGITS, "e", _gen(3))
    grid = torch.stack(torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="xy"), -1)
    disp = out.flow - grid  # (N, 28, 28, 2)
    assert torch.equal(out.matrix, torch.eye(3, dtype=torch.float64).expand(len(DIGITS), 3, 3))
    rms = disp.pow(2).mean().sqrt()
    assert 0.5 < rms < 3.0  # alpha 34 x (uniform noise smoothed by sigma 4): about 1.4 px
    step = (disp[:, 1:] - disp[:, :-1]).pow(2).mean().sqrt()
    assert step < 0.25 * rms  # smooth: neighbours move together
    for i in range(len(DIGITS)):
        ref = cv2.remap(CANON[i], out.flow[i, ..., 0].numpy(), out.flow[i, ..., 1].numpy(), cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        _close_to_opencv(out.image[i, 0], ref)


def test_cluttered_places_digit_and_six_pieces():
    out = distort(DIGITS, "cluttered", _gen(4), pool=torch.zeros(5, 28, 28, dtype=torch.uint8))
    for i in range(len(DIGITS)):  # empty clutter: exactly the digit at an integer offset
        u, v = (int(t) for t in out.matrix[i, :2, 2])
        ref = np.zeros((60, 60), np.float32)
        ref[v:v + 28, u:u + 28] = CANON[i]
        np.testing.assert_allclose(out.image[i, 0].numpy(), ref, atol=1e-5)
    full = distort(DIGITS, "cluttered", _gen(4), pool=torch.full((5, 28, 28), 255, dtype=torch.uint8))
    assert torch.equal(full.matrix, out.matrix)
    added = (full.image - out.image)[:, 0] > 0  # white pieces: where clutter landed off the digit
    assert (added.sum(dim=(1, 2)) <= 6 * 36).all() and (full.image == 1).sum(dim=(1, 2, 3)).min() >= 36


def test_dataset_is_independent_of_batching_and_epoch_changes_data():
    ds = DistortedMNIST(DIGITS, torch.arange(len(DIGITS)) % 10, "rts", seed=5)
    batch = ds.__getitems__([9, 3, 17])
    for item, i in zip(batch, (9, 3, 17)):
        one = ds[i]
        assert int(one["index"]) == i and int(one["label"]) == i % 10
        assert torch.equal(item["matrix"], one["matrix"])
        torch.testing.assert_close(item["image"], one["image"], atol=1e-6, rtol=0)
    ds.epoch = 1
    assert not torch.equal(ds[9]["matrix"], batch[0]["matrix"])


@pytest.mark.parametrize("call, match", [
    (lambda: distort(DIGITS, "zoom"), "sample_params: task must be one of"),
    (lambda: sample_params("cluttered", 2), "sample_params: task 'cluttered' needs pool_size"),
    (lambda: distort(DIGITS[:, :20], "r"), r"apply_distortion: digits must have shape \(N, 1, 28, 28\)"),
    (lambda: distort_indexed(DIGITS[:2], "r", [1]), "distort_indexed: seeds must have one entry per digit"),
    (lambda: DistortedMNIST(DIGITS, torch.zeros(3), "r"), "DistortedMNIST: images and labels"),
])
def test_bad_arguments_name_function_and_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
