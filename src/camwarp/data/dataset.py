"""A torch ``Dataset`` of distorted MNIST digits, distorted in batches, deterministic per digit.

Digit ``i`` of epoch ``e`` is distorted with parameters drawn from
``torch.Generator().manual_seed(sample_seed(seed, e, i))``: the data depend only on
``(seed, epoch, index)``, never on batch composition, ``num_workers`` or the number of DDP
processes, so runs resume and scale exactly. ``DataLoader`` fetches a whole batch through
``__getitems__``, which warps it in one call.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset

from .. import _checks
from .distort import OUT_SIZE, TASKS, distort_indexed, sample_seed
from .mnist import load_mnist, load_subset

__all__ = ["DistortedMNIST", "subset_split", "load_split", "SUBSET_TRAIN", "TEST_SEED"]

SUBSET_TRAIN = 5000  # the embedded subset: first 5000 digits train, the rest test
TEST_SEED = 20150605  # fixed test distortions, shared by every run (the STN paper's arXiv date)


class DistortedMNIST(Dataset):
    """Canonical digits distorted on the fly by task ``task``.

    Args:
        images: ``(N, 28, 28)`` uint8 canonical digits.
        labels: ``(N,)`` int64 class labels.
        task: one of :data:`camwarp.data.TASKS`.
        seed: base seed of the distortions.
        epoch: epoch whose distortions are served (set :attr:`epoch` before each epoch for fresh
            training distortions; keep it fixed for a test set).
        pool: digits clutter is cut from (default ``images``).

    Items are dicts ``{"image": (1, H', W') float32, "label": int64, "matrix": (3, 3) float64,
    "index": int64}`` (see :class:`camwarp.data.Distorted`).

    Example:
        >>> from camwarp.data import load_subset
        >>> ds = DistortedMNIST(*load_subset(), task="rts", seed=0)
        >>> tuple(ds[3]["image"].shape), len(ds)
        ((1, 42, 42), 6000)
    """

    def __init__(self, images: Tensor, labels: Tensor, task: str, seed: int = 0, epoch: int = 0,
                 pool: Tensor | None = None) -> None:
        fn = "DistortedMNIST"
        _checks.check_choice(task, fn, "task", TASKS)
        _checks.check_shape(images, fn, "images", "N 28 28")
        _checks.check_shape(labels, fn, "labels", "N")
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"{fn}: images and labels must have the same length, got {images.shape[0]} "
                             f"and {labels.shape[0]}")
        self.images, self.labels, self.task = images, labels.long(), task
        self.seed, self.epoch = int(seed), int(epoch)
        self.pool = images if pool is None else pool
        self.size = OUT_SIZE[task]

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[dict[str, Tensor]]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        seeds = [sample_seed(self.seed, self.epoch, int(i)) for i in indices]
        out = distort_indexed(self.images[idx], self.task, seeds, self.pool)
        return [{"image": out.image[j], "label": self.labels[i], "matrix": out.matrix[j], "index": idx[j]}
                for j, i in enumerate(indices)]


def subset_split() -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """Return ``((train_images, train_labels), (test_images, test_labels))`` of the embedded subset.

    The first :data:`SUBSET_TRAIN` (5000) digits train, the remaining 1000 test; all come from
    the official MNIST test split, so these numbers are not comparable with full-MNIST ones.
    """
    images, labels = load_subset()
    return (images[:SUBSET_TRAIN], labels[:SUBSET_TRAIN]), (images[SUBSET_TRAIN:], labels[SUBSET_TRAIN:])


def load_split(data_dir: str | None, split: str, limit: int | None = None,
               download: bool = False) -> tuple[Tensor, Tensor]:
    """Return the canonical digits of a split: from ``data_dir`` (MNIST files) or the embedded subset.

    Args:
        data_dir: directory of the four MNIST files; ``None`` (or ``"embedded"``) for the subset.
        split: ``"train"`` or ``"test"``.
        limit: keep only the first ``limit`` digits (``None``: all).
        download: fetch missing MNIST files into ``data_dir`` (see :func:`camwarp.data.load_mnist`).

    Returns:
        ``(images uint8 (N, 28, 28), labels int64 (N,))``.
    """
    if data_dir in (None, "embedded"):
        train, test = subset_split()
        images, labels = train if split == "train" else test
    else:
        images, labels = load_mnist(data_dir, split, download=download)
    if limit is not None:
        if limit <= 0:
            raise ValueError(f"load_split: limit must be positive, got {limit}")
        images, labels = images[:limit], labels[:limit]
    return images, labels
