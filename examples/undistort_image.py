"""Undistort an image of a checkerboard into a pinhole camera, keeping all or only valid pixels.

A 256x192 camera with strong barrel distortion (k1 = -0.28) looks at a flat checkerboard; the
script renders that distorted view, then ``camwarp.transforms.undistort`` resamples it into a
distortion-free camera chosen like ``cv2.getOptimalNewCameraMatrix``:

* ``alpha = 0``: the largest pinhole view in which every pixel is valid (no black borders),
* ``alpha = 1``: a wider pinhole view that keeps every source pixel (black borders appear).

Checks: straight lines come out straight (the checkerboard's corners, moved as keypoints, lie on
lines); the undistorted image matches an ideal pinhole rendering of the board; ``alpha = 0`` has
no invalid pixels and ``alpha = 1`` keeps the source's corner pixels; and, when OpenCV is
installed, the new camera equals ``cv2.getOptimalNewCameraMatrix`` and the image ``cv2.undistort``.

Run: ``.venv/bin/python examples/undistort_image.py [--out DIR]``. Exits non-zero if a check fails.
"""

from __future__ import annotations

import math

import torch

import camwarp
from camwarp.transforms import undistort

from _common import check, example_parser, output_dir, pyplot, save_figure

F64 = torch.float64
SIZE = (256, 192)       # (W, H)
SQUARE = 0.125          # checkerboard square, in normalized image units (x = X / Z)


def board(xy: torch.Tensor) -> torch.Tensor:
    """The checkerboard seen at normalized (undistorted) coordinates ``xy`` ``(..., 2)``, values in [0, 1].

    Smooth edges (about a pixel wide) keep the picture band-limited so interpolation errors stay small.
    """
    s = torch.sin(math.pi * xy[..., 0] / SQUARE) * torch.sin(math.pi * xy[..., 1] / SQUARE)
    return 0.5 + 0.5 * torch.tanh(6.0 * s)


def pixel_grid(size: tuple[int, int]) -> torch.Tensor:
    """All pixel centres ``(H * W, 2)`` of an image, row by row (OpenCV centre frame)."""
    W, H = size
    v, u = torch.meshgrid(torch.arange(H, dtype=F64), torch.arange(W, dtype=F64), indexing="ij")
    return torch.stack([u, v], dim=-1).reshape(-1, 2)


def render(cam: camwarp.Camera) -> torch.Tensor:
    """The board as ``cam`` sees it: pixel p shows the board at ``undistort(K^-1 p)``; ``(1, H, W)``."""
    W, H = cam.size
    cam32 = cam.to(dtype=torch.float32)  # float32 is plenty for pixel values (and 8x faster here)
    return board(cam32.undistort_pixels(pixel_grid(cam.size).to(torch.float32))).reshape(1, H, W)


