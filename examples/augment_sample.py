"""Augment a whole sample (image, depth, mask, keypoints, boxes, camera) with one random chain.

``camwarp.transforms`` applies one src->dst pixel matrix per op to every entry of a sample dict:
the image is resampled once (antialiased), depth and masks are resampled by nearest neighbour
(values never blended), keypoints and boxes are mapped, and the camera is updated (``A K = K' R``;
``R`` accumulates in ``sample["R"]`` for the extrinsics). Here a batch of 4 views of one synthetic
scene goes through ``RandomResizedCrop -> RandomHFlip -> RandomRotation`` (one draw per item), and
the script checks, per item, that

* each moved keypoint is where the new camera projects its 3D point (``K' d(R X)``, the new
  camera seeing the rotated point), to 1e-6 px,
* depth values and mask labels are only ever copied, never mixed,
* each visible keypoint lies inside its moved box.

Run: ``.venv/bin/python examples/augment_sample.py [--out DIR] [--seed S]``. Exits non-zero if a
check fails.
"""

from __future__ import annotations

import torch

import camwarp
from camwarp.transforms import Compose, RandomHFlip, RandomResizedCrop, RandomRotation

from _common import check, example_parser, output_dir, pyplot, save_figure

F64 = torch.float64
SIZE = (320, 240)   # (W, H)
RADIUS = 9.0        # disk radius of each object, pixels


def make_scene(cam: camwarp.Camera, X: torch.Tensor) -> dict:
    """One sample of a synthetic scene: coloured disks where the 3D points ``X`` ``(N, 3)`` project."""
    W, H = SIZE
    kp = cam.project(X)                                        # (N, 2) pixels, OpenCV centre frame
    v, u = torch.meshgrid(torch.arange(H, dtype=F64), torch.arange(W, dtype=F64), indexing="ij")
    image = torch.stack([u / W, v / H, 0.5 + 0 * u]).to(torch.float32) * 0.5   # (3, H, W) gradient
    mask = torch.zeros(H, W, dtype=torch.int64)                # 0 = background, i + 1 = object i
    depth = (2.0 + 0.004 * v).to(torch.float32)                # (H, W): a slanted floor, metres
    colours = torch.tensor([[1, 0.2, 0.2], [0.2, 1, 0.2], [0.2, 0.2, 1], [1, 1, 0.2], [1, 0.2, 1]])
    for i, (cu, cv) in enumerate(kp.tolist()):
        disk = (u - cu) ** 2 + (v - cv) ** 2 <= RADIUS**2
        image[:, disk] = colours[i % len(colours), :, None]
        mask[disk] = i + 1
        depth[disk] = float(X[i, 2])                           # the object's z-depth
    r = RADIUS + 0.5
    boxes = torch.stack([kp[:, 0] - r, kp[:, 1] - r, kp[:, 0] + r, kp[:, 1] + r], dim=-1)  # xyxy edges
    return {"image": image, "depth": depth, "mask": mask, "keypoints": kp, "boxes": boxes, "camera": cam}


