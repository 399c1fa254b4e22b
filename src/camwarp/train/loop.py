"""Train and evaluate the STN paper's MNIST classifiers on distorted digits.

:func:`fit` runs a :class:`~camwarp.train.TrainConfig`: it builds the model with
:func:`camwarp.stn.build_model`, serves :class:`camwarp.data.DistortedMNIST` (fresh distortions
every epoch, a fixed test set), reports progress to optional :class:`~camwarp.train.TrainProgress`
hooks (the CLI's draw tqdm bars), saves a checkpoint after every epoch (``--resume`` continues bit for
bit), and writes ``metrics.json`` and PNG figures to the run directory. Under ``torchrun`` it
trains with DDP. :func:`evaluate` computes test loss and error; :func:`evaluate_checkpoint`
rebuilds a run from its checkpoint.
"""

from __future__ import annotations

import json
import math
import platform
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from .. import __version__
from ..data import OUT_SIZE, TEST_SEED, DistortedMNIST, load_split, sample_seed
from . import distributed
from .checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .figures import save_learning_curve, save_rectification
from .progress import TrainProgress

__all__ = ["fit", "evaluate", "evaluate_checkpoint", "build_classifier", "build_datasets", "METRICS_NAME"]

METRICS_NAME = "metrics.json"
# Settings a resumed run may change; any other difference from the checkpoint is refused.
_RESUMABLE_CHANGES = {"epochs", "device", "workers", "out", "data_dir", "download"}


class _EpochShuffle(Sampler[int]):
    """A permutation of ``range(n)`` that depends only on ``(seed, epoch)``."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        gen = torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, -1))
        return iter(torch.randperm(self.n, generator=gen).tolist())


def build_classifier(cfg: TrainConfig) -> nn.Module:
    """The run's model: ``camwarp.stn.build_model(cfg.model, cfg.transform, in_size=OUT_SIZE[cfg.task])``."""
    from ..stn import build_model

    return build_model(cfg.model, cfg.transform, in_size=OUT_SIZE[cfg.task], in_channels=1, num_classes=10)


def build_datasets(cfg: TrainConfig) -> tuple[DistortedMNIST, DistortedMNIST]:
    """``(train, test)`` datasets of the run: training distortions seeded by ``cfg.seed``, the test
    set's by :data:`camwarp.data.TEST_SEED` (the same for every run)."""
    train = DistortedMNIST(*load_split(cfg.data_dir, "train", cfg.train_samples, cfg.download), cfg.task,
                           seed=cfg.seed)
    test = DistortedMNIST(*load_split(cfg.data_dir, "test", cfg.test_samples, cfg.download), cfg.task,
                          seed=TEST_SEED)
    return train, test


def _loader(dataset: Dataset, batch_size: int, sampler: Any, workers: int) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      generator=torch.Generator().manual_seed(0), persistent_workers=False)


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Dataset, batch_size: int = 256, device: torch.device | str = "cpu",
             info: distributed.DistInfo | None = None, workers: int = 0) -> dict[str, float]:
    """Return ``{"test_loss", "test_error", "test_count"}`` of ``model`` on all of ``dataset``.

    Under DDP each process takes every ``world_size``-th digit and the sums are all-reduced, so
    the result equals a single-process evaluation.
    """
    rank, world = (info.rank, info.world_size) if info is not None else (0, 1)
    was_training = model.training
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, count
    for batch in _loader(dataset, batch_size, list(range(rank, len(dataset), world)), workers):
        x, y = batch["image"].to(device), batch["label"].to(device)
        logits = model(x)
        sums += torch.stack([F.cross_entropy(logits, y, reduction="sum").double(),
                             (logits.argmax(1) == y).sum().double(), torch.tensor(float(len(y)), device=device,
                                                                                   dtype=torch.float64)])
    model.train(was_training)
    if info is not None:
        sums = distributed.all_sum(sums, info)
    loss, correct, count = sums.tolist()
    return {"test_loss": loss / max(count, 1), "test_error": 1 - correct / max(count, 1), "test_count": int(count)}


def _optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    transformer = getattr(model, "transformer", None)
    loc = {id(p) for p in transformer.parameters()} if isinstance(transformer, nn.Module) else set()
    groups = [{"params": [p for p in model.parameters() if id(p) not in loc], "lr": cfg.lr}]
    if loc:
        groups.append({"params": [p for p in model.parameters() if id(p) in loc], "lr": cfg.lr * cfg.loc_lr_scale})
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)


def _schedule(cfg: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int, last_step: int = -1):
    total, warm = cfg.epochs * steps_per_epoch, cfg.warmup_epochs * steps_per_epoch

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = (step - warm) / max(total - warm, 1)
        if cfg.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
        if cfg.schedule == "step":
            return 1.0 if t < 0.5 else 0.1 if t < 0.75 else 0.01
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor, last_epoch=last_step)


