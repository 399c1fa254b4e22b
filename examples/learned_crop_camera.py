"""A spatial transformer learns a crop; its theta is a pixel matrix, so the crop has an exact camera.

A ``SpatialTransformer`` with the ``scale_translation`` family (the STN paper's attention) is
trained for a few dozen steps to zoom onto an object in one calibrated, distorted 128x96 image.
Whatever theta it ends up with,

    theta  ->  A = theta_to_pixel_matrix(theta, in_size, out_size)   (src->dst pixels, OpenCV frame)
           ->  camera', R = camera.transform(A, out_size)              (A K = K' R, R = I here)

gives the virtual camera of the transformer's output: a 3D point projects through ``camera'`` to
exactly where the transformer put its pixel. The script checks this on a point, on the image
(a marker drawn at the point's projection), and checks that the STN's output equals
``warp_affine(image, A)`` and torch's ``grid_sample(affine_grid(theta))``.

Run: ``.venv/bin/python examples/learned_crop_camera.py [--out DIR] [--steps N]``.
Exits non-zero if a check fails.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import camwarp
from camwarp.geometry import invert, transform_points
from camwarp.stn import SpatialTransformer

from _common import centroid, check, example_parser, gaussian, output_dir, pyplot, save_figure

F64 = torch.float64
IN_SIZE, OUT_SIZE = (128, 96), (48, 36)   # (W, H) of the input image and of the transformer's output


def main(argv: list[str] | None = None) -> None:
    parser = example_parser(__doc__)
    parser.add_argument("--steps", type=int, default=60, help="training steps (default 60)")
    args = parser.parse_args(argv)
    out_dir = output_dir(args.out, "camwarp_stn_")
    torch.manual_seed(0)

    # --- A calibrated camera and a 3D point on an object ----------------------------------------
    cam = camwarp.Camera(torch.tensor(110.0, dtype=F64), 110.0, 63.5, 47.5, *IN_SIZE, dist=[-0.12, 0.03])
    X = torch.tensor([[0.42, -0.18, 1.5]], dtype=F64)   # camera frame
    p = cam.project(X)[0]                               # its (distorted) pixel in the input image
    print(f"camera: {cam}\n3D point {X[0].tolist()} projects to pixel {p.tolist()}")

    # Image channels: smooth clutter, the object (a wide blob around p: something to find) and a
    # small marker exactly at p (to measure where the transformer puts that pixel).
    W, H = IN_SIZE
    clutter = F.interpolate(torch.rand(1, 1, H // 8, W // 8), size=(H, W), mode="bicubic", align_corners=False)[0, 0]
    image = torch.stack([0.5 * clutter, gaussian(p, IN_SIZE, sigma=6.0), gaussian(p, IN_SIZE, sigma=1.2)])[None]

    # --- Train: the transformer should show the 36x27-pixel box around the object ---------------
    # (A target crop keeps the demo short; in a real model the task loss drives theta the same way.)
    target_box = (float(p[0]) - 18.0 + 0.5, float(p[1]) - 13.5 + 0.5, 36.0, 27.0)  # (x0, y0, w, h), top-left centre
    target = camwarp.crop_resize(image, target_box, OUT_SIZE)
    # A small localization network (any nn.Module returning (N, F) works); the head starts at identity.
    loc = nn.Sequential(nn.AvgPool2d(4), nn.Flatten(), nn.Linear(3 * (H // 4) * (W // 4), 32), nn.ReLU())
    st = SpatialTransformer(3, "scale_translation", out_size=OUT_SIZE, in_size=IN_SIZE, localization=loc,
                            loc_features=32, max_scale=4.0)
    # One image: the localization's features are constant, so training the head (the layer that
    # outputs theta) is enough here, and quick.
    opt = torch.optim.Adam(st.head.parameters(), lr=0.03)
    losses = []
    for _ in range(args.steps):
        opt.zero_grad()
        loss = F.mse_loss(st(image), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    print(f"training: loss {losses[0]:.5f} -> {losses[-1]:.5f} in {args.steps} steps")

    with torch.no_grad():
        y, theta = st(image, return_theta=True)   # y: (1, 3, 36, 48); theta: (1, 2, 3)
    print("learned theta (normalized, dst->src):\n", theta[0])

    # --- theta -> pixel matrix -> virtual camera --------------------------------------------------
    A = st.pixel_matrix(theta.to(F64), IN_SIZE)[0]      # src->dst pixels
    new_cam, R = st.output_camera(cam, theta.to(F64)[0])
    edges = transform_points(invert(A), torch.tensor([[-0.5, -0.5], [OUT_SIZE[0] - 0.5, OUT_SIZE[1] - 0.5]], dtype=F64))
    print("pixel matrix A:\n", A)
    print(f"the output shows the source box with edges {edges.flatten().tolist()} (x1, y1, x2, y2)")
    print(f"virtual camera of the learned crop: {new_cam}")

    print("checks:")
    check(losses[-1] < 0.1 * losses[0], "training reduced the loss (the crop moved onto the object)")
    check(torch.allclose(R, torch.eye(3, dtype=F64), atol=1e-12), "a scale + translation keeps R = I")
    check(torch.equal(new_cam.dist, cam.dist), "distortion coefficients unchanged (exact for affine maps)")
    p_new = new_cam.project(X)[0]
    p_mapped = transform_points(A, p[None])[0]
    check(torch.allclose(p_new, p_mapped, atol=1e-9, rtol=0),
          f"the virtual camera projects the 3D point to A @ p = {p_mapped.tolist()}")

    # The transformer's output *is* warp_affine by A, and torch's affine_grid + grid_sample by theta.
    by_matrix = camwarp.warp_affine(image, A.to(torch.float32), OUT_SIZE)
    grid = F.affine_grid(theta, [1, 3, OUT_SIZE[1], OUT_SIZE[0]], align_corners=False)
    by_torch = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    check(torch.allclose(y, by_matrix, atol=1e-5), "STN output == warp_affine(image, A, out_size)")
    check(torch.allclose(y, by_torch, atol=1e-5), "STN output == F.grid_sample(image, F.affine_grid(theta))")

    found = centroid(y[0, 2])
    err = (found - p_new).abs().max().item()
    check(err < 0.05, f"the marker in the STN output sits where the virtual camera projects the point ({err:.4f} px)")

    # --- Figure ---------------------------------------------------------------------------------
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    show = lambda t: (t[0] + 0.6 * t[1] + t[2]).clamp(0, 1).detach().numpy()  # noqa: E731
    axes[0].imshow(show(image[0]), cmap="gray", extent=(-0.5, W - 0.5, H - 0.5, -0.5))
    (x1, y1), (x2, y2) = edges.tolist()
    axes[0].add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color="tab:orange", lw=1.5))
    axes[0].plot(*p.tolist(), "r+", ms=10)
    axes[0].set_title("input 128x96, learned box")
    axes[1].imshow(show(y[0]), cmap="gray", extent=(-0.5, OUT_SIZE[0] - 0.5, OUT_SIZE[1] - 0.5, -0.5))
    axes[1].plot(*p_new.tolist(), "r+", ms=12)
    axes[1].set_title("STN output 48x36 + virtual camera's projection")
    axes[2].plot(losses)
    axes[2].set_yscale("log")
    axes[2].set_title("training loss")
    save_figure(fig, out_dir / "learned_crop_camera.png")
    print("all checks passed")


if __name__ == "__main__":
    main()
