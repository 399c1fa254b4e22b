"""PNG figures of a run: input digits beside the spatial transformer's output, and learning curves."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["save_rectification", "save_learning_curve"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


@torch.no_grad()
def save_rectification(model: nn.Module, images: Tensor, path: str | os.PathLike, title: str = "",
                       labels: Tensor | None = None) -> None:
    """Save a grid of pairs: each input digit, then the model's transformer output for it.

    Args:
        model: a classifier; its ``.transformer`` (when present) makes the right-hand images,
            otherwise the inputs are shown alone.
        images: ``(N, 1, H, W)`` inputs (``N`` up to 32 is readable).
        path: PNG file.
        title: figure title.
        labels: ``(N,)`` true classes, printed above the inputs.
    """
    plt = _pyplot()
    transformer = getattr(model, "transformer", None)
    was_training = model.training
    model.eval()
    outputs = transformer(images) if transformer is not None else None
    logits = model(images)
    model.train(was_training)
    pred = logits.argmax(dim=1).cpu()
    n = images.shape[0]
    cols = 8
    rows = (n + cols - 1) // cols
    per = 2 if outputs is not None else 1
    fig, axes = plt.subplots(rows, cols * per, figsize=(cols * per * 0.9, rows * 1.05), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        r, c = divmod(i, cols)
        ax = axes[r][c * per]
        ax.imshow(images[i, 0].float().cpu().numpy(), cmap="gray", vmin=0, vmax=1)
        text = f"{int(labels[i])}->{int(pred[i])}" if labels is not None else f"->{int(pred[i])}"
        ax.set_title(text, fontsize=7, color="black" if labels is None or labels[i] == pred[i] else "red")
        if outputs is not None:
            axes[r][c * per + 1].imshow(outputs[i, 0].float().cpu().numpy(), cmap="gray", vmin=0, vmax=1)
            axes[r][c * per + 1].set_title("ST out", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_learning_curve(history: Sequence[dict], path: str | os.PathLike, title: str = "") -> None:
    """Save training loss and train/test error (%) per epoch from a run's ``history`` list."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3))
    ax1.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    ax1.plot(epochs, [h["test_loss"] for h in history], "s-", label="test")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("cross-entropy")
    ax1.legend()
    ax2.plot(epochs, [100 * h["train_error"] for h in history], "o-", label="train")
    ax2.plot(epochs, [100 * h["test_error"] for h in history], "s-", label="test")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("error (%)")
    ax2.set_yscale("log")
    ax2.legend()
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
