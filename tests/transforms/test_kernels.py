"""The kind table: each data kind moved by one step, against independent oracles.

Oracles: torch's own flip/rot90/slicing for whole-pixel maps, numpy block reductions for depth
``"min"``, set membership for depth/masks (no value that was not in the source), bounding boxes of
transformed masks for boxes, and hand-written expectations for visibility and errors.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from camwarp import Camera
from camwarp import geometry as G
from camwarp.transforms import KernelOptions, MatrixStep, apply, sample_batch_shape, sample_size

D = torch.float64


def _depth(H=12, W=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    d = torch.rand(H, W, generator=g, dtype=D) * 5 + 1
    return d * (torch.rand(H, W, generator=g) > 0.3)  # 30 % holes (0 = invalid)


@pytest.mark.parametrize("name", ["hflip", "vflip", "rot90", "rot270", "crop", "pad"])
def test_whole_pixel_maps_copy_every_kind(name):
    W, H = 16, 12
    img = torch.rand(2, 3, H, W, dtype=D)
    depth, mask = _depth(), torch.randint(0, 5, (H, W))
    A, size, ref = {
        "hflip": (G.hflip_matrix(W), (W, H), lambda x: x.flip(-1)),
        "vflip": (G.vflip_matrix(H), (W, H), lambda x: x.flip(-2)),
        "rot90": (G.rot90_matrix(1, (W, H)), (H, W), lambda x: torch.rot90(x, 1, (-2, -1))),
        "rot270": (G.rot90_matrix(-1, (W, H)), (H, W), lambda x: torch.rot90(x, -1, (-2, -1))),
        "crop": (G.crop_matrix(3, 2), (9, 7), lambda x: x[..., 2:9, 3:12]),
        "pad": (G.pad_matrix(2, 1), (W + 5, H + 4), lambda x: F.pad(x, (2, 3, 1, 3))),
    }[name]
    out = apply({"image": img, "depth": depth, "mask": mask}, MatrixStep(A.to(D), size))
    torch.testing.assert_close(out["image"], ref(img), atol=1e-12, rtol=0)
    assert torch.equal(out["depth"], ref(depth)) and torch.equal(out["mask"], ref(mask))
    assert out["mask"].dtype == mask.dtype and out["depth"].dtype == depth.dtype


def test_uint8_image_and_bool_mask_keep_dtype():
    img = torch.randint(0, 256, (3, 10, 14), dtype=torch.uint8)
    mask = torch.rand(10, 14) > 0.5
    A = G.affine_matrix(17.0, (1.5, -2.0), 0.8, center=(6.5, 4.5)).to(D)
    out = apply({"image": img, "mask": mask}, MatrixStep(A, (14, 10)))
    assert out["image"].dtype == torch.uint8 and out["mask"].dtype == torch.bool
    ref = apply({"image": img.to(D)}, MatrixStep(A, (14, 10)))["image"].round().clamp(0, 255)
    assert torch.equal(out["image"].to(D), ref)
    flipped = apply({"image": img}, MatrixStep(G.hflip_matrix(14).to(D), (14, 10)))["image"]
    assert torch.equal(flipped, img.flip(-1))


@pytest.mark.parametrize("angle,scale", [(0.0, 0.37), (23.0, 1.3), (-61.0, 0.55)])
def test_depth_and_mask_values_come_from_the_source(angle, scale):
    depth, mask = _depth(20, 24, seed=1), torch.randint(0, 7, (20, 24), dtype=torch.int32)
    A = G.affine_matrix(angle, (0.3, 0.7), scale, center=(11.5, 9.5)).to(D)
    for opts in (KernelOptions(), KernelOptions(depth_mode="min")):
        out = apply({"depth": depth, "mask": mask}, MatrixStep(A, (24, 20)), opts)
        assert set(out["depth"].unique().tolist()) <= set(depth.unique().tolist()) | {0.0}
        assert set(out["mask"].unique().tolist()) <= set(mask.unique().tolist())


def test_depth_min_of_valid_equals_block_reduction():
    depth = _depth(12, 16, seed=2)
    out = apply({"depth": depth}, MatrixStep(G.resize_matrix((16, 12), (8, 6)).to(D), (8, 6)),
                KernelOptions(depth_mode="min"))["depth"]
    blocks = depth.numpy().reshape(6, 2, 8, 2).transpose(0, 2, 1, 3).reshape(6, 8, 4)
    ref = np.where(blocks > 0, blocks, np.inf).min(-1)
    ref[np.isinf(ref)] = 0
    np.testing.assert_array_equal(out.numpy(), ref)


def test_depth_edges_are_not_blended_with_zeros():
    depth = torch.zeros(10, 10, dtype=D)
    depth[2:8, 2:8] = 3.0
    A = G.affine_matrix(0.0, (0.5, 0.25), 1.0).to(D)  # half-pixel shift: bilinear would give 1.5
    out = apply({"depth": depth}, MatrixStep(A, (10, 10)))["depth"]
    assert set(out.unique().tolist()) == {0.0, 3.0}


def test_keypoints_visibility_and_projective_horizon():
    kp = torch.tensor([[0.0, 0.0], [5.0, 2.0], [9.4, 3.0]], dtype=D)
    out = apply({"keypoints": kp, "visibility": torch.tensor([True, False, True])},
                MatrixStep(G.crop_matrix(1, 0).to(D), (9, 4)))
    torch.testing.assert_close(out["keypoints"], kp - torch.tensor([1.0, 0.0], dtype=D))
    assert out["visibility"].tolist() == [False, False, True]  # left, hidden before, inside (8.4 < 8.5)
    Hm = torch.tensor([[1.0, 0, 0], [0, 1, 0], [-0.1, 0, 1]], dtype=D)  # horizon at u = 10
    out = apply({"keypoints": torch.tensor([[2.0, 1.0], [12.0, 1.0]], dtype=D)}, MatrixStep(Hm, (50, 50), False))
    assert out["visibility"].tolist() == [True, False]


def test_boxes_follow_mask_bounding_boxes():
    W, H = 20, 14
    mask = torch.zeros(H, W, dtype=torch.uint8)
    mask[3:9, 4:15] = 1  # pixels 4..14 x 3..8 -> edges (3.5, 2.5, 14.5, 8.5)
    box = torch.tensor([[3.5, 2.5, 14.5, 8.5]], dtype=D)

    def bbox(m):
        ys, xs = torch.nonzero(m, as_tuple=True)
        return torch.tensor([xs.min() - 0.5, ys.min() - 0.5, xs.max() + 0.5, ys.max() + 0.5], dtype=D)

    cases = [(G.hflip_matrix(W), (W, H), 0.0), (G.rot90_matrix(1, (W, H)), (H, W), 0.0),
             (G.crop_matrix(6, 1), (10, 12), 0.0), (G.resize_matrix((W, H), (40, 28)), (40, 28), 0.0),
             (G.resize_matrix((W, H), (13, 9)), (13, 9), 1.0),
             (G.affine_matrix(30.0, (0, 0), 1.0, center=(9.5, 6.5)), (W, H), 1.5)]
    for A, size, tol in cases:
        out = apply({"mask": mask, "boxes": box}, MatrixStep(A.to(D), size))
        got, ref = out["boxes"][0], bbox(out["mask"])
        if tol == 0:
            torch.testing.assert_close(got, ref.clamp(max=torch.tensor([size[0] - .5, size[1] - .5] * 2, dtype=D)))
        else:  # the box of the corners contains the resampled mask, within a pixel or so
            assert (got[:2] <= ref[:2] + 0.5).all() and (got[2:] >= ref[2:] - 0.5).all()
            assert (got - ref).abs().max() <= tol
        assert out["box_valid"].tolist() == [True]


def test_boxes_leaving_the_image_are_flagged_not_dropped():
    boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0], [10.0, 10.0, 12.0, 12.0]], dtype=D)
    out = apply({"boxes": boxes}, MatrixStep(G.crop_matrix(0, 0).to(D), (8, 8)))
    assert out["boxes"].shape == (2, 4) and out["box_valid"].tolist() == [True, False]


def test_camera_R_accumulates_and_depth_batch_dims_align():
    cam = Camera(torch.tensor([50.0, 60.0], dtype=D), 50.0, 7.5, 5.5, 16, 12)
    A = torch.stack([G.hflip_matrix(16), G.rot90_matrix(2, (16, 12))]).to(D)  # one matrix per item
    depth = torch.stack([_depth(), _depth(seed=3)]).unsqueeze(1)  # (B, 1, H, W): channel after the batch
    R0 = torch.eye(3, dtype=D).expand(2, 3, 3) * torch.tensor([1.0, -1, -1], dtype=D)
    out = apply({"camera": cam, "R": R0, "depth": depth}, MatrixStep(A, (16, 12)))
    assert out["depth"].shape == (2, 1, 12, 16)
    assert torch.equal(out["depth"][0, 0], depth[0, 0].flip(-1))
    assert torch.equal(out["depth"][1, 0], depth[1, 0].flip(-1, -2))
    torch.testing.assert_close(out["R"][0], torch.diag(torch.tensor([-1.0, -1, -1], dtype=D)))
    torch.testing.assert_close(out["R"][1], torch.diag(torch.tensor([-1.0, 1, -1], dtype=D)))


def test_extras_kinds_and_errors():
    img = torch.rand(3, 4, 5)
    step = MatrixStep(G.hflip_matrix(5).to(D), (5, 4))
    out = apply({"image": img, "name": "a.png", "id": 3}, step)
    assert out["name"] == "a.png" and out["id"] == 3
    with pytest.raises(ValueError, match="'label'"):
        apply({"image": img, "label": torch.tensor(3)}, step)
    out = apply({"image": img, "label": torch.tensor(3), "mask_hand": torch.ones(4, 5), "hands": torch.zeros(2, 2),
                 "hands_visibility": torch.tensor([True, False])}, step,
                kinds={"label": "passthrough", "mask_hand": "mask", "hands": "keypoints"})
    assert out["label"] == 3 and out["mask_hand"].shape == (4, 5)
    assert out["hands"][:, 0].tolist() == [4.0, 4.0] and out["hands_visibility"].tolist() == [True, False]
    with pytest.raises(ValueError, match="kinds"):
        apply({"image": img}, step, kinds={"image": "volume"})
    with pytest.raises(ValueError, match="'R'"):
        apply({"image": img, "R": torch.eye(3)}, step)
    with pytest.raises(TypeError, match="sample"):
        apply([img], step)
    with pytest.raises(ValueError, match="mode"):
        KernelOptions(mode="lanczos")


def test_sample_size_and_batch_shape():
    cam = Camera(10.0, 10.0, 2.0, 2.0, 5, 4)
    assert sample_size({"camera": cam}) == (5, 4)
    assert sample_size({"image": torch.rand(2, 3, 4, 5), "mask": torch.ones(2, 4, 5)}) == (5, 4)
    with pytest.raises(ValueError, match="disagree"):
        sample_size({"image": torch.rand(3, 4, 5), "camera": Camera(10.0, 10.0, 2.0, 2.0, 6, 4)})
    with pytest.raises(ValueError, match="no image"):
        sample_size({"keypoints": torch.zeros(1, 2)})
    assert sample_batch_shape({"image": torch.rand(7, 3, 4, 5), "keypoints": torch.zeros(7, 2, 2)}) == (7,)
    assert sample_batch_shape({"keypoints": torch.zeros(6, 2, 2), "mask": torch.ones(6, 4, 5)}) == (6,)
    assert sample_batch_shape({"depth": torch.ones(4, 5)}) == ()
