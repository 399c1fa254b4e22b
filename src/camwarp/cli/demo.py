"""``camwarp demo``: a few CPU minutes showing both halves of camwarp.

1. Trains an ST-CNN (affine) on RTS-distorted digits of the embedded MNIST subset (5000 train,
   1000 test), prints its test error and writes ``rectification.png`` (each input digit beside
   the transformer's output) and ``learning_curve.png`` to ``--out``.
2. Prints the seed camera example: a 2880x2160 camera (fx = fy = 2220, cx = 1404, cy = 1064,
   k1 = -0.00344584, k2 = 0.120934), centre-cropped to 1920x1080, resized to 640x360.
"""

from __future__ import annotations

import argparse

from .stn import nonnegative_int, positive_int

__all__ = ["register", "camera_example"]


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser("demo", help="train a small ST-CNN on embedded digits and show the seed camera "
                                 "example", description=__doc__.split("\n\n")[0])
    demo.add_argument("--out", default="camwarp-demo", help="output directory (default ./camwarp-demo)")
    demo.add_argument("--epochs", type=positive_int, default=6, help="training epochs (default 6)")
    demo.add_argument("--seed", type=nonnegative_int, default=0)
    demo.add_argument("--device", default="auto", help="auto, cpu, cuda (default auto)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.add_argument("--skip-training", action="store_true", help="only print the camera example")
    demo.set_defaults(func=_demo)


def camera_example() -> str:
    """Return the seed camera example as printable text (float64 throughout)."""
    import torch

    from ..camera import Camera

    f64 = torch.float64
    cam = Camera(torch.tensor(2220.0, dtype=f64), torch.tensor(2220.0, dtype=f64), torch.tensor(1404.0, dtype=f64),
                 torch.tensor(1064.0, dtype=f64), 2880, 2160, dist=torch.tensor([-0.00344584, 0.120934], dtype=f64))
    cropped = cam.center_crop(1920, 1080)
    small = cropped.resize(640, 360)
    lines = ["Seed camera example (OpenCV pixel-centre frame):"]
    for name, c in (("original 2880x2160", cam), ("center_crop(1920, 1080)", cropped), ("resize(640, 360)", small)):
        fx, fy, cx, cy = (float(v) for v in (c.K[0, 0], c.K[1, 1], c.K[0, 2], c.K[1, 2]))
        dist = ", ".join(f"{float(d):.8g}" for d in c.dist)
        lines.append(f"  {name:<24} size {c.size[0]}x{c.size[1]}  fx={fx:.6f} fy={fy:.6f} cx={cx:.6f} "
                     f"cy={cy:.6f}  dist=[{dist}]")
    cx_corner = (float(small.K[0, 2]) + 0.5, float(small.K[1, 2]) + 0.5)
    lines.append(f"  (corner frame, e.g. COLMAP: cx={cx_corner[0]:.6f} cy={cx_corner[1]:.6f} = 924.5/3, 524.5/3; "
                 "the naive cx/3 is exact only there)")
    return "\n".join(lines)


def _demo(args: argparse.Namespace) -> int:
    import time

    if not args.skip_training:
        from ..train import TrainConfig, fit
        from .stn import TqdmProgress

        # lr 0.05 after one warm-up epoch: at 0.1 the ST-CNN can collapse on 5000 digits.
        cfg = TrainConfig(task="rts", model="st-cnn", transform="affine", epochs=args.epochs, lr=0.05,
                          warmup_epochs=1.0, seed=args.seed, device=args.device, out=args.out)
        t0 = time.perf_counter()
        metrics = fit(cfg, progress=None if args.no_progress else TqdmProgress())
        print(f"ST-CNN (affine) on RTS digits, embedded subset: test error {100 * metrics['test_error']:.2f}% on "
              f"{metrics['test_count']} digits after {metrics['epochs_completed']} epochs "
              f"({time.perf_counter() - t0:.0f} s)")
        print(f"figures: {args.out}/rectification.png (input | ST output), {args.out}/learning_curve.png")
    print(camera_example())
    return 0