def render_pinhole(K: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The board as a distortion-free camera ``K`` sees it, written out: pixel p shows ``K^-1 p``."""
    W, H = size
    p = pixel_grid(size)
    y = (p[:, 1] - K[1, 2]) / K[1, 1]
    x = (p[:, 0] - K[0, 2] - K[0, 1] * y) / K[0, 0]
    return board(torch.stack([x, y], dim=-1)).reshape(1, H, W)


def line_residual(points: torch.Tensor) -> float:
    """Largest distance (px) of ``points`` ``(N, 2)`` from their least-squares line."""
    centred = points - points.mean(0)
    _, _, Vh = torch.linalg.svd(centred, full_matrices=False)
    return float((centred @ Vh[-1]).abs().max())


def main(argv: list[str] | None = None) -> None:
    args = example_parser(__doc__).parse_args(argv)
    out_dir = output_dir(args.out, "camwarp_undistort_")
    W, H = SIZE

    cam = camwarp.Camera(torch.tensor(160.0, dtype=F64), 160.0, 129.2, 94.7, W, H,
                         dist=[-0.28, 0.08, 0.0005, -0.0008])
    image = render(cam)                                        # (1, H, W): the distorted photo
    # Board corners on a 13 x 9 grid around the optical axis, as keypoints: a row of corners is a
    # straight line on the board, so it must be straight in any pinhole image.
    i, j = torch.meshgrid(torch.arange(-6, 7, dtype=F64), torch.arange(-4, 5, dtype=F64), indexing="ij")
    corners = torch.stack([i, j, torch.ones_like(i) / SQUARE], dim=-1).reshape(-1, 3) * SQUARE   # (117, 3), Z = 1
    n = len(corners)
    kp = cam.project(corners)                                 # (117, 2) distorted pixels
    src_corners = torch.tensor([[0.0, 0.0], [W - 1.0, 0.0], [W - 1.0, H - 1.0], [0.0, H - 1.0]], dtype=F64)
    sample = {"image": image, "mask": torch.ones(H, W, dtype=torch.uint8), "camera": cam,
              "keypoints": torch.cat([kp, src_corners])}
    rows = kp.reshape(13, 9, 2).transpose(0, 1)               # (9 rows of 13 corners, 2)
    bow = max(line_residual(r) for r in rows)
    print(f"source camera: {cam}\nin the distorted image a row of board corners bows by up to {bow:.2f} px")

    # What ignoring the distortion would give: the photo against a pinhole rendering with the same K.
    naive = (image - render_pinhole(cam.K, SIZE)).abs()
    outputs = {}
    print("checks:")
    for alpha in (0.0, 1.0):
        out = undistort(sample, alpha=alpha)
        new_cam = out["camera"]
        outputs[alpha] = out
        print(f"alpha={alpha}: new camera {new_cam}")
        check(not new_cam.has_distortion, f"alpha={alpha}: the new camera has no distortion")
        new_rows = out["keypoints"][:n].reshape(13, 9, 2).transpose(0, 1)
        straight = max(line_residual(r) for r in new_rows)
        check(straight < 1e-6, f"alpha={alpha}: board rows are straight lines ({straight:.1e} px, was {bow:.2f})")
        # The ideal: the board rendered directly in the new pinhole camera.
        ideal = render_pinhole(new_cam.K, new_cam.size)
        valid = out["mask"].bool()
        err = (out["image"] - ideal)[:, valid].abs().mean().item()
        before = naive[:, valid].mean().item()
        check(err < 0.03, f"alpha={alpha}: image == ideal pinhole rendering (mean |diff| {err:.4f}; "
                          f"ignoring the distortion would give {before:.3f})")
        frac = valid.to(F64).mean().item()
        if alpha == 0.0:
            check(frac == 1.0, "alpha=0: every output pixel is valid (no black border)")
        else:
            check(frac < 0.97, f"alpha=1: black borders appear ({100 * (1 - frac):.1f}% of the pixels see "
                               f"nothing of the source)")
            check(bool(out["visibility"][n:].all()), "alpha=1: the source's corner pixels are all kept in view")

        try:
            import cv2  # optional: compare with OpenCV when it is installed
            import numpy as np
        except ImportError:
            continue
        K = cam.K.numpy()
        d = cam.dist.numpy()
        K_cv, _ = cv2.getOptimalNewCameraMatrix(K, d, SIZE, alpha, SIZE)
        dK = np.abs(K_cv - new_cam.K.numpy()).max()
        check(dK < 1e-3, f"alpha={alpha}: new K == cv2.getOptimalNewCameraMatrix ({dK:.1e})")
        img_cv = cv2.undistort(image[0].numpy().astype(np.float32), K, d, None, K_cv)
        inner = valid.clone()
        inner[:2], inner[-2:], inner[:, :2], inner[:, -2:] = False, False, False, False
        dimg = np.abs(img_cv - out["image"][0].numpy())[inner.numpy()].mean()
        check(dimg < 5e-3, f"alpha={alpha}: image == cv2.undistort (mean |diff| {dimg:.1e}; "
                           f"cv2's maps step in 1/32 px)")

    # --- Figure ---------------------------------------------------------------------------------
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    panels = [(image, kp, "distorted input (k1 = -0.28)")]
    panels += [(outputs[a]["image"], outputs[a]["keypoints"][:n], f"undistort, alpha={a:g}") for a in (0.0, 1.0)]
    for ax, (img, pts, title) in zip(axes, panels):
        ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
        for r in pts.reshape(13, 9, 2).transpose(0, 1):
            ax.plot(r[:, 0].numpy(), r[:, 1].numpy(), "r.-", lw=0.8, ms=3)
        ax.set_title(title)
        ax.set_axis_off()
    save_figure(fig, out_dir / "undistort_image.png")
    print("all checks passed")


if __name__ == "__main__":
    main()