def main(argv: list[str] | None = None) -> None:
    parser = example_parser(__doc__)
    parser.add_argument("--seed", type=int, default=0, help="seed of the random chain")
    args = parser.parse_args(argv)
    out_dir = output_dir(args.out, "camwarp_augment_")

    # A distorted camera (radial + tangential) and five 3D points in its frame.
    cam = camwarp.Camera(torch.tensor(300.0, dtype=F64), 290.0, 161.0, 118.5, *SIZE,
                         dist=[-0.05, 0.01, 0.001, -0.0005])
    X = torch.tensor([[-0.5, -0.3, 2.5], [0.4, -0.2, 2.0], [0.0, 0.1, 3.0], [-0.3, 0.35, 1.8],
                      [0.6, 0.3, 2.6]], dtype=F64)
    one = make_scene(cam, X)

    # A batch of 4 copies of the view: the random ops draw one set of parameters per item.
    B = 4
    sample = {k: (v if k == "camera" else v.expand(B, *v.shape).clone()) for k, v in one.items()}
    gen = torch.Generator().manual_seed(args.seed)
    chain = Compose([RandomResizedCrop(256, 192, scale=(0.35, 1.0), generator=gen),
                     RandomHFlip(p=0.5, generator=gen),
                     RandomRotation(20.0, generator=gen)])
    print(chain)
    out = chain(sample)
    new_cam, R = out["camera"], out["R"]                       # camera batched (4,), R (4, 3, 3)
    print(f"new camera of item 0: {new_cam[0]}\nR of item 0:\n{R[0]}")

    print("checks:")
    # The new camera sees the rotated point R X; its projection must be the moved keypoint.
    RX = torch.einsum("bij,nj->bni", R, X)                     # (B, N, 3)
    projected = new_cam.project(RX)                            # (B, N, 2)
    vis = out["visibility"]                                    # (B, N) inside the new image
    err = (projected - out["keypoints"]).norm(dim=-1)             # all points, in view or not
    check(bool(vis.any()), f"{int(vis.sum())} of {vis.numel()} keypoints still visible")
    check(err.max().item() < 1e-6, f"keypoints == new camera's projection of R X (max error {err.max():.2e} px)")
    flips = torch.linalg.det(R) < 0
    print(f"  items flipped (det R = -1): {flips.tolist()}")
    check(torch.allclose(R @ R.transpose(-1, -2), torch.eye(3, dtype=F64).expand(B, 3, 3), atol=1e-12),
          "R is orthogonal")

    depth_values = set(one["depth"].unique().tolist()) | {0.0}   # 0 = invalid (outside the source)
    check(set(out["depth"].unique().tolist()) <= depth_values, "depth: every value is a source value or 0")
    check(out["mask"].dtype == torch.int64 and set(out["mask"].unique().tolist()) <= set(range(len(X) + 1)),
          "mask: labels kept (int64, no blending)")
    kp, bx = out["keypoints"], out["boxes"]
    inside = ((bx[..., :2] <= kp) & (kp <= bx[..., 2:])).all(dim=-1)   # (B, N)
    check(bool(inside[vis].all()) and bool(out["box_valid"][vis].all()),
          "each visible keypoint is inside its moved box")
    # The mask label under each visible keypoint is its own object's (nearest resampling, no mixing).
    b_idx, n_idx = vis.nonzero(as_tuple=True)
    u, v = kp[b_idx, n_idx].round().long().unbind(-1)
    check(torch.equal(out["mask"][b_idx, v.clamp(0, 191), u.clamp(0, 255)], n_idx + 1),
          "the mask label under each visible keypoint is its object's")

    # --- Figure ---------------------------------------------------------------------------------
    plt = pyplot()
    fig, axes = plt.subplots(2, B + 1, figsize=(3.2 * (B + 1), 5.2))
    panels = [(one["image"], one["depth"], one["keypoints"], one["boxes"], "source")]
    panels += [(out["image"][b], out["depth"][b], projected[b], out["boxes"][b], f"draw {b}") for b in range(B)]
    for col, (img, dep, pts, boxes, title) in enumerate(panels):
        axes[0, col].imshow(img.permute(1, 2, 0).clamp(0, 1).numpy())
        axes[0, col].plot(pts[:, 0].numpy(), pts[:, 1].numpy(), "k+", ms=8)
        for x1, y1, x2, y2 in boxes.tolist():
            axes[0, col].add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color="w", lw=0.8))
        axes[0, col].set_title(title + (" (+: camera projection)" if col else ""), fontsize=8)
        axes[1, col].imshow(dep.numpy(), cmap="viridis", vmin=0.0, vmax=float(one["depth"].max()))
        axes[1, col].set_title("depth", fontsize=8)
    for ax in axes.flat:
        ax.set_axis_off()
    save_figure(fig, out_dir / "augment_sample.png", dpi=70)
    print("all checks passed")


if __name__ == "__main__":
    main()