def _check_resume(cfg: TrainConfig, stored: dict[str, Any]) -> None:
    differ = [k for k, v in cfg.to_dict().items() if k not in _RESUMABLE_CHANGES and stored.get(k) != v]
    if differ:
        listing = ", ".join(f"{k}={stored.get(k)!r} (now {getattr(cfg, k)!r})" for k in differ)
        raise ValueError(f"fit: cannot resume: the checkpoint was trained with {listing}; "
                         "pass the same settings or another --out")


def fit(cfg: TrainConfig, resume: bool = False, progress: TrainProgress | None = None, figures: bool = True,
        stop_after: int | None = None) -> dict[str, Any]:
    """Train ``cfg`` to ``cfg.epochs`` and return the metrics (also written to ``out/metrics.json``).

    Args:
        cfg: the run's settings.
        resume: continue from ``out/checkpoint.pt`` (its settings must match ``cfg`` except
            ``epochs``, ``device``, ``workers``, ``out``, ``data_dir``); without a checkpoint,
            start afresh.
        progress: hooks called as training goes, on rank 0 only (:class:`TrainProgress`;
            ``camwarp.cli.stn.TqdmProgress`` draws the CLI's bars); ``None``: silent.
        figures: write ``rectification.png`` and ``learning_curve.png`` at the end.
        stop_after: stop once this many epochs (of the ``cfg.epochs``-long schedule) are done, as
            an interrupted job would; ``resume=True`` later continues exactly.

    Returns:
        Dict with ``config``, ``history`` (one entry per epoch), ``test_error``, ``test_loss``,
        ``train_time_s``, ``train_img_per_s``, environment details.

    Raises:
        TypeError: ``progress`` is a bool rather than hooks or ``None``.
        ValueError: a resume with different settings; bad settings (from the data or the model).
    """
    if isinstance(progress, bool):
        raise TypeError("fit: progress must be a TrainProgress (e.g. camwarp.cli.stn.TqdmProgress()) or None, "
                        f"got {progress!r}")
    info = distributed.setup(cfg.device)
    hooks = progress if progress is not None and info.main else TrainProgress()
    out = Path(cfg.out)
    torch.manual_seed(cfg.seed)
    train_set, test_set = build_datasets(cfg)
    model = build_classifier(cfg).to(info.device)
    if info.enabled:
        sampler: Any = DistributedSampler(train_set, info.world_size, info.rank, shuffle=True, seed=cfg.seed)
    else:
        sampler = _EpochShuffle(len(train_set), cfg.seed)
    steps_per_epoch = math.ceil(len(sampler) / cfg.batch_size)
    optimizer = _optimizer(cfg, model)
    scheduler = _schedule(cfg, optimizer, steps_per_epoch)
    history: list[dict[str, Any]] = []
    start, train_time = 0, 0.0
    if resume and (out / CHECKPOINT_NAME).exists():
        state = load_checkpoint(out / CHECKPOINT_NAME)
        _check_resume(cfg, state["config"])
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        history, start, train_time = list(state["history"]), int(state["epoch"]), float(state["train_time_s"])
        if cfg.epochs != state["config"]["epochs"]:  # a longer run: the schedule follows the new length
            scheduler = _schedule(cfg, optimizer, steps_per_epoch, last_step=start * steps_per_epoch - 1)
    net = nn.parallel.DistributedDataParallel(model, device_ids=[info.device] if info.device.type == "cuda"
                                              else None) if info.enabled else model
    for epoch in range(start, min(cfg.epochs, stop_after or cfg.epochs)):
        train_set.epoch = epoch
        sampler.set_epoch(epoch)
        net.train()
        sums = torch.zeros(3, dtype=torch.float64, device=info.device)
        t0 = time.perf_counter()
        running = partial(_running_metrics, sums, t0, info.world_size)  # sums grows in place
        hooks.on_epoch_start(epoch + 1, cfg.epochs, steps_per_epoch)
        for step, batch in enumerate(_loader(train_set, cfg.batch_size, sampler, cfg.workers), 1):
            x, y = batch["image"].to(info.device, non_blocking=True), batch["label"].to(info.device)
            logits = net(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            with torch.no_grad():
                sums += torch.stack([loss.detach().double() * len(y), (logits.argmax(1) == y).sum().double(),
                                     torch.tensor(float(len(y)), dtype=torch.float64, device=info.device)])
            hooks.on_step(epoch + 1, step, steps_per_epoch, running)
        seconds = time.perf_counter() - t0
        train_time += seconds
        loss_sum, correct, count = distributed.all_sum(sums, info).tolist()
        entry = {"epoch": epoch + 1, "train_loss": loss_sum / count, "train_error": 1 - correct / count,
                 "img_per_s": count / seconds, "seconds": seconds,
                 "lr": optimizer.param_groups[0]["lr"]}
        entry.update(evaluate(model, test_set, 256, info.device, info, cfg.workers))
        history.append(entry)
        hooks.on_epoch_end(dict(entry))
        if info.main:
            save_checkpoint(out / CHECKPOINT_NAME, {
                "config": cfg.to_dict(), "epoch": epoch + 1, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "rng": torch.get_rng_state(), "history": history, "train_time_s": train_time})
    metrics = _metrics(cfg, history, train_time, info, model)
    if info.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / METRICS_NAME).write_text(json.dumps(metrics, indent=2) + "\n")
        if figures:
            _figures(cfg, model, test_set, out, info.device)
    distributed.teardown(info)
    return metrics


