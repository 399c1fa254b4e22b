"""Progress hooks of :func:`camwarp.train.fit`: the loop reports, the caller draws or logs.

The library draws nothing (STYLE.md: progress bars live in the CLI). :func:`~camwarp.train.fit`
calls a :class:`TrainProgress` on the main process (rank 0 under DDP) at the start of every epoch,
after every optimiser step and once the epoch is evaluated; ``camwarp stn train`` and
``camwarp demo`` pass one that draws a tqdm bar per epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["TrainProgress"]


class TrainProgress:
    """Hooks called by :func:`~camwarp.train.fit` as training goes; each does nothing here.

    Subclass and override the hooks you need (any object with these three methods works).
    Epochs and steps count from 1. Only the main process (rank 0) is called.

    Example:
        >>> class Log(TrainProgress):
        ...     def on_epoch_end(self, entry):
        ...         print(entry["epoch"], entry["test_error"])
    """

    def on_epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        """Epoch ``epoch`` of ``epochs`` begins; it takes ``steps`` optimiser steps."""

    def on_step(self, epoch: int, step: int, steps: int, metrics: Callable[[], dict[str, float]]) -> None:
        """Step ``step`` of ``steps`` of epoch ``epoch`` is done.

        ``metrics()`` returns the epoch's running ``{"loss", "acc", "img_s"}`` (mean cross-entropy and
        accuracy over this process's digits so far; images per second over all processes). It waits
        for the device, so call it only on the steps you show.
        """

    def on_epoch_end(self, entry: dict[str, Any]) -> None:
        """The epoch is trained, evaluated and about to be checkpointed.

        ``entry`` is its ``history`` record: ``epoch``, ``train_loss``, ``train_error``,
        ``img_per_s``, ``seconds``, ``lr``, ``test_loss``, ``test_error``, ``test_count``.
        """
