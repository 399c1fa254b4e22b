"""``camwarp stn train|eval``: train and evaluate STN classifiers on distorted MNIST.

Examples::

    camwarp stn train --task rts --model st-cnn --transform affine --epochs 10 --out runs/rts
    camwarp stn train ... --resume                    # continue runs/rts/checkpoint.pt
    camwarp stn eval runs/rts/checkpoint.pt           # reproduce the stored test metrics
    torchrun --nproc-per-node 4 -m camwarp stn train --task rts ... --device cuda   # DDP

Without ``--data-dir`` the embedded 6000-digit subset is used (5000 train / 1000 test).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import CliError
from ._args import nonnegative_int, positive_float, positive_int  # re-exported (demo.py)

__all__ = ["register", "positive_int", "nonnegative_int", "positive_float", "TqdmProgress"]


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..data import TASKS
    from ..train import MODELS, OPTIMIZERS, SCHEDULES, TRANSFORMS

    stn = subparsers.add_parser("stn", help="train and evaluate spatial transformer networks on distorted MNIST",
                                description=__doc__.split("\n\n")[0])
    actions = stn.add_subparsers(dest="stn_command", metavar="ACTION", required=True)

    train = actions.add_parser("train", help="train a classifier (writes checkpoint, metrics.json, figures)")
    train.add_argument("--task", choices=TASKS, default="rts", help="distortion (default rts)")
    train.add_argument("--model", choices=MODELS, default="st-cnn", help="classifier (default st-cnn)")
    train.add_argument("--transform", choices=TRANSFORMS, default="affine",
                       help="spatial transformer family for st-* models (default affine)")
    train.add_argument("--epochs", type=positive_int, default=10)
    train.add_argument("--batch-size", type=positive_int, default=64, help="per process (default 64)")
    train.add_argument("--lr", type=positive_float, default=0.05, help="peak learning rate (default 0.05)")
    train.add_argument("--loc-lr-scale", type=positive_float, default=0.1,
                       help="learning-rate factor of the transformer's parameters (default 0.1)")
    train.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd")
    train.add_argument("--schedule", choices=SCHEDULES, default="cosine")
    train.add_argument("--warmup-epochs", type=float, default=0.0,
                       help="linear learning-rate warm-up, in epochs (default 0)")
    train.add_argument("--weight-decay", type=float, default=0.0)
    train.add_argument("--data-dir", default=None,
                       help="directory of the four original MNIST .gz files (default: the embedded subset)")
    train.add_argument("--download", action="store_true", help="download missing MNIST files into --data-dir")
    train.add_argument("--train-samples", type=positive_int, default=None, help="use the first N training digits")
    train.add_argument("--test-samples", type=positive_int, default=None, help="use the first N test digits")
    train.add_argument("--out", default=None, help="run directory (default runs/TASK-MODEL[-TRANSFORM])")
    train.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default auto)")
    train.add_argument("--seed", type=nonnegative_int, default=0)
    train.add_argument("--workers", type=nonnegative_int, default=0, help="DataLoader worker processes")
    train.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    train.set_defaults(func=_train)

    ev = actions.add_parser("eval", help="evaluate a checkpoint on its test set (or another task's)")
    ev.add_argument("checkpoint", help="checkpoint file or run directory")
    ev.add_argument("--task", choices=TASKS, default=None, help="evaluate on another distortion of the same size")
    ev.add_argument("--data-dir", default="same", help="MNIST directory, 'embedded', or 'same' as the run (default)")
    ev.add_argument("--test-samples", type=positive_int, default=None)
    ev.add_argument("--batch-size", type=positive_int, default=256)
    ev.add_argument("--device", default="auto")
    ev.add_argument("--workers", type=nonnegative_int, default=0)
    ev.add_argument("--json", default=None, help="also write the metrics to this JSON file")
    ev.set_defaults(func=_eval)


class TqdmProgress:
    """The :class:`camwarp.train.TrainProgress` of ``camwarp stn train`` and ``camwarp demo``.

    Draws a tqdm bar per epoch on stderr (loss, accuracy, img/s, refreshed every 10 steps) and
    prints each epoch's summary line. :func:`camwarp.train.fit` calls it on rank 0 only.
    """

    def __init__(self) -> None:
        self._bar: Any = None  # a tqdm bar during an epoch
        self._epochs = 0

    def on_epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        """Open the epoch's bar."""
        from tqdm import tqdm

        self._epochs = epochs
        self._bar = tqdm(total=steps, desc=f"epoch {epoch}/{epochs}", leave=True, dynamic_ncols=True,
                         file=sys.stderr)

    def on_step(self, epoch: int, step: int, steps: int, metrics: Callable[[], dict[str, float]]) -> None:
        """Advance the bar; refresh loss, accuracy and img/s on the first, every 10th and the last step."""
        if step % 10 == 1 or step == steps:  # metrics() waits for the device
            done = metrics()
            self._bar.set_postfix(loss=f"{done['loss']:.3f}", acc=f"{done['acc']:.3f}", img_s=f"{done['img_s']:.0f}")
        self._bar.update(1)
        if step == steps:
            self._bar.close()

    def on_epoch_end(self, entry: dict[str, Any]) -> None:
        """Close the bar and print the epoch's train loss, test error and speed."""
        self._bar.close()
        print(f"epoch {entry['epoch']}/{self._epochs}: train loss {entry['train_loss']:.4f}, test error "
              f"{100 * entry['test_error']:.2f}% ({entry['test_count']} digits), "
              f"{entry['img_per_s']:.0f} img/s", file=sys.stderr)


