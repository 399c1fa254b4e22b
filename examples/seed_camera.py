"""Crop and resize a calibrated image: one pixel matrix warps the image and updates the camera.

The seed example of camwarp (DESIGN.md): a 2880x2160 camera with fx = fy = 2220, cx = 1404,
cy = 1064 and radial distortion k1 = -0.00344584, k2 = 0.120934 is centre-cropped to 1920x1080
and resized to 640x360. The script

1. builds the single src->dst pixel matrix ``A = resize @ crop`` (OpenCV centre frame),
2. updates the camera with that matrix (``Camera.transform``) and checks the closed form
   fx = fy = 740, cx = (924 + 0.5)/3 - 0.5, cy = (524 + 0.5)/3 - 0.5, k1, k2 unchanged,
3. renders a synthetic image with a Gaussian blob where a 3D point projects, warps it with
   ``crop_resize`` and with ``warp_affine`` (the same matrix), and measures where the blob lands,
4. shows that the naive ``cx / 3`` camera misplaces the point by a third of a pixel.

Run: ``.venv/bin/python examples/seed_camera.py [--out DIR]`` (figure ``seed_camera.png`` in DIR).
Exits non-zero if a check fails.
"""

from __future__ import annotations

import torch

import camwarp
from camwarp.geometry import compose, crop_matrix, resize_matrix, transform_points

from _common import centroid, check, example_parser, gaussian, output_dir, pyplot, save_figure

F64 = torch.float64


def checker_image(size: tuple[int, int], square: int) -> torch.Tensor:
    """A ``(1, H, W)`` checkerboard (only for the figure)."""
    W, H = size
    u = torch.arange(W) // square
    v = torch.arange(H) // square
    return ((u[None, :] + v[:, None]) % 2).to(torch.float32)[None] * 0.5 + 0.25


