"""torch's ``theta`` and camwarp's pixel matrices are the same transform: convert exactly, both ways.

``F.affine_grid(theta, ...)`` maps *output* normalized coordinates to *input* normalized
coordinates (dst->src, in [-1, 1], where the +-1 are the image edges for ``align_corners=False``
and the outer pixel centres for ``True``). camwarp's matrix ``A`` maps *source* pixels to
*destination* pixels (OpenCV centre frame). With ``N_s`` the pixel->normalized matrix of size s:

    theta = N_in @ A^-1 @ N_out^-1          A = (N_in^-1 @ theta @ N_out)^-1

For both ``align_corners`` values the script

1. converts a rotation + zoom about a point to theta and back (round trip to 1e-12),
2. warps an image with ``F.affine_grid`` + ``F.grid_sample`` and with ``camwarp.warp_affine(A)``
   (the same image, to 1e-5; the pixel matrix does not depend on ``align_corners``),
3. checks what the grid means: ``affine_grid``'s point for output pixel p, de-normalized, is ``A^-1 p``,

and does the 3-D case (``theta`` ``(3, 4)``, ``warp_affine3d``) once.

Run: ``.venv/bin/python examples/theta_and_pixels.py [--out DIR]``. Exits non-zero if a check fails.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import camwarp
from camwarp.geometry import (affine_matrix, denormalize_matrix, invert, matrix_to_theta, theta_to_matrix,
                              transform_points)

from _common import check, example_parser, output_dir, pyplot, save_figure

F64 = torch.float64
IN_SIZE, OUT_SIZE = (61, 47), (40, 33)   # (W, H): deliberately odd and different


def pattern(size: tuple[int, int]) -> torch.Tensor:
    """A ``(1, 3, H, W)`` float64 test image: rings plus a diagonal gradient."""
    W, H = size
    v, u = torch.meshgrid(torch.arange(H, dtype=F64), torch.arange(W, dtype=F64), indexing="ij")
    r = ((u - 0.4 * W) ** 2 + (v - 0.6 * H) ** 2).sqrt()
    return torch.stack([0.5 + 0.5 * torch.cos(r / 2.0), (u + v) / (W + H), (u % 8 < 4).to(F64)])[None]


def main(argv: list[str] | None = None) -> None:
    args = example_parser(__doc__).parse_args(argv)
    out_dir = output_dir(args.out, "camwarp_theta_")

    image = pattern(IN_SIZE)                                               # (1, 3, 47, 61)
    # A src->dst pixel map: rotate 25 degrees and zoom 1.3x about source pixel (30, 20), then move it
    # to the output's centre area.
    A = affine_matrix(25.0, (-11.0, -4.0), 1.3, (0.0, 0.0), (30.0, 20.0), dtype=F64)
    print("pixel matrix A (src->dst):\n", A)
    results = {}
    for align_corners in (False, True):
        print(f"align_corners={align_corners}:")
        theta = matrix_to_theta(A, IN_SIZE, OUT_SIZE, align_corners=align_corners)       # (2, 3)
        print("  theta (dst->src, normalized):", [[round(x, 5) for x in row] for row in theta.tolist()])
        back = theta_to_matrix(theta, IN_SIZE, OUT_SIZE, align_corners=align_corners)
        check(torch.allclose(back, A, atol=1e-12, rtol=0), "theta_to_matrix(matrix_to_theta(A)) == A")

        # torch's sampler with theta vs camwarp's with A, for zeros and border padding.
        W2, H2 = OUT_SIZE
        grid = F.affine_grid(theta[None], [1, 3, H2, W2], align_corners=align_corners)  # (1, H', W', 2)
        for padding_mode in ("zeros", "border"):
            by_torch = F.grid_sample(image, grid, mode="bilinear", padding_mode=padding_mode,
                                     align_corners=align_corners)
            by_camwarp = camwarp.warp_affine(image, A, OUT_SIZE, padding_mode=padding_mode)
            diff = (by_torch - by_camwarp).abs().max().item()
            check(diff < 1e-5, f"grid_sample(affine_grid(theta)) == warp_affine(A), {padding_mode} ({diff:.1e})")
            results[(align_corners, padding_mode)] = by_torch

        # The meaning of the grid: output pixel p reads input point A^-1 p.
        v, u = torch.meshgrid(torch.arange(H2, dtype=F64), torch.arange(W2, dtype=F64), indexing="ij")
        p_out = torch.stack([u, v], dim=-1).reshape(-1, 2)                                 # (H' W', 2)
        read_at = transform_points(denormalize_matrix(IN_SIZE, align_corners, dtype=F64), grid.reshape(-1, 2))
        expect = transform_points(invert(A), p_out)
        check(torch.allclose(read_at, expect, atol=1e-9, rtol=0), "denormalized affine_grid point == A^-1 p")

    # The flag matters for a hand-written theta: 0.5 I from an 8x8 input to a 4x4 output is the exact
    # central 4x4 crop with align_corners=False (edges +-1 -> +-0.5), but with True it resamples
    # between pixel centres 1.75 .. 5.25 (centres +-1 -> +-0.5): a 6/7 zoom, not a crop.
    half = torch.tensor([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]], dtype=F64)
    A_false = theta_to_matrix(half, (8, 8), (4, 4), align_corners=False)
    A_true = theta_to_matrix(half, (8, 8), (4, 4), align_corners=True)
    print("theta = 0.5 I, 8x8 -> 4x4, align_corners=False:\n", A_false, "\nalign_corners=True:\n", A_true)
    check(torch.allclose(A_false, torch.tensor([[1.0, 0, -2], [0, 1, -2], [0, 0, 1]], dtype=F64), atol=1e-12),
          "align_corners=False: u' = u - 2 (the central 4x4 crop)")
    check(torch.allclose(A_true, torch.tensor([[6 / 7, 0, -1.5], [0, 6 / 7, -1.5], [0, 0, 1]], dtype=F64), atol=1e-12),
          "align_corners=True: u' = (6/7)(u - 1.75)")

    # 3-D: a (3, 4) theta and warp_affine3d.
    vol = torch.rand(1, 2, 9, 11, 13, dtype=F64)                                         # (N, C, D, H, W)
    A3 = torch.eye(4, dtype=F64)
    A3[:3, :3] = torch.linalg.matrix_exp(torch.tensor([[0, -0.3, 0.1], [0.3, 0, -0.2], [-0.1, 0.2, 0]], dtype=F64))
    A3[:3, 3] = torch.tensor([1.5, -0.7, 0.4], dtype=F64)
    out3 = (10, 12, 8)                                                                    # (W', H', D')
    theta3 = matrix_to_theta(A3, (13, 11, 9), out3)                                      # (3, 4)
    grid3 = F.affine_grid(theta3[None], [1, 2, out3[2], out3[1], out3[0]], align_corners=False)
    by_torch3 = F.grid_sample(vol, grid3, mode="bilinear", align_corners=False)
    diff3 = (by_torch3 - camwarp.warp_affine3d(vol, A3, out3)).abs().max().item()
    check(diff3 < 1e-10, f"3-D: grid_sample(affine_grid(theta (3, 4))) == warp_affine3d(A (4, 4)) ({diff3:.1e})")

    # --- Figure ---------------------------------------------------------------------------------
    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.2))
    axes[0].imshow(image[0].permute(1, 2, 0).numpy())
    axes[0].set_title(f"input {IN_SIZE[0]}x{IN_SIZE[1]}")
    corners = transform_points(invert(A), torch.tensor([[-0.5, -0.5], [OUT_SIZE[0] - 0.5, -0.5],
                                                        [OUT_SIZE[0] - 0.5, OUT_SIZE[1] - 0.5],
                                                        [-0.5, OUT_SIZE[1] - 0.5], [-0.5, -0.5]], dtype=F64))
    axes[0].plot(corners[:, 0].numpy(), corners[:, 1].numpy(), "w-")
    for ax, ac in zip(axes[1:3], (False, True)):
        ax.imshow(results[(ac, "zeros")][0].permute(1, 2, 0).clamp(0, 1).numpy())
        ax.set_title(f"grid_sample, align_corners={ac}")
    by_camwarp = camwarp.warp_affine(image, A, OUT_SIZE)
    axes[3].imshow(by_camwarp[0].permute(1, 2, 0).clamp(0, 1).numpy())
    axes[3].set_title("camwarp.warp_affine(A)")
    save_figure(fig, out_dir / "theta_and_pixels.png")
    print("all checks passed")


if __name__ == "__main__":
    main()
