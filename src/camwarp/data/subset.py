"""Make the MNIST subset embedded in the package: ``python -m camwarp.data.subset MNIST_DIR``.

Draws ``--count`` digits (default 6000) from the official *test* split, class-balanced and in a
seeded random order (``--seed``, default 0), and writes ``images`` (``uint8 (N, 28, 28)``),
``labels`` (``uint8 (N,)``) and ``indices`` (positions in ``t10k-*``) to a compressed npz (default:
the package's ``mnist_subset.npz``, about 1 MB). The demo trains on the first 5/6 and tests on
the last 1/6 (:func:`camwarp.data.subset_split`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .mnist import SUBSET_PATH, load_mnist

__all__ = ["make_subset", "main"]


def make_subset(mnist_dir: str | Path, count: int = 6000, seed: int = 0,
                out: str | Path = SUBSET_PATH) -> Path:
    """Write ``count`` class-balanced test digits of the MNIST files in ``mnist_dir`` to ``out``.

    Args:
        mnist_dir: directory with the original (MD5-checked) gzip IDX files.
        count: number of digits, a multiple of 10 (``count // 10`` per class), at most 8920.
        seed: seed of the ``torch.Generator`` that picks and orders them.
        out: npz path.

    Returns:
        ``out`` as a Path.

    Raises:
        ValueError: ``count`` not a positive multiple of 10 or larger than the rarest class allows.
    """
    if count <= 0 or count % 10 or count // 10 > 892:  # 892 = count of the rarest test class (5)
        raise ValueError(f"make_subset: count must be a positive multiple of 10 up to 8920, got {count}")
    images, labels = load_mnist(mnist_dir, "test")
    gen = torch.Generator().manual_seed(seed)
    picked = []
    for digit in range(10):
        idx = torch.nonzero(labels == digit).flatten()
        picked.append(idx[torch.randperm(len(idx), generator=gen)[: count // 10]])
    chosen = torch.cat(picked)
    chosen = chosen[torch.randperm(len(chosen), generator=gen)]
    out = Path(out)
    np.savez_compressed(out, images=images[chosen].numpy(), labels=labels[chosen].numpy().astype(np.uint8),
                        indices=chosen.numpy().astype(np.int32))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m camwarp.data.subset", description=__doc__.split("\n\n")[0])
    parser.add_argument("mnist_dir", help="directory with the four original MNIST .gz files")
    parser.add_argument("--count", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(SUBSET_PATH))
    args = parser.parse_args(argv)
    path = make_subset(args.mnist_dir, args.count, args.seed, args.out)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