def main(argv: list[str] | None = None) -> None:
    args = example_parser(__doc__).parse_args(argv)
    out_dir = output_dir(args.out, "camwarp_seed_")

    # --- 1. The camera (float64 so the closed form holds to the last digit) ----------------------
    # One float64 tensor makes the whole camera float64 (Python numbers are read in its dtype).
    cam = camwarp.Camera(torch.tensor(2220.0, dtype=F64), 2220.0, 1404.0, 1064.0, 2880, 2160,
                         dist=[-0.00344584, 0.120934])
    print("source camera:", cam)

    # --- 2. One matrix: centre crop (integer offsets, as Camera.center_crop) then resize ----------
    x0, y0 = (2880 - 1920) // 2, (2160 - 1080) // 2           # (480, 540)
    cropped_from_src = crop_matrix(x0, y0, dtype=F64)            # u' = u - x0
    resized_from_cropped = resize_matrix((1920, 1080), (640, 360), dtype=F64)  # u' = s (u + 0.5) - 0.5
    A = compose(cropped_from_src, resized_from_cropped)          # = resized_from_cropped @ cropped_from_src
    print("dst_from_src pixel matrix A:\n", A)

    new_cam, R = cam.transform(A, (640, 360))
    print("new camera:", new_cam)
    chained = cam.center_crop(1920, 1080).resize(640, 360)
    print("checks:")
    check(torch.allclose(new_cam.K, chained.K, atol=1e-12, rtol=0),
          "Camera.transform(A) == Camera.center_crop(...).resize(...)")
    check(torch.equal(R, torch.eye(3, dtype=F64)), "crop + resize keeps the orientation (R = I)")
    expected = torch.tensor([[740.0, 0.0, (924 + 0.5) / 3 - 0.5],
                             [0.0, 740.0, (524 + 0.5) / 3 - 0.5],
                             [0.0, 0.0, 1.0]], dtype=F64)
    check(torch.allclose(new_cam.K, expected, atol=1e-12, rtol=0),
          f"K' closed form: fx = fy = 740, cx = 924.5/3 - 0.5 = {expected[0, 2]:.6f}, "
          f"cy = 524.5/3 - 0.5 = {expected[1, 2]:.6f}")
    check(torch.equal(new_cam.dist, cam.dist), "k1, k2 unchanged")
    pp_colmap = new_cam.principal_point("colmap")
    check(torch.allclose(pp_colmap, torch.tensor([924.5 / 3, 524.5 / 3], dtype=F64), atol=1e-12, rtol=0),
          f"in the corner (COLMAP) frame the principal point is just c/3: {pp_colmap.tolist()}")

    # --- 3. A 3D point: where does it land after the warp? ---------------------------------------
    X = torch.tensor([[0.31, -0.047, 2.0]], dtype=F64)          # camera frame, metres
    p_src = cam.project(X)[0]                                   # distorted pixel in the source image
    p_expected = transform_points(A, p_src[None])[0]            # the matrix applied to that pixel
    p_new = new_cam.project(X)[0]                               # what the new camera predicts
    print(f"3D point {X[0].tolist()} -> source pixel {p_src.tolist()}")
    check(torch.allclose(p_new, p_expected, atol=1e-9, rtol=0),
          f"new camera projects it to A @ p = {p_expected.tolist()}")

    naive = camwarp.Camera(torch.tensor(740.0, dtype=F64), 740.0, 924.0 / 3, 524.0 / 3, 640, 360, dist=cam.dist)
    p_naive = naive.project(X)[0]
    naive_err = (p_naive - p_new).tolist()
    print(f"naive camera (cx/3, cy/3 in the centre frame) projects to {p_naive.tolist()}: "
          f"off by {naive_err} px")
    check(abs(naive_err[0] - 1 / 3) < 1e-9 and abs(naive_err[1] - 1 / 3) < 1e-9,
          "the naive cx/3 is off by (1 - 1/3)/2 = 1/3 px on each axis")

    # --- 4. The image: a blob at the source pixel, warped by the same matrix ---------------------
    # Channel 0: a checkerboard (for the figure); channel 1: a Gaussian blob at p_src (sigma 9 px).
    blob = gaussian(p_src, (2880, 2160), sigma=9.0)[None]       # (1, 2160, 2880)
    image = torch.cat([checker_image((2880, 2160), 120), blob])  # (2, 2160, 2880)
    box = (x0, y0, 1920, 1080)                                 # crop box: top-left pixel (x0, y0), w, h
    small = camwarp.crop_resize(image, box, (640, 360))         # antialiased separable resize
    # The general warp with the same matrix (Gaussian prefilter; only the blob, to keep this fast).
    warped = camwarp.warp_affine(blob, A.to(torch.float32), (640, 360), antialias=True)
    found_cr = centroid(small[1])
    found_wa = centroid(warped[0])
    print(f"blob centroid after crop_resize: {found_cr.tolist()}; after warp_affine: {found_wa.tolist()}")
    err_cr = (found_cr - p_new).abs().max().item()
    err_wa = (found_wa - p_new).abs().max().item()
    err_naive = (found_cr - p_naive).abs().max().item()
    check(err_cr < 0.02, f"crop_resize puts the blob where the new camera projects the point ({err_cr:.4f} px)")
    check(err_wa < 0.02, f"warp_affine(A) agrees ({err_wa:.4f} px)")
    check(err_naive > 0.3, f"the naive camera misses the blob by {err_naive:.3f} px")

    # --- Figure ---------------------------------------------------------------------------------
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    preview = (image[0] + image[1]).clamp(0, 1)[::4, ::4].numpy()      # every 4th pixel is enough to look at
    axes[0].imshow(preview, cmap="gray", extent=(-0.5, 2879.5, 2159.5, -0.5))
    axes[0].add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), 1920, 1080, fill=False, color="tab:orange", lw=1.5))
    axes[0].plot(*p_src.tolist(), "r+", ms=12)
    axes[0].set_title("source 2880x2160, crop box, projected point")
    axes[1].imshow((small[0] + small[1]).clamp(0, 1).numpy(), cmap="gray", extent=(-0.5, 639.5, 359.5, -0.5))
    axes[1].plot(*p_new.tolist(), "r+", ms=14, label="new camera")
    axes[1].plot(*p_naive.tolist(), "bx", ms=8, label="naive cx/3")
    axes[1].set_xlim(p_new[0].item() - 12, p_new[0].item() + 12)
    axes[1].set_ylim(p_new[1].item() + 8, p_new[1].item() - 8)
    axes[1].legend(loc="lower right")
    axes[1].set_title("640x360 result (zoom on the blob)")
    save_figure(fig, out_dir / "seed_camera.png")
    print("all checks passed")


if __name__ == "__main__":
    main()