def _running_metrics(sums: torch.Tensor, t0: float, world_size: int) -> dict[str, float]:
    """The epoch so far from ``sums`` = (loss sum, correct, count) on this process; a device sync."""
    loss_sum, correct, count = sums.tolist()
    return {"loss": loss_sum / count, "acc": correct / count,
            "img_s": count * world_size / (time.perf_counter() - t0)}


def _metrics(cfg: TrainConfig, history: list[dict[str, Any]], train_time: float, info: distributed.DistInfo,
             model: nn.Module) -> dict[str, Any]:
    last = history[-1] if history else {}
    images = sum(h["img_per_s"] * h["seconds"] for h in history)
    return {
        "config": cfg.to_dict(), "epochs_completed": len(history), "test_error": last.get("test_error"),
        "test_loss": last.get("test_loss"), "test_count": last.get("test_count"),
        "train_time_s": train_time, "train_img_per_s": images / train_time if train_time else None,
        "parameters": sum(p.numel() for p in model.parameters()), "history": history,
        "environment": {"device": str(info.device), "world_size": info.world_size, "camwarp": __version__,
                        "torch": torch.__version__, "python": platform.python_version(),
                        "machine": platform.machine(), "threads": torch.get_num_threads()},
    }


def _figures(cfg: TrainConfig, model: nn.Module, test_set: DistortedMNIST, out: Path, device: torch.device) -> None:
    batch = test_set.__getitems__(list(range(min(32, len(test_set)))))
    images = torch.stack([b["image"] for b in batch]).to(device)
    labels = torch.stack([b["label"] for b in batch])
    name = f"{cfg.model} ({cfg.transform})" if cfg.model.startswith("st") else cfg.model
    save_rectification(model, images, out / "rectification.png", f"{name} on {cfg.task}: input | ST output",
                       labels)
    history = json.loads((out / METRICS_NAME).read_text())["history"]
    save_learning_curve(history, out / "learning_curve.png", f"{name} on {cfg.task}")


def evaluate_checkpoint(path: str, task: str | None = None, data_dir: str | None = "same",
                        test_samples: int | None = -1, batch_size: int = 256, device: str = "auto",
                        workers: int = 0) -> dict[str, Any]:
    """Rebuild a run's model from its checkpoint and evaluate it on its (or another) test set.

    Args:
        path: checkpoint file or run directory.
        task: evaluate on this distortion instead of the run's (same output size required).
        data_dir: ``"same"`` (the run's), ``None`` (embedded subset) or a MNIST directory.
        test_samples: ``-1`` (the run's), ``None`` (all) or a count.
        batch_size, device, workers: as for training.

    Returns:
        ``{"test_loss", "test_error", "test_count", "task", "checkpoint_epoch", "stored"}`` with
        ``stored`` the test metrics the run recorded for that epoch (``None`` if another task).
    """
    state = load_checkpoint(path)
    cfg = TrainConfig.from_dict(state["config"])
    changes: dict[str, Any] = {"device": device, "workers": workers}
    if task is not None:
        if OUT_SIZE.get(task) != OUT_SIZE[cfg.task]:
            raise ValueError(f"evaluate_checkpoint: task {task!r} makes {OUT_SIZE.get(task)} images, the model "
                             f"was trained on {OUT_SIZE[cfg.task]} ({cfg.task!r})")
        changes["task"] = task
    if data_dir != "same":
        changes["data_dir"] = data_dir
    if test_samples != -1:
        changes["test_samples"] = test_samples
    cfg = cfg.replace(**changes)
    dev = distributed.resolve_device(device)
    model = build_classifier(cfg).to(dev)
    model.load_state_dict(state["model"])
    test_set = DistortedMNIST(*load_split(cfg.data_dir, "test", cfg.test_samples, cfg.download), cfg.task,
                              seed=TEST_SEED)
    result = evaluate(model, test_set, batch_size, dev, None, workers)
    same = cfg.task == state["config"]["task"] and cfg.data_dir == state["config"]["data_dir"] and \
        cfg.test_samples == state["config"]["test_samples"]
    stored = state["history"][-1] if state["history"] and same else None
    return {**result, "task": cfg.task, "checkpoint_epoch": int(state["epoch"]),
            "stored": {k: stored[k] for k in ("test_loss", "test_error", "test_count")} if stored else None}
