"""Distorted-MNIST data for the STN experiments: MNIST reader, generators, dataset, embedded subset.

- :func:`load_mnist` reads the original gzip IDX files (MD5-checked, optional download);
  :func:`load_subset` returns 6000 real test digits shipped in the package.
- :func:`distort` / :func:`distort_indexed` make the STN paper's R, RTS, P, E and cluttered
  digits with camwarp's own warps and return each digit's src->dst pixel matrix.
- :class:`DistortedMNIST` serves them to a ``DataLoader``, deterministic per ``(seed, epoch, index)``.
"""

from __future__ import annotations

from .dataset import SUBSET_TRAIN, TEST_SEED, DistortedMNIST, load_split, subset_split
from .distort import (OUT_SIZE, TASKS, Distorted, apply_distortion, distort, distort_indexed, sample_params,
                      sample_seed)
from .mnist import (MIRRORS, MNIST_FILES, SUBSET_PATH, MNISTUnavailableError, default_cache_dir,
                    download_mnist, load_mnist, load_subset, md5sum, read_idx)

__all__ = [
    "MIRRORS", "MNIST_FILES", "SUBSET_PATH", "SUBSET_TRAIN", "TEST_SEED", "OUT_SIZE", "TASKS",
    "Distorted", "DistortedMNIST", "MNISTUnavailableError", "apply_distortion", "default_cache_dir",
    "distort", "distort_indexed", "download_mnist", "load_mnist", "load_split", "load_subset", "md5sum",
    "read_idx", "sample_params", "sample_seed", "subset_split",
]
