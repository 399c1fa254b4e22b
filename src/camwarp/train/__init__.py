"""Training and evaluation of the STN paper's distorted-MNIST classifiers (CNN, FCN, ST-CNN, ST-FCN).

:func:`fit` trains a :class:`TrainConfig` (checkpoints that resume exactly, ``metrics.json``,
PNG figures, DDP under ``torchrun``) and reports to optional :class:`TrainProgress` hooks;
:func:`evaluate_checkpoint` reproduces a run's test metrics from its checkpoint.
``camwarp stn train|eval`` and ``camwarp demo`` call these (and draw the progress bars).
"""

from __future__ import annotations

from .checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from .config import MODELS, OPTIMIZERS, SCHEDULES, TRANSFORMS, TrainConfig
from .figures import save_learning_curve, save_rectification
from .loop import METRICS_NAME, build_classifier, build_datasets, evaluate, evaluate_checkpoint, fit
from .progress import TrainProgress

__all__ = [
    "CHECKPOINT_NAME", "METRICS_NAME", "MODELS", "OPTIMIZERS", "SCHEDULES", "TRANSFORMS", "TrainConfig",
    "TrainProgress", "build_classifier", "build_datasets", "evaluate", "evaluate_checkpoint", "fit",
    "load_checkpoint", "save_checkpoint", "save_learning_curve", "save_rectification",
]
