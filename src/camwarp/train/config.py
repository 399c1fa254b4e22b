"""The settings of one STN training run, validated once, stored in every checkpoint and metrics JSON."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .. import _checks
from ..data import TASKS

__all__ = ["TrainConfig", "MODELS", "TRANSFORMS", "OPTIMIZERS", "SCHEDULES"]

MODELS = ("cnn", "fcn", "st-cnn", "st-fcn")
TRANSFORMS = ("translation", "scale_translation", "similarity", "affine", "projective", "tps")
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("cosine", "step", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """One run: the task, the model, the optimisation, the data and where it goes.

    Attributes:
        task: distortion, one of ``none, r, rts, p, e, cluttered`` (:data:`camwarp.data.TASKS`).
        model: ``cnn``, ``fcn``, ``st-cnn`` or ``st-fcn`` (:func:`camwarp.stn.build_model`).
        transform: the spatial transformer's family (ignored by ``cnn``/``fcn``).
        epochs: passes over the training digits (each with fresh distortions).
        batch_size: digits per step and process (DDP: per GPU).
        lr: peak learning rate. ``loc_lr_scale`` multiplies it for the transformer's parameters.
        optimizer: ``sgd`` (momentum 0.9, Nesterov) or ``adam``; ``weight_decay`` for both.
        schedule: ``cosine`` (to 0 over all steps), ``step`` (x0.1 at 50% and 75%), ``constant``;
            each after ``warmup_epochs`` of linear warm-up (may be fractional).
        data_dir: directory of the four MNIST files, or ``None`` for the embedded subset.
        download: fetch missing MNIST files into ``data_dir``.
        train_samples / test_samples: keep only the first N digits of each split (``None``: all).
        seed: seeds the model initialisation, the shuffling and the training distortions (the test
            distortions use :data:`camwarp.data.TEST_SEED` for every run).
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1``...
        workers: ``DataLoader`` worker processes.
        out: run directory (checkpoint, metrics JSON, figures).

    Raises:
        ValueError / TypeError: an unknown choice or a bad number, naming the field.

    Example:
        >>> cfg = TrainConfig(task="p", model="st-fcn", transform="projective", epochs=2)
        >>> cfg.replace(epochs=5).epochs, TrainConfig.from_dict(cfg.to_dict()) == cfg
        (5, True)
    """

    task: str = "rts"
    model: str = "st-cnn"
    transform: str = "affine"
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.05
    loc_lr_scale: float = 0.1
    optimizer: str = "sgd"
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    data_dir: str | None = None
    download: bool = False
    train_samples: int | None = None
    test_samples: int | None = None
    seed: int = 0
    device: str = "auto"
    workers: int = 0
    out: str = "runs/stn"

    def __post_init__(self) -> None:
        fn = "TrainConfig"
        _checks.check_choice(self.task, fn, "task", TASKS)
        _checks.check_choice(self.model, fn, "model", MODELS)
        _checks.check_choice(self.transform, fn, "transform", TRANSFORMS)
        _checks.check_choice(self.optimizer, fn, "optimizer", OPTIMIZERS)
        _checks.check_choice(self.schedule, fn, "schedule", SCHEDULES)
        for name in ("epochs", "batch_size"):
            _positive_int(getattr(self, name), fn, name)
        for name in ("train_samples", "test_samples"):
            if getattr(self, name) is not None:
                _positive_int(getattr(self, name), fn, name)
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0:
            raise ValueError(f"{fn}: workers must be an int >= 0, got {self.workers!r}")
        _checks.check_finite_number(self.lr, fn, "lr", positive=True)
        _checks.check_finite_number(self.loc_lr_scale, fn, "loc_lr_scale", positive=True)
        if _checks.check_finite_number(self.weight_decay, fn, "weight_decay") < 0:
            raise ValueError(f"{fn}: weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 <= _checks.check_finite_number(self.warmup_epochs, fn, "warmup_epochs") <= self.epochs:
            raise ValueError(f"{fn}: warmup_epochs must be in [0, epochs], got {self.warmup_epochs}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a stored dict, ignoring keys this version does not know."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def _positive_int(value: object, fn: str, name: str) -> int:
    return _checks.check_int(value, fn, name, minimum=1)
