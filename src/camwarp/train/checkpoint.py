"""Checkpoints that resume exactly: model, optimizer, schedule, RNG state, history and config.

A checkpoint is a plain dict of tensors, numbers, strings and lists, saved with ``torch.save``
(written to a temporary file, then renamed, so a crash never leaves half a file) and read back
with ``torch.load(weights_only=True)``: loading one never runs code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

__all__ = ["CHECKPOINT_NAME", "FORMAT", "save_checkpoint", "load_checkpoint"]

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT = "camwarp-stn-checkpoint/1"


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` (plus the format tag) atomically to ``path``; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": FORMAT, **state}, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Args:
        path: a checkpoint file, or a run directory holding ``checkpoint.pt``.
        map_location: where tensors are loaded (default CPU).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a camwarp STN checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.exists():
        raise FileNotFoundError(f"load_checkpoint: no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # unpickling errors have many types; report them as one
        raise ValueError(f"load_checkpoint: {path} is not a readable checkpoint ({type(err).__name__}: {err})") \
            from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"load_checkpoint: {path} is not a camwarp STN checkpoint (format {FORMAT!r})")
    return state