def _train(args: argparse.Namespace) -> int:
    from ..data import MNISTUnavailableError
    from ..train import TrainConfig, fit

    out = args.out or f"runs/{args.task}-{args.model}" + (f"-{args.transform}" if args.model.startswith("st") else "")
    try:
        cfg = TrainConfig(task=args.task, model=args.model, transform=args.transform, epochs=args.epochs,
                          batch_size=args.batch_size, lr=args.lr, loc_lr_scale=args.loc_lr_scale,
                          optimizer=args.optimizer, schedule=args.schedule, warmup_epochs=args.warmup_epochs,
                          weight_decay=args.weight_decay, data_dir=args.data_dir, download=args.download,
                          train_samples=args.train_samples, test_samples=args.test_samples, seed=args.seed,
                          device=args.device, workers=args.workers, out=out)
        metrics = fit(cfg, resume=args.resume, progress=None if args.no_progress else TqdmProgress(),
                      figures=not args.no_figures)
    except MNISTUnavailableError as err:
        raise CliError(str(err)) from err
    if metrics["test_error"] is not None and os.environ.get("RANK", "0") == "0":  # torchrun: rank 0 reports
        print(f"{cfg.model} on {cfg.task}: test error {100 * metrics['test_error']:.2f}% "
              f"({metrics['test_count']} digits, {metrics['epochs_completed']} epochs); run in {out}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from ..data import MNISTUnavailableError
    from ..train import evaluate_checkpoint

    data_dir = None if args.data_dir == "embedded" else args.data_dir
    try:
        result = evaluate_checkpoint(args.checkpoint, task=args.task, data_dir=data_dir,
                                     test_samples=args.test_samples if args.test_samples else -1,
                                     batch_size=args.batch_size, device=args.device, workers=args.workers)
    except MNISTUnavailableError as err:
        raise CliError(str(err)) from err
    line = (f"{result['task']}: test error {100 * result['test_error']:.2f}%, loss {result['test_loss']:.4f} "
            f"({result['test_count']} digits, checkpoint epoch {result['checkpoint_epoch']})")
    if result["stored"] is not None:
        line += f"; recorded at training: {100 * result['stored']['test_error']:.2f}%"
    print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    sys.stdout.flush()
    return 0
